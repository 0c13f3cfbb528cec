"""The registry: which connectors make up the supergraph, and the only way to change that.

Every change is validated first (manifest, upstream URL, SDL, composition with everything else,
ownership of fields and of privacy annotations, privacy lint), its Engine built, then stored, then
served (the annotations' ownership is checked at start too, for every connector): the new Engine
is swapped in with one reference assignment, so requests in flight finish on the old one and none fails. A change that
fails validation leaves the running supergraph untouched and returns every problem.

What a partner's connector may cost is bounded by the policy's registry section: its SDL's size
(checked before parsing) and type and field counts, the time its composition takes (run in a
worker process, never on the event loop: _worker.py), its timeout (a registration asking more than
`max_timeout` is refused; a stored one is served clamped), and, once served, its circuit breaker
and the address check at each connection (gateway/executor/_transport.py).

A REST connector (`kind: rest`) is read by gateway.connect: its `@source`/`@connect` checked (each
problem with its code and location), composition reading its SDL without them; it is served by a
`RestClient` in the gateway itself, held to the same URL rules (every origin its SDL calls is its
url's), timeout cap, breaker and address check at each connection as a subgraph.

Every change is checked against the supergraph served now too (_checks.py): a breaking change to
the clients' API schema is a warning, or an error when recorded usage (gateway/usage.py) shows a
client's operation selected it in the usage window; the operator (only) accepts such a change by
sending `"accept_breaking": true` with the manifest. A removal reports them, never refused for them.

Only the operator's folder manifests read the gateway's environment (`${NAME}`); a manifest sent
over the admin API or read back from the store never does (see _manifest.py). A connector's
secrets go only into its own client's headers (its SDL read and its subgraph traffic, neither
following redirects), never into a report, a listing or a log.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from ..composition import SdlLimits, SubgraphSource, compose, sdl_too_large
from ..connect import ConnectError, ConnectSchema, RestClient, read_connect_sdl
from ..engine import Engine
from ..errors import ConfigurationError
from ..executor import (
    AnswerTooLarge,
    BreakerSettings,
    HttpPool,
    HttpSubgraph,
    InProcessSubgraph,
    SubgraphClient,
    Subgraphs,
    SubgraphUnavailable,
    UpstreamAddressRefused,
)
from ..policy import RegistryPolicy
from ..store import Store
from ..supergraph import SupergraphError
from ..usage import current as current_usage
from ._checks import USAGE_WINDOW_DAYS, SchemaChange, Use, classify, usage_by_change
from ._manifest import (
    Manifest,
    ManifestError,
    load_python_schema,
    parse_manifest,
    python_schema_sdl,
    read_manifest_folder,
    with_kept_secrets,
)
from ._rules import Problem, Registered, check_annotation_ownership, check_rest_origins, check_upstream_url
from ._worker import BudgetExceeded, Change, CompositionWorker

logger = logging.getLogger("citygate.registry")

# builds the Engine of a supergraph over its subgraphs' clients, given each subgraph's owner
EngineBuilder = Callable[[str, Subgraphs, dict[str, str]], Engine]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: the operator, or one partner."""

    partner: str | None  # None: the operator

    @property
    def is_operator(self) -> bool:
        return self.partner is None

    def may_manage(self, owner: str) -> bool:
        return self.is_operator or self.partner == owner


OPERATOR = Actor(None)


@dataclass(slots=True)
class Connector:
    manifest: Manifest
    sdl: str
    client: SubgraphClient
    source: str = "registry"  # "registry", "folder" (the operator's files) or "builtin"
    version: int = 0

    @property
    def registered_sdl(self) -> str:
        """The SDL as its owner gave it, what is stored: a REST connector's with its @source/@connect
        (`sdl` is what composition reads: for a REST connector, the same without them)."""
        return self.manifest.sdl or self.sdl

    @property
    def from_folder(self) -> bool:
        """Folder and built-in connectors change only with the operator's files, never over the API."""
        return self.source != "registry"


