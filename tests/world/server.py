"""Serve the world's subgraphs over real HTTP on loopback, counting what each one receives."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from . import districts, jobs, parking, ratings, residents

SUBGRAPHS = {
    "residents": residents.schema,
    "districts": districts.schema,
    "parking": parking.schema,
    "jobs": jobs.schema,
    "ratings": ratings.schema,
}
SUPERGRAPH_FILE = Path(__file__).with_name("supergraph.graphql")
_PLACEHOLDER = "http://127.0.0.1:4101"


@dataclass
class Traffic:
    """Requests seen per subgraph, with their bodies."""

    counts: Counter = field(default_factory=Counter)
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.bodies.clear()


class _Counting:
    def __init__(self, app, traffic: Traffic) -> None:
        self.app = app
        self.traffic = traffic

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        name = scope["path"].strip("/").split("/")[0]
        chunks: list[bytes] = []

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def counted_send(message):
            if message["type"] == "http.response.start":
                with self.traffic.lock:
                    self.traffic.counts[name] += 1
                    self.traffic.bodies.setdefault(name, []).append(b"".join(chunks))
            await send(message)

        return await self.app(scope, recording_receive, counted_send)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """Runs an ASGI app with uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app, lifespan: str = "off") -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


class WorldServer(AppServer):
    """Every subgraph of `schemas` in one server, on a path each, counting what each receives."""

    def __init__(self, schemas: dict | None = None) -> None:
        self.traffic = Traffic()
        schemas = SUBGRAPHS if schemas is None else schemas
        routes = [Route(f"/{name}", GraphQL(schema), methods=["GET", "POST"]) for name, schema in schemas.items()]
        super().__init__(_Counting(Starlette(routes=routes), self.traffic))

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def supergraph(self) -> str:
        return SUPERGRAPH_FILE.read_text().replace(_PLACEHOLDER, self.base_url)
