"""OpenTelemetry traces of a real gateway: the span tree of a request, the trace context its
subgraphs receive, and no personal value in any attribute."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.privacy import world
from tests.telemetry.test_metrics import INCIDENTS, RESIDENT


def _tree(spans) -> dict:
    """span id -> (span, parent span id or None)."""
    return {span.context.span_id: (span, span.parent.span_id if span.parent else None) for span in spans}


async def test_the_span_tree_of_a_request(observed):
    answer = await observed.ask(INCIDENTS, client="technician-console")  # incidents (reports), then reporters (people)
    assert answer["data"]["incidents"][0]["reporter"]["email"] == "amelie@example.org"
    spans = observed.exporter.get_finished_spans()
    tree = _tree(spans)
    roots = [span for span, parent in tree.values() if parent is None and span.name == "POST /graphql"]
    assert len(roots) == 1
    root = roots[0]
    assert root.kind == SpanKind.SERVER
    assert root.attributes["citygate.client"] == "technician-console"
    assert root.attributes["graphql.operation.name"] == "Incidents"
    assert root.attributes["citygate.code"] == "OK"
    assert root.attributes["http.response.status_code"] == 200
    children = {span.name: span for span, parent in tree.values() if parent == root.context.span_id}
    assert {"graphql.validate", "graphql.plan", "graphql.execute", "privacy"} <= set(children)
    execute = children["graphql.execute"]
    fetches = [span for span, parent in tree.values() if span.name == "subgraph.fetch"]
    assert {span.attributes["citygate.subgraph"] for span in fetches} == {"reports", "people"}
    assert all(tree[span.context.span_id][1] == execute.context.span_id for span in fetches)
    assert all(span.kind == SpanKind.CLIENT and span.attributes["citygate.outcome"] == "ok" for span in fetches)
    # the technician's disclosures were audited: the commit is a span of this trace, under privacy
    commits = [span for span in spans if span.name == "audit.commit"]
    assert len(commits) == 1 and tree[commits[0].context.span_id][1] == children["privacy"].context.span_id
    assert commits[0].attributes["citygate.entries"] >= 1
    assert {span.context.trace_id for span in spans} == {root.context.trace_id}
    # the stages happen in order, within the request
    assert (
        root.start_time
        <= children["graphql.validate"].start_time
        <= children["graphql.plan"].start_time
        <= execute.start_time
    )
    assert children["privacy"].end_time <= root.end_time


async def test_subgraphs_receive_the_traceparent_of_their_fetch(observed):
    await observed.ask(INCIDENTS, client="technician-console")
    spans = observed.exporter.get_finished_spans()
    fetches = {span.attributes["citygate.subgraph"]: span for span in spans if span.name == "subgraph.fetch"}
    received = _recorded(observed)
    for subgraph in ("reports", "people"):
        headers = [h for h in received.get(subgraph, []) if h is not None]
        span = fetches[subgraph].context
        # version 00, the trace, the fetch's span as parent, then the flags (sampled)
        assert any(
            h.startswith(f"00-{span.trace_id:032x}-{span.span_id:016x}-") and int(h[-2:], 16) & 1 for h in headers
        ), headers


async def test_a_clients_traceparent_is_not_followed(observed):
    chosen_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await observed.ask(RESIDENT, {"id": "r1"}, headers={"traceparent": f"00-{chosen_trace}-00f067aa0ba902b7-01"})
    spans = observed.exporter.get_finished_spans()
    root = next(span for span in spans if span.name == "POST /graphql")
    assert root.parent is None
    assert f"{root.context.trace_id:032x}" != chosen_trace
    assert all(chosen_trace not in (h or "") for headers in _recorded(observed).values() for h in headers)


async def test_no_personal_value_in_any_span(observed):
    variable = "needle-variable-41aa"
    await observed.ask(RESIDENT, {"id": variable})
    await observed.ask(RESIDENT, {"id": "r2"}, resident="r2")
    await observed.ask('query Literal { resident(id: "r3") { name email } }', client="city-app")
    await observed.ask(INCIDENTS, client="technician-console")
    await observed.ask(f'{{ resident(id: "{variable}") {{ nope }} }}')  # refused: the document is not recorded either
    spans = observed.exporter.get_finished_spans()
    assert spans
    recorded = " ".join(
        f"{span.name} {dict(span.attributes or {})} {[(event.name, dict(event.attributes or {})) for event in span.events]}"
        for span in spans
    )
    needles = [variable, "resident(id"]
    for fields in world.data["residents"].values():
        needles.extend(str(v) for v in fields.values() if v)
    for needle in needles:
        assert needle not in recorded, needle
    for resident_id in world.data["residents"]:
        assert f"'{resident_id}'" not in recorded, resident_id
    assert "Literal" in recorded  # the operation's name is there: the scan saw the requests


def _recorded(observed) -> dict[str, list]:
    with observed.recorder.lock:
        return {name: list(headers) for name, headers in observed.recorder.traceparents.items()}


async def test_an_unsampled_request_records_no_span_but_still_counts(tmp_path, traced_world, signer):
    from gateway import telemetry
    from tests.telemetry.conftest import ObservedCity, value

    traced_world.recorder.reset()
    city = ObservedCity(
        tmp_path, traced_world, signer, telemetry.TelemetrySettings(traces_sample_ratio=0.0), broken_parking=False
    )
    try:
        answer = await city.ask(INCIDENTS, client="technician-console")
        assert answer["data"]["incidents"]
        assert city.exporter.get_finished_spans() == ()
        # the trace context still travels (its sampled flag off), so a subgraph's own tracer agrees
        received = [h for h in _recorded(city).get("reports", []) if h is not None]
        assert received and all(h.startswith("00-") and not int(h[-2:], 16) & 1 for h in received)
        samples = await city.samples()
        assert (
            value(samples, "citygate_requests_total", client="technician-console", operation="Incidents", code="OK")
            == 1
        )
    finally:
        await city.close()
