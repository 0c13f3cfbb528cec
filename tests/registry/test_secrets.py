"""Manifests never read the gateway's environment; partners store their own upstream secrets.

Real gateways (registry_app on a SQLite store) and real partner subgraphs over loopback: each
upstream is a Strawberry federation schema behind a recorder that keeps every request's headers
and body, so "the value never arrived" is checked where it would arrive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import strawberry
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.store import Store
from tests.registry.conftest import OPERATOR_KEY, RunningGateway
from tests.world.server import AppServer

OPERATOR_ENV_VALUE = "cgo_the-operators-real-key-from-the-environment"
SECRET = "meteo-upstream-key-3f9a1c"
ROTATED = "meteo-upstream-key-rotated-77b2"


def partner_schema(field_name: str) -> strawberry.federation.Schema:
    def answer() -> str | None:
        return f"{field_name} from the partner"

    @strawberry.type
    class Query:
        value: str | None = strawberry.field(name=field_name, resolver=answer)

    return strawberry.federation.Schema(query=Query, federation_version="2.5")


def partner_sdl(field_name: str) -> str:
    return partner_schema(field_name).execute_sync("{ _service { sdl } }").data["_service"]["sdl"]


class Recorder:
    """Keeps what reaches a server: (path, headers, body) per request, across threads."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                with self.lock:
                    self.requests.append((scope["path"], headers, b"".join(chunks)))
            await send(message)

        return await self.app(scope, recording_receive, recording_send)

    def saw(self, text: str) -> bool:
        """Whether `text` reached this server anywhere: a header name or value, or a body."""
        with self.lock:
            return any(
                text in path
                or text in body.decode("utf-8", "replace")
                or any(text in k or text in v for k, v in headers.items())
                for path, headers, body in self.requests
            )

    def header_values(self, name: str) -> list[str]:
        with self.lock:
            return [headers[name] for _, headers, _ in self.requests if name in headers]


class PartnerUpstream:
    """A partner's subgraph at /graphql, and /moved answering every request with a 307 elsewhere."""

    def __init__(self, field_name: str, redirect_to: str | None = None) -> None:
        self.field_name = field_name
        routes = [Route("/graphql", GraphQL(partner_schema(field_name)), methods=["GET", "POST"])]
        if redirect_to is not None:
            routes.append(
                Route("/moved", lambda request: RedirectResponse(redirect_to, status_code=307), methods=["GET", "POST"])
            )
        self.recorder = Recorder(Starlette(routes=routes))
        self.server = AppServer(self.recorder).start()
        self.url = f"{self.server.base_url}/graphql"
        self.sdl = partner_sdl(field_name)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def upstreams():
    started: list[PartnerUpstream] = []

    def start(field_name: str, redirect_to: str | None = None) -> PartnerUpstream:
        upstream = PartnerUpstream(field_name, redirect_to)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def store_file(tmp_path) -> Path:
    return tmp_path / "registry.db"


@pytest.fixture
async def gateway(store_file):
    running = RunningGateway(f"sqlite:///{store_file}")
    yield running
    await running.close()


