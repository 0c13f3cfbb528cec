"""Prometheus metrics of a real gateway over real subgraphs: what moves, and what never shows."""

from __future__ import annotations

import re

import httpx

from gateway import telemetry
from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS
from tests.telemetry.conftest import ObservedCity, value

RESIDENT = "query Resident($id: ID!) { resident(id: $id) { id name email phone } }"
INCIDENTS = "query Incidents { incidents { id location { latitude longitude } reporter { name email } } }"


async def test_counters_move_with_requests(observed):
    before = await observed.samples()
    for _ in range(3):
        answer = await observed.ask(RESIDENT, {"id": "r1"})  # the public: personal values withheld
        assert answer["data"]["resident"]["name"] is None
    technician = await observed.ask(INCIDENTS, client="technician-console")  # a legal basis: disclosed, audited
    assert technician["data"]["incidents"][0]["reporter"]["name"] == "Amélie Poulain"
    refused = await observed.ask("{ resident(id: 1) { nope } }", client="city-app")
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    unauthenticated = await observed.ask("{ __typename }", headers={"x-api-key": "ck_not-a-key"})
    assert unauthenticated["_status"] == 401
    after = await observed.samples()

    def moved(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("citygate_requests_total", client="public", operation="Resident", code="OK") == 3
    assert moved("citygate_requests_total", client="technician-console", operation="Incidents", code="OK") == 1
    assert (
        moved("citygate_requests_total", client="city-app", operation="(unplanned)", code="GRAPHQL_VALIDATION_FAILED")
        == 1
    )
    unauthenticated_code = unauthenticated["errors"][0]["extensions"]["code"]
    assert moved("citygate_requests_total", client="(unidentified)", code=unauthenticated_code) == 1
    assert moved("citygate_request_duration_seconds_count", client="public") == 3
    assert moved("citygate_subgraph_fetches_total", subgraph="people", outcome="ok") >= 3
    assert moved("citygate_subgraph_fetch_duration_seconds_count", subgraph="people") >= 3
    # the public's three answers withheld name, email and phone each; the technician's was disclosed on the policy
    assert moved("citygate_privacy_decisions_total", outcome="withheld", reason="public-requester") == 9
    assert moved("citygate_privacy_decisions_total", outcome="disclosed", reason="policy") >= 1
    assert moved("citygate_audit_commits_total", outcome="ok") >= 1
    assert moved("citygate_audit_entries_total") >= 1
    assert moved("citygate_audit_commit_duration_seconds_count") >= 1
    assert ("citygate_audit_queue_depth", ()) in after
    # the same document three times: prepared and planned once, then found in the caches
    assert moved("citygate_cache_lookups_total", cache="plan", result="hit") >= 2
    assert moved("citygate_cache_lookups_total", cache="document", result="hit") >= 2
    assert moved("citygate_cache_lookups_total", cache="plan", result="miss") >= 1


async def test_a_failing_subgraph_counts_errors(tmp_path, traced_world, signer):
    city = ObservedCity(tmp_path, traced_world, signer, telemetry.TelemetrySettings(), broken_parking=True)
    try:
        answer = await city.ask(
            "query Bookings { bookings { id } }", client="parking-app", headers={"x-citygate-purpose": "booking"}
        )
        assert answer["data"] is None or answer["data"].get("bookings") is None
        assert answer["errors"][0]["extensions"]["code"] == "SUBREQUEST_HTTP_ERROR"
        fine = await city.ask("query Incidents { incidents { id } }")
        assert "errors" not in fine
        samples = await city.samples()
        assert value(samples, "citygate_subgraph_fetches_total", subgraph="parking", outcome="failed") == 1
        assert value(samples, "citygate_subgraph_fetches_total", subgraph="parking", outcome="ok") == 0
        assert value(samples, "citygate_subgraph_fetches_total", subgraph="reports", outcome="ok") == 1
        assert value(samples, "citygate_requests_total", operation="Bookings", code="PARTIAL") == 1
        assert value(samples, "citygate_requests_total", operation="Incidents", code="OK") == 1
    finally:
        await city.close()


async def test_no_personal_value_in_any_label(observed):
    variable = "needle-variable-7c1f"
    await observed.ask(RESIDENT, {"id": "r2"}, client="city-app")
    await observed.ask(RESIDENT, {"id": "r3"}, resident="r3")  # a resident's own request, with a JWT
    await observed.ask(RESIDENT, {"id": variable})
    await observed.ask(INCIDENTS, client="technician-console")
    await observed.ask('query Literal { resident(id: "r4") { name } }')
    await observed.ask(
        "query Bookings { bookings { plate amount } }", client="parking-app", headers={"x-citygate-purpose": "booking"}
    )
    text = await observed.metrics_text()
    residents = world.data["residents"]
    forbidden = [variable, *CLIENT_KEYS.values(), observed.signer.token("r3")[:40]]
    for resident_id, fields in residents.items():
        forbidden.extend(str(v) for v in fields.values() if v)
        assert not re.search(rf'"{resident_id}"|\b{resident_id}\b', text), resident_id
    forbidden.extend(booking["plate"] for booking in world.data["bookings"])
    for needle in forbidden:
        assert needle not in text, needle
    assert 'operation="Resident"' in text and 'operation="Literal"' in text  # the scan did see labelled requests


async def test_distinct_operation_names_are_capped(observed):
    for index in range(telemetry._OPERATION_CAP + 5):
        answer = await observed.ask(f"query Op{index} {{ __typename }}")
        assert answer["data"] == {"__typename": "Query"}
    await observed.ask("query Op0 { __typename }")
    samples = await observed.samples()
    operations = {dict(labels).get("operation") for name, labels in samples if name == "citygate_requests_total"}
    assert len(operations) <= telemetry._OPERATION_CAP + 2  # (unplanned), (anonymous) aside
    assert value(samples, "citygate_requests_total", operation=telemetry.OTHER) == 5
    assert value(samples, "citygate_requests_total", operation="Op0") == 2  # a name seen before the cap keeps its label


async def test_metrics_behind_a_bearer_token(tmp_path, traced_world, signer):
    settings = telemetry.TelemetrySettings(metrics_token="metrics-token-for-tests", metrics_path="/internal/metrics")
    city = ObservedCity(tmp_path, traced_world, signer, settings, broken_parking=False)
    try:
        await city.ask("{ __typename }")
        anonymous = await city.client.get("/internal/metrics")
        wrong = await city.client.get("/internal/metrics", headers={"authorization": "Bearer metrics-token-for-test"})
        as_client = await city.client.get("/internal/metrics", headers={"x-api-key": CLIENT_KEYS["city-app"]})
        for refused in (anonymous, wrong, as_client):
            assert refused.status_code == 401
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "citygate_requests_total" not in refused.text
        assert "citygate_requests_total" in await city.metrics_text("metrics-token-for-tests")
    finally:
        await city.close()


async def from_peer(city: ObservedCity, peer: str, headers: dict | None = None) -> httpx.Response:
    """GET the metrics over a connection whose remote address is `peer` (httpx's ASGI transport sets
    the ASGI scope's client as a socket would; tests send traffic to loopback only)."""
    transport = httpx.ASGITransport(app=city.gateway.app, client=(peer, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as outside:
        return await outside.get(city.settings.metrics_path, headers=headers or {})


async def test_metrics_without_a_token_answer_loopback_peers_only(observed):
    """Fail closed: no metrics_token, no metrics for a peer that is not on a loopback address,
    whatever X-Forwarded-For claims; loopback peers (the default serve's, a sidecar's) get them."""
    await observed.ask("{ __typename }")
    assert "citygate_requests_total" in await observed.metrics_text()  # a real loopback connection
    for peer in ("127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"):
        allowed = await from_peer(observed, peer)
        assert allowed.status_code == 200 and "citygate_requests_total" in allowed.text, peer
    for peer in ("203.0.113.7", "10.0.0.8", "192.168.1.20", "2001:db8::1", "::ffff:198.51.100.2", "fe80::1"):
        refused = await from_peer(observed, peer, {"x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1"})
        assert refused.status_code == 403, peer
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "citygate_" not in refused.text
    # a loopback peer forwarding someone's request (a proxy on this host, or uvicorn told to trust
    # every proxy and taking the client's own X-Forwarded-For): no local scrape
    for header in ("x-forwarded-for", "forwarded", "x-real-ip"):
        forwarded = await from_peer(observed, "127.0.0.1", {header: "127.0.0.1"})
        assert forwarded.status_code == 403 and "citygate_" not in forwarded.text, header


async def test_a_token_opens_the_metrics_to_other_addresses(tmp_path, traced_world, signer):
    settings = telemetry.TelemetrySettings(metrics_token="metrics-token-for-tests")
    city = ObservedCity(tmp_path, traced_world, signer, settings, broken_parking=False)
    try:
        await city.ask("{ __typename }")
        scraped = await from_peer(city, "203.0.113.7", {"authorization": "Bearer metrics-token-for-tests"})
        assert scraped.status_code == 200 and "citygate_requests_total" in scraped.text
        for peer in ("203.0.113.7", "127.0.0.1"):  # the token is wanted from loopback too
            refused = await from_peer(city, peer)
            assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        await city.close()


async def test_telemetry_off_mounts_nothing_and_hooks_do_nothing(observed):
    off = telemetry.TelemetrySettings(metrics=False)
    assert telemetry.routes(off) == [] and telemetry.middleware(off) == []
    assert telemetry.current() is None
    before = telemetry._cache_counts["plan"][:]
    answer = await observed.ask(RESIDENT, {"id": "r1"}, client="city-app")
    assert answer["data"]["resident"]["id"] == "r1"
    assert telemetry._cache_counts["plan"] == before
    assert observed.exporter.get_finished_spans() == ()
