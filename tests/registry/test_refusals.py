"""Every refusal of the admin API has its kind, and each kind its HTTP status: INVALID 422,
FORBIDDEN 403, NOT_FOUND 404, CONFLICT 409; validating answers as registering would. A real
registry gateway over loopback (SQLite), the world's subgraphs as upstreams."""

from __future__ import annotations

import pytest

from gateway.consent import CONTROL_PLANE
from gateway.registry import Problem, Refusal, Report
from tests.registry.conftest import RunningGateway
from tests.registry.test_admin import register_city


@pytest.fixture
async def city(tmp_path, world):
    running = RunningGateway(f"sqlite:///{tmp_path / 'refusals.db'}")
    await register_city(running, world)
    yield running
    await running.close()


def codes(response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


async def test_each_kind_of_refusal_has_its_status(city, world):
    jobs_key = (await city.admin("POST", "/admin/partners", json={"name": "jobs"})).json()["key"]
    manifest = {"name": "ratings", "owner": "city", "kind": "subgraph", "url": world.url("ratings")}

    invalid = await city.register("ratings", world.url("ratings"), timeout="soon")
    assert (invalid.status_code, invalid.json()["ok"]) == (422, False) and "INVALID_MANIFEST" in codes(invalid)

    forbidden = await city.register("ratings", world.url("ratings"), owner="city", key=jobs_key)
    assert forbidden.status_code == 403 and codes(forbidden) == ["FORBIDDEN"]
    validated = await city.admin("POST", "/admin/connectors/validate", key=jobs_key, json=manifest)
    assert validated.status_code == 403 and codes(validated) == ["FORBIDDEN"]  # what registering would answer
    theirs = await city.register("parking", world.url("parking"), owner="jobs", key=jobs_key)
    assert theirs.status_code == 403 and codes(theirs) == ["CONNECTOR_OWNED_BY_ANOTHER_PARTNER"]

    unknown = await city.admin("DELETE", "/admin/connectors/nowhere")
    assert unknown.status_code == 404 and codes(unknown) == ["CONNECTOR_NOT_FOUND"]
    not_theirs = await city.admin("DELETE", "/admin/connectors/parking", key=jobs_key)
    assert not_theirs.status_code == 404 and codes(not_theirs) == ["CONNECTOR_NOT_FOUND"]  # its existence is not told

    built_in = await city.admin("DELETE", f"/admin/connectors/{CONTROL_PLANE}")
    assert built_in.status_code == 409 and codes(built_in) == ["CONNECTOR_IN_FOLDER"]
    # one code, one status: registering over a folder's (or built-in) connector is the same conflict
    over_built_in = await city.register(CONTROL_PLANE, world.url("ratings"))
    assert over_built_in.status_code == 409 and codes(over_built_in) == ["CONNECTOR_IN_FOLDER"]
    validated_over = await city.admin("POST", "/admin/connectors/validate", json={**manifest, "name": CONTROL_PLANE})
    assert validated_over.status_code == 409 and codes(validated_over) == ["CONNECTOR_IN_FOLDER"]

    # nothing refused changed anything: the city is served as before, and a good change passes
    assert (await city.query('{ resident(id: "r1") { name } }')) == {"data": {"resident": {"name": "Amélie Poulain"}}}
    assert (await city.admin("POST", "/admin/connectors/validate", json=manifest)).status_code == 200
    registered = await city.register("ratings", world.url("ratings"))
    assert registered.status_code == 200 and registered.json()["ok"] is True
    removed = await city.admin("DELETE", "/admin/connectors/ratings")
    assert removed.status_code == 200 and removed.json()["errors"] == []
    assert {w["code"] for w in removed.json()["warnings"]} == {"BREAKING_CHANGE"}  # reported, never refused for


def test_a_report_is_refused_as_invalid_unless_told_otherwise():
    report = Report()
    assert report.ok and report.refusal is None
    report.add(Problem("BREAKING_CHANGE", "a field goes"), warning=True)
    assert report.ok and report.refusal is None  # a warning refuses nothing
    report.add(Problem("INVALID_MANIFEST", "no url"))
    assert not report.ok and report.refusal is Refusal.INVALID
    assert report.refuse(Refusal.CONFLICT).refusal is Refusal.CONFLICT  # the kind the caller knows better
    forbidden = Report().refuse(Refusal.FORBIDDEN, Problem("FORBIDDEN", "not yours"))
    assert forbidden.refusal is Refusal.FORBIDDEN and forbidden.to_dict()["errors"][0]["code"] == "FORBIDDEN"
