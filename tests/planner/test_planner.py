"""Query planning on the world's supergraph and on small hand-written ones. No I/O here."""

from __future__ import annotations

import pytest

from gateway.planner import DocumentError, NField, Planner, PlanningError, RepresentationField
from gateway.supergraph import load_supergraph
from tests.supergraphs import supergraph
from tests.world.server import SUPERGRAPH_FILE


@pytest.fixture(scope="module")
def planner():
    return Planner(load_supergraph(SUPERGRAPH_FILE.read_text()))


def plan(planner: Planner, query: str, variables: dict | None = None, operation_name: str | None = None):
    return planner.plan(planner.prepare(query, operation_name), variables or {})


def shape(query_plan) -> list[tuple]:
    """(subgraph, entity?, merge path, dependencies) per node, in execution order."""
    return [(n.subgraph, n.is_entity_fetch, "/".join(n.merge_path), n.depends_on) for n in query_plan.nodes]


def test_root_fields_split_per_subgraph_and_run_in_parallel(planner):
    query_plan = plan(planner, "{ residents { id } jobs { title } districts { name } }")
    assert sorted(shape(query_plan)) == [
        ("districts", False, "", ()),
        ("jobs", False, "", ()),
        ("residents", False, "", ()),
    ]


def test_root_fields_of_one_subgraph_share_a_fetch(planner):
    query_plan = plan(planner, '{ residents { id } r1: resident(id: "r1") { name } }')
    assert shape(query_plan) == [("residents", False, "", ())]
    assert 'r1: resident(id: "r1")' in query_plan.nodes[0].document


def test_entity_fetch_through_key(planner):
    query_plan = plan(planner, "{ residents { name bookings { hours } } }")
    assert shape(query_plan) == [("residents", False, "", ()), ("parking", True, "residents/@", (0,))]
    root, entities = query_plan.nodes
    assert "__typename" in root.document and "id" in root.document
    assert "_entities(representations: $representations)" in entities.document
    assert "... on Resident" in entities.document
    assert entities.representations["Resident"].typename == "Resident"


def test_requires_fields_are_fetched_first_and_sent_in_the_representation(planner):
    query_plan = plan(planner, '{ resident(id: "r1") { district { name } } }')
    assert shape(query_plan) == [("residents", False, "", ()), ("districts", True, "resident", (0,))]
    assert "districtCode" in query_plan.nodes[0].document  # inaccessible to clients, usable inside
    entries = query_plan.nodes[1].representations["Resident"].entries
    assert [(e.name, e.is_key) for e in entries] == [("id", True), ("districtCode", False)]


def test_a_key_field_the_client_uses_for_something_else_travels_under_the_gateways_own_alias(planner):
    query_plan = plan(planner, '{ resident(id: "r1") { id: email bookings { hours } } }')
    assert "_cg_1_id: id" in query_plan.nodes[0].document
    assert query_plan.nodes[1].representations["Resident"].entries == (
        RepresentationField("id", "_cg_1_id", None, True),
    )


def test_a_representation_reads_the_gateways_own_key_of_a_field_before_a_client_alias():
    # the privacy stage selects the subject field as `_cg_subject` where the client aliased it
    # (`myid: id`): the representation reads `_cg_subject`, the key the privacy guard reads, so no
    # answer can name one resident for the entity fetch and another for the decision
    def select_subject(selections, root_type):
        (resident,) = selections
        return (resident.with_selections(resident.selections + (NField("_cg_subject", "id", "", frozenset(), None),)),)

    planner = Planner(load_supergraph(SUPERGRAPH_FILE.read_text()), augment=select_subject)
    query_plan = plan(planner, '{ resident(id: "r1") { myid: id bookings { hours } } }')
    assert "myid: id" in query_plan.nodes[0].document and "_cg_subject: id" in query_plan.nodes[0].document
    assert query_plan.nodes[1].representations["Resident"].entries == (
        RepresentationField("id", "_cg_subject", None, True),
    )


