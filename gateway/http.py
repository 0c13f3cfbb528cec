"""The HTTP stage: GraphQL over HTTP with Starlette.

Reads the request (POST JSON, GET query string), negotiates the media type, hands the request to
the current Engine and writes the answer with the status codes of the GraphQL-over-HTTP spec.
It never lets an exception through as a stack trace: every failure is a GraphQL error with a
stable `extensions.code`. The limits of the edge (body sizes and deadlines, per-client rates and
requests in flight) are `http_limits`'s; `/readyz` says whether the gateway can serve correctly
now (a supergraph, and a store that answers).

Around every request: a request id (the client's `x-request-id` when well-formed, else a new
one) in the response's header and in every log line, an access log line (method, path, status,
duration, client id: never a resident's id, a token or variables), CORS (an allow-list of
origins; preflights answered) and CSRF prevention as Apollo Router's (an operation a browser
could send without a preflight must carry a header that needs one).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import collector
from .engine import Engine, RequestError
from .http_limits import (
    AdminAuthLimit,
    Admission,
    EdgeMiddleware,
    HttpLimits,
    PublicRouteLimit,
    address_key,
    over_in_flight,
    over_rate,
    retry_after,
)
from .identity import PUBLIC, Authenticator, IdentityError, Requester
from .persisted import DocumentAsk, DocumentRefusal, PersistedDocuments
from .settings import SIMPLE_CONTENT_TYPES, LoggingSettings, Settings

logger = logging.getLogger("citygate.http")
access_logger = logging.getLogger("citygate.access")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class Readiness:
    """Whether what the gateway cannot serve correctly without (the store) answers, asked at most
    once per `ttl` seconds whatever the number of probes, and waited for at most `timeout`."""

    def __init__(
        self, check: Callable[[], Awaitable[None]], *, what: str = "the store", timeout: float = 1.0, ttl: float = 2.0
    ) -> None:
        self.check = check
        self.what = what
        self.timeout = timeout
        self.ttl = ttl
        self._problem: str | None = None
        self._checked_at = -float("inf")
        self._running: asyncio.Task | None = None

    async def problem(self) -> str | None:
        """None when ready; else what is wrong."""
        if time.monotonic() - self._checked_at < self.ttl:
            return self._problem
        if self._running is None:  # one check at a time: a probe flood waits on the same one
            self._running = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait_for(asyncio.shield(self._running), self.timeout)
        except TimeoutError:
            self._settle(f"{self.what} does not answer within {self.timeout:g} s")
        return self._problem

    async def _run(self) -> None:
        try:
            await self.check()
        except Exception as error:
            self._settle(f"{self.what} does not answer ({type(error).__name__})")
        else:
            self._settle(None)
        finally:
            self._running = None

    def _settle(self, problem: str | None) -> None:
        self._problem = problem
        self._checked_at = time.monotonic()


class GatewayState:
    """The Engine and Authenticator currently served. Swapping either is one assignment."""

    def __init__(
        self, engine: Engine | None = None, *, development: bool = False, authenticator: Authenticator | None = None
    ) -> None:
        self._engine = engine
        self.development = development
        self.authenticator = authenticator
        self.readiness: Readiness | None = None  # set by the app that owns a store
        self.admission: Admission | None = None  # set by create_app
        self.documents: PersistedDocuments | None = (
            None  # APQ and trusted documents (gateway/persisted.py); create_app's default has no store
        )

    @property
    def engine(self) -> Engine | None:
        return self._engine

    @engine.setter
    def engine(self, engine: Engine | None) -> None:
        # the swap: one assignment; requests in flight keep the Engine they started with, which is
        # released once none runs on it (gateway/collector.py)
        retired, self._engine = self._engine, engine
        if engine is not None and engine is not retired:
            collector.serving()
            if retired is not None:
                collector.retire(retired, serving=lambda: self._engine)


def _negotiate(accept: str | None) -> str | None:
    """Pick the response media type; None when the client accepts neither."""
    if not accept:
        return JSON
    best: tuple[float, str] | None = None
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        quality = 1.0
        for parameter in pieces[1:]:
            if parameter.startswith("q="):
                try:
                    quality = float(parameter[2:])
                except ValueError:
                    quality = 0.0
        if media == GRAPHQL_RESPONSE:
            candidate = GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            candidate = JSON
        else:
            continue
        if quality <= 0:
            continue
        if best is None or quality > best[0] or (quality == best[0] and candidate == GRAPHQL_RESPONSE):
            best = (quality, candidate)
    return best[1] if best else None


def _json(body: dict[str, Any] | bytes, status: int, media: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON response: a body, or its bytes already encoded."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, media_type=f"{media}; charset=utf-8", headers=headers)


def _request_error(message: str, code: str, status: int, media: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code}}]}, status, media, headers)


def _edge_refusal(scope: dict, status: int, code: str, message: str) -> tuple[str, bytes]:
    """The edge's refusals in each API's own error shape: the admin API's, or GraphQL's in the negotiated media type."""
    if scope["path"].startswith("/admin/"):
        return JSON, orjson.dumps({"ok": False, "errors": [{"code": code, "message": message}]})
    accept = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"accept"), None)
    media = _negotiate(accept) or JSON
    return f"{media}; charset=utf-8", orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})


# -- request ids and logs -------------------------------------------------------------------------

REQUEST_ID = "citygate.request_id"  # in a request's scope: its id
CLIENT = "citygate.client"  # in a request's scope: the client id it was counted against ("public" for the public)
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("citygate_request_id", default=None)
# a client's own id is kept when it is an id and nothing else: it reaches log lines and the audit log
_WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestLog:
    """Gives each request its id (scope, log lines, `x-request-id` on the answer) and writes the
    access log line once the answer is sent (ASGI, outermost). Only the method, the path without
    its query string (a GET's variables are there), the status, the duration and the client id
    are logged."""

    def __init__(self, app: Any, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"").decode("latin-1")
        request_id = given if _WELL_FORMED_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope[REQUEST_ID] = request_id
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                milliseconds = (time.perf_counter() - started) * 1000
                client = scope.get(CLIENT, "-")
                access_logger.info(
                    "%s %s %s %.1f ms client=%s",
                    scope["method"],
                    scope["path"],
                    status or "-",
                    milliseconds,
                    client,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status or None,
                        "duration_ms": round(milliseconds, 3),
                        "client": client,
                    },
                )
            current_request_id.reset(token)


_ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "client")


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, process id, request
    id, and the access log's fields on its lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker process (server.workers)
        }
        request_id = current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name in _ACCESS_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextLogFormatter(logging.Formatter):
    """Readable lines: time, level, logger, message, and the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = current_request_id.get()
        return f"{text} [request {request_id}]" if request_id is not None else text


def configure_logging(settings: LoggingSettings) -> None:
    """The process's log lines on stderr, in `settings.format`, at `settings.level`; the access log
    at INFO whatever the level (off when `access_log` is false)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if settings.format == "json" else TextLogFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    access_logger.setLevel(logging.INFO if settings.access_log else logging.CRITICAL + 1)


def _csrf_refusal(request: Request, required_headers: tuple[str, ...]) -> str | None:
    """Why an operation request is refused as a possible cross-site request forgery (None: it is
    not). A browser sends GET, and POST with no content type or a simple one, from any page without
    asking the server first (no preflight); such a request must carry one of `required_headers`,
    which no page can add without a preflight that CORS answers."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        essence = content_type.split(";")[0].strip().lower()
        if essence not in SIMPLE_CONTENT_TYPES:
            return None  # a browser asks first (preflight): CORS decides
    if any(request.headers.get(name) for name in required_headers):
        return None
    return (
        "this operation has been blocked as a potential cross-site request forgery: send a Content-Type other than "
        f"{', '.join(SIMPLE_CONTENT_TYPES)} (e.g. application/json), or a non-empty header among {', '.join(required_headers)}"
    )


def create_app(
    state: GatewayState,
    graphiql: GraphiQL | None = None,
    extra_routes: list | None = None,
    limits: HttpLimits | None = None,
    settings: Settings | None = None,
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> Starlette:
    """The HTTP front of `state`; `lifespan` starts and stops what serving needs (gateway/app.py's Gateway)."""
    graphiql = graphiql or GraphiQL()
    graphiql_page = graphiql.html()  # built once: the page and the assets it names do not change
    limits = limits or HttpLimits()
    settings = settings or Settings()
    admission = state.admission = Admission(limits)
    if state.documents is None:
        state.documents = PersistedDocuments.from_settings(settings)
    documents = state.documents
    document_limits = limits.document
    csrf_headers = tuple(name.lower() for name in settings.csrf.required_headers) if settings.csrf.enabled else None

    def client_limits(requester: Requester, request: Request) -> tuple[str, float, int]:
        """Whom a request counts against, and that one's requests per second and in flight. The
        policy may set both per client; the public counts per remote address."""
        client = requester.client
        if client is None:
            return address_key(request.scope), limits.public_rate_limit, limits.max_in_flight
        rate = getattr(client, "rate_limit", None)
        in_flight = getattr(client, "max_in_flight", None)
        return (
            f"client:{client.id}",
            limits.rate_limit if rate is None else rate,
            limits.max_in_flight if in_flight is None else in_flight,
        )

    async def too_many(key: str, rate: float, media: str) -> Response | None:
        wait = await admission.wait_time(key, rate)
        if not wait:
            return None
        return _request_error(over_rate(rate), "RATE_LIMITED", 429, media, {"retry-after": retry_after(wait)})

    async def graphql(request: Request) -> Response:
        accept = request.headers.get("accept")
        media = _negotiate(accept)
        if (
            request.method == "GET"
            and "text/html" in (accept or "")
            and not any(name in request.query_params for name in _DOCUMENT_PARAMETERS)
        ):
            return HTMLResponse(graphiql_page)  # a browser opening the endpoint
        if media is None:
            return _request_error(
                "the Accept header allows no media type this endpoint answers with", "NOT_ACCEPTABLE", 406, JSON
            )
        if csrf_headers is not None:
            refusal = _csrf_refusal(request, csrf_headers)
            if refusal is not None:
                return _request_error(refusal, "CSRF_PREVENTED", 400, media)
        engine = state.engine
        if engine is None:
            return _request_error("no supergraph is loaded yet", "SERVICE_UNAVAILABLE", 503, media)
        # who asks, from the headers alone: a client over its limits costs no body read, no parse
        authenticator = state.authenticator
        try:
            requester = await authenticator.identify(request.headers) if authenticator is not None else PUBLIC
        except IdentityError as refusal:  # counted against the address: guessing keys is limited like the public
            limited = await too_many(address_key(request.scope), limits.public_rate_limit, media)
            if limited is not None:
                return limited
            headers = {"www-authenticate": 'Bearer realm="citygate"'} if refusal.status == 401 else None
            return _request_error(refusal.message, refusal.code, refusal.status, media, headers)
        except Exception:
            logger.exception("identifying the requester failed")
            return _request_error("internal error while serving the request", "INTERNAL_SERVER_ERROR", 500, media)
        key, rate, in_flight = client_limits(requester, request)
        request.scope[CLIENT] = requester.client.id if requester.client is not None else "public"
        limited = await too_many(key, rate, media)
        if limited is not None:
            return limited
        with admission.in_flight(key, in_flight) as admitted:
            if not admitted:
                return _request_error(over_in_flight(in_flight), "RATE_LIMITED", 429, media, {"retry-after": "1"})
            return await answer(request, engine, requester, media)

    async def answer(request: Request, engine: Engine, requester: Requester, media: str) -> Response:
        if request.method == "GET":
            params, error = _params_from_query(request)
            allowed = ("query",)
        else:
            params, error = await _params_from_body(request)
            allowed = ("query", "mutation")
        if error is not None:
            return _request_error(error[0], "BAD_REQUEST", error[1], media)
        assert params is not None
        # the text to run: the request's own, an APQ hash's or a trusted document's (gateway/persisted.py)
        # the policy's mode; a gateway without a policy (no authenticator) has no client to safelist
        mode = (
            state.authenticator.policy.persisted_documents_mode(requester.client)
            if state.authenticator is not None
            else "allow"
        )
        try:
            resolved = await documents.resolve(
                DocumentAsk(params.get("query"), params.get("documentId"), params.get("persistedQuery")),
                requester.recipient,
                mode,
                requester.resident,
            )
        except DocumentRefusal as refusal:
            return _request_error(refusal.message, refusal.code, refusal.status, media, refusal.headers)
        include_plan = state.development and request.headers.get("x-citygate-query-plan", "").lower() in ("1", "true")
        request_id = request.scope.get(REQUEST_ID) or uuid.uuid4().hex
        # production (not --dev): no introspection for the public, no "Did you mean" (both show the schema)
        introspection = document_limits.introspection or ("all" if state.development else "clients")
        suggestions = (document_limits.suggestions or ("on" if state.development else "off")) == "on"
        try:
            response = await engine.run(
                resolved.query,
                params.get("operationName"),
                params.get("variables"),
                allowed_kinds=allowed,
                include_plan=include_plan,
                requester=requester,
                request_id=request_id,
                encode=True,
                limits=document_limits,
                introspection=introspection == "all" or (introspection == "clients" and requester.client is not None),
                suggestions=suggestions,
                max_cost=getattr(requester.client, "max_cost", None),
                report_cost=state.development,
            )
            assert response.encoded is not None
            documents.learn(resolved)  # an APQ registration whose document passed every limit
            return _json(response.encoded, 200, media)
        except RequestError as failure:
            body: dict[str, Any] = {"errors": failure.errors()}
            if failure.code == "METHOD_NOT_ALLOWED":
                return _json(body, 405, media, {"allow": "POST"})
            if failure.code == "SERVICE_UNAVAILABLE":  # it started on an Engine since released: retry now
                return _json(body, 503, media, {"retry-after": "0"})
            if failure.executed:
                body["data"] = None
                return _json(body, 200, media)
            return _json(body, 400 if media == GRAPHQL_RESPONSE else 200, media)
        except Exception:  # a fault of ours (identity, engine, serialisation): say so without details, log them
            logger.exception("request failed")
            return _request_error("internal error while serving the request", "INTERNAL_SERVER_ERROR", 500, media)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_request: Request) -> Response:
        if state.engine is None:
            return PlainTextResponse("no supergraph", status_code=503)
        problem = await state.readiness.problem() if state.readiness is not None else None
        if problem is not None:
            return PlainTextResponse(problem, status_code=503)
        return PlainTextResponse("ready")

    cors = settings.cors
    # routes beside the public limits: those with limits of their own (/graphql: per client, the
    # public per address; /admin/*: keys), the probes, the metrics (loopback or token only)
    unlimited = {"/graphql", "/healthz", "/health", "/readyz", settings.telemetry.metrics_path}

    def exempt(path: str) -> bool:
        return path in unlimited or path.startswith("/admin/")

    # gateway/telemetry.py (metrics, traces): its middleware sees every request, refusals included,
    # inside the request id's; its routes (/metrics) beside ours
    from . import telemetry

    return Starlette(
        middleware=[
            Middleware(RequestLog, access_log=settings.logging.access_log),
            *telemetry.middleware(settings),
            Middleware(
                CORSMiddleware,
                allow_origins=cors.allow_origins,
                allow_methods=cors.allow_methods,
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                expose_headers=cors.expose_headers,
                max_age=cors.max_age,
            ),
            Middleware(EdgeMiddleware, limits=limits, refusal=_edge_refusal),
            Middleware(AdminAuthLimit, limits=limits, admission=lambda: state.admission, refusal=_edge_refusal),
            Middleware(
                PublicRouteLimit, limits=limits, admission=lambda: state.admission, refusal=_edge_refusal, exempt=exempt
            ),
        ],
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/health", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *telemetry.routes(settings),
            *([Mount("/graphiql-assets", app=StaticFiles(directory=str(graphiql.assets)))] if graphiql.local else []),
            *(extra_routes or []),
        ],
        lifespan=lifespan,
    )


