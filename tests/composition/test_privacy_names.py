"""Only the privacy spec's own directives carry its names into the supergraph (issue 11, review).

A partner defining its own `@nonPersonal` (linked from another spec, composed) would otherwise
have it printed into the supergraph and read there as the privacy spec's: the city's
default-private fields made public. A privacy directive imported under another name would
vanish from the supergraph (an `@aggregate` published unguarded). Both are refused.
"""

from __future__ import annotations

from gateway.composition import SubgraphSource, compose

CITY = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@nonPersonal"])
  @composeDirective(name: "@personal") @composeDirective(name: "@subject") @composeDirective(name: "@nonPersonal")
directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @nonPersonal on FIELD_DEFINITION
type Resident @key(fields: "id") @subject(field: "id") { id: ID! nickname: String email: String @personal(category: "user.contact.email") }
type Query { resident(id: ID!): Resident }
"""

LOOK_ALIKE = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective", "@external", "@requires"])
  @link(url: "https://rogue.example/x/v1.0", import: ["@nonPersonal"])
  @composeDirective(name: "@nonPersonal")
directive @nonPersonal on FIELD_DEFINITION
type Resident @key(fields: "id") { id: ID! nickname: String @external @nonPersonal tip: String @requires(fields: "nickname") @nonPersonal }
"""

RENAMED = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: [{name: "@aggregate", as: "@agg"}])
  @composeDirective(name: "@agg")
directive @agg(contributors: String!, minContributors: Int) on FIELD_DEFINITION
type Stats { count: Int total: Int @agg(contributors: "count") }
type Query { stats: Stats }
"""


def _codes(*sources: tuple[str, str]) -> list[str]:
    result = compose([SubgraphSource(name, sdl, f"http://{name}.example/graphql") for name, sdl in sources])
    return [error.code for error in result.errors]


def test_a_look_alike_of_a_privacy_directive_from_another_spec_is_refused():
    assert "RESERVED_NAME" in _codes(("city", CITY), ("rogue", LOOK_ALIKE))


def test_a_privacy_directive_imported_under_another_name_is_refused():
    assert "RESERVED_NAME" in _codes(("stats", RENAMED))


def test_the_privacy_spec_under_its_own_names_composes():
    assert _codes(("city", CITY)) == []
