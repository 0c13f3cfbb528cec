"""Merging answers into the response tree: only what each fetch asked for (executor/_merge.py).

Against the world's real Strawberry subgraphs over loopback: once honest, once behind a
`Tampering` proxy (tests/privacy/hostile.py) that plants keys nobody asked for in every object of
every answer. The merged trees must be the same: aliases undone, fragments on unions, interfaces
and interface objects, lists, nulls and `@requires` all included.
"""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.engine import Engine
from gateway.executor._fetch import Execution
from gateway.executor._merge import DisputedStr, merge
from tests.privacy.hostile import Tampering, objects_in
from tests.world.server import SUBGRAPHS, SUPERGRAPH_FILE, AppServer

PLANTED = {
    "_cg_subject": "r9",
    "_cg_1_id": "r9",
    "_cg_count_population": 99,
    "__typename": "Announcement",
    "id": "planted",
    "email": "planted@example.org",
    "name": "Planted",
    "secret": {"_cg_subject": "r9"},
}


class TamperedWorld(AppServer):
    """The world's subgraphs, each behind its own Tampering (`tampering[name]`)."""

    def __init__(self) -> None:
        self.tampering = {name: Tampering(GraphQL(schema)) for name, schema in SUBGRAPHS.items()}
        super().__init__(Starlette(routes=[Route(f"/{name}", app) for name, app in self.tampering.items()]))

    def supergraph(self) -> str:
        return SUPERGRAPH_FILE.read_text().replace("http://127.0.0.1:4101", self.base_url)

    def plant_everywhere(self) -> None:
        """Every subgraph adds PLANTED's keys to every object it answers, where it has no such key."""

        def plant(_request: dict, answer: dict) -> None:
            for obj in list(objects_in(answer.get("data"))):
                if obj is not answer.get("data"):
                    for key, value in PLANTED.items():
                        obj.setdefault(key, json.loads(json.dumps(value)))

        for tampering in self.tampering.values():
            tampering.reset()
            tampering.rewrites.append(plant)


@pytest.fixture(scope="module")
def tampered_world():
    server = TamperedWorld().start()
    yield server
    server.stop()


@pytest.fixture
async def tampered_engine(tampered_world, world):
    tampered_world.plant_everywhere()
    engine = Engine.from_sdl(tampered_world.supergraph())
    yield engine
    await engine.close()


async def merged_tree(engine: Engine, query: str, variables: dict | None = None) -> tuple[dict, list]:
    """The response tree the executor builds from the subgraphs' answers, before shaping."""
    plan = engine.planner.plan(engine.planner.prepare(query, None), variables or {})
    execution = Execution(variables=variables or {})
    await engine.executor.runner.run(plan, execution)
    return execution.data, execution.errors


QUERIES = {
    "client aliases": "{ a: residents { who: name mail: email posted: jobsPosted { t: title } } }",
    "a key under the gateway's own alias": '{ resident(id: "r1") { id: email bookings { hours } } }',
    "fragments on a union": "{ feed { __typename ... on Job { title postedBy { name } } ... on Announcement { text } } }",
    "fragments on an interface": "{ places { __typename id name ... on Spot { pricePerHour district { name } } ... on Garage { levels } } }",
    "an interface object": "{ topRated { __typename id rating name ... on Garage { levels } } }",
    "nulls": "{ jobs { id takenBy { name email } } }",
    "nested lists": "{ districts { name spots { name rating } } }",
    "@requires": "{ residents { district { name population } } }",
    "@skip and @include": 'query($on: Boolean!) { resident(id: "r2") { name @skip(if: $on) email @include(if: $on) } }',
}