_DOCUMENT_PARAMETERS = (
    "query",
    "documentId",
    "extensions",
)  # a GET naming its document (else a browser opening GraphiQL)


def _persisted_query(extensions: Any) -> Any:
    """APQ's extension of a request's `extensions`, None when absent (extensions that are not an
    object are ignored, as before persisted documents)."""
    return extensions.get("persistedQuery") if isinstance(extensions, dict) else None


def _params_from_query(request: Request) -> tuple[dict[str, Any] | None, tuple[str, int] | None]:
    query = request.query_params.get("query") or None
    document_id = request.query_params.get("documentId")
    persisted_query = None
    raw_extensions = request.query_params.get("extensions")
    if raw_extensions:
        with contextlib.suppress(orjson.JSONDecodeError):
            persisted_query = _persisted_query(orjson.loads(raw_extensions))
    if query is None and document_id is None and persisted_query is None:
        return None, ("a GET request needs a 'query' parameter", 400)
    params: dict[str, Any] = {
        "query": query,
        "documentId": document_id,
        "persistedQuery": persisted_query,
        "operationName": request.query_params.get("operationName") or None,
    }
    raw_variables = request.query_params.get("variables")
    if raw_variables:
        try:
            variables = orjson.loads(raw_variables)
        except orjson.JSONDecodeError:
            return None, ("'variables' is not valid JSON", 400)
        if variables is not None and not isinstance(variables, dict):
            return None, ("'variables' must be a JSON object", 400)
        params["variables"] = variables
    return params, None


