"""The REST connector's client: runs the planner's fetches in process, calling the partner's API.

`RestClient.send` executes the fetch's GraphQL document with graphql-core against the
connector's executable schema (its SDL plus `_entities` / `_service`); each @connect is a
resolver that builds the HTTP request from `$args` / `$this` / `$batch`, calls the partner and
maps the JSON answer with the selection. graphql-core does selection sets, aliases, fragments and
null propagation. Entities: one call per representation (at most `max_concurrency` in flight per
client) or, with `$batch`, one call per `batch.maxSize` representations, the answer's items
matched back by their key fields.

Batches are made per step of the execution, not per turn of the event loop: an entity a
selection made with its key only waits until the send has no call in flight and graphql-core has
run out of work it could do without one (no new entity asked for `2 x depth + 4` turns of the
loop, the depth of the document bounding how many turns graphql-core's nested gathers take);
then every entity collected goes, in as few calls as `batch.maxSize` allows. So the calls a send
makes depend on the data, not on when its answers arrive: the same under load as alone.

Identical GET calls (method, URL, headers with the secrets, no body) share one call while it is
in flight, across sends too when the pool shares identical requests (`pool.share_identical`, as
HttpSubgraph does); within one send they are made once. Other methods are never shared.

The partner is an adversary: its calls go through the gateway's pool (a registered partner's
addresses checked at each connection, no redirect followed), each call and the whole fetch are
bounded by the timeout, answers are read while they stream and refused past `max_answer_bytes`,
and mapping work is bounded by the answer's size. What comes back to the executor is data and
errors with a stable `extensions.code` (CONNECTOR_HTTP_ERROR with the status, CONNECTOR_TIMEOUT,
CONNECTOR_INVALID_RESPONSE, CONNECTOR_MAPPING_ERROR, CONNECTOR_REQUEST_ERROR,
CONNECTOR_UNREACHABLE, SUBGRAPH_UNAVAILABLE): never a byte of the partner's answer in a message.
Secrets (the manifest's headers) go with every call, and every call is checked to stay on the
connector's declared origins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator, Mapping
from inspect import isawaitable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import yarl
from cachetools import LRUCache
from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    build_ast_schema,
    execute,
    parse,
    validate,
)

from ..errors import PartnerFault
from ..executor import (
    BreakerSettings,
    CircuitBreaker,
    HttpPool,
    SubgraphCircuitOpen,
    UpstreamRefused,
    literal_address,
    refused,
)
from ._directives import ConnectModel, Connector, ConnectSchema
from ._selection import MappingError, Scope, apply, budget_for
from ._template import RequestError, origin_of, render_header, render_url

logger = logging.getLogger("citygate.connect")

CONNECTOR_HTTP_ERROR = "CONNECTOR_HTTP_ERROR"
CONNECTOR_TIMEOUT = "CONNECTOR_TIMEOUT"
CONNECTOR_INVALID_RESPONSE = "CONNECTOR_INVALID_RESPONSE"
CONNECTOR_MAPPING_ERROR = "CONNECTOR_MAPPING_ERROR"
CONNECTOR_REQUEST_ERROR = "CONNECTOR_REQUEST_ERROR"
CONNECTOR_UNREACHABLE = "CONNECTOR_UNREACHABLE"
SUBGRAPH_UNAVAILABLE = "SUBGRAPH_UNAVAILABLE"
_BREAKER_FAILURES = frozenset({CONNECTOR_TIMEOUT, CONNECTOR_UNREACHABLE, CONNECTOR_INVALID_RESPONSE})


class ConnectorFailure(PartnerFault):
    """One call (or its mapping) failed: a code and words of our own, never the partner's."""

    def __init__(self, code: str, message: str, status: int | None = None, *, shared: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.shared = shared  # another send's call: its breaker verdict is counted there


class _LeaderGone(Exception):
    """The send making a shared call was cancelled before its answer: a follower calls itself."""


class RestClient:
    """A REST connector as a subgraph client (`SubgraphClient`: `send(query, variables, context)`)."""

    def __init__(
        self,
        schema: ConnectSchema,
        pool: HttpPool,
        *,
        name: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        breaker: BreakerSettings | None = None,
        guarded: bool = False,
        max_answer_bytes: int = 8 * 1024 * 1024,
        max_concurrency: int = 8,
    ) -> None:
        self.schema = schema
        self.pool = pool
        self.name = name
        self.timeout = timeout
        # the manifest's (resolved) headers: they may carry secrets, and win over the SDL's
        self.headers = dict(headers or {})
        self._secret_names = {key.lower() for key in self.headers}
        self.breaker = CircuitBreaker(breaker or pool.breaker)
        self.guarded = guarded
        self.max_answer_bytes = max_answer_bytes
        self.max_concurrency = max(1, max_concurrency)
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._call_timeout = aiohttp.ClientTimeout(total=timeout)
        self._origins = schema.origins
        self._executable = _executable_schema(schema)
        self._documents: LRUCache = LRUCache(maxsize=512)
        # GET calls in flight, shared by every send asking the same (pool.share_identical)
        self._in_flight: dict[tuple, asyncio.Future] = {}

    def release_steps(self) -> Iterator[None]:
        """Free this client's executable schema (its graphql-core cycles broken a slice a step, as an
        Engine's: gateway/collector.py), once no Engine serving or awaiting release uses it: its
        connector was replaced or removed. The client answers nothing afterwards."""
        from ..collector import schema_release_steps

        self._documents.clear()
        self._in_flight.clear()
        yield from schema_release_steps(self._executable)
        del self._executable

    async def send(self, query: str, variables: dict[str, Any] | None, context: Any = None) -> dict:
        document, problems, depth = self._document(query)
        if document is None:
            return {"data": None, "errors": problems}
        if not self.breaker.admit():
            raise SubgraphCircuitOpen("unavailable (failing: requests paused for a while)")
        run = _Run(self, settle_turns=2 * depth + 4)
        try:
            async with asyncio.timeout(self.timeout):
                result = execute(self._executable, document, variable_values=variables or {}, context_value=run)
                if isawaitable(result):
                    result = await result
        except TimeoutError:
            run.cancel()
            self.breaker.failed()
            return {
                "data": None,
                "errors": [self._error(CONNECTOR_TIMEOUT, f"no answer within {self.timeout:g} s", None, None)],
            }
        except BaseException:
            run.cancel()
            self.breaker.abandoned()
            raise
        run.cancel()
        if run.failed:
            self.breaker.failed()
        elif run.calls:
            self.breaker.succeeded()
        else:
            self.breaker.abandoned()
        assert isinstance(result, ExecutionResult)
        return self._response(result)

    def _document(self, query: str) -> tuple[DocumentNode | None, list[dict], int]:
        cached = self._documents.get(query)
        if cached is None:
            try:
                document = parse(query)
            except GraphQLError as error:
                cached = (None, [{"message": error.message, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}], 0)
            else:
                errors = validate(self._executable, document)
                if errors:
                    cached = (
                        None,
                        [{"message": e.message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for e in errors],
                        0,
                    )
                else:
                    cached = (document, [], _depth(document))
            self._documents[query] = cached
        return cached

    def _error(self, code: str, message: str, path: Any, status: int | None) -> dict:
        error: dict[str, Any] = {"message": f"connector '{self.name}': {message}"}
        if path:
            error["path"] = list(path)
        extensions: dict[str, Any] = {"code": code, "connector": self.name}
        if status is not None:
            extensions["status"] = status
        error["extensions"] = extensions
        return error

    def _response(self, result: ExecutionResult) -> dict:
        payload: dict[str, Any] = {"data": result.data}
        errors = []
        for error in result.errors or ():
            original = error.original_error
            if isinstance(original, ConnectorFailure):
                errors.append(self._error(original.code, original.message, error.path, original.status))
            elif error.path is None:
                # about the request itself (a variable that does not fit): no partner value in it
                errors.append(
                    {
                        "message": f"connector '{self.name}': the request does not fit its schema",
                        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                    }
                )
            else:
                # graphql-core's own words may quote the partner's value: ours never do
                errors.append(
                    self._error(CONNECTOR_MAPPING_ERROR, "the answer does not fit the schema", error.path, None)
                )
        if errors:
            payload["errors"] = errors
        return payload

    # -- HTTP

    async def call_shared(self, url: str, headers: dict[str, str]) -> tuple[tuple[Any, int], bool]:
        """A GET's answer, made once for every send asking it while it is in flight; and whether
        this send made the call (a follower's failure is not the breaker's business twice)."""
        key = (url, tuple(sorted(headers.items())))
        while True:
            shared = self._in_flight.get(key)
            if shared is None:
                break
            try:
                return await asyncio.shield(shared), False
            except _LeaderGone:
                continue  # the send that made the call left (timeout, cancel): this one calls
            except ConnectorFailure as failure:
                raise ConnectorFailure(failure.code, failure.message, failure.status, shared=True) from None
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            answer = await self.call("GET", url, headers, None)
        except ConnectorFailure as failure:
            future.set_exception(failure)
            future.exception()  # followers re-raise it; the leader's own raise is enough
            raise
        except BaseException:
            future.set_exception(_LeaderGone())
            future.exception()
            raise
        else:
            future.set_result(answer)
            return answer, True
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    async def call(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[Any, int]:
        """The partner's JSON answer to one request and its size; ConnectorFailure otherwise."""
        origin = _origin(url)
        if origin not in self._origins:
            # cannot happen for a validated schema: a URL is its base plus encoded values
            raise ConnectorFailure(CONNECTOR_REQUEST_ERROR, "the request would leave the connector's origins")
        if self.guarded:
            literal = literal_address(url)
            if literal is not None and refused(literal, tuple(self.pool.allow_upstreams())):
                raise ConnectorFailure(
                    SUBGRAPH_UNAVAILABLE, "unavailable (its address is refused by the operator's policy)"
                )
        async with self._slots:
            session = self.pool.session(self.guarded)
            while True:
                try:
                    return await self._request(session, method, url, headers, body)
                except TimeoutError:
                    raise ConnectorFailure(CONNECTOR_TIMEOUT, f"no answer within {self.timeout:g} s") from None
                except aiohttp.ClientConnectorError as error:
                    if isinstance(error.os_error, UpstreamRefused):
                        logger.warning("connector %s not reached: %s", self.name, error.os_error)
                        raise ConnectorFailure(
                            SUBGRAPH_UNAVAILABLE, "unavailable (its address is refused by the operator's policy)"
                        ) from None
                    raise ConnectorFailure(CONNECTOR_UNREACHABLE, f"unreachable ({type(error).__name__})") from None
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                    # a pooled keep-alive connection closed as it was reused: a GET goes once more
                    # on a new connection; other methods may have been applied already
                    if method != "GET" or session is not self.pool.session(self.guarded):
                        raise ConnectorFailure(CONNECTOR_UNREACHABLE, f"unreachable ({type(error).__name__})") from None
                    session = self.pool.fresh_session(self.guarded)
                except aiohttp.ClientError as error:
                    raise ConnectorFailure(CONNECTOR_UNREACHABLE, f"unreachable ({type(error).__name__})") from None

    async def _request(
        self, session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[Any, int]:
        # sent as built: our encoding of each value is what keeps it inside its segment
        async with session.request(
            method,
            yarl.URL(url, encoded=True),
            data=body,
            headers=headers,
            timeout=self._call_timeout,
            allow_redirects=False,
        ) as response:
            status = response.status
            if not 200 <= status < 300:
                raise ConnectorFailure(CONNECTOR_HTTP_ERROR, f"the API answered HTTP {status}", status)
            declared = response.content_length
            if declared is not None and declared > self.max_answer_bytes:
                raise ConnectorFailure(CONNECTOR_INVALID_RESPONSE, f"the answer is over {self.max_answer_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > self.max_answer_bytes:
                    raise ConnectorFailure(
                        CONNECTOR_INVALID_RESPONSE, f"the answer is over {self.max_answer_bytes} bytes"
                    )
                chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return None, 0
        try:
            return orjson.loads(raw), size
        except orjson.JSONDecodeError:
            raise ConnectorFailure(CONNECTOR_INVALID_RESPONSE, "the answer is not JSON") from None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        return origin_of(f"{parts.scheme}://{parts.netloc}")[0]
    except Exception:
        return None


class _Run:
    """One `send`: its calls (identical GETs share one), failures for the breaker, tasks to
    cancel, and the entities waiting for a batch until the send has nothing else to do."""

    def __init__(self, client: RestClient, settle_turns: int = 4) -> None:
        self.client = client
        self.calls = 0
        self.failed = False
        self._answers: dict[tuple, asyncio.Future] = {}
        self._tasks: list[asyncio.Future] = []
        self._entities: dict[tuple, asyncio.Future] = {}
        self._pending: dict[int, tuple[Connector, list[tuple[dict, asyncio.Future]]]] = {}
        # when to send the collected batches: no call (or task making one) in flight, and no new
        # entity asked for `settle_turns` turns of the loop
        self._settle_turns = settle_turns
        self._in_flight = 0
        self._activity = 0
        self._seen = -1
        self._quiet = 0
        self._polling = False
        self._closed = False

    def cancel(self) -> None:
        self._closed = True
        for task in self._tasks:
            if not task.done():
                task.cancel()
        for future in self._entities.values():
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()
        for future in self._answers.values():
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: an unawaited failure is not an error here

    def spawn(self, awaitable: Awaitable, settle: Any = None) -> asyncio.Future:
        """A task of this send, in flight (batches wait) until it is done and `settle` has run."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.append(task)
        self._in_flight += 1
        if settle is not None:
            task.add_done_callback(settle)
        task.add_done_callback(self._landed)
        return task

    def _landed(self, _done: Any = None) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._poll()

    async def fetch(self, connector: Connector, variables: dict[str, Any]) -> tuple[Any, int]:
        """The partner's answer to the connector's request built from `variables`."""
        client = self.client
        scope = Scope(variables, budget_for(0))
        try:
            # `$` in a request mapping: the arguments (root fields), else the entity or parent
            root = variables.get("$args") or variables.get("$this") or variables.get("$batch") or {}
            extra_query = apply(connector.query_params, root, scope) if connector.query_params is not None else None
            url = render_url(connector.base, connector.url, scope, extra_query)
            headers = {"accept": "application/json"}
            for name, template in connector.headers:
                if name.lower() not in client._secret_names:
                    headers[name] = render_header(template, scope)
            body: bytes | None = None
            if connector.body is not None:
                body = orjson.dumps(apply(connector.body, root, scope))
                headers["content-type"] = "application/json"
        except (RequestError, MappingError) as error:
            raise ConnectorFailure(CONNECTOR_REQUEST_ERROR, f"the request cannot be built ({error})") from None
        except (TypeError, orjson.JSONEncodeError, RecursionError):
            raise ConnectorFailure(CONNECTOR_REQUEST_ERROR, "the request cannot be built") from None
        headers.update(client.headers)
        get = connector.method == "GET"
        key = (connector.method, url, body)
        self._in_flight += 1
        self._activity += 1
        try:
            if get:
                shared = self._answers.get(key)
                if shared is not None:
                    return await asyncio.shield(shared)
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            if get:
                self._answers[key] = future
            try:
                if get and client.pool.share_identical:
                    answer, made = await client.call_shared(url, headers)
                else:
                    answer, made = await client.call(connector.method, url, headers, body), True
                if made:
                    self.calls += 1
            except ConnectorFailure as failure:
                if not failure.shared:
                    self.calls += 1
                    if failure.code in _BREAKER_FAILURES or (failure.status is not None and failure.status >= 500):
                        self.failed = True
                future.set_exception(failure)
                future.exception()
                raise
            except BaseException:
                future.cancel()
                raise
            future.set_result(answer)
            return answer
        finally:
            self._landed()

    async def resolve(self, connector: Connector, variables: dict[str, Any]) -> Any:
        answer, size = await self.fetch(connector, variables)
        return _map(connector, answer, size, variables)

    async def complete(self, type_name: str, obj: dict) -> dict | None:
        """The entity `obj` stands for (made by a selection that gave it its key, not every
        field) as its entity connector answers it: one call per entity, or the entities asked in
        one step of the execution collected into batches. Each entity is fetched once per send."""
        resolvers = self.client.schema.model.entity_resolvers.get(type_name, ())
        for connector in resolvers:
            key = _key_of(obj, connector.key_paths)
            if key is None:
                continue
            memo = (id(connector), key)
            future = self._entities.get(memo)
            if future is None:
                representation = _representation(obj, connector.read_paths)
                if connector.batch:
                    future = asyncio.get_running_loop().create_future()
                    self._pending.setdefault(id(connector), (connector, []))[1].append((representation, future))
                    self._activity += 1
                    self._poll()
                else:
                    future = self.spawn(_one_entity(self, connector, representation))
                self._entities[memo] = future
            return await asyncio.shield(future)
        return None

    def _poll(self) -> None:
        """Watch the loop's turns until the batches collected can go (see the module's notes)."""
        if self._polling or self._closed or not self._pending or self._in_flight:
            return
        self._polling = True
        self._seen, self._quiet = self._activity, 0
        asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        self._polling = False
        if self._closed or not self._pending or self._in_flight:
            return  # a call in flight: polled again when the last one lands
        if self._activity != self._seen:
            self._seen, self._quiet = self._activity, 0
        else:
            self._quiet += 1
            if self._quiet >= self._settle_turns:
                self._flush()
                return
        self._polling = True
        asyncio.get_running_loop().call_soon(self._turn)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for connector, members in pending.values():
            size = connector.max_batch or len(members)
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                self.spawn(
                    _batch_entities(self, connector, [r for r, _ in chunk]),
                    lambda done, chunk=chunk, connector=connector: _settle(done, chunk, connector),
                )


def _depth(document: DocumentNode) -> int:
    """How deeply the document's selection sets nest (fragments followed): graphql-core's nested
    gathers take a turn of the loop each, at most two per level (a list, then its objects)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def depth(selection_set: Any, seen: frozenset[str]) -> int:
        deepest = 0
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:
                    deepest = max(deepest, depth(fragment.selection_set, seen | {fragment.name.value}))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, depth(selection.selection_set, seen))
            elif selection.selection_set is not None:
                deepest = max(deepest, 1 + depth(selection.selection_set, seen))
        return deepest

    return max(
        (
            1 + depth(d.selection_set, frozenset())
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        ),
        default=1,
    )


def _map(connector: Connector, answer: Any, size: int, variables: dict[str, Any]) -> Any:
    scope = Scope(variables, budget_for(size))
    try:
        return apply(connector.selection, answer, scope)
    except (MappingError, RecursionError):
        raise ConnectorFailure(CONNECTOR_MAPPING_ERROR, "the answer does not fit the mapping") from None


def _canonical(value: Any) -> Any:
    """A key value as matched: an ID may come back as 7 or "7"."""
    if value.__class__ is bool or value is None:
        return value
    if value.__class__ is int:
        return str(value)
    if value.__class__ is float and value.is_integer():
        return str(int(value))
    if value.__class__ in (str, float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _key_of(value: Any, paths: tuple[tuple[str, ...], ...]) -> tuple | None:
    key = []
    for path in paths:
        current = value
        for step in path:
            current = current.get(step) if current.__class__ is dict else None
        if current is None:
            return None
        key.append(_canonical(current))
    return tuple(key)


def _executable_schema(schema: ConnectSchema) -> GraphQLSchema:
    model: ConnectModel = schema.model
    executable = build_ast_schema(parse(model.executable_sdl), assume_valid_sdl=True)
    for gtype in executable.type_map.values():
        if isinstance(gtype, GraphQLObjectType) and not gtype.name.startswith("__"):
            # a scalar or list where an object belongs fails here, in our words, not as a crash
            gtype.is_type_of = lambda value, info: value.__class__ is dict
    for type_name in model.entity_resolvers:
        gtype = executable.get_type(type_name)
        assert isinstance(gtype, GraphQLObjectType)
        for field_name, field_def in gtype.fields.items():
            if (type_name, field_name) not in model.field_connectors:
                # an entity a selection made with its key only: the rest from its connector
                field_def.resolve = _entity_field_resolver(type_name, field_name)
    for (type_name, field_name), connector in model.field_connectors.items():
        gtype = executable.get_type(type_name)
        assert isinstance(gtype, GraphQLObjectType)
        gtype.fields[field_name].resolve = _field_resolver(connector)
    query = executable.query_type
    assert query is not None
    sdl_answer = {"sdl": schema.composition_sdl}
    query.fields["_service"].resolve = lambda root, info: sdl_answer
    entity_union = executable.get_type("_Entity")
    if isinstance(entity_union, GraphQLUnionType):
        entity_union.resolve_type = lambda value, info, abstract: (
            value.get("__typename") if value.__class__ is dict else None
        )
        query.fields["_entities"].resolve = _entities_resolver(model)
    return executable


def _field_resolver(connector: Connector):
    if connector.kind == "root":

        async def resolve_root(parent: Any, info: Any, **args: Any) -> Any:
            return await info.context.resolve(connector, {"$args": args})

        return resolve_root

    async def resolve_field(parent: Any, info: Any, **args: Any) -> Any:
        return await info.context.resolve(connector, {"$args": args, "$this": parent})

    return resolve_field


def _representation(obj: dict, paths: tuple[tuple[str, ...], ...]) -> dict:
    """Only the key fields of an object: what an entity connector may read from $this/$batch."""
    out: dict[str, Any] = {}
    for path in paths:
        source, target = obj, out
        for step in path[:-1]:
            source = source.get(step) if source.__class__ is dict else None
            target = target.setdefault(step, {})
        target[path[-1]] = source.get(path[-1]) if source.__class__ is dict else None
    return out


async def _one_entity(run: _Run, connector: Connector, representation: dict) -> dict | None:
    if connector.entity_arguments is not None:
        variables = {"$args": {name: representation.get(name) for name in connector.entity_arguments}}
    else:
        variables = {"$this": representation}
    mapped = await run.resolve(connector, variables)
    if mapped is None:
        return None
    if mapped.__class__ is not dict:
        raise ConnectorFailure(CONNECTOR_MAPPING_ERROR, "the answer for an entity is not one object")
    return {**mapped, **representation}


async def _batch_entities(run: _Run, connector: Connector, representations: list[dict]) -> dict[tuple, dict]:
    """One call for many entities: the answer's objects by their key."""
    mapped = await run.resolve(connector, {"$batch": representations})
    if mapped is None:
        mapped = []
    if mapped.__class__ is not list:
        raise ConnectorFailure(CONNECTOR_MAPPING_ERROR, "the answer for a batch of entities is not a list")
    found: dict[tuple, dict] = {}
    for item in mapped:
        if item.__class__ is dict:
            key = _key_of(item, connector.key_paths)
            if key is not None:
                found.setdefault(key, item)
    return found


def _settle(done: asyncio.Future, chunk: list[tuple[dict, asyncio.Future]], connector: Connector) -> None:
    for representation, future in chunk:
        if future.done():
            continue
        if done.cancelled():
            future.cancel()
        elif done.exception() is not None:
            future.set_exception(done.exception())  # type: ignore[arg-type]
            future.exception()
        else:
            item = done.result().get(_key_of(representation, connector.key_paths))
            future.set_result(None if item is None else {**item, **representation})


def _entity_field_resolver(type_name: str, field_name: str):
    # A value already there is returned as is: a coroutine per field of every entity (graphql-core
    # gathers each) cost half the CPU of a REST-backed request (bench/rest.py). Only a field that
    # needs the entity's connector awaits it.
    async def completed(parent: dict, info: Any) -> Any:
        complete = await info.context.complete(type_name, parent)
        if complete is None:
            return None
        for key, value in complete.items():
            parent.setdefault(key, value)
        return complete.get(field_name)

    def resolve(parent: Any, info: Any) -> Any:
        if parent.__class__ is not dict:
            return None
        if field_name in parent:
            return parent[field_name]
        return completed(parent, info)

    return resolve


def _entities_resolver(model: ConnectModel):
    async def picked(task: asyncio.Future, connector: Connector, representation: dict) -> Any:
        found = await asyncio.shield(task)
        item = found.get(_key_of(representation, connector.key_paths))  # type: ignore[arg-type]
        return None if item is None else {**item, **representation}

    def resolve_entities(root: Any, info: Any, representations: list[Any]) -> list[Any]:
        run: _Run = info.context
        items: list[Any] = []
        batches: dict[int, tuple[Connector, list[tuple[int, dict]]]] = {}
        for representation in representations:
            if representation.__class__ is not dict or representation.get("__typename").__class__ is not str:
                items.append(None)
                continue
            type_name = representation["__typename"]
            fields = {k: v for k, v in representation.items() if k != "__typename"}
            connector = next(
                (c for c in model.entity_resolvers.get(type_name, ()) if _key_of(fields, c.key_paths) is not None),
                None,
            )
            if connector is None:
                # an entity without a connector of its own (or a representation lacking its
                # fields): its @connect fields resolve from the representation itself
                items.append(dict(representation) if type_name in model.entity_types else None)
            elif connector.batch:
                batches.setdefault(id(connector), (connector, []))[1].append((len(items), representation))
                items.append(None)
            else:
                items.append(_typed(_one_entity(run, connector, fields), type_name))
        for connector, members in batches.values():
            size = connector.max_batch or len(members)
            for start in range(0, len(members), size):
                chunk = members[start : start + size]
                task = run.spawn(
                    _batch_entities(
                        run, connector, [{k: v for k, v in r.items() if k != "__typename"} for _, r in chunk]
                    )
                )
                for index, representation in chunk:
                    items[index] = picked(task, connector, representation)
        return items

    return resolve_entities


async def _typed(awaitable: Awaitable, type_name: str) -> Any:
    value = await awaitable
    if value.__class__ is dict:
        value["__typename"] = type_name
    return value


__all__ = ["ConnectorFailure", "RestClient"]
