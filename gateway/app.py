"""Assembling a gateway: HTTP front, identity, store, privacy, registry and the Engine they serve.

Two shapes, both with the privacy model wired in:

- `static_app`: one composed supergraph file (`citygate serve --supergraph`);
- `registry_app`: the connectors folder plus registered connectors and the built-in control
  plane, composed at start-up, the admin API under /admin, hot swaps on every accepted change.

The policy can be reloaded without a restart (SIGHUP, or POST /admin/policy/reload): a policy
that does not validate, or does not fit the supergraph, is refused and the running one stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .consent import CONTROL_PLANE, AuditLog, Ledger, control_plane_schema
from .engine import Engine
from .executor import HttpPool, InProcessSubgraph, Subgraphs
from .http import GatewayState, GraphiQL, Readiness, create_app
from .http_limits import HttpLimits
from .identity import Authenticator
from .policy import Policy, PolicyError, load_policy
from .privacy import PrivacyGuard
from .registry import Connector, Keys, Manifest, Registry, admin_routes, python_schema_sdl
from .store import Store, StoreTimeouts
from .supergraph import SupergraphError, load_supergraph

logger = logging.getLogger("citygate.app")


@dataclass
class PrivacyRuntime:
    """Everything the privacy model needs at run time, for one policy."""

    policy: Policy
    ledger: Ledger
    audit: AuditLog
    guard: PrivacyGuard
    authenticator: Authenticator

    def build_engine(self, sdl: str, transport: Subgraphs | None, owners: dict[str, str] | None = None) -> Engine:
        return Engine.from_sdl(sdl, transport, guard=self.guard, privacy_overrides=self.policy.privacy, owners=owners)


async def privacy_runtime(policy: Policy, store: Store, http_client: httpx.AsyncClient) -> PrivacyRuntime:
    master = os.environ.get("CITYGATE_PSEUDONYM_KEY") or await store.setting("pseudonym_key", lambda: secrets.token_hex(32))
    ledger = Ledger(store, policy)
    audit = AuditLog(store)
    return PrivacyRuntime(policy, ledger, audit, PrivacyGuard(policy, ledger, audit, master.encode()), Authenticator(policy, http_client))


@dataclass
class Gateway:
    app: Starlette
    state: GatewayState
    store: Store
    http_client: httpx.AsyncClient  # control traffic (SDLs, JWKS)
    pool: HttpPool  # subgraph traffic
    registry: Registry | None = None
    runtime: PrivacyRuntime | None = None


def _policy_routes(reload: Callable[[], Awaitable[list[str]]], keys: Keys) -> list[Route]:
    async def reload_policy(request: Request) -> JSONResponse:
        actor = await keys.actor(request)
        if actor is None or not actor.is_operator:
            return JSONResponse({"ok": False, "errors": [{"code": "FORBIDDEN", "message": "only the operator reloads the policy"}]}, 403)
        problems = await reload()
        if problems:
            return JSONResponse({"ok": False, "errors": [{"code": "INVALID_POLICY", "message": p} for p in problems]}, 422)
        return JSONResponse({"ok": True, "errors": []})

    return [Route("/admin/policy/reload", reload_policy, methods=["POST"])]


def _gateway(
    *,
    store_url: str,
    policy: Policy,
    policy_path: Path | None,
    development: bool,
    start: Callable[[Gateway, PrivacyRuntime], Awaitable[None]],
    rebuild: Callable[[Gateway, PrivacyRuntime], Awaitable[None]],
    operator_key: str | None,
    extra_routes: Callable[[Gateway, Keys], list[Route]] | None = None,
    on_start: Callable[[Gateway], Awaitable[None]] | None = None,
    graphiql: GraphiQL | None = None,
    limits: HttpLimits | None = None,
    store_timeouts: StoreTimeouts | None = None,
) -> Gateway:
    state = GatewayState(None, development=development)
    store = Store(store_url, store_timeouts or StoreTimeouts.from_env())
    # not ready while the store does not answer: disclosures would all be withheld meanwhile
    state.readiness = Readiness(store.ping, what="the store")
    http_client = httpx.AsyncClient(timeout=10, trust_env=False)
    pool = HttpPool()
    keys = Keys(operator_key or secrets.token_urlsafe(32), store)
    routes: list[Route] = []
    gateway = Gateway(app=None, state=state, store=store, http_client=http_client, pool=pool)  # type: ignore[arg-type]

    def serve(runtime: PrivacyRuntime) -> None:
        gateway.runtime = runtime
        state.authenticator = runtime.authenticator

    async def reload() -> list[str]:
        try:
            new_policy = load_policy(policy_path) if policy_path is not None else policy
        except PolicyError as error:
            return error.problems
        runtime = await privacy_runtime(new_policy, store, http_client)
        try:
            await rebuild(gateway, runtime)
        except SupergraphError as error:
            return [f"the policy does not fit the supergraph: {error}"]
        serve(runtime)
        logger.warning("policy reloaded (version %s)", new_policy.version)
        return []

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await store.create()
        runtime = await privacy_runtime(policy, store, http_client)
        serve(runtime)
        await start(gateway, runtime)
        if on_start is not None:
            await on_start(gateway)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_log_reload(reload)))
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await http_client.aclose()
            await pool.close()
            await store.close()
            if state.admission is not None:
                await state.admission.close()

    if operator_key is not None:
        routes += _policy_routes(reload, keys)
    if extra_routes is not None:
        routes += extra_routes(gateway, keys)
    app = create_app(state, graphiql, extra_routes=routes, limits=limits or HttpLimits.from_env())
    app.router.lifespan_context = lifespan
    gateway.app = app
    return gateway


async def _log_reload(reload: Callable[[], Awaitable[list[str]]]) -> None:
    problems = await reload()
    for problem in problems:
        logger.error("policy not reloaded: %s", problem)


def static_app(
    *,
    supergraph: str,
    store_url: str,
    policy: Policy,
    policy_path: Path | None = None,
    development: bool = False,
    graphiql: GraphiQL | None = None,
    owners: dict[str, str] | None = None,
    limits: HttpLimits | None = None,
    store_timeouts: StoreTimeouts | None = None,
) -> Gateway:
    async def start(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        model_urls = {name: s.url for name, s in load_supergraph(supergraph).subgraphs.items()}
        gateway.state.engine = runtime.build_engine(supergraph, Subgraphs.over_http(model_urls, http_pool=gateway.pool), owners)

    async def rebuild(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        old = gateway.state.engine
        gateway.state.engine = runtime.build_engine(supergraph, old.transport if old else None, owners)

    return _gateway(
        store_url=store_url, policy=policy, policy_path=policy_path, development=development, start=start, rebuild=rebuild,
        operator_key=None, graphiql=graphiql, limits=limits, store_timeouts=store_timeouts,
    )


def registry_app(
    *,
    folder: Path | None,
    store_url: str,
    policy: Policy,
    operator_key: str,
    policy_path: Path | None = None,
    development: bool = False,
    on_start: Callable[[Gateway], Awaitable[None]] | None = None,
    graphiql: GraphiQL | None = None,
    limits: HttpLimits | None = None,
    store_timeouts: StoreTimeouts | None = None,
) -> Gateway:
    def routes(gateway: Gateway, keys: Keys) -> list[Route]:  # runs before the lifespan: start finds the registry
        registry = Registry(
            gateway.state, store=gateway.store, policy=policy.registry, http_client=gateway.http_client, pool=gateway.pool, folder=folder
        )
        gateway.registry = registry
        return admin_routes(registry, keys)

    async def start(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        registry = gateway.registry
        assert registry is not None
        registry.build_engine = runtime.build_engine
        registry.connectors[CONTROL_PLANE] = _control_plane(runtime)
        await registry.start()

    async def rebuild(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        registry = gateway.registry
        assert registry is not None
        previous = registry.build_engine, registry.connectors[CONTROL_PLANE], registry.policy
        registry.build_engine = runtime.build_engine
        registry.connectors[CONTROL_PLANE] = _control_plane(runtime)
        registry.policy = runtime.policy.registry
        try:
            await registry.rebuild()
        except SupergraphError:  # refused: the running policy stays, its registry rules included
            registry.build_engine, registry.connectors[CONTROL_PLANE], registry.policy = previous
            raise

    return _gateway(
        store_url=store_url,
        policy=policy,
        policy_path=policy_path,
        development=development,
        start=start,
        rebuild=rebuild,
        operator_key=operator_key,
        extra_routes=routes,
        on_start=on_start,
        graphiql=graphiql,
        limits=limits,
        store_timeouts=store_timeouts,
    )


def _control_plane(runtime: PrivacyRuntime) -> Connector:
    """The built-in control-plane connector, serving this runtime's ledger, audit log and policy."""
    schema = control_plane_schema(runtime.ledger, runtime.audit, runtime.policy)
    manifest = Manifest(name=CONTROL_PLANE, owner="operator", kind="python")
    return Connector(manifest, python_schema_sdl(schema), InProcessSubgraph(schema), source="builtin")