def test_provides_keeps_a_provided_field_local(planner):
    query_plan = plan(planner, "{ jobs { postedBy { name } } }")
    assert shape(query_plan) == [("jobs", False, "", ())]
    # without @provides (takenBy), name needs the residents subgraph
    query_plan = plan(planner, "{ jobs { takenBy { name } } }")
    assert shape(query_plan) == [("jobs", False, "", ()), ("residents", True, "jobs/@/takenBy", (0,))]


def test_override_routes_to_the_overriding_subgraph(planner):
    query_plan = plan(planner, "{ residents { nickname } }")
    assert shape(query_plan) == [("residents", False, "", ()), ("jobs", True, "residents/@", (0,))]
    assert "nickname" not in query_plan.nodes[0].document


def test_three_subgraphs_in_two_waves(planner):
    query_plan = plan(planner, "{ jobs { title postedBy { email bookings { hours } } } }")
    assert shape(query_plan) == [
        ("jobs", False, "", ()),
        ("residents", True, "jobs/@/postedBy", (0,)),
        ("parking", True, "jobs/@/postedBy", (0,)),
    ]


def test_interface_object_fields_and_concrete_types(planner):
    # ratings returns Place as an @interfaceObject: parking resolves the concrete type
    query_plan = plan(planner, "{ topRated { rating ... on Spot { pricePerHour } } }")
    assert shape(query_plan) == [("ratings", False, "", ()), ("parking", True, "topRated/@", (0,))]
    entity = query_plan.nodes[1]
    assert entity.representations["Place"].typename == "Place"
    assert "... on Place" in entity.document and "... on Spot" in entity.document
    # from concrete types, the interface object is reached with the interface's key
    query_plan = plan(planner, "{ places { name rating } }")
    assert shape(query_plan) == [("parking", False, "", ()), ("ratings", True, "places/@", (0,))]
    assert query_plan.nodes[1].representations["Spot"].typename == "Place"
    assert query_plan.nodes[1].representations["Garage"].typename == "Place"


def test_abstract_selections_are_expanded_per_possible_type(planner):
    query_plan = plan(planner, "{ feed { ... on Job { title takenBy { name } } ... on Announcement { text } } }")
    assert shape(query_plan) == [("jobs", False, "", ()), ("residents", True, "feed/@/takenBy", (0,))]
    assert "... on Job" in query_plan.nodes[0].document
    assert "... on Announcement" in query_plan.nodes[0].document


def test_mutation_fields_run_in_order(planner):
    query_plan = plan(
        planner,
        'mutation { a: takeJob(jobId: "j2", residentId: "r3") { takenBy { name } } b: renameResident(id: "r3", name: "C") { name } }',
    )
    assert shape(query_plan) == [
        ("jobs", False, "", ()),
        ("residents", True, "a/takenBy", (0,)),
        ("residents", False, "", (0, 1)),
    ]
    assert query_plan.nodes[0].document.startswith("mutation")


def test_consecutive_mutations_of_one_subgraph_share_a_fetch(planner):
    query_plan = plan(
        planner,
        'mutation { a: takeJob(jobId: "j2", residentId: "r3") { id } b: takeJob(jobId: "j1", residentId: "r3") { id } }',
    )
    assert shape(query_plan) == [("jobs", False, "", ())]


def test_skip_and_include_are_decided_per_variable_values(planner):
    query = "query($withBookings: Boolean!) { residents { id bookings @include(if: $withBookings) { hours } } }"
    with_bookings = plan(planner, query, {"withBookings": True})
    without = plan(planner, query, {"withBookings": False})
    assert len(with_bookings.nodes) == 2 and len(without.nodes) == 1
    assert plan(planner, query, {"withBookings": True}) is with_bookings  # cached


def test_variables_are_declared_where_used(planner):
    query_plan = plan(
        planner, "query($kind: JobKind, $id: ID!) { jobs(kind: $kind) { id } resident(id: $id) { name } }"
    )
    documents = {n.subgraph: n for n in query_plan.nodes}
    assert "$kind: JobKind" in documents["jobs"].document and "$id" not in documents["jobs"].document
    assert documents["residents"].variable_names == ("id",)


def test_plans_are_cached_per_document(planner):
    first = plan(planner, "{ residents { id } }")
    assert plan(planner, "{ residents { id } }") is first


