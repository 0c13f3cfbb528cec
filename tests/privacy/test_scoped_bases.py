"""Legal bases scoped to their data: by source (whose data) and by path (reached through which field).

A basis covers a value only when every subgraph that can resolve its field belongs to an owner the
basis names in `sources`; with `paths`, only where the value's object was reached through one of
those fields. Real gateways over the privacy world (people and reports are the city's, parking is
a partner's), and a partner registering a new subgraph over loopback.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import strawberry
import yaml
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.policy import PolicyError, parse_policy
from gateway.sdk import privacy
from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document
from tests.world.server import AppServer

PARKING_CONTRACT = {
    "name": "parking-contract",
    "basis": "contract",
    "roles": ["partner"],
    "purposes": ["booking"],
    "categories": ["user.financial", "user.contact"],  # a city category too: the sources decide
    "sources": ["parking"],
}


@pytest.fixture
async def start_city(tmp_path, privacy_world, signer):
    """Starts a gateway over the privacy world with the given policy document; closes it after."""
    started: list[City] = []

    async def start(document: dict) -> City:
        world.reset()
        folder = connectors_folder(tmp_path / f"connectors-{uuid.uuid4().hex[:6]}", privacy_world)
        city = City(f"sqlite:///{tmp_path / f'city-{len(started)}.db'}", folder, document, signer)
        started.append(city)
        return city

    yield start
    for city in started:
        await city.close()


def _withheld(answer: dict) -> list[tuple[tuple, str, str]]:
    return sorted(
        (tuple(w["path"]), w["category"], w["reason"])
        for w in answer.get("extensions", {}).get("privacy", {}).get("withheld", [])
    )


async def _disclosures(city: City, resident: str) -> list[tuple[str, list[str], list[str]]]:
    answer = await city.ask("{ me { disclosures { recipient fields basis } } }", resident=resident)
    return [(d["recipient"], d["fields"], d["basis"]) for d in answer["data"]["me"]["disclosures"]]


# -- sources -----------------------------------------------------------------------------------------


async def test_a_partners_contract_covers_its_own_data_not_the_citys_of_a_covered_category(start_city, signer):
    document = policy_document(signer.jwks_file)
    document["legal_bases"].append(PARKING_CONTRACT)
    city = await start_city(document)

    answer = await city.ask(
        '{ bookings { id amount } resident(id: "r1") { email phone } }', client="parking-app", purpose="booking"
    )
    assert [b["amount"] for b in answer["data"]["bookings"]] == [4.5, 2.0, 3.5]  # the partner's own data: covered
    # the city's contact details are user.contact too, but not the partner's data: consent decides (none)
    assert answer["data"]["resident"] == {"email": "a***@example.org", "phone": "** ** ** ** 78"}
    assert _withheld(answer) == [
        (("resident", "email"), "user.contact.email", "no-consent"),
        (("resident", "phone"), "user.contact.phone_number", "no-consent"),
    ]
    assert await _disclosures(city, "r1") == [("parking-app", ["Booking.amount"], ["policy:parking-contract"])]

    # reached through the city's Resident, the partner's field is still the partner's data
    nested = await city.ask(
        '{ resident(id: "r2") { email bookings { amount } } }', client="parking-app", purpose="booking"
    )
    assert nested["data"]["resident"] == {"email": "j***@example.org", "bookings": [{"amount": 2.0}, {"amount": 3.5}]}
    assert _withheld(nested) == [(("resident", "email"), "user.contact.email", "no-consent")]


# A partner that registers later: tips residents left, an amount of the category a basis covers.
@strawberry.type(directives=[privacy.Subject(field="residentId")])
class Tip:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    resident_id: strawberry.ID
    amount: float | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])


@strawberry.type
class TipJarQuery:
    @strawberry.field
    def tips(self) -> list[Tip]:
        return [Tip(id=strawberry.ID("t1"), resident_id=strawberry.ID("r1"), amount=1.25)]


class _TipJar:
    """The tip jar's subgraph, served over loopback."""

    def __init__(self) -> None:
        schema = strawberry.federation.Schema(query=TipJarQuery, federation_version="2.5")
        self.server = AppServer(Starlette(routes=[Route("/graphql", GraphQL(schema), methods=["GET", "POST"])])).start()
        self.url = f"{self.server.base_url}/graphql"


