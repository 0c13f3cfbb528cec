"""Residents' rights across every connector, against the demo city in this process (its partners'
subgraph and REST APIs on a loopback server): `me { export }` holds every annotated field of the
resident from each connector and nothing of anyone else; `requestErasure` reaches each connector
that holds residents' data, whose demo handlers delete the resident's rows."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from graphql import GraphQLObjectType, get_named_type
from rich.console import Console

from gateway.demo import demo_gateway
from gateway.sdk_erasure import ERASURE_TOKEN_HEADER, ERASURE_TOKEN_TYPE
from tests.world.server import AppServer, free_port

ROOT = Path(__file__).resolve().parents[2]
EXPORT = "{ me { export } }"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo-rights")
    gateway = demo_gateway(ROOT / "connectors", "127.0.0.1", free_port(), Console(quiet=True), state_dir=state)
    server = AppServer(gateway.app, lifespan="on").start()
    # the demo partners read the gateway's JWKS where it listens: AppServer chose its own port
    os.environ["CITYGATE_DEMO_GATEWAY_URL"] = server.base_url
    credentials = json.loads((state / "demo-credentials.json").read_text())  # written once started
    yield server.base_url, credentials, gateway
    server.stop()
    os.environ.pop("CITYGATE_DEMO_GATEWAY_URL", None)


def ask(city, resident: str, query: str) -> dict:
    url, credentials, _ = city
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query},
        headers={"authorization": f"Bearer {credentials['residents'][resident]}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _records(export: dict) -> list[tuple[str, dict]]:
    return [(name, record) for name, connector in export["connectors"].items() for record in connector["records"]]


def test_the_export_holds_every_annotated_field_of_the_resident_from_each_connector(city):
    _, _, gateway = city
    answer = ask(city, "r0001", EXPORT)
    assert "errors" not in answer, answer
    export = answer["data"]["me"]["export"]
    assert export["format"] == "citygate-export/1" and export["subject"] == "r0001" and export["incomplete"] == []

    engine = gateway.state.engine
    model, privacy = engine.model, engine.privacy
    api = model.api_schema
    records = _records(export)
    by_type: dict[str, set[str]] = {}
    for _, record in records:
        by_type.setdefault(record["type"], set()).update(v["coordinate"] for v in record["values"])

    # every type with a subject that the resident's entity reaches, where the resident has data,
    # is in the export; the expected set is read from the supergraph, not written here
    resident_type = api.get_type("Resident")
    reached = {
        get_named_type(definition.type).name
        for definition in resident_type.fields.values()
        if isinstance(get_named_type(definition.type), GraphQLObjectType)
        and privacy.view.is_link(get_named_type(definition.type).name)
    }
    resident_values = {
        v["coordinate"]: v["value"] for name, r in records if r["type"] == "Resident" for v in r["values"]
    }
    for field_name, definition in resident_type.fields.items():
        named = get_named_type(definition.type).name
        if named in reached and resident_values.get(f"Resident.{field_name}"):
            assert named in by_type, f"Resident.{field_name} has the resident's {named}s, not in the export"

    for type_name, coordinates in by_type.items():
        object_type = api.get_type(type_name)
        expected = {
            f"{type_name}.{name}"
            for name, definition in object_type.fields.items()
            if privacy.personal(type_name, name) is not None
            and privacy.aggregate(type_name, name) is None
            and not any(a.type.__class__.__name__ == "GraphQLNonNull" for a in definition.args.values())
        }
        assert expected <= coordinates, f"{type_name}: missing {sorted(expected - coordinates)}"
    # each value carries the category the supergraph gives it (null: declared non-personal)
    for _, record in records:
        for value in record["values"]:
            type_name, field_name = value["coordinate"].split(".")
            personal = privacy.personal(type_name, field_name)
            assert value["category"] == (personal.category if personal is not None else None)

    # every connector holding the resident's data is there, under its owner: GraphQL subgraphs,
    # REST connectors and the in-process city alike
    assert {name: c["owner"] for name, c in export["connectors"].items()} == {
        "bikes": "cyclo",
        "city": "city",
        "dining": "tablehote",
        "neighbourhood": "voisinage",
        "parking": "parkr",
    }


def test_the_export_over_a_rest_connector_matches_the_partners_own_data(city):
    export = ask(city, "r0001", EXPORT)["data"]["me"]["export"]
    bikes = sys.modules["citygate_connector_bikes"].DATA  # Cyclo's REST API, as it holds its data
    rentals = {r["id"]: r for r in bikes["rentals"].values() if r["resident_id"] == "r0001"}
    exported = {
        next(v["value"] for v in record["values"] if v["coordinate"] == "BikeRental.id"): {
            v["coordinate"]: v["value"] for v in record["values"]
        }
        for record in export["connectors"]["bikes"]["records"]
        if record["type"] == "BikeRental"
    }
    assert set(exported) == set(rentals) and rentals
    for rental_id, values in exported.items():
        assert values["BikeRental.startedAt"] == rentals[rental_id]["started_at"]
        assert (
            values["BikeRental.priceCents"] == rentals[rental_id]["price_cents"]
        )  # user.financial: the resident's own, unmasked
        assert values["BikeRental.fromStation"] == {
            "id": rentals[rental_id]["from_station"]
        }  # a station: named by its key


def test_the_export_holds_nothing_of_anyone_else(city):
    export = ask(city, "r0001", EXPORT)["data"]["me"]["export"]
    for _, record in _records(export):
        subject_values = [
            v["value"]
            for v in record["values"]
            if v["category"] == "user.unique_id" and isinstance(v["value"], str) and re.fullmatch(r"r\d{4}", v["value"])
        ]
        assert set(subject_values) <= {"r0001"}
    text = json.dumps(export)
    # r0001 posted j0001, which r0002 took, and booked r0002's dinner d0001: neither r0002 nor
    # any other resident's id, name or e-mail is in r0001's export
    assert set(re.findall(r"\br\d{4}\b", text)) == {"r0001"}
    other = ask(city, "r0002", '{ resident(id: "r0002") { name email phone address } }')["data"]["resident"]
    for value in other.values():
        assert value not in text

    # the export is audited like a disclosure: to the client it was handed to, with the coordinates, no value
    disclosures = ask(city, "r0001", "{ me { disclosures(limit: 50) { recipient purpose fields basis } } }")["data"][
        "me"
    ]["disclosures"]
    audited = [d for d in disclosures if d["purpose"] == "export"]
    assert audited and audited[0]["recipient"] == "city-app" and audited[0]["basis"] == ["self:export"]
    assert "Resident.email" in audited[0]["fields"] and not any("@" in f for f in audited[0]["fields"])


def test_an_export_needs_a_signed_in_resident(city):
    url, _, _ = city
    public = httpx.post(f"{url}/graphql", json={"query": EXPORT}, timeout=30).json()
    assert public["data"]["me"] is None
    refused = httpx.post(f"{url}/graphql", json={"query": "mutation { requestErasure { id } }"}, timeout=30).json()
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_erasure_reaches_each_connector_holding_the_residents_data(city):
    resident = "r0002"  # hosts d0001 and took j0001; erased last in this module
    modules = {
        name: sys.modules[f"citygate_connector_{name}"].DATA for name in ("bikes", "dining", "neighbourhood", "parking")
    }

    def held() -> dict[str, int]:
        return {
            "bikes": sum(r["resident_id"] == resident for r in modules["bikes"]["rentals"].values()),
            "dining": sum(r["guest"] == resident for r in modules["dining"]["reservations"].values())
            + sum(d["host"] == resident for d in modules["dining"]["dinners"].values()),
            "neighbourhood": sum(
                j["poster"] == resident or j["taker"] == resident for j in modules["neighbourhood"]["jobs"].values()
            ),
            "parking": sum(b["resident"] == resident for b in modules["parking"]["bookings"].values())
            + sum(v["owner"] == resident for v in modules["parking"]["vehicles"].values()),
        }

    assert sum(held().values()) > 0
    requested = ask(
        city, resident, "mutation { requestErasure { id via deliveries { connector owner status reason } } }"
    )
    assert "errors" not in requested, requested
    request = requested["data"]["requestErasure"]
    assert request["via"] == "city-app"
    assert {d["connector"]: d["status"] for d in request["deliveries"]} == {
        "bikes": "pending",
        "city": "retained",
        "dining": "pending",
        "neighbourhood": "pending",
        "parking": "pending",
    }
    statuses: dict[str, tuple[str, str | None]] = {}
    for _ in range(200):
        found = ask(
            city, resident, "{ me { erasureRequests { id deliveries { connector status reason attempts } } } }"
        )["data"]["me"]["erasureRequests"]
        statuses = {d["connector"]: (d["status"], d["reason"]) for d in found[0]["deliveries"]}
        if all(status != "pending" for status, _ in statuses.values()):
            break
        time.sleep(0.1)
    assert found[0]["id"] == request["id"]
    assert statuses == {
        "bikes": ("done", None),
        "city": ("retained", "legal-obligation"),
        "dining": ("done", None),
        "neighbourhood": ("done", None),
        "parking": ("done", None),
    }
    assert held() == {"bikes": 0, "dining": 0, "neighbourhood": 0, "parking": 0}  # the demo partners deleted the rows
    # each partner that received the resident's id is in the audit log
    disclosures = ask(city, resident, "{ me { disclosures(limit: 50) { recipient purpose fields basis } } }")["data"][
        "me"
    ]["disclosures"]
    assert {d["recipient"] for d in disclosures if d["purpose"] == "erasure"} == {
        "cyclo",
        "tablehote",
        "voisinage",
        "parkr",
    }
    # and the export now finds nothing of theirs at the partners
    export = ask(city, resident, EXPORT)["data"]["me"]["export"]
    partner_types = {r["type"] for name, r in _records(export) if name != "city"}
    assert partner_types <= {"Resident"}


def test_a_demo_partner_erases_only_on_the_gateways_signed_request(city):
    """Anyone on the network may reach a partner's erasure endpoint: without the gateway's token,
    with one signed by another key, or with one the gateway signed for another connector, nothing
    is erased (401); the gateway's own delivery is accepted (test_erasure_reaches_each_connector...)."""
    _, _, gateway = city
    rentals = sys.modules["citygate_connector_bikes"].DATA["rentals"]
    resident = min(
        r["resident_id"] for r in rentals.values() if r["resident_id"] not in ("r0001", "r0002", "r0003")
    )  # no other test's
    held = sum(r["resident_id"] == resident for r in rentals.values())
    assert held > 0
    endpoint = f"{os.environ['CITYGATE_DEMO_URL']}/rest/bikes/erasure"
    body = {
        "requestId": "2b6f1d2e-0000-4000-8000-000000000001",
        "residentId": resident,
        "requestedAt": "2026-11-30T05:00:00+00:00",
    }
    # the gateway's current key, where it keeps it (the store), and the kid it publishes
    with sqlite3.connect(gateway.store.engine.url.database) as database:
        kid, pem = database.execute("SELECT kid, pem FROM signing_keys WHERE retired_at IS NULL").fetchone()
    now = int(time.time())
    claims = {
        "iss": "citygate",
        "sub": resident,
        "requestId": body["requestId"],
        "iat": now,
        "exp": now + 300,
        "jti": "x",
    }
    headers = {"kid": kid, "typ": ERASURE_TOKEN_TYPE}
    impostor = ec.generate_private_key(ec.SECP256R1())
    attempts = {
        "no token": {},
        "not a JWT": {ERASURE_TOKEN_HEADER: "not-a-token"},
        "another key": {
            ERASURE_TOKEN_HEADER: jwt.encode({**claims, "aud": "bikes"}, impostor, algorithm="ES256", headers=headers)
        },
        "another connector": {
            ERASURE_TOKEN_HEADER: jwt.encode({**claims, "aud": "dining"}, pem, algorithm="ES256", headers=headers)
        },
        "another resident": {
            ERASURE_TOKEN_HEADER: jwt.encode(
                {**claims, "aud": "bikes", "sub": "r0003"}, pem, algorithm="ES256", headers=headers
            )
        },
        "expired": {
            ERASURE_TOKEN_HEADER: jwt.encode(
                {**claims, "aud": "bikes", "exp": now - 600}, pem, algorithm="ES256", headers=headers
            )
        },
        "a receipt's type": {
            ERASURE_TOKEN_HEADER: jwt.encode(
                {**claims, "aud": "bikes"},
                pem,
                algorithm="ES256",
                headers={**headers, "typ": "citygate-consent-receipt+jwt"},
            )
        },
    }
    for what, extra in attempts.items():
        response = httpx.post(endpoint, json=body, headers=extra, timeout=30)
        assert response.status_code == 401, (what, response.text)
    assert sum(r["resident_id"] == resident for r in rentals.values()) == held  # nothing erased
    # the same request, signed by the gateway's key for this connector: accepted
    signed = jwt.encode({**claims, "aud": "bikes"}, pem, algorithm="ES256", headers=headers)
    accepted = httpx.post(endpoint, json=body, headers={ERASURE_TOKEN_HEADER: signed}, timeout=30)
    assert accepted.status_code == 200 and accepted.json() == {"status": "done"}
    assert sum(r["resident_id"] == resident for r in rentals.values()) == 0
    # captured and sent again: refused (its jti was used)
    replayed = httpx.post(endpoint, json=body, headers={ERASURE_TOKEN_HEADER: signed}, timeout=30)
    assert replayed.status_code == 401, replayed.text
    # a kid the gateway does not publish (yet: a rotation another replica has not read): 503, so
    # the gateway sends it again later instead of recording a final refusal
    unknown = jwt.encode(
        {**claims, "aud": "bikes", "jti": "y"}, impostor, algorithm="ES256", headers={**headers, "kid": "not-published"}
    )
    later = httpx.post(endpoint, json=body, headers={ERASURE_TOKEN_HEADER: unknown}, timeout=30)
    assert later.status_code == 503, later.text


def test_aliases_run_one_export_and_one_erasure_request_per_resident(city):
    # a hundred aliases of `export` in one operation: one export runs, the others are refused
    aliased = "{ me { " + " ".join(f"e{n}: export" for n in range(20)) + " } }"
    answer = ask(city, "r0003", aliased)
    codes = {error["extensions"]["code"] for error in answer.get("errors", [])}
    assert codes == {"RATE_LIMITED"}  # (export is non-null: a refusal nulls `me`, as GraphQL says)
    disclosures = "{ me { disclosures(limit: 50) { purpose } } }"
    exports = [d for d in ask(city, "r0003", disclosures)["data"]["me"]["disclosures"] if d["purpose"] == "export"]
    assert len(exports) <= 1  # at most one export ran (the refusals may cancel it too), not twenty
    assert ask(city, "r0003", EXPORT)["data"]["me"]["export"]["subject"] == "r0003"  # and the next one runs
    # erasure aliased: one request, its deliveries, answered again while they are pending
    requested = ask(city, "r0003", "mutation { " + " ".join(f"r{n}: requestErasure {{ id }}" for n in range(5)) + " }")
    ids = {value["id"] for value in requested["data"].values()}
    assert len(ids) == 1, ids