@pytest.mark.parametrize("case", list(QUERIES))
async def test_keys_nobody_asked_for_never_reach_the_tree(case, engine, tampered_engine, tampered_world):
    variables = {"on": True} if "$on" in QUERIES[case] else None
    honest, honest_errors = await merged_tree(engine, QUERIES[case], variables)
    tampered, tampered_errors = await merged_tree(tampered_engine, QUERIES[case], variables)
    planted = [a for t in tampered_world.tampering.values() for a in t.answers if '"secret"' in json.dumps(a)]
    assert planted, "the subgraphs answered with planted keys"
    assert honest_errors == tampered_errors == []
    assert tampered == honest
    assert "planted" not in json.dumps(tampered).lower() and "r9" not in json.dumps(tampered)
    response = await tampered_engine.run(QUERIES[case], variables=variables)
    assert response.data == (await engine.run(QUERIES[case], variables=variables)).data


async def test_the_tree_holds_the_client_keys_and_the_keys_the_gateway_asked_for(engine):
    tree, _ = await merged_tree(engine, '{ resident(id: "r1") { id: email bookings { hours } } }')
    # the client took `id` for the e-mail: the key field travels under the gateway's own alias
    assert tree == {
        "resident": {"id": "amelie@example.org", "_cg_1_id": "r1", "__typename": "Resident", "bookings": [{"hours": 2}]}
    }
    tree, _ = await merged_tree(engine, "{ topRated { __typename id name } }")
    # the interface object answered `Place`; the entity fetch's concrete type replaced it
    assert [p["__typename"] for p in tree["topRated"]] == ["Garage", "Spot", "Spot", "Spot"]
    tree, _ = await merged_tree(engine, "{ jobs { takenBy { name } } }")
    assert tree["jobs"][1] == {"takenBy": None}


async def test_one_field_answered_twice_differently_is_disputed(tampered_world, world):
    def contradict(_request: dict, answer: dict) -> None:
        resident = (answer.get("data") or {}).get("resident")
        if isinstance(resident, dict) and "b" in resident:
            resident["b"] = "Jean Valjean"

    for tampering in tampered_world.tampering.values():
        tampering.reset()
    tampered_world.tampering["residents"].rewrites.append(contradict)
    engine = Engine.from_sdl(tampered_world.supergraph())
    try:
        tree, _ = await merged_tree(engine, '{ resident(id: "r1") { a: name b: name email } }')
    finally:
        await engine.close()
    resident = tree["resident"]
    # both keys keep what the answer said (they serialize as plain text), both marked disputed
    assert (resident["a"], resident["b"]) == ("Amélie Poulain", "Jean Valjean")
    assert isinstance(resident["a"], DisputedStr) and isinstance(resident["b"], DisputedStr)
    assert type(resident["email"]) is str
    assert json.loads(json.dumps(resident)) == {
        "a": "Amélie Poulain",
        "b": "Jean Valjean",
        "email": "amelie@example.org",
    }


def test_a_later_answer_wins_as_in_federation_but_a_changed_value_is_disputed():
    interfaces = frozenset({"Place"})
    tree = {"id": "s1", "__typename": "Spot", "name": "Rue Mouffetard 12", "tags": ["a", None], "rating": None}
    merge(
        tree,
        {"id": "s1", "__typename": "Place", "name": "Mouffetard", "tags": ["x", "b"], "rating": 4.5, "levels": None},
        interfaces,
    )
    assert tree == {
        "id": "s1",
        "__typename": "Spot",
        "name": "Mouffetard",
        "tags": ["a", "b"],
        "rating": 4.5,
        "levels": None,
    }
    assert type(tree["id"]) is str  # the same value again is no dispute
    assert isinstance(tree["name"], DisputedStr)
    merge(tree, {"name": "Mouffetard"}, interfaces)
    assert isinstance(tree["name"], DisputedStr)  # once disputed, an agreeing answer does not clear it
    merge(tree, {"__typename": "Garage"}, interfaces)
    assert tree["__typename"] == "Garage"  # a concrete type replaces another, an interface never does
    merge(tree, {"name": None, "tags": [None, None]}, interfaces)
    assert tree["name"] == "Mouffetard" and tree["tags"] == ["a", "b"]  # a null never erases what is known