class Refusal(enum.Enum):
    """Why a change was refused, by kind: the admin API answers each with its own HTTP status
    (_admin.py). The problems themselves, each with its stable code, are the report's errors."""

    INVALID = "invalid"  # the change does not validate: manifest, URL, SDL, composition, rules, schema checks
    FORBIDDEN = "forbidden"  # the actor may not manage that connector
    NOT_FOUND = "not_found"  # no connector of that name that the actor manages
    CONFLICT = "conflict"  # not possible as things stand: a folder connector, the last one, what would remain


@dataclass(slots=True)
class Report:
    """What validating, registering or removing a connector came to: the errors (then `refusal`
    says of which kind), the warnings, and the version a registration stored."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    version: int | None = None
    refusal: Refusal | None = None  # None while nothing refuses the change

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, problem: Problem | dict, *, warning: bool = False) -> None:
        """A problem; an error refuses the change (as INVALID unless `refuse` says otherwise)."""
        (self.warnings if warning else self.errors).append(
            problem.to_dict() if isinstance(problem, Problem) else problem
        )
        if not warning and self.refusal is None:
            self.refusal = Refusal.INVALID

    def refuse(self, refusal: Refusal, problem: Problem | None = None) -> Report:
        """The change refused for `refusal` (with `problem`, or the errors already added)."""
        if problem is not None:
            self.add(problem)
        assert self.errors, "a refusal says why"
        self.refusal = refusal
        return self

    def add_all(self, code: str, messages: Iterable[str]) -> None:
        for message in messages:
            self.add(Problem(code, message))

    def add_coded(self, error: ManifestError, generic: str = "INVALID_MANIFEST") -> None:
        """A manifest's problems with their own codes (`generic` for the plain ones)."""
        for code, message in error.coded(generic):
            self.add(Problem(code, message))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "errors": self.errors, "warnings": self.warnings}
        if self.version is not None:
            data["version"] = self.version
        return data


class RegistryError(ConfigurationError):
    """The connectors the gateway starts with (its folder, its store) cannot be served."""


class _Disconnected:
    """The client of a stored connector whose manifest no longer resolves: it was registered, before
    manifests over the admin API were refused any `${NAME}`, with a reference to the gateway's
    environment. It stays in the composition (the rest still composes) and every request to it
    fails like an unreachable subgraph, until its owner registers it again with its secrets."""

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes:
        raise SubgraphUnavailable("its manifest must be registered again")


def connect_problems(name: str, error: ConnectError) -> list[Problem]:
    """A REST connector's SDL problems, each with its own code and its place in the SDL."""
    return [
        Problem(p.code, p.message, subgraph=name, locations=((p.line, p.column or 1),) if p.line is not None else ())
        for p in error.problems
    ]


def _connect_error(name: str, error: ConnectError) -> ManifestError:
    """The same problems for the operator's folder (a start that cannot serve them stops)."""
    problems = connect_problems(name, error)
    return ManifestError(
        [f"{p.code}: {p.message}" + "".join(f" at {line}:{column}" for line, column in p.locations) for p in problems],
        [p.code for p in problems],
    )


