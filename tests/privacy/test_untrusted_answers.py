"""A partner's answer never decides whose data a value is (issue 11, classes 1 and 3).

The privacy world's city behind a real gateway, plus a loyalty start-up (`perks`, owner `perks`)
registered over the admin API with its own partner key: a real Strawberry subgraph over loopback
whose answers each test rewrites as an attacker would (tests/privacy/hostile.py). The requester
is resident r1 (or the public); r2 never consented to anything, so none of r2's personal values
may reach them, whatever the partner answers.
"""

from __future__ import annotations

import json

import pytest

from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document
from tests.privacy.hostile import SHADOWING, HostilePartner

R2_VALUES = ("jean@example.org", "+33 6 98 76 54 32", "Jean Valjean", "EF-456-GH")


@pytest.fixture(scope="module")
def perks():
    partner = HostilePartner().start()
    yield partner
    partner.stop()


async def _admin(city: City, method: str, path: str, key: str, body: dict | None = None):
    return await city.client.request(method, path, json=body, headers={"authorization": f"Bearer {key}"})


@pytest.fixture
async def city(tmp_path, privacy_world, signer, perks):
    """The privacy world's gateway with `perks` registered by its owner, honest until a test says otherwise."""
    world.reset()
    perks.reset()
    policy = policy_document(signer.jwks_file)
    policy["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}  # the partner runs on loopback
    running = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), policy, signer
    )
    try:
        created = await _admin(running, "POST", "/admin/partners", OPERATOR_KEY, {"name": "perks"})
        running.partner_key = created.json()["key"]  # type: ignore[attr-defined]
        registered = await _admin(
            running,
            "PUT",
            "/admin/connectors/perks",
            running.partner_key,  # type: ignore[attr-defined]
            {"owner": "perks", "kind": "subgraph", "url": perks.url},
        )
        assert registered.status_code == 200, registered.text
        yield running
    finally:
        await running.close()


def _leaked(answer: dict, values=R2_VALUES) -> list[str]:
    text = json.dumps(answer, ensure_ascii=False)
    return [value for value in values if value in text]


def _partner_said(perks: HostilePartner, key: str) -> bool:
    """Whether the partner's answers (as sent to the gateway) carried `key` somewhere."""
    return any(f'"{key}"' in json.dumps(answer) for answer in perks.answers)


async def test_an_extra_subject_key_in_an_entities_answer_is_dropped(city, perks):
    perks.add_to_entities(_cg_subject="r1")  # "this resident is r1", about r2
    answer = await city.ask('{ resident(id: "r2") { email phone loyaltyTier } }', resident="r1")
    assert _partner_said(perks, "_cg_subject")
    assert _leaked(answer) == []
    assert answer["data"]["resident"]["email"] == "j***@example.org"  # r2's, withheld from r1
    reasons = {tuple(w["path"]): w["reason"] for w in answer["extensions"]["privacy"]["withheld"]}
    assert reasons[("resident", "email")] == "no-consent"


async def test_an_extra_id_key_cannot_rename_the_object(city, perks):
    # the client's own plain `id` stands for the subject: a partner adding `id` must not change it
    perks.add_to_entities(id="r1")
    answer = await city.ask('{ resident(id: "r2") { id email loyaltyTier } }', resident="r1")
    assert _partner_said(perks, "id")
    assert _leaked(answer) == []
    assert answer["data"]["resident"]["id"] != "r1"
    assert answer["data"]["resident"]["email"] == "j***@example.org"


async def test_a_reserved_key_deep_below_another_subgraphs_field_is_dropped(city, perks):
    # r2's bookings come from parking; perks answers later, with r2's booking objects claimed for r1
    perks.delay = 0.3
    perks.add_to_entities(bookings=[{"_cg_subject": "r1"}, {"_cg_subject": "r1"}])
    answer = await city.ask('{ resident(id: "r2") { loyaltyTier bookings { plate amount } } }', resident="r1")
    assert _partner_said(perks, "bookings")
    assert _leaked(answer) == []
    assert [b["amount"] for b in answer["data"]["resident"]["bookings"]] == [None, None]
    assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"no-consent"}


async def test_a_contributor_count_deep_in_an_answer_cannot_lift_an_aggregate_above_k(city, perks):
    # Popincourt has one resident (r4): its average birth year is r4's birth year, published to
    # no one below k = 2 contributors (r4 asks here, so that the district itself is theirs to see)
    perks.delay = 0.3
    perks.add_to_entities(district={"_cg_count_averageBirthYear": 99})
    answer = await city.ask('{ resident(id: "r4") { loyaltyTier district { averageBirthYear } } }', resident="r4")
    assert _partner_said(perks, "_cg_count_averageBirthYear")
    assert answer["data"]["resident"]["district"] == {"averageBirthYear": None}
    assert [(w["path"], w["reason"]) for w in answer["extensions"]["privacy"]["withheld"]] == [
        (["resident", "district", "averageBirthYear"], "below-k")
    ]


