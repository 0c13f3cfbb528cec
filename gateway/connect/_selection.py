"""The mapping language of Apollo Connectors: parser and evaluator of `selection`, `body` and
`queryParams` strings, and of the `{...}` expressions of URL and header templates.

What it reads (a subset of Apollo's documented v0.x language):

    id                          a field: the key of the same name
    name: full_name             a rename
    city: address.city          a path (on a list, a path maps over its items)
    location: { lat lng }       an object built from the current value
    tags { name }               a sub-selection (on a list: over every item)
    $.results { id }            an unnamed path: as the whole selection, its value is the result;
                                among other fields, its object's fields are merged in
    $args.x  $this.x  $batch.x  variables ($config and the others are refused)
    $("text")  $(1)  $([1, 2])  literal values
    a->first ->last ->slice(i, j) ->size ->map(@.x) ->match([k, v], ..., [@, default])
      ->entries ->keys ->values ->jsonStringify ->eq(x) ->ne(x) ->gt ->gte ->lt ->lte ->not
      ->filter(pred) ->find(pred) ->joinNotNull(sep) ->get(key) ->echo(expr) ->typeOf
    # a comment to the end of the line

It must never run unbounded: a mapping is at most 64 KiB and 32 levels deep, and evaluating one
spends a budget set by the caller from the answer's size (a method inside `->map` over a large
list, say `->jsonStringify` of the whole answer, runs out of it instead of going quadratic).
Evaluation never raises for a value of an unexpected shape: it yields null, or leaves the value
as it is for the GraphQL type check to refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

MAX_MAPPING_CHARS = 64 * 1024
MAX_DEPTH = 32
VARIABLES = frozenset({"$args", "$this", "$batch"})
# Apollo's other variables: refused, each for its own reason (see _directives)
REFUSED_VARIABLES = frozenset({"$config", "$context", "$request", "$response", "$status", "$env"})


class SelectionError(Exception):
    """A mapping that does not parse; `offset` is where, in the mapping's text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class MappingError(Exception):
    """Evaluating a mapping against an answer went wrong (never carries a value of the answer)."""


# ---------------------------------------------------------------------------------------------
# The syntax tree


