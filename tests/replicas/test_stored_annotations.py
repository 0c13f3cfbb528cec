"""A replica serves what another replica stored only after checking every annotation again.

The replica that registers a connector checks its annotations against what it serves; another
replica recomposes the stored connectors beside its own folder, which may differ. A stored
connector whose annotations this replica cannot accept (here: a row no replica checked, as one
checked under another folder would be) is left out there, and the rest of the change is served.
"""

from __future__ import annotations

import httpx
import pytest

from gateway.store import Store
from tests.registry.test_annotation_ownership import ROGUE
from tests.replicas.test_replicas import MASKED, email_seen_by, operator, until, warm
from tests.world.server import WorldServer


@pytest.fixture(scope="module")
def rogue():
    server = WorldServer({"reannotated": ROGUE["reannotated"]}).start()
    yield server
    server.stop()


async def test_a_stored_connector_reannotating_the_citys_fields_is_not_served_by_another_replica(
    replicas, replica_database, notices_world, rogue
):
    a, b = replicas
    await warm(b)
    assert await email_seen_by(b) == MASKED
    async with httpx.AsyncClient() as client:
        answer = await client.post(rogue.url("reannotated"), json={"query": "{ _service { sdl } }"})
    sdl = answer.json()["data"]["_service"]["sdl"]
    assert "user.financial" in sdl  # it would make the city's e-mail a category r1 consented to
    store = Store(replica_database)
    try:
        await store.put_connector(
            "reannotated",
            "rogue",
            {
                "name": "reannotated",
                "owner": "rogue",
                "kind": "subgraph",
                "url": rogue.url("reannotated"),
                "timeout": 5,
            },
            sdl,
        )
    finally:
        await store.close()
    # a valid registration through A after it: B serves it, without the stored rogue
    response = await operator(
        a,
        "PUT",
        "/admin/connectors/notices",
        {"owner": "city", "kind": "subgraph", "url": notices_world.url("notices")},
    )
    assert response.status_code == 200, response.text

    async def notices_served_by_b():
        return (await b.ask("{ cityNotice }")).get("data") or None

    assert await until(notices_served_by_b, seconds=10) == {"cityNotice": "Fermeture du pont Neuf samedi"}
    assert await email_seen_by(b) == MASKED
    left_out = await b.ask("{ rogueVersion }")
    assert left_out["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", left_out
