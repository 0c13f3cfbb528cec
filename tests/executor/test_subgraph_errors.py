"""What of a subgraph's errors reaches the client: only what the gateway can vouch for.

Two real federation subgraphs over loopback, each behind `tests.privacy.hostile.Tampering` (via
`HostilePartner`) so that a test makes it answer the errors a misbehaving partner would: a city
`notices` subgraph (root fields, owner `city`) and a partner's `comments` subgraph that adds
`Notice.comment` (reached through `_entities`). The gateway runs with privacy off (no guard) and on
(a PrivacyGuard over its own SQLite store; the supergraph carries one personal field). Each test
asserts on the exact errors the client sees: a code is kept only when well-formed (with privacy
on, only a well-known one), a path only as far as it resolves in the data the gateway merged.
"""

from __future__ import annotations

import json

import pytest
import strawberry
from graphql import GraphQLError

from gateway.composition import SubgraphSource, compose
from gateway.consent import AuditLog, Ledger
from gateway.engine import Engine, GraphQLResponse
from gateway.executor import InProcessSubgraph, Subgraphs
from gateway.policy import parse_policy
from gateway.privacy import PrivacyGuard
from gateway.sdk import privacy
from gateway.store import Store
from tests.privacy.hostile import HostilePartner

SECRET = "amelie@example.org"
NOTICES = {"n1": "Street cleaning on Monday", "n2": "Market on Sunday", "n3": "Works on Rue Lepic"}
COMMENTS = {"n1": "thanks", "n2": "noisy", "n3": "finally"}


@strawberry.type(directives=[privacy.Subject(field="id")])
class Author:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    # personal: with privacy on, the supergraph is only served with a guard (no test reads it)
    email: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.contact.email")])


@strawberry.federation.type(keys=["id"])
class Notice:
    id: strawberry.ID
    title: str | None

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Notice:
        return cls(id=id, title=NOTICES.get(id))


@strawberry.type
class NoticesQuery:
    @strawberry.field
    def notices(self) -> list[Notice]:
        return [Notice(id=strawberry.ID(key), title=title) for key, title in NOTICES.items()]


@strawberry.type
class AnnotatedNoticesQuery(NoticesQuery):
    @strawberry.field
    def authors(self) -> list[Author]:
        return [Author(id=strawberry.ID("a1"), email="a1@example.org")]


@strawberry.federation.type(keys=["id"], name="Notice")
class CommentedNotice:
    id: strawberry.ID

    @strawberry.field
    def comment(self) -> str | None:
        return COMMENTS.get(self.id)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> CommentedNotice:
        return cls(id=id)


@strawberry.type
class CommentsQuery:
    @strawberry.field
    def comments_open(self) -> bool:
        return True


# the notices partner serves the annotated schema; the gateway without privacy serves a supergraph
# composed from the plain one (a supergraph with annotations is only served with privacy on)
NOTICES_SCHEMA = strawberry.federation.Schema(query=AnnotatedNoticesQuery, types=[Notice], federation_version="2.5")
PLAIN_NOTICES_SCHEMA = strawberry.federation.Schema(query=NoticesQuery, types=[Notice], federation_version="2.5")
COMMENTS_SCHEMA = strawberry.federation.Schema(query=CommentsQuery, types=[CommentedNotice], federation_version="2.5")
OWNERS = {"notices": "city", "comments": "comments"}


@pytest.fixture(scope="module")
def partners():
    running = {"notices": HostilePartner(NOTICES_SCHEMA).start(), "comments": HostilePartner(COMMENTS_SCHEMA).start()}
    yield running
    for partner in running.values():
        partner.stop()


def _compose(partners: dict[str, HostilePartner], sdls: dict[str, str]) -> str:
    composed = compose(
        SubgraphSource(name, sdls.get(name) or partner.sdl(), partner.url) for name, partner in partners.items()
    )
    assert composed.ok, composed.errors
    return composed.supergraph or ""


@pytest.fixture(scope="module")
def supergraph(partners) -> str:
    """With the personal field: served with privacy on."""
    return _compose(partners, {})


@pytest.fixture(scope="module")
def plain_supergraph(partners) -> str:
    return _compose(
        partners, {"notices": PLAIN_NOTICES_SCHEMA.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]}
    )


@pytest.fixture
def notices(partners) -> HostilePartner:
    partners["notices"].reset()
    return partners["notices"]


@pytest.fixture
def comments(partners) -> HostilePartner:
    partners["comments"].reset()
    return partners["comments"]


@pytest.fixture
async def plain(plain_supergraph, notices, comments):
    """The gateway without privacy (no policy, no guard)."""
    engine = Engine.from_sdl(plain_supergraph, owners=OWNERS)
    assert engine.privacy is None
    yield engine
    await engine.close()


