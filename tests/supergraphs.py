"""Writing small supergraphs by hand in tests: the join/link preamble, then the types."""

from __future__ import annotations

PREAMBLE = """
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)
  @link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)
{ query: Query %MUTATION% }
directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar join__FieldSet
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }
"""


def supergraph(body: str, graphs: dict[str, str] | None = None, *, mutation: bool = False) -> str:
    """A supergraph with `graphs` (name -> url) and the given type definitions."""
    graphs = graphs or {name: f"http://127.0.0.1:9/{name}" for name in ("a", "b", "c")}
    values = "\n".join(f'  {name.upper()} @join__graph(name: "{name}", url: "{url}")' for name, url in graphs.items())
    preamble = PREAMBLE.replace("%MUTATION%", "mutation: Mutation" if mutation else "")
    return preamble + "enum join__Graph {\n" + values + "\n}\n" + body
