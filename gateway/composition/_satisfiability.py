"""Satisfiability: every field of the API schema must be reachable by some query.

Walks the API schema from the root types, path by path. Along a path, a query can be in any
of several states (type, subgraph): the *options*. A field is satisfiable when at least one
option resolves it, locally or after entity jumps whose key fields are at hand; the options of
the field's own selection are the states those resolutions lead to. Abstract types are
followed per concrete type, as a query would through fragments.
"""

from __future__ import annotations

from collections import deque

from ..supergraph import SupergraphModel, named_type
from ._errors import CompositionError

State = tuple[str, str]  # (type name in that subgraph, subgraph)


class _Checker:
    def __init__(self, model: SupergraphModel) -> None:
        self.model = model
        self.api = model.api_schema
        self.roots = set(model.root_types.values())

    def local(self, type_name: str, field_name: str, subgraph: str) -> bool:
        return self.model.resolves(type_name, field_name, subgraph) is not None

    def local_fields(self, type_name: str, subgraph: str) -> set[str]:
        facts = self.model.types.get(type_name)
        if facts is None:
            return set()
        return {name for name in facts.fields if self.local(type_name, name, subgraph)}

    def reach(self, state: State) -> list[State]:
        """States reachable from one state by entity jumps (root types reach every subgraph)."""
        type_name, subgraph = state
        facts = self.model.types.get(type_name)
        if type_name in self.roots and facts is not None:
            return [(type_name, s) for s in facts.subgraphs]
        reached = [state]
        available = self.local_fields(type_name, subgraph)
        targets = [type_name] + [
            i for i in self.model.interfaces_of(type_name) if self.model.entity_interfaces_with_object(i)
        ]
        changed = True
        while changed:
            changed = False
            for target in targets:
                target_facts = self.model.types.get(target)
                if target_facts is None:
                    continue
                for other, in_graph in target_facts.subgraphs.items():
                    if (target, other) in reached or (target != type_name and not in_graph.is_interface_object):
                        continue
                    for key in in_graph.resolvable_keys():
                        names = {s.name.value for s in key.selections if hasattr(s, "name")}
                        if names <= available:
                            reached.append((target, other))
                            available |= self.local_fields(target, other)
                            changed = True
                            break
        return reached

    def concrete_options(self, concrete: str, options: frozenset[State]) -> frozenset[State]:
        result: set[State] = set()
        for type_name, subgraph in options:
            if type_name == concrete:
                result.add((type_name, subgraph))
            elif self.model.is_interface_object(type_name, subgraph):
                # the concrete type is known once the entity interface's subgraph is asked
                for other, in_graph in self.model.types[type_name].subgraphs.items():
                    if (
                        not in_graph.is_interface_object
                        and in_graph.resolvable_keys()
                        and concrete in self.model.possible_types_in(type_name, other)
                    ):
                        result.add((concrete, other))
                result.add((type_name, subgraph))
            elif concrete in self.model.possible_types_in(type_name, subgraph):
                result.add((concrete, subgraph))
        return frozenset(result)

    def check(self) -> list[CompositionError]:
        errors: list[CompositionError] = []
        reported: set[tuple[str, str]] = set()
        queue: deque[tuple[str, frozenset[State], tuple[str, ...]]] = deque()
        seen: set[tuple[str, frozenset[State]]] = set()
        for kind in ("query", "mutation"):
            root = self.model.root_types.get(kind)
            if root is not None and root in self.model.types:
                queue.append((root, frozenset((root, s) for s in self.model.types[root].subgraphs), ()))
        while queue:
            api_name, options, path = queue.popleft()
            if (api_name, options) in seen or not options:
                continue
            seen.add((api_name, options))
            api_type = self.api.type_map.get(api_name)
            if api_type is None:
                continue
            if self.model.is_abstract(api_name):
                for concrete in sorted(self.model.api_possible_types(api_name)):
                    queue.append((concrete, self.concrete_options(concrete, options), path + (f"... on {concrete}",)))
                continue
            reachable: list[State] = []
            for option in sorted(options):
                for state in self.reach(option):
                    if state not in reachable:
                        reachable.append(state)
            for field_name, field_def in api_type.fields.items():  # type: ignore[union-attr]
                owners = [(t, s) for t, s in reachable if self.local(t, field_name, s)]
                if not owners:
                    if (api_name, field_name) not in reported:
                        reported.add((api_name, field_name))
                        errors.append(self._error(api_name, field_name, path, options))
                    continue
                child = named_type(str(field_def.type))
                if not self.model.is_abstract(child) and (
                    self.model.types.get(child) is None or self.model.types[child].kind != "OBJECT"
                ):
                    continue
                child_options = set()
                for owner_type, owner in owners:
                    join = self.model.field_join(owner_type, field_name, owner)
                    child_options.add((named_type(join.type) if join is not None and join.type else child, owner))
                queue.append((child, frozenset(child_options), path + (field_name,)))
        return errors

    def _error(
        self, type_name: str, field_name: str, path: tuple[str, ...], options: frozenset[State]
    ) -> CompositionError:
        steps = list(path) + [field_name]
        query = "{ " + " { ".join(steps) + " }" * len(steps)
        subgraphs = sorted({s for _, s in options})
        return CompositionError(
            "SATISFIABILITY_ERROR",
            f'the query "{query}" cannot be satisfied: no subgraph can resolve "{type_name}.{field_name}" '
            f"from {', '.join(subgraphs)}, where the query reaches {type_name}",
            subgraphs[0] if len(subgraphs) == 1 else None,
        )


def check_satisfiability(model: SupergraphModel) -> list[CompositionError]:
    return _Checker(model).check()
