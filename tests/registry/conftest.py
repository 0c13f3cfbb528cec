"""A registry gateway over real HTTP, with the world's subgraphs as upstreams."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.app import registry_app
from gateway.policy import parse_policy
from tests.postgres import SERVER, fresh_database
from tests.workers import worker_database
from tests.world.server import AppServer

OPERATOR_KEY = "cgo_test-operator-key-not-a-secret"
LOOPBACK = parse_policy({"registry": {"allow_upstreams": ["127.0.0.0/8"]}})
# the registry's and privacy tests' database: one per xdist worker, so a reset never wipes another's
SHARED_DATABASE = worker_database("test")
POSTGRES_URL = f"{SERVER}/{SHARED_DATABASE}"


async def reset_postgres() -> None:
    # a fresh schema (created when missing): tests rename and drop tables to break the store on purpose
    await fresh_database(SHARED_DATABASE)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    await reset_postgres()
    return POSTGRES_URL


class RunningGateway:
    def __init__(self, store_url: str, folder=None) -> None:
        self.gateway = registry_app(folder=folder, store_url=store_url, policy=LOOPBACK, operator_key=OPERATOR_KEY)
        self.server = AppServer(self.gateway.app, lifespan="on").start()
        self.url = self.server.base_url
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30)

    async def admin(self, method: str, path: str, key: str = OPERATOR_KEY, json=None) -> httpx.Response:
        return await self.client.request(method, path, json=json, headers={"authorization": f"Bearer {key}"})

    async def register(
        self, name: str, url: str, owner: str = "city", key: str = OPERATOR_KEY, **extra
    ) -> httpx.Response:
        return await self.admin(
            "PUT", f"/admin/connectors/{name}", key, {"owner": owner, "kind": "subgraph", "url": url, **extra}
        )

    async def query(self, query: str) -> dict:
        response = await self.client.post("/graphql", json={"query": query})
        return response.json()

    async def close(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(self.server.stop)


@pytest.fixture
async def running(store_url):
    gateway = RunningGateway(store_url)
    yield gateway
    await gateway.close()
