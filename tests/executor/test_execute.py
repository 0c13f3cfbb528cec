"""Executing plans against the world's real Strawberry subgraphs over loopback HTTP."""

from __future__ import annotations

import json

import pytest

from gateway.engine import Engine, RequestError
from gateway.executor import Subgraphs
from gateway.supergraph import load_supergraph
from tests.world.data import world as rows
from tests.world.server import free_port


async def test_a_query_across_four_subgraphs_matches_the_data(engine):
    response = await engine.run(
        '{ resident(id: "r1") { name email nickname district { name spots { name rating } } jobsPosted { title } } }'
    )
    assert response.errors == []
    resident = response.data["resident"]
    assert resident["name"] == rows["residents"]["r1"]["name"]
    assert resident["email"] == rows["residents"]["r1"]["email"]
    assert resident["nickname"] == rows["residents"]["r1"]["nickname"].upper()  # answered by jobs (@override)
    assert resident["district"]["name"] == rows["districts"]["75118"]["name"]
    assert resident["district"]["spots"] == [{"name": "Rue Lepic 7", "rating": rows["ratings"]["s3"]}]
    assert [j["title"] for j in resident["jobsPosted"]] == [
        j["title"] for j in rows["jobs"].values() if j["postedBy"] == "r1"
    ]


async def test_the_fetches_made_are_exactly_those_of_the_plan(engine, world):
    query = "{ jobs { title postedBy { email bookings { hours } } } }"
    query_plan = engine.planner.plan(engine.planner.prepare(query, None), {})
    assert [(n.subgraph, n.depends_on) for n in query_plan.nodes] == [
        ("jobs", ()),
        ("residents", (0,)),
        ("parking", (0,)),
    ]
    response = await engine.run(query)
    assert response.errors == []
    assert dict(world.traffic.counts) == {"jobs": 1, "residents": 1, "parking": 1}
    assert response.subgraph_requests == 3
    emails = [job["postedBy"]["email"] for job in response.data["jobs"]]
    assert emails == [rows["residents"][j["postedBy"]]["email"] for j in rows["jobs"].values()]


async def test_representations_are_batched_and_deduplicated(engine, world):
    response = await engine.run("{ jobs { takenBy { name } } }")
    assert response.errors == []
    assert [job["takenBy"] and job["takenBy"]["name"] for job in response.data["jobs"]] == [
        "Jean Valjean",
        None,
        "Gavroche Thénardier",
    ]
    (body,) = world.traffic.bodies["residents"]
    representations = json.loads(body)["variables"]["representations"]
    assert sorted(r["id"] for r in representations) == ["r2", "r4"]
    # r1 posted two jobs: one representation serves both
    await engine.run("{ jobs { postedBy { email } } }")
    representations = json.loads(world.traffic.bodies["residents"][-1])["variables"]["representations"]
    assert sorted(r["id"] for r in representations) == ["r1", "r2"]


async def test_interface_objects_resolve_to_concrete_types(engine):
    response = await engine.run("{ topRated { __typename id rating name ... on Garage { levels } } }")
    assert response.errors == []
    assert response.data["topRated"][0] == {
        "__typename": "Garage",
        "id": "g1",
        "rating": 4.9,
        "name": "Parking Saint-Michel",
        "levels": 4,
    }
    assert {p["__typename"] for p in response.data["topRated"]} == {"Garage", "Spot"}


async def test_aliases_fragments_variables_and_typename(engine):
    response = await engine.run(
        """
        query Feed($kind: JobKind) {
          __typename
          first: jobs(kind: $kind) { ...JobParts who: postedBy { n: name } }
          feed { __typename ... on Announcement { text } }
        }
        fragment JobParts on Job { id label: title }
        """,
        "Feed",
        {"kind": "DIY"},
    )
    assert response.errors == []
    assert response.data["__typename"] == "Query"
    assert response.data["first"] == [{"id": "j3", "label": "Fix a shelf", "who": {"n": "Amélie Poulain"}}]
    assert response.data["feed"][-1] == {"__typename": "Announcement", "text": "Street market on Sunday"}
    assert list(response.data) == ["__typename", "first", "feed"]


async def test_skip_and_include(engine):
    query = "query($more: Boolean!) { residents { id email @include(if: $more) name @skip(if: $more) } }"
    assert (await engine.run(query, variables={"more": True})).data["residents"][0] == {
        "id": "r1",
        "email": "amelie@example.org",
    }
    assert (await engine.run(query, variables={"more": False})).data["residents"][0] == {
        "id": "r1",
        "name": "Amélie Poulain",
    }