async def _params_from_body(request: Request) -> tuple[dict[str, Any] | None, tuple[str, int] | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (JSON, GRAPHQL_RESPONSE, "application/graphql+json"):
        return None, ("a POST request needs Content-Type: application/json", 415)
    body = (
        await request.body()
    )  # under the size limit and the deadline of the edge (EdgeMiddleware), or ClientDisconnect
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, ("the request body is not valid JSON", 400)
    if isinstance(payload, list):
        return None, ("batched requests are not supported: send one operation per request", 400)
    if not isinstance(payload, dict):
        return None, ("the request body must be a JSON object", 400)
    query = payload.get("query")
    document_id = payload.get("documentId")
    persisted_query = _persisted_query(payload.get("extensions"))
    if document_id is not None and not isinstance(document_id, str):
        return None, ("'documentId' must be a string", 400)
    if (query is not None or (document_id is None and persisted_query is None)) and (
        not isinstance(query, str) or not query.strip()
    ):
        return None, ("the request body needs a 'query' string (or a 'documentId')", 400)
    operation_name = payload.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return None, ("'operationName' must be a string", 400)
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return None, ("'variables' must be a JSON object", 400)
    return {
        "query": query,
        "documentId": document_id,
        "persistedQuery": persisted_query,
        "operationName": operation_name,
        "variables": variables,
    }, None


GRAPHIQL_FILES = ("graphiql.min.css", "react.production.min.js", "react-dom.production.min.js", "graphiql.min.js")
_CDN = {
    "graphiql.min.css": "https://unpkg.com/graphiql@3.8.3/graphiql.min.css",
    "react.production.min.js": "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
    "react-dom.production.min.js": "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
    "graphiql.min.js": "https://unpkg.com/graphiql@3.8.3/graphiql.min.js",
}


@dataclass(frozen=True)
class GraphiQL:
    """The GraphiQL page: local assets when the folder has them (offline), else a CDN."""

    assets: Path | None = None
    tabs: tuple[dict[str, Any], ...] = ()  # {"query": ..., "variables": ..., "headers": ...}

    @property
    def local(self) -> bool:
        return self.assets is not None and all((self.assets / name).is_file() for name in GRAPHIQL_FILES)

    def html(self) -> str:
        local = self.local
        source = {name: (f"/graphiql-assets/{name}" if local else url) for name, url in _CDN.items()}
        props = {"defaultEditorToolsVisibility": "headers" if any(t.get("headers") for t in self.tabs) else True}
        if self.tabs:
            props["defaultTabs"] = list(self.tabs)
        embedded = json.dumps(props).replace("</", "<\\/")
        return _GRAPHIQL_PAGE.format(
            css=source["graphiql.min.css"],
            react=source["react.production.min.js"],
            react_dom=source["react-dom.production.min.js"],
            graphiql=source["graphiql.min.js"],
            props=embedded,
        )


_GRAPHIQL_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Citygate GraphiQL</title>
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
  <link rel="stylesheet" href="{css}">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{react}"></script>
  <script src="{react_dom}"></script>
  <script src="{graphiql}"></script>
  <script>
    // Automatic persisted queries (gateway/persisted.py): the SHA-256 of the document first, the
    // document itself only when the gateway does not have it yet. crypto.subtle exists only on
    // secure origins (https, localhost, 127.0.0.1): elsewhere every document is sent whole.
    const url = window.location.pathname;
    const whole = GraphiQL.createFetcher({{ url }});
    async function sha256(text) {{
      const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
      return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
    }}
    async function fetcher(params, options) {{
      if (!(window.crypto && crypto.subtle) || typeof params.query !== 'string') return whole(params, options);
      const headers = Object.assign({{ 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' }},
                                    (options && options.headers) || {{}});
      const persistedQuery = {{ version: 1, sha256Hash: await sha256(params.query) }};
      const send = async (body) => (await fetch(url, {{ method: 'POST', headers, body: JSON.stringify(body) }})).json();
      const asked = {{ operationName: params.operationName, variables: params.variables }};
      const answer = await send(Object.assign({{ extensions: {{ persistedQuery }} }}, asked));
      const codes = (answer.errors || []).map((error) => error.extensions && error.extensions.code);
      if (codes.includes('PERSISTED_QUERY_NOT_FOUND')) return send(Object.assign({{ query: params.query, extensions: {{ persistedQuery }} }}, asked));
      if (codes.includes('PERSISTED_QUERY_NOT_SUPPORTED')) return send(Object.assign({{ query: params.query }}, asked));
      return answer;
    }}
    const props = {props};
    ReactDOM.createRoot(document.getElementById('graphiql'))
      .render(React.createElement(GraphiQL, Object.assign({{ fetcher, isHeadersEditorEnabled: true }}, props)));
  </script>
</body>
</html>
"""
