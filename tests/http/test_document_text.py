"""Large documents are measured from their text before graphql-core parses them (planner/_limits.py, check_text).

graphql-core's parser costs ~10 µs a token on the event loop: 1,000 aliases (41 KB) held every other
request ~100 ms while the document limits waited for its tree. Here: the alias attacks and a 1 MB
document are refused by a real `citygate serve` with the codes the limits always used while a probe
keeps being answered; in-process, the parser is never called for them; and what check_text reads
from the text is what check_document measures on the tree, for documents using every construct.
"""

from __future__ import annotations

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse
from graphql.language import Lexer, Source, TokenKind

import gateway.planner as planner_module
from gateway.planner import DocumentError, DocumentLimits, LimitExceeded, Planner
from gateway.planner import _limits as limits_module
from gateway.supergraph import load_supergraph
from tests.http.edge import Probe, post_graphql, refused, serve_world, world_to_serve

CLIENT_KEY = "ck_document-text-client"


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: districts {{ code name population }}" for i in range(count)) + " }"


def distinct_fields(size: int) -> str:
    """A document of about `size` characters selecting distinct fields."""
    return "{ " + " ".join(f"field{i} {{ code name population }}" for i in range(size // 36)) + " }"


ATTACKS = {
    "250 aliases": (aliases(250), "MAX_ALIASES_EXCEEDED"),
    "1,000 aliases": (aliases(1000), "MAX_EXPANDED_SIZE_EXCEEDED"),  # 4,000 fields: the first limit over
    "5,000 aliases (209 KB)": (aliases(5000), "GRAPHQL_PARSE_FAILED"),  # over the document size
    "1 MB of distinct fields": (distinct_fields(1_000_000), "GRAPHQL_PARSE_FAILED"),
    "1,000 aliases, then no GraphQL": (aliases(1000)[:-1] + "~ }", "MAX_EXPANDED_SIZE_EXCEEDED"),
}


@pytest.fixture(scope="module")
def served_world(world_server, tmp_path_factory):
    return world_to_serve(world_server, tmp_path_factory.mktemp("document-text"), CLIENT_KEY)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_large_document_is_refused_with_the_limits_code(production, attack):
    query, code = ATTACKS[attack]
    with Probe(production.url) as probe:
        response, _ = post_graphql(production, query)
    refused(response, code)
    probe.assert_kept_answering()
    answered, _ = post_graphql(production, "{ districts { code } }")
    assert answered.status_code == 200 and answered.json()["data"]["districts"], answered.text[:300]


def test_the_document_size_follows_the_configuration(served_world):
    small = serve_world(served_world, env={"CITYGATE_MAX_DOCUMENT_SIZE": "100"})
    try:
        within = "{ districts { code } }"
        beyond = "{ districts { code name } }" + " " * 80  # 107 characters, 8 tokens
        assert post_graphql(small, within)[0].json()["data"]["districts"]
        assert "107 characters" in refused(post_graphql(small, beyond)[0], "GRAPHQL_PARSE_FAILED")
    finally:
        small.stop()


@pytest.fixture(scope="module")
def in_process_planner(world_server) -> Planner:
    return Planner(load_supergraph(world_server.supergraph()))


def test_refused_documents_never_reach_the_parser(in_process_planner, monkeypatch):
    parsed: list[str] = []

    def counting_parse(text, **options):
        parsed.append(text)
        return parse(text, **options)

    monkeypatch.setattr(planner_module, "parse", counting_parse)
    for query, code in ATTACKS.values():
        with pytest.raises(DocumentError) as refusal:
            in_process_planner.prepare(query, None)
        assert refusal.value.code == code
    assert parsed == []
    in_process_planner.prepare("{ districts { code } }", None)
    assert parsed == ["{ districts { code } }"]


# Documents using every construct check_text must follow: fragments (spread before and after their
# definition, nested, cyclic), inline fragments with and without a type, directives with arguments,
# variables with object and list defaults, strings and block strings and comments holding braces,
# keywords used as field names and aliases, several operations.
DOCUMENTS = [
    "{ a }",
    'query Q($x: In = {a: {b: 1}}, $y: [Int!]! = [1, 2]) @d(x: {y: "}"}) { a(x: {b: "{ c }"}) @skip(if: $y) '
    "{ b c: d ...F ... on T { e f { g } } ... @include(if: true) { h } } } "
    "fragment F on T @x { z y: w { v } ...G } fragment G on T { u }",
    '# a comment { a b c }\nquery { a(s: """block { x } \\""" y""") { b # c { d }\n } }',
    "mutation M { a { b } } subscription S { c } { d e f }",
    "{ on fragment query: mutation { subscription } ...f } fragment f on on { x ... on on { y } }",
    "{ a(x: -1.5e3, y: 0, z: $v, w: ENUM, n: null, l: [[{a: [1]}]]) }",
    "{ ...A } fragment A on Q { ...B ...B } fragment B on Q { ...A a }",
    "fragment Late on Q { x: a { y: b { c } } } { ...Late ...Late k: l }",
    "\ufeff{ a, b, c }",
]


def _tree_measures(text: str) -> list:
    document = parse(text)
    definitions = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fragments = limits_module._measure_fragments(definitions)
    return [
        limits_module._measure(d.selection_set, fragments)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]


def _graphql_core_tokens(text: str) -> int:
    lexer, count = Lexer(Source(text)), 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_text_is_measured_as_the_parsed_document(text):
    measures = _tree_measures(text)
    for name, value in (
        ("max_depth", "depth"),
        ("max_fields", "fields"),
        ("max_aliases", "aliases"),
        ("max_root_fields", "top"),
    ):
        highest = max(getattr(measure, value) for measure in measures)
        limits_module.check_text(text, DocumentLimits(**{name: highest}))  # at the limit: allowed
        with pytest.raises(LimitExceeded):
            limits_module.check_text(text, DocumentLimits(**{name: highest - 1}))
        with pytest.raises(LimitExceeded):
            limits_module.check_document(parse(text), DocumentLimits(**{name: highest - 1}))
    tokens = _graphql_core_tokens(text)
    limits_module.check_text(text, DocumentLimits(max_tokens=tokens))
    with pytest.raises(LimitExceeded) as too_many:
        limits_module.check_text(text, DocumentLimits(max_tokens=tokens - 1))
    assert too_many.value.code == "GRAPHQL_PARSE_FAILED"
