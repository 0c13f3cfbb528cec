"""A REST connector's calls carry the trace context of their fetch, like a subgraph's."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import telemetry
from gateway.http import GatewayState, create_app
from tests.connect.conftest import partner, pool  # noqa: F401 (fixtures)
from tests.connect.test_gateway import engine_for


async def test_a_rest_connectors_calls_carry_the_traceparent(partner, pool):  # noqa: F811
    engine = await engine_for(partner, pool)
    app = create_app(GatewayState(engine, development=True))  # mounts the telemetry middleware
    exporter = InMemorySpanExporter()
    telemetry.install(telemetry.Telemetry(telemetry.TelemetrySettings(), span_exporter=exporter))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
            response = await client.post("/graphql", json={"query": "query Spots { spots { name capacity } }"})
        assert response.status_code == 200 and "errors" not in response.json(), response.text
    finally:
        telemetry.install(None)
        await engine.close()
    [fetch] = [span for span in exporter.get_finished_spans() if span.name == "subgraph.fetch"]
    assert fetch.attributes["citygate.subgraph"] == "parking"
    prefix = f"00-{fetch.context.trace_id:032x}-{fetch.context.span_id:016x}-"
    # the list, then each spot's own endpoint: every call of the fetch under its span
    assert len(partner.headers) >= 2
    assert all(headers.get("traceparent", "").startswith(prefix) for headers in partner.headers), partner.headers
