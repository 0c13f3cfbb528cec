"""Connector manifests: what a partner registers, read and checked before anything runs.

One typed model (`ManifestDocument`) reads every manifest, a folder's YAML or the admin API's JSON:
unknown keys and wrong types are problems naming the key, never repeating a value.

Kinds:
- `subgraph`: a federation subgraph over HTTP (`url`, `timeout`, `headers`, and the SDL from
  `_service { sdl }` or pinned with `sdl` / `sdl_file`).
- `rest`: a REST/JSON API mapped into the graph by its SDL's `@source`/`@connect` (gateway/connect/),
  executed by the gateway itself: `url` is the API's base URL (the origin its secrets may go to),
  `headers` and `timeout` as a subgraph's, and the SDL always given (`sdl` / `sdl_file`): there is
  no `_service { sdl }` to read.
- `python`: a Strawberry federation schema run in-process (`schema: file.py:attribute`). Only
  from the operator's connectors folder: code is never accepted over the admin API.

Where a manifest comes from decides what its templates may read (`Manifest.provenance`):
- `folder` (the operator's connectors folder): `${NAME}` in the url and header values is taken
  from the gateway's environment. The operator wrote those files; the environment is theirs.
- `admin` (sent over the admin API, to validate or to register): never the environment. Any `${`
  in the manifest is refused with `SECRET_REFERENCE_REFUSED`, whose message names no variable
  (set or not, the answer is the same), except `${secret:NAME}` in a header value: one of the
  connector's own secrets, sent by its owner as `secrets: {NAME: value}`, stored with the
  connector, write-only.
- `store` (registered earlier, read back at start): never the environment either; only
  `${secret:NAME}` resolves, from the secrets stored with the connector.

This module must never put a secret's value into `to_dict()`, a repr or an error message, never
expand a secret's value as a template, and never read the environment for a manifest that did
not come from the operator's folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..policy import RULE, TYPE_PROBLEMS, choice, explained, matching, refuse

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# visible ASCII with inner spaces: what every HTTP client sends as a header value unchanged
# (anything else makes a client raise an error that may quote the value)
_SECRET_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,8190}[\x21-\x7e])?$")
KINDS = ("subgraph", "rest", "python")
HTTP_KINDS = ("subgraph", "rest")  # reached over HTTP at their url, with their headers and secrets
Provenance = Literal["folder", "admin", "store"]

INVALID_MANIFEST = "INVALID_MANIFEST"
SECRET_REFERENCE_REFUSED = "SECRET_REFERENCE_REFUSED"
HOW_TO_STORE_A_SECRET = (
    "a manifest sent over the admin API never reads the gateway's environment. Store the value with "
    "the connector instead: 'secrets: {NAME: value}' in the manifest and '${secret:NAME}' in the header "
    "value (write-only: never shown again, sent only to this connector's own url)"
)
_DROPPED_SECRETS = (
    "stored secrets are kept only while the connector's owner and its url's scheme, host and port stay the same"
)


class ManifestError(Exception):
    """Problems with a manifest: `problems` are the messages, `codes` their stable codes (same order)."""

    def __init__(self, problems: list[str], codes: list[str] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.codes = codes if codes is not None else [INVALID_MANIFEST] * len(problems)

    def coded(self, generic: str = INVALID_MANIFEST) -> list[tuple[str, str]]:
        """(code, message) pairs, `generic` standing for INVALID_MANIFEST (e.g. an SDL that cannot be read)."""
        return [
            (generic if code == INVALID_MANIFEST else code, message)
            for code, message in zip(self.codes, self.problems, strict=True)
        ]


class Secrets(Mapping[str, str]):
    """A connector's upstream secrets by name. Its repr names them and never shows a value."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({', '.join(sorted(self._values))})"

    __str__ = __repr__