def test_bad_documents_are_reported_with_codes(planner):
    with pytest.raises(DocumentError) as parse_error:
        planner.prepare("{ residents { id }", None)
    assert parse_error.value.code == "GRAPHQL_PARSE_FAILED"
    with pytest.raises(DocumentError) as validation_error:
        planner.prepare("{ residents { districtCode } }", None)
    assert validation_error.value.code == "GRAPHQL_VALIDATION_FAILED"
    with pytest.raises(DocumentError) as ambiguous:
        planner.prepare("query A { residents { id } } query B { jobs { id } }", None)
    assert ambiguous.value.code == "OPERATION_RESOLUTION_FAILURE"


UNREACHABLE = supergraph(
    """
    type Query @join__type(graph: A) { things: [Thing] @join__field(graph: A) }
    type Thing @join__type(graph: A, key: "id") @join__type(graph: B, key: "id", resolvable: false) {
      id: ID!
      secret: String @join__field(graph: B)
    }
    """
)


def test_a_field_no_route_reaches_is_a_planning_error():
    planner = Planner(load_supergraph(UNREACHABLE))
    with pytest.raises(PlanningError, match=r"things\.secret"):
        plan(planner, "{ things { secret } }")
    assert len(plan(planner, "{ things { id } }").nodes) == 1


SHAREABLE = supergraph(
    """
    type Query @join__type(graph: A) @join__type(graph: B) {
      a: Viewer @join__field(graph: A)
      viewer: Viewer
    }
    type Viewer @join__type(graph: A) @join__type(graph: B) {
      name: String
      onlyA: String @join__field(graph: A)
      onlyB: String @join__field(graph: B)
    }
    """
)


def test_shareable_fields_prefer_a_subgraph_already_used():
    planner = Planner(load_supergraph(SHAREABLE))
    assert shape(plan(planner, "{ a { name } viewer { name } }")) == [("a", False, "", ())]


def test_a_shareable_value_type_is_fetched_from_each_subgraph_that_has_a_part():
    planner = Planner(load_supergraph(SHAREABLE))
    query_plan = plan(planner, "{ viewer { onlyA onlyB } }")
    assert sorted(shape(query_plan)) == [("a", False, "", ()), ("b", False, "", ())]


CONFLICTING_TYPES = supergraph(
    """
    type Query @join__type(graph: A) { accounts: [Account] @join__field(graph: A) }
    union Account @join__type(graph: A) @join__unionMember(graph: A, member: "User") @join__unionMember(graph: A, member: "Admin") = User | Admin
    type User @join__type(graph: A) { id: ID @join__field(graph: A, type: "ID!") }
    type Admin @join__type(graph: A) { id: ID }
    """
)


def test_same_response_key_with_different_subgraph_types_gets_an_alias():
    planner = Planner(load_supergraph(CONFLICTING_TYPES))
    query_plan = plan(planner, "{ accounts { ... on User { id } ... on Admin { id } } }")
    document = query_plan.nodes[0].document
    assert "_cg_id_1: id" in document  # the gateway's own aliases carry its reserved prefix
    # the answer's alias is undone as it merges: a User's `_cg_id_1` goes to the tree as `id`
    accounts = query_plan.nodes[0].selection.view(None).nested[0][1]
    assert accounts.view("User").renames == (("_cg_id_1", "id"),) and accounts.view("User").keys == {
        "__typename",
        "_cg_id_1",
    }
    assert accounts.view("Admin").renames == () and accounts.view("Admin").keys == {"__typename", "id"}


def test_hostile_documents_are_refused_with_codes(planner):
    deep = "{ residents { " + "jobsPosted { postedBy { " * 40 + "id" + " } }" * 40 + " } }"
    with pytest.raises(DocumentError) as too_deep:
        planner.prepare(deep, None)
    assert too_deep.value.code == "MAX_DEPTH_EXCEEDED"
    with pytest.raises(DocumentError) as too_long:
        planner.prepare("{ " + "residents { id } " * 20_000 + "}", None)
    assert too_long.value.code == "GRAPHQL_PARSE_FAILED"
    with pytest.raises(DocumentError) as nested:
        planner.prepare("{ residents(" + "[" * 3000 + "]" * 3000 + ") { id } }", None)
    assert nested.value.code in ("GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED")
