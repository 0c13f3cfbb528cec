"""The demo city's per-client schemas over HTTP, and GraphiQL loading the public's in Chromium.

Expectations from the demo's policy (gateway/demo.py) and the supergraph's annotations: a
personal field reaches a signed-in resident and any client (a resident may consent to any of its
purposes, any category), never the public; an aggregate, under open data, only a requester with
a budget (the public and the open-data portal).
"""

from __future__ import annotations

import httpx
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    build_client_schema,
    get_introspection_query,
    validate_schema,
)

from gateway.demo import CLIENTS, demo_policy
from gateway.policy import parse_policy
from gateway.privacy import PrivacySchema
from gateway.supergraph import load_supergraph
from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.e2e.test_demo import ROOT, demo  # noqa: F401  (the running demo fixture)

INTROSPECTION = get_introspection_query(descriptions=True)


def fields_of(schema) -> set[str]:
    return {
        f"{name}.{field}"
        for name, named in schema.type_map.items()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not name.startswith("__")
        for field in named.fields
    }


def introspect(url: str, headers: dict) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": INTROSPECTION}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_every_demo_client_introspects_a_valid_schema_of_what_it_could_receive(demo, tmp_path):  # noqa: F811
    url, credentials, _ = demo
    supergraph = httpx.get(
        f"{url}/admin/supergraph", headers={"authorization": f"Bearer {credentials['operator_key']}"}, timeout=30
    ).text
    policy = parse_policy(
        demo_policy(credentials["clients"], tmp_path / "jwks.json")
    )  # the demo's, its privacy section included
    model = load_supergraph(supergraph, policy.privacy)
    annotations = PrivacySchema(model)
    every = fields_of(model.api_schema)
    personal = {c for c in every if annotations.personal(*c.split(".")) is not None}
    aggregates = {c for c in every if annotations.aggregate(*c.split(".")) is not None}
    assert "Resident.email" in personal and "District.averageAge" in aggregates

    shown: dict[str, set[str]] = {}
    requesters = {"public": {}, "resident": {"authorization": f"Bearer {credentials['residents']['r0001']}"}}
    requesters |= {
        client: {"x-api-key": key, "x-citygate-purpose": CLIENTS[client]["purposes"][0]}
        for client, key in credentials["clients"].items()
    }
    for name, headers in requesters.items():
        schema = build_client_schema(introspect(url, headers))
        assert validate_schema(schema) == [], name
        shown[name] = fields_of(schema)
        assert shown[name] <= every, name
    assert not shown["public"] & personal
    assert "District.averageAge" in shown["public"] and "District.averageAge" in shown["open-data-portal"]
    for client in CLIENTS:
        # with consent any personal field could reach it; no budget of its own, no aggregate
        assert personal <= shown[client], client
        assert ("District.averageAge" in shown[client]) == (client in policy.open_data.clients), client
    assert personal <= shown["resident"]
    # types with nothing left for the public are gone, with the fields that lead to them
    public_types = set(build_client_schema(introspect(url, {})).type_map)
    assert {"Booking", "Vehicle", "Reservation"}.isdisjoint(public_types)
    assert {"Resident.parkingBookings", "Resident.vehicles", "Resident.dinnerReservations"}.isdisjoint(shown["public"])


def test_graphiql_loads_the_publics_schema_in_a_browser(demo):  # noqa: F811
    from playwright.sync_api import sync_playwright

    assert (ROOT / ".citygate" / "graphiql" / "graphiql.min.js").is_file(), "run make: it fetches GraphiQL's files"
    url, _, _ = demo
    answers: list[dict] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()

            def record(response) -> None:
                if (
                    response.url.endswith("/graphql")
                    and response.request.method == "POST"
                    and "__schema" in (response.request.post_data or "")
                ):
                    answers.append(response.json())

            page.on("response", record)
            page.goto(f"{url}/graphql", wait_until="load")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            for _ in range(80):  # GraphiQL introspects once its page has loaded
                if answers:
                    break
                page.wait_for_timeout(250)
            assert answers, "GraphiQL sent no introspection"
            # the schema GraphiQL received: the public's, valid, without a resident's e-mail
            schema = build_client_schema(answers[0]["data"])
            assert validate_schema(schema) == []
            assert "District.name" in fields_of(schema) and "Resident.email" not in fields_of(schema)
            # and GraphiQL took it: the documentation explorer lists the root fields
            page.click("button[aria-label='Show Documentation Explorer']")
            page.wait_for_selector(".graphiql-doc-explorer", timeout=20_000)
            page.wait_for_function(
                "document.querySelector('.graphiql-doc-explorer').innerText.includes('Query')", timeout=20_000
            )
        finally:
            browser.close()
