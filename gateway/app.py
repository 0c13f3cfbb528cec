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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from . import usage
from .consent import (
    CONTROL_PLANE,
    AuditLog,
    ErasureSettings,
    ErasureStore,
    Ledger,
    RecordSigner,
    ResidentRights,
    control_plane_schema,
)
from .engine import Engine
from .executor import HttpPool, InProcessSubgraph, Subgraphs, literal_address, refused
from .http import GatewayState, GraphiQL, Readiness, create_app
from .http_limits import HttpLimits
from .identity import Authenticator
from .persisted import PersistedDocuments
from .policy import Policy, PolicyError, load_policy
from .privacy import PrivacyGuard
from .privacy_centre import privacy_centre_routes
from .receipts import verifiable_record_routes
from .registry import (
    Connector,
    Keys,
    Manifest,
    ManifestError,
    Registry,
    admin_routes,
    erasure_origin_problem,
    python_schema_sdl,
)
from .settings import Settings, settings_from_environment
from .store import ChangeListener, Rerun, Store, StoreTimeouts
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
    master = os.environ.get("CITYGATE_PSEUDONYM_KEY") or await store.setting(
        "pseudonym_key", lambda: secrets.token_hex(32)
    )
    ledger = Ledger(store, policy)
    await ledger.start_clock()  # PostgreSQL: changes after this are caught up with, its caches start empty
    audit = AuditLog(store)
    return PrivacyRuntime(
        policy, ledger, audit, PrivacyGuard(policy, ledger, audit, master.encode()), Authenticator(policy, http_client)
    )


@dataclass(frozen=True)
class Connections:
    """What a gateway talks to: its store, the HTTP client of control traffic (SDLs, JWKS) and the
    pool of subgraph traffic. Opened before what uses them is built; the gateway closes them."""

    store: Store
    http_client: httpx.AsyncClient
    pool: HttpPool

    @classmethod
    def open(cls, store_url: str, store_timeouts: StoreTimeouts | None = None) -> Connections:
        store = Store(store_url, store_timeouts or settings_from_environment().store_timeouts())
        return cls(store, httpx.AsyncClient(timeout=10, trust_env=False), HttpPool())


class Serving(Protocol):
    """What a gateway serves, built again for each privacy runtime (one per policy version)."""

    async def start(self, runtime: PrivacyRuntime) -> None:
        """Serve under the first runtime."""

    async def rebuild(self, runtime: PrivacyRuntime) -> None:
        """Serve the same supergraph under another runtime (a policy reload); raises
        SupergraphError when it does not fit, and then what is served stays as it was."""

    async def close(self) -> None:
        """Stop what `start` started."""


class StaticSupergraph:
    """One composed supergraph file, its subgraphs called over HTTP (`citygate serve --supergraph`)."""

    def __init__(
        self, supergraph: str, state: GatewayState, pool: HttpPool, owners: dict[str, str] | None = None
    ) -> None:
        self.supergraph = supergraph
        self.state = state
        self.pool = pool
        self.owners = owners

    async def start(self, runtime: PrivacyRuntime) -> None:
        model_urls = {name: s.url for name, s in load_supergraph(self.supergraph).subgraphs.items()}
        self.state.engine = runtime.build_engine(
            self.supergraph, Subgraphs.over_http(model_urls, http_pool=self.pool), self.owners
        )

    async def rebuild(self, runtime: PrivacyRuntime) -> None:
        served = self.state.engine
        self.state.engine = runtime.build_engine(self.supergraph, served.transport if served else None, self.owners)

    async def close(self) -> None:
        return None


class RegistrySupergraph:
    """The registry's connectors and, beside them, the built-in control plane of each runtime."""

    def __init__(self, registry: Registry, rights: ResidentRights | None = None) -> None:
        self.registry = registry
        self.rights = rights  # residents' export and erasure requests: lives across policy reloads

    async def start(self, runtime: PrivacyRuntime) -> None:
        await self.registry.start(build_engine=runtime.build_engine, builtins=_builtins(runtime, self.rights))
        if self.rights is not None:
            await self.rights.erasures.create()
            self.rights.dispatcher.start()  # erasure deliveries an earlier run left pending go on
        store = self.registry.store
        if store is not None and store.kind == "postgresql":
            # other replicas' registrations are composed here too: not a second's spawn on the
            # first one heard of (in the background: starting does not wait for it)
            self.registry.warm_worker_soon()

    async def rebuild(self, runtime: PrivacyRuntime) -> None:
        # refused (SupergraphError): the registry keeps the running policy, its registry rules included
        await self.registry.rebuild(
            build_engine=runtime.build_engine, builtins=_builtins(runtime, self.rights), policy=runtime.policy.registry
        )

    async def close(self) -> None:
        if self.rights is not None:
            await self.rights.dispatcher.stop()
        # its composition process, stopped here rather than at interpreter exit: a worker process
        # of `serve --workers` exiting could otherwise leave a respawned one behind
        if self.registry.warming is not None:
            self.registry.warming.cancel()
        await self.registry.worker.terminate()


