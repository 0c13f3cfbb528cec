"""Load test: registrations and removals under steady traffic drop no request."""

from __future__ import annotations

import asyncio

from tests.registry.test_admin import register_city

QUERY = "{ residents { name district { name } bookings { hours spot { name } } } }"


async def test_registrations_and_removals_under_steady_traffic_fail_no_request(running, world):
    await register_city(running, world)
    expected = await running.query(QUERY)
    assert "errors" not in expected
    stop = asyncio.Event()
    outcomes = {"ok": 0, "failed": []}

    async def client() -> None:
        while not stop.is_set():
            response = await running.client.post("/graphql", json={"query": QUERY})
            body = response.json()
            if response.status_code == 200 and body == expected:
                outcomes["ok"] += 1
            else:
                outcomes["failed"].append((response.status_code, str(body)[:300]))

    clients = [asyncio.create_task(client()) for _ in range(4)]
    changes = 0
    for _ in range(12):
        for name in ("jobs", "ratings"):
            response = await running.register(name, world.url(name))
            assert response.status_code == 200, response.text
            changes += 1
        answer = await running.query("{ topRated { name rating } jobs { postedBy { nickname } } }")
        assert answer["data"]["topRated"][0] == {"name": "Parking Saint-Michel", "rating": 4.9}
        for name in ("ratings", "jobs"):
            assert (await running.admin("DELETE", f"/admin/connectors/{name}")).status_code == 200
            changes += 1
    stop.set()
    await asyncio.gather(*clients)
    assert changes >= 40
    assert outcomes["failed"] == []
    assert outcomes["ok"] > changes  # the traffic really ran alongside the changes
    print(f"\n{changes} registrations/removals, {outcomes['ok']} requests, {len(outcomes['failed'])} failed")
