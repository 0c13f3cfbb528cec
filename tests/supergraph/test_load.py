"""Loading supergraphs: join facts, the API schema, and what is refused."""

from __future__ import annotations

import pytest
from graphql import print_schema

from gateway.supergraph import SupergraphError, load_supergraph
from tests.world.server import SUPERGRAPH_FILE


@pytest.fixture(scope="module")
def model():
    return load_supergraph(SUPERGRAPH_FILE.read_text())


def test_subgraphs_and_urls_are_read(model):
    assert sorted(model.subgraphs) == ["districts", "jobs", "parking", "ratings", "residents"]
    assert model.subgraphs["jobs"].url == "http://127.0.0.1:4101/jobs"
    assert model.subgraphs["jobs"].enum_value == "JOBS"


def test_entity_keys_per_subgraph(model):
    resident = model.types["Resident"]
    assert sorted(resident.subgraphs) == ["districts", "jobs", "parking", "residents"]
    assert [k.fields for k in resident.subgraphs["parking"].keys] == ["id"]
    assert model.types["Place"].subgraphs["ratings"].is_interface_object
    assert not model.types["Place"].subgraphs["parking"].is_interface_object


def test_field_facts(model):
    assert model.field_join("Resident", "districtCode", "districts").external
    assert model.resolves("Resident", "districtCode", "districts") is None
    assert model.resolves("Resident", "districtCode", "residents") is not None
    district = model.field_join("Resident", "district", "districts")
    assert district.requires is not None and district.requires[0].name.value == "districtCode"
    assert model.field_join("Job", "postedBy", "jobs").provides is not None
    assert model.field_join("Resident", "nickname", "jobs").override == "residents"
    assert model.subgraphs_resolving("Resident", "nickname") == ["jobs"]
    # a field without @join__field lives wherever its type does
    assert model.subgraphs_resolving("Resident", "id") == ["districts", "jobs", "parking", "residents"]


def test_possible_types_per_subgraph(model):
    assert model.possible_types_in("Place", "parking") == ["Garage", "Spot"]
    assert model.possible_types_in("Place", "ratings") == []  # an interface object there
    assert model.possible_types_in("FeedItem", "jobs") == ["Announcement", "Job"]


def test_api_schema_hides_machinery_and_inaccessible_elements(model):
    api = print_schema(model.api_schema)
    for hidden in ("join__", "link__", "@link", "@join", "@inaccessible", "districtCode"):
        assert hidden not in api
    assert "type Resident" in api and "nickname: String" in api
    assert "districtCode" in print_schema(model.schema)


def _minimal(join_version: str, extra_link: str = "", prefix: str = "join", type_directives: str = "") -> str:
    return f"""
    schema
      @link(url: "https://specs.apollo.dev/link/v1.0")
      @link(url: "https://specs.apollo.dev/join/{join_version}", for: EXECUTION{', as: "' + prefix + '"' if prefix != "join" else ""})
      {extra_link}
    {{ query: Query }}
    directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
    directive @{prefix}__graph(name: String!, url: String!) on ENUM_VALUE
    directive @{prefix}__type(graph: {prefix}__Graph!, key: {prefix}__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true) repeatable on OBJECT | INTERFACE
    directive @{prefix}__field(graph: {prefix}__Graph, requires: {prefix}__FieldSet, provides: {prefix}__FieldSet, type: String, external: Boolean) repeatable on FIELD_DEFINITION
    scalar {prefix}__FieldSet
    scalar link__Import
    enum link__Purpose {{ SECURITY EXECUTION }}
    enum {prefix}__Graph {{ A @{prefix}__graph(name: "a", url: "http://127.0.0.1:1/a") }}
    type Query @{prefix}__type(graph: A) {{ hello: String {type_directives} }}
    """


@pytest.mark.parametrize("version", ["v0.2", "v0.3", "v0.4", "v0.5"])
def test_join_versions_load(version):
    model = load_supergraph(_minimal(version))
    assert model.subgraphs_resolving("Query", "hello") == ["a"]
    assert "hello" in model.api_schema.query_type.fields


def test_renamed_join_prefix():
    model = load_supergraph(_minimal("v0.3", prefix="j"))
    assert model.subgraphs["a"].url == "http://127.0.0.1:1/a"
    assert "j__Graph" not in model.api_schema.type_map


def test_unknown_execution_feature_is_refused():
    with pytest.raises(SupergraphError, match="unsupported feature"):
        load_supergraph(
            _minimal("v0.3", extra_link='@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)')
        )


def test_documents_that_are_not_supergraphs_are_refused():
    with pytest.raises(SupergraphError, match="not valid GraphQL"):
        load_supergraph("type Query {")
    with pytest.raises(SupergraphError, match="no join spec"):
        load_supergraph("type Query { hello: String }")
