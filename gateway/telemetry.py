"""Metrics (Prometheus) and traces (OpenTelemetry) of the gateway's stages.

The stages call the hook functions of this module (`stage`, `planned`, `fetch_started`, ...) at
the points where something worth counting happened; each is a no-op costing one global read while
no `Telemetry` is installed. `routes(settings)` serves `/metrics` (behind a bearer token when one
is configured, else to loopback peers only) and `middleware(settings)` counts and traces each GraphQL request; both install the
one `Telemetry` built from the settings' `telemetry` section.

Traces are exported only when an OTLP endpoint is configured (or a test hands an exporter): without
one there is no tracer, no span object and no trace header. Subgraphs and REST connectors receive
the W3C `traceparent` of their fetch's span (added by an aiohttp trace hook on the subgraph
sessions, see `trace_configs`); a client's own `traceparent` is not followed: a trace id chosen by a
client and passed on to partners would let them link that client's requests.

This module must never put a personal value in a label or a span attribute: no resident id, no
variable, no document text, no query string, no token, no subgraph's error text. Labels come from
the gateway's own vocabulary (codes, outcomes, reasons) or from names the operator controls
(subgraphs, policy clients, operations that planned), each truncated and capped in distinct values:
a client cannot grow the registry without bound.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

import orjson
from cachetools import LRUCache
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .settings import Settings, TelemetrySettings

GRAPHQL_PATH = "/graphql"
OTHER = "(other)"  # any label value past a label's cap
UNIDENTIFIED = "(unidentified)"  # a request answered before its requester was known
UNPLANNED = "(unplanned)"  # a request refused before its operation planned
ANONYMOUS = "(anonymous)"  # a planned operation without a name
_LABEL_LENGTH = 64
_CLIENT_CAP = 100
_OPERATION_CAP = 200
_SUBGRAPH_CAP = 200
_CODE_CAP = 64
_REASON_CAP = 32
_CODE = re.compile(rb"^[A-Z][A-Z0-9_]{0,47}$")
_PEEKED = 4096  # bytes of a refusal's body read for its code
_METHODS = frozenset(("GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"))

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


def _section(settings: Settings | TelemetrySettings | None) -> TelemetrySettings:
    """The telemetry section (gateway/settings.py, its one definition) of `settings`: the whole
    settings, the section itself, or None (the defaults)."""
    if settings is None:
        return TelemetrySettings()
    if isinstance(settings, TelemetrySettings):
        return settings
    return settings.telemetry


class _BoundedLabel:
    """Label values for one label: truncated, and past `cap` distinct values, OTHER."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        label = self.seen.get(value)
        if label is None:
            if len(self.seen) >= self.cap:
                return OTHER
            label = self.seen[value] = value[:_LABEL_LENGTH]
        return label


class _RequestRecord:
    """What the stages learn about one GraphQL request, for its metrics and its span."""

    __slots__ = ("client", "code", "operation", "span", "traced")

    def __init__(self, span: Any) -> None:
        self.client = UNIDENTIFIED
        self.operation = UNPLANNED
        self.code: str | None = None
        self.span = span
        # sampled: the stages' spans are recorded; else none is even created (a span costs some
        # 30 µs in the SDK and as much again to export: a heavy request has twenty)
        self.traced = span is not None and span.is_recording()


_request: ContextVar[_RequestRecord | None] = ContextVar("citygate_telemetry_request", default=None)

# cache lookups (hits, misses), counted whether or not metrics are served: plain integers, read at
# each scrape (monotonic across Telemetry instances and Engines)
_cache_counts: dict[str, list[int]] = {
    "document": [0, 0],
    "plan": [0, 0],
    "consent": [0, 0],
    "apq": [0, 0],
    "trusted_document": [0, 0],
}