def origin(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, None for anything else."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip(".").lower(), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Manifest:
    name: str
    owner: str
    kind: str
    url: str | None = None
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)  # templates, as written
    sdl: str | None = None  # pinned SDL, when given
    schema: str | None = None  # python: "file.py:attribute"
    folder: Path | None = None  # python: where the file lives
    provenance: Provenance = "admin"  # only "folder" reads the gateway's environment
    secrets: Secrets = field(default_factory=Secrets, repr=False, compare=False)  # never in to_dict()
    # where residents' erasure requests go (docs/partners.md, "Erasure requests"): on the url's origin
    erasure: ErasureEndpoint | None = None

    def to_dict(self) -> dict[str, Any]:
        """What is stored and listed: the templates, never a secret's value."""
        data: dict[str, Any] = {"name": self.name, "owner": self.owner, "kind": self.kind, "timeout": self.timeout}
        if self.url:
            data["url"] = self.url
        if self.headers:
            data["headers"] = dict(self.headers)
        if self.schema:
            data["schema"] = self.schema
        if self.erasure is not None:
            data["erasure"] = (
                {"retained": self.erasure.retained}
                if self.erasure.retained is not None
                else {"url": self.erasure.url, "method": self.erasure.method}
            )
        return data

    def resolved_erasure_url(self) -> str | None:
        """The erasure endpoint's URL, `${NAME}` read as the url's are (the operator's folder only)."""
        if self.erasure is None or self.erasure.url is None:
            return None
        problems: list[tuple[str, str]] = []
        url = self._environment(self.erasure.url, "the erasure url", problems)
        _raise(problems)
        return url

    def secret_references(self) -> set[str]:
        """The names of the secrets the header values use."""
        return {name for template in self.headers.values() for name in _SECRET_REFERENCE.findall(template)}

    def resolved_url(self) -> str:
        """The URL, with `${NAME}` from the environment for the operator's folder manifests only."""
        problems: list[tuple[str, str]] = []
        if _SECRET_REFERENCE.search(self.url or ""):
            problems.append((SECRET_REFERENCE_REFUSED, "the url may not use secrets: they go in header values only"))
            url = self.url or ""
        else:
            url = self._environment(self.url or "", "the url", problems)
        _raise(problems)
        return url

    def routing_url(self) -> str:
        """The URL written into the supergraph. Informational (traffic goes through the connector's
        client): a stored manifest that cannot be resolved any more keeps its template there."""
        try:
            return self.resolved_url()
        except ManifestError:
            return self.url or ""

    def resolved_headers(self) -> dict[str, str]:
        """Header values with `${secret:NAME}` from the connector's secrets and, in the operator's
        folder manifests only, `${NAME}` from the environment. A secret's value is inserted as is,
        never read as a template. Errors name no value, and no variable unless the manifest is
        the operator's own."""
        problems: list[tuple[str, str]] = []
        headers = {key: self._header(key, template, problems) for key, template in self.headers.items()}
        _raise(problems)
        return headers

    def _header(self, key: str, template: str, problems: list[tuple[str, str]]) -> str:
        where = f"header {key!r}"
        pieces, position = [], 0
        for match in _SECRET_REFERENCE.finditer(template):
            pieces.append(self._environment(template[position : match.start()], where, problems))
            if match[1] in self.secrets:
                pieces.append(self.secrets[match[1]])
            else:
                problems.append(
                    (
                        INVALID_MANIFEST,
                        f"{where} uses secret {match[1]}, which this connector has not stored: send its value in 'secrets' ({_DROPPED_SECRETS})",
                    )
                )
            position = match.end()
        pieces.append(self._environment(template[position:], where, problems))
        return "".join(pieces)

    def _environment(self, text: str, where: str, problems: list[tuple[str, str]]) -> str:
        """`${NAME}` in `text` from the environment, for the operator's folder manifests only."""
        if "${" not in text:
            return text
        if self.provenance != "folder":
            problems.append((SECRET_REFERENCE_REFUSED, f"{where} refers to a variable: {HOW_TO_STORE_A_SECRET}"))
            return text

        def value(match: re.Match) -> str:
            if match[1] not in os.environ:
                problems.append((INVALID_MANIFEST, f"environment variable {match[1]} is not set (used in {where})"))
                return ""
            return os.environ[match[1]]

        return _ENV.sub(value, text)


@dataclass(frozen=True)
class ErasureEndpoint:
    """A connector's endpoint for residents' erasure requests: `url` (as written, a template for
    the operator's folder) on the origin of the connector's url, so that the connector's headers,
    its secrets included, go to its own origin only; `method` POST, PUT or DELETE. Or, declared by
    the operator only (its folder), `retained`: the connector must keep residents' data, for a
    legal reason of RETENTION_REASONS (GDPR art. 17(3)); nothing is sent to it."""

    url: str | None
    method: str = "POST"
    retained: str | None = None


ERASURE_METHODS = ("POST", "PUT", "DELETE")
# why a connector keeps residents' data despite an erasure request (GDPR art. 17(3)), stable codes
RETENTION_REASONS = {
    "legal-obligation": "art. 17(3)(b): a legal obligation of the controller",
    "public-task": "art. 17(3)(b): a task in the public interest or in the exercise of official authority",
    "public-health": "art. 17(3)(c): public health",
    "archiving": "art. 17(3)(d): archiving in the public interest, research or statistics",
    "legal-claims": "art. 17(3)(e): legal claims",
}


