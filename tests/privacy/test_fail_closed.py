"""Fail closed: a ledger or an audit log that cannot be used discloses nothing."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.composition import SubgraphSource, compose
from gateway.composition.config import fetch_sdl
from gateway.engine import Engine
from gateway.identity import Requester
from gateway.privacy import AuditRefused
from gateway.store import database_url
from gateway.supergraph import PersonalField, PrivacyAnnotations, load_supergraph
from tests.privacy import world
from tests.privacy.conftest import settle_email


async def _rename(store_url: str, table: str, to: str) -> None:
    engine = create_async_engine(database_url(store_url))
    async with engine.begin() as connection:
        await connection.execute(sqlalchemy.text(f"ALTER TABLE {table} RENAME TO {to}"))
    await engine.dispose()


async def test_an_unreadable_ledger_withholds_every_personal_value(city):
    await city.grant("r2", "parking-app", "booking", ["user.contact"])
    await _rename(city.store_url, "consent_events", "consent_events_gone")
    city.gateway.runtime.ledger.invalidate_all()  # nothing cached: the next request must read the ledger
    answer = await city.ask("{ residents { id email } }", client="parking-app", purpose="booking", resident=None)
    emails = [r["email"] for r in answer["data"]["residents"]]
    assert "jean@example.org" not in emails
    assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"ledger-unavailable"}


async def test_even_the_subjects_own_values_are_withheld_when_the_ledger_fails_in_their_request(city):
    await _rename(city.store_url, "consent_events", "consent_events_gone")
    city.gateway.runtime.ledger.invalidate_all()
    answer = await city.ask(
        "{ residents { id email } }", resident="r1"
    )  # r1's own e-mail, and others' needing the ledger
    assert answer["data"]["residents"][0]["email"] != "amelie@example.org"
    assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"ledger-unavailable"}
    # when no value depends on the ledger, the subject still reads their own data
    own = await city.ask('{ resident(id: "r1") { email } }', resident="r1")
    assert own["data"]["resident"]["email"] == "amelie@example.org"


async def test_an_audit_log_that_refuses_writes_withholds_the_disclosures(city):
    await _rename(city.store_url, "audit_head", "audit_head_gone")
    answer = await city.ask("{ incidents { reporter { email } } }", client="technician-console")
    assert all(i["reporter"]["email"] != "amelie@example.org" for i in answer["data"]["incidents"])
    assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"audit-unavailable"}
    own = await city.ask('{ resident(id: "r1") { email } }', resident="r1")  # no audit needed for oneself
    assert own["data"]["resident"]["email"] == "amelie@example.org"


async def test_an_audit_refusal_either_reshapes_the_answer_or_stops_it_leaving(bare_guard):
    # A mutation's answer waits for the audit log and is shaped again without the disclosures; a
    # query's answer, already serialized when the refusal comes, must not leave at all (the engine
    # answers the query again with decisions(audit_refused=True)).
    guard, store = bare_guard
    technician = Requester(guard.policy.clients["technician-console"], "street-maintenance", frozenset({"technician"}))
    await _rename(store.url, "audit_head", "audit_head_gone")

    data, seen, audited = await settle_email(guard, technician, guard.decisions(technician), "req-1")
    assert data["email"] != "amelie@example.org" and audited == []  # masked by the policy's strategy
    assert [w["reason"] for w in seen[0]["withheld"]] == ["audit-unavailable"]
    try:
        await settle_email(guard, technician, guard.decisions(technician), "req-2", refusal_raises=True)
    except AuditRefused:
        pass
    else:
        raise AssertionError("a refused audit write let a serialized answer through")
    refused = guard.decisions(technician, audit_refused=True)
    data, seen, audited = await settle_email(guard, technician, refused, "req-3", refusal_raises=True)
    assert (
        data["email"] != "amelie@example.org"
        and audited == []
        and seen[0]["withheld"][0]["reason"] == "audit-unavailable"
    )


class _AnswersWithoutTypename:
    """A reports subgraph that leaves out `__typename`: the gateway cannot tell a Pothole from a Graffiti."""

    async def send(self, subgraph, query, variables, context=None):
        return {"data": {"incidents": [{"id": "p1", "reporter": {"id": "r1"}}]}}

    async def close(self) -> None:
        pass


def _composed_world(privacy_world) -> str:
    sources = [
        SubgraphSource(name, fetch_sdl(privacy_world.url(name)), privacy_world.url(name)) for name in world.SUBGRAPHS
    ]
    composed = compose(sources)
    assert composed.ok, composed.errors
    return composed.supergraph or ""


def test_a_field_personal_on_one_implementation_is_nullable_on_its_interface_too(privacy_world):
    # Pothole.description is String! in the subgraph and on the Incident interface; made personal on
    # Pothole alone (a policy override), it must be nullable there and on Incident (else the API
    # schema is invalid); Graffiti's stays as it is
    overrides = PrivacyAnnotations(personal={("Pothole", "description"): PersonalField("user.content")})
    api = load_supergraph(_composed_world(privacy_world), overrides).api_schema
    assert str(api.get_type("Pothole").fields["description"].type) == "String"
    assert str(api.get_type("Incident").fields["description"].type) == "String"
    assert str(api.get_type("Graffiti").fields["description"].type) == "String!"


async def test_a_value_of_an_unknown_concrete_type_is_withheld_if_any_possible_type_guards_it(
    bare_guard, privacy_world
):
    # Pothole.reporter is personal (a policy override on the concrete type only); Incident's is not.
    overrides = PrivacyAnnotations(personal={("Pothole", "reporter"): PersonalField("user.unique_id")})
    guard, _store = bare_guard
    engine = Engine(load_supergraph(_composed_world(privacy_world), overrides), _AnswersWithoutTypename(), guard)
    response = await engine.run("{ incidents { id reporter { id } } }")
    reporter = response.data["incidents"][0]["reporter"]
    # withheld: the category's strategy (pseudonymise) cannot take an object, which is masked with null
    assert reporter is None
    assert [(w["reason"], w["strategy"]) for w in response.extensions["privacy"]["withheld"]] == [
        ("subject-unknown", "null")
    ]


class _FailingWithPersonalWords:
    async def send(self, subgraph, query, variables, context=None):
        return {
            "data": {"incidents": None},
            "errors": [
                {
                    "message": "no incidents for amelie@example.org",
                    "path": ["incidents"],
                    "extensions": {"code": "NOT_FOUND", "email": "amelie@example.org"},
                }
            ],
        }

    async def close(self) -> None:
        pass


async def test_a_subgraph_error_keeps_its_code_and_path_but_not_its_words(bare_guard, privacy_world):
    guard, _store = bare_guard
    engine = Engine(load_supergraph(_composed_world(privacy_world)), _FailingWithPersonalWords(), guard)
    response = await engine.run("{ incidents { id } }")
    assert response.errors == [
        {
            "message": "subgraph 'reports' reported an error",
            "path": ["incidents"],
            "extensions": {"code": "NOT_FOUND", "serviceName": "reports"},
        }
    ]
    assert "amelie" not in str(response.to_dict())
