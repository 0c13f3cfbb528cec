"""Merging subgraphs into one supergraph: types, fields, arguments, join facts.

Follows Apollo Federation 2's merge rules: output field types take the most general type of
their definitions and input types the most restrictive; arguments and input fields are
intersected; enums are merged by how they are used; non-key fields resolved by several
subgraphs must be @shareable; @override moves a field and keeps the overridden definition only
where that subgraph still uses it. Citygate's privacy annotations of one coordinate, from however
many subgraphs, become one: the stricter wins (docs/privacy.md); whose they are is the registry's
question, not composition's. Errors are collected, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from graphql import ArgumentNode, DirectiveNode, FloatValueNode, IntValueNode, NameNode, StringValueNode

from ..supergraph import STRATEGIES, PersonalField, named_type, stricter
from ..taxonomy import fides_categories
from ._errors import CompositionError, location_of
from ._subgraph import AppliedDirective, Field, Subgraph, TypeDef


@dataclass(slots=True)
class JoinType:
    subgraph: str
    key: str | None = None
    extension: bool = False
    resolvable: bool = True
    interface_object: bool = False


@dataclass(slots=True)
class JoinField:
    subgraph: str | None
    type: str | None = None
    requires: str | None = None
    provides: str | None = None
    external: bool = False
    override: str | None = None
    override_label: str | None = None
    used_overridden: bool = False


@dataclass(slots=True)
class MergedArgument:
    name: str
    type: str
    default: str | None
    description: str | None
    inaccessible: bool = False
    deprecated: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MergedField:
    name: str
    type: str
    description: str | None = None
    arguments: dict[str, MergedArgument] = field(default_factory=dict)
    default: str | None = None
    joins: list[JoinField] = field(default_factory=list)  # empty: in every subgraph of its type
    inaccessible: bool = False
    deprecated: str | None = None
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)


@dataclass(slots=True)
class MergedEnumValue:
    name: str
    description: str | None
    subgraphs: list[str]
    inaccessible: bool = False
    deprecated: str | None = None
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)


@dataclass(slots=True)
class MergedType:
    name: str
    kind: str
    description: str | None = None
    join_types: list[JoinType] = field(default_factory=list)
    fields: dict[str, MergedField] = field(default_factory=dict)
    implements: list[tuple[str, str]] = field(default_factory=list)  # (subgraph, interface)
    union_members: list[tuple[str, str]] = field(default_factory=list)  # (subgraph, member)
    values: dict[str, MergedEnumValue] = field(default_factory=dict)
    inaccessible: bool = False
    tags: list[str] = field(default_factory=list)
    applied: list[AppliedDirective] = field(default_factory=list)

    @property
    def interfaces(self) -> list[str]:
        return _unique(interface for _, interface in self.implements)

    @property
    def members(self) -> list[str]:
        return _unique(member for _, member in self.union_members)


@dataclass(slots=True)
class MergedSupergraph:
    subgraphs: list[Subgraph]
    types: dict[str, MergedType]

    def elements(self) -> Iterator[MergedType | MergedField | MergedArgument | MergedEnumValue]:
        """Every type, field, argument and enum value: what @inaccessible and @tag apply to."""
        for type_def in self.types.values():
            yield type_def
            for merged_field in type_def.fields.values():
                yield merged_field
                yield from merged_field.arguments.values()
            yield from type_def.values.values()

    def uses(self, directive: str) -> bool:
        """Whether "inaccessible" or "tag" is applied anywhere."""
        attribute = {"inaccessible": "inaccessible", "tag": "tags"}[directive]
        return any(getattr(element, attribute) for element in self.elements())


def _kind(type_def: TypeDef) -> str:
    return "INTERFACE" if type_def.interface_object else type_def.kind


def _levels(type_string: str) -> list[bool]:
    """Nullability per level, outermost first, e.g. "[A!]" -> [False, True]."""
    levels: list[bool] = []
    rest = type_string
    while True:
        non_null = rest.endswith("!")
        if non_null:
            rest = rest[:-1]
        levels.append(non_null)
        if rest.startswith("["):
            rest = rest[1:-1]
        else:
            return levels


def _with_levels(named: str, levels: list[bool]) -> str:
    result = named + ("!" if levels[-1] else "")
    for non_null in reversed(levels[:-1]):
        result = "[" + result + "]" + ("!" if non_null else "")
    return result


def composed_view(subgraph: Subgraph, in_keys: Iterable[tuple[str, str]], composed: Iterable[str]) -> Subgraph:
    """The subgraph as composition merges it, by two rules of federation: a field a `@key` selects
    (at any depth, `in_keys`) may be defined anywhere, so it is shareable; an `@override` from a
    subgraph that is not composed (`composed`: the names) takes nothing over, so it is dropped and
    the field is shareable (Apollo only hints). The registry's rules read this view too.

    The parsed subgraph is never changed: what differs is in copies (the subgraph, its changed
    types and fields), so the same parsed subgraphs can be composed any number of times."""
    in_keys = frozenset(in_keys)
    composed = frozenset(composed)
    changed_types: dict[str, TypeDef] = {}
    for type_def in subgraph.types.values():
        changed_fields: dict[str, Field] = {}
        for field_def in type_def.fields.values():
            shared_key = not field_def.shareable and (type_def.name, field_def.name) in in_keys
            # what the merge reads: an @override of an object or interface field that is not @external
            lost_override = (
                field_def.override is not None
                and field_def.override not in composed
                and not field_def.external
                and type_def.kind != "INPUT_OBJECT"
            )
            if lost_override:
                changed_fields[field_def.name] = replace(field_def, override=None, shareable=True)
            elif shared_key:
                changed_fields[field_def.name] = replace(field_def, shareable=True)
        if changed_fields:
            changed_types[type_def.name] = replace(type_def, fields={**type_def.fields, **changed_fields})
    if not changed_types:
        return subgraph
    return replace(subgraph, types={**subgraph.types, **changed_types})


class Merger:
    """Merges subgraphs (as composed_view gives them) into a MergedSupergraph; reads its inputs,
    never changes them."""

    def __init__(
        self,
        subgraphs: list[Subgraph],
        used: dict[str, set[tuple[str, str]]],
        in_keys: dict[str, set[tuple[str, str]]] | None = None,
    ) -> None:
        names = [s.name for s in subgraphs]
        in_keys = in_keys or {}
        self.subgraphs = sorted(
            (composed_view(s, in_keys.get(s.name, ()), names) for s in subgraphs), key=lambda s: s.name
        )
        self.by_name = {s.name: s for s in self.subgraphs}
        self.used = used  # subgraph -> (type, field) pairs its field sets use
        self.errors: list[CompositionError] = []

    def error(self, code: str, message: str, subgraph: str | None = None, node=None) -> None:
        self.errors.append(CompositionError(code, message, subgraph, location_of(node)))

    # -- types ----------------------------------------------------------------------------------

    def merge(self) -> MergedSupergraph:
        definitions: dict[str, list[tuple[Subgraph, TypeDef]]] = {}
        for subgraph in self.subgraphs:
            for type_def in subgraph.types.values():
                definitions.setdefault(type_def.name, []).append((subgraph, type_def))
        types: dict[str, MergedType] = {}
        for name in sorted(definitions):
            defs = definitions[name]
            kinds = {_kind(t) for _, t in defs}
            if len(kinds) > 1:
                detail = ", ".join(f"{_kind(t).lower()} in {s.name}" for s, t in defs)
                self.error(
                    "TYPE_KIND_MISMATCH",
                    f'type "{name}" has different kinds across subgraphs: {detail}',
                    defs[0][0].name,
                    defs[0][1].nodes[0],
                )
                continue
            kind = kinds.pop()
            merged = MergedType(name=name, kind=kind)
            merged.description = _first(t.description for _, t in defs)
            merged.inaccessible = any(t.inaccessible for _, t in defs)
            merged.tags = _unique(tag for _, t in defs for tag in t.tags)
            merged.applied = self._merge_type_privacy(name, [a for _, t in defs for a in t.applied])
            for subgraph, type_def in defs:
                self._join_types(merged, subgraph, type_def)
            if name == "Query":
                # every subgraph answers queries (at least _service and _entities)
                present = {j.subgraph for j in merged.join_types}
                merged.join_types += [JoinType(s.name) for s in self.subgraphs if s.name not in present]
                merged.join_types.sort(key=lambda j: j.subgraph)
            if kind in ("OBJECT", "INTERFACE"):
                self._merge_composite(merged, defs)
            elif kind == "INPUT_OBJECT":
                self._merge_input(merged, defs)
            elif kind == "UNION":
                merged.union_members = [(s.name, member) for s, t in defs for member in t.members]
            elif kind == "ENUM":
                self._collect_enum(merged, defs)
            types[name] = merged
        supergraph = MergedSupergraph(self.subgraphs, types)
        self._interface_objects(supergraph, definitions)
        self._finish_enums(supergraph, definitions)
        if not self.errors and ("Query" not in types or not types["Query"].fields):
            self.error("NO_QUERIES", "no subgraph defines a field on the Query type")
        return supergraph

    def _join_types(self, merged: MergedType, subgraph: Subgraph, type_def: TypeDef) -> None:
        if type_def.keys:
            for key in type_def.keys:
                merged.join_types.append(
                    JoinType(
                        subgraph.name,
                        key.fields,
                        type_def.extends or (type_def.extension and not subgraph.is_fed1),
                        key.resolvable,
                        type_def.interface_object,
                    )
                )
        else:
            merged.join_types.append(JoinType(subgraph.name, None, False, True, type_def.interface_object))

    # -- object and interface fields --------------------------------------------------------------

    def _merge_composite(self, merged: MergedType, defs: list[tuple[Subgraph, TypeDef]]) -> None:
        merged.implements = [(s.name, interface) for s, t in defs for interface in t.interfaces]
        type_subgraphs = {j.subgraph for j in merged.join_types}
        for name in _unique(name for _, t in defs for name in t.fields):
            field_defs = [(s, t, t.fields[name]) for s, t in defs if name in t.fields]
            merged_field = self._merge_field(merged, field_defs, type_subgraphs)
            if merged_field is not None:
                merged.fields[name] = merged_field

    def _merge_field(self, merged: MergedType, field_defs, type_subgraphs: set[str]) -> MergedField | None:
        """One field of an object or interface from its definitions in every subgraph (subgraph,
        type definition, field definition), or None when they cannot be merged (errors recorded)."""
        name = field_defs[0][2].name
        coordinate = f"{merged.name}.{name}"
        overridden = self._overrides(merged.name, name, field_defs)
        if merged.kind == "OBJECT":
            self._check_sharing(coordinate, field_defs, overridden)
        non_external = [(s, t, f) for s, t, f in field_defs if not f.external]
        if not non_external and not any(t.interface_object for _, t, _ in field_defs):
            subgraph, _, field_def = field_defs[0]
            self.error(
                "EXTERNAL_MISSING_ON_BASE",
                f'"{coordinate}" is marked @external in {", ".join(s.name for s, _, _ in field_defs)} but no subgraph defines it',
                subgraph.name,
                field_def.node,
            )
            return None
        base = non_external or field_defs
        field_type = self._merge_output_types(coordinate, base)
        if field_type is None:
            return None
        self._check_external_types(coordinate, field_defs, field_type)
        result = MergedField(name=name, type=field_type)
        result.description = _first(f.description for _, _, f in field_defs)
        result.inaccessible = any(f.inaccessible for _, _, f in field_defs)
        result.deprecated = _first(f.deprecated for _, _, f in field_defs)
        result.tags = _unique(tag for _, _, f in field_defs for tag in f.tags)
        result.applied = self._merge_field_privacy(coordinate, field_defs)
        result.arguments = self._merge_arguments(coordinate, [(s, f) for s, _, f in base])
        result.joins = _field_joins(field_defs, field_type, overridden, type_subgraphs)
        return result

    def _overrides(self, type_name: str, name: str, field_defs) -> dict[str, bool]:
        """The subgraphs the field is moved away from by @override, each with whether that subgraph
        still uses the field in its own field sets (and so keeps its definition)."""
        coordinate = f"{type_name}.{name}"
        overridden: dict[str, bool] = {}
        for subgraph, _type_def, field_def in field_defs:
            if field_def.override is None:
                continue
            source = field_def.override
            node = field_def.node
            if source == subgraph.name:
                self.error(
                    "OVERRIDE_FROM_SELF_ERROR",
                    f'"{coordinate}" in "{subgraph.name}" overrides itself',
                    subgraph.name,
                    node,
                )
                continue
            if field_def.external:
                self.error(
                    "OVERRIDE_COLLISION_WITH_ANOTHER_DIRECTIVE",
                    f'"{coordinate}" in "{subgraph.name}" is both @override and @external',
                    subgraph.name,
                    node,
                )
                continue
            source_def = next((f for s, _, f in field_defs if s.name == source), None)
            if source_def is None or source_def.external:
                continue  # the source does not resolve the field: nothing moves
            if source_def.override is not None:
                self.error(
                    "OVERRIDE_SOURCE_HAS_OVERRIDE",
                    f'"{coordinate}" is overridden from "{source}" in "{subgraph.name}", but "{source}" overrides it too',
                    subgraph.name,
                    node,
                )
                continue
            overridden[source] = self._still_used(source, type_name, name)
        return overridden

    def _check_external_types(self, coordinate: str, field_defs, field_type: str) -> None:
        for subgraph, _, field_def in field_defs:
            if field_def.external and named_type(field_def.type) != named_type(field_type):
                self.error(
                    "EXTERNAL_TYPE_MISMATCH",
                    f'"{coordinate}" is @external in "{subgraph.name}" with type {field_def.type}, incompatible with {field_type}',
                    subgraph.name,
                    field_def.node,
                )

    # -- privacy annotations ----------------------------------------------------------------------

    def _merge_type_privacy(self, type_name: str, applied: list[AppliedDirective]) -> list[AppliedDirective]:
        """One @subject per type: several subgraphs may repeat it, none may name another field."""
        subjects = [a for a in applied if a.privacy == "subject"]
        kept = [a for a in applied if a.privacy != "subject"]
        named = {str(_arguments(a).get("field")): a for a in subjects}
        if len(named) > 1:
            detail = ", ".join(f'"{field}" in {a.subgraph}' for field, a in named.items())
            differing = list(named.values())[1]  # where it is said otherwise than first
            self.error(
                "PRIVACY_ANNOTATION_CONFLICT",
                f'"{type_name}" names two subjects: {detail}',
                differing.subgraph,
                differing.node,
            )
        return kept + subjects[:1]

    def _merge_field_privacy(self, coordinate: str, field_defs) -> list[AppliedDirective]:
        """The privacy annotations of every subgraph defining the field, as one: the stricter wins
        (nearest common category, strictest strategy), @nonPersonal only where every subgraph
        resolving the field says so and none says personal, @aggregate only with one contributors
        field. Other directives are kept as they are."""
        applied = [a for _, _, f in field_defs for a in f.applied]
        kept = [a for a in applied if a.privacy not in ("personal", "aggregate", "nonPersonal")]
        personal = [a for a in applied if a.privacy == "personal"]
        if personal:
            merged = self._merge_personal(coordinate, personal)
            if merged is not None:
                kept.append(merged)
        aggregates = [a for a in applied if a.privacy == "aggregate"]
        if aggregates:
            contributors = {str(_arguments(a).get("contributors")) for a in aggregates}
            if len(contributors) > 1:
                self.error(
                    "PRIVACY_ANNOTATION_CONFLICT",
                    f'"{coordinate}" counts its contributors in different fields: {", ".join(sorted(contributors))}',
                    aggregates[0].subgraph,
                    aggregates[0].node,
                )
            minimums = [m for a in aggregates if isinstance(m := _arguments(a).get("minContributors"), int)]
            arguments = {"contributors": contributors.pop()} | ({"minContributors": max(minimums)} if minimums else {})
            # what the value is (open data's noise is calibrated to it): one description or none
            described = {tuple(_arguments(a).get(name) for name in _STATISTIC_ARGUMENTS) for a in aggregates}
            if len(described) > 1:
                self.error(
                    "PRIVACY_ANNOTATION_CONFLICT",
                    f'"{coordinate}" describes its statistic differently in different subgraphs',
                    aggregates[0].subgraph,
                    aggregates[0].node,
                )
            arguments |= {
                name: value
                for name, value in zip(_STATISTIC_ARGUMENTS, described.pop(), strict=True)
                if value is not None
            }
            kept.append(_synthesized(aggregates[0], arguments))
        resolving = [(s, f) for s, _, f in field_defs if not f.external]
        non_personal = [a for a in applied if a.privacy == "nonPersonal"]
        if (
            non_personal
            and not personal
            and resolving
            and all(any(a.privacy == "nonPersonal" for a in f.applied) for _, f in resolving)
        ):
            kept.append(non_personal[0])
        return kept

    def _merge_personal(self, coordinate: str, declarations: list[AppliedDirective]) -> AppliedDirective | None:
        read = [(a, _arguments(a)) for a in declarations]
        if len({(args.get("category"), args.get("strategy")) for _, args in read}) == 1:
            return declarations[0]  # one annotation, however many subgraphs repeat it (checked once loaded)
        categories = fides_categories()
        merged: PersonalField | None = None
        for directive, args in read:
            category, strategy = str(args.get("category")), args.get("strategy")
            if category not in categories:
                self.error(
                    "PRIVACY_UNKNOWN_CATEGORY",
                    f'"{coordinate}": "{category}" is not a data category of the Fides taxonomy',
                    directive.subgraph,
                    directive.node,
                )
                return None
            if strategy is not None and strategy not in STRATEGIES:
                self.error(
                    "PRIVACY_UNKNOWN_STRATEGY",
                    f'"{coordinate}": strategy "{strategy}" is not one of {", ".join(STRATEGIES)}',
                    directive.subgraph,
                    directive.node,
                )
                return None
            here = PersonalField(category, str(strategy) if strategy is not None else None)
            met = here if merged is None else stricter(merged, here)
            if met is None:
                self.error(
                    "PRIVACY_ANNOTATION_CONFLICT",
                    f'"{coordinate}" is "{merged.category}" in one subgraph and "{category}" in {directive.subgraph}: no category covers both',  # type: ignore[union-attr]
                    directive.subgraph,
                    directive.node,
                )
                return None
            merged = met
        assert merged is not None
        arguments: dict[str, object] = {"category": merged.category}
        if merged.strategy is not None:
            arguments["strategy"] = merged.strategy
        return _synthesized(declarations[0], arguments)

    def _still_used(self, subgraph_name: str, type_name: str, field_name: str) -> bool:
        if (type_name, field_name) in self.used.get(subgraph_name, set()):
            return True
        subgraph = self.by_name[subgraph_name]
        type_def = subgraph.types.get(type_name)
        if type_def is None:
            return False
        for interface in type_def.interfaces:
            interface_def = subgraph.types.get(interface)
            if interface_def is not None and field_name in interface_def.fields:
                return True
        return False

    def _check_sharing(self, coordinate: str, field_defs, overridden: dict[str, bool]) -> None:
        resolving = [(s, f) for s, t, f in field_defs if not f.external and s.name not in overridden]
        if len(resolving) < 2:
            return
        unshared = [s.name for s, f in resolving if not f.shareable]
        if unshared:
            subgraph, field_def = next((s, f) for s, f in resolving if not f.shareable)
            self.error(
                "INVALID_FIELD_SHARING",
                f'non-shareable field "{coordinate}" is resolved from several subgraphs: '
                f"{', '.join(s.name for s, _ in resolving)} (not @shareable in {', '.join(unshared)})",
                subgraph.name,
                field_def.node,
            )

    def _merge_output_types(self, coordinate: str, field_defs) -> str | None:
        types = [(s, f.type) for s, _, f in field_defs]
        shapes = {(named_type(t), len(_levels(t))) for _, t in types}
        names = {n for n, _ in shapes}
        depths = {d for _, d in shapes}
        if len(depths) > 1:
            self._type_mismatch(coordinate, types)
            return None
        named = next(iter(names))
        if len(names) > 1:
            named = self._common_supertype(names)
            if named is None:
                self._type_mismatch(coordinate, types)
                return None
        depth = depths.pop()
        levels = [all(_levels(t)[i] for _, t in types) for i in range(depth)]
        return _with_levels(named, levels)

    def _common_supertype(self, names: set[str]) -> str | None:
        """Output types may differ by subtyping (an interface and its implementation)."""
        for candidate in names:
            others = names - {candidate}
            if all(self._is_subtype(candidate, other) for other in others):
                return candidate
        return None

    def _is_subtype(self, abstract: str, concrete: str) -> bool:
        for subgraph in self.subgraphs:
            concrete_def = subgraph.types.get(concrete)
            abstract_def = subgraph.types.get(abstract)
            if concrete_def is not None and abstract in concrete_def.interfaces:
                return True
            if abstract_def is not None and concrete in abstract_def.members:
                return True
        return False

    def _type_mismatch(self, coordinate: str, types) -> None:
        detail = ", ".join(f"{t} in {s.name}" for s, t in types)
        subgraph = types[0][0]
        self.error(
            "FIELD_TYPE_MISMATCH",
            f'type of field "{coordinate}" is incompatible across subgraphs: {detail}',
            subgraph.name,
        )

    def _merge_input_types(self, coordinate: str, types: list[tuple[Subgraph, str]], code: str) -> str | None:
        shapes = {(named_type(t), len(_levels(t))) for _, t in types}
        if len(shapes) > 1:
            detail = ", ".join(f"{t} in {s.name}" for s, t in types)
            self.error(code, f'type of "{coordinate}" is incompatible across subgraphs: {detail}', types[0][0].name)
            return None
        named, depth = shapes.pop()
        levels = [any(_levels(t)[i] for _, t in types) for i in range(depth)]
        return _with_levels(named, levels)

    def _merge_arguments(self, coordinate: str, definitions: list[tuple[Subgraph, Field]]) -> dict[str, MergedArgument]:
        merged: dict[str, MergedArgument] = {}
        for name in _unique(name for _, f in definitions for name in f.arguments):
            present = [(s, f.arguments[name]) for s, f in definitions if name in f.arguments]
            if len(present) < len(definitions):
                missing = [s.name for s, f in definitions if name not in f.arguments]
                if any(a.type.endswith("!") and a.default is None for _, a in present):
                    self.error(
                        "REQUIRED_ARGUMENT_MISSING_IN_SOME_SUBGRAPH",
                        f'argument "{coordinate}({name}:)" is required in {", ".join(s.name for s, _ in present)} but missing in {", ".join(missing)}',
                        present[0][0].name,
                        present[0][1].node,
                    )
                continue
            argument_type = self._merge_input_types(
                f"{coordinate}({name}:)", [(s, a.type) for s, a in present], "FIELD_ARGUMENT_TYPE_MISMATCH"
            )
            if argument_type is None:
                continue
            defaults = _unique(a.default for _, a in present)  # first-seen order: a stable message
            if len(defaults) > 1:
                self.error(
                    "FIELD_ARGUMENT_DEFAULT_MISMATCH",
                    f'argument "{coordinate}({name}:)" has different default values across subgraphs: {", ".join(str(d) for d in defaults)}',
                    present[0][0].name,
                    present[0][1].node,
                )
                continue
            merged[name] = MergedArgument(
                name=name,
                type=argument_type,
                default=defaults[0],
                description=_first(a.description for _, a in present),
                inaccessible=any(a.inaccessible for _, a in present),
                deprecated=_first(a.deprecated for _, a in present),
                tags=_unique(tag for _, a in present for tag in a.tags),
            )
        return merged

    # -- input objects, enums ---------------------------------------------------------------------

    def _merge_input(self, merged: MergedType, defs: list[tuple[Subgraph, TypeDef]]) -> None:
        for name in _unique(name for _, t in defs for name in t.fields):
            present = [(s, t.fields[name]) for s, t in defs if name in t.fields]
            coordinate = f"{merged.name}.{name}"
            if len(present) < len(defs):
                if any(f.type.endswith("!") and f.default is None for _, f in present):
                    missing = [s.name for s, t in defs if name not in t.fields]
                    self.error(
                        "REQUIRED_INPUT_FIELD_MISSING_IN_SOME_SUBGRAPH",
                        f'input field "{coordinate}" is required in {", ".join(s.name for s, _ in present)} but missing in {", ".join(missing)}',
                        present[0][0].name,
                        present[0][1].node,
                    )
                continue
            field_type = self._merge_input_types(coordinate, [(s, f.type) for s, f in present], "FIELD_TYPE_MISMATCH")
            if field_type is None:
                continue
            merged.fields[name] = MergedField(
                name=name,
                type=field_type,
                description=_first(f.description for _, f in present),
                default=next((f.default for _, f in present if f.default is not None), None),
                inaccessible=any(f.inaccessible for _, f in present),
                deprecated=_first(f.deprecated for _, f in present),
                tags=_unique(tag for _, f in present for tag in f.tags),
            )
        if not merged.fields:
            self.error(
                "EMPTY_MERGED_INPUT_TYPE",
                f'input type "{merged.name}" has no field common to every subgraph that defines it',
                defs[0][0].name,
                defs[0][1].nodes[0],
            )

    def _collect_enum(self, merged: MergedType, defs: list[tuple[Subgraph, TypeDef]]) -> None:
        for subgraph, type_def in defs:
            for value in type_def.values.values():
                existing = merged.values.get(value.name)
                if existing is None:
                    merged.values[value.name] = MergedEnumValue(
                        value.name,
                        value.description,
                        [subgraph.name],
                        value.inaccessible,
                        value.deprecated,
                        list(value.tags),
                        list(value.applied),
                    )
                else:
                    existing.subgraphs.append(subgraph.name)
                    existing.inaccessible = existing.inaccessible or value.inaccessible
                    existing.tags = _unique(existing.tags + value.tags)

    def _finish_enums(self, supergraph: MergedSupergraph, definitions) -> None:
        as_input: set[str] = set()
        as_output: set[str] = set()
        for merged in supergraph.types.values():
            for merged_field in merged.fields.values():
                target = as_input if merged.kind == "INPUT_OBJECT" else as_output
                target.add(named_type(merged_field.type))
                for argument in merged_field.arguments.values():
                    as_input.add(named_type(argument.type))
        for merged in supergraph.types.values():
            if merged.kind != "ENUM":
                continue
            defs = definitions[merged.name]
            everywhere = len(defs)
            # a value some subgraphs lack is fine when the API hides it (@inaccessible)
            partial = [v for v in merged.values.values() if len(v.subgraphs) < everywhere and not v.inaccessible]
            if merged.name in as_input and merged.name in as_output and partial:
                value = partial[0]
                self.error(
                    "ENUM_VALUE_MISMATCH",
                    f'enum "{merged.name}" is used as input and output, so every subgraph must define the same values; "{value.name}" is only in {", ".join(value.subgraphs)}',
                    defs[0][0].name,
                    defs[0][1].nodes[0],
                )
            elif merged.name in as_input and merged.name not in as_output:
                for value in partial:
                    del merged.values[value.name]
            if not merged.values:
                self.error(
                    "EMPTY_MERGED_ENUM_TYPE",
                    f'enum "{merged.name}" has no value common to every subgraph',
                    defs[0][0].name,
                    defs[0][1].nodes[0],
                )

    # -- @interfaceObject -------------------------------------------------------------------------

    def _interface_objects(self, supergraph: MergedSupergraph, definitions) -> None:
        for interface in supergraph.types.values():
            defs = definitions.get(interface.name, [])
            io_defs = [(s, t) for s, t in defs if t.interface_object]
            if not io_defs:
                continue
            for subgraph, type_def in io_defs:
                if not type_def.keys:
                    self.error(
                        "INTERFACE_OBJECT_USAGE_ERROR",
                        f'"{interface.name}" is an @interfaceObject in "{subgraph.name}" but has no @key',
                        subgraph.name,
                        type_def.nodes[0],
                    )
                if subgraph.federation is not None and subgraph.federation < (2, 3):
                    self.error(
                        "INTERFACE_OBJECT_USAGE_ERROR",
                        f'@interfaceObject needs federation v2.3 or later in "{subgraph.name}"',
                        subgraph.name,
                        type_def.nodes[0],
                    )
            if all(t.interface_object for _, t in defs):  # no subgraph defines the interface itself
                self.error(
                    "INTERFACE_OBJECT_USAGE_ERROR",
                    f'"{interface.name}" is an @interfaceObject but no subgraph defines the interface itself',
                    io_defs[0][0].name,
                    io_defs[0][1].nodes[0],
                )
                continue
            contributed = {name for _, t in io_defs for name, f in t.fields.items() if not f.external}
            for implementation in supergraph.types.values():
                if interface.name not in implementation.interfaces:
                    continue
                for name in contributed:
                    if name in implementation.fields:
                        continue
                    source = interface.fields.get(name)
                    if source is None:
                        continue
                    implementation.fields[name] = MergedField(
                        name=name,
                        type=source.type,
                        description=source.description,
                        arguments=dict(source.arguments),
                        joins=[JoinField(subgraph=None)],
                        inaccessible=source.inaccessible,
                        deprecated=source.deprecated,
                    )


def _field_joins(field_defs, field_type: str, overridden: dict[str, bool], type_subgraphs: set[str]) -> list[JoinField]:
    """The field's @join__field facts: none when every subgraph of its type resolves it plainly with
    the merged type; otherwise one per definition kept (an overridden one only where still used)."""
    kept = [(s, t, f) for s, t, f in field_defs if s.name not in overridden or overridden[s.name]]
    types_differ = len({f.type for _, _, f in kept}) > 1 or any(f.type != field_type for _, _, f in kept)
    special = any(
        f.external or f.requires or f.provides or f.override or s.name in overridden for s, _, f in field_defs
    )
    if not special and not types_differ and {s.name for s, _, _ in field_defs} == type_subgraphs:
        return []
    return [
        JoinField(
            subgraph=subgraph.name,
            type=field_def.type if types_differ else None,
            requires=field_def.requires,
            provides=field_def.provides,
            external=field_def.external,
            override=field_def.override,
            override_label=field_def.override_label,
            used_overridden=subgraph.name in overridden,
        )
        for subgraph, _, field_def in kept
    ]


def _arguments(applied: AppliedDirective) -> dict[str, object]:
    """A directive's arguments as plain values (a null is None)."""
    return {
        argument.name.value: int(argument.value.value)
        if isinstance(argument.value, IntValueNode)
        else float(argument.value.value)
        if isinstance(argument.value, FloatValueNode)
        else getattr(argument.value, "value", None)
        for argument in applied.node.arguments or ()
    }


_STATISTIC_ARGUMENTS = ("statistic", "lower", "upper")


def _synthesized(template: AppliedDirective, arguments: dict[str, object]) -> AppliedDirective:
    """A directive like `template` (same name) with these arguments: a merged annotation."""
    nodes = tuple(
        ArgumentNode(
            name=NameNode(value=name),
            value=IntValueNode(value=str(value))
            if isinstance(value, int)
            else FloatValueNode(value=str(value))
            if isinstance(value, float)
            else StringValueNode(value=str(value)),
        )
        for name, value in arguments.items()
    )
    return AppliedDirective(
        template.name, DirectiveNode(name=NameNode(value=template.name), arguments=nodes), "", template.privacy
    )


def _unique(items) -> list:
    """The items in first-seen order, each once."""
    return list(dict.fromkeys(items))


def _first(values):
    """The first value that is set (not None or empty), else None."""
    return next((value for value in values if value), None)