def erasure_origin_problem(erasure_url: str, url: str) -> str | None:
    """Why an erasure URL is refused next to the connector's `url`, or None: http(s), no
    credentials, and on the url's origin (scheme, host, port), where the connector's headers go."""
    try:
        parts = urlsplit(erasure_url)
    except ValueError:
        return "erasure.url is not a valid URL"
    if parts.username or parts.password:
        return "erasure.url may not carry credentials: the connector's headers are sent with it"
    own = origin(url)
    if origin(erasure_url) is None or own is None or origin(erasure_url) != own:
        return "erasure.url must be an http(s) URL on the origin (scheme, host and port) of the connector's url"
    return None


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ManifestError([message for _, message in unique], [code for code, _ in unique])


def with_kept_secrets(manifest: Manifest, previous: Manifest | None) -> Manifest:
    """The manifest with exactly the secrets its headers use: those sent with it, else those stored
    with the connector it replaces, kept only while that connector's owner and origin stay the
    same (a secret given for one origin is never sent to another). A reference left without a value
    is reported by `resolved_headers()`."""
    same = (
        previous is not None
        and previous.owner == manifest.owner
        and origin(manifest.url) is not None
        and origin(previous.url) == origin(manifest.url)
    )
    kept: Mapping[str, str] = previous.secrets if same and previous is not None else {}
    values = {}
    for name in manifest.secret_references():
        if name in manifest.secrets:
            values[name] = manifest.secrets[name]
        elif name in kept:
            values[name] = kept[name]
    return replace(manifest, secrets=Secrets(values))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, mapping keys included: walked without recursion, so that
    a deeply nested hostile value costs a loop, never the interpreter's stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, inner in item.items():
                pending.extend((inner, key))
        elif isinstance(item, list):
            pending.extend(item)


def _variable_references(data: dict) -> list[str]:
    """Where a manifest sent over the admin API refers to a variable (`${`): refused, since only the
    operator's files may read the gateway's environment. `${secret:NAME}` is a header value's way
    to use the connector's own secret. The SDL is text, never a template, and secret values are
    opaque: neither is read for references. The messages never repeat what was referred to."""
    problems = []
    for key, value in data.items():
        if key in ("sdl", "secrets"):
            continue
        where = repr(key) if isinstance(key, str) and "${" not in key else "a key"
        if key == "headers" and isinstance(value, dict):
            for name, template in value.items():
                if any("${" in text for text in _strings(name)):
                    problems.append(f"a header name refers to a variable: {HOW_TO_STORE_A_SECRET}")
                elif any(
                    "${" in text
                    for text in _strings(_SECRET_REFERENCE.sub("", template) if isinstance(template, str) else template)
                ):
                    problems.append(f"header {name!r} refers to a variable: {HOW_TO_STORE_A_SECRET}")
        elif key == "url" and isinstance(value, str) and _SECRET_REFERENCE.search(value):
            problems.append("the url may not use secrets: they go in header values only")
        elif any("${" in text for text in _strings(value)) or "${" in str(key):
            what = "the url" if key == "url" else where
            problems.append(
                f"{what} refers to a variable: a manifest sent over the admin API never reads the gateway's environment; write the value out (secrets go in header values: 'secrets: {{NAME: value}}' and '${{secret:NAME}}')"
            )
    return list(dict.fromkeys(problems))


# -- the manifest as written -------------------------------------------------------------------------

MAX_PROBLEMS = 50  # a hostile manifest's problems are listed up to this many, then counted
_SHOWN_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # a key repeated in a problem; others are not