async def test_reserved_keys_at_every_depth_of_a_partners_answers_change_nothing(city, perks):
    query = '{ favouriteResident { id email loyaltyTier district { averageBirthYear } } resident(id: "r2") { email loyaltyTier } }'
    perks.favourite = "r2"
    honest = await city.ask(query, resident="r1")
    perks.add_everywhere(
        _cg_subject="r1", _cg_count_averageBirthYear=99, _cg_1_id="r1", id="r1", email="planted@example.org"
    )
    tampered = await city.ask(query, resident="r1")
    assert _partner_said(perks, "_cg_1_id")
    assert tampered["data"] == honest["data"]
    assert tampered["extensions"] == honest["extensions"]
    assert _leaked(tampered) == [] and "planted" not in json.dumps(tampered)


async def test_a_subject_the_answer_gives_twice_differently_is_a_conflict(city, perks):
    # perks resolves favouriteResident, and with it Resident.id: asked for it under the client's
    # alias and under the gateway's `_cg_subject`, it answers r2 for the one and r1 for the other
    perks.favourite = "r2"

    def claim_r1(_request: dict, answer: dict) -> None:
        favourite = (answer.get("data") or {}).get("favouriteResident")
        if isinstance(favourite, dict) and "_cg_subject" in favourite:
            favourite["_cg_subject"] = "r1"

    perks.rewrite(claim_r1)
    answer = await city.ask("{ favouriteResident { myid: id email phone } }", resident="r1")
    assert _partner_said(perks, "_cg_subject")
    assert _leaked(answer) == []
    assert "amelie@example.org" not in json.dumps(answer)  # not r1's either: whose data it is is unknown
    resident = answer["data"]["favouriteResident"]
    assert resident["email"] != "jean@example.org" and resident["phone"] != "+33 6 98 76 54 32"
    withheld = answer["extensions"]["privacy"]["withheld"]
    conflicts = {tuple(w["path"]) for w in withheld if w["reason"] == "subject-conflict"}
    assert {("favouriteResident", "email"), ("favouriteResident", "phone")} <= conflicts
    assert all(set(w) == {"path", "category", "reason", "strategy"} for w in withheld)  # never the value
    assert 'example.org"' not in json.dumps(withheld)


async def test_the_same_request_without_tampering_is_answered_in_full(city, perks):
    # the control case of the conflict above: an honest partner, the requester's own data
    answer = await city.ask("{ favouriteResident { myid: id email } }", resident="r1")
    assert answer["data"]["favouriteResident"]["email"] == "amelie@example.org"


RESERVED = {
    "field": 'type Resident @key(fields: "id") { id: ID! _cg_subject: ID }',
    "type": "type Query { perk: _CG_Perk } type _CG_Perk { id: ID }",
    "argument": "type Query { perk(_cg_for: ID): String }",
    "enum value": "type Query { tier: Tier } enum Tier { GOLD _cg_count_x }",
    "input field": "type Query { perk(where: Filter): String } input Filter { _Cg_subject: ID }",
    "directive": "directive @_cg_mark(_cg_why: String) on FIELD_DEFINITION type Query { perk: String @_cg_mark }",
}


@pytest.mark.parametrize("where", list(RESERVED))
async def test_a_registration_naming_anything_with_the_reserved_prefix_is_refused(city, perks, where):
    sdl = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])\n' + RESERVED[where]
    response = await _admin(
        city,
        "PUT",
        "/admin/connectors/perks-extra",
        city.partner_key,
        {"owner": "perks", "kind": "subgraph", "url": perks.url, "sdl": sdl},
    )
    assert response.status_code == 422, response.text
    errors = [e for e in response.json()["errors"] if e["code"] == "RESERVED_NAME"]
    assert errors and all(e["subgraph"] == "perks-extra" and e["locations"][0]["line"] == 2 for e in errors)
    assert (await city.ask("{ __typename }"))["data"] == {"__typename": "Query"}  # the running supergraph is untouched


async def test_a_partner_serving_a_field_named_like_the_gateways_subject_key_is_refused(city):
    # a real subgraph whose Resident has a field `_cg_subject`, read through its `_service { sdl }`
    shadowing = HostilePartner(SHADOWING).start()
    try:
        response = await _admin(
            city,
            "PUT",
            "/admin/connectors/perks-shadow",
            city.partner_key,
            {"owner": "perks", "kind": "subgraph", "url": shadowing.url},
        )
    finally:
        shadowing.stop()
    assert response.status_code == 422, response.text
    (error,) = [e for e in response.json()["errors"] if e["code"] == "RESERVED_NAME"]
    assert "_cg_subject" in error["message"] and error["subgraph"] == "perks-shadow" and error["locations"]
