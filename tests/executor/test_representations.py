"""Which representations an entity fetch sends (executor/_fetch.py): one per distinct value set.

A representation of leaf fields only (here `Resident { id districtCode }`: the key and what
`district` @requires) takes its identity from its values when every one is a text or a whole
number; any other value (null, float, boolean, a disputed value) takes the general path. Both
must de-duplicate exactly: equal representations sent once, every different one sent, the
answer merged into every object it stands for. Against the world's real subgraphs over loopback,
the residents subgraph's answer rewritten by a `Tampering` proxy (tests/privacy/hostile.py).
"""

from __future__ import annotations

import pytest

from gateway.engine import Engine
from gateway.executor._fetch import Execution
from tests.executor.test_merge import TamperedWorld

QUERY = "{ residents { district { name } } }"


@pytest.fixture(scope="module")
def tampered_world():
    server = TamperedWorld().start()
    yield server
    server.stop()


@pytest.fixture
async def tampered_engine(tampered_world, world):
    for tampering in tampered_world.tampering.values():
        tampering.reset()
    engine = Engine.from_sdl(tampered_world.supergraph())
    yield engine
    await engine.close()


def answer_residents(tampered_world: TamperedWorld, residents: list[dict]) -> None:
    """The residents subgraph answers `residents` with these objects (each completed with the
    resolved __typename and every key it was asked for that the test left out on purpose)."""

    def rewrite(_request: dict, answer: dict) -> None:
        asked = answer["data"]["residents"][0]
        assert set(asked) == {"__typename", "id", "districtCode"}, asked  # what the test rewrites
        answer["data"]["residents"] = [{"__typename": "Resident", **resident} for resident in residents]

    tampered_world.tampering["residents"].rewrites.append(rewrite)


async def sent_and_merged(engine: Engine, tampered_world: TamperedWorld) -> tuple[list[dict], list]:
    plan = engine.planner.plan(engine.planner.prepare(QUERY, None), {})
    execution = Execution(variables={})
    await engine.executor.runner.run(plan, execution)
    assert execution.errors == []
    (request,) = tampered_world.tampering["districts"].requests
    return request["variables"]["representations"], execution.data["residents"]


async def test_equal_representations_are_sent_once_and_answer_every_object(tampered_engine, tampered_world):
    answer_residents(
        tampered_world,
        [
            {"id": "r1", "districtCode": "75118"},
            {"id": "r2", "districtCode": "75118"},
            {"id": "r1", "districtCode": "75118"},  # the first one again
            {"id": "r1", "districtCode": "75001"},  # same key, another @requires value: its own
        ],
    )
    sent, residents = await sent_and_merged(tampered_engine, tampered_world)
    assert sent == [
        {"__typename": "Resident", "id": "r1", "districtCode": "75118"},
        {"__typename": "Resident", "id": "r2", "districtCode": "75118"},
        {"__typename": "Resident", "id": "r1", "districtCode": "75001"},
    ]
    names = [resident["district"] and resident["district"]["name"] for resident in residents]
    assert names[0] == names[1] == names[2] is not None
    assert names[3] != names[0]


async def test_values_equal_in_python_but_not_in_json_are_different_representations(tampered_engine, tampered_world):
    answer_residents(
        tampered_world,
        [
            {"id": "r1", "districtCode": 1},
            {"id": "r1", "districtCode": "1"},
            {"id": "r1", "districtCode": 1.0},
            {"id": "r1", "districtCode": True},
            {"id": "r1", "districtCode": 1},  # the first one again
            {"id": "r1", "districtCode": True},  # the fourth one again, by the general path
        ],
    )
    sent, residents = await sent_and_merged(tampered_engine, tampered_world)
    assert [(r["districtCode"], type(r["districtCode"])) for r in sent] == [
        (1, int),
        ("1", str),
        (1.0, float),
        (True, bool),
    ]
    assert len(residents) == 6


async def test_a_null_requires_field_is_sent_and_a_missing_or_null_key_sends_nothing(tampered_engine, tampered_world):
    answer_residents(
        tampered_world,
        [
            {"id": "r1", "districtCode": None},
            {"id": None, "districtCode": "75118"},
            {"districtCode": "75118"},
            {"id": "r2"},  # a @requires field missing: no representation either
            {"id": "r1", "districtCode": None},  # the first one again
            {"id": "r3", "districtCode": "75118"},
        ],
    )
    sent, residents = await sent_and_merged(tampered_engine, tampered_world)
    assert sent == [
        {"__typename": "Resident", "id": "r1", "districtCode": None},
        {"__typename": "Resident", "id": "r3", "districtCode": "75118"},
    ]
    assert [("district" in resident) for resident in residents] == [True, False, False, False, True, True]
    assert residents[5]["district"]["name"]
