"""The operator manages partners over the admin API, on SQLite and on PostgreSQL: list, rotate a
key, revoke. A key rotated or revoked through one replica is refused by every replica at once."""

from __future__ import annotations

import asyncpg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from tests.registry.conftest import OPERATOR_KEY, RunningGateway
from tests.workers import worker_database

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = worker_database(
    "citygate_s"
)  # this file's own database: tests/registry's shared one is reset by other tests


async def fresh_postgres() -> str:
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}")
    async with engine.begin() as connection:
        await connection.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    await engine.dispose()
    return f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'partners.db'}"
    return await fresh_postgres()


@pytest.fixture
async def running(store_url):
    gateway = RunningGateway(store_url)
    yield gateway
    await gateway.close()


async def add_partner(gateway: RunningGateway, name: str) -> str:
    response = await gateway.admin("POST", "/admin/partners", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["key"]


async def test_the_operator_lists_rotates_and_revokes_partners(running, world):
    city_key = await add_partner(running, "city")
    jobs_key = await add_partner(running, "jobs")
    for name in ("residents", "districts"):
        registered = await running.register(name, world.url(name), owner="city", key=city_key)
        assert registered.status_code == 200, registered.text

    listing = (await running.admin("GET", "/admin/partners")).json()["partners"]
    assert [(p["name"], p["connectors"]) for p in listing] == [("city", ["districts", "residents"]), ("jobs", [])]
    assert all(p["created_at"] for p in listing) and "key" not in str(listing) and city_key not in str(listing)

    # a new key: the old one is refused at once, the new one manages the same connectors
    rotated = await running.admin("POST", "/admin/partners/city/key")
    assert rotated.status_code == 200
    new_city_key = rotated.json()["key"]
    assert new_city_key.startswith("cgp_") and new_city_key != city_key
    refused = await running.admin("GET", "/admin/connectors", key=city_key)
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "UNAUTHENTICATED"
    mine = (await running.admin("GET", "/admin/connectors", key=new_city_key)).json()["connectors"]
    assert sorted(c["name"] for c in mine) == ["districts", "residents"]

    # revoked: its key is refused at once; its connectors stay served until the operator removes them
    revoked = await running.admin("DELETE", "/admin/partners/city")
    assert revoked.status_code == 200 and revoked.json() == {
        "ok": True,
        "name": "city",
        "connectors": ["districts", "residents"],
    }
    assert (await running.admin("GET", "/admin/connectors", key=new_city_key)).status_code == 401
    assert (
        await running.register("residents", world.url("residents"), owner="city", key=new_city_key)
    ).status_code == 401
    assert (await running.query('{ resident(id: "r1") { name district { name } } }')) == {
        "data": {"resident": {"name": "Amélie Poulain", "district": {"name": "Buttes-Montmartre"}}}
    }
    assert [p["name"] for p in (await running.admin("GET", "/admin/partners")).json()["partners"]] == ["jobs"]
    assert (await running.admin("GET", "/admin/connectors", key=jobs_key)).status_code == 200  # the others keep theirs

    for method, path in (("DELETE", "/admin/partners/city"), ("POST", "/admin/partners/nobody/key")):
        missing = await running.admin(method, path)
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "PARTNER_NOT_FOUND"


async def test_only_the_operator_manages_partners(running):
    jobs_key = await add_partner(running, "jobs")
    await add_partner(running, "city")
    for method, path in (
        ("GET", "/admin/partners"),
        ("DELETE", "/admin/partners/city"),
        ("POST", "/admin/partners/city/key"),
        ("POST", "/admin/partners/jobs/key"),
    ):
        forbidden = await running.admin(method, path, key=jobs_key)
        assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["code"] == "FORBIDDEN", (method, path)
        anonymous = await running.client.request(method, path)
        assert anonymous.status_code == 401, (method, path)
    assert [p["name"] for p in (await running.admin("GET", "/admin/partners")).json()["partners"]] == ["city", "jobs"]
    assert (await running.admin("GET", "/admin/connectors", key=jobs_key)).status_code == 200  # jobs' key unchanged


async def test_a_key_rotated_or_revoked_through_one_replica_is_refused_by_the_other_at_once(world):
    url = await fresh_postgres()
    first, second = RunningGateway(url), RunningGateway(url)
    try:
        city_key = await add_partner(first, "city")
        jobs_key = await add_partner(first, "jobs")
        assert (await second.admin("GET", "/admin/connectors", key=city_key)).status_code == 200

        new_city_key = (await second.admin("POST", "/admin/partners/city/key")).json()["key"]
        assert (await first.admin("GET", "/admin/connectors", key=city_key)).status_code == 401
        assert (await first.admin("GET", "/admin/connectors", key=new_city_key)).status_code == 200

        assert (await second.admin("GET", "/admin/connectors", key=jobs_key)).status_code == 200
        assert (await first.admin("DELETE", "/admin/partners/jobs")).status_code == 200
        refused = await second.admin("GET", "/admin/connectors", key=jobs_key)
        assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "UNAUTHENTICATED"
        assert [p["name"] for p in (await second.admin("GET", "/admin/partners")).json()["partners"]] == ["city"]
    finally:
        await first.close()
        await second.close()


async def test_the_operator_key_is_no_partner(running):
    # the operator's key is compared with its own hash, never looked up as a partner's
    assert (await running.admin("DELETE", "/admin/partners/operator")).status_code == 404
    assert (await running.admin("GET", "/admin/partners", key=OPERATOR_KEY)).json() == {"partners": []}
