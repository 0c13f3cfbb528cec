"""GraphQL over HTTP: methods, media types, status codes, GraphiQL and health endpoints."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.http import GatewayState, create_app

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def client(engine):
    state = GatewayState(engine, development=True)
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        client.state = state  # type: ignore[attr-defined]
        yield client


async def post(client, body, accept: str | None = GRAPHQL_RESPONSE, content_type: str = "application/json"):
    headers = {
        "content-type": content_type,
        "apollo-require-preflight": "true",
    }  # CSRF prevention: tests/http/test_csrf.py
    if accept:
        headers["accept"] = accept
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post("/graphql", content=content, headers=headers)


async def test_post_query(client):
    response = await post(client, {"query": "{ districts { code } }"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    # development mode (the fixture's): the estimated cost in the extensions, 10 districts × 1
    assert response.json() == {
        "data": {"districts": [{"code": "75105"}, {"code": "75111"}, {"code": "75118"}]},
        "extensions": {"cost": {"estimated": 10}},
    }


async def test_post_with_variables_and_operation_name(client):
    response = await post(
        client,
        {
            "query": "query A { districts { code } } query B($c: String!) { district(code: $c) { name } }",
            "operationName": "B",
            "variables": {"c": "75111"},
        },
    )
    assert response.json() == {"data": {"district": {"name": "Popincourt"}}, "extensions": {"cost": {"estimated": 1}}}


async def test_get_query_and_get_mutation(client):
    response = await client.get(
        "/graphql",
        params={"query": "query($c: String!) { district(code: $c) { name } }", "variables": '{"c":"75105"}'},
        headers={"apollo-require-preflight": "true"},
    )
    assert response.status_code == 200 and response.json()["data"]["district"]["name"] == "Panthéon"
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { renameResident(id: "r1", name: "x") { id } }'},
        headers={"accept": GRAPHQL_RESPONSE, "apollo-require-preflight": "true"},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("query", "code"),
    [("{ districts { code }", "GRAPHQL_PARSE_FAILED"), ("{ districts { nope } }", "GRAPHQL_VALIDATION_FAILED")],
)
async def test_document_errors_are_400_with_graphql_response_and_200_with_json(client, query, code):
    strict = await post(client, {"query": query})
    assert strict.status_code == 400
    assert strict.json()["errors"][0]["extensions"]["code"] == code
    assert "data" not in strict.json()
    legacy = await post(client, {"query": query}, accept="application/json")
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        ({"variables": {}}, "application/json", 400),
        ({"query": "{ districts { code } }", "variables": [1]}, "application/json", 400),
        ([{"query": "{ districts { code } }"}], "application/json", 400),
        (b"query=x", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_malformed_requests(client, body, content_type, status):
    response = await post(client, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_oversized_bodies_are_refused(client):
    response = await post(client, {"query": "{ districts { code } }", "pad": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 413


async def test_unacceptable_media_type(client):
    response = await post(client, {"query": "{ districts { code } }"}, accept="text/csv")
    assert response.status_code == 406


async def test_bad_variables(client):
    response = await post(
        client, {"query": "query($c: String!) { district(code: $c) { name } }", "variables": {"c": 3}}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_planning_failure_answers_data_null(client, engine, monkeypatch):
    from gateway.planner import PlanningError

    def fail(*_args, **_kwargs):
        raise PlanningError("no route")

    monkeypatch.setattr(engine.planner, "plan", fail)
    response = await post(client, {"query": "{ districts { code } }"})
    assert response.status_code == 200
    assert response.json() == {
        "errors": [{"message": "no route", "extensions": {"code": "QUERY_PLANNING_FAILED"}}],
        "data": None,
    }


async def test_internal_faults_say_nothing_of_their_cause(client, engine, monkeypatch):
    async def explode(*_args, **_kwargs):
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(engine, "run", explode)
    response = await post(client, {"query": "{ districts { code } }"})
    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_query_plan_on_request_in_development_mode(client):
    body = {"query": "{ residents { bookings { hours } } }"}
    plain = await post(client, body)
    assert plain.json()["extensions"] == {"cost": {"estimated": 110}}  # residents × (1 + bookings × 1)
    response = await client.post("/graphql", json=body, headers={"x-citygate-query-plan": "1"})
    nodes = response.json()["extensions"]["queryPlan"]["nodes"]
    assert [n["subgraph"] for n in nodes] == ["residents", "parking"]
    assert response.json()["extensions"]["cost"] == {"estimated": 110}
    client.state.development = False
    response = await client.post("/graphql", json=body, headers={"x-citygate-query-plan": "1"})
    assert "extensions" not in response.json()


async def test_graphiql_for_browsers(client):
    response = await client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 200
    assert "GraphiQL" in response.text


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).text == "ok"
    assert (await client.get("/readyz")).status_code == 200
    client.state.engine = None
    assert (await client.get("/readyz")).status_code == 503
    response = await post(client, {"query": "{ districts { code } }"})
    assert response.status_code == 503