@pytest.fixture
def tip_jar():
    partner = _TipJar()
    yield partner
    partner.server.stop()


async def test_a_field_a_new_partner_registers_is_not_covered_by_a_basis_naming_other_sources(
    start_city, signer, tip_jar
):
    document = policy_document(signer.jwks_file)
    document["legal_bases"].append(PARKING_CONTRACT)
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    city = await start_city(document)
    created = await city.client.post(
        "/admin/partners", json={"name": "tipjar"}, headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert created.status_code == 201, created.text
    registered = await city.client.put(
        "/admin/connectors/tips",
        json={"owner": "tipjar", "kind": "subgraph", "url": tip_jar.url},
        headers={"authorization": f"Bearer {created.json()['key']}"},
    )
    assert registered.status_code == 200, registered.text

    answer = await city.ask("{ tips { id amount } bookings { id amount } }", client="parking-app", purpose="booking")
    assert answer["data"]["tips"] == [{"id": "t1", "amount": None}]  # user.financial, but the tip jar's data
    assert [b["amount"] for b in answer["data"]["bookings"]] == [4.5, 2.0, 3.5]
    assert _withheld(answer) == [(("tips", 0, "amount"), "user.financial", "no-consent")]
    assert ("parking-app", ["Tip.amount"], ["policy:parking-contract"]) not in await _disclosures(city, "r1")


# -- paths ---------------------------------------------------------------------------------------------


def _technicians_through_reporters(signer) -> dict:
    document = policy_document(signer.jwks_file)
    document["legal_bases"][0]["paths"] = ["Incident.reporter"]  # residents as the reporters of incidents only
    return document


async def test_a_path_scoped_basis_covers_a_resident_only_as_a_reporter(start_city, signer):
    city = await start_city(_technicians_through_reporters(signer))

    reporters = await city.ask("{ incidents { id reporter { id email } } }", client="technician-console")
    assert [i["reporter"] for i in reporters["data"]["incidents"]] == [
        {"id": "r1", "email": "amelie@example.org"},
        {"id": "r2", "email": "jean@example.org"},
        {"id": "r3", "email": "cosette@example.org"},
    ]
    assert "extensions" not in reporters

    # the same technician, the same resident, reached another way: no basis, no consent
    directly = await city.ask('{ resident(id: "r2") { email } }', client="technician-console")
    assert directly["data"]["resident"] == {"email": "j***@example.org"}
    assert _withheld(directly) == [(("resident", "email"), "user.contact.email", "no-consent")]
    directory = await city.ask("{ residents { id email } }", client="technician-console")
    assert [r["email"] for r in directory["data"]["residents"]] == [
        "a***@example.org",
        "j***@example.org",
        "c***@example.org",
        None,
    ]
    assert _withheld(directory) == [(("residents", n, "email"), "user.contact.email", "no-consent") for n in range(3)]

    # both ways in one response, in either order: each position decided on its own
    for query in (
        '{ incidents { reporter { email } } resident(id: "r2") { email } }',
        '{ resident(id: "r2") { email } incidents { reporter { email } } }',
    ):
        both = await city.ask(query, client="technician-console")
        assert [i["reporter"]["email"] for i in both["data"]["incidents"]] == [
            "amelie@example.org",
            "jean@example.org",
            "cosette@example.org",
        ]
        assert both["data"]["resident"] == {"email": "j***@example.org"}
        assert _withheld(both) == [(("resident", "email"), "user.contact.email", "no-consent")]

    # the audit record names the rule, for the reporter positions only
    assert (
        await _disclosures(city, "r2")
        == [("technician-console", ["Resident.email"], ["policy:street-issues-public-task"])] * 3
    )

    # where the basis does not reach, the resident's consent still does
    await city.grant("r2", "technician-console", "street-maintenance", ["user.contact"])
    consented = await city.ask('{ resident(id: "r2") { email } }', client="technician-console")
    assert consented["data"]["resident"] == {"email": "jean@example.org"} and "extensions" not in consented


async def test_a_path_matches_the_parent_fields_coordinate_on_the_runtime_type_or_an_interface(start_city, signer):
    document = policy_document(signer.jwks_file)
    document["legal_bases"][0]["paths"] = ["Pothole.reporter"]  # potholes' reporters, not graffiti's
    city = await start_city(document)
    answer = await city.ask("{ feed { ... on Incident { id reporter { email } } } }", client="technician-console")
    emails = {item["id"]: item["reporter"]["email"] for item in answer["data"]["feed"] if item}
    assert emails == {"p1": "amelie@example.org", "g1": "j***@example.org", "p2": "cosette@example.org"}
    assert _withheld(answer) == [(("feed", 1, "reporter", "email"), "user.contact.email", "no-consent")]


# -- validation ----------------------------------------------------------------------------------------


def test_a_basis_without_sources_or_with_a_malformed_path_is_refused_at_parse(signer):
    document = policy_document(signer.jwks_file)
    del document["legal_bases"][0]["sources"]
    with pytest.raises(PolicyError) as missing:
        parse_policy(document)
    assert any("legal_bases[0].sources: a basis names whose data it covers" in p for p in missing.value.problems)

    for sources in ([], [""], "city", [3]):
        document["legal_bases"][0]["sources"] = sources
        with pytest.raises(PolicyError):
            parse_policy(document)

    document["legal_bases"][0]["sources"] = ["city", "a-partner-not-registered-yet"]  # may register later: no error
    document["legal_bases"][0]["paths"] = ["reporter"]
    with pytest.raises(PolicyError) as malformed:
        parse_policy(document)
    assert malformed.value.problems == ["legal_bases[0].paths: 'reporter' is not a schema coordinate Type.field"]


async def _reload(city: City, document: dict):
    city.policy_path.write_text(yaml.safe_dump(document))
    return await city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})


