"""The privacy stage's contract with the shaper, on a real guard over a SQLite store: typed
verdicts (an Action per (field guard, subject)), the fast path `placed_whole`, and the engine's
guard lookup returning FieldGuard records."""

from __future__ import annotations

from gateway.executor import FieldGuard
from gateway.identity import PUBLIC, Requester
from gateway.privacy._guard import Action, Verdict
from tests.privacy.conftest import EMAIL

OBJECT = ("Resident fields at one position", "r1")  # a (type fields, subject) pair as the shaper keys it


def _technician(guard) -> Requester:
    return Requester(guard.policy.clients["technician-console"], "street-maintenance", frozenset({"technician"}))


async def test_an_audited_verdict_records_its_disclosure_once_then_places_as_it_is(bare_guard):
    guard, _store = bare_guard
    decisions = guard.decisions(_technician(guard))
    assert decisions.place(EMAIL, "r1", "amelie@example.org", None, "email") == "amelie@example.org"
    verdict = decisions.verdicts[(EMAIL, "r1")]
    assert isinstance(verdict, Verdict) and verdict.action is Action.PLACE  # disclosed once: as it is from now on
    assert (verdict.subject, verdict.coordinate) == ("r1", "Resident.email") and verdict.basis.startswith("policy:")
    assert decisions.place(EMAIL, "r1", "amelie@example.org", None, "email") == "amelie@example.org"
    (disclosure,) = decisions.audited()
    assert (disclosure.subject, disclosure.fields) == ("r1", {"Resident.email"})

    # every guarded field of the object went in as it is: its pair is the fast path from now on,
    # for this request and, through the requester's table, for the next one
    decisions.object_placed(OBJECT, (EMAIL,))
    assert OBJECT in decisions.placed_whole
    following = guard.decisions(_technician(guard))
    assert OBJECT not in following.placed_whole and following.known_object(OBJECT)
    assert OBJECT in following.placed_whole
    (again,) = following.audited()  # an object placed whole is audited as well
    assert (again.subject, again.fields) == ("r1", {"Resident.email"})


async def test_the_subject_themself_gets_place_and_the_public_a_mask(bare_guard):
    guard, _store = bare_guard
    own = guard.decisions(Requester(None, None, frozenset(), "r1"))
    assert own.place(EMAIL, "r1", "amelie@example.org", None, "email") == "amelie@example.org"
    assert own.verdicts[(EMAIL, "r1")] == Verdict(Action.PLACE) and own.audited() == []

    public = guard.decisions(PUBLIC)
    assert public.place(EMAIL, "r1", "amelie@example.org", None, "email") != "amelie@example.org"
    masked = public.verdicts[(EMAIL, "r1")]
    assert (masked.action, masked.category, masked.reason) == (Action.MASK, "user.contact.email", "public-requester")
    assert public.withheld[0]["reason"] == "public-requester" and public.audited() == []
    # an unknown subject is withheld whole, before its object is shaped
    assert public.withholds(EMAIL, None)


async def test_the_engines_guard_lookup_returns_field_guards(sqlite_city):
    engine = sqlite_city.gateway.state.engine
    email = engine._guarded("Resident", "email")
    assert isinstance(email, FieldGuard) and email.kind == "personal"
    assert (email.parent, email.name, email.annotation.category) == ("Resident", "email", "user.contact.email")
    assert email.sources and email.data_key.startswith("_cg_")
    assert engine._guarded("Query", "__typename") is None
