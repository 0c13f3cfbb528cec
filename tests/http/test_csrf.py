"""CSRF prevention as Apollo Router's: what a page could send without a preflight must prove it did not.

A browser sends GET, and POST with no content type or text/plain, application/x-www-form-urlencoded
or multipart/form-data, from any page without asking the server first; the gateway refuses such
an operation (400 CSRF_PREVENTED, before anything runs) unless it carries a required header.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.http import GatewayState, create_app
from gateway.settings import CsrfSettings, Settings
from tests.world.server import AppServer

GRAPHQL_RESPONSE = "application/graphql-response+json"
RENAME = 'mutation { renameResident(id: "r1", name: "Forged") { name } }'
READ_NAME = '{ resident(id: "r1") { name } }'


@pytest.fixture
def gateway(engine, world):
    """The gateway with its default settings (CSRF prevention on), over loopback HTTP."""
    server = AppServer(create_app(GatewayState(engine))).start()
    yield server.base_url
    server.stop()


def refused(answer: httpx.Response, header: str = "apollo-require-preflight") -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "CSRF_PREVENTED"
    assert header in error["message"]  # what to send instead
    assert "data" not in answer.json()


def name_of_r1(url: str) -> str:
    answer = httpx.post(url + "/graphql", json={"query": READ_NAME})
    return answer.json()["data"]["resident"]["name"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_mutation_a_form_could_post_is_refused_before_it_runs(gateway, world, content_type):
    before = name_of_r1(gateway)
    world.traffic.reset()
    answer = httpx.post(
        gateway + "/graphql",
        content=orjson.dumps({"query": RENAME}),
        headers={"content-type": content_type, "accept": GRAPHQL_RESPONSE},
    )
    refused(answer)
    assert sum(world.traffic.counts.values()) == 0  # no subgraph was asked anything
    assert name_of_r1(gateway) == before


def test_a_post_without_content_type_is_refused(gateway, world):
    world.traffic.reset()
    answer = httpx.post(
        gateway + "/graphql", content=orjson.dumps({"query": READ_NAME})
    )  # httpx sends no content type for bytes
    assert "content-type" not in answer.request.headers
    refused(answer)
    assert sum(world.traffic.counts.values()) == 0


def test_a_get_needs_a_header_only_a_preflighted_request_can_carry(gateway, world):
    params = {"query": READ_NAME}
    world.traffic.reset()
    refused(httpx.get(gateway + "/graphql", params=params))
    refused(
        httpx.get(gateway + "/graphql", params=params, headers={"apollo-require-preflight": ""})
    )  # empty: not proof
    assert sum(world.traffic.counts.values()) == 0
    for header in ("apollo-require-preflight", "x-apollo-operation-name"):
        answer = httpx.get(gateway + "/graphql", params=params, headers={header: "true"})
        assert answer.status_code == 200 and answer.json()["data"]["resident"]["name"], answer.text
    # a content type a browser must ask about first is proof too
    answer = httpx.get(gateway + "/graphql", params=params, headers={"content-type": "application/json"})
    assert answer.status_code == 200


def test_json_posts_pass_and_a_simple_one_with_the_header_meets_the_media_type_rule(gateway):
    assert httpx.post(gateway + "/graphql", json={"query": READ_NAME}).status_code == 200
    answer = httpx.post(
        gateway + "/graphql",
        content=orjson.dumps({"query": READ_NAME}),
        headers={"content-type": "text/plain", "apollo-require-preflight": "1"},
    )
    assert answer.status_code == 415 and answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_the_refusal_in_plain_json_too(gateway):
    answer = httpx.get(gateway + "/graphql", params={"query": READ_NAME}, headers={"accept": "application/json"})
    refused(answer)
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-request-id"]


def test_graphiql_still_opens_in_a_browser(gateway):
    page = httpx.get(gateway + "/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and "GraphiQL" in page.text


def test_the_operator_chooses_the_headers(engine, world):
    custom = AppServer(
        create_app(GatewayState(engine), settings=Settings(csrf=CsrfSettings(required_headers=["X-City-App"])))
    ).start()
    try:
        params = {"query": READ_NAME}
        assert httpx.get(custom.base_url + "/graphql", params=params, headers={"x-city-app": "1"}).status_code == 200
        refused(
            httpx.get(custom.base_url + "/graphql", params=params, headers={"apollo-require-preflight": "true"}),
            "x-city-app",
        )
    finally:
        custom.stop()


def test_the_operator_may_turn_it_off(engine, world):
    off = AppServer(create_app(GatewayState(engine), settings=Settings(csrf=CsrfSettings(enabled=False)))).start()
    try:
        assert httpx.get(off.base_url + "/graphql", params={"query": READ_NAME}).status_code == 200
    finally:
        off.stop()
