"""Connector manifests: what a partner registers, read and checked before anything runs.

Kinds:
- `subgraph`: a federation subgraph over HTTP (`url`, `timeout`, `headers`, and the SDL from
  `_service { sdl }` or pinned with `sdl` / `sdl_file`). Header values may name environment
  variables as `${NAME}`: the manifest stores the template, never the secret.
- `python`: a Strawberry federation schema run in-process (`schema: file.py:attribute`). Only
  from the operator's connectors folder: code is never accepted over the admin API.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
KINDS = ("subgraph", "python")


class ManifestError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Manifest:
    name: str
    owner: str
    kind: str
    url: str | None = None
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)
    sdl: str | None = None  # pinned SDL, when given
    schema: str | None = None  # python: "file.py:attribute"
    folder: Path | None = None  # python: where the file lives

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "owner": self.owner, "kind": self.kind, "timeout": self.timeout}
        if self.url:
            data["url"] = self.url
        if self.headers:
            data["headers"] = dict(self.headers)
        if self.schema:
            data["schema"] = self.schema
        return data

    def resolved_url(self) -> str:
        """The URL with `${NAME}` taken from the environment (e.g. a deployment's host)."""
        return _substitute({"url": self.url or ""}, "the url")["url"]

    def resolved_headers(self) -> dict[str, str]:
        """Header values with `${NAME}` taken from the environment; missing ones raise."""
        return _substitute(self.headers, "a header")


def _substitute(templates: dict[str, str], where: str) -> dict[str, str]:
    """Every template with `${NAME}` taken from the environment; one problem per variable not set."""
    missing = [name for template in templates.values() for name in _ENV.findall(template) if name not in os.environ]
    if missing:
        raise ManifestError([f"environment variable {name} is not set (used in {where})" for name in missing])
    return {key: _ENV.sub(lambda match: os.environ[match[1]], template) for key, template in templates.items()}


def parse_manifest(data: Any, folder: Path | None = None, *, allow_python: bool = False) -> Manifest:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ManifestError(["the manifest must be a mapping"])
    known = {"name", "owner", "kind", "url", "timeout", "headers", "sdl", "sdl_file", "schema"}
    for unknown in sorted(set(data) - known):
        problems.append(f"unknown manifest key {unknown!r}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append("name must be lowercase letters, digits and dashes, starting with a letter (at most 63)")
    owner = data.get("owner")
    if not isinstance(owner, str) or not NAME.match(owner):
        problems.append("owner must name a partner (lowercase letters, digits and dashes)")
    kind = data.get("kind", "subgraph")
    if kind not in KINDS:
        problems.append(f"kind must be one of {', '.join(KINDS)}")
    timeout = data.get("timeout", 10.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        problems.append("timeout must be a number of seconds between 0 and 120")
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        problems.append("headers must map header names to strings")
        headers = {}
    elif any(k.lower() in ("host", "content-length", "transfer-encoding", "connection") for k in headers):
        problems.append("headers may not set host, content-length, transfer-encoding or connection")
    sdl = data.get("sdl")
    if sdl is not None and not isinstance(sdl, str):
        problems.append("sdl must be a string")
    if data.get("sdl_file") is not None:
        if folder is None:
            problems.append("sdl_file needs a connector folder; send the SDL itself as 'sdl'")
        else:
            try:
                sdl = (folder / str(data["sdl_file"])).read_text(encoding="utf-8")
            except OSError as error:
                problems.append(f"cannot read sdl_file: {error.strerror}")
    url = data.get("url")
    schema = data.get("schema")
    if kind == "subgraph":
        if not isinstance(url, str) or not url:
            problems.append("a subgraph connector needs a url")
        if schema is not None:
            problems.append("schema is for python connectors")
    if kind == "python":
        if not allow_python:
            problems.append("python connectors run code in the gateway: only the operator's connectors folder may hold them")
        if not isinstance(schema, str) or ":" not in schema:
            problems.append("a python connector needs schema: file.py:attribute")
        if folder is None:
            problems.append("a python connector needs its folder")
    if problems:
        raise ManifestError(problems)
    return Manifest(
        name=name,  # type: ignore[arg-type]
        owner=owner,  # type: ignore[arg-type]
        kind=kind,
        url=url if kind == "subgraph" else None,
        timeout=float(timeout),
        headers=dict(headers),
        sdl=sdl,
        schema=schema if kind == "python" else None,
        folder=folder,
    )


def read_manifest_folder(folder: Path, *, allow_python: bool) -> Manifest:
    path = folder / "manifest.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError([f"cannot read {path}: {error}"]) from None
    return parse_manifest(data, folder, allow_python=allow_python)


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
        raise ManifestError(["the python connector's schema does not answer _service { sdl }: is it a federation schema?"])
    return result.data["_service"]["sdl"]