async def test_a_reload_refuses_a_basis_without_sources_or_with_an_unknown_path_and_the_running_policy_stays(
    start_city, signer
):
    city = await start_city(_technicians_through_reporters(signer))
    query = '{ incidents { reporter { email } } resident(id: "r2") { email } }'
    before = await city.ask(query, client="technician-console")

    unscoped = _technicians_through_reporters(signer)
    del unscoped["legal_bases"][0]["sources"]
    del unscoped["legal_bases"][0]["paths"]  # what would cover the whole directory again
    refused = await _reload(city, unscoped)
    assert refused.status_code == 422
    assert any("a basis names whose data it covers" in e["message"] for e in refused.json()["errors"])

    unknown = _technicians_through_reporters(signer)
    unknown["legal_bases"][0]["paths"] = ["Incident.reporter", "Incident.witness"]
    refused = await _reload(city, unknown)
    assert refused.status_code == 422
    message = refused.json()["errors"][0]["message"]
    assert "Incident.witness does not exist" in message and "POLICY_UNKNOWN_PATH" in message

    after = await city.ask(query, client="technician-console")
    assert after["data"] == before["data"] and after["data"]["resident"] == {"email": "j***@example.org"}
    assert [i["reporter"]["email"] for i in after["data"]["incidents"]][1] == "jean@example.org"


def test_the_demo_policy_scopes_every_basis():
    from gateway.demo import CLIENTS, demo_policy

    policy = parse_policy(demo_policy({client: "key" for client in CLIENTS}, Path("jwks.json")))
    scoped = {rule.name: (rule.sources, rule.paths) for rule in policy.legal_bases}
    assert scoped["street-issue-reporters-public-task"] == (frozenset({"city"}), frozenset({"StreetIssue.reporter"}))
    assert scoped["parkr-bookings-contract"][0] == frozenset({"parkr"})
    assert all(sources for sources, _ in scoped.values())