async def partner_key(gateway: RunningGateway, name: str) -> str:
    response = await gateway.admin("POST", "/admin/partners", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def codes(response) -> set[str]:
    return {error["code"] for error in response.json()["errors"]}


# -- (1), (2): the gateway's environment is not the partner's ------------------------------------


async def test_a_manifest_over_the_admin_api_never_reads_the_gateway_environment(gateway, upstreams, monkeypatch):
    monkeypatch.setenv("CITYGATE_OPERATOR_KEY", OPERATOR_ENV_VALUE)
    monkeypatch.setenv("CITYGATE_UPSTREAM_HOST", "127.0.0.1")
    upstream = upstreams("forecast")
    meteo = await partner_key(gateway, "meteo")
    stealing = {
        "name": "forecast",
        "owner": "meteo",
        "url": upstream.url,
        "headers": {"x-k": "${CITYGATE_OPERATOR_KEY}"},
    }
    in_the_url = {**stealing, "headers": {}, "url": upstream.url.replace("127.0.0.1", "${CITYGATE_UPSTREAM_HOST}")}
    elsewhere = {**stealing, "headers": {"x-k": "plain"}, "sdl_file": "${CITYGATE_OPERATOR_KEY}"}

    answers = [
        await gateway.admin("POST", "/admin/connectors/validate", meteo, stealing),
        await gateway.admin("PUT", "/admin/connectors/forecast", meteo, stealing),
        await gateway.admin(
            "PUT", "/admin/connectors/forecast", OPERATOR_KEY, stealing
        ),  # not even the operator, over the API
        await gateway.admin("POST", "/admin/connectors/validate", meteo, in_the_url),
        await gateway.admin("PUT", "/admin/connectors/forecast", meteo, in_the_url),
        await gateway.admin("POST", "/admin/connectors/validate", meteo, elsewhere),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert "SECRET_REFERENCE_REFUSED" in codes(answer), answer.text
        refusal = next(e["message"] for e in answer.json()["errors"] if e["code"] == "SECRET_REFERENCE_REFUSED")
        assert "secret:" in refusal  # says how to store a secret instead
        for leaked in ("CITYGATE_OPERATOR_KEY", "CITYGATE_UPSTREAM_HOST", OPERATOR_ENV_VALUE):
            assert leaked not in answer.text
    assert not upstream.recorder.saw(OPERATOR_ENV_VALUE)
    assert upstream.recorder.requests == []  # refused before any request upstream
    listing = (await gateway.admin("GET", "/admin/connectors")).json()["connectors"]
    assert "forecast" not in {c["name"] for c in listing}


async def test_an_unset_variable_is_refused_exactly_like_a_set_one(gateway, upstreams, monkeypatch):
    monkeypatch.setenv("CITYGATE_PSEUDONYM_KEY", "the-pseudonym-master-key")
    monkeypatch.delenv("SOME_UNSET_VAR", raising=False)
    upstream = upstreams("forecast")
    meteo = await partner_key(gateway, "meteo")

    async def answer(variable: str, method: str, path: str):
        manifest = {"name": "forecast", "owner": "meteo", "url": upstream.url, "headers": {"x-k": f"${{{variable}}}"}}
        return await gateway.admin(method, path, meteo, manifest)

    for method, path in (("POST", "/admin/connectors/validate"), ("PUT", "/admin/connectors/forecast")):
        unset = await answer("SOME_UNSET_VAR", method, path)
        set_ = await answer("CITYGATE_PSEUDONYM_KEY", method, path)
        assert unset.status_code == set_.status_code == 422
        assert codes(unset) == {"SECRET_REFERENCE_REFUSED"}
        # nothing tells a set variable from an unset one: the answers are the same bytes
        assert unset.content == set_.content
        assert "SOME_UNSET_VAR" not in unset.text and "not set" not in unset.text
    assert upstream.recorder.requests == []


# -- (3): a partner's own secrets ----------------------------------------------------------------


async def test_a_partner_secret_reaches_its_upstream_and_is_never_shown(gateway, upstreams, store_file, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, drivers' debug output included
    upstream = upstreams("forecast")
    meteo = await partner_key(gateway, "meteo")
    manifest = {
        "name": "forecast",
        "owner": "meteo",
        "url": upstream.url,
        "headers": {"x-api-key": "Bearer ${secret:METEO_KEY}"},
        "secrets": {"METEO_KEY": SECRET},
    }

    validated = await gateway.admin("POST", "/admin/connectors/validate", meteo, manifest)
    assert validated.status_code == 200, validated.text
    assert SECRET not in validated.text
    registered = await gateway.admin("PUT", "/admin/connectors/forecast", meteo, manifest)
    assert registered.status_code == 200, registered.text
    assert SECRET not in registered.text

    assert await gateway.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
    # the SDL reads (validate, register) and the query all carried it
    assert upstream.recorder.header_values("x-api-key") == [f"Bearer {SECRET}"] * 3

    for key in (meteo, OPERATOR_KEY):
        listing = await gateway.admin("GET", "/admin/connectors", key)
        assert SECRET not in listing.text
        forecast = next(c for c in listing.json()["connectors"] if c["name"] == "forecast")
        assert forecast["headers"] == {"x-api-key": "Bearer ${secret:METEO_KEY}"} and "secrets" not in forecast
    assert SECRET not in (await gateway.admin("GET", "/admin/supergraph")).text
    # a failing registration's report carries no value either
    failing = await gateway.admin(
        "PUT", "/admin/connectors/forecast", meteo, {**manifest, "sdl": "type Query { broken"}
    )
    assert failing.status_code == 422 and SECRET not in failing.text
    assert gateway.gateway.registry is not None
    assert SECRET not in repr(gateway.gateway.registry.connectors["forecast"].manifest)

    await asyncio.sleep(0.1)  # the server thread's last records
    assert caplog.records, "the capture saw nothing: it would prove nothing"
    assert SECRET not in caplog.text
    # stored with the connector, apart from its manifest
    with sqlite3.connect(store_file) as database:
        assert SECRET not in str(database.execute("SELECT * FROM connectors").fetchall())
        assert database.execute("SELECT connector, name FROM connector_secrets").fetchall() == [
            ("forecast", "METEO_KEY")
        ]


async def test_stored_secrets_survive_a_restart_are_kept_and_rotate(store_url, upstreams):
    """On SQLite and on PostgreSQL (conftest's `store_url`): the secrets' table in both."""
    upstream = upstreams("forecast")
    first = RunningGateway(store_url)
    try:
        meteo = await partner_key(first, "meteo")
        base = {
            "name": "forecast",
            "owner": "meteo",
            "url": upstream.url,
            "timeout": 5,
            "headers": {"x-api-key": "${secret:METEO_KEY}"},
        }
        assert (
            await first.admin("PUT", "/admin/connectors/forecast", meteo, {**base, "secrets": {"METEO_KEY": SECRET}})
        ).status_code == 200
        # registered again without secrets: the stored one stays (same owner, same origin)
        kept = await first.admin("PUT", "/admin/connectors/forecast", meteo, {**base, "timeout": 7})
        assert kept.status_code == 200, kept.text
        assert await first.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
        assert upstream.recorder.header_values("x-api-key")[-1] == SECRET
    finally:
        await first.close()

    second = RunningGateway(store_url)  # a restart on the same store
    try:
        assert await second.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
        assert upstream.recorder.header_values("x-api-key")[-1] == SECRET
        rotated = await second.admin(
            "PUT", "/admin/connectors/forecast", meteo, {**base, "secrets": {"METEO_KEY": ROTATED}}
        )
        assert rotated.status_code == 200, rotated.text
        assert await second.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
        assert upstream.recorder.header_values("x-api-key")[-1] == ROTATED
    finally:
        await second.close()

    third = RunningGateway(store_url)
    try:
        assert await third.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
        assert upstream.recorder.header_values("x-api-key")[-1] == ROTATED
    finally:
        await third.close()


async def test_a_secret_goes_to_no_other_origin(gateway, upstreams):
    other = upstreams("tide")  # another partner's subgraph
    redirecting = upstreams("forecast", redirect_to=other.url)  # meteo's, with a /moved path sending requests to it
    meteo = await partner_key(gateway, "meteo")
    tides = await partner_key(gateway, "tides")
    assert (
        await gateway.admin(
            "PUT", "/admin/connectors/tide", tides, {"name": "tide", "owner": "tides", "url": other.url}
        )
    ).status_code == 200
    secret_headers = {"headers": {"x-api-key": "${secret:METEO_KEY}"}, "secrets": {"METEO_KEY": SECRET}}
    forecast = {"name": "forecast", "owner": "meteo", "url": redirecting.url, **secret_headers}
    assert (await gateway.admin("PUT", "/admin/connectors/forecast", meteo, forecast)).status_code == 200
    answer = await gateway.query("{ forecast tide }")
    assert answer == {"data": {"forecast": "forecast from the partner", "tide": "tide from the partner"}}
    assert redirecting.recorder.header_values("x-api-key") == [SECRET, SECRET]  # its SDL read and the query

    # a redirect carries nothing elsewhere: neither the SDL read nor subgraph traffic follows it
    moved = f"{redirecting.server.base_url}/moved"
    sdl_read = await gateway.admin(
        "PUT", "/admin/connectors/moved", meteo, {"name": "moved", "owner": "meteo", "url": moved, **secret_headers}
    )
    assert sdl_read.status_code == 422 and codes(sdl_read) == {"SUBGRAPH_SDL_UNAVAILABLE"}
    pinned = {"name": "moved", "owner": "meteo", "url": moved, "sdl": partner_sdl("moon"), **secret_headers}
    assert (await gateway.admin("PUT", "/admin/connectors/moved", meteo, pinned)).status_code == 200
    assert "errors" in await gateway.query("{ moon }")
    assert redirecting.recorder.header_values("x-api-key")[-1] == SECRET  # it reached the connector's own origin...

    # moving the connector to another origin drops its stored secrets: they are never sent there
    elsewhere = {
        "name": "forecast",
        "owner": "meteo",
        "url": other.url.replace("/graphql", "/forecast"),
        "headers": forecast["headers"],
    }
    moved_away = await gateway.admin("PUT", "/admin/connectors/forecast", meteo, elsewhere)
    assert moved_away.status_code == 422 and codes(moved_away) == {"INVALID_MANIFEST"}
    assert "METEO_KEY" in moved_away.text and SECRET not in moved_away.text

    assert not other.recorder.saw(SECRET)  # ...and never anywhere else
    assert other.recorder.requests  # it was asked things: the absence means something


async def test_only_the_owner_sets_secrets_and_references_must_resolve(gateway, upstreams):
    upstream = upstreams("forecast")
    meteo = await partner_key(gateway, "meteo")
    intruder = await partner_key(gateway, "intruder")
    manifest = {
        "name": "forecast",
        "owner": "meteo",
        "url": upstream.url,
        "headers": {"x-api-key": "${secret:METEO_KEY}"},
    }
    assert (
        await gateway.admin("PUT", "/admin/connectors/forecast", meteo, {**manifest, "secrets": {"METEO_KEY": SECRET}})
    ).status_code == 200

    # another partner may not set them, in the owner's name or its own
    for owner in ("meteo", "intruder"):
        answer = await gateway.admin(
            "PUT",
            "/admin/connectors/forecast",
            intruder,
            {**manifest, "owner": owner, "secrets": {"METEO_KEY": "intruders-value"}},
        )
        assert answer.status_code == 403, answer.text
    # the operator may
    assert (
        await gateway.admin(
            "PUT", "/admin/connectors/forecast", OPERATOR_KEY, {**manifest, "secrets": {"METEO_KEY": ROTATED}}
        )
    ).status_code == 200

    # a reference to a secret never stored, and a secret no header uses: refused, no value echoed
    unknown = await gateway.admin(
        "PUT", "/admin/connectors/forecast", meteo, {**manifest, "headers": {"x-api-key": "${secret:NOPE}"}}
    )
    assert unknown.status_code == 422 and codes(unknown) == {"INVALID_MANIFEST"} and "NOPE" in unknown.text
    unused = await gateway.admin(
        "PUT",
        "/admin/connectors/forecast",
        meteo,
        {**manifest, "secrets": {"METEO_KEY": SECRET, "SPARE": "spare-value-0c1d"}},
    )
    assert unused.status_code == 422 and codes(unused) == {"INVALID_MANIFEST"}
    invalid = await gateway.admin(
        "POST", "/admin/connectors/validate", meteo, {**manifest, "secrets": {"METEO_KEY": "line\r\nbreak-value"}}
    )
    assert invalid.status_code == 422 and "break-value" not in invalid.text
    for answer in (unknown, unused, invalid):
        assert SECRET not in answer.text and ROTATED not in answer.text and "spare-value-0c1d" not in answer.text

    assert await gateway.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
    assert upstream.recorder.header_values("x-api-key")[-1] == ROTATED
    assert not upstream.recorder.saw("intruders-value")


async def test_a_stored_manifest_never_reads_the_environment(store_file, upstreams, monkeypatch, caplog):
    """A manifest registered before this rule, with `${NAME}` in a header, is served disconnected."""
    monkeypatch.setenv("CITYGATE_OPERATOR_KEY", OPERATOR_ENV_VALUE)
    legacy, current = upstreams("forecast"), upstreams("tide")
    store = Store(f"sqlite:///{store_file}")
    await store.create()
    old = {
        "name": "forecast",
        "owner": "meteo",
        "kind": "subgraph",
        "timeout": 5,
        "url": legacy.url,
        "headers": {"x-k": "${CITYGATE_OPERATOR_KEY}"},
    }
    await store.put_connector("forecast", "meteo", old, legacy.sdl)
    await store.put_connector(
        "tide", "tides", {"name": "tide", "owner": "tides", "kind": "subgraph", "url": current.url}, current.sdl
    )
    await store.close()

    running = RunningGateway(f"sqlite:///{store_file}")
    try:
        answer = await running.query("{ forecast tide }")
        assert answer["data"] == {"forecast": None, "tide": "tide from the partner"}
        assert not legacy.recorder.saw(OPERATOR_ENV_VALUE)
        assert legacy.recorder.requests == []
        assert any("forecast" in r.getMessage() and "disconnected" in r.getMessage() for r in caplog.records)
        # its owner registers it again, with its secret: connected again
        meteo = await partner_key(running, "meteo")
        fixed = {**old, "headers": {"x-k": "${secret:K}"}, "secrets": {"K": SECRET}}
        assert (await running.admin("PUT", "/admin/connectors/forecast", meteo, fixed)).status_code == 200
        assert (await running.query("{ forecast }"))["data"] == {"forecast": "forecast from the partner"}
        assert legacy.recorder.header_values("x-k")[-1] == SECRET
    finally:
        await running.close()


# -- (4): the operator's folder ------------------------------------------------------------------


async def test_operator_folder_manifests_still_read_the_environment(tmp_path, store_file, upstreams, monkeypatch):
    upstream = upstreams("forecast")
    monkeypatch.setenv("CG_TEST_FORECAST_ORIGIN", upstream.server.base_url)
    monkeypatch.setenv("CG_TEST_FORECAST_KEY", "the-operators-forecast-key")
    folder = tmp_path / "connectors" / "forecast"
    folder.mkdir(parents=True)
    (folder / "manifest.yaml").write_text(
        "name: forecast\nowner: city\nkind: subgraph\nurl: ${CG_TEST_FORECAST_ORIGIN}/graphql\nheaders:\n  x-api-key: ${CG_TEST_FORECAST_KEY}\n"
    )
    running = RunningGateway(f"sqlite:///{store_file}", folder=folder.parent)
    try:
        assert await running.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
        assert upstream.recorder.header_values("x-api-key") == ["the-operators-forecast-key"] * 2  # SDL read, query
        listing = (await running.admin("GET", "/admin/connectors")).json()["connectors"]
        assert next(c for c in listing if c["name"] == "forecast")["headers"] == {
            "x-api-key": "${CG_TEST_FORECAST_KEY}"
        }
    finally:
        await running.close()


# -- the CLI, on the partner's machine -------------------------------------------------------------


async def test_the_cli_sends_a_local_variable_as_the_connectors_secret(gateway, upstreams, tmp_path, monkeypatch):
    monkeypatch.delenv("METEO_UPSTREAM_KEY", raising=False)  # the gateway's environment has none
    upstream = upstreams("forecast")
    meteo = await partner_key(gateway, "meteo")
    folder = tmp_path / "forecast"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(
        f"name: forecast\nowner: meteo\nkind: subgraph\nurl: {upstream.url}\nheaders:\n  x-api-key: Bearer ${{METEO_UPSTREAM_KEY}}\n"
    )

    def citygate(*args: str, **env: str) -> subprocess.CompletedProcess:
        environment = {**os.environ, "CITYGATE_URL": gateway.url, "CITYGATE_KEY": meteo, **env}
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60, env=environment
        )

    missing = await asyncio.to_thread(citygate, "connector", "register", str(folder))
    assert missing.returncode == 2 and "METEO_UPSTREAM_KEY" in missing.stderr
    registered = await asyncio.to_thread(citygate, "connector", "register", str(folder), METEO_UPSTREAM_KEY=SECRET)
    assert registered.returncode == 0, registered.stderr
    assert SECRET not in registered.stdout + registered.stderr
    assert await gateway.query("{ forecast }") == {"data": {"forecast": "forecast from the partner"}}
    assert upstream.recorder.header_values("x-api-key")[-1] == f"Bearer {SECRET}"
    listed = await asyncio.to_thread(citygate, "connector", "list")
    assert listed.returncode == 0 and SECRET not in listed.stdout
    listing = (await gateway.admin("GET", "/admin/connectors", meteo)).json()["connectors"]
    assert listing[0]["headers"] == {"x-api-key": "Bearer ${secret:METEO_UPSTREAM_KEY}"}
