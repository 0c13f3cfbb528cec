"""Reading a connector SDL: every problem at once, each with its code and its line:column in the
SDL (inside a mapping string, the offending character's); what composition reads composes."""

from __future__ import annotations

import pytest

from gateway.composition import SubgraphSource, compose
from gateway.connect import CONNECT_SPEC, ConnectError, read_connect_sdl
from tests.connect.sdl import HEAD as TEMPLATE_HEAD
from tests.connect.sdl import parking

BASE = "https://api.parking.example/v1"
HEAD = TEMPLATE_HEAD.replace("BASE", BASE)


def problems(sdl: str, base_url: str | None = BASE) -> list[tuple[str, int | None, int | None]]:
    with pytest.raises(ConnectError) as caught:
        read_connect_sdl(sdl, base_url=base_url)
    return [(p.code, p.line, p.column) for p in caught.value.problems]


def messages(sdl: str, base_url: str | None = BASE) -> list[str]:
    with pytest.raises(ConnectError) as caught:
        read_connect_sdl(sdl, base_url=base_url)
    return [p.message for p in caught.value.problems]


def test_the_parking_connector_is_valid_and_names_its_origin():
    schema = read_connect_sdl(parking(BASE), base_url=BASE)
    assert schema.origins == frozenset({"https://api.parking.example"})
    assert CONNECT_SPEC in schema.sdl and CONNECT_SPEC not in schema.composition_sdl
    assert "@source" not in schema.composition_sdl and "@connect" not in schema.composition_sdl
    # the type's connector made Spot an entity keyed by what it reads from $this
    assert 'type Spot @key(fields: "id")' in schema.composition_sdl
    # blanked, never removed: every line keeps its number
    assert schema.composition_sdl.count("\n") == schema.sdl.count("\n")


def test_an_unknown_field_in_a_selection_is_located_inside_the_string():
    sdl = (
        HEAD
        + """
type Query {
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: \"\"\"
    $.results {
      id
      nme: label
    }
  \"\"\")
}
type Spot { id: ID name: String }
"""
    )
    found = problems(sdl)
    lines = sdl.splitlines()
    nme = next(i for i, line in enumerate(lines) if "nme: label" in line)
    spot = next(i for i, line in enumerate(lines) if line.startswith("type Spot"))
    assert ("CONNECT_UNKNOWN_FIELD", nme + 1, lines[nme].index("nme") + 1) in found
    assert any('Query.spots: selection: unknown field "nme" of Spot at 3:3' in m for m in messages(sdl))
    # Spot.name: nothing gives it a value
    assert ("CONNECT_MISSING_RESOLVER", spot + 1, lines[spot].index("name") + 1) in found


def test_a_selection_that_does_not_parse_is_located_in_a_one_line_string():
    sdl = (
        HEAD
        + """
type Query { spot: Thing @connect(source: "parking", http: { GET: "/x" }, selection: "id name: ->first") }
type Thing { id: ID name: String }
"""
    )
    [(code, line, column)] = problems(sdl)
    assert code == "CONNECT_INVALID_SELECTION" and line == 6
    assert sdl.splitlines()[line - 1][column - 1 :].startswith("->first")


def test_every_problem_is_reported_at_once():
    sdl = (
        HEAD.replace(
            'headers: [{ name: "x-partner-client", value: "citygate" }]',
            'headers: [{ name: "authorization", from: "authorization" }]',
        )
        + """
type Query {
  a: Int @connect(source: "nowhere", http: { GET: "/a" }, selection: "$.a")
  b: Int @connect(http: { GET: "https://evil.example/b" }, selection: "$.b")
  c: Int @connect(source: "parking", http: { GET: "/c/{$config.token}" }, selection: "$.c")
  d: Int @connect(source: "parking", http: { GET: "/d/{$this.id}" }, selection: "$.d")
  e(x: Int): Int @connect(source: "parking", http: { GET: "/e/{$args.y}" }, selection: "$.e")
  f: Int
  g: Thing @connect(source: "parking", http: { GET: "/g" }, selection: "inner")
  h: Int @connect(source: "parking", http: { GET: "/h", headers: [{ name: "Host", value: "x" }] }, selection: "$.h")
}
type Thing { inner: Thing }
"""
    )
    codes = [code for code, _, _ in problems(sdl)]
    for expected in (
        "CONNECT_HEADER_REFUSED",  # from: forwards a resident's header; and Host
        "CONNECT_UNKNOWN_SOURCE",
        "CONNECT_URL_ORIGIN",
        "CONNECT_INVALID_VARIABLE",  # $config, $this on a root field, $args.y
        "CONNECT_MISSING_RESOLVER",  # f
        "CONNECT_INVALID_SELECTION",  # Thing.inner without { ... }
    ):
        assert expected in codes, (expected, codes)
    assert codes.count("CONNECT_HEADER_REFUSED") == 2
    assert codes.count("CONNECT_INVALID_VARIABLE") == 3


