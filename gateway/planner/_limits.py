"""What one request's document and variables may cost, checked before anything expands or plans them.

Every limit is measured twice in work proportional to the document's size: on its text before
graphql-core parses it (`check_text`: its size, its tokens, and the measures below read from the
tokens; the parser costs ~10 µs a token on the event loop), then on the parsed document
(`check_document`). Fragment spreads are measured once per fragment and reused, never
expanded, so a "fragment bomb" of a few hundred bytes whose expansion would hold 2^40 fields is
counted in microseconds and refused. Nothing here recurses: depth is counted with explicit
stacks, so a document nested deeper than Python's recursion limit is refused like any other.

`DocumentLimits` is the one place listing them (docs/operators.md, "Limits and timeouts"; the
server reads them like the HTTP edge's, `CITYGATE_<FIELD>`). This module decides nothing about
privacy and never reads a variable's value beyond its shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from ..errors import ClientRefusal

KiB = 1024
MiB = 1024 * KiB
# counts saturate here: a bomb's expanded size is "more than any limit", never a bignum
_SATURATED = 1 << 62


@dataclass(frozen=True)
class DocumentLimits:
    """Limits on one operation. Defaults in the spirit of Apollo Router and graphql-armor, loose
    enough for every query of the federation audit and the demo."""

    # lexical tokens of the document (Apollo Router: parser_max_tokens 15,000): graphql-core parses
    # one in ~10 µs on the event loop, so 15,000 are ~0.15 s at most; the largest document of the
    # tests, the demo and the bench has 1,207 (a supergraph), the bench's heavy query 93
    max_tokens: int = 15_000
    # characters of the document: graphql-core's parser takes ~0.1-0.4 µs a character even where
    # tokens are few (a long string or comment, white space), on the event loop. Long values
    # belong in `variables` (whose own limits are below); Apollo Router's 15,000 tokens are ~75 KB
    max_document_size: int = 64 * KiB
    # fields on the longest path, `{ a { b } }` is 2 (Apollo Router's max_depth counts the same
    # way). 32, not 64: planning and shaping recurse a few frames per level, and a query of the
    # allowed depth must never meet Python's recursion limit (tests/planner/test_limits.py).
    max_depth: int = 32
    max_fields: int = 2_000  # fields once every fragment is expanded (the expanded size)
    # aliased fields, fragments expanded (graphql-armor: maxAliases 15). Generous: real clients alias
    # a lot (the property tests send 30 to 60); what aliases multiply is bounded by max_fields and
    # max_root_fields, which stop the 1,000-alias attack on their own
    max_aliases: int = 100
    max_root_fields: int = 20  # fields of the root selection, fragments expanded
    max_variables_depth: int = 32  # nesting of lists and objects in the `variables` JSON
    max_variables_values: int = 10_000  # values (scalars, lists, objects) in the `variables` JSON
    # seconds of planning per operation (plans are cached: once per operation); generous, since a
    # legal heavy query plans in ~0.4 s cold on a busy machine today (issue 15): it stops the
    # 40-second plannings, not big honest ones
    planning_timeout: float = 2.0
    # demand control (gateway/planner/_cost.py): the estimated cost of an operation (composite
    # fields 1, leaves 0, times list sizes); 0: no limit. Generous: the bench's heavy query is
    # 24,420, the demo's README queries at most 52; a list fan-out 3 levels deep 12,210, 5 deep 1,222,210
    max_cost: int = 50_000
    # the list size of a list field with no slicing argument (first, last, limit, pageSize) nor @listSize
    default_list_size: int = 10
    # who may run introspection (__schema, __type): "all", "clients" (any identified client, not
    # the public), "none"; empty: "all" in development mode (GraphiQL needs it), else "clients"
    introspection: str = ""
    # "Did you mean ...?" in validation messages: "on", "off"; empty: on in development mode only
    suggestions: str = ""

    def __post_init__(self) -> None:
        if self.introspection not in ("", "all", "clients", "none"):
            raise ValueError(f"introspection must be all, clients or none, not {self.introspection!r}")
        if self.suggestions not in ("", "on", "off"):
            raise ValueError(f"suggestions must be on or off, not {self.suggestions!r}")


class LimitExceeded(ClientRefusal):
    """A document or its variables are over a limit; `code` is the stable `extensions.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Measure:
    fields: int  # expanded
    aliases: int  # expanded
    depth: int  # fields on the longest path
    top: int  # fields at this level, fragments expanded


_NOTHING = _Measure(0, 0, 0, 0)


def _cap(value: int) -> int:
    return value if value < _SATURATED else _SATURATED


def _measure(root: SelectionSetNode, fragments: Mapping[str, _Measure]) -> _Measure:
    """The measure of a selection set whose fragments are measured already (unknown ones count
    nothing: validation refuses them). Selection sets in pre-order, then measured in reverse:
    every child before its parent, no recursion."""
    order: list[SelectionSetNode] = []
    stack = [root]
    while stack:
        selection_set = stack.pop()
        order.append(selection_set)
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                stack.append(selection.selection_set)
    done: dict[int, _Measure] = {}
    for selection_set in reversed(order):
        fields = aliases = depth = top = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                sub = done[id(selection.selection_set)] if selection.selection_set is not None else _NOTHING
                fields += 1 + sub.fields
                aliases += (selection.alias is not None) + sub.aliases
                depth = max(depth, 1 + sub.depth)
                top += 1
            else:
                if isinstance(selection, InlineFragmentNode):
                    sub = done[id(selection.selection_set)]
                else:
                    sub = fragments.get(selection.name.value, _NOTHING)
                fields += sub.fields
                aliases += sub.aliases
                depth = max(depth, sub.depth)
                top += sub.top
        done[id(selection_set)] = _Measure(_cap(fields), _cap(aliases), depth, _cap(top))
    return done[id(root)]


def _spreads(selection_set: SelectionSetNode) -> set[str]:
    names: set[str] = set()
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.add(selection.name.value)
            elif selection.selection_set is not None:
                stack.append(selection.selection_set)
    return names


def _in_dependency_order(spreads: Mapping[str, set[str]], measure_one) -> dict[str, _Measure]:
    """Each fragment (the keys of `spreads`, each with the names it spreads anywhere) measured once
    by `measure_one(name, measured)`, those it spreads first (a cycle counts nothing on its way
    back: validation refuses cycles, after these limits)."""
    measured: dict[str, _Measure] = {}
    visiting: set[str] = set()
    for start in spreads:
        if start in measured:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            name, children_done = stack.pop()
            if name in measured or name not in spreads:
                continue
            if children_done:
                visiting.discard(name)
                measured[name] = measure_one(name, measured)
                continue
            if name in visiting:
                continue  # a cycle
            visiting.add(name)
            stack.append((name, True))
            stack.extend((child, False) for child in spreads[name] if child not in measured and child not in visiting)
    return measured


def _measure_fragments(definitions: Mapping[str, FragmentDefinitionNode]) -> dict[str, _Measure]:
    spreads = {name: _spreads(fragment.selection_set) for name, fragment in definitions.items()}
    return _in_dependency_order(spreads, lambda name, measured: _measure(definitions[name].selection_set, measured))


def _refuse_over(measure: _Measure, limits: DocumentLimits) -> None:
    """LimitExceeded for the first limit `measure` (one operation's) is over, in a fixed order."""
    if measure.depth > limits.max_depth:
        raise LimitExceeded(
            "MAX_DEPTH_EXCEEDED", f"the operation is nested {measure.depth} fields deep, more than {limits.max_depth}"
        )
    if measure.fields > limits.max_fields:
        shown = "over 10^18" if measure.fields >= _SATURATED else f"{measure.fields}"
        raise LimitExceeded(
            "MAX_EXPANDED_SIZE_EXCEEDED",
            f"the operation selects {shown} fields once its fragments are expanded, more than {limits.max_fields}",
        )
    if measure.aliases > limits.max_aliases:
        raise LimitExceeded(
            "MAX_ALIASES_EXCEEDED", f"the operation uses {measure.aliases} aliases, more than {limits.max_aliases}"
        )
    if measure.top > limits.max_root_fields:
        raise LimitExceeded(
            "MAX_ROOT_FIELDS_EXCEEDED",
            f"the operation selects {measure.top} root fields, more than {limits.max_root_fields}",
        )


def check_document(document: DocumentNode, limits: DocumentLimits) -> None:
    """Refuse (LimitExceeded) a document any operation of which is over a limit. Work: linear in
    the document, whatever its fragments expand to."""
    definitions = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    fragments = _measure_fragments(definitions)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        _refuse_over(_measure(definition.selection_set, fragments), limits)


# The document's lexemes, for check_text: group 1 is a token, or empty for what the grammar ignores
# (white space, commas, comments). What is no GraphQL token (a character outside the grammar, a
# string left open) takes the rest of the text: the last lexeme tells whether there was any.
# Possessive repeats: no backtracking, whatever the text.
_TOKEN = r"""
       "{3}(?:\\"{3}|[^"]|"(?!""))*+"{3}
     | "(?:[^"\\\n\r]|\\.)*+"
     | \.\.\.|[!$&():=@\[\]{|}]
     | [_A-Za-z][_0-9A-Za-z]*+
     | -?[0-9]++(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?
"""
_LEXEME = re.compile(rf"""[ \t\n\r,\ufeff]++|\#[^\n\r]*+|({_TOKEN}|.+)""", re.VERBOSE | re.DOTALL)
_WHOLE_TOKEN = re.compile(_TOKEN, re.VERBOSE | re.DOTALL)
_NAME_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Unsure(Exception):
    """The text is not what check_text can follow (then it is no valid executable document)."""


class _Set:
    """A selection set as check_text sees it: its fields, their aliases, the sets below it."""

    __slots__ = ("aliases", "children", "fields", "inline", "measure", "spreads")

    def __init__(self) -> None:
        self.fields = 0
        self.aliases = 0
        self.children: list[_Set] = []  # selection sets of its fields
        self.inline: list[_Set] = []  # of its inline fragments
        self.spreads: list[str] = []  # names of the fragments it spreads
        self.measure = _NOTHING


def _skip_parens(tokens: list[str], i: int) -> int:
    """The index after the `)` closing the `(` at `i` (arguments, variable definitions)."""
    depth = 0
    while True:
        token = tokens[i]
        i += 1
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth == 0:
                return i


def _skip_directives(tokens: list[str], i: int) -> int:
    while tokens[i] == "@":
        i += 2
        if tokens[i] == "(":
            i = _skip_parens(tokens, i)
    return i


def _selection_sets(tokens: list[str], i: int, sets: list[_Set]) -> int:
    """Reads the selection set opening at `i` (and every set inside it, into `sets` parents first);
    the index after its `}`."""
    root = _Set()
    sets.append(root)
    stack = [root]
    i += 1
    while stack:
        token = tokens[i]
        current = stack[-1]
        if token == "}":
            stack.pop()
            i += 1
            continue
        if token == "...":
            following = tokens[i + 1]
            if following in ("on", "{", "@"):
                i = _skip_directives(tokens, i + (3 if following == "on" else 1))
                if tokens[i] != "{":
                    raise _Unsure
                child = _Set()
                current.inline.append(child)
            elif following[0] in _NAME_START:
                current.spreads.append(following)
                i += 2
                if tokens[i] == "@":
                    i = _skip_directives(tokens, i)
                continue
            else:
                raise _Unsure
        else:
            if token[0] not in _NAME_START:
                raise _Unsure
            if tokens[i + 1] == ":":
                if tokens[i + 2][0] not in _NAME_START:
                    raise _Unsure
                current.aliases += 1
                i += 3
            else:
                i += 1
            current.fields += 1
            if tokens[i] == "(":
                i = _skip_parens(tokens, i)
            if tokens[i] == "@":
                i = _skip_directives(tokens, i)
            if tokens[i] != "{":
                continue
            child = _Set()
            current.children.append(child)
        sets.append(child)
        stack.append(child)
        i += 1
    return i


def _skip_to_selection_set(tokens: list[str], i: int) -> int:
    """From an operation's or fragment's keyword to the `{` of its selection set (what is in
    parentheses, default values included, skipped)."""
    depth = 0
    while tokens[i] != "{" or depth:
        if tokens[i] == "(":
            depth += 1
        elif tokens[i] == ")":
            depth -= 1
        i += 1
    return i


def _measure_sets(sets: list[_Set], fragments: Mapping[str, _Measure]) -> _Measure:
    """The measure of the first of `sets` (a definition's, parents before children), as _measure
    gives it for the same selections."""
    for selection_set in reversed(sets):
        fields = top = selection_set.fields
        aliases = selection_set.aliases
        depth = 1 if fields else 0
        for child in selection_set.children:
            sub = child.measure
            fields += sub.fields
            aliases += sub.aliases
            depth = max(depth, 1 + sub.depth)
        if selection_set.inline or selection_set.spreads:
            for sub in [child.measure for child in selection_set.inline] + [
                fragments.get(name, _NOTHING) for name in selection_set.spreads
            ]:
                fields += sub.fields
                aliases += sub.aliases
                depth = max(depth, sub.depth)
                top += sub.top
        selection_set.measure = _Measure(_cap(fields), _cap(aliases), depth, _cap(top))
    return sets[0].measure if sets else _NOTHING


def check_text(text: str, limits: DocumentLimits) -> None:
    """Refuse (LimitExceeded) a document's text over the limits before graphql-core parses it:
    its size, its tokens (as graphql-core counts them), and each operation's depth, fields,
    aliases and root fields as check_document measures them, read from the tokens.

    Why: graphql-core's parser costs ~10 µs a token on the event loop (a 41 KB document of
    1,000 aliases: ~100 ms), a regular expression and this walk a few percent of that. What it
    cannot follow (no valid executable document) ends the walk: what was read so far is a part
    of the document, so its measures are lower bounds and a refusal stays right; graphql-core
    then says what is wrong. check_document still runs on the parsed document."""
    if len(text) > limits.max_document_size:
        # the token limit's code: both bound what the parser is given
        raise LimitExceeded(
            "GRAPHQL_PARSE_FAILED",
            f"the document is {len(text):,} characters long, more than {limits.max_document_size:,}",
        )
    tokens = [token for token in _LEXEME.findall(text) if token]
    if tokens and not _WHOLE_TOKEN.fullmatch(tokens[-1]):
        del tokens[-1]  # the rest of the text, from something that is no token
    if len(tokens) > limits.max_tokens:
        raise LimitExceeded(
            "GRAPHQL_PARSE_FAILED",
            f"Syntax Error: Document contains more than {limits.max_tokens} tokens. Parsing aborted.",
        )
    operations: list[list[_Set]] = []
    fragments: dict[str, list[_Set]] = {}
    i = 0
    try:
        while i < len(tokens):
            token = tokens[i]
            sets: list[_Set] = []
            if token == "fragment":
                fragments.setdefault(tokens[i + 1], sets)  # a second one of that name: validation refuses it
            elif token in ("{", "query", "mutation", "subscription"):
                operations.append(sets)
            else:
                raise _Unsure
            i = _selection_sets(tokens, _skip_to_selection_set(tokens, i), sets)
    except (_Unsure, IndexError):
        pass
    spreads = {name: {spread for s in sets for spread in s.spreads} for name, sets in fragments.items()}
    measured = _in_dependency_order(spreads, lambda name, done: _measure_sets(fragments[name], done))
    for sets in operations:
        _refuse_over(_measure_sets(sets, measured), limits)


def check_variables(variables: Mapping[str, object] | None, limits: DocumentLimits) -> None:
    """Refuse `variables` nested deeper or holding more values than the limits, before anything
    (coercion, JSON encoding, both recursive) walks them."""
    if not variables:
        return
    count = 0
    stack: list[tuple[object, int]] = [(value, 1) for value in variables.values()]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > limits.max_variables_values:
            raise LimitExceeded(
                "MAX_VARIABLES_SIZE_EXCEEDED", f"the variables hold more than {limits.max_variables_values} values"
            )
        if isinstance(value, dict | list):
            if depth > limits.max_variables_depth:
                raise LimitExceeded(
                    "MAX_VARIABLES_DEPTH_EXCEEDED",
                    f"the variables are nested deeper than {limits.max_variables_depth} levels",
                )
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
