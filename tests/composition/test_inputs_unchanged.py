"""Composition reads the parsed subgraphs and never changes them: the federation rules that make a
field shareable (a `@key` selects it; its `@override` names no composed subgraph) live in copies
(composed_view), which the merge and the registry's rules read."""

from __future__ import annotations

import copy

from gateway.composition import SubgraphSource, compose
from gateway.composition._fieldsets import check_field_sets
from gateway.composition._merge import Merger, composed_view
from gateway.composition._print import print_supergraph
from gateway.composition._subgraph import Subgraph, read_subgraph
from gateway.supergraph import load_supergraph

LINK = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable", "@override", "@external"])\n'

# Account's key selects Organisation.id: both subgraphs define it, neither says @shareable
ACCOUNTS = (
    LINK
    + """
type Query { account(id: ID!): Account }
type Organisation { id: ID! name: String }
type Account @key(fields: "id organisation { id }") { id: ID! organisation: Organisation! email: String }
"""
)
# `plan` overrides a subgraph that is not composed: the override is void, the field shareable
BILLING = (
    LINK
    + """
type Query { invoices: [Invoice!]! }
type Organisation { id: ID! }
type Account @key(fields: "id organisation { id }") {
  id: ID!
  organisation: Organisation! @shareable
  plan: String @override(from: "legacy")
}
type Invoice { id: ID! account: Account! }
"""
)


def _parsed() -> list[Subgraph]:
    parsed = []
    for name, sdl in (("accounts", ACCOUNTS), ("billing", BILLING)):
        subgraph, errors = read_subgraph(name, sdl, f"http://127.0.0.1:25501/{name}")
        assert errors == [] and subgraph is not None
        parsed.append(subgraph)
    return parsed


def _merge(subgraphs: list[Subgraph]) -> str:
    used: dict[str, set[tuple[str, str]]] = {}
    in_keys: dict[str, set[tuple[str, str]]] = {}
    for subgraph in subgraphs:
        errors, used[subgraph.name], in_keys[subgraph.name] = check_field_sets(subgraph)
        assert errors == []
    merger = Merger(subgraphs, used, in_keys)
    merged = merger.merge()
    assert merger.errors == [], [str(e) for e in merger.errors]
    return print_supergraph(merged, [], {})


def test_merging_the_same_parsed_subgraphs_twice_gives_the_same_supergraph_and_changes_nothing():
    parsed = _parsed()
    before = copy.deepcopy(parsed)
    first = _merge(parsed)
    assert parsed == before  # every type, field, flag and directive node as read
    second = _merge(parsed)
    assert parsed == before
    assert first == second
    model = load_supergraph(first)
    # the rules were applied all the same (no INVALID_FIELD_SHARING above for Organisation.id, which
    # only the key makes shareable), and `plan` stays in billing, overriding nothing
    assert "id" in model.types["Organisation"].fields
    assert all(join.override is None for join in model.types["Account"].fields["plan"].joins)


def test_the_composed_view_is_a_copy_with_the_rules_applied():
    accounts, billing = _parsed()
    _, _, in_keys = check_field_sets(accounts)
    assert ("Organisation", "id") in in_keys
    view = composed_view(accounts, in_keys, ["accounts", "billing"])
    assert view is not accounts
    assert view.types["Organisation"].fields["id"].shareable
    assert not accounts.types["Organisation"].fields["id"].shareable
    assert view.types["Account"] is accounts.types["Account"]  # what does not change is shared, not copied
    _, _, billing_keys = check_field_sets(billing)
    billing_view = composed_view(billing, billing_keys, ["accounts", "billing"])
    assert billing_view.types["Account"].fields["plan"].override is None
    assert billing_view.types["Account"].fields["plan"].shareable
    assert billing.types["Account"].fields["plan"].override == "legacy"
    # an override of a composed subgraph is kept, and nothing to change gives back the same object
    kept = composed_view(billing, (), ["accounts", "billing", "legacy"])
    assert kept.types["Account"].fields["plan"].override == "legacy"
    assert composed_view(view, in_keys, ["accounts", "billing"]) is view


def test_compose_reports_the_subgraphs_as_composed():
    """The registry's ownership rules read `result.subgraphs`: the fields a key makes shareable
    must read as shareable there (else a partner could share another's field unseen)."""
    result = compose([SubgraphSource("accounts", ACCOUNTS), SubgraphSource("billing", BILLING)])
    assert result.ok, [str(e) for e in result.errors]
    by_name = {s.name: s for s in result.subgraphs}
    assert by_name["accounts"].types["Organisation"].fields["id"].shareable
    assert by_name["billing"].types["Account"].fields["plan"].shareable
    assert by_name["billing"].types["Account"].fields["plan"].override is None