class ErasureEntry(BaseModel):
    """`erasure:` as written: `{url: ..., method: POST|PUT|DELETE}`, or `{retained: <reason>}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: StrictStr | None = None
    method: Annotated[
        StrictStr,
        AfterValidator(
            lambda method: (
                method.upper() if method.upper() in ERASURE_METHODS else refuse("{where} must be POST, PUT or DELETE")
            )
        ),
    ] = "POST"
    retained: (
        Annotated[str, choice(tuple(RETENTION_REASONS), f"{{where}} must be one of {', '.join(RETENTION_REASONS)}")]
        | None
    ) = None

    @model_validator(mode="after")
    def _endpoint_or_retained(self) -> ErasureEntry:
        if (self.url is None) == (self.retained is None) or (
            self.retained is not None and "method" in self.model_fields_set
        ):
            refuse("{where} must be {url: ..., method: POST|PUT|DELETE}, or {retained: <reason>}")
        return self


class ManifestDocument(BaseModel):
    """A manifest as written, wherever it comes from: a connector folder's manifest.yaml, the admin
    API's JSON body, a stored connector read back. The keys, their types and their forms; what
    depends on where it comes from (secrets, python code, the folder) is `parse_manifest`'s.
    A key set to nothing (`key:` in YAML, null in JSON) is the same as the key left out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[
        StrictStr,
        matching(NAME, "name must be lowercase letters, digits and dashes, starting with a letter (at most 63)"),
    ]
    owner: Annotated[StrictStr, matching(NAME, "owner must name a partner (lowercase letters, digits and dashes)")]
    kind: Annotated[str, choice(KINDS, f"kind must be one of {', '.join(KINDS)}")] = "subgraph"
    url: StrictStr | None = None
    timeout: Annotated[
        StrictFloat, Field(gt=0, le=120), explained("timeout must be a number of seconds between 0 and 120")
    ] = 10.0
    headers: Annotated[
        dict[StrictStr, StrictStr], explained("headers must map header names to strings")
    ] = {}  # templates
    sdl: StrictStr | None = None
    sdl_file: StrictStr | None = None  # in the connector's folder
    python_schema: StrictStr | None = Field(None, alias="schema")  # python: "file.py:attribute"
    secrets: dict[
        Annotated[
            StrictStr,
            matching(
                _SECRET_NAME,
                "{where}: secret names are letters, digits and underscores, not starting with a digit (at most 64)",
            ),
        ],
        Annotated[
            StrictStr,
            matching(
                _SECRET_VALUE,
                "the value of {where} must be visible ASCII characters (inner spaces allowed), at most 8192",
            ),
        ],
    ] = {}
    erasure: ErasureEntry | None = None

    @model_validator(mode="before")
    @classmethod
    def _nothing_is_absent(cls, data: Any) -> Any:
        return {key: value for key, value in data.items() if value is not None} if isinstance(data, dict) else data

    @field_validator("headers")
    @classmethod
    def _settable(cls, headers: dict[str, str]) -> dict[str, str]:
        if any(name.lower() in ("host", "content-length", "transfer-encoding", "connection") for name in headers):
            refuse("headers may not set host, content-length, transfer-encoding or connection")
        return headers


def _problem(error: ErrorDetails) -> str:
    """One line for one problem of the document, naming its key (when it is safe to repeat)."""
    location = error["loc"]
    if error["type"] == "extra_forbidden":
        key = str(location[-1])
        shown = f" {key!r}" if _SHOWN_KEY.match(key) else ""
        return f"unknown manifest key{shown}" if len(location) == 1 else f"{_path(location[:-1])}: unknown key{shown}"
    if location[-1:] == ("[key]",):
        where, parent = _path(location[:-2]), _path(location[:-3])
    else:
        where, parent = _path(location), _path(location[:-1])
    if error["type"] == RULE:
        return error["msg"].replace("{where}", where).replace("{parent}", parent)
    return f"{where} {TYPE_PROBLEMS.get(error['type'], 'is refused')}"


def _path(location: tuple[int | str, ...]) -> str:
    parts = [
        f"[{part}]" if isinstance(part, int) else f".{part}" if _SHOWN_KEY.match(part) else ".<key>"
        for part in location
    ]
    return "".join(parts).lstrip(".") or "the manifest"


def _coherence(
    document: ManifestDocument, folder: Path | None, allow_python: bool, provenance: Provenance
) -> list[str]:
    """What the document's keys say together, and what its origin allows."""
    problems = []
    kind, url = document.kind, document.url
    if document.secrets and provenance != "admin":
        problems.append(
            "secrets are sent over the admin API; the operator's folder manifests take theirs from the environment"
        )
    elif document.secrets:
        used = {
            reference for template in document.headers.values() for reference in _SECRET_REFERENCE.findall(template)
        }
        problems += [
            f"secret {unused} is not used by any header value ('${{secret:{unused}}}')"
            for unused in sorted(set(document.secrets) - used)
        ]
    if document.sdl_file is not None and folder is None:
        problems.append("sdl_file needs a connector folder; send the SDL itself as 'sdl'")
    if kind in HTTP_KINDS:
        if not url:
            problems.append(f"a {kind} connector needs a url" + (": its API's base URL" if kind == "rest" else ""))
        if document.python_schema is not None:
            problems.append("schema is for python connectors")
    if kind == "rest" and document.sdl_file is None and not (document.sdl or "").strip():
        problems.append(
            "a rest connector needs its SDL with @source/@connect ('sdl', or 'sdl_file' in a folder): a REST API has no _service { sdl } to read"
        )
    if kind == "python":
        if not allow_python:
            problems.append(
                "python connectors run code in the gateway: only the operator's connectors folder may hold them"
            )
        if document.python_schema is None or ":" not in document.python_schema:
            problems.append("a python connector needs schema: file.py:attribute")
        if folder is None:
            problems.append("a python connector needs its folder")
    erasure = document.erasure
    if erasure is not None and erasure.retained is not None:
        # only the operator's folder: a row read back from the store (or anything else) that says
        # `retained` would excuse a partner from erasing (art. 17) on its own word
        if provenance != "folder":
            problems.append(
                "erasure.retained is declared by the operator (its connectors folder): a partner names an erasure endpoint"
            )
    elif erasure is not None and kind not in HTTP_KINDS:
        problems.append(
            "erasure is for subgraph and rest connectors (an in-process connector is the operator's own code)"
        )
    elif (
        erasure is not None
        and erasure.url is not None
        and provenance != "folder"
        and url
        and "${" not in url
        and "${" not in erasure.url
    ):
        problems += [problem for problem in (erasure_origin_problem(erasure.url, url),) if problem is not None]
    return problems