class _ReplicaReadiness(Readiness):
    """The store's readiness, and before it the change listener's: a replica that cannot hear of
    other replicas' registrations and policy reloads may serve stale ones (consent stays right: the
    consent clock does not depend on it)."""

    def __init__(self, store: Store, listener: Callable[[], ChangeListener | None]) -> None:
        super().__init__(store.ping, what="the store")
        self.listener = listener

    async def problem(self) -> str | None:
        problems = [await super().problem()]
        listener = self.listener()
        if listener is not None:
            problems.append(listener.problem())
        return "; ".join(p for p in problems if p) or None


class Gateway:
    """One gateway: its connections, the privacy runtime of the policy in force and what it serves,
    behind one Starlette app whose lifespan starts them and stops them. Built in one pass
    (static_app, registry_app); nothing is patched on afterwards."""

    def __init__(
        self,
        serving: Serving,
        connections: Connections,
        *,
        state: GatewayState,
        policy: Policy,
        policy_path: Path | None = None,
        keys: Keys | None = None,
        routes: Sequence[BaseRoute] = (),
        on_start: Callable[[Gateway], Awaitable[None]] | None = None,
        graphiql: GraphiQL | None = None,
        limits: HttpLimits | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`keys`: the admin API's (the operator reloads the policy over HTTP); `routes`: served
        beside /graphql; `on_start`: run once started, before the change listener (PostgreSQL)."""
        self.serving = serving
        self.state = state
        self.store = connections.store
        self.http_client = connections.http_client  # control traffic (SDLs, JWKS)
        self.pool = connections.pool  # subgraph traffic
        self.registry = serving.registry if isinstance(serving, RegistrySupergraph) else None
        self.runtime: PrivacyRuntime | None = None
        self.listener: ChangeListener | None = None  # PostgreSQL: changes made through other replicas
        self._policy = policy
        self._policy_path = policy_path
        self._on_start = on_start
        self._recorder: usage.UsageRecorder | None = None
        self._heard_policy_version: str | None = None  # the last version another replica announced
        self._policy_reload = Rerun(self._reload_heard, "reloading the policy after another replica's reload")
        self._registry_refresh = Rerun(self._refresh_registry, "serving the connectors another replica changed")
        # not ready while the store does not answer (disclosures would all be withheld meanwhile), nor
        # while the change listener is disconnected
        state.readiness = _ReplicaReadiness(self.store, lambda: self.listener)
        served_routes: list[BaseRoute] = [*(_policy_routes(self.reload, keys) if keys is not None else []), *routes]
        # public: the keys that verify receipts, the signed audit head, the residents' page
        served_routes += verifiable_record_routes(
            lambda: self.runtime.ledger.signer if self.runtime is not None else None, self.store
        )
        served_routes += privacy_centre_routes()
        state.documents = PersistedDocuments.from_settings(
            settings or Settings(), self.store
        )  # APQ; trusted documents from the store
        self.app = create_app(
            state,
            graphiql,
            extra_routes=served_routes,
            limits=limits or settings_from_environment().http_limits(),
            settings=settings,
            lifespan=self._lifespan,
        )

    # -- start and stop ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        try:
            self.store.claim()  # SQLite: this gateway only, for its whole life
        except Exception as error:
            logger.error("%s", error)
            await self._close_unstarted()
            raise
        try:
            await self._start()
        except BaseException:
            await self._close_unstarted()  # it never served: what it opened is closed, the SQLite file free for another
            raise
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self._log_reload()))
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            await self._close()

    async def _start(self) -> None:
        await self.store.create()
        runtime = await privacy_runtime(self._policy, self.store, self.http_client)
        self._serve(runtime)
        self._recorder = usage.install(self.store)  # the operations' coordinates, for schema checks
        await self.serving.start(runtime)
        if self._on_start is not None:
            await self._on_start(self)
        if self.store.kind == "postgresql":
            self.listener = ChangeListener(
                self.store.listen_dsn(),
                on_change=self._on_change,
                on_connect=self._on_connect,
                connect_timeout=self.store.timeouts.connect,
            )
            await self.listener.start(wait=self.store.timeouts.connect)

    async def _close(self) -> None:
        """Everything the gateway opened, stopped and closed: after serving, or after a start that failed."""
        if self.listener is not None:
            await self.listener.stop()
        await self.serving.close()
        if self._recorder is not None:
            await usage.uninstall(self._recorder)  # its last counts written to the store, still open
            self._recorder = None
        await self.http_client.aclose()
        await self.pool.close()
        await self.store.close()
        if self.state.admission is not None:
            await self.state.admission.close()
        if self.state.documents is not None:
            await self.state.documents.close()

    async def _close_unstarted(self) -> None:
        """_close after a start that failed: the start's own error is the one the caller gets."""
        try:
            await self._close()
        except Exception:
            logger.exception("closing what a failed start opened failed too")

    def _serve(self, runtime: PrivacyRuntime) -> None:
        self.runtime = runtime
        self.state.authenticator = runtime.authenticator

    # -- the policy ----------------------------------------------------------------------------------

    async def reload(self, *, announce: bool = True, unless_serving: str | None = None) -> list[str]:
        """Reload the policy file; with `announce`, tell the other replicas (they reload theirs).
        `unless_serving`: a version; nothing is done when the file holds it and it is served.
        The problems that refused it (the running policy stays), or none."""
        try:
            new_policy = load_policy(self._policy_path) if self._policy_path is not None else self._policy
        except PolicyError as error:
            return error.problems
        served = self.runtime.policy.version if self.runtime is not None else None
        if unless_serving is not None and new_policy.version == served == unless_serving:
            return []
        runtime = await privacy_runtime(new_policy, self.store, self.http_client)
        try:
            await self.serving.rebuild(runtime)
        except SupergraphError as error:
            return [f"the policy does not fit the supergraph: {error}"]
        self._serve(runtime)
        logger.warning("policy reloaded (version %s)", new_policy.version)
        if announce:
            try:
                await self.store.notify({"kind": "policy", "version": new_policy.version})
            except Exception as error:  # reloaded here; the others reload when their listener reconnects
                logger.error("the other replicas could not be told of the policy reload (%s)", type(error).__name__)
        return []

    async def _log_reload(self) -> None:
        for problem in await self.reload():
            logger.error("policy not reloaded: %s", problem)

    async def _reload_heard(self) -> None:
        """Another replica reloaded its policy: reload this one's file, unless it already serves that version."""
        if self._policy_path is None:
            return
        version = self._heard_policy_version
        served = self.runtime.policy.version if self.runtime is not None else None
        # no version (after a reconnection): reloaded only if the file holds another one than served
        problems = await self.reload(announce=False, unless_serving=version or served)
        for problem in problems:
            logger.error("policy not reloaded after another replica's reload: %s", problem)
        served = self.runtime.policy.version if self.runtime is not None else None
        if not problems and version is not None and served != version:
            logger.error("another replica serves policy version %s; this replica's file holds %s", version, served)

    # -- other replicas' changes (PostgreSQL) ------------------------------------------------------

    async def _refresh_registry(self) -> None:
        if self.registry is not None:
            await self.registry.refresh_from_store()

    async def _on_change(self, change: dict) -> None:
        kind = change.get("kind")
        if kind == "consent":
            if self.runtime is not None:
                await self.runtime.ledger.sync()  # early: most requests then find the caches right
        elif kind == "connector":
            await self._registry_refresh.ask()
        elif kind == "documents":
            if self.state.documents is not None:
                self.state.documents.forget_misses()  # pushed ids now exist: ask the store again
        elif kind == "policy":
            version = change.get("version")
            self._heard_policy_version = version if isinstance(version, str) else None
            await self._policy_reload.ask()

    async def _on_connect(self) -> None:
        """Listening (again): what was notified while not listening is read again."""
        if self.runtime is not None:
            self.runtime.ledger.invalidate_all()
        if self.state.documents is not None:
            self.state.documents.forget_misses()  # a push may have been notified meanwhile
        await self._registry_refresh.ask()
        self._heard_policy_version = None
        await self._policy_reload.ask()


def _policy_routes(reload: Callable[[], Awaitable[list[str]]], keys: Keys) -> list[Route]:
    async def reload_policy(request: Request) -> JSONResponse:
        actor = await keys.actor(request)
        if actor is None or not actor.is_operator:
            return JSONResponse(
                {"ok": False, "errors": [{"code": "FORBIDDEN", "message": "only the operator reloads the policy"}]}, 403
            )
        problems = await reload()
        if problems:
            return JSONResponse(
                {"ok": False, "errors": [{"code": "INVALID_POLICY", "message": p} for p in problems]}, 422
            )
        return JSONResponse({"ok": True, "errors": []})

    return [Route("/admin/policy/reload", reload_policy, methods=["POST"])]


def static_app(
    *,
    supergraph: str,
    store_url: str,
    policy: Policy,
    policy_path: Path | None = None,
    development: bool = False,
    graphiql: GraphiQL | None = None,
    owners: dict[str, str] | None = None,
    on_start: Callable[[Gateway], Awaitable[None]] | None = None,
    limits: HttpLimits | None = None,
    store_timeouts: StoreTimeouts | None = None,
    settings: Settings | None = None,
) -> Gateway:
    """A composed supergraph served with the privacy model (no admin API: the policy reloads on SIGHUP)."""
    state = GatewayState(development=development)
    connections = Connections.open(store_url, store_timeouts)
    return Gateway(
        StaticSupergraph(supergraph, state, connections.pool, owners),
        connections,
        state=state,
        policy=policy,
        policy_path=policy_path,
        on_start=on_start,
        graphiql=graphiql,
        limits=limits,
        settings=settings,
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
    routes: Sequence[BaseRoute] = (),
    graphiql: GraphiQL | None = None,
    limits: HttpLimits | None = None,
    store_timeouts: StoreTimeouts | None = None,
    settings: Settings | None = None,
) -> Gateway:
    """The connectors of `folder` and the registered ones, with the admin API under /admin
    (`routes`: more routes beside them)."""
    state = GatewayState(development=development)
    connections = Connections.open(store_url, store_timeouts)
    registry = Registry(
        state,
        store=connections.store,
        policy=policy.registry,
        http_client=connections.http_client,
        pool=connections.pool,
        folder=folder,
    )
    keys = Keys(operator_key, connections.store)
    rights = rights_for_gateway(state, connections.store, connections.pool, registry, CONTROL_PLANE)
    return Gateway(
        RegistrySupergraph(registry, rights),
        connections,
        state=state,
        policy=policy,
        policy_path=policy_path,
        keys=keys,
        routes=[*admin_routes(registry, keys), *routes],
        on_start=on_start,
        graphiql=graphiql,
        limits=limits,
        settings=settings,
    )


def rights_for_gateway(
    state, store, pool, registry, control_plane: str, settings: ErasureSettings | None = None
) -> ResidentRights:
    """The residents' rights of a registry gateway: the Engine its `state` serves, its registry's
    connectors, partners reached through its `pool` (a registered partner's addresses checked at
    each connection, as for its traffic)."""

    def address_refused(url: str) -> bool:
        literal = literal_address(url)
        return literal is not None and refused(literal, tuple(pool.allow_upstreams())) is not None

    def erasure_endpoint(manifest: Manifest) -> tuple[str, dict[str, str]] | None:
        # resolved at each attempt (a folder manifest's ${NAME}); refused off the connector's origin
        try:
            url, base, headers = manifest.resolved_erasure_url(), manifest.resolved_url(), manifest.resolved_headers()
        except ManifestError:
            return None
        if not url or erasure_origin_problem(url, base) is not None:
            return None
        return url, headers

    return ResidentRights(
        ErasureStore(store),
        engine=lambda: state.engine,
        connectors=lambda: registry.connectors,
        max_timeout=lambda: registry.policy.max_timeout,
        pool=pool,
        signer=RecordSigner(store),  # the receipts' key: each erasure delivery carries a token it signs
        address_refused=address_refused,
        erasure_endpoint=erasure_endpoint,
        excluded=frozenset({control_plane}),
        settings=settings or ErasureSettings(),
    )


def _builtins(runtime: PrivacyRuntime, rights: ResidentRights | None = None) -> dict[str, Connector]:
    """The built-in control-plane connector, serving this runtime's ledger, audit log and policy."""
    schema = control_plane_schema(runtime.ledger, runtime.audit, runtime.policy, rights)
    manifest = Manifest(name=CONTROL_PLANE, owner="operator", kind="python")
    return {CONTROL_PLANE: Connector(manifest, python_schema_sdl(schema), InProcessSubgraph(schema), source="builtin")}
