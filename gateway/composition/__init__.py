"""The composition stage: subgraph SDLs in, a supergraph in Apollo's format out.

`compose()` reads every subgraph, checks its field sets, merges them, prints the supergraph,
loads it back with the engine's own loader and checks satisfiability. It never raises for a
bad input: every problem comes back as a CompositionError with a code, the subgraph and the
location in that subgraph's SDL.

With `limits`, the subgraphs named in `limited` (a partner's, being registered) are held to a
size before they are parsed and to counts of types and fields before anything but parsing runs
on them (`SDL_TOO_LARGE`): composition's cost grows faster than its input. The registry runs
compose in a worker process with a time budget (gateway/registry/_worker.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from graphql import print_ast

from ..privacy import PrivacySchema
from ..supergraph import PRIVACY_SPEC, SupergraphError, load_supergraph
from ._errors import CompositionError, location_of
from ._fieldsets import FieldSetProblem, SelectedField, check_field_sets, externals, walk
from ._merge import Merger, composed_view
from ._print import print_supergraph
from ._satisfiability import check_satisfiability
from ._subgraph import BUILT_IN_SCALARS, Field, Subgraph, TypeDef, read_subgraph

# what the registry's rules read of a subgraph: the parsed subgraph and its field sets
__all__ = [
    "BUILT_IN_SCALARS",
    "CompositionError",
    "CompositionResult",
    "Field",
    "FieldSetProblem",
    "SdlLimits",
    "SelectedField",
    "Subgraph",
    "SubgraphSource",
    "TypeDef",
    "compose",
    "read_subgraph",
    "sdl_too_large",
    "walk",
]

SDL_TOO_LARGE = "SDL_TOO_LARGE"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class SubgraphSource:
    name: str
    sdl: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class SdlLimits:
    """How large one (partner's) subgraph may be: its SDL in bytes (UTF-8), its types and fields."""

    max_bytes: int = 1024 * 1024
    max_types: int = 2000
    max_fields: int = 20000


def sdl_too_large(name: str, sdl: str, limits: SdlLimits) -> CompositionError | None:
    """SDL_TOO_LARGE when the SDL is over the byte limit: checked without parsing anything."""
    # a str's length bounds its UTF-8 size from below, and 4x from above: encode only when needed
    size = len(sdl) if len(sdl) * 4 <= limits.max_bytes else len(sdl.encode("utf-8", "surrogatepass"))
    if size <= limits.max_bytes:
        return None
    return CompositionError(SDL_TOO_LARGE, f"the SDL is {size} bytes, over the limit of {limits.max_bytes}", name)


def _too_many(subgraph: Subgraph, limits: SdlLimits) -> CompositionError | None:
    types = len(subgraph.types)
    fields = sum(len(t.fields) for t in subgraph.types.values())
    if types > limits.max_types:
        return CompositionError(
            SDL_TOO_LARGE, f"the SDL defines {types} types, over the limit of {limits.max_types}", subgraph.name
        )
    if fields > limits.max_fields:
        return CompositionError(
            SDL_TOO_LARGE, f"the SDL defines {fields} fields, over the limit of {limits.max_fields}", subgraph.name
        )
    return None


@dataclass(slots=True)
class CompositionResult:
    supergraph: str | None
    errors: list[CompositionError] = field(default_factory=list)
    subgraphs: list[Subgraph] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.supergraph is not None and not self.errors


def compose(
    sources: Iterable[SubgraphSource], *, limits: SdlLimits | None = None, limited: frozenset[str] = frozenset()
) -> CompositionResult:
    sources = list(sources)
    errors: list[CompositionError] = []
    if limits is not None:
        # before any parsing: an oversized SDL costs nothing but this check
        errors += [
            e for s in sources if s.name in limited for e in (sdl_too_large(s.name, s.sdl, limits),) if e is not None
        ]
        if errors:
            return CompositionResult(None, errors, [])
    seen: set[str] = set()
    for source in sources:
        if not _NAME.match(source.name) or source.name.lower() == "_":
            errors.append(
                CompositionError("INVALID_SUBGRAPH_NAME", f"{source.name!r} is not a valid subgraph name", source.name)
            )
        if source.name in seen:
            errors.append(
                CompositionError("DUPLICATE_SUBGRAPH_NAME", f"two subgraphs are named {source.name!r}", source.name)
            )
        seen.add(source.name)
    if not sources:
        errors.append(CompositionError("NO_QUERIES", "there is no subgraph to compose"))
    subgraphs: list[Subgraph] = []
    used: dict[str, set[tuple[str, str]]] = {}
    in_keys: list[set[tuple[str, str]]] = []  # per subgraph read: the fields its keys select
    for source in sources:
        subgraph, read_errors = read_subgraph(source.name, source.sdl, source.url)
        errors += read_errors
        if subgraph is None:
            continue
        if limits is not None and source.name in limited:
            too_many = _too_many(subgraph, limits)
            if too_many is not None:
                return CompositionResult(None, [too_many], [])
        set_errors, used_fields, key_fields = check_field_sets(subgraph)
        errors += set_errors
        used[subgraph.name] = used_fields
        errors += _unused_externals(subgraph, used_fields)
        errors += _uncomposed_privacy(subgraph)
        subgraphs.append(subgraph)
        in_keys.append(key_fields)
    # what composition reads, and the registry's rules after it: the subgraphs as merged
    names = [s.name for s in subgraphs]
    subgraphs = [composed_view(s, key_fields, names) for s, key_fields in zip(subgraphs, in_keys, strict=True)]
    if errors:
        return CompositionResult(None, errors, subgraphs)
    merger = Merger(subgraphs, used)
    merged = merger.merge()
    if merger.errors:
        return CompositionResult(None, merger.errors, subgraphs)
    composed_links, composed = _composed_directives(subgraphs)
    supergraph = print_supergraph(merged, composed_links, composed)
    try:
        model = load_supergraph(supergraph)
    except SupergraphError as error:
        return CompositionResult(
            None, [CompositionError("INTERNAL", f"the composed supergraph does not load: {error}")], subgraphs
        )
    errors = check_satisfiability(model)
    errors += [CompositionError(p.code, p.message) for p in PrivacySchema(model).check()]
    if errors:
        return CompositionResult(None, errors, subgraphs)
    return CompositionResult(supergraph, [], subgraphs)


def _unused_externals(subgraph: Subgraph, used: set[tuple[str, str]]) -> list[CompositionError]:
    if subgraph.is_fed1:
        return []
    errors = []
    for type_def, field_def in externals(subgraph):
        if (type_def.name, field_def.name) in used:
            continue
        # an external field may be there to satisfy an interface the type implements
        if any(field_def.name in subgraph.types[i].fields for i in type_def.interfaces if i in subgraph.types):
            continue
        errors.append(
            CompositionError(
                "EXTERNAL_UNUSED",
                f'field "{type_def.name}.{field_def.name}" is marked @external but no @key, @requires or @provides uses it',
                subgraph.name,
                location_of(field_def.node),
            )
        )
    return errors


def _uncomposed_privacy(subgraph: Subgraph) -> list[CompositionError]:
    """Privacy directives that would silently vanish from the supergraph (fail closed)."""
    privacy_names = {name for spec in subgraph.linked_specs if PRIVACY_SPEC.match(spec.url) for name in spec.imports}
    missing = sorted(privacy_names - set(subgraph.composed_directives))
    used = {a.name for t in subgraph.types.values() for a in t.applied}
    used |= {a.name for t in subgraph.types.values() for f in t.fields.values() for a in f.applied}
    return [
        CompositionError(
            "PRIVACY_DIRECTIVE_NOT_COMPOSED",
            f'@{name} is used but not kept in the supergraph: add @composeDirective(name: "@{name}")',
            subgraph.name,
        )
        for name in missing
        if name in used
    ]


def _composed_directives(subgraphs: list[Subgraph]) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """Directives kept in the supergraph through @composeDirective, with their spec links."""
    links: dict[str, list[str]] = {}
    definitions: dict[str, str] = {}
    for subgraph in subgraphs:
        for name in subgraph.composed_directives:
            definition = subgraph.directive_definitions.get(name)
            if definition is not None and name not in definitions:
                definitions[name] = print_ast(definition)
            for spec in subgraph.linked_specs:
                if name in spec.imports:
                    imports = links.setdefault(spec.url, [])
                    if name not in imports:
                        imports.append(name)
    return list(links.items()), definitions