async def _guard(tmp_path) -> tuple[PrivacyGuard, Store]:
    policy = parse_policy(
        {
            "version": "subgraph-errors-test",
            "controller": {"name": "Ville (tests)", "jurisdiction": "FR", "policy_url": "https://city.example/p"},
            "purposes": {},
            "clients": {},
        }
    )
    store = Store(f"sqlite:///{tmp_path / 'guard.db'}")
    await store.create()
    return PrivacyGuard(policy, Ledger(store, policy), AuditLog(store), b"test-pseudonym-key"), store


@pytest.fixture
async def guarded(supergraph, notices, comments, tmp_path):
    """The gateway with privacy on (a guard, its store)."""
    guard, store = await _guard(tmp_path)
    engine = Engine.from_sdl(supergraph, guard=guard, owners=OWNERS)
    assert engine.privacy is not None  # errors are redacted
    yield engine
    await engine.close()
    await store.close()


def answer_errors(partner: HostilePartner, errors: list[dict], entities: bool | None = None) -> None:
    """From now on `partner` adds `errors` to its answers (`entities`: only to `_entities` ones, or
    only to the others)."""

    def add(request: dict, answer: dict) -> None:
        if entities is None or ("_entities" in request.get("query", "")) == entities:
            answer["errors"] = json.loads(json.dumps(errors))

    partner.rewrite(add)


def null_data(partner: HostilePartner, key: str) -> None:
    """From now on `partner` answers `key` with null (a failure's null propagated up to it)."""

    def nulled(_request: dict, answer: dict) -> None:
        if isinstance(answer.get("data"), dict) and key in answer["data"]:
            answer["data"][key] = None

    partner.rewrite(nulled)


def seen(response: GraphQLResponse) -> list[dict]:
    """The errors as the client reads them (the response's JSON)."""
    return json.loads(json.dumps(response.to_dict()))["errors"]


def _error(subgraph: str, code: str, path: list | None = None, message: str | None = None) -> dict:
    out: dict = {"message": message if message is not None else f"subgraph '{subgraph}' reported an error"}
    if path is not None:
        out["path"] = path
    out["extensions"] = {"code": code, "serviceName": subgraph}
    return out


PRIVACY_MODES = ["plain", "guarded"]
NON_NULL_NOTICES = "Cannot return null for non-nullable field Query.notices."  # the shaper's own


@pytest.fixture(params=PRIVACY_MODES)
def engine(request) -> Engine:
    return request.getfixturevalue(request.param)


def _words(engine: Engine, message: str, subgraph: str = "notices") -> str:
    """The message the client reads: the subgraph's own without privacy, the gateway's with it."""
    return message if engine.privacy is None else f"subgraph '{subgraph}' reported an error"


# -- codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        f"NOT_FOUND {SECRET}",  # a resident's e-mail in the code
        "not found",  # lowercase, a space
        "NotFound",
        "NOT_FOUND\n",  # a trailing newline is not the shape
        "A" * 65,  # longer than a code
        "",
        42,
        {"value": SECRET},
        ["NOT_FOUND"],
    ],
)
async def test_a_malformed_code_is_the_gateways_own(engine, notices, code):
    answer_errors(notices, [{"message": "gone", "path": ["notices", 0, "title"], "extensions": {"code": code}}])
    response = await engine.run("{ notices { id title } }")
    assert seen(response) == [
        _error("notices", "DOWNSTREAM_SERVICE_ERROR", ["notices", 0, "title"], _words(engine, "gone"))
    ]
    assert SECRET not in json.dumps(response.to_dict())


async def test_an_error_without_a_code_gets_the_gateways_own(engine, notices):
    answer_errors(notices, [{"message": "gone", "path": ["notices", 1, "title"]}])
    response = await engine.run("{ notices { title } }")
    assert seen(response) == [
        _error("notices", "DOWNSTREAM_SERVICE_ERROR", ["notices", 1, "title"], _words(engine, "gone"))
    ]


async def test_a_well_known_code_and_a_valid_path_are_kept(engine, notices):
    answer_errors(
        notices,
        [
            {
                "message": "no title yet",
                "path": ["notices", 2, "title"],
                "locations": [{"line": 1, "column": 12}],  # of the subgraph's document: dropped
                "extensions": {"code": "NOT_FOUND"},
            }
        ],
    )
    response = await engine.run("{ notices { id title } }")
    assert seen(response) == [_error("notices", "NOT_FOUND", ["notices", 2, "title"], _words(engine, "no title yet"))]


async def test_a_well_formed_code_of_the_partners_own_is_kept_only_without_privacy(plain, guarded, notices):
    # a word the partner chose can spell anyone's name: with privacy on, only well-known codes pass
    answer_errors(notices, [{"message": "m", "path": ["notices"], "extensions": {"code": "AMELIE_POULAIN"}}])
    assert seen(await plain.run("{ notices { id } }")) == [_error("notices", "AMELIE_POULAIN", ["notices"], "m")]
    assert seen(await guarded.run("{ notices { id } }")) == [_error("notices", "DOWNSTREAM_SERVICE_ERROR", ["notices"])]


