"""URL and header templates of Apollo Connectors: text with `{expression}` parts, where an
expression is a path of the mapping language (`{$args.id}`, `{$this.code}`,
`{$batch.id->joinNotNull(',')}`).

Rendering rules (Apollo's, and where its documentation is silent, ours):
- a value in the path is one path segment: written as text (numbers and booleans as JSON writes
  them) and percent-encoded, `/` included, so a value never changes the path's shape, let alone
  the origin; a null or non-scalar value there refuses the request (RequestError);
- a query parameter whose value is exactly one expression is dropped when the value is null and
  repeated when it is a list (`id=1&id=2`); for one comma-joined parameter write
  `?ids={$batch.id->joinNotNull(',')}`; an expression inside other text is written as text (a list
  comma-joined, null as nothing);
- `http.queryParams` (a mapping producing an object) adds one parameter per key by the same rules;
- header values are text with expressions; a value with a line break or NUL is refused.

The scheme, host and port of an absolute URL are literal text, never an expression: the origins a
connector can reach are known when it is registered (that is where its secrets may go).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ._selection import MappingError, Path, Scope, SelectionError, evaluate, parse_expression, scalar_text

_REFUSED_URL_CHARS = frozenset(' \t\r\n#\\"<>`^|')


class RequestError(Exception):
    """The request cannot be built from the values at hand (never carries one of them)."""


@dataclass(frozen=True, slots=True)
class Template:
    """Text and expressions, in order; `offsets` are each part's place in the original text."""

    parts: tuple[str | Path, ...]

    @property
    def expressions(self) -> tuple[Path, ...]:
        return tuple(p for p in self.parts if isinstance(p, Path))

    def text(self, scope: Scope) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_loose_text(_value(part, scope)))
        return "".join(out)


def parse_template(text: str) -> Template:
    """`text` with its `{...}` expressions parsed; SelectionError with the offset in `text`."""
    parts: list[str | Path] = []
    literal: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "{":
            if literal:
                parts.append("".join(literal))
                literal = []
            path, end = parse_expression(text, pos + 1)
            if end >= len(text) or text[end] != "}":
                raise SelectionError('expected "}" to close the expression', end)
            parts.append(path)
            pos = end + 1
        elif char == "}":
            raise SelectionError('a "}" without its "{"', pos)
        else:
            literal.append(char)
            pos += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


@dataclass(frozen=True, slots=True)
class UrlTemplate:
    origin: str | None  # "https://host[:port]" when the template is absolute
    base_path: str  # the absolute template's path before its first expression-bearing part
    path: Template
    query: tuple[tuple[str, Template], ...]


