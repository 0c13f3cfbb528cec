"""The `citygate compose` configuration: subgraphs by file or by URL.

Accepts rover's `supergraph.yaml` shape::

    subgraphs:
      products:
        routing_url: http://127.0.0.1:4001/graphql
        schema:
          file: ./products.graphql        # or: subgraph_url: http://127.0.0.1:4001/graphql

and, for convenience, a plain list of `{name, url, sdl}` objects (JSON is YAML).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from ..errors import ConfigurationError
from . import SubgraphSource


class ConfigError(ConfigurationError):
    """The composition config (or a subgraph it names) cannot be read."""


def fetch_sdl(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> str:
    """A subgraph's SDL through `_service { sdl }`."""
    try:
        response = httpx.post(url, json={"query": "{ _service { sdl } }"}, headers=headers or {}, timeout=timeout)
        payload = response.json()
        sdl = payload["data"]["_service"]["sdl"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot read the SDL of {url} through _service {{ sdl }}: {error}") from None
    if not isinstance(sdl, str):
        raise ConfigError(f"{url} answered _service {{ sdl }} without SDL")
    return sdl


def read_compose_config(path: Path) -> list[SubgraphSource]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if isinstance(document, list):
        try:
            return [SubgraphSource(str(s["name"]), str(s["sdl"]), str(s.get("url", ""))) for s in document]
        except (KeyError, TypeError):
            raise ConfigError(f"{path}: each subgraph needs a name and an sdl") from None
    if not isinstance(document, dict) or not isinstance(document.get("subgraphs"), dict):
        raise ConfigError(f"{path}: expected a 'subgraphs' mapping")
    sources = []
    for name, entry in document["subgraphs"].items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: subgraph {name!r} must be a mapping")
        schema = entry.get("schema") or {}
        url = str(entry.get("routing_url") or "")
        if "file" in schema:
            file = (path.parent / str(schema["file"])).resolve()
            try:
                sdl = file.read_text(encoding="utf-8")
            except OSError as error:
                raise ConfigError(f"subgraph {name!r}: cannot read {file}: {error.strerror}") from None
        elif "subgraph_url" in schema:
            sdl = fetch_sdl(str(schema["subgraph_url"]))
            url = url or str(schema["subgraph_url"])
        elif "sdl" in schema:
            sdl = str(schema["sdl"])
        else:
            raise ConfigError(f"{path}: subgraph {name!r} needs schema.file, schema.subgraph_url or schema.sdl")
        sources.append(SubgraphSource(str(name), sdl, url))
    return sources
