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
    policy = parse_policy(
        {"masking": {"default": "null", "categories": {"user.contact": "partial", "user.contact.address": "coarsen"}}}
    )
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
        {
            "name": "statistics-names",
            "basis": "legitimate_interests",
            "roles": ["statistician"],
            "purposes": ["statistics"],
            "categories": ["user.name"],
            "sources": ["city"],
        }
    )
    document["clients"]["stats-portal"]["roles"] = ["statistician"]
    sqlite_city.policy_path.write_text(yaml.safe_dump(document))
    response = await sqlite_city.client.post(
        "/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert response.status_code == 200, response.text
    after = await sqlite_city.ask(query, client="stats-portal")
    assert after["data"]["resident"] == {"email": None, "name": "Amélie Poulain"}


async def test_an_invalid_policy_is_refused_and_the_running_one_stays(sqlite_city):
    sqlite_city.policy_path.write_text("clients: {app: {purposes: [nope]}}\n")
    response = await sqlite_city.client.post(
        "/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
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
        (
            PRIVACY
            + 'type Query { me: Person } type Person { email: String @personal(category: "user.contact.email") }',
            "PRIVACY_SUBJECT_UNDETERMINED",
        ),
        (
            PRIVACY
            + 'type Query { me: Person } type Person @subject(field: "uid") { id: ID! email: String @personal(category: "user.contact.email") }',
            "PRIVACY_SUBJECT_UNDETERMINED",
        ),
        (
            PRIVACY
            + 'type Query { me: Person } type Person @subject(field: "id") { id: ID! email: String @personal(category: "user.mail") }',
            "PRIVACY_UNKNOWN_CATEGORY",
        ),
        (
            PRIVACY
            + 'type Query { me: Person } type Person @subject(field: "id") { id: ID! email: String @personal(category: "user.contact.email", strategy: "shred") }',
            "PRIVACY_UNKNOWN_STRATEGY",
        ),
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


def test_problems_name_their_key_path_and_never_repeat_the_input():
    with pytest.raises(PolicyError) as failure:
        parse_policy(
            {
                "purposes": {"p": {"description": 3}},
                "clients": {
                    "app": {
                        "roles": "technician",
                        "collects_consent": "yes",
                        "rate_limit": float("nan"),
                        "api_key_sha256": "hunter2-not-a-hash",
                    }
                },
                "registry": {"max_timeout": True, "circuit_breaker": {"failures": -1}, "colour": "red"},
                "privacy": {"non_personal": ["A.b", "bad"]},
                "controller": "Ville de Paris",
            }
        )
    assert sorted(failure.value.problems) == [
        "clients.app.api_key_sha256 must be 64 lowercase hex digits",
        "clients.app.collects_consent must be true or false",
        "clients.app.rate_limit must be a number of requests per second (0: no limit)",
        "clients.app.roles must be a list",
        "controller must be a mapping",
        "privacy.non_personal[1]: 'bad' is not a schema coordinate Type.field",
        "purposes.p must be {description: text}",
        "registry.circuit_breaker.failures: must be a whole number between 0 (never opens) and 1000",
        "registry.max_timeout: must be a number between 0.001 and 300",
        "registry: unknown key 'colour'",
    ]
    assert "hunter2" not in str(failure.value)


def test_a_client_is_its_key_and_the_policy_cannot_change_once_read(monkeypatch):
    monkeypatch.setenv("CITYGATE_TEST_APP_KEY", "app-key-1")
    policy = parse_policy(
        {
            "purposes": {"p": None},
            "clients": {"app": {"api_key_env": "CITYGATE_TEST_APP_KEY", "purposes": ["p"]}},
            "masking": None,
        }
    )
    client = policy.clients["app"]
    assert (client.id, client.name, policy.purposes, policy.masking_default) == ("app", "app", {"p": ""}, "null")
    assert policy.client_for_key("app-key-1") is client and "app-key-1" not in repr(client)
    with pytest.raises(ValueError):  # frozen: a running policy is replaced, never edited
        client.roles = ("operator",)  # type: ignore[misc]
    with pytest.raises(PolicyError) as spoofed:
        parse_policy({"clients": {"app": {"id": "other-app"}}})
    assert spoofed.value.problems == ["clients.app: unknown key 'id' (a client's id is its key)"]
    monkeypatch.delenv("CITYGATE_TEST_APP_KEY")
    with pytest.raises(PolicyError) as unset:
        parse_policy({"clients": {"app": {"api_key_env": "CITYGATE_TEST_APP_KEY"}}})
    assert unset.value.problems == ["clients.app.api_key_env: environment variable CITYGATE_TEST_APP_KEY is not set"]


def test_references_are_refused_when_the_policy_is_read_without_its_declarations():
    """Read through the model directly (no parse_policy context), a reference to a purpose or a
    client cannot be checked against the declarations: it is refused, never let through."""
    from pydantic import ValidationError

    from gateway.policy import Policy

    data = {
        "purposes": {"p": None},
        "clients": {"app": {"purposes": ["p"]}},
    }
    assert list(parse_policy(data).clients["app"].purposes) == ["p"]
    with pytest.raises(ValidationError) as unchecked:
        Policy.model_validate(data)
    assert "'p' is not declared under purposes" in str(unchecked.value)
    # a section that is not a mapping declares nothing: references to it are refused beside its own problem
    with pytest.raises(PolicyError) as failure:
        parse_policy({"purposes": ["p"], "clients": {"app": {"purposes": ["p"]}}})
    assert any("'p' is not declared under purposes" in problem for problem in failure.value.problems)
