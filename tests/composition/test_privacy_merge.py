"""Where privacy annotations of one coordinate meet within a composition, the stricter wins and
the supergraph carries one annotation per coordinate; interfaces never loosen their types."""

from __future__ import annotations

from gateway.composition import SubgraphSource, compose
from gateway.privacy import PrivacySchema
from gateway.supergraph import load_supergraph
from gateway.taxonomy import common_category

HEAD = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable", "@external", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@aggregate", "@nonPersonal"])
  @composeDirective(name: "@personal") @composeDirective(name: "@subject")
  @composeDirective(name: "@aggregate") @composeDirective(name: "@nonPersonal")
directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @aggregate(contributors: String!, minContributors: Int) on FIELD_DEFINITION
directive @nonPersonal on FIELD_DEFINITION
"""


def _compose(*subgraphs: str):
    return compose([SubgraphSource(f"s{index}", HEAD + sdl) for index, sdl in enumerate(subgraphs)])


def _lines(supergraph: str, field: str) -> list[str]:
    return [line.strip() for line in supergraph.splitlines() if line.strip().startswith(field + ":")]


def test_the_nearest_common_category_of_the_fides_taxonomy():
    assert common_category("user.contact.email", "user.contact.phone_number") == "user.contact"
    assert common_category("user.contact.email", "user.financial") == "user"
    assert common_category("user.contact.email", "user.contact") == "user.contact"
    assert common_category("user.name", "system.operations") is None


def test_a_shared_field_annotated_differently_takes_the_stricter_category_and_strategy():
    first = 'type Query { a: Person } type Person @key(fields: "id") @subject(field: "id") { id: ID! contact: String @shareable @personal(category: "user.contact.email", strategy: "partial") }'
    second = 'type Query { b: Person } type Person @key(fields: "id") @subject(field: "id") { id: ID! contact: String @shareable @personal(category: "user.contact.phone_number", strategy: "pseudonymise") }'
    result = _compose(first, second)
    assert result.ok, [str(e) for e in result.errors]
    assert _lines(result.supergraph, "contact") == [
        'contact: String @personal(category: "user.contact", strategy: "pseudonymise")'
    ]
    annotation = load_supergraph(result.supergraph).privacy.personal[("Person", "contact")]
    assert (annotation.category, annotation.strategy) == ("user.contact", "pseudonymise")


def test_the_strictest_strategy_is_null_then_pseudonymise_then_coarsen_then_partial():
    def merged(a: str, b: str) -> str:
        first = f'type Query {{ a: P }} type P @key(fields: "id") @subject(field: "id") {{ id: ID! v: String @shareable @personal(category: "user.name", strategy: "{a}") }}'
        second = f'type Query {{ b: P }} type P @key(fields: "id") {{ id: ID! v: String @shareable @personal(category: "user.name", strategy: "{b}") }}'
        result = _compose(first, second)
        assert result.ok, [str(e) for e in result.errors]
        return load_supergraph(result.supergraph).privacy.personal[("P", "v")].strategy

    assert merged("partial", "coarsen") == merged("coarsen", "partial") == "coarsen"
    assert merged("coarsen", "pseudonymise") == merged("pseudonymise", "coarsen") == "pseudonymise"
    assert merged("pseudonymise", "null") == merged("null", "partial") == "null"


def test_two_subjects_for_one_type_is_a_conflict():
    first = 'type Query { a: Person } type Person @key(fields: "id") @subject(field: "id") { id: ID! owner: ID! @shareable }'
    second = 'type Query { b: Person } type Person @key(fields: "id") @subject(field: "owner") { id: ID! owner: ID! @shareable }'
    result = _compose(first, second)
    assert not result.ok
    assert [e.code for e in result.errors] == ["PRIVACY_ANNOTATION_CONFLICT"]
    # the same subject repeated by two subgraphs is one subject
    same = _compose(first, second.replace('@subject(field: "owner")', '@subject(field: "id")'))
    assert same.ok and same.supergraph.count('@subject(field: "') == 1


def test_non_personal_only_where_every_subgraph_resolving_the_field_says_so():
    said = 'type Query { a: Person } type Person @key(fields: "id") @subject(field: "id") { id: ID! city: String @shareable @nonPersonal }'
    silent = 'type Query { b: Person } type Person @key(fields: "id") { id: ID! city: String @shareable }'
    result = _compose(said, silent)
    assert result.ok
    model = load_supergraph(result.supergraph)
    assert ("Person", "city") not in model.privacy.non_personal
    assert PrivacySchema(model).personal("Person", "city").category == "user"  # default private
    both = _compose(said, said.replace("a: Person", "b: Person"))
    assert PrivacySchema(load_supergraph(both.supergraph)).personal("Person", "city") is None
    # @personal beside @nonPersonal: personal
    personal = _compose(
        said,
        silent.replace(
            "city: String @shareable", 'city: String @shareable @personal(category: "user.contact.address")'
        ),
    )
    assert (
        PrivacySchema(load_supergraph(personal.supergraph)).personal("Person", "city").category
        == "user.contact.address"
    )


def test_an_external_re_annotation_meets_the_definition_and_cannot_loosen_it():
    city = 'type Query { people: [Person] } type Person @key(fields: "id") @subject(field: "id") { id: ID! email: String @personal(category: "user.contact.email") }'
    partner = (
        'type Person @key(fields: "id") { id: ID! email: String @external @personal(category: "user.financial") '
        'score: Int @requires(fields: "email") @nonPersonal }'
    )
    result = compose(
        [
            SubgraphSource("city", HEAD + city),
            SubgraphSource(
                "partner", HEAD.replace('"@composeDirective"]', '"@composeDirective", "@requires"]') + partner
            ),
        ]
    )
    assert result.ok, [str(e) for e in result.errors]
    assert _lines(result.supergraph, "email")[0].endswith(
        '@personal(category: "user")'
    )  # neither's basis covers it now
    assert result.supergraph.count('@personal(category: "') == 1


def test_different_contributor_counts_for_one_aggregate_conflict():
    first = 'type Query { a: [Area] } type Area @key(fields: "code") { code: ID! n: Int @shareable m: Int @shareable avg: Float @shareable @aggregate(contributors: "n") }'
    second = 'type Query { b: [Area] } type Area @key(fields: "code") { code: ID! n: Int @shareable m: Int @shareable avg: Float @shareable @aggregate(contributors: "m") }'
    assert [e.code for e in _compose(first, second).errors] == ["PRIVACY_ANNOTATION_CONFLICT"]
    higher = second.replace('@aggregate(contributors: "m")', '@aggregate(contributors: "n", minContributors: 20)')
    result = _compose(first, higher)
    assert result.ok
    aggregate = load_supergraph(result.supergraph).privacy.aggregates[("Area", "avg")]
    assert (aggregate.contributors, aggregate.min_contributors) == ("n", 20)


INTERFACE = """
type Query { incidents: [Incident] }
interface Incident @subject(field: "reporterId") { id: ID! reporterId: ID! note: String @personal(category: "user.contact") }
type Pothole implements Incident @key(fields: "id") {
  id: ID! reporterId: ID! note: String @personal(category: "user.contact.email", strategy: "partial") depth: Int @nonPersonal
}
"""


def test_an_interface_annotation_meets_its_implementations_own_and_the_stricter_wins():
    result = _compose(INTERFACE)
    assert result.ok, [str(e) for e in result.errors]
    schema = PrivacySchema(load_supergraph(result.supergraph))
    note = schema.personal("Pothole", "note")
    assert (note.category, note.strategy) == ("user.contact", "partial")  # broader of the two, the declared strategy
    assert schema.subject_field("Pothole") == "reporterId"  # inherited
    assert schema.personal("Pothole", "reporterId").category == "user.unique_id"  # the subject field, by default
    assert schema.personal("Pothole", "depth") is None


def test_an_interface_subject_differing_from_the_types_own_is_a_conflict():
    result = _compose(
        INTERFACE.replace(
            'type Pothole implements Incident @key(fields: "id")',
            'type Pothole implements Incident @key(fields: "id") @subject(field: "id")',
        )
    )
    assert not result.ok
    assert "PRIVACY_ANNOTATION_CONFLICT" in {e.code for e in result.errors}


FIT = [
    ("poster: Person", "pseudonymise", False),  # an object
    ("poster: Person", "partial", False),
    ("poster: Person", "null", True),
    ("place: Point", "coarsen", True),  # latitude/longitude floats
    ("tags: [String]", "pseudonymise", False),  # a list
    ("age: Int", "partial", False),
    ("age: Int", "coarsen", True),
    ("handle: ID", "pseudonymise", True),
    ("handle: ID", "coarsen", False),
    ("active: Boolean", "coarsen", False),
    ("kind: Kind", "partial", False),  # an enum
]


def test_a_declared_strategy_must_fit_its_fields_type():
    for field, strategy, fits in FIT:
        name = field.split(":")[0]
        sdl = (
            f"type Query {{ jobs: [Job] }} enum Kind {{ A B }} type Point {{ latitude: Float longitude: Float }} "
            f'type Person @key(fields: "id") @subject(field: "id") {{ id: ID! }} '
            f'type Job @key(fields: "id") @subject(field: "posterId") {{ id: ID! @nonPersonal posterId: ID! {field} @personal(category: "user.unique_id", strategy: "{strategy}") }}'
        )
        result = _compose(sdl)
        codes = [e.code for e in result.errors]
        assert codes == ([] if fits else ["PRIVACY_STRATEGY_UNFIT"]), (field, strategy, codes)
        if not fits:
            assert f"Job.{name}" in result.errors[0].message
