"""Comparing two supergraphs by what the engine reads from them, not by their text."""

from __future__ import annotations

from graphql import print_schema

from gateway.supergraph import SupergraphModel


def facts(model: SupergraphModel) -> dict:
    out: dict = {"api": sorted(print_schema(model.api_schema).split("\n"))}
    for type_name, type_facts in model.types.items():
        if type_name.startswith(("join__", "link__")):
            continue
        fields = {}
        for field_name, field_facts in type_facts.fields.items():
            per_subgraph = {}
            for subgraph in type_facts.subgraphs:
                join = model.field_join(type_name, field_name, subgraph)
                if join is not None:
                    per_subgraph[subgraph] = (
                        join.external,
                        join.used_overridden,
                        join.requires is not None,
                        join.provides is not None,
                        join.override,
                    )
            fields[field_name] = (
                field_facts.api_type,
                per_subgraph,
                any(j.subgraph is None for j in field_facts.joins),
            )
        out[type_name] = {
            "kind": type_facts.kind,
            "subgraphs": {
                s: (sorted((k.fields.replace(" ", ""), k.resolvable) for k in t.keys), t.is_interface_object)
                for s, t in type_facts.subgraphs.items()
            },
            "implements": {s: sorted(v) for s, v in type_facts.implements.items()},
            "members": {s: sorted(v) for s, v in type_facts.members.items()},
            "fields": fields,
        }
    return out


def differences(ours: SupergraphModel, theirs: SupergraphModel) -> list[str]:
    a, b = facts(ours), facts(theirs)
    result = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            result.append(f"{key}: ours={a.get(key)} theirs={b.get(key)}")
    return result
