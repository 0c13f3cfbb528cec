"""Flows between subgraphs are disclosures too (issue 11, class 4).

Two hostile partners join the privacy world's city over the admin API, each with its own key:

- `courier` extends Resident with `deliveryNote`, which `@requires` the city's `address` and
  echoes it back; it declares its own field non-personal, which it may (it owns it alone). Without
  a decision on the flow, anyone reading `deliveryNote` reads a resident's address.
- `harvest` extends Resident (key `id`) with `newsletter`: the representation itself carries the
  resident's identifier to the partner, which keeps whatever it receives. (Keying Resident on the
  city's `email` instead is refused at registration: the city owns and annotates that field.)
  The test world publishes resident ids (its policy lists Resident.id as non-personal); here the
  city's policy keeps them personal, as they are by default.

A personal value goes into a representation only under SPEC.md's decision with the subgraph's
owner as recipient and the request's purpose; withheld, the representation never leaves, the
dependent field is null and listed (with the recipient); allowed, it is audited first.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
import strawberry

from gateway.sdk import privacy
from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document
from tests.privacy.hostile import COURIER, HostilePartner

COURIER_KEY = "ck_courier-app-test-key"


@strawberry.federation.type(keys=["id"], name="Resident")
class HarvestResident:
    id: strawberry.ID

    @strawberry.federation.field(directives=[privacy.NonPersonal()])
    def newsletter(self) -> str | None:
        return f"subscribed: {self.id}"

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> HarvestResident:
        return cls(id=id)


@strawberry.type
class HarvestQuery:
    @strawberry.field(directives=[privacy.NonPersonal()])
    def harvest_open(self) -> bool:
        return True


HARVEST = strawberry.federation.Schema(query=HarvestQuery, types=[HarvestResident], federation_version="2.5")

R2_ADDRESS = "3 Rue Mouffetard, 75005 Paris"


@pytest.fixture(scope="module")
def partners():
    courier, harvest = HostilePartner(COURIER).start(), HostilePartner(HARVEST).start()
    yield courier, harvest
    courier.stop()
    harvest.stop()


async def _admin(city: City, method: str, path: str, key: str, body: dict | None = None):
    return await city.client.request(method, path, json=body, headers={"authorization": f"Bearer {key}"})


def _policy(signer, *, ids_personal: bool = False) -> dict:
    policy = policy_document(signer.jwks_file)
    if ids_personal:  # a resident's id is personal data of that resident (default private)
        privacy_section = policy.setdefault("privacy", {})
        privacy_section["non_personal"] = [c for c in privacy_section.get("non_personal", []) if c != "Resident.id"]
    policy["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    # the courier's own app: a resident's consent to it is consent to the courier
    policy["clients"]["courier-app"] = {
        "name": "Courier",
        "purposes": ["service-delivery"],
        "roles": ["courier"],
        "partner": "courier",
        "api_key_sha256": hashlib.sha256(COURIER_KEY.encode()).hexdigest(),
    }
    return policy


async def _start(tmp_path, privacy_world, signer, partners, policy: dict) -> City:
    world.reset()
    running = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), policy, signer
    )
    running.database = tmp_path / "city.db"  # type: ignore[attr-defined]
    for name, partner in zip(("courier", "harvest"), partners, strict=True):
        partner.reset()
        created = await _admin(running, "POST", "/admin/partners", OPERATOR_KEY, {"name": name})
        registered = await _admin(
            running,
            "PUT",
            f"/admin/connectors/{name}",
            created.json()["key"],
            {"owner": name, "kind": "subgraph", "url": partner.url},
        )
        assert registered.status_code == 200, registered.text
    return running


@pytest.fixture
async def city(tmp_path, privacy_world, signer, partners):
    running = await _start(tmp_path, privacy_world, signer, partners, _policy(signer))
    yield running
    await running.close()


@pytest.fixture
async def strict_city(tmp_path, privacy_world, signer, partners):
    """The same city, with resident ids personal as they are by default."""
    running = await _start(tmp_path, privacy_world, signer, partners, _policy(signer, ids_personal=True))
    yield running
    await running.close()


def _received(partner: HostilePartner, value: str) -> bool:
    return any(value in json.dumps(request) for request in partner.requests)


def _withheld(answer: dict) -> dict[tuple, dict]:
    return {tuple(w["path"]): w for w in answer.get("extensions", {}).get("privacy", {}).get("withheld", [])}


def _audit(city: City, subject: str) -> list[tuple]:
    with sqlite3.connect(city.database) as connection:  # type: ignore[attr-defined]
        return connection.execute(
            "SELECT recipient, fields, basis FROM audit_log WHERE subject = ? ORDER BY seq", (subject,)
        ).fetchall()


async def test_a_required_address_never_reaches_a_partner_without_a_decision(city, partners):
    courier, _ = partners
    for asker in ({}, {"client": "city-app", "purpose": "service-delivery"}, {"resident": "r1"}):
        answer = await city.ask('{ resident(id: "r2") { deliveryNote } }', **asker)
        assert answer["data"]["resident"]["deliveryNote"] is None, asker
        entry = _withheld(answer)[("resident", "deliveryNote")]
        assert entry["recipient"] == "courier" and entry["reason"] == "no-consent"
        assert entry["category"] == "user.contact.address" and "value" not in entry
        assert R2_ADDRESS not in json.dumps(answer)
    assert not _received(courier, R2_ADDRESS)
    assert _audit(city, "r2") == []


async def test_a_key_that_is_personal_never_leaves_without_a_decision(strict_city, partners):
    city, (_, harvest) = strict_city, partners
    answer = await city.ask("{ residents { newsletter } }", client="city-app", purpose="service-delivery")
    assert [r["newsletter"] for r in answer["data"]["residents"]] == [None] * 4
    withheld = _withheld(answer)
    assert {w["recipient"] for w in withheld.values()} == {"harvest"}
    assert {w["category"] for w in withheld.values()} == {"user.unique_id"}
    assert not any("_entities" in json.dumps(r) for r in harvest.requests)  # nothing left to send
    # the resident's own request: their own id goes, audited (the key they are known by: they ask
    # the partner for what it holds about them); nobody else's
    answer = await city.ask("{ residents { newsletter } }", resident="r1")
    assert [r["newsletter"] for r in answer["data"]["residents"]] == ["subscribed: r1", None, None, None]
    sent = [json.dumps(request) for request in harvest.requests]
    assert any('"r1"' in text for text in sent) and not any(
        f'"{other}"' in text for text in sent for other in ("r2", "r3", "r4")
    )
    assert ("harvest", '["Resident.id"]', '["self"]') in _audit(city, "r1")


async def test_the_residents_own_request_sends_their_address_and_audits_the_flow(city, partners):
    courier, _ = partners
    # through the city's app, the resident's own address (a @requires input, not a key) does not go
    # to the courier: asking for a field is not consenting to the partner that resolves it
    answer = await city.ask('{ resident(id: "r2") { deliveryNote } }', resident="r2")
    assert answer["data"]["resident"]["deliveryNote"] is None
    assert _withheld(answer)[("resident", "deliveryNote")]["reason"] == "no-consent"
    assert not _received(courier, R2_ADDRESS) and _audit(city, "r2") == []
    # signed in to the courier's own app, the resident sends it to the service they use
    answer = await city.ask(
        '{ resident(id: "r2") { deliveryNote } me { disclosures { recipient fields basis } } }',
        resident="r2",
        client="courier-app",
    )
    assert answer["data"]["resident"]["deliveryNote"] == f"ring at {R2_ADDRESS}"
    assert _received(courier, R2_ADDRESS)
    assert ("courier", '["Resident.address"]', '["self"]') in _audit(city, "r2")
    listed = await city.ask("{ me { disclosures { recipient fields basis } } }", resident="r2")
    assert {"recipient": "courier", "fields": ["Resident.address"], "basis": ["self"]} in listed["data"]["me"][
        "disclosures"
    ]


async def test_a_consent_to_the_partners_client_allows_the_flow_until_it_is_withdrawn(city, partners):
    courier, _ = partners
    granted = await city.ask(
        'mutation { grantConsent(recipient: "courier-app", purpose: "service-delivery", categories: ["user.contact.address"]) { consent { id } } }',
        resident="r2",
    )
    consent_id = granted["data"]["grantConsent"]["consent"]["id"]
    answer = await city.ask('{ resident(id: "r2") { deliveryNote } }', client="city-app", purpose="service-delivery")
    assert answer["data"]["resident"]["deliveryNote"] == f"ring at {R2_ADDRESS}"
    assert ("courier", '["Resident.address"]', f'["consent:{consent_id}"]') in _audit(city, "r2")
    courier.requests.clear()
    await city.withdraw("r2", consent_id)
    answer = await city.ask('{ resident(id: "r2") { deliveryNote } }', client="city-app", purpose="service-delivery")
    assert answer["data"]["resident"]["deliveryNote"] is None
    assert _withheld(answer)[("resident", "deliveryNote")]["reason"] == "no-consent"
    assert not _received(courier, R2_ADDRESS)


async def test_a_flow_basis_names_the_recipient_and_the_sources(tmp_path, privacy_world, signer, partners):
    """`recipients:` in a legal basis covers flows to that owner only, of data from its `sources`."""
    harvest = partners[1]
    policy = _policy(signer, ids_personal=True)
    policy["legal_bases"].append(
        {
            "name": "courier-deliveries",
            "basis": "contract",
            "recipients": ["courier"],
            "purposes": ["service-delivery"],
            "categories": ["user.contact.address", "user.unique_id"],
            "sources": ["city", "courier", "harvest", "parking"],
        }
    )
    city = await _start(tmp_path, privacy_world, signer, partners, policy)
    try:
        answer = await city.ask(
            '{ resident(id: "r2") { deliveryNote newsletter } }', client="city-app", purpose="service-delivery"
        )
        assert answer["data"]["resident"]["deliveryNote"] == f"ring at {R2_ADDRESS}"
        assert answer["data"]["resident"]["newsletter"] is None  # the basis names the courier, not harvest
        assert not _received(harvest, "r2")
        assert ("courier", '["Resident.address","Resident.id"]', '["policy:courier-deliveries"]') in _audit(city, "r2")
        # another purpose: not covered
        answer = await city.ask('{ resident(id: "r2") { deliveryNote } }', client="parking-app", purpose="booking")
        assert answer["data"]["resident"]["deliveryNote"] is None
    finally:
        await city.close()
