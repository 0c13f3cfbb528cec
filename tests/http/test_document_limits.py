"""Hostile documents against `citygate serve` as a real process: each refused with its code, at once.

The gateway serves the world's supergraph (its subgraphs on loopback). Each attack is sent while a
probe client asks the gateway something small; the attack must be refused with its stable code,
HTTP 400 for application/graphql-response+json, within a fraction of a second, and the probe must
keep being answered. Then: the limits follow the configuration, introspection and "Did you mean"
follow the mode.
"""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from gateway.engine import Engine
from gateway.http import GatewayState, create_app
from gateway.planner import _build as build
from gateway.settings import settings_from_environment
from tests.http.edge import Probe, post_graphql, refused, serve_world, world_to_serve
from tests.world.server import AppServer

CLIENT_KEY = "ck_document-limits-client"
QUICK = 1.0  # seconds: every refusal here comes in milliseconds; the margin is for a loaded machine


@pytest.fixture(scope="module")
def served_world(world_server, tmp_path_factory):
    return world_to_serve(world_server, tmp_path_factory.mktemp("document-limits"), CLIENT_KEY)


@pytest.fixture(scope="module")
def uncosted(served_world):
    """Default document limits, no cost limit: a query as deep as allowed is a chain of lists whose
    estimated cost (tests/http/test_cost.py) is far over any maximum."""
    running = serve_world(served_world, "--max-cost", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def configured(served_world):
    running = serve_world(
        served_world,
        "--max-aliases",
        "1",
        env={"CITYGATE_MAX_DEPTH": "4", "CITYGATE_INTROSPECTION": "none", "CITYGATE_SUGGESTIONS": "on"},
    )
    yield running
    running.stop()


def fragment_bomb(levels: int) -> str:
    fragments = " ".join(f"fragment F{i} on District {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{{ districts {{ ...F0 }} }} {fragments} fragment F{levels} on District {{ code name }}"


def deep_query(fields: int) -> str:
    """`fields` fields on the longest path: districts, then spots / district pairs, then code."""
    pairs = (fields - 2) // 2
    return "{ districts { " + "spots { district { " * pairs + "code" + " } }" * pairs + " } }"


def nested_list(levels: int) -> str:
    """Variables whose one value is a string in `levels` lists, as JSON text."""
    return '{"c": ' + "[" * levels + '"75118"' + "]" * levels + "}"


ATTACKS = {
    "fragment bomb, 20 levels": (fragment_bomb(20), None, "MAX_EXPANDED_SIZE_EXCEEDED"),
    "fragment bomb, 40 levels": (fragment_bomb(40), None, "MAX_EXPANDED_SIZE_EXCEEDED"),
    "1,000 aliases": (
        "{ " + " ".join(f"a{i}: districts {{ code }}" for i in range(1000)) + " }",
        None,
        "MAX_ALIASES_EXCEEDED",
    ),
    "21 root fields": ("{ " + " districts { code }" * 21 + " }", None, "MAX_ROOT_FIELDS_EXCEEDED"),
    "63 levels deep": (deep_query(63), None, "MAX_DEPTH_EXCEEDED"),
    "2,000 levels deep": (deep_query(2000), None, "MAX_DEPTH_EXCEEDED"),
    "variables 255 levels deep": (
        "query($c: String!) { district(code: $c) { name } }",
        nested_list(255),
        "MAX_VARIABLES_DEPTH_EXCEEDED",
    ),
    "variables 1,000 levels deep": (
        "query($c: String!) { district(code: $c) { name } }",
        nested_list(1000),
        "MAX_VARIABLES_DEPTH_EXCEEDED",
    ),
    "20,000 variable values": (
        "query($c: String!) { district(code: $c) { name } }",
        {"c": list(range(20_000))},
        "MAX_VARIABLES_SIZE_EXCEEDED",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_hostile_document_is_refused_with_its_code_at_once(production, attack):
    query, variables, code = ATTACKS[attack]
    with Probe(production.url) as probe:
        response, seconds = post_graphql(production, query, variables)
    refused(response, code)
    assert seconds < QUICK, f"{attack}: refused after {seconds:.2f} s"
    probe.assert_kept_answering(worst=QUICK)


def test_refused_bombs_leave_nothing_in_memory(production):
    before = production.rss_mb()
    for n in range(16):  # distinct documents: a cache keyed by text would keep each
        response, _ = post_graphql(production, fragment_bomb(20) + f" # {n}")
        refused(response, "MAX_EXPANDED_SIZE_EXCEEDED")
    assert production.rss_mb() - before < 20


def test_a_query_as_deep_as_allowed_is_answered(uncosted):
    """32 fields deep (the default limit) plans, runs and shapes without meeting Python's recursion limit."""
    response, _ = post_graphql(uncosted, deep_query(32))
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert "errors" not in body and body["data"]["districts"], body


def test_the_limits_follow_the_configuration(production, configured):
    five_deep = "{ districts { spots { district { spots { id } } } } }"
    response, _ = post_graphql(production, five_deep)
    assert response.status_code == 200 and "errors" not in response.json()
    refused(post_graphql(configured, five_deep)[0], "MAX_DEPTH_EXCEEDED")
    two_aliases = "{ a: districts { code } b: districts { name } }"
    assert "errors" not in post_graphql(production, two_aliases)[0].json()
    refused(post_graphql(configured, two_aliases)[0], "MAX_ALIASES_EXCEEDED")


@pytest.mark.parametrize("budget", ["5", "0"])
def test_the_planning_budget_follows_the_configuration(world_server, monkeypatch, budget):
    """The planner's clock is controlled (as in tests/planner/test_plan_corpus.py): it reads past
    any deadline, so a budget is spent at the planner's first look at it, however fast the machine.
    CITYGATE_PLANNING_TIMEOUT=5: refused with its code; 0 (no budget): planned and answered."""
    monkeypatch.setattr(build, "time", SimpleNamespace(monotonic=lambda: float("inf")))
    monkeypatch.setenv("CITYGATE_PLANNING_TIMEOUT", budget)
    # a plan with choices of routes through every subgraph: the planner looks at its clock
    many_routes = (
        "{ districts { name freeSpots spots { id name district { name freeSpots code } } }"
        " residents { name bookings { hours } district { name freeSpots spots { id } } } }"
    )
    limits = settings_from_environment().http_limits()
    gateway = AppServer(create_app(GatewayState(Engine.from_sdl(world_server.supergraph())), limits=limits)).start()
    try:
        response = httpx.post(
            gateway.base_url + "/graphql",
            json={"query": many_routes},
            headers={"accept": "application/graphql-response+json"},
        )
        if budget == "0":
            assert response.status_code == 200 and "errors" not in response.json(), response.text[:300]
        else:
            refused(response, "QUERY_PLANNING_BUDGET_EXCEEDED")
        assert httpx.get(
            gateway.base_url + "/graphql",
            params={"query": "{ __typename }"},
            headers={"apollo-require-preflight": "true"},
        ).json() == {"data": {"__typename": "Query"}}
    finally:
        gateway.stop()


def test_introspection_is_for_identified_clients_in_production(production, development, configured):
    introspection = "{ __schema { queryType { name } } }"
    refused(post_graphql(production, introspection)[0], "INTROSPECTION_DISABLED")
    refused(
        post_graphql(
            production, 'query Q { ...Schema } fragment Schema on Query { __type(name: "District") { name } }'
        )[0],
        "INTROSPECTION_DISABLED",
    )
    answered = post_graphql(production, introspection, key=CLIENT_KEY)[0]
    assert answered.status_code == 200 and answered.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    assert post_graphql(production, "{ __typename }")[0].json()["data"] == {"__typename": "Query"}
    public_in_dev = post_graphql(development, introspection)[0]
    assert public_in_dev.status_code == 200 and public_in_dev.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    refused(post_graphql(configured, introspection, key=CLIENT_KEY)[0], "INTROSPECTION_DISABLED")


def test_suggestions_are_stripped_unless_enabled(production, development, configured):
    typo = "{ districts { nme } }"
    stripped = refused(post_graphql(production, typo)[0], "GRAPHQL_VALIDATION_FAILED")
    assert "nme" in stripped and "Did you mean" not in stripped and "name" not in stripped.replace("nme", ""), stripped
    assert "Did you mean 'name'" in refused(post_graphql(development, typo)[0], "GRAPHQL_VALIDATION_FAILED")
    assert "Did you mean 'name'" in refused(post_graphql(configured, typo)[0], "GRAPHQL_VALIDATION_FAILED")