async def test_with_privacy_a_partner_cannot_speak_for_the_gateway(guarded, notices):
    answer_errors(
        notices,
        [
            {"message": "m", "path": ["notices"], "extensions": {"code": "SUBGRAPH_UNAVAILABLE", "status": 503}},
            {"message": "m", "path": ["notices"], "extensions": {"code": "PRIVACY_BUDGET_EXHAUSTED"}},
        ],
    )
    # nor give a status: only a REST connector (in this process) reports one
    assert seen(await guarded.run("{ notices { id } }")) == [
        _error("notices", "DOWNSTREAM_SERVICE_ERROR", ["notices"]),
        _error("notices", "DOWNSTREAM_SERVICE_ERROR", ["notices"]),
    ]


async def test_without_privacy_the_other_extensions_stay(plain, notices):
    answer_errors(notices, [{"message": "m", "extensions": {"code": "bad code", "retryAfter": 3}}])
    assert seen(await plain.run("{ notices { id } }")) == [
        {
            "message": "m",
            "extensions": {"code": "DOWNSTREAM_SERVICE_ERROR", "retryAfter": 3, "serviceName": "notices"},
        }
    ]


# -- paths of root fetches ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "client_path"),
    [
        (["notices", SECRET, {"phone": "+33 4 98 57 61 69"}], ["notices"]),  # a string not in the data
        (["notices", 0, {"phone": "+33 4 98 57 61 69"}], ["notices", 0]),  # an object
        (["notices", 0, "title", "x"], ["notices", 0, "title"]),  # below a string value
        (["notices", 3, "title"], ["notices"]),  # out of range (3 notices)
        (["notices", -1, "title"], ["notices"]),
        (["notices", 12345678901234, "title"], ["notices"]),  # a number is not a channel
        (["notices", True, "title"], ["notices"]),  # a boolean is no index
        (["notices", 1.0, "title"], ["notices"]),
        (["notices", "0", "title"], ["notices"]),  # a string is no index
        (["notices", 0, "_cg_subject"], ["notices", 0]),  # the gateway's own keys are not the client's
        ([SECRET], None),  # nothing of it resolves: no path
        ([{"email": SECRET}], None),
        ([], None),
        ("notices", None),  # not a list
        ({"notices": 0}, None),
    ],
)
async def test_a_path_is_cut_at_its_first_step_the_gateway_cannot_resolve(engine, notices, path, client_path):
    answer_errors(notices, [{"message": "m", "path": path, "extensions": {"code": "NOT_FOUND"}}])
    response = await engine.run("{ notices { id title } }")
    assert response.data["notices"][0] == {"id": "n1", "title": NOTICES["n1"]}
    assert seen(response) == [_error("notices", "NOT_FOUND", client_path, _words(engine, "m"))]
    assert SECRET not in json.dumps(response.to_dict()) and "+33" not in json.dumps(response.to_dict())


async def test_a_path_never_shows_a_key_the_gateway_added(guarded, notices):
    # with privacy on, the gateway asks for the subject of every Author as `_cg_subject`
    answer_errors(
        notices, [{"message": "m", "path": ["authors", 0, "_cg_subject"], "extensions": {"code": "NOT_FOUND"}}]
    )
    response = await guarded.run("{ authors { email } }")
    assert "_cg_subject" in json.dumps(notices.requests[-1])  # asked for, so in the fetch's selection
    assert seen(response) == [_error("notices", "NOT_FOUND", ["authors", 0])]


async def test_a_path_into_a_null_stops_at_the_null(engine, notices):
    # a non-null field failed; its null went up to `notices`: the path points at the null the client sees
    null_data(notices, "notices")
    answer_errors(notices, [{"message": "m", "path": ["notices", 0, "title"], "extensions": {"code": "NOT_FOUND"}}])
    response = await engine.run("{ notices { id title } }")
    assert response.data is None  # `notices: [Notice!]!`: its null goes up to `data`
    assert seen(response) == [_error("notices", "NOT_FOUND", ["notices"], _words(engine, "m"))]


@pytest.mark.parametrize(
    ("path", "client_path"),
    [
        (["notices", 0, "title"], ["notices"]),  # no list came: no index can be checked
        (["notices"], ["notices"]),
        (["board"], None),  # not a key the fetch asked for: the gateway explains the null itself
    ],
)
async def test_where_nothing_merged_the_keys_asked_are_kept(engine, notices, path, client_path):
    # the subgraph's own null reached its `data`: nothing merged, but its root fields were asked
    notices.rewrite(lambda _request, answer: answer.update(data=None))
    answer_errors(notices, [{"message": "m", "path": path, "extensions": {"code": "NOT_FOUND"}}])
    response = await engine.run("{ notices { id title } }")
    assert response.data is None
    unexplained = [] if client_path else [{"message": NON_NULL_NOTICES, "path": ["notices"]}]
    assert seen(response) == [_error("notices", "NOT_FOUND", client_path, _words(engine, "m")), *unexplained]


