"""The policy file: validated with clear errors, and reloaded without a restart."""

from __future__ import annotations

import pytest
import yaml

from gateway.composition import SubgraphSource, compose
from gateway.policy import PolicyError, parse_policy
from tests.privacy.conftest import OPERATOR_KEY, policy_document


def test_every_problem_of_a_policy_is_listed():
    with pytest.raises(PolicyError) as failure:
        parse_policy(
            {
                "purposes": {"Bad Purpose": {}},
                "clients": {"app": {"purposes": ["nope"], "api_key_sha256": "xyz", "colour": "red"}},
                "legal_bases": [{"basis": "because", "roles": [], "purposes": [], "categories": ["user.soul"]}],
                "masking": {"default": "shred", "categories": {"user.contact": "blur"}},
                "aggregates": {"k": 1},
                "identity": {"issuers": [{"issuer": "x"}]},
                "privacy": {"fields": {"Resident.email": {"category": "user.nope"}}},
                "unknown": {},
            }
        )
    problems = "\n".join(failure.value.problems)
    for expected in (
        "purposes: 'Bad Purpose'",
        "clients.app: unknown key 'colour'",
        "clients.app.purposes: 'nope' is not declared",
        "clients.app.api_key_sha256 must be 64",
        "legal_bases[0].basis",
        '"user.soul" is not a data category',
        "a rule for everything is not a rule",
        "masking.default",
        "masking.categories.user.contact: 'blur'",
        "aggregates.k",
        "identity.issuers[0] needs issuer and audience",
        '"user.nope" is not a data category',
        "unknown key 'unknown'",
    ):
        assert expected in problems, expected


def test_the_masking_strategy_follows_the_most_specific_category():
    policy = parse_policy({"masking": {"default": "null", "categories": {"user.contact": "partial", "user.contact.address": "coarsen"}}})
    assert policy.strategy_for("user.contact.email", None) == "partial"
    assert policy.strategy_for("user.contact.address.street", None) == "coarsen"
    assert policy.strategy_for("user.financial", None) == "null"
    assert policy.strategy_for("user.contact.email", "pseudonymise") == "pseudonymise"


async def test_the_policy_reloads_without_a_restart(sqlite_city, signer):
    query = '{ resident(id: "r1") { email name } }'
    before = await sqlite_city.ask(query, client="stats-portal")
    assert before["data"]["resident"] == {"email": "a***@example.org", "name": None}
    document = policy_document(signer.jwks_file)
    document["masking"]["categories"]["user.contact.email"] = "null"
    document["legal_bases"].append(
        {"name": "statistics-names", "basis": "legitimate_interests", "roles": ["statistician"], "purposes": ["statistics"], "categories": ["user.name"],
         "sources": ["city"]}
    )
    document["clients"]["stats-portal"]["roles"] = ["statistician"]
    sqlite_city.policy_path.write_text(yaml.safe_dump(document))
    response = await sqlite_city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert response.status_code == 200, response.text
    after = await sqlite_city.ask(query, client="stats-portal")
    assert after["data"]["resident"] == {"email": None, "name": "Amélie Poulain"}


async def test_an_invalid_policy_is_refused_and_the_running_one_stays(sqlite_city):
    sqlite_city.policy_path.write_text("clients: {app: {purposes: [nope]}}\n")
    response = await sqlite_city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert response.status_code == 422
    assert "is not declared under purposes" in response.json()["errors"][0]["message"]
    still = await sqlite_city.ask('{ resident(id: "r1") { email } }', client="stats-portal")
    assert still["data"]["resident"]["email"] == "a***@example.org"


async def test_a_reload_needs_the_operator(sqlite_city):
    response = await sqlite_city.client.post("/admin/policy/reload")
    assert response.status_code == 403


PRIVACY = (
    'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])\n'
    '  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject"])\n'
    '  @composeDirective(name: "@personal") @composeDirective(name: "@subject")\n'
    "directive @personal(category: String!, strategy: String) on FIELD_DEFINITION\n"
    "directive @subject(field: String!) on OBJECT | INTERFACE\n"
)


@pytest.mark.parametrize(
    ("sdl", "code"),
    [
        (PRIVACY + 'type Query { me: Person } type Person { email: String @personal(category: "user.contact.email") }', "PRIVACY_SUBJECT_UNDETERMINED"),
        (PRIVACY + 'type Query { me: Person } type Person @subject(field: "uid") { id: ID! email: String @personal(category: "user.contact.email") }', "PRIVACY_SUBJECT_UNDETERMINED"),
        (PRIVACY + 'type Query { me: Person } type Person @subject(field: "id") { id: ID! email: String @personal(category: "user.mail") }', "PRIVACY_UNKNOWN_CATEGORY"),
        (PRIVACY + 'type Query { me: Person } type Person @subject(field: "id") { id: ID! email: String @personal(category: "user.contact.email", strategy: "shred") }', "PRIVACY_UNKNOWN_STRATEGY"),
        (
            PRIVACY.replace('@composeDirective(name: "@personal") ', "")
            + 'type Query { me: Person } type Person @subject(field: "id") { id: ID! email: String @personal(category: "user.contact.email") }',
            "PRIVACY_DIRECTIVE_NOT_COMPOSED",
        ),
    ],
)
def test_privacy_annotations_are_checked_at_composition(sdl, code):
    result = compose([SubgraphSource("people", sdl)])
    assert not result.ok
    assert code in {e.code for e in result.errors}, [str(e) for e in result.errors]