class UrlProblem(Exception):
    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def origin_of(url: str) -> tuple[str, str]:
    """("scheme://host[:port]", path) of an absolute http(s) URL without user info, query or
    fragment; UrlProblem otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlProblem(f"{url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlProblem(f"{url!r} is not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlProblem(f"{url!r} carries user information: put credentials in the manifest's headers")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise UrlProblem(f"{url!r} has a query or fragment: a base URL has neither")
    if any(c in _REFUSED_URL_CHARS for c in url):
        raise UrlProblem(f"{url!r} contains characters a URL may not")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")
    return origin, parts.path.rstrip("/")


def parse_url(text: str) -> UrlTemplate:
    """A @connect URL template; SelectionError / UrlProblem with the offset in `text`."""
    for index, char in enumerate(text):
        if char in _REFUSED_URL_CHARS and not _inside_expression(text, index):
            raise UrlProblem(f"the URL contains {char!r}, which a URL may not", index)
    template = parse_template(text)
    origin: str | None = None
    base_path = ""
    parts = list(template.parts)
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        head = parts[0] if parts and isinstance(parts[0], str) else ""
        scheme_end = head.index("://") + 3
        slash = head.find("/", scheme_end)
        question = head.find("?", scheme_end)
        ends = [i for i in (slash, question) if i >= 0]
        if not ends and len(parts) > 1:
            raise UrlProblem("the scheme, host and port of a URL must be literal text, not an expression", len(head))
        end = min(ends) if ends else len(head)
        origin, base_path = origin_of(head[:end])
        parts[0] = head[end:]
    elif not text.startswith("/"):
        raise UrlProblem("the URL must be absolute (http:// or https://) or a path starting with /", 0)
    path_parts: list[str | Path] = []
    query_parts: list[str | Path] = []
    in_query = False
    for part in parts:
        if in_query:
            query_parts.append(part)
        elif isinstance(part, str) and "?" in part:
            before, after = part.split("?", 1)
            if before:
                path_parts.append(before)
            if after:
                query_parts.append(after)
            in_query = True
        elif part != "":
            path_parts.append(part)
    query: list[tuple[str, Template]] = []
    for chunk in _split_literal(query_parts, "&"):
        if not chunk:
            continue
        name_parts = _split_literal(chunk, "=")
        name = name_parts[0]
        if len(name) != 1 or not isinstance(name[0], str) or not name[0]:
            raise UrlProblem("a query parameter's name must be literal text", 0)
        value = [p for piece in name_parts[1:] for p in piece] if len(name_parts) > 1 else []
        if len(name_parts) > 2:
            raise UrlProblem(f"the query parameter {name[0]!r} has two '='", 0)
        query.append((name[0], Template(tuple(value))))
    return UrlTemplate(origin, base_path, Template(tuple(path_parts)), tuple(query))


def _inside_expression(text: str, index: int) -> bool:
    depth = 0
    for char in text[:index]:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
    return depth > 0


def _split_literal(parts: list[str | Path], separator: str) -> list[list[str | Path]]:
    """`parts` split at `separator` in their text parts (never inside an expression)."""
    chunks: list[list[str | Path]] = [[]]
    for part in parts:
        if isinstance(part, str):
            pieces = part.split(separator)
            if pieces[0]:
                chunks[-1].append(pieces[0])
            for piece in pieces[1:]:
                chunks.append([piece] if piece else [])
        else:
            chunks[-1].append(part)
    return chunks


def _value(path: Path, scope: Scope) -> Any:
    return evaluate(path, None, None, scope)


def _loose_text(value: Any) -> str:
    """An expression's value inside other text: null as nothing, a list comma-joined."""
    if value is None:
        return ""
    if value.__class__ is list:
        texts = [scalar_text(item) for item in value if item is not None]
        if any(text is None for text in texts):
            raise RequestError("a list of objects cannot be written in a URL or header")
        return ",".join(texts)  # type: ignore[arg-type]
    text = scalar_text(value)
    if text is None:
        raise RequestError("an object cannot be written in a URL or header")
    return text


def _query_values(value: Any) -> list[str]:
    if value is None:
        return []
    if value.__class__ is list:
        texts = [scalar_text(item) for item in value if item is not None]
        if any(text is None for text in texts):
            raise RequestError("a query parameter's list holds an object")
        return texts  # type: ignore[return-value]
    text = scalar_text(value)
    if text is None:
        raise RequestError("a query parameter's value is an object")
    return [text]


def render_url(base: str, template: UrlTemplate, scope: Scope, extra_query: Any = None) -> str:
    """The request URL: `base` (origin and base path, no trailing slash) then the template's path
    and query; `extra_query` is the evaluated `queryParams` mapping (an object, or None)."""
    path: list[str] = [base, template.base_path]
    for part in template.path.parts:
        if isinstance(part, str):
            path.append(part)
            continue
        try:
            value = _value(part, scope)
        except MappingError as error:
            raise RequestError(str(error)) from None
        text = scalar_text(value)
        if text is None:
            raise RequestError("a value of the URL's path is missing or not a scalar")
        path.append(quote(text, safe=""))
    pairs: list[str] = []
    for name, value_template in template.query:
        encoded_name = quote(name, safe="")
        parts = value_template.parts
        try:
            if len(parts) == 1 and isinstance(parts[0], Path):
                values = _query_values(_value(parts[0], scope))
            else:
                values = [value_template.text(scope)]
        except MappingError as error:
            raise RequestError(str(error)) from None
        pairs.extend(f"{encoded_name}={quote(text, safe='')}" for text in values)
    if extra_query is not None:
        if extra_query.__class__ is not dict:
            raise RequestError("queryParams must map to an object")
        for name, value in extra_query.items():
            encoded_name = quote(name, safe="")
            pairs.extend(f"{encoded_name}={quote(text, safe='')}" for text in _query_values(value))
    url = "".join(path)
    return f"{url}?{'&'.join(pairs)}" if pairs else url


def render_header(template: Template, scope: Scope) -> str:
    try:
        text = template.text(scope)
    except MappingError as error:
        raise RequestError(str(error)) from None
    if any(c in text for c in "\r\n\x00"):
        raise RequestError("a header value would hold a line break")
    return text
