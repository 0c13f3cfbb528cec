"""Demand control against `citygate serve` as a real process: an operation whose estimated cost
is over the limit is refused before it is planned, with COST_ESTIMATED_TOO_EXPENSIVE, at once.

The world's supergraph has no slicing arguments: every list counts `default_list_size` (10).
A field of an object type costs 1, a leaf 0, a list field its size times its subtree.
"""

from __future__ import annotations

import httpx
import pytest

from tests.http.edge import Probe, post_graphql, refused, serve_world, world_to_serve

CLIENT_KEY = "ck_cost-client"
QUICK = 1.0

ORDINARY = "{ districts { code name spots { id name } } }"  # 10 × (1 + 10 × 1) = 110


def fan_out(levels: int) -> str:
    """`levels` list levels of spots under districts, each through the spot's district."""
    return (
        "{ districts { spots { " + "district { spots { " * (levels - 1) + "id name" + " } }" * (levels - 1) + " } } }"
    )


THREE_LEVELS = fan_out(3)  # 10 × (1 + 10 × (1 + 1 + 10 × (1 + 1 + 10 × 1))) = 12,210
FIVE_LEVELS = fan_out(5)  # 1,222,210


@pytest.fixture(scope="module")
def served_world(world_server, tmp_path_factory):
    return world_to_serve(world_server, tmp_path_factory.mktemp("cost"), CLIENT_KEY, max_cost=100)


@pytest.fixture(scope="module")
def configured(served_world):
    running = serve_world(served_world, "--max-cost", "40", env={"CITYGATE_DEFAULT_LIST_SIZE": "2"})
    yield running
    running.stop()


def _answered(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    assert "errors" not in body and body["data"], body
    return body


def test_a_list_fan_out_is_refused_with_its_estimate_at_once_and_others_are_answered(production):
    with Probe(production.url) as probe:
        response, seconds = post_graphql(production, FIVE_LEVELS)
    message = refused(response, "COST_ESTIMATED_TOO_EXPENSIVE")
    assert "1,222,210" in message and "50,000" in message, message
    assert seconds < QUICK, f"refused after {seconds:.2f} s"
    probe.assert_kept_answering(worst=QUICK)
    _answered(post_graphql(production, ORDINARY)[0])
    _answered(post_graphql(production, THREE_LEVELS)[0])  # 12,210: under the default limit


def test_the_cost_limit_follows_the_configuration(configured):
    # default list size 2: the 3-level fan-out is 2 × (1 + 2 × (2 + 2 × (2 + 2))) = 42, the ordinary query 6
    message = refused(post_graphql(configured, THREE_LEVELS)[0], "COST_ESTIMATED_TOO_EXPENSIVE")
    assert "42" in message and "40" in message, message
    _answered(post_graphql(configured, ORDINARY)[0])


def test_a_client_of_the_policy_has_its_own_maximum(production):
    message = refused(post_graphql(production, ORDINARY, key=CLIENT_KEY)[0], "COST_ESTIMATED_TOO_EXPENSIVE")
    assert "110" in message and "100" in message, message
    _answered(
        post_graphql(production, '{ district(code: "75118") { name spots { id } } }', key=CLIENT_KEY)[0]
    )  # 1 + 10 × 1
    _answered(post_graphql(production, ORDINARY)[0])  # the public: the server's maximum


def test_the_estimate_is_in_the_extensions_in_development_mode_only(production, development):
    body = _answered(post_graphql(development, ORDINARY)[0])
    assert body["extensions"]["cost"] == {"estimated": 110}, body.get("extensions")
    assert _answered(post_graphql(development, '{ __typename district(code: "75118") { name } }')[0])["extensions"][
        "cost"
    ] == {"estimated": 1}
    assert "cost" not in (_answered(post_graphql(production, ORDINARY)[0]).get("extensions") or {})
