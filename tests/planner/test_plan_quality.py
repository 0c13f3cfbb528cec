"""Plans no worse than their references: fetches and waves of every scenario (plan_quality.py).

The references were recorded with the planner that plans the operation as a whole (issue 19):
sibling root fields and aliases share a fetch where one subgraph serves them together. A change
that makes any plan take more fetches or more waves fails here; one that makes plans better is
recorded again (`python -m tests.planner.plan_quality`) after reviewing what changed.
"""

from __future__ import annotations

import pytest

from gateway.supergraph import load_supergraph
from tests.planner.plan_quality import FIXTURE_OPERATIONS, load_references, measure, scenarios, supergraphs

REFERENCES = load_references()
SUPERGRAPHS = supergraphs()
SCENARIOS = list(scenarios())


@pytest.mark.parametrize("digest", sorted(SUPERGRAPHS))
def test_every_scenario_plans_in_no_more_fetches_and_waves_than_its_reference(digest):
    model = load_supergraph(SUPERGRAPHS[digest])
    worse = []
    planned = 0
    for scenario_digest, name, selections, definitions in SCENARIOS:
        if scenario_digest != digest:
            continue
        planned += 1
        key = f"{digest}:{name}"
        reference = REFERENCES[key]
        measured = measure(model, selections, definitions)
        if reference is None:
            continue  # it did not plan when recorded: planning it now is no worse
        if measured is None or measured[0] > reference[0] or measured[1] > reference[1]:
            worse.append(f"{name}: {measured} (fetches, waves) where the reference is {reference}")
    assert planned
    assert worse == []


def test_every_scenario_has_a_reference_and_the_variants_are_generated():
    keys = {f"{digest}:{name}" for digest, name, _, _ in SCENARIOS}
    assert keys == set(REFERENCES)
    kinds = {name.rsplit(":", 1)[1] for _, name, _, _ in SCENARIOS}
    assert kinds == {"as-recorded", "alias", "duplicate", "fragments", "nested-alias", "siblings"}
    assert sum(1 for key in keys if ":provides_on_interface:" in key) >= 5 * len(
        FIXTURE_OPERATIONS["provides_on_interface"]
    )


def test_sibling_root_fields_and_aliases_share_one_fetch_where_one_subgraph_serves_them():
    """The references of the audit-shaped scenarios that planning field by field got wrong."""
    on_interface = {
        key.split(":", 1)[1]: value for key, value in REFERENCES.items() if ":provides_on_interface:" in key
    }
    operations = FIXTURE_OPERATIONS["provides_on_interface"]
    assert operations[2] == "{ media { id } y: media { animals { id } } }"
    for variant in ("as-recorded", "alias", "duplicate", "fragments", "nested-alias"):
        assert on_interface[f"provides_on_interface:2:{variant}"] == [1, 1]
    assert on_interface["provides_on_interface:3:as-recorded"] == [2, 2]