@dataclass(frozen=True, slots=True)
class KeyStep:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class MethodStep:
    name: str
    args: tuple[Expr, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # a JSON scalar


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ObjectLiteral:
    pairs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Path:
    start: str  # "$", "@", "$args", "$this", "$batch", a refused variable, "key" or "literal"
    head: str | None  # the first key when start == "key"
    literal: Expr | None  # when start == "literal"
    steps: tuple[KeyStep | MethodStep, ...]
    offset: int


Expr = Literal | ListLiteral | ObjectLiteral | Path


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a selection: `name`, `name: path`, `name: { ... }`, or an unnamed path."""

    name: str | None  # the output key; None for an unnamed path
    path: Path | None  # None for `name: { ... }`
    sub: Selection | None
    offset: int


@dataclass(frozen=True, slots=True)
class Selection:
    items: tuple[Item, ...]
    offset: int

    @property
    def whole(self) -> Item | None:
        """The single unnamed path that is the whole selection (its value is the result)."""
        if len(self.items) == 1 and self.items[0].name is None:
            return self.items[0]
        return None


# name -> (fewest, most) arguments
METHODS: dict[str, tuple[int, int]] = {
    "first": (0, 0),
    "last": (0, 0),
    "slice": (0, 2),
    "size": (0, 0),
    "map": (1, 1),
    "match": (1, 64),
    "entries": (0, 0),
    "keys": (0, 0),
    "values": (0, 0),
    "jsonStringify": (0, 0),
    "eq": (1, 1),
    "ne": (1, 1),
    "gt": (1, 1),
    "gte": (1, 1),
    "lt": (1, 1),
    "lte": (1, 1),
    "not": (0, 0),
    "filter": (1, 1),
    "find": (1, 1),
    "joinNotNull": (1, 1),
    "get": (1, 1),
    "echo": (1, 1),
    "typeOf": (0, 0),
}

# ---------------------------------------------------------------------------------------------
# Parsing


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_MAPPING_CHARS:
            raise SelectionError(f"the mapping is {len(text)} characters, over the limit of {MAX_MAPPING_CHARS}", 0)
        self.text = text
        self.pos = 0
        self.depth = 0

    # -- characters

    def skip(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text):
            char = text[pos]
            if char in " \t\r\n,\ufeff":
                pos += 1
            elif char == "#":
                while pos < len(text) and text[pos] != "\n":
                    pos += 1
            else:
                break
        self.pos = pos

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, what: str) -> None:
        if not self.take(token):
            raise SelectionError(f'expected "{token}" {what}, found {self.found()}', self.pos)

    def found(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            return "the end"
        return repr(self.text[self.pos])

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SelectionError(f"the mapping nests deeper than {MAX_DEPTH} levels", self.pos)

    # -- tokens

    def name(self) -> str | None:
        self.skip()
        start = self.pos
        if start < len(self.text) and _is_name_start(self.text[start]):
            end = start + 1
            while end < len(self.text) and _is_name_char(self.text[end]):
                end += 1
            self.pos = end
            return self.text[start:end]
        return None

    def string(self) -> str | None:
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] not in "'\"":
            return None
        quote, start = self.text[self.pos], self.pos
        pos = self.pos + 1
        out: list[str] = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}
        while True:
            if pos >= len(self.text):
                raise SelectionError("a string is not closed", start)
            char = self.text[pos]
            if char == quote:
                self.pos = pos + 1
                return "".join(out)
            if char == "\\" and pos + 1 < len(self.text):
                escaped = self.text[pos + 1]
                if escaped == "u" and pos + 5 < len(self.text):
                    try:
                        out.append(chr(int(self.text[pos + 2 : pos + 6], 16)))
                    except ValueError:
                        raise SelectionError("a \\u escape needs four hex digits", pos) from None
                    pos += 6
                    continue
                if escaped not in escapes:
                    raise SelectionError(f"unknown escape \\{escaped}", pos)
                out.append(escapes[escaped])
                pos += 2
                continue
            out.append(char)
            pos += 1

    def key(self) -> str | None:
        name = self.name()
        return name if name is not None else self.string()

    def number(self) -> float | int | None:
        self.skip()
        text, start = self.text, self.pos
        pos = start
        if pos < len(text) and text[pos] == "-":
            pos += 1
        digits = pos
        while pos < len(text) and text[pos].isdigit():
            pos += 1
        if pos == digits:
            return None
        is_float = False
        if pos < len(text) and text[pos] == "." and pos + 1 < len(text) and text[pos + 1].isdigit():
            is_float = True
            pos += 1
            while pos < len(text) and text[pos].isdigit():
                pos += 1
        if pos < len(text) and text[pos] in "eE":
            exponent = pos + 1
            if exponent < len(text) and text[exponent] in "+-":
                exponent += 1
            if exponent < len(text) and text[exponent].isdigit():
                is_float = True
                pos = exponent
                while pos < len(text) and text[pos].isdigit():
                    pos += 1
        if pos - start > 64:
            raise SelectionError("a number is too long", start)
        self.pos = pos
        return float(text[start:pos]) if is_float else int(text[start:pos])

    # -- grammar

    def selection(self, closing: str | None) -> Selection:
        self.deeper()
        offset = self.pos
        items: list[Item] = []
        names: set[str] = set()
        while True:
            self.skip()
            if closing is None and self.pos >= len(self.text):
                break
            if closing is not None and self.take(closing):
                break
            if self.pos >= len(self.text):
                raise SelectionError(f'expected "{closing}" to close the selection, found the end', self.pos)
            item = self.item()
            if item.name is not None:
                if item.name in names:
                    raise SelectionError(f'"{item.name}" is selected twice', item.offset)
                names.add(item.name)
            items.append(item)
        self.depth -= 1
        selection = Selection(tuple(items), offset)
        for item in items:
            if item.name is None and item.sub is None and selection.whole is None:
                raise SelectionError(
                    "a path among other fields needs an alias (name: path) or a { ... } selection", item.offset
                )
        return selection

    def sub(self) -> Selection | None:
        if self.take("{"):
            return self.selection("}")
        return None

    def item(self) -> Item:
        self.skip()
        offset = self.pos
        if self.peek("..."):
            raise SelectionError("spreads (...) are not supported", offset)
        if self.peek("$") or self.peek("@"):
            path = self.path()
            return Item(None, path, self.sub(), offset)
        name = self.key()
        if name is None:
            raise SelectionError(f"expected a field name, a path or a variable, found {self.found()}", offset)
        if self.take(":"):
            self.skip()
            if self.peek("{"):
                self.take("{")
                return Item(name, None, self.selection("}"), offset)
            value_offset = self.pos
            if not (self.peek("$") or self.peek("@")) and self.key() is None:
                raise SelectionError(f"expected a path or {{ after {name}:, found {self.found()}", value_offset)
            self.pos = value_offset
            path = self.path()
            return Item(name, path, self.sub(), offset)
        if self.peek("->") or self.peek("."):
            self.pos = offset
            path = self.path()
            return Item(None, path, self.sub(), offset)
        return Item(name, Path("key", name, None, (), offset), self.sub(), offset)

    def path(self) -> Path:
        self.skip()
        offset = self.pos
        head: str | None = None
        literal: Expr | None = None
        if self.take("@"):
            start = "@"
        elif self.peek("$"):
            self.pos += 1
            if self.text.startswith("(", self.pos):
                self.pos += 1
                self.deeper()
                literal = self.expr()
                self.depth -= 1
                self.expect(")", "to close $(")
                start = "literal"
            elif self.pos < len(self.text) and _is_name_start(self.text[self.pos]):
                variable = "$" + (self.name() or "")
                if variable not in VARIABLES and variable not in REFUSED_VARIABLES:
                    raise SelectionError(f"unknown variable {variable}", offset)
                start = variable
            else:
                start = "$"
        else:
            head = self.key()
            if head is None:
                raise SelectionError(f"expected a path, found {self.found()}", offset)
            start = "key"
        steps: list[KeyStep | MethodStep] = []
        while True:
            self.skip()
            step_offset = self.pos
            if self.text.startswith("->", self.pos):
                self.pos += 2
                method = self.name()
                if method is None:
                    raise SelectionError(f"expected a method name after ->, found {self.found()}", self.pos)
                if method not in METHODS:
                    raise SelectionError(f"unknown method ->{method}", step_offset)
                args: list[Expr] = []
                if self.text.startswith("(", self.pos):
                    self.pos += 1
                    self.deeper()
                    while not self.take(")"):
                        if self.pos >= len(self.text):
                            raise SelectionError(f'expected ")" to close ->{method}(, found the end', self.pos)
                        args.append(self.expr())
                    self.depth -= 1
                fewest, most = METHODS[method]
                if not fewest <= len(args) <= most:
                    wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
                    raise SelectionError(f"->{method} takes {wanted} argument(s), got {len(args)}", step_offset)
                if method == "match" and not all(isinstance(a, ListLiteral) and len(a.items) == 2 for a in args):
                    raise SelectionError("->match takes [candidate, value] pairs", step_offset)
                steps.append(MethodStep(method, tuple(args), step_offset))
            elif self.text.startswith(".", self.pos) and not self.text.startswith("...", self.pos):
                self.pos += 1
                key = self.key()
                if key is None:
                    raise SelectionError(f"expected a key after '.', found {self.found()}", self.pos)
                steps.append(KeyStep(key, step_offset))
            else:
                break
        return Path(start, head, literal, tuple(steps), offset)

    def expr(self) -> Expr:
        """A method argument or literal: JSON values, with paths starting with $ or @."""
        self.skip()
        offset = self.pos
        if self.peek("$") or self.peek("@"):
            return self.path()
        if self.take("["):
            self.deeper()
            items: list[Expr] = []
            while not self.take("]"):
                if self.pos >= len(self.text):
                    raise SelectionError('expected "]" to close a list, found the end', self.pos)
                items.append(self.expr())
            self.depth -= 1
            return ListLiteral(tuple(items))
        if self.take("{"):
            self.deeper()
            pairs: list[tuple[str, Expr]] = []
            while not self.take("}"):
                if self.pos >= len(self.text):
                    raise SelectionError('expected "}" to close an object, found the end', self.pos)
                key_offset = self.pos
                key = self.key()
                if key is None:
                    raise SelectionError(f"expected a key in an object literal, found {self.found()}", key_offset)
                self.expect(":", f"after the key {key}")
                pairs.append((key, self.expr()))
            self.depth -= 1
            return ObjectLiteral(tuple(pairs))
        text = self.string()
        if text is not None:
            return Literal(text)
        number = self.number()
        if number is not None:
            return Literal(number)
        word = self.name()
        if word in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[word])
        raise SelectionError(
            f"expected a value (string, number, true, false, null, list, object, $ or @ path), found {self.found() if word is None else repr(word)}",
            offset,
        )


def parse_selection(text: str) -> Selection:
    """The selection (or body, or queryParams) mapping `text`; SelectionError with an offset."""
    return _Parser(text).selection(None)


def parse_expression(text: str, offset: int = 0) -> tuple[Path, int]:
    """One path expression starting at `offset` of `text` (a `{...}` of a URL template): the
    path and where it ends."""
    parser = _Parser(text)
    parser.pos = offset
    path = parser.path()
    parser.skip()
    return path, parser.pos


# ---------------------------------------------------------------------------------------------
# What a mapping uses (for validation)


def paths_of(node: Selection | Expr | Item | None) -> Iterator[Path]:
    """Every path in a mapping, method arguments and literals included."""
    if node is None:
        return
    if isinstance(node, Selection):
        for item in node.items:
            yield from paths_of(item)
    elif isinstance(node, Item):
        yield from paths_of(node.path)
        yield from paths_of(node.sub)
    elif isinstance(node, Path):
        yield node
        yield from paths_of(node.literal)
        for step in node.steps:
            if isinstance(step, MethodStep):
                for arg in step.args:
                    yield from paths_of(arg)
    elif isinstance(node, ListLiteral):
        for item in node.items:
            yield from paths_of(item)
    elif isinstance(node, ObjectLiteral):
        for _, value in node.pairs:
            yield from paths_of(value)


def variable_keys(path: Path) -> tuple[str, ...]:
    """The keys right after a variable: `$this.location.id->first` -> ("location", "id")."""
    keys: list[str] = []
    for step in path.steps:
        if not isinstance(step, KeyStep):
            break
        keys.append(step.name)
    return tuple(keys)


# ---------------------------------------------------------------------------------------------
# Evaluation


class Budget:
    """How much work one evaluation may do: one unit per value visited or produced."""

    __slots__ = ("remaining",)

    def __init__(self, units: int) -> None:
        self.remaining = units

    def spend(self, units: int = 1) -> None:
        self.remaining -= units
        if self.remaining < 0:
            raise MappingError("the mapping does more work than the answer's size allows")


def budget_for(answer_bytes: int) -> Budget:
    return Budget(100_000 + 16 * answer_bytes)


class Scope:
    """The variables of one evaluation ($args, $this, $batch)."""

    __slots__ = ("budget", "variables")

    def __init__(self, variables: dict[str, Any], budget: Budget) -> None:
        self.variables = variables
        self.budget = budget


def apply(selection: Selection, value: Any, scope: Scope) -> Any:
    """The selection applied to `value` (the answer, or the current object)."""
    whole = selection.whole
    if whole is not None:
        assert whole.path is not None
        return _apply_sub(whole.sub, evaluate(whole.path, value, value, scope), scope)
    return _apply_object(selection, value, scope)


def _apply_sub(sub: Selection | None, value: Any, scope: Scope) -> Any:
    if sub is None:
        return value
    return _apply_object(sub, value, scope)


def _apply_object(selection: Selection, value: Any, scope: Scope) -> Any:
    scope.budget.spend()
    if value is None:
        return None
    if value.__class__ is list:
        return [_apply_object(selection, item, scope) for item in value]
    if value.__class__ is not dict:
        return value  # a scalar where an object is wanted: left for the type check to refuse
    if selection.whole is not None:
        return apply(selection, value, scope)
    out: dict[str, Any] = {}
    for item in selection.items:
        if item.name is None:
            assert item.path is not None
            merged = _apply_sub(item.sub, evaluate(item.path, value, value, scope), scope)
            if merged.__class__ is dict:
                for key, field_value in merged.items():
                    out.setdefault(key, field_value)
        elif item.path is None:
            assert item.sub is not None
            out[item.name] = _apply_object(item.sub, value, scope)
        else:
            out[item.name] = _apply_sub(item.sub, evaluate(item.path, value, value, scope), scope)
    return out


def _get(value: Any, key: str, budget: Budget) -> Any:
    budget.spend()
    if value.__class__ is dict:
        return value.get(key)
    if value.__class__ is list:
        return [_get(item, key, budget) for item in value]
    return None


def evaluate(path: Path | Expr, current: Any, at: Any, scope: Scope) -> Any:
    """A path's (or literal's) value: `$` is `current`, `@` is `at`."""
    budget = scope.budget
    budget.spend()
    if isinstance(path, Literal):
        return path.value
    if isinstance(path, ListLiteral):
        return [evaluate(item, current, at, scope) for item in path.items]
    if isinstance(path, ObjectLiteral):
        return {key: evaluate(value, current, at, scope) for key, value in path.pairs}
    start = path.start
    if start == "$":
        value = current
    elif start == "@":
        value = at
    elif start == "key":
        value = _get(current, path.head or "", budget)
    elif start == "literal":
        value = evaluate(path.literal, current, at, scope) if path.literal is not None else None
    else:
        value = scope.variables.get(start)
    for step in path.steps:
        if isinstance(step, KeyStep):
            value = _get(value, step.name, budget)
        else:
            value = _METHOD_IMPLEMENTATIONS[step.name](value, step.args, current, scope)
    return value


def _first(value: Any, args, current, scope) -> Any:
    if value.__class__ in (list, str):
        return value[0] if value else None
    return value


def _last(value: Any, args, current, scope) -> Any:
    if value.__class__ in (list, str):
        return value[-1] if value else None
    return value


def _slice(value: Any, args, current, scope) -> Any:
    if value.__class__ not in (list, str):
        return None
    bounds = [evaluate(a, current, value, scope) for a in args]
    if any(b is not None and b.__class__ is not int for b in bounds):
        return None
    start = bounds[0] if bounds else None
    end = bounds[1] if len(bounds) > 1 else None
    scope.budget.spend(len(value))
    return value[start:end]


def _size(value: Any, args, current, scope) -> Any:
    if value.__class__ in (list, str, dict):
        return len(value)
    return None


def _map(value: Any, args, current, scope) -> Any:
    if value is None:
        return None
    items = value if value.__class__ is list else [value]
    return [evaluate(args[0], current, item, scope) for item in items]


def _match(value: Any, args, current, scope) -> Any:
    for pair in args:
        candidate, result = pair.items
        if isinstance(candidate, Path) and candidate.start == "@" and not candidate.steps:
            return evaluate(result, current, value, scope)  # the wildcard [@, default]
        if _equal(evaluate(candidate, current, value, scope), value):
            return evaluate(result, current, value, scope)
    return None


def _entries(value: Any, args, current, scope) -> Any:
    if value.__class__ is not dict:
        return None
    scope.budget.spend(len(value))
    return [{"key": key, "value": item} for key, item in value.items()]


def _keys(value: Any, args, current, scope) -> Any:
    return list(value) if value.__class__ is dict else None


def _values(value: Any, args, current, scope) -> Any:
    return list(value.values()) if value.__class__ is dict else None


def _json_stringify(value: Any, args, current, scope) -> Any:
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        raise MappingError("a value cannot be written as JSON") from None
    scope.budget.spend(len(text) // 8)
    return text


def _equal(a: Any, b: Any) -> bool:
    if a.__class__ is bool or b.__class__ is bool:
        return a is b
    try:
        return a == b
    except RecursionError:
        raise MappingError("a value nests too deeply to compare") from None


def _comparison(check: Callable[[Any, Any], bool]):
    def compare(value: Any, args, current, scope) -> Any:
        other = evaluate(args[0], current, value, scope)
        numbers = (int, float)
        if (value.__class__ in numbers and other.__class__ in numbers) or (
            value.__class__ is str and other.__class__ is str
        ):
            return check(value, other)
        return None

    return compare


def _filter(value: Any, args, current, scope) -> Any:
    if value.__class__ is not list:
        return None
    return [item for item in value if evaluate(args[0], current, item, scope) is True]


def _find(value: Any, args, current, scope) -> Any:
    if value.__class__ is not list:
        return None
    for item in value:
        if evaluate(args[0], current, item, scope) is True:
            return item
    return None


def _join_not_null(value: Any, args, current, scope) -> Any:
    separator = evaluate(args[0], current, value, scope)
    if value.__class__ is not list or separator.__class__ is not str:
        return None
    parts = [scalar_text(item) for item in value if item is not None]
    if any(part is None for part in parts):
        return None
    scope.budget.spend(len(parts))
    return separator.join(parts)  # type: ignore[arg-type]


def _get_method(value: Any, args, current, scope) -> Any:
    key = evaluate(args[0], current, value, scope)
    if value.__class__ is dict and key.__class__ is str:
        return value.get(key)
    if value.__class__ in (list, str) and key.__class__ is int and -len(value) <= key < len(value):
        return value[key]
    return None


def _type_of(value: Any, args, current, scope) -> Any:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        value.__class__, "unknown"
    )


_METHOD_IMPLEMENTATIONS: dict[str, Callable[[Any, tuple, Any, Scope], Any]] = {
    "first": _first,
    "last": _last,
    "slice": _slice,
    "size": _size,
    "map": _map,
    "match": _match,
    "entries": _entries,
    "keys": _keys,
    "values": _values,
    "jsonStringify": _json_stringify,
    "eq": lambda value, args, current, scope: _equal(value, evaluate(args[0], current, value, scope)),
    "ne": lambda value, args, current, scope: not _equal(value, evaluate(args[0], current, value, scope)),
    "gt": _comparison(lambda a, b: a > b),
    "gte": _comparison(lambda a, b: a >= b),
    "lt": _comparison(lambda a, b: a < b),
    "lte": _comparison(lambda a, b: a <= b),
    "not": lambda value, args, current, scope: value is False or value is None,
    "filter": _filter,
    "find": _find,
    "joinNotNull": _join_not_null,
    "get": _get_method,
    "echo": lambda value, args, current, scope: evaluate(args[0], current, value, scope),
    "typeOf": _type_of,
}
assert set(_METHOD_IMPLEMENTATIONS) == set(METHODS)


def scalar_text(value: Any) -> str | None:
    """A scalar as it goes into a URL or a header: strings as they are, numbers and booleans as
    JSON writes them; None for anything else."""
    if value.__class__ is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value.__class__ is int:
        return str(value)
    if value.__class__ is float:
        return orjson.dumps(value).decode()
    return None