def _read_sdl_file(document: ManifestDocument, folder: Path | None, problems: list[str]) -> str | None:
    if document.sdl_file is None or folder is None:
        return document.sdl
    try:
        return (folder / document.sdl_file).read_text(encoding="utf-8")
    except OSError as error:
        problems.append(f"cannot read sdl_file: {error.strerror}")
        return None


def parse_manifest(
    data: Any,
    folder: Path | None = None,
    *,
    allow_python: bool = False,
    provenance: Provenance = "admin",
    secrets: Mapping[str, str] | None = None,
) -> Manifest:
    """A manifest from its data. `provenance` says where it comes from (see the module's docstring;
    the default is the untrusted one); `secrets` are those stored with the connector (store only)."""
    if not isinstance(data, dict):
        raise ManifestError(["the manifest must be a mapping"])
    refused = _variable_references(data) if provenance == "admin" else []
    document, sdl = None, None
    try:
        document = ManifestDocument.model_validate(data)
    except ValidationError as error:
        problems = list(dict.fromkeys(_problem(item) for item in error.errors()))
    else:
        problems = _coherence(document, folder, allow_python, provenance)
        sdl = _read_sdl_file(document, folder, problems)
    if refused or problems or document is None:
        codes = [SECRET_REFERENCE_REFUSED] * len(refused) + [INVALID_MANIFEST] * len(problems)
        listed = (refused + problems)[:MAX_PROBLEMS]
        if len(codes) > MAX_PROBLEMS:
            listed.append(f"... and {len(codes) - MAX_PROBLEMS} more problems")
            codes = [*codes[:MAX_PROBLEMS], INVALID_MANIFEST]
        raise ManifestError(listed, codes)
    http = document.kind in HTTP_KINDS
    return Manifest(
        name=document.name,
        owner=document.owner,
        kind=document.kind,
        url=document.url if http else None,
        timeout=document.timeout,
        headers=dict(document.headers),
        sdl=sdl,
        schema=document.python_schema if document.kind == "python" else None,
        folder=folder,
        provenance=provenance,
        secrets=Secrets(document.secrets if provenance == "admin" else secrets),
        erasure=ErasureEndpoint(document.erasure.url, document.erasure.method, document.erasure.retained)
        if document.erasure is not None
        else None,
    )


def read_manifest_folder(folder: Path, *, allow_python: bool) -> Manifest:
    """An operator's connector folder: the only manifests whose `${NAME}` reads the environment."""
    path = folder / "manifest.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError([f"cannot read {path}: {error}"]) from None
    return parse_manifest(data, folder, allow_python=allow_python, provenance="folder")


def load_python_schema(manifest: Manifest) -> Any:
    """Import a python connector's Strawberry schema from its folder."""
    assert manifest.schema is not None and manifest.folder is not None
    file_name, _, attribute = manifest.schema.partition(":")
    module_name = f"citygate_connector_{manifest.name.replace('-', '_')}"
    path = (manifest.folder / file_name).resolve()
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ManifestError([f"cannot load {path}"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Strawberry resolves annotations through the module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the connector's own code failed to import
        raise ManifestError([f"{path} failed to import: {type(error).__name__}: {error}"]) from None
    schema = getattr(module, attribute or "schema", None)
    if schema is None:
        raise ManifestError([f"{path} has no attribute {attribute!r}"])
    return schema


def python_schema_sdl(schema: Any) -> str:
    result = schema.execute_sync("{ _service { sdl } }")
    if result.errors or not result.data:
        raise ManifestError(
            ["the python connector's schema does not answer _service { sdl }: is it a federation schema?"]
        )
    return result.data["_service"]["sdl"]
