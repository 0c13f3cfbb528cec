"""A gateway over the privacy world with telemetry on, its subgraphs recording the trace headers
they receive, and a parking partner that can misbehave (answers HTTP 500 to every query but the
gateway's SDL read)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway import telemetry
from gateway.app import registry_app
from gateway.policy import parse_policy
from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS, OPERATOR_KEY, Signer, policy_document
from tests.world.server import AppServer


class HeaderRecorder:
    """Records the `traceparent` header of every POST, per subgraph path."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.traceparents: dict[str, list[str | None]] = {}

    def reset(self) -> None:
        with self.lock:
            self.traceparents.clear()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            name = scope["path"].strip("/")
            header = next((value.decode() for key, value in scope["headers"] if key == b"traceparent"), None)
            with self.lock:
                self.traceparents.setdefault(name, []).append(header)
        await self.app(scope, receive, send)


class FailingButForItsSdl:
    """A partner that answers the gateway's SDL read and then fails every query with HTTP 500."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if b"_service" in body:
            replayed = False

            async def replay():
                nonlocal replayed
                if replayed:
                    await asyncio.Event().wait()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html>internal error</html>"})


@pytest.fixture(scope="session")
def traced_world():
    routes = [Route(f"/{name}", GraphQL(schema), methods=["POST"]) for name, schema in world.SUBGRAPHS.items()]
    routes.append(Route("/parking-broken", FailingButForItsSdl(GraphQL(world.SUBGRAPHS["parking"])), methods=["POST"]))
    recorder = HeaderRecorder(Starlette(routes=routes))
    server = AppServer(recorder).start()
    server.recorder = recorder  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def signer(tmp_path_factory):
    return Signer(tmp_path_factory.mktemp("keys"))


class ObservedCity:
    """A running gateway with telemetry installed from `settings` (spans to `exporter`)."""

    def __init__(
        self,
        tmp_path: Path,
        server: AppServer,
        signer: Signer,
        settings: telemetry.TelemetrySettings,
        *,
        broken_parking: bool,
    ) -> None:
        world.reset()
        folder = tmp_path / f"connectors-{uuid.uuid4().hex[:6]}"
        for name in world.SUBGRAPHS:
            (folder / name).mkdir(parents=True)
            path = "parking-broken" if name == "parking" and broken_parking else name
            owner = "parking" if name == "parking" else "city"
            (folder / name / "manifest.yaml").write_text(
                f"name: {name}\nowner: {owner}\nkind: subgraph\nurl: {server.base_url}/{path}\n"
            )
        policy = policy_document(signer.jwks_file)
        policy_path = folder / "policy.yaml"
        policy_path.write_text(yaml.safe_dump(policy))
        self.signer = signer
        self.settings = settings
        self.recorder: HeaderRecorder = server.recorder  # type: ignore[attr-defined]
        self.gateway = registry_app(
            folder=folder,
            store_url=f"sqlite:///{tmp_path / 'city.db'}",
            policy=parse_policy(policy),
            policy_path=policy_path,
            operator_key=OPERATOR_KEY,
        )
        # installed after the app is built (an app that mounts telemetry itself installs its own)
        self.exporter = InMemorySpanExporter()
        telemetry.install(telemetry.Telemetry(settings, span_exporter=self.exporter))
        app = self.gateway.app
        if not any(getattr(route, "path", None) == settings.metrics_path for route in app.routes):
            app.router.routes.extend(telemetry.routes(settings))
        mounted = any(entry.cls is telemetry.TelemetryMiddleware for entry in app.user_middleware)
        self.server = AppServer(app if mounted else telemetry.TelemetryMiddleware(app), lifespan="on").start()
        self.client = httpx.AsyncClient(base_url=self.server.base_url, timeout=30)

    async def ask(
        self,
        query: str,
        variables: dict | None = None,
        *,
        client: str | None = None,
        resident: str | None = None,
        operation_name: str | None = None,
        headers: dict | None = None,
    ) -> dict:
        headers = dict(headers or {})
        if client is not None and resident is None:
            headers["x-api-key"] = CLIENT_KEYS[client]
        if resident is not None:
            headers["authorization"] = f"Bearer {self.signer.token(resident, client or 'city-app')}"
        payload: dict = {"query": query, "variables": variables or {}}
        if operation_name is not None:
            payload["operationName"] = operation_name
        response = await self.client.post("/graphql", json=payload, headers=headers)
        body = response.json()
        body["_status"] = response.status_code
        return body

    async def metrics_text(self, token: str | None = None) -> str:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.client.get(self.settings.metrics_path, headers=headers)
        assert response.status_code == 200, response.text
        return response.text

    async def samples(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        found = {}
        for family in text_string_to_metric_families(await self.metrics_text(self.settings.metrics_token)):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return found

    async def close(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(self.server.stop)
        telemetry.install(None)


def value(samples: dict, name: str, **labels) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found))


@pytest.fixture
async def observed(tmp_path, traced_world, signer):
    traced_world.recorder.reset()
    city = ObservedCity(tmp_path, traced_world, signer, telemetry.TelemetrySettings(), broken_parking=False)
    yield city
    await city.close()