class _CacheCollector:
    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "citygate_cache_lookups",
            "Cache lookups by cache and result (hit rate: hit / all)",
            labels=["cache", "result"],
        )
        for cache, (hits, misses) in _cache_counts.items():
            family.add_metric([cache, "hit"], hits)
            family.add_metric([cache, "miss"], misses)
        yield family


class _LoopCounter:
    """A labelled counter kept as plain numbers by the event loop's thread (the only one that
    serves requests), read at each scrape: no lock per increment, unlike prometheus_client's
    own metrics (a heavy request moves some thirty of them)."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family


class _LoopHistogram:
    """A labelled histogram kept like _LoopCounter: per label values, a count per bucket and the sum."""

    __slots__ = ("bounds", "documentation", "labels", "name", "series")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labels, self.bounds = name, documentation, labels, bounds
        self.series: dict[tuple[str, ...], list[float]] = {}  # counts per bucket (+Inf last), then the sum

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, value)] += 1  # Prometheus buckets count values <= their bound
        series[-1] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, series in list(self.series.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), series[:-1], strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(labels, buckets, series[-1])
        return family


class _LoopCollector:
    def __init__(self, metrics: tuple[_LoopCounter | _LoopHistogram, ...]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        for metric in self.metrics:
            yield metric.family()


def _counting(cache: str) -> type[LRUCache]:
    counts = _cache_counts[cache]

    class CountingLRUCache(LRUCache):
        """An LRUCache that counts what `get` finds (the planner keeps no statistics of its own)."""

        def get(self, key, default=None):
            if key in self:
                if _current is not None:
                    counts[0] += 1
                return self[key]
            if _current is not None:
                counts[1] += 1
            return default

    return CountingLRUCache


_COUNTING = {"document": _counting("document"), "plan": _counting("plan")}


class Telemetry:
    """The metrics registry and the tracer of one gateway process, built from its settings."""

    def __init__(self, settings: Settings | TelemetrySettings | None = None, *, span_exporter: Any = None) -> None:
        self.settings = _section(settings)
        self.metrics = self.settings.metrics
        disable_created_metrics()  # no `_created` series beside each counter: half the scrape, nothing lost
        self.registry = CollectorRegistry()
        self._clients = _BoundedLabel(_CLIENT_CAP)
        self._operations = _BoundedLabel(_OPERATION_CAP)
        self._subgraphs = _BoundedLabel(_SUBGRAPH_CAP)
        self._codes = _BoundedLabel(_CODE_CAP)
        self._reasons = _BoundedLabel(_REASON_CAP)
        registry = self.registry
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        registry.register(_CacheCollector())
        # what every request and every fetch moves: plain numbers (see _LoopCounter)
        self.requests = _LoopCounter(
            "citygate_requests", "GraphQL requests by client, operation and code", ("client", "operation", "code")
        )
        self.request_seconds = _LoopHistogram(
            "citygate_request_duration_seconds", "Time to answer a GraphQL request", ("client",), _LATENCY_BUCKETS
        )
        self.fetches = _LoopCounter(
            "citygate_subgraph_fetches",
            "Subgraph fetches by subgraph and outcome (ok, errors, failed, refused)",
            ("subgraph", "outcome"),
        )
        self.fetch_seconds = _LoopHistogram(
            "citygate_subgraph_fetch_duration_seconds", "Time of a subgraph fetch", ("subgraph",), _LATENCY_BUCKETS
        )
        self.decisions = _LoopCounter(
            "citygate_privacy_decisions",
            "Privacy decisions by outcome (disclosed, withheld) and reason",
            ("outcome", "reason"),
        )
        registry.register(
            _LoopCollector((self.requests, self.request_seconds, self.fetches, self.fetch_seconds, self.decisions))
        )
        self.audit_queue = Gauge(
            "citygate_audit_queue_depth", "Requests waiting for the next audit commit", registry=registry
        )
        self.audit_seconds = Histogram(
            "citygate_audit_commit_duration_seconds",
            "Time of one audit log commit (group commit)",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self.audit_commits = Counter(
            "citygate_audit_commits", "Audit log commits by outcome (ok, failed)", ["outcome"], registry=registry
        )
        self.audit_entries = Counter("citygate_audit_entries", "Audit log entries committed", registry=registry)
        self.tracer: Any = None
        self._provider: Any = None
        self._propagator: Any = None
        self._epoch_offset = time.time_ns() - time.perf_counter_ns()
        if span_exporter is not None or self.settings.otlp_endpoint:
            self._start_tracing(span_exporter)

    @property
    def active(self) -> bool:
        return self.metrics or self.tracer is not None

    def _start_tracing(self, span_exporter: Any) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider, sampling
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        ratio = self.settings.traces_sample_ratio
        # the request span is always a root (see the module's docstring): the ratio decides for its trace
        sampler = None if ratio is None else sampling.ParentBased(sampling.TraceIdRatioBased(ratio))
        provider = TracerProvider(
            resource=Resource.create({"service.name": self.settings.service_name}), sampler=sampler
        )
        if span_exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(self.settings.otlp_endpoint or "")))
            )
        self._provider = provider
        self.tracer = provider.get_tracer("citygate")
        self._propagator = TraceContextTextMapPropagator()

    def close(self) -> None:
        """Flush and stop the exporter (spans still buffered are sent). The tracer stays: a request
        still in flight may end its spans (they go nowhere)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None

    # -- labels ------------------------------------------------------------------------------------

    def client_label(self, requester: Any) -> str:
        client = getattr(requester, "client", None)
        return "public" if client is None else self._clients(client.id)

    def span_at(self, name: str, started: int, ended: int, attributes: dict[str, Any] | None = None) -> None:
        """A span of a stage already over (from perf_counter_ns times), child of the current one."""
        span = self.tracer.start_span(name, start_time=started + self._epoch_offset, attributes=attributes)
        span.end(end_time=ended + self._epoch_offset)

    def metrics_response(self, request: Request) -> Response:
        """The metrics, to whoever shows the token when one is set; without one, only to a peer on
        a loopback address (fail closed: a gateway whose port is public does not publish its
        traffic's figures because nobody thought of a token). The peer is the ASGI scope's client:
        the connection's, or X-Forwarded-For's when uvicorn trusts the connection as a proxy's."""
        token = self.settings.metrics_token.get_secret_value() if self.settings.metrics_token is not None else ""
        if token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                body = {
                    "errors": [
                        {
                            "message": "the metrics need the operator's bearer token",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                }
                return Response(
                    orjson.dumps(body),
                    401,
                    media_type="application/json",
                    headers={"www-authenticate": 'Bearer realm="metrics"'},
                )
        elif not _from_loopback(request.scope) or any(name in request.headers for name in _FORWARDING_HEADERS):
            # a request that came through a proxy is no local scrape, whatever address the proxy
            # (or a client writing X-Forwarded-For to a server that trusts every proxy) names
            message = "without telemetry.metrics_token the metrics are served on loopback addresses only"
            body = {"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]}
            return Response(orjson.dumps(body), 403, media_type="application/json")
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    # -- the request (middleware) ------------------------------------------------------------------

    def finish_request(self, record: _RequestRecord, status: int, first_body: bytes, seconds: float) -> None:
        code = record.code
        if code is None:
            code = _code_of(status, first_body)
        code = self._codes(code)
        if self.metrics:
            self.requests.add((record.client, record.operation, code))
            self.request_seconds.observe((record.client,), seconds)
        span = record.span
        if record.traced:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("citygate.code", code)
            span.set_attribute("citygate.client", record.client)
            if record.operation != UNPLANNED:
                span.set_attribute("graphql.operation.name", record.operation)
            if status >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR))


_FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def _from_loopback(scope: Any) -> bool:
    """Whether the request's connection comes from a loopback address (127.0.0.0/8, ::1, or an
    IPv4-mapped loopback); no peer known (a Unix socket, a test transport without one): no."""
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces URL: a base URL (no path) gets the standard /v1/traces."""
    stripped = endpoint.rstrip("/")
    if stripped.count("/") <= 2:  # scheme://host[:port]
        return stripped + "/v1/traces"
    return endpoint


def _code_of(status: int, body: bytes) -> str:
    """A request's code when no stage named one: OK; PARTIAL for an answer with errors; for a
    refusal of the HTTP layer, its GraphQL error's code (only a code-shaped one), else HTTP_<status>."""
    if status == 200:
        return "PARTIAL" if body.startswith(b'{"errors"') else "OK"
    if body.startswith(b'{"') and len(body) <= _PEEKED:
        try:
            first = orjson.loads(body).get("errors", [{}])[0]
            code = first.get("extensions", {}).get("code") or first.get("code")
        except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
            code = None
        if isinstance(code, str) and _CODE.match(code.encode()):
            return code
    return f"HTTP_{status}"


_current: Telemetry | None = None


def current() -> Telemetry | None:
    return _current


def install(telemetry: Telemetry | None) -> None:
    """Serve `telemetry` from now on (None: telemetry off); the previous one is closed."""
    global _current
    previous, _current = _current, (telemetry if telemetry is not None and telemetry.active else None)
    if previous is not None and previous is not telemetry:
        previous.close()


def configure(settings: Settings | TelemetrySettings | None) -> Telemetry | None:
    """The installed Telemetry for `settings`: the one already installed if built from equal
    settings (routes() and middleware() share it), else a new one."""
    section = _section(settings)
    if _current is not None and _current.settings == section:
        return _current
    install(Telemetry(section))
    return _current


def shutdown() -> None:
    install(None)


# -- what the HTTP app mounts --------------------------------------------------------------------


def routes(settings: Settings | TelemetrySettings | None) -> list[Route]:
    """`/metrics` (settings.telemetry.metrics_path) when metrics are on; else none."""
    telemetry = configure(settings)
    if telemetry is None or not telemetry.metrics:
        return []

    async def metrics(request: Request) -> Response:
        # the Telemetry installed now (its registry, its token): the hooks report to that one
        return (_current or telemetry).metrics_response(request)

    return [Route(telemetry.settings.metrics_path, metrics, methods=["GET"])]


def middleware(settings: Settings | TelemetrySettings | None) -> list[Middleware]:
    """Counts and traces every request to /graphql; none when telemetry is off."""
    telemetry = configure(settings)
    return [Middleware(TelemetryMiddleware, telemetry=telemetry)] if telemetry is not None else []


class TelemetryMiddleware:
    """Around each request to /graphql: its span (a new trace), its latency, its count."""

    def __init__(self, app: Callable, telemetry: Telemetry | None = None) -> None:
        self.app = app
        self.telemetry = telemetry  # installed by middleware(); the hooks report to the installed one

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        telemetry = _current
        if telemetry is None or scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        span = None
        token = None
        if telemetry.tracer is not None:
            # a root: the client's own traceparent is not followed (see the module's docstring)
            method = scope["method"] if scope["method"] in _METHODS else "_OTHER"  # the client's own word: bounded
            span = telemetry.tracer.start_span(
                f"{method} {GRAPHQL_PATH}",
                context=otel_context.Context(),
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": GRAPHQL_PATH},
            )
            token = otel_context.attach(trace.set_span_in_context(span))
        record = _RequestRecord(span)
        record_token = _request.set(record)
        status = 500
        first_body: bytes | None = None

        async def watching_send(message: dict) -> None:
            nonlocal status, first_body
            if message["type"] == "http.response.start":
                status = message["status"]
                if span is not None:
                    for name, value in message.get("headers") or ():
                        if name == b"x-request-id":
                            span.set_attribute("citygate.request_id", value.decode("latin-1"))
            elif message["type"] == "http.response.body" and first_body is None:
                first_body = message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            _request.reset(record_token)
            telemetry.finish_request(record, status, first_body or b"", time.perf_counter() - started)
            if span is not None:
                otel_context.detach(token)
                span.end()


# -- hooks the stages call (each a no-op while no Telemetry is installed) ---------------------------


def now() -> int:
    """A start time for `stage` and `planned` (0 while telemetry is off)."""
    return time.perf_counter_ns() if _current is not None else 0


def stage(name: str, started: int) -> int:
    """A stage of the request is over (since `started`): its span. Returns now, the next one's start."""
    telemetry = _current
    if telemetry is None:
        return 0
    ended = time.perf_counter_ns()
    if started and _traced():
        telemetry.span_at(name, started, ended)
    return ended


def _traced() -> bool:
    """Whether the request being served is traced (sampled)."""
    record = _request.get()
    return record is not None and record.traced


def planned(requester: Any, prepared: Any, started: int) -> None:
    """The operation planned (planning began at `started`): the request's client and operation labels."""
    telemetry = _current
    if telemetry is None:
        return
    ended = time.perf_counter_ns()
    record = _request.get()
    if record is not None:
        record.client = telemetry.client_label(requester)
        name = prepared.name
        record.operation = telemetry._operations(name) if name else ANONYMOUS
        if record.traced:
            record.span.set_attribute("graphql.operation.type", prepared.kind)
            if started:
                telemetry.span_at("graphql.plan", started, ended, {"graphql.operation.type": prepared.kind})


def refused(requester: Any, code: str) -> None:
    """The engine refused the request with `code` (one of the gateway's own codes)."""
    telemetry = _current
    if telemetry is None:
        return
    record = _request.get()
    if record is not None:
        record.client = telemetry.client_label(requester)
        record.code = code


def begin(name: str) -> Any:
    """A span that the stages after this call nest under, until `end` (None while not tracing)."""
    telemetry = _current
    if telemetry is None or not _traced():
        return None
    span = telemetry.tracer.start_span(name)
    return span, otel_context.attach(trace.set_span_in_context(span))


def end(handle: Any) -> None:
    if handle is not None:
        span, token = handle
        otel_context.detach(token)
        span.end()


def fetch_started(subgraph: str) -> Any:
    """A subgraph fetch is about to leave; its span is current (its traceparent goes with it)."""
    telemetry = _current
    if telemetry is None:
        return None
    if not _traced():
        return (subgraph, time.perf_counter(), None)
    span = telemetry.tracer.start_span(
        "subgraph.fetch", kind=trace.SpanKind.CLIENT, attributes={"citygate.subgraph": telemetry._subgraphs(subgraph)}
    )
    return (subgraph, time.perf_counter(), (span, otel_context.attach(trace.set_span_in_context(span))))


def fetch_answered(handle: Any, answer: dict) -> None:
    """The fetch got a GraphQL answer (with errors or not)."""
    if handle is not None:
        _fetch_done(handle, "errors" if answer.get("errors") else "ok")


def fetch_failed(handle: Any, code: str) -> None:
    """The fetch got no usable answer; `code` is the error's (SUBGRAPH_UNAVAILABLE: nothing was sent)."""
    if handle is not None:
        _fetch_done(handle, "refused" if code == "SUBGRAPH_UNAVAILABLE" else "failed")


def _fetch_done(handle: tuple, outcome: str) -> None:
    subgraph, started, traced = handle
    seconds = time.perf_counter() - started
    telemetry = _current
    if telemetry is not None and telemetry.metrics:
        label = telemetry._subgraphs(subgraph)
        telemetry.fetches.add((label, outcome))
        telemetry.fetch_seconds.observe((label,), seconds)
    if traced is not None:
        span, token = traced
        otel_context.detach(token)
        span.set_attribute("citygate.outcome", outcome)
        if outcome != "ok":
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end()


def privacy_settled(handle: Any, withheld: list[dict], disclosures: list) -> None:
    """A response's privacy decisions are final: withheld values by reason; audited disclosures
    (one per subject and kind of basis: policy, consent) by that kind. Ends the `begin` span."""
    telemetry = _current
    if telemetry is not None and telemetry.metrics:
        _count_withheld(telemetry, withheld)
        kinds: dict[str, int] = {}
        for disclosure in disclosures:
            for kind in {basis.split(":", 1)[0] for basis in disclosure.basis}:
                kinds[kind] = kinds.get(kind, 0) + 1
        for kind, count in kinds.items():
            telemetry.decisions.add(("disclosed", telemetry._reasons(kind)), count)
    if handle is not None:
        handle[0].set_attribute("citygate.withheld", len(withheld))
        handle[0].set_attribute("citygate.disclosed_subjects", len(disclosures))
        end(handle)


def flows_withheld(withheld: list[dict]) -> None:
    """Values an entity fetch did not send to a subgraph (privacy/_flows.py), by reason."""
    telemetry = _current
    if telemetry is not None and telemetry.metrics:
        _count_withheld(telemetry, withheld, "flow-")


def _count_withheld(telemetry: Telemetry, withheld: list[dict], prefix: str = "") -> None:
    reasons: dict[Any, int] = {}
    for entry in withheld:
        reason = entry.get("reason")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in reasons.items():
        telemetry.decisions.add(("withheld", telemetry._reasons(f"{prefix}{reason}")), count)


def consent_cache(hit: bool) -> None:
    """The consent ledger's cache held a subject's consents (hit) or the store must be read (miss)."""
    if _current is not None:
        _cache_counts["consent"][0 if hit else 1] += 1


def cache_lookup(cache: str, hit: bool) -> None:
    """A lookup in the persisted documents' caches (gateway/persisted.py): "apq" (a hash sent
    alone) or "trusted_document" (this process's memory, a document found or an id known missing;
    a miss asks Redis or the store)."""
    if _current is not None:
        _cache_counts[cache][0 if hit else 1] += 1


def watch_planner(planner: Any) -> None:
    """Count the lookups of the planner's document and plan caches (while telemetry is on)."""
    if _current is None:
        return
    for attribute, cache in (("_documents", "document"), ("_plans", "plan")):
        found = getattr(planner, attribute, None)
        if type(found) is LRUCache:
            found.__class__ = _COUNTING[cache]


def audit_queued(depth: int) -> None:
    telemetry = _current
    if telemetry is not None and telemetry.metrics:
        telemetry.audit_queue.set(depth)


def audit_commit_started(entries: int) -> Any:
    """An audit commit of `entries` entries begins (its span, a child of the first waiting request's)."""
    telemetry = _current
    if telemetry is None:
        return None
    span = telemetry.tracer.start_span("audit.commit", attributes={"citygate.entries": entries}) if _traced() else None
    return entries, time.perf_counter(), span


def audit_committed(handle: Any, ok: bool) -> None:
    if handle is None:
        return
    entries, started, span = handle
    telemetry = _current
    if telemetry is not None and telemetry.metrics:
        telemetry.audit_seconds.observe(time.perf_counter() - started)
        telemetry.audit_commits.labels("ok" if ok else "failed").inc()
        if ok:
            telemetry.audit_entries.inc(entries)
    if span is not None:
        if not ok:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end()


def trace_configs() -> list:
    """aiohttp trace hooks for the subgraph sessions: the current span's `traceparent` on every
    request (subgraphs and REST connectors). None while not tracing: no cost per request."""
    telemetry = _current
    if telemetry is None or telemetry.tracer is None:
        return []
    import aiohttp

    async def add_traceparent(_session: Any, _context: Any, params: Any) -> None:
        active = _current
        if (
            active is not None
            and active._propagator is not None
            and trace.get_current_span().get_span_context().is_valid
        ):
            active._propagator.inject(params.headers)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(add_traceparent)
    return [config]
