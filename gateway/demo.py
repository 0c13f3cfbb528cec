"""The demo: the connectors under `connectors/` served on loopback behind the gateway.

One process, one port: the gateway at `/graphql`, each demo connector's Strawberry subgraph at
`/subgraphs/<name>`. The supergraph comes from `connectors/supergraph.graphql` until Citygate
composes connectors itself. For demos only: never exposed beyond loopback by default.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from strawberry.asgi import GraphQL

from .engine import Engine
from .http import GatewayState, create_app

SUPERGRAPH_BASE = "http://127.0.0.1:4000"


@dataclass(frozen=True)
class DemoConnector:
    name: str
    folder: Path
    schema: object  # a strawberry.federation.Schema


def load_connectors(directory: Path) -> list[DemoConnector]:
    connectors = []
    for manifest_path in sorted(directory.glob("*/manifest.yaml")):
        manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8")) or {}
        if manifest.get("kind") != "python":
            continue
        file_name, _, attribute = str(manifest["schema"]).partition(":")
        module_name = f"citygate_connector_{manifest['name']}"
        spec = importlib.util.spec_from_file_location(module_name, manifest_path.parent / file_name)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {manifest_path.parent / file_name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # Strawberry resolves annotations through the module
        spec.loader.exec_module(module)
        connectors.append(DemoConnector(manifest["name"], manifest_path.parent, getattr(module, attribute or "schema")))
    return connectors


def demo_app(directory: Path, host: str, port: int) -> tuple[Starlette, Engine]:
    connectors = load_connectors(directory)
    base = f"http://{host}:{port}"
    supergraph = (directory / "supergraph.graphql").read_text(encoding="utf-8").replace(SUPERGRAPH_BASE, base)
    engine = Engine.from_sdl(supergraph)
    gateway = create_app(GatewayState(engine, development=True))
    routes = [Route(f"/subgraphs/{c.name}", GraphQL(c.schema), methods=["GET", "POST"]) for c in connectors]
    routes.append(Mount("/", app=gateway))
    return Starlette(routes=routes), engine