def test_a_source_off_the_connectors_origin_is_refused_and_without_a_base_its_origin_counts():
    sdl = parking("https://other.example/v1")
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_URL_ORIGIN"]
    schema = read_connect_sdl(sdl, base_url=None)
    assert schema.origins == frozenset({"https://other.example"})


def test_urls_whose_origin_is_an_expression_or_not_http_are_refused():
    for url in (
        "https://{$args.host}/x",
        "ftp://api.parking.example/x",
        "relative/x",
        "https://user:pw@api.parking.example/x",
    ):
        sdl = (
            HEAD.replace(f'baseURL: "{BASE}", ', "")
            + f"""
type Query {{ a(host: String): Int @connect(http: {{ GET: "{url}" }}, selection: "$.a") }}
"""
        )
        assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_URL"], url


def test_an_entity_connector_must_read_a_key_and_fit_declared_keys():
    sdl = (
        HEAD
        + """
type Query { spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: "$.results { id name }") }
type Spot @key(fields: "id")
  @connect(source: "parking", http: { GET: "/spots/by-name/{$this.name}" }, selection: "id name") {
  id: ID!
  name: String
}
"""
    )
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_KEY"]
    sdl = sdl.replace("{$this.name}", "all").replace("/by-name/", "/")
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_VARIABLE"]


def test_an_entity_without_a_connector_resolves_only_keys_and_connected_fields():
    sdl = (
        HEAD
        + """
type Query { spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: "$.results { id name }") }
type Spot @key(fields: "id") {
  id: ID!
  name: String
}
"""
    )
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_MISSING_RESOLVER"]


def test_without_the_connect_link_or_with_an_unknown_version():
    sdl = """type Query { a: Int @connect(http: { GET: "https://api.parking.example/a" }, selection: "$.a") }"""
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_LINK"]
    sdl = parking(BASE).replace("connect/v0.1", "connect/v9.9")
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_LINK"]


def test_a_syntax_error_in_the_sdl():
    [(code, line, column)] = problems("type Query { a: }")
    assert (code, line, column) == ("CONNECT_INVALID_SCHEMA", 1, 17)


def test_an_oversized_mapping_is_refused_before_it_is_parsed():
    selection = "id " * 30000
    sdl = (
        HEAD
        + f"""
type Query {{ a: Thing @connect(source: "parking", http: {{ GET: "/a" }}, selection: "{selection}") }}
type Thing {{ id: ID }}
"""
    )
    assert [c for c, _, _ in problems(sdl)] == ["CONNECT_INVALID_SELECTION"]


CITY = """extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable"])
type Query { districts: [District] }
type District @key(fields: "code") { code: ID! name: String @shareable population: Int }
"""


def test_the_composition_sdl_composes_with_a_subgraph_sharing_an_entity():
    connector = (
        HEAD
        + """
type Query { spots: [Spot] @connect(source: "parking", http: { GET: "/spots" }, selection: "$.results { id label district: { code: districtCode } }") }
type Spot @connect(source: "parking", http: { GET: "/spots/{$this.id}" }, selection: "id label district: { code: districtCode }") {
  id: ID!
  label: String
  district: District
}
type District @key(fields: "code") {
  code: ID!
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots?district={$this.code}" }, selection: "$.results { id label district: { code: districtCode } }")
}
"""
    )
    schema = read_connect_sdl(connector, base_url=BASE)
    result = compose(
        [
            SubgraphSource("city", CITY, "http://city.example/graphql"),
            SubgraphSource("parking", schema.composition_sdl, BASE),
        ]
    )
    assert result.ok, [str(e) for e in result.errors]
    assert "spots: [Spot]" in result.supergraph and 'join__type(graph: PARKING, key: "id")' in result.supergraph


def test_composition_reports_the_partners_own_lines():
    connector = (
        HEAD
        + """
type Query {
  spots: [Spot] @connect(source: "parking", http: { GET: "/spots" },
    selection: "$.results { id _cg_secret: label }")
}
type Spot @connect(source: "parking", http: { GET: "/spots/{$this.id}" }, selection: "id _cg_secret: label") {
  id: ID!
  _cg_secret: String
}
"""
    )
    schema = read_connect_sdl(connector, base_url=BASE)
    # a name composition refuses (the gateway's reserved prefix): located at the partner's own line
    result = compose(
        [SubgraphSource("city", CITY, "http://city.example"), SubgraphSource("parking", schema.composition_sdl, BASE)]
    )
    assert [e.code for e in result.errors] == ["RESERVED_NAME"]
    line = connector.splitlines().index("  _cg_secret: String") + 1
    assert result.errors[0].locations == ((line, 3),)