def test_a_later_answer_naming_another_concrete_type_is_disputed():
    # the shaper picks an object's guards by its type: two types named for one object withhold its
    # personal values (executor/_shape.py reads a disputed __typename as a subject conflict)
    tree = {"__typename": "Spot"}
    merge(tree, {"__typename": "Place"}, frozenset({"Place"}))
    assert type(tree["__typename"]) is str
    merge(tree, {"__typename": "Garage"}, frozenset({"Place"}))
    assert isinstance(tree["__typename"], DisputedStr) and tree["__typename"] == "Garage"


def typed(value):
    """`value` with every text and number's class beside it: a disputed value differs from a plain one."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (value.__class__.__name__, value)


ALSO = {
    "aliases the planner adds and a field asked twice": '{ resident(id: "r1") { id: email who: name name bookings { hours } } }',
    "fragments on a union with aliases": "{ feed { ... on Job { t: title postedBy { id n: name } } ... on Announcement { text } } }",
}


@pytest.mark.parametrize("case", [*QUERIES, *ALSO])
async def test_the_compiled_answer_check_keeps_exactly_what_keep_asked_keeps(case, tampered_engine, tampered_world):
    """AnswerCheck (code generated per selection) against keep_asked (the walk it replaces), on
    the real plans' real answers with keys planted at every depth."""
    from copy import deepcopy

    from gateway.executor._merge import AnswerCheck, keep_asked

    query = QUERIES.get(case) or ALSO[case]
    variables = {"on": True} if "$on" in query else {}
    plan = tampered_engine.planner.plan(tampered_engine.planner.prepare(query, None), variables)
    await merged_tree(tampered_engine, query, variables)
    compared = 0
    for node in plan.nodes:
        tampering = tampered_world.tampering[node.subgraph]
        exchanges = [
            (q, a)
            for q, a in zip(tampering.requests, tampering.answers, strict=True)
            if q.get("query") == node.document
        ]
        assert exchanges, f"no answer recorded for node {node.id}"
        for request, answer in exchanges:
            if node.representations is None:
                pairs = [(answer["data"], None)]
            else:
                sent = request["variables"][node.representations_variable]
                pairs = [
                    (entity, sent[i]["__typename"])
                    for i, entity in enumerate(answer["data"]["_entities"])
                    if isinstance(entity, dict)
                ]
            for obj, typename in pairs:
                walked, compiled = deepcopy(obj), deepcopy(obj)
                keep_asked(walked, node.selection, typename)
                AnswerCheck(node.selection)(compiled, typename)
                assert typed(compiled) == typed(walked)
                assert "planted" not in json.dumps(compiled)
                compared += 1
    assert compared >= len(plan.nodes)


def test_the_compiled_answer_check_undoes_the_planners_aliases_as_keep_asked_does():
    from copy import deepcopy

    from gateway.executor._merge import AnswerCheck, keep_asked
    from gateway.planner import Planner
    from gateway.supergraph import load_supergraph
    from tests.planner.test_planner import CONFLICTING_TYPES

    planner = Planner(load_supergraph(CONFLICTING_TYPES))
    plan = planner.plan(planner.prepare("{ accounts { ... on User { id } ... on Admin { id } } }", None), {})
    accounts = plan.nodes[0].selection.view(None).nested[0][1]  # fragments on a union: a view per type
    answers = [
        {"__typename": "User", "_cg_id_1": "u1", "id": "planted", "extra": {"_cg_subject": "r9"}},
        {"__typename": "Admin", "id": "a1", "_cg_id_1": "planted"},
        {"_cg_id_1": "u2", "id": "a2"},  # no __typename: every fragment's keys, no rename known
    ]
    for answer in answers:
        for typename in (None, "User", "Admin"):
            walked, compiled = deepcopy(answer), deepcopy(answer)
            keep_asked(walked, accounts, typename)
            AnswerCheck(accounts)(compiled, typename)
            assert typed(compiled) == typed(walked)
    user = deepcopy(answers[0])
    AnswerCheck(accounts)(user, None)
    assert user == {"__typename": "User", "id": "u1"}
