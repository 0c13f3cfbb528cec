"""The admin API over real HTTP, on SQLite and on PostgreSQL: register, validate, list, remove."""

from __future__ import annotations

from tests.registry.conftest import OPERATOR_KEY, RunningGateway


async def register_city(running, world, owner: str = "city") -> None:
    for name in ("residents", "districts", "parking"):
        response = await running.register(name, world.url(name), owner=owner)
        assert response.status_code == 200, response.text


def registered(listing: list[dict]) -> list[dict]:
    return [c for c in listing if c["source"] == "registry"]


async def test_registration_composes_and_serves_without_restart(running, world):
    # before any registration, the built-in control plane alone is served
    assert (await running.query("{ clients { id } }")) == {"data": {"clients": []}}
    await register_city(running, world)
    answer = await running.query('{ resident(id: "r1") { name district { name } bookings { hours } } }')
    assert answer == {
        "data": {
            "resident": {
                "name": "Amélie Poulain",
                "district": {"name": "Buttes-Montmartre"},
                "bookings": [{"hours": 2}],
            }
        }
    }
    listing = registered((await running.admin("GET", "/admin/connectors")).json()["connectors"])
    assert [(c["name"], c["owner"], c["version"], c["source"]) for c in listing] == [
        ("districts", "city", 1, "registry"),
        ("parking", "city", 1, "registry"),
        ("residents", "city", 1, "registry"),
    ]
    again = await running.register("parking", world.url("parking"))
    assert again.json()["version"] == 2


async def test_partners_manage_their_own_connectors_only(running, world):
    city_key = (await running.admin("POST", "/admin/partners", json={"name": "city"})).json()["key"]
    jobs_key = (await running.admin("POST", "/admin/partners", json={"name": "jobs"})).json()["key"]
    assert city_key.startswith("cgp_") and jobs_key != city_key
    await register_city(running, world)
    # a partner cannot register in another partner's name, nor replace or remove its connectors
    assert (await running.register("ratings", world.url("ratings"), owner="city", key=jobs_key)).status_code == 403
    assert (await running.register("parking", world.url("parking"), owner="jobs", key=jobs_key)).status_code == 403
    assert (await running.admin("DELETE", "/admin/connectors/parking", key=jobs_key)).status_code == 404
    assert (await running.admin("GET", "/admin/connectors", key=jobs_key)).json()["connectors"] == []
    assert len((await running.admin("GET", "/admin/connectors", key=city_key)).json()["connectors"]) == 3
    # only the operator creates partners and reads the whole supergraph
    assert (await running.admin("POST", "/admin/partners", key=city_key, json={"name": "x"})).status_code == 403
    assert (await running.admin("GET", "/admin/supergraph", key=city_key)).status_code == 403
    assert "join__Graph" in (await running.admin("GET", "/admin/supergraph")).text
    assert (await running.admin("GET", "/admin/connectors", key="cgp_wrong")).status_code == 401
    assert (await running.client.get("/admin/connectors")).status_code == 401


async def test_ownership_is_enforced_between_partners(running, world):
    await register_city(running, world)
    # jobs overrides Resident.nickname and provides Resident.name, both owned by city
    response = await running.register("jobs", world.url("jobs"), owner="jobs")
    assert response.status_code == 422
    coordinates = {
        e.get("coordinate") for e in response.json()["errors"] if e["code"] == "FIELD_OWNED_BY_ANOTHER_PARTNER"
    }
    assert coordinates == {"Resident.nickname", "Resident.name"}
    assert (await running.register("jobs", world.url("jobs"), owner="city")).status_code == 200


async def test_a_bad_registration_leaves_the_running_supergraph_untouched(running, world):
    await register_city(running, world)
    engine_before = running.gateway.state.engine
    supergraph_before = (await running.admin("GET", "/admin/supergraph")).text
    broken = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])\ntype Query { residents: [Int] }\ntype District @key(fields: "nope") { code: String! }'
    response = await running.register("broken", world.url("residents"), sdl=broken)
    assert response.status_code == 422
    codes = {e["code"] for e in response.json()["errors"]}
    assert {"KEY_INVALID_FIELDS"} <= codes
    assert all(
        "subgraph" in e and "locations" in e for e in response.json()["errors"] if e["code"] == "KEY_INVALID_FIELDS"
    )
    assert running.gateway.state.engine is engine_before
    assert (await running.admin("GET", "/admin/supergraph")).text == supergraph_before
    assert "broken" not in {c["name"] for c in (await running.admin("GET", "/admin/connectors")).json()["connectors"]}


async def test_validation_changes_nothing_and_reports_privacy_problems(running, world):
    engine_before = running.gateway.state.engine
    response = await running.admin(
        "POST", "/admin/connectors/validate", json={"name": "residents", "owner": "city", "url": world.url("residents")}
    )
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["warnings"] == []
    # a personal-looking field without a privacy annotation is refused (the lint is an error)
    unannotated = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])\ntype Query { people: [Person] }\ntype Person { id: ID! email: String }'
    response = await running.admin(
        "POST",
        "/admin/connectors/validate",
        json={"name": "people", "owner": "city", "url": world.url("residents"), "sdl": unannotated},
    )
    assert response.status_code == 422
    assert [(e["code"], e["coordinate"]) for e in response.json()["errors"]] == [
        ("PRIVACY_ANNOTATION_MISSING", "Person.email")
    ]
    assert running.gateway.state.engine is engine_before
    bad = await running.admin(
        "POST", "/admin/connectors/validate", json={"name": "x", "owner": "city", "url": "http://169.254.169.254/"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "UPSTREAM_URL_REFUSED"


async def test_malformed_manifests_and_python_code_are_refused(running):
    response = await running.admin(
        "PUT", "/admin/connectors/x", json={"owner": "city", "kind": "python", "schema": "evil.py:schema"}
    )
    assert response.status_code == 422
    assert any("operator's connectors folder" in e["message"] for e in response.json()["errors"])
    response = await running.admin(
        "PUT", "/admin/connectors/Bad_Name", json={"owner": "city", "url": "http://127.0.0.1:1/"}
    )
    assert response.json()["errors"][0]["code"] == "INVALID_MANIFEST"
    response = await running.client.put(
        "/admin/connectors/x", content=b"{", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert response.status_code == 400


async def test_removal_keeps_what_still_composes(running, world):
    await register_city(running, world)
    # districts @requires Resident.districtCode from residents: removing residents breaks composition
    refused = await running.admin("DELETE", "/admin/connectors/residents")
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["code"] == "EXTERNAL_MISSING_ON_BASE"
    assert (await running.admin("DELETE", "/admin/connectors/parking")).status_code == 200
    answer = await running.query("{ residents { name } }")
    assert answer["data"]["residents"][0]["name"] == "Amélie Poulain"
    assert "bookings" in str((await running.query("{ residents { bookings { hours } } }"))["errors"])


async def test_the_store_keeps_registrations_across_restarts(store_url, world):
    first = RunningGateway(store_url)
    try:
        await register_city(first, world)
    finally:
        await first.close()
    second = RunningGateway(store_url)
    try:
        answer = await second.query('{ resident(id: "r2") { district { name } } }')
        assert answer == {"data": {"resident": {"district": {"name": "Panthéon"}}}}
        versions = {
            c["name"]: c["version"]
            for c in registered((await second.admin("GET", "/admin/connectors")).json()["connectors"])
        }
        assert versions == {"districts": 1, "parking": 1, "residents": 1}
    finally:
        await second.close()
