"""Assembling a gateway: HTTP front, identity, store, privacy, registry and the Engine they serve.

Two shapes, both with the privacy model wired in:

- `static_app`: one composed supergraph file (`citygate serve --supergraph`);
- `registry_app`: the connectors folder plus registered connectors and the built-in control
  plane, composed at start-up, the admin API under /admin, hot swaps on every accepted change.

The policy can be reloaded without a restart (SIGHUP, or POST /admin/policy/reload): a policy
that does not validate, or does not fit the supergraph, is refused and the running one stays.

Replicas (PostgreSQL store): each gateway listens to the store's change notifications
(gateway/store/_changes.py): a consent change makes the ledger catch up with the consent clock, a
connector changed through another replica is served here too (Registry.refresh_from_store), and a
policy reloaded on another replica is reloaded here from this replica's own policy file. While the
listener is disconnected /readyz answers 503; on reconnection everything is read again. A SQLite
store is claimed by one gateway (Store.claim): a second one refuses to start.
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

from . import usage
from .consent import CONTROL_PLANE, AuditLog, Ledger, control_plane_schema
from .engine import Engine
from .executor import HttpPool, InProcessSubgraph, Subgraphs
from .http import GatewayState, GraphiQL, Readiness, create_app
from .http_limits import HttpLimits
from .identity import Authenticator
from .policy import Policy, PolicyError, load_policy
from .privacy import PrivacyGuard
from .privacy_centre import privacy_centre_routes
from .receipts import verifiable_record_routes
from .registry import Connector, Keys, Manifest, Registry, admin_routes, python_schema_sdl
from .settings import Settings
from .store import Store, StoreTimeouts
from .store._changes import ChangeListener, Rerun
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
    await ledger.start_clock()  # PostgreSQL: changes after this are caught up with, its caches start empty
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
    listener: ChangeListener | None = None  # PostgreSQL: changes made through other replicas


class _ReplicaReadiness(Readiness):
    """The store's readiness, and before it the change listener's: a replica that cannot hear of
    other replicas' registrations and policy reloads may serve stale ones (consent stays right: the
    consent clock does not depend on it)."""

    def __init__(self, store: Store, gateway: Gateway) -> None:
        super().__init__(store.ping, what="the store")
        self.gateway = gateway

    async def problem(self) -> str | None:
        problems = [await super().problem()]
        listener = self.gateway.listener
        if listener is not None:
            problems.append(listener.problem())
        return "; ".join(p for p in problems if p) or None


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
    settings: Settings | None = None,
) -> Gateway:
    state = GatewayState(None, development=development)
    store = Store(store_url, store_timeouts or StoreTimeouts.from_env())
    http_client = httpx.AsyncClient(timeout=10, trust_env=False)
    pool = HttpPool()
    keys = Keys(operator_key or secrets.token_urlsafe(32), store)
    routes: list[Route] = []
    gateway = Gateway(app=None, state=state, store=store, http_client=http_client, pool=pool)  # type: ignore[arg-type]
    # not ready while the store does not answer (disclosures would all be withheld meanwhile), nor
    # while the change listener is disconnected
    state.readiness = _ReplicaReadiness(store, gateway)

    def serve(runtime: PrivacyRuntime) -> None:
        gateway.runtime = runtime
        state.authenticator = runtime.authenticator

    async def reload(*, announce: bool = True, unless_serving: str | None = None) -> list[str]:
        """Reload the policy file; with `announce`, tell the other replicas (they reload theirs).
        `unless_serving`: a version; nothing is done when the file holds it and it is served."""
        try:
            new_policy = load_policy(policy_path) if policy_path is not None else policy
        except PolicyError as error:
            return error.problems
        served = gateway.runtime.policy.version if gateway.runtime is not None else None
        if unless_serving is not None and new_policy.version == served == unless_serving:
            return []
        runtime = await privacy_runtime(new_policy, store, http_client)
        try:
            await rebuild(gateway, runtime)
        except SupergraphError as error:
            return [f"the policy does not fit the supergraph: {error}"]
        serve(runtime)
        logger.warning("policy reloaded (version %s)", new_policy.version)
        if announce:
            try:
                await store.notify({"kind": "policy", "version": new_policy.version})
            except Exception as error:  # reloaded here; the others reload when their listener reconnects
                logger.error("the other replicas could not be told of the policy reload (%s)", type(error).__name__)
        return []

    async def reload_heard(version: str | None) -> None:
        """Another replica reloaded its policy: reload this one's file, unless it already serves that version."""
        if policy_path is None:
            return
        served = gateway.runtime.policy.version if gateway.runtime is not None else None
        # no version (after a reconnection): reloaded only if the file holds another one than served
        problems = await reload(announce=False, unless_serving=version or served)
        for problem in problems:
            logger.error("policy not reloaded after another replica's reload: %s", problem)
        served = gateway.runtime.policy.version if gateway.runtime is not None else None
        if not problems and version is not None and served != version:
            logger.error("another replica serves policy version %s; this replica's file holds %s", version, served)

    heard_policy: dict[str, str | None] = {"version": None}  # the last version announced by a replica
    policy_reload = Rerun(lambda: reload_heard(heard_policy["version"]), "reloading the policy after another replica's reload")

    async def refresh_registry() -> None:
        if gateway.registry is not None:
            await gateway.registry.refresh_from_store()

    registry_refresh = Rerun(refresh_registry, "serving the connectors another replica changed")

    async def on_change(change: dict) -> None:
        kind = change.get("kind")
        if kind == "consent":
            if gateway.runtime is not None:
                await gateway.runtime.ledger.sync()  # early: most requests then find the caches right
        elif kind == "connector":
            await registry_refresh.ask()
        elif kind == "policy":
            version = change.get("version")
            heard_policy["version"] = version if isinstance(version, str) else None
            await policy_reload.ask()

    async def on_connect() -> None:
        """Listening (again): what was notified while not listening is read again."""
        if gateway.runtime is not None:
            gateway.runtime.ledger.invalidate_all()
        await registry_refresh.ask()
        heard_policy["version"] = None
        await policy_reload.ask()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        recorder = None
        try:
            store.claim()  # SQLite: this gateway only, for its whole life
        except Exception as error:
            logger.error("%s", error)
            raise
        try:
            await store.create()
            runtime = await privacy_runtime(policy, store, http_client)
            serve(runtime)
            recorder = usage.install(store)  # the operations' coordinates, for schema checks
            await start(gateway, runtime)
            if on_start is not None:
                await on_start(gateway)
            if store.kind == "postgresql":
                gateway.listener = ChangeListener(
                    store.listen_dsn(), on_change=on_change, on_connect=on_connect, connect_timeout=store.timeouts.connect
                )
                await gateway.listener.start(wait=store.timeouts.connect)
        except BaseException:
            if recorder is not None:
                await usage.uninstall(recorder)
            store.release()  # this gateway never served: the file is free for another
            if gateway.listener is not None:
                await gateway.listener.stop()
            raise
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_log_reload(reload)))
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            if gateway.listener is not None:
                await gateway.listener.stop()
            if gateway.registry is not None:
                # its composition process, stopped here rather than at interpreter exit: a worker
                # process of `serve --workers` exiting could otherwise leave a respawned one behind
                if gateway.registry.warming is not None:
                    gateway.registry.warming.cancel()
                await gateway.registry.worker.terminate()
            if recorder is not None:
                await usage.uninstall(recorder)
            await http_client.aclose()
            await pool.close()
            await store.close()
            if state.admission is not None:
                await state.admission.close()

    if operator_key is not None:
        routes += _policy_routes(reload, keys)
    if extra_routes is not None:
        routes += extra_routes(gateway, keys)
    # public: the keys that verify receipts, the signed audit head, the residents' page
    routes += verifiable_record_routes(lambda: gateway.runtime.ledger.signer if gateway.runtime is not None else None, store)
    routes += privacy_centre_routes()
    app = create_app(state, graphiql, extra_routes=routes, limits=limits or HttpLimits.from_env(), settings=settings)
    app.router.lifespan_context = lifespan
    gateway.app = app
    return gateway