class Registry:
    def __init__(
        self,
        state,
        *,
        store: Store | None,
        policy: RegistryPolicy,
        http_client: httpx.AsyncClient,
        pool: HttpPool | None = None,
        folder: Path | None = None,
        build_engine: EngineBuilder | None = None,
        builtins: dict[str, Connector] | None = None,
    ) -> None:
        self.state = state  # gateway.http.GatewayState: holds the Engine being served
        self.store = store
        self.policy = policy
        self.http_client = http_client  # control traffic: reading SDLs
        self.pool = pool or HttpPool()  # subgraph traffic
        self.folder = folder
        self.build_engine = build_engine or (
            lambda sdl, transport, owners: Engine.from_sdl(sdl, transport, owners=owners)
        )
        self.connectors: dict[str, Connector] = dict(builtins or {})
        self.lock = asyncio.Lock()
        self.supergraph: str | None = None
        self.worker = CompositionWorker()  # composition and the rules, off the event loop
        self.warming: asyncio.Task | None = None  # the worker started ahead (replicas), see warm_worker_soon
        # stored rows this replica read and did not serve (by version): already seen, so that a
        # row it cannot serve does not make every later change notice recompose everything
        self.left_out: dict[str, int] = {}
        # registered partners' traffic: addresses checked at each connection against the policy
        # in force (read at each connection: a policy reload applies at once)
        self.pool.allow_upstreams = lambda: self.policy.allow_upstreams
        self.pool.breaker = self._breaker()

    def _breaker(self) -> BreakerSettings:
        return BreakerSettings(self.policy.breaker_failures, self.policy.breaker_cool_down)

    def _limits(self) -> SdlLimits:
        return SdlLimits(self.policy.max_sdl_bytes, self.policy.max_types, self.policy.max_fields)

    # -- start ---------------------------------------------------------------------------------

    async def start(
        self, *, build_engine: EngineBuilder | None = None, builtins: dict[str, Connector] | None = None
    ) -> None:
        """Load the folder's and the store's connectors and serve their composition (with
        `build_engine` and `builtins`, when given, from now on)."""
        if build_engine is not None:
            self.build_engine = build_engine
        self.connectors.update(builtins or {})
        if self.folder is not None:
            for manifest_path in sorted(self.folder.glob("*/manifest.yaml")):
                try:
                    manifest = read_manifest_folder(manifest_path.parent, allow_python=True)
                    self.connectors[manifest.name] = await self._from_folder(manifest)
                except ManifestError as error:
                    raise RegistryError(f"connector {manifest_path.parent.name}: {error}") from None
        if self.store is not None:
            for row in await self.store.connectors():
                if row.name in self.connectors:
                    raise RegistryError(f"connector {row.name} is both in the folder and in the store")
                connector = await self._stored_connector(row)
                if connector is None:
                    self.left_out[row.name] = row.version
                    continue
                # registered before the cap, or the cap lowered since: served with the cap, never refused at start
                if connector.manifest.timeout > self.policy.max_timeout:
                    logger.warning(
                        "connector %s asks a %g s timeout: served with the policy's max_timeout, %g s",
                        row.name,
                        connector.manifest.timeout,
                        self.policy.max_timeout,
                    )
                self.connectors[row.name] = connector
        if not self.connectors:
            logger.warning("no connector yet: /graphql answers 503 until the first registration")
            return
        result = compose(self._sources(self.connectors.values()))
        if result.supergraph is None or not result.ok:
            raise RegistryError(
                "the registered connectors do not compose:\n" + "\n".join(f"  {e}" for e in result.errors)
            )
        # every connector's annotations by its owner, the folder's included (partners' connectors
        # may be there, their SDL read from their own servers at each start)
        owners = {name: c.manifest.owner for name, c in self.connectors.items()}
        not_owned = check_annotation_ownership(
            [Registered(s.name, owners[s.name], s) for s in result.subgraphs if s.name in owners]
        )
        if not_owned:
            raise RegistryError(
                "privacy annotations by a party that does not own them:\n"
                + "\n".join(f"  {p.code}: {p.message}" for p in not_owned)
            )
        try:
            engine = self._build(result.supergraph, self.connectors)
        except SupergraphError as error:
            raise RegistryError(f"the composed supergraph cannot be served: {error}") from None
        self._swap(engine, result.supergraph, self.connectors)

    def warm_worker_soon(self) -> asyncio.Task:
        """Start the composition worker in the background, composing what is served (replicas
        compose the changes other replicas made: one heard of should not wait for the spawn)."""

        async def warm() -> None:
            if self.connectors:
                try:
                    await self._compose(
                        Change(self._sources(self.connectors.values()), self._owners(self.connectors), self.policy),
                        Report(),
                    )
                except Exception:  # the first change composed starts it again
                    logger.exception("the composition worker could not be started ahead")

        self.warming = asyncio.ensure_future(warm())
        return self.warming

    async def refresh_from_store(self) -> bool:
        """Serve what the store holds now, when another replica registered, replaced or removed a
        connector: stored connectors whose version differs from the one served are read again and
        the whole composed again; folder and built-in connectors stay. True when it swapped.

        The other replica validated the change before storing it; what is checked here is that it
        still composes with this replica's own folder. If not, the served supergraph stays (logged)."""
        if self.store is None:
            return False
        async with self.lock:
            rows = {row.name: row for row in await self.store.connectors()}
            served = {name: c for name, c in self.connectors.items() if not c.from_folder}
            seen = {**self.left_out, **{name: c.version for name, c in served.items()}}
            if seen == {name: row.version for name, row in rows.items()}:
                return False
            connectors = {name: c for name, c in self.connectors.items() if c.from_folder}
            for name, row in rows.items():
                if name in connectors:
                    logger.error("connector %s is both in the folder and in the store: the folder's is served", name)
                    continue
                current = served.get(name)
                if current is not None and current.version == row.version:
                    connectors[name] = current  # unchanged: same client, same breaker
                    continue
                connector = await self._stored_connector(row)
                if connector is not None:
                    connectors[name] = connector
            if not connectors:
                return False
            supergraph = await self._compose_stored(
                connectors, {name for name in rows if name not in served or served[name].version != rows[name].version}
            )
            if supergraph is None:
                return False
            try:
                engine = await self._build_off_loop(supergraph, connectors)
            except SupergraphError as error:
                logger.error("the stored connectors cannot be served here: the served supergraph stays: %s", error)
                return False
            self.left_out = {name: row.version for name, row in rows.items() if name not in connectors}
            self._swap(engine, supergraph, connectors)
            logger.warning(
                "connectors changed through another replica: now serving versions %s",
                {name: c.version for name, c in connectors.items() if not c.from_folder},
            )
            return True

    async def _compose_stored(self, connectors: dict[str, Connector], fresh: set[str]) -> str | None:
        """The composition of what the store holds, every annotation checked again (this replica's
        folder may differ from the one the registering replica checked against): a fresh connector
        (`fresh`: changed since served) whose annotations this replica cannot accept is left out,
        logged, and the rest composed; None (logged) when even that fails."""
        for _attempt in range(2):
            report = Report()
            change = Change(self._sources(connectors.values()), self._owners(connectors), self.policy, whole=True)
            supergraph = await self._compose(change, report)
            if supergraph is not None:
                return supergraph
            not_owned = {p.get("subgraph") for p in report.errors if p.get("code") == "PRIVACY_ANNOTATION_NOT_OWNED"}
            left_out = sorted(name for name in not_owned & fresh if name in connectors)
            if not left_out or len(not_owned - set(left_out)) > 0:
                break
            for name in left_out:
                logger.error(
                    "connector %s (owner %s) is not served here: privacy annotations its owner does not own beside this replica's connectors",
                    name,
                    connectors[name].manifest.owner,
                )
                del connectors[name]
        logger.error("the stored connectors cannot be served here: the served supergraph stays: %s", report.errors)
        return None

    async def rebuild(
        self, *, build_engine: EngineBuilder, builtins: dict[str, Connector], policy: RegistryPolicy
    ) -> None:
        """Serve the current supergraph again under another policy: built with `build_engine`, the
        built-in connectors replaced by `builtins`, the registry rules `policy`'s. Raises
        SupergraphError, and then nothing changed (the running policy stays, its rules included)."""
        async with self.lock:
            connectors = {**self.connectors, **builtins}
            engine = (
                await self._build_off_loop(self.supergraph, connectors, build_engine)
                if self.supergraph is not None
                else None
            )
            self.build_engine, self.policy = build_engine, policy
            if engine is not None and self.supergraph is not None:
                self._swap(engine, self.supergraph, connectors)
            else:
                self.connectors = connectors

    async def _from_folder(self, manifest: Manifest) -> Connector:
        if manifest.kind == "python":
            schema = load_python_schema(manifest)
            sdl = manifest.sdl or python_schema_sdl(schema)
            return Connector(manifest, sdl, InProcessSubgraph(schema), source="folder")
        if manifest.kind == "rest":
            assert manifest.sdl is not None  # parse_manifest requires it
            try:
                rest = read_connect_sdl(manifest.sdl, base_url=manifest.resolved_url())
            except ConnectError as error:
                raise _connect_error(manifest.name, error) from None
            # the operator's: unguarded, like _http_client
            client = RestClient(
                rest, self.pool, name=manifest.name, timeout=manifest.timeout, headers=manifest.resolved_headers()
            )
            return Connector(manifest, rest.composition_sdl, client, source="folder")
        sdl = manifest.sdl or await self._fetch_sdl(manifest)
        return Connector(manifest, sdl, self._http_client(manifest), source="folder")

    def _http_client(self, manifest: Manifest) -> HttpSubgraph:
        """The connector's own client: the only one its headers (and so its secrets) go into."""
        return HttpSubgraph(self.pool, manifest.resolved_url(), manifest.timeout, manifest.resolved_headers())

    def _partner_client(self, manifest: Manifest, url: str, headers: dict[str, str]) -> HttpSubgraph:
        """A registered connector's client: its timeout within the cap, its addresses checked at each connection."""
        timeout = min(manifest.timeout, self.policy.max_timeout)
        return HttpSubgraph(self.pool, url, timeout, headers, breaker=self._breaker(), guarded=True)

    def _rest_client(self, manifest: Manifest, rest: ConnectSchema, headers: dict[str, str]) -> RestClient:
        """A registered REST connector's client: as _partner_client's, the calls made by the gateway itself."""
        timeout = min(manifest.timeout, self.policy.max_timeout)
        return RestClient(
            rest, self.pool, name=manifest.name, timeout=timeout, headers=headers, breaker=self._breaker(), guarded=True
        )

    async def _stored_connector(self, row) -> Connector | None:
        """A connector read back from the store; None when a REST connector's stored SDL no longer
        reads (gateway.connect changed its rules since): left out, logged, until its owner registers
        it again. Composition needs its SDL without @source/@connect, which only that read gives."""
        # never the environment: a stored manifest came over the admin API
        manifest = parse_manifest({**row.manifest, "sdl": row.sdl}, provenance="store", secrets=row.secrets)
        if manifest.kind != "rest":
            return Connector(manifest, row.sdl, self._stored_client(manifest), version=row.version)
        try:
            # in a thread, as at registration: a replica refreshing keeps answering meanwhile
            rest = await asyncio.to_thread(read_connect_sdl, row.sdl, base_url=manifest.url)
        except ConnectError as error:
            logger.error(
                "connector %s (owner %s) is not served until its owner registers it again: its stored SDL no longer reads: %s",
                manifest.name,
                manifest.owner,
                "; ".join(sorted({p.code for p in error.problems})),
            )
            return None
        return Connector(manifest, rest.composition_sdl, self._stored_client(manifest, rest), version=row.version)

    def _stored_client(self, manifest: Manifest, rest: ConnectSchema | None = None) -> SubgraphClient:
        try:
            if rest is not None:
                manifest.resolved_url()  # a stored url never reads the environment: refused as the headers are
                return self._rest_client(manifest, rest, manifest.resolved_headers())
            return self._partner_client(manifest, manifest.resolved_url(), manifest.resolved_headers())
        except ManifestError as error:
            # the operator's log: which connector and why, never a value (the messages carry none)
            logger.error(
                "connector %s (owner %s) is served disconnected until its owner registers it again: %s",
                manifest.name,
                manifest.owner,
                "; ".join(sorted(set(error.codes))),
            )
            return _Disconnected()

    async def _fetch_sdl(self, manifest: Manifest, max_bytes: int | None = None, *, guarded: bool = False) -> str:
        """The SDL through `_service { sdl }`; with `max_bytes`, an answer too large for such an SDL
        is refused while it streams (SDL_TOO_LARGE), never read whole. A registered partner's
        (`guarded`) is read through the subgraph pool's guard (executor/_addresses.py): its host's
        addresses are checked when it connects, not only by the URL check before, so a name that
        turns to a refused address in between receives nothing (UPSTREAM_URL_REFUSED)."""
        # JSON escapes (newlines, quotes) grow an SDL a little: twice its limit is room enough
        read_limit = None if max_bytes is None else 2 * max_bytes + 65536
        seconds = manifest.timeout if max_bytes is None else min(manifest.timeout, self.policy.max_timeout)
        too_large = ManifestError(
            [f"the SDL at {manifest.url} is over the limit of {max_bytes} bytes"], ["SDL_TOO_LARGE"]
        )
        try:
            # the whole read, not each chunk: an upstream trickling bytes cannot hold a registration
            async with asyncio.timeout(seconds):
                if guarded:
                    raw = await self.pool.post_guarded(
                        manifest.resolved_url(),
                        orjson.dumps({"query": "{ _service { sdl } }"}),
                        manifest.resolved_headers(),
                        max_bytes=read_limit,
                    )
                else:
                    raw = await self._read_sdl(manifest, seconds, read_limit, too_large)
            sdl = orjson.loads(raw)["data"]["_service"]["sdl"]
        except AnswerTooLarge:
            raise too_large from None
        except UpstreamAddressRefused:
            raise ManifestError(
                [f"the host of {manifest.url} resolves to an address the operator's policy does not allow"],
                ["UPSTREAM_URL_REFUSED"],
            ) from None
        except (httpx.HTTPError, SubgraphUnavailable, ValueError, KeyError, TypeError, TimeoutError):
            raise ManifestError([f"cannot read the SDL at {manifest.url} through _service {{ sdl }}"]) from None
        if not isinstance(sdl, str) or not sdl.strip():
            raise ManifestError([f"{manifest.url} answered _service {{ sdl }} without SDL"])
        return sdl

    async def _read_sdl(
        self, manifest: Manifest, seconds: float, read_limit: int | None, too_large: ManifestError
    ) -> bytes:
        """The answer to `_service { sdl }` from a folder connector (the operator's: unguarded)."""
        async with self.http_client.stream(
            "POST",
            manifest.resolved_url(),
            json={"query": "{ _service { sdl } }"},
            headers=manifest.resolved_headers(),
            timeout=seconds,
            follow_redirects=False,  # the headers carry the connector's secrets: its own origin only
        ) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if read_limit is not None and size > read_limit:
                    raise too_large
                chunks.append(chunk)
        return b"".join(chunks)

    # -- serving ---------------------------------------------------------------------------------

    @staticmethod
    def _sources(connectors) -> list[SubgraphSource]:
        return [
            SubgraphSource(
                c.manifest.name, c.sdl, c.manifest.routing_url() if c.manifest.url else f"inprocess://{c.manifest.name}"
            )
            for c in sorted(connectors, key=lambda c: c.manifest.name)
        ]

    def _build(
        self, supergraph: str, connectors: dict[str, Connector], build_engine: EngineBuilder | None = None
    ) -> Engine:
        transport = Subgraphs({name: c.client for name, c in connectors.items()}, self.pool)
        return (build_engine or self.build_engine)(
            supergraph, transport, {name: c.manifest.owner for name, c in connectors.items()}
        )

    async def _build_off_loop(
        self, supergraph: str, connectors: dict[str, Connector], build_engine: EngineBuilder | None = None
    ) -> Engine:
        """_build in a thread, while the served Engine keeps answering: the Engine of a large
        supergraph takes seconds to build (its schema, privacy tables and planner; ~1-4 s for
        10,000 fields here), which on the event loop stalled every request. The build only reads
        what it is given and shared settings (the policy); the swap stays on the loop."""
        return await asyncio.to_thread(self._build, supergraph, connectors, build_engine)

    def _swap(self, engine: Engine, supergraph: str, connectors: dict[str, Connector]) -> None:
        self.supergraph = supergraph
        self.connectors = connectors
        self.state.engine = engine  # the swap: one assignment; requests in flight keep the old engine
        logger.info("serving %d connectors", len(connectors))

    # -- changes -----------------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[dict[str, Any]]:
        return [
            {**c.manifest.to_dict(), "version": c.version, "source": c.source}
            for _, c in sorted(self.connectors.items())
            if actor.may_manage(c.manifest.owner)
        ]

    async def validate(self, data: Any, actor: Actor) -> Report:
        report, _, _ = await self._check(data, actor)
        return report

    async def register(self, data: Any, actor: Actor) -> Report:
        async with self.lock:
            report, connector, supergraph = await self._check(data, actor)
            if not report.ok or connector is None or supergraph is None:
                return report
            connectors = {**self.connectors, connector.manifest.name: connector}
            try:
                engine = await self._build_off_loop(supergraph, connectors)
            except SupergraphError as error:
                report.add(Problem(error.code, str(error)))
                return report
            if self.store is not None:
                connector.version = await self.store.put_connector(
                    connector.manifest.name,
                    connector.manifest.owner,
                    connector.manifest.to_dict(),
                    connector.registered_sdl,
                    secrets=connector.manifest.secrets,  # exactly those its headers use: the others are dropped
                )
            else:
                previous = self.connectors.get(connector.manifest.name)
                connector.version = (previous.version if previous else 0) + 1
            self._swap(engine, supergraph, connectors)
            report.version = connector.version
            return report

    async def remove(self, name: str, actor: Actor) -> Report:
        async with self.lock:
            report = Report()
            existing = self.connectors.get(name)
            if existing is None or not actor.may_manage(existing.manifest.owner):
                return report.refuse(
                    Refusal.NOT_FOUND, Problem("CONNECTOR_NOT_FOUND", f"no connector named {name!r} that you manage")
                )
            if existing.from_folder:
                problem = Problem(
                    "CONNECTOR_IN_FOLDER", f"{name!r} comes from the operator's connectors folder: remove it there"
                )
                return report.refuse(Refusal.CONFLICT, problem)
            remaining = {n: c for n, c in self.connectors.items() if n != name}
            if not remaining:
                return report.refuse(
                    Refusal.CONFLICT,
                    Problem("LAST_CONNECTOR", "the last connector cannot be removed: nothing would be served"),
                )
            changes: list[SchemaChange] = []
            change = Change(
                self._sources(remaining.values()), self._owners(remaining), self.policy, served=self.supergraph
            )
            supergraph = await self._compose(change, report, changes)
            if supergraph is None:  # what would remain does not compose: the removal is what cannot be made
                return report.refuse(Refusal.CONFLICT)
            # what the removal breaks, reported: the connector's owner may remove it whatever its use
            await self._schema_checks(changes, report, accepted=True)
            try:
                engine = await self._build_off_loop(supergraph, remaining)
            except SupergraphError as error:
                return report.refuse(Refusal.CONFLICT, Problem(error.code, str(error)))
            if self.store is not None:
                await self.store.delete_connector(name)
            self._swap(engine, supergraph, remaining)
            return report

    @staticmethod
    def _owners(connectors: dict[str, Connector]) -> dict[str, str]:
        return {name: c.manifest.owner for name, c in connectors.items()}

    async def _compose(self, change: Change, report: Report, changes: list[SchemaChange] | None = None) -> str | None:
        """The change composed and checked in the worker, within the policy's budget: the supergraph,
        or None with the problems in `report`; the schema checks' changes (when `change.served`) into `changes`."""
        try:
            outcome = await self.worker.run(change, self.policy.composition_budget)
        except BudgetExceeded as error:
            report.add(Problem(error.code, f"{error}: the change is refused, the served supergraph stays"))
            return None
        for problem in outcome.problems:
            report.add(problem)
        if changes is not None:
            changes += outcome.changes
        return outcome.supergraph if report.ok else None

    async def _schema_checks(self, changes: list[SchemaChange], report: Report, *, accepted: bool) -> None:
        """The schema checks' changes into `report`, each breaking one an error when a client used
        what it breaks in the usage window (unless `accepted`). Recorded usage is read from the store,
        this replica's latest counts written first; a store that cannot tell makes each breaking
        change an error (unless `accepted`): a change is not let through on usage nobody could read."""
        if not changes:
            return
        breaking = [c for c in changes if c.breaking]
        used: dict[int, Use] = {}
        if self.store is not None and breaking:
            since = (datetime.now(UTC).date() - timedelta(days=USAGE_WINDOW_DAYS)).isoformat()
            try:
                recorder = current_usage()
                if recorder is not None and recorder.store is self.store:
                    await recorder.flush()
                rows = await self.store.usage_of({coordinate for c in breaking for coordinate in c.affects}, since)
            except Exception as error:
                logger.error("recorded usage could not be read for the schema checks: %s", type(error).__name__)
                if not accepted:
                    report.add(
                        Problem(
                            "SCHEMA_CHECK_UNAVAILABLE",
                            "recorded usage could not be read: a breaking change is refused unless the operator accepts it",
                        )
                    )
                rows = []
            used = usage_by_change(changes, rows)
        errors, warnings = classify(changes, used, accepted=accepted)
        for error in errors:
            report.add(error)
        for warning in warnings:
            report.add(warning, warning=True)

    async def _check(self, data: Any, actor: Actor) -> tuple[Report, Connector | None, str | None]:
        report = Report()
        accepted = False  # breaking changes some client uses: accepted by the operator only
        if isinstance(data, dict) and "accept_breaking" in data:
            accepted = data["accept_breaking"] is True and actor.is_operator
            data = {key: value for key, value in data.items() if key != "accept_breaking"}
        try:
            manifest = parse_manifest(data, provenance="admin")  # never the gateway's environment
        except ManifestError as error:
            report.add_coded(error)
            return report, None, None
        if not actor.may_manage(manifest.owner):
            report.refuse(
                Refusal.FORBIDDEN, Problem("FORBIDDEN", f"you may only register connectors owned by {actor.partner}")
            )
            return report, None, None
        existing = self.connectors.get(manifest.name)
        if existing is not None and existing.from_folder:
            # the registry's state, not the manifest, is what stands in the way: CONFLICT, as for a removal
            report.refuse(
                Refusal.CONFLICT,
                Problem("CONNECTOR_IN_FOLDER", f"{manifest.name!r} comes from the operator's connectors folder"),
            )
            return report, None, None
        if existing is not None and not actor.may_manage(existing.manifest.owner):
            report.refuse(
                Refusal.FORBIDDEN,
                Problem("CONNECTOR_OWNED_BY_ANOTHER_PARTNER", f"{manifest.name!r} belongs to another partner"),
            )
            return report, None, None
        # the secrets its headers use: sent now, or kept from the connector it replaces (same owner and origin)
        manifest = with_kept_secrets(manifest, existing.manifest if existing is not None else None)
        # a timeout the manifest asks for explicitly, over the cap: refused; none asked: the default within the cap
        if isinstance(data, dict) and "timeout" in data and manifest.timeout > self.policy.max_timeout:
            report.add(
                Problem(
                    "TIMEOUT_ABOVE_CAP",
                    f"timeout {manifest.timeout:g} s is over the operator's cap of {self.policy.max_timeout:g} s (registry.max_timeout): ask for at most that",
                )
            )
        try:
            url = manifest.resolved_url()
        except ManifestError as error:
            report.add_coded(error)
            return report, None, None
        for problem in await check_upstream_url(url, self.policy):
            report.add(problem)
        try:
            headers = manifest.resolved_headers()
        except ManifestError as error:
            report.add_coded(error)
            headers = {}
        if not report.ok:
            return report, None, None
        limits = self._limits()
        try:
            sdl = manifest.sdl or await self._fetch_sdl(manifest, limits.max_bytes, guarded=True)
        except ManifestError as error:
            report.add_coded(error, "SUBGRAPH_SDL_UNAVAILABLE")
            return report, None, None
        too_large = sdl_too_large(manifest.name, sdl, limits)  # before anything parses it
        if too_large is not None:
            report.add(too_large.to_dict())
            return report, None, None
        if manifest.kind == "rest":
            rest = await self._read_rest(manifest.name, sdl, url, report)
            if rest is None:
                return report, None, None
            connector = Connector(
                replace(manifest, sdl=sdl), rest.composition_sdl, self._rest_client(manifest, rest, headers)
            )
        else:
            connector = Connector(replace(manifest, sdl=sdl), sdl, self._partner_client(manifest, url, headers))
        candidates = {**self.connectors, manifest.name: connector}
        change = Change(
            self._sources(candidates.values()),
            self._owners(candidates),
            self.policy,
            candidate=manifest.name,
            previous=(existing.manifest.owner, existing.sdl) if existing is not None else None,
            served=self.supergraph,
        )
        changes: list[SchemaChange] = []
        supergraph = await self._compose(change, report, changes)
        if supergraph is None:
            return report, None, None
        await self._schema_checks(changes, report, accepted=accepted)
        if not report.ok:
            return report, None, None
        return report, connector, supergraph

    async def _read_rest(self, name: str, sdl: str, url: str, report: Report) -> ConnectSchema | None:
        """A REST connector's SDL read by gateway.connect (in a thread: a large SDL takes a while
        and the loop keeps answering), and every origin it calls held to the url's: None with the
        problems in `report`."""
        try:
            rest = await asyncio.to_thread(read_connect_sdl, sdl, base_url=url)
        except ConnectError as error:
            for problem in connect_problems(name, error):
                report.add(problem)
            return None
        for problem in await check_rest_origins(url, rest.origins, self.policy):
            report.add(problem)
        return rest if report.ok else None
