"""Two gateways (two full registry apps, each with its own lifespan, event loop and thread) on one
PostgreSQL database of their own, as two replicas behind a load balancer would be."""

from __future__ import annotations

import asyncio

import pytest
import strawberry

from tests.postgres import temporary_database
from tests.privacy import conftest as privacy_fixtures
from tests.privacy import world
from tests.privacy.conftest import City, connectors_folder, policy_document
from tests.world.server import WorldServer

# the privacy tests' session fixtures: the world's subgraphs and the signing keys
privacy_world = privacy_fixtures.privacy_world
signer = privacy_fixtures.signer

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@strawberry.type
class NoticesQuery:
    @strawberry.field
    def city_notice(self) -> str:
        return "Fermeture du pont Neuf samedi"


NOTICES = strawberry.federation.Schema(query=NoticesQuery, federation_version="2.5")


@pytest.fixture(scope="session")
def notices_world():
    """A subgraph no folder holds, for registrations over the admin API."""
    server = WorldServer({"notices": NOTICES}).start()
    yield server
    server.stop()


@pytest.fixture
async def replica_database():
    """A database of this test's own (other helpers' tests use `test` concurrently), dropped after."""
    async with temporary_database("citygate_replicas") as url:
        yield url


def replica_policy(jwks_file) -> dict:
    document = policy_document(jwks_file)
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    return document


@pytest.fixture
async def replicas(replica_database, tmp_path, privacy_world, signer):
    """Replicas A and B: the same folder and policy file, the same PostgreSQL database."""
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    policy = replica_policy(signer.jwks_file)
    a = City(replica_database, folder, policy, signer)
    b = City(replica_database, folder, policy, signer)
    yield a, b
    await asyncio.gather(a.close(), b.close())