async def test_mutations_run_in_order(engine, world):
    response = await engine.run(
        """mutation {
          posted: postJob(title: "Deliver bread", kind: DELIVERY, reward: 5, residentId: "r3") { id }
          taken: takeJob(jobId: "j4", residentId: "r4") { id takenBy { name } }
        }"""
    )
    assert response.errors == []
    assert response.data == {"posted": {"id": "j4"}, "taken": {"id": "j4", "takenBy": {"name": "Gavroche Thénardier"}}}


async def test_a_subgraph_error_keeps_its_path_and_service(engine):
    response = await engine.run("{ broken residents { id } }")
    assert response.data is None  # broken is non-null: the null reaches the root
    assert response.errors[0]["path"] == ["broken"]
    assert response.errors[0]["extensions"]["serviceName"] == "residents"


async def test_an_entity_error_is_mapped_onto_the_client_path(engine):
    response = await engine.run('mutation { a: takeJob(jobId: "j1", residentId: "r3") { id } }')
    assert response.data == {"a": None}
    assert response.errors[0]["path"] == ["a"]
    assert response.errors[0]["message"] == "this job is already taken"


async def test_null_propagation_stops_at_the_first_nullable_parent(engine):
    del rows["residents"]["r2"]  # j1 was taken by r2: its name (String!) cannot be resolved
    response = await engine.run("{ jobs { id takenBy { name } } }")
    assert response.data["jobs"][0] == {"id": "j1", "takenBy": None}  # takenBy is nullable
    assert response.data["jobs"][2] == {"id": "j3", "takenBy": {"name": "Gavroche Thénardier"}}
    assert response.errors[0]["path"] == ["jobs", 0, "takenBy", "name"]


async def test_null_propagation_reaches_the_root_through_non_null_fields(engine):
    rows["spots"]["s2"]["district"] = "99999"  # unknown to districts: District.name stays null
    response = await engine.run("{ spots { id district { name } } }")
    assert response.data is None  # District! -> Spot! -> [Spot!]! -> Query.spots [Spot!]!
    assert response.errors[0]["path"] == ["spots", 1, "district", "name"]


async def test_enum_values_and_introspection_follow_the_api_schema(engine):
    response = await engine.run('{ __type(name: "Resident") { fields { name } } jobs(kind: PET_CARE) { kind } }')
    assert response.errors == []
    names = [f["name"] for f in response.data["__type"]["fields"]]
    assert "districtCode" not in names and "nickname" in names
    assert response.data["jobs"] == [{"kind": "PET_CARE"}]
    schema = await engine.run("{ __schema { types { name } } }")
    assert not [t["name"] for t in schema.data["__schema"]["types"] if t["name"].startswith(("join__", "link__"))]


async def test_a_subgraph_that_is_down_yields_null_and_an_error_while_the_rest_answers(world):
    sdl = world.supergraph().replace(world.url("parking"), f"http://127.0.0.1:{free_port()}/parking")
    engine = Engine.from_sdl(sdl)
    try:
        response = await engine.run('{ resident(id: "r1") { id bookings { hours } } districts { name } }')
    finally:
        await engine.close()
    assert response.data["districts"][0]["name"] == "Panthéon"
    assert response.data["resident"] is None  # bookings is [Booking!]!: the nullable resident takes the null
    failure = next(e for e in response.errors if e.get("extensions", {}).get("code") == "SUBREQUEST_HTTP_ERROR")
    assert failure["extensions"]["serviceName"] == "parking"
    assert "Traceback" not in json.dumps(response.errors)


async def test_a_slow_subgraph_times_out_and_the_rest_answers(world):
    model = load_supergraph(world.supergraph())
    urls = {name: world.url(name) for name in model.subgraphs}
    engine = Engine(model, Subgraphs.over_http(urls, timeouts={"parking": 0.5}))
    try:
        response = await engine.run("{ slow districts { code } }")
        assert response.data is None  # slow is String!
        assert any("timed out" in e["message"] for e in response.errors)
        second = await engine.run("{ districts { code } }")
        assert len(second.data["districts"]) == 3
    finally:
        await engine.close()


async def test_bad_variables_are_a_request_error(engine):
    with pytest.raises(RequestError) as failure:
        await engine.run("query($kind: JobKind) { jobs(kind: $kind) { id } }", variables={"kind": "SKYDIVING"})
    assert failure.value.code == "BAD_USER_INPUT"


async def test_subscriptions_and_mutations_over_get_are_refused(engine):
    with pytest.raises(RequestError) as failure:
        await engine.run('mutation { renameResident(id: "r1", name: "x") { id } }', allowed_kinds=("query",))
    assert failure.value.code == "METHOD_NOT_ALLOWED"