async def _log_reload(reload: Callable[..., Awaitable[list[str]]]) -> None:
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
    settings: Settings | None = None,
) -> Gateway:
    async def start(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        model_urls = {name: s.url for name, s in load_supergraph(supergraph).subgraphs.items()}
        gateway.state.engine = runtime.build_engine(supergraph, Subgraphs.over_http(model_urls, http_pool=gateway.pool), owners)

    async def rebuild(gateway: Gateway, runtime: PrivacyRuntime) -> None:
        old = gateway.state.engine
        gateway.state.engine = runtime.build_engine(supergraph, old.transport if old else None, owners)

    return _gateway(
        store_url=store_url, policy=policy, policy_path=policy_path, development=development, start=start, rebuild=rebuild,
        operator_key=None, graphiql=graphiql, limits=limits, store_timeouts=store_timeouts, settings=settings,
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
    settings: Settings | None = None,
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
        if gateway.store.kind == "postgresql":
            # other replicas' registrations are composed here too: not a second's spawn on the
            # first one heard of (in the background: starting does not wait for it)
            registry.warm_worker_soon()

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
        settings=settings,
    )


def _control_plane(runtime: PrivacyRuntime) -> Connector:
    """The built-in control-plane connector, serving this runtime's ledger, audit log and policy."""
    schema = control_plane_schema(runtime.ledger, runtime.audit, runtime.policy)
    manifest = Manifest(name=CONTROL_PLANE, owner="operator", kind="python")
    return Connector(manifest, python_schema_sdl(schema), InProcessSubgraph(schema), source="builtin")