async def test_a_path_follows_the_clients_aliases(engine, notices):
    answer_errors(notices, [{"message": "m", "path": ["board", 1, "heading"], "extensions": {"code": "NOT_FOUND"}}])
    response = await engine.run("{ board: notices { heading: title } }")
    assert seen(response) == [_error("notices", "NOT_FOUND", ["board", 1, "heading"], _words(engine, "m"))]


# -- paths of entity fetches --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "client_path"),
    [
        (["_entities", 1, "comment"], ["notices", 1, "comment"]),  # legit: mapped to the client's
        (["_entities", 2], ["notices", 2]),
        (["_entities", 1, SECRET], ["notices", 1]),  # not a key of what the entity merged
        (["_entities", 1, "comment", {"email": SECRET}], ["notices", 1, "comment"]),
        (["_entities", 7, "comment"], None),  # no such representation was sent
        (["_entities", -1, "comment"], None),
        (["_entities", True, "comment"], None),
        (["_entities", "1", "comment"], None),
        (["_entities", {"email": SECRET}], None),
        (["_entities"], None),
        ([SECRET, 0], None),  # an entity fetch's path starts with _entities
        (["notices", 0, "comment"], None),
    ],
)
async def test_an_entity_path_resolves_in_the_representations_sent(engine, comments, path, client_path):
    answer_errors(comments, [{"message": "m", "path": path, "extensions": {"code": "NOT_FOUND"}}], entities=True)
    response = await engine.run("{ notices { id comment } }")
    assert [n["comment"] for n in response.data["notices"]] == list(COMMENTS.values())
    assert seen(response) == [_error("comments", "NOT_FOUND", client_path, _words(engine, "m", "comments"))]
    assert SECRET not in json.dumps(response.to_dict())


async def test_an_entity_path_keeps_the_keys_asked_where_its_entity_merged_nothing(engine, comments):
    # the partner answered the second entity with null (its `comment` failed): nothing merged there
    def second_entity_null(_request: dict, answer: dict) -> None:
        entities = (answer.get("data") or {}).get("_entities")
        if isinstance(entities, list) and len(entities) > 1:
            entities[1] = None

    comments.rewrite(second_entity_null)
    answer_errors(
        comments, [{"message": "m", "path": ["_entities", 1, "comment"], "extensions": {"code": "NOT_FOUND"}}]
    )
    response = await engine.run("{ notices { id comment } }")
    assert [n["comment"] for n in response.data["notices"]] == ["thanks", None, "finally"]
    assert seen(response) == [
        _error("comments", "NOT_FOUND", ["notices", 1, "comment"], _words(engine, "m", "comments"))
    ]


# -- the gateway's own code, in this process -----------------------------------------------------


@strawberry.type
class RefusingQuery:
    @strawberry.field
    def refused(self) -> str | None:
        raise GraphQLError("no", extensions={"code": "RECEIPT_UNAVAILABLE"})

    @strawberry.field
    def misspelt(self) -> str | None:
        raise GraphQLError("no", extensions={"code": f"no {SECRET}"})


async def test_an_in_process_subgraphs_well_formed_code_is_kept_with_privacy(tmp_path):
    # the control plane, a REST connector's client, the operator's Python connectors: code the
    # gateway runs itself, whose codes are its own (CONSENT_NOT_FOUND, CONNECTOR_HTTP_ERROR, ...);
    # still only in the shape of a code
    # Author (and its personal field) along: the supergraph is served with privacy on
    schema = strawberry.federation.Schema(query=RefusingQuery, types=[Author], federation_version="2.5")
    sdl = schema.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]
    composed = compose([SubgraphSource("city", sdl, "http://127.0.0.1:9/graphql")])
    assert composed.ok, composed.errors
    guard, store = await _guard(tmp_path)
    transport = Subgraphs({"city": InProcessSubgraph(schema)})
    engine = Engine.from_sdl(composed.supergraph or "", transport, guard=guard, owners={"city": "city"})
    try:
        response = await engine.run("{ refused misspelt }")
        assert response.data == {"refused": None, "misspelt": None}
        assert seen(response) == [
            _error("city", "RECEIPT_UNAVAILABLE", ["refused"]),
            _error("city", "DOWNSTREAM_SERVICE_ERROR", ["misspelt"]),
        ]
    finally:
        await engine.close()
        await store.close()
