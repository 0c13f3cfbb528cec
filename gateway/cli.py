"""The `citygate` command line."""

from __future__ import annotations

import copy
import gc
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from . import collector
from .cli_documents import documents_app
from .supergraph import SupergraphError

app = typer.Typer(help="Citygate: a consent-aware GraphQL federation gateway.", no_args_is_help=True)
console = Console(stderr=True)


def _one_line(text: str) -> str:
    """A message on one line, as editors, CI and log readers take it: a GraphQL error's excerpt of
    the source becomes its location, a YAML error's excerpt of the file and SQLAlchemy's link go."""
    lines = [line.strip() for line in text.splitlines()]
    kept: list[str] = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        location = re.fullmatch(r"GraphQL request:(\d+):(\d+)", line)
        if location is not None:
            kept.append(f"(at {location[1]}:{location[2]})")
        elif not line or set(line) <= {"^", " "} or re.match(r"\d+ \|", line) or line.startswith("|"):
            continue  # blank, a caret, a GraphQL excerpt's line
        elif following and set(following) <= {"^", " "}:
            continue  # the excerpt a caret points into
        elif not line.startswith("(Background on this error"):
            kept.append(line)
    return " ".join(kept)


def _fail(message: str, exit_code: int = 1) -> NoReturn:
    """One red line on stderr (the message's data escaped: `[parking]` is not markup), and exit."""
    console.print(f"[red]{escape(_one_line(message))}[/red]", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        _fail(f"cannot read {path}: {error.strerror}", 2)


def _json_object_option(option: str, value: str | None) -> dict | None:
    """An option given as a JSON object (None when not given); anything else is one line and exit code 2."""
    if value is None or not value.strip():
        return None
    try:
        parsed = json.loads(value)
    except ValueError as error:
        console.print(f"{option} is not JSON: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not isinstance(parsed, dict):
        console.print(f"{option} must be a JSON object", highlight=False, markup=False)
        raise typer.Exit(2)
    return parsed


def _operator_key() -> str:
    import os

    from .registry import new_key

    key = os.environ.get("CITYGATE_OPERATOR_KEY")
    if key:
        return key
    key = new_key("cgo")
    console.print(
        f"[yellow]CITYGATE_OPERATOR_KEY is not set: this run's operator key is[/yellow] {escape(key)}", highlight=False
    )
    return key


def _policy(path: Path | None):
    from .policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as error:
        _fail("the policy file is invalid: " + "; ".join(error.problems), 2)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="CITYGATE_CONFIG",
            help="The settings file (citygate.yaml); options and CITYGATE_* variables override it.",
        ),
    ] = None,
    supergraph: Annotated[Path | None, typer.Option(help="A composed supergraph in Apollo's format.")] = None,
    owner: Annotated[
        list[str] | None,
        typer.Option(
            help="With --supergraph: SUBGRAPH=OWNER, the party owning a subgraph (repeatable; by default each subgraph is its own owner)."
        ),
    ] = None,
    connectors: Annotated[
        Path | None, typer.Option(help="Compose the connectors of this folder (and the registered ones).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Store URL: sqlite:///file.db (one process) or postgresql://... (env CITYGATE_STORE; sqlite:///citygate.db)"
        ),
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="The operator's policy file (YAML).")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on. (env CITYGATE_HOST; 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on. (env CITYGATE_PORT; 4000)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes sharing the port, one per core; more than 1 needs PostgreSQL. (env CITYGATE_WORKERS; 1)"
        ),
    ] = None,
    dev: Annotated[
        bool | None,
        typer.Option(
            "--dev", help="Development mode: query plans on request, introspection and suggestions for everyone."
        ),
    ] = None,
    subgraph_sharing: Annotated[
        bool | None,
        typer.Option(
            "--subgraph-sharing/--no-subgraph-sharing",
            help="Identical subgraph requests in flight at once share one call (they carry no requester's identity). [default: on]",
        ),
    ] = None,
    graphiql_assets: Annotated[
        Path | None,
        typer.Option(help="GraphiQL's files (else it loads them from a CDN). [default: .citygate/graphiql]"),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level. (env CITYGATE_LOG_LEVEL; warning)")] = None,
    log_format: Annotated[
        str | None, typer.Option(help="Log lines: text or json. (env CITYGATE_LOG_FORMAT; text)")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest /graphql request body. (env CITYGATE_MAX_BODY_BYTES; 2 MiB)")
    ] = None,
    admin_max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest /admin request body. (env CITYGATE_ADMIN_MAX_BODY_BYTES; 1 MiB)")
    ] = None,
    header_timeout: Annotated[
        float | None, typer.Option(help="Seconds for a request's headers. (env CITYGATE_HEADER_TIMEOUT; 10)")
    ] = None,
    body_timeout: Annotated[
        float | None, typer.Option(help="Seconds for a request's body. (env CITYGATE_BODY_TIMEOUT; 10)")
    ] = None,
    keep_alive_timeout: Annotated[
        float | None, typer.Option(help="Seconds an idle connection stays open. (env CITYGATE_KEEP_ALIVE_TIMEOUT; 5)")
    ] = None,
    write_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds in which a client must take 64 KiB of its answer (or all). (env CITYGATE_WRITE_TIMEOUT; 30)"
        ),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Requests per second per client (the policy may set its own); 0: none. (env CITYGATE_RATE_LIMIT; 0)"
        ),
    ] = None,
    public_rate_limit: Annotated[
        float | None,
        typer.Option(
            help="Requests per second per remote address of the public (queries and the public records routes: /audit/head, the JWKS, the privacy centre, ...); 0: none. (env CITYGATE_PUBLIC_RATE_LIMIT; 0)"
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(help="Requests in flight per client or public address; 0: none. (env CITYGATE_MAX_IN_FLIGHT; 0)"),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Share rate limits between replicas through Redis. (env CITYGATE_REDIS_URL)")
    ] = None,
    admin_auth_failures: Annotated[
        int | None,
        typer.Option(
            help="Refused /admin keys a minute per address before 429; 0: none. (env CITYGATE_ADMIN_AUTH_FAILURES; 10)"
        ),
    ] = None,
    store_connect_timeout: Annotated[
        float | None, typer.Option(help="Seconds to connect to the store. (env CITYGATE_STORE_CONNECT_TIMEOUT; 5)")
    ] = None,
    store_statement_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds for one store statement or lock. (env CITYGATE_STORE_STATEMENT_TIMEOUT; 5)"),
    ] = None,
    max_document_size: Annotated[
        int | None,
        typer.Option(help="Characters in a document, checked before parsing. (env CITYGATE_MAX_DOCUMENT_SIZE; 65536)"),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens in a document. (env CITYGATE_MAX_TOKENS; 15000)")
    ] = None,
    max_depth: Annotated[
        int | None, typer.Option(help="Fields on an operation's longest path. (env CITYGATE_MAX_DEPTH; 32)")
    ] = None,
    max_fields: Annotated[
        int | None, typer.Option(help="Fields once fragments are expanded. (env CITYGATE_MAX_FIELDS; 2000)")
    ] = None,
    max_aliases: Annotated[
        int | None, typer.Option(help="Aliases, fragments expanded. (env CITYGATE_MAX_ALIASES; 100)")
    ] = None,
    max_root_fields: Annotated[
        int | None, typer.Option(help="Root fields, fragments expanded. (env CITYGATE_MAX_ROOT_FIELDS; 20)")
    ] = None,
    max_variables_depth: Annotated[
        int | None, typer.Option(help="Nesting of the variables. (env CITYGATE_MAX_VARIABLES_DEPTH; 32)")
    ] = None,
    max_variables_values: Annotated[
        int | None, typer.Option(help="Values in the variables. (env CITYGATE_MAX_VARIABLES_VALUES; 10000)")
    ] = None,
    planning_timeout: Annotated[
        float | None, typer.Option(help="Seconds to plan one operation. (env CITYGATE_PLANNING_TIMEOUT; 2)")
    ] = None,
    max_cost: Annotated[
        int | None,
        typer.Option(help="Estimated cost of one operation (demand control); 0: none. (env CITYGATE_MAX_COST; 50000)"),
    ] = None,
    default_list_size: Annotated[
        int | None,
        typer.Option(help="List size assumed when no argument gives it. (env CITYGATE_DEFAULT_LIST_SIZE; 10)"),
    ] = None,
    max_subgraph_answer_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest answer read from a GraphQL subgraph; past it the subgraph's fetch fails. (env CITYGATE_MAX_SUBGRAPH_ANSWER_BYTES; 16 MiB)"
        ),
    ] = None,
    introspection: Annotated[
        str | None,
        typer.Option(
            help="Who may introspect: all, clients (identified clients, not the public), none. (env CITYGATE_INTROSPECTION; "
            "clients, all with --dev)"
        ),
    ] = None,
    suggestions: Annotated[
        str | None,
        typer.Option(
            help="'Did you mean' in validation errors: on, off. (env CITYGATE_SUGGESTIONS; off, on with --dev)"
        ),
    ] = None,
) -> None:
    """Serve a supergraph at /graphql: a composed file, or connectors with the admin API.

    Every setting is read from --config's file, then CITYGATE_* variables, then these options
    (docs/operators.md, "Settings")."""
    import os

    from .http import configure_logging
    from .settings import SettingsError, load_settings

    owners: dict[str, str] | None = None
    if owner:
        owners = {}
        for entry in owner:
            subgraph_name, _, owner_name = entry.partition("=")
            if not subgraph_name or not owner_name:
                console.print(f"--owner takes SUBGRAPH=OWNER, not {entry!r}", markup=False)
                raise typer.Exit(1)
            owners[subgraph_name] = owner_name
    flags = {
        "supergraph": supergraph,
        "connectors": connectors,
        "policy": policy,
        "owners": owners,
        "store.url": store,
        "store.connect_timeout": store_connect_timeout,
        "store.statement_timeout": store_statement_timeout,
        "server.host": host,
        "server.port": port,
        "server.workers": workers,
        "server.dev": dev,
        "server.subgraph_sharing": subgraph_sharing,
        "server.graphiql_assets": graphiql_assets,
        "server.introspection": introspection,
        "server.suggestions": suggestions,
        "logging.level": log_level,
        "logging.format": log_format,
        "redis.url": redis_url,
        "limits.max_body_bytes": max_body_bytes,
        "limits.admin_max_body_bytes": admin_max_body_bytes,
        "limits.header_timeout": header_timeout,
        "limits.body_timeout": body_timeout,
        "limits.keep_alive_timeout": keep_alive_timeout,
        "limits.write_timeout": write_timeout,
        "limits.rate_limit": rate_limit,
        "limits.public_rate_limit": public_rate_limit,
        "limits.max_in_flight": max_in_flight,
        "limits.admin_auth_failures": admin_auth_failures,
        "limits.max_document_size": max_document_size,
        "limits.max_tokens": max_tokens,
        "limits.max_depth": max_depth,
        "limits.max_fields": max_fields,
        "limits.max_aliases": max_aliases,
        "limits.max_root_fields": max_root_fields,
        "limits.max_variables_depth": max_variables_depth,
        "limits.max_variables_values": max_variables_values,
        "limits.planning_timeout": planning_timeout,
        "limits.max_cost": max_cost,
        "limits.default_list_size": default_list_size,
        "limits.max_subgraph_answer_bytes": max_subgraph_answer_bytes,
    }
    try:
        settings = load_settings(config, os.environ, flags)
    except SettingsError as error:
        for problem in error.problems:
            console.print(f"[red]{escape(problem)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    configure_logging(settings.logging)
    loaded_policy = _policy(settings.policy)
    if settings.connectors is not None:
        check_connectors_folder(settings.connectors)
    _check_store(settings.store.url, settings.store_timeouts())
    if settings.supergraph is not None:
        from .supergraph import load_supergraph

        try:
            load_supergraph(_read(settings.supergraph), loaded_policy.privacy)
        except SupergraphError as error:
            _fail(f"the supergraph cannot be served: {error}")
    operator_key = _operator_key() if settings.supergraph is None else None
    where = f"http://{settings.server.host}:{settings.server.port}/graphql"
    what = str(settings.supergraph) if settings.supergraph is not None else "the registry"
    admin = "" if settings.supergraph is not None else " (admin API under /admin)"
    if settings.server.workers > 1:
        _serve_workers(settings, operator_key)
        return
    application = _gateway_app(settings, loaded_policy, operator_key)
    console.print(f"Citygate serving {escape(what)} at {escape(where)}{admin}", highlight=False, soft_wrap=True)
    _serve_one(application, settings)


def _gateway_app(settings, policy, operator_key: str | None):
    """The gateway `settings` describe, as an ASGI app (one per process)."""
    from .http import GraphiQL

    _tune_gc()
    common = {
        "store_url": settings.store.url,
        "policy": policy,
        "policy_path": settings.policy,
        "development": settings.server.dev,
        "graphiql": GraphiQL(assets=settings.server.graphiql_assets),
        "limits": settings.http_limits(),
        "store_timeouts": settings.store_timeouts(),
        "settings": settings,
        "on_start": _freeze_start_up,
    }
    if settings.supergraph is not None:
        from .app import static_app

        gateway = static_app(supergraph=_read(settings.supergraph), owners=dict(settings.owners), **common)
    else:
        from .app import registry_app

        assert operator_key is not None
        gateway = registry_app(folder=settings.connectors, operator_key=operator_key, **common)
    gateway.pool.share_identical = settings.server.subgraph_sharing
    gateway.pool.max_answer_bytes = settings.limits.max_subgraph_answer_bytes
    return gateway.app


def _serve_one(application, settings) -> None:
    import uvicorn

    from .http_limits import server_config

    limits = settings.http_limits()
    uvicorn.Server(
        server_config(
            application,
            host=settings.server.host,
            port=settings.server.port,
            limits=limits,
            log_level=settings.logging.level,
            log_config=None,
        )
    ).run()


def _serve_workers(settings, operator_key: str | None) -> None:
    """`settings.server.workers` processes on one listening socket, each a whole gateway (a
    replica: the store's consent clock and notifications make them agree), supervised by uvicorn
    (a worker that dies is replaced; SIGHUP replaces them one by one, each reading the policy
    file again; SIGTERM stops them after their requests in flight)."""
    import functools

    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess

    from .http_limits import WorkerConfig

    config = WorkerConfig(
        functools.partial(_worker_app, settings, operator_key),
        limits=settings.http_limits(),
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        log_level=settings.logging.level,
    )
    listening = config.bind_socket()
    where = f"http://{settings.server.host}:{settings.server.port}/graphql"
    console.print(
        f"Citygate serving with {settings.server.workers} worker processes at {escape(where)}", highlight=False
    )
    supervisor = Multiprocess(config, sockets=[listening])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        console.print("[red]a worker could not start: see its log lines above[/red]", highlight=False)
        raise typer.Exit(1)


def _worker_app(settings, operator_key: str | None):
    """One worker process's gateway (run in the worker, which shares nothing with its parent)."""
    from .http import configure_logging

    configure_logging(settings.logging)
    return _gateway_app(settings, _policy(settings.policy), operator_key)


def _check_store(url: str, timeouts) -> None:
    """Open the store (creating what is missing) before anything says it serves: an unreachable or
    hung store is one line and exit code 1, not a traceback from the server's start-up."""
    import asyncio

    from sqlalchemy.engine import make_url

    from .store import Store, database_url

    try:
        shown = make_url(database_url(url)).render_as_string(hide_password=True)
    except Exception:
        shown = "(an unreadable store URL)"

    async def open_store() -> None:
        store = Store(url, timeouts)
        try:
            store.claim()  # SQLite: refused when another gateway serves the file (claimed again once serving)
            await asyncio.wait_for(store.create(), timeouts.connect + timeouts.statement * 4)
        finally:
            await store.close()

    try:
        asyncio.run(open_store())
    except Exception as error:
        reason = (
            str(error).strip().splitlines()[0]
            if str(error).strip()
            else f"no answer within its timeouts ({type(error).__name__})"
        )
        console.print(
            f"[red]the store cannot be used: {escape(shown)}: {escape(reason)}[/red]", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


def _tune_gc() -> None:
    """The serving process's garbage collector, tuned for many large answers in flight.

    Under load the answers in flight are tens of thousands of young containers that are all still
    alive; with CPython's default thresholds (700, 10, 10) the collector kept traversing them and
    took ~40% of the gateway's core (py-spy, bench/README.md). Collections are rarer here, and what
    start-up built (schemas, plans, the policy) is frozen out of them once the gateway is ready.
    Reference counting still frees everything acyclic at once; only cycles wait longer.
    """
    gc.set_threshold(100_000, 20, 20)
    collector.manage()


async def _freeze_start_up(_gateway) -> None:
    """What start-up built, out of the collector's way once the gateway has started (see _tune_gc)."""
    gc.collect()
    gc.freeze()


@app.command()
def plan(
    query: Annotated[str, typer.Argument(help="The operation to plan.")],
    supergraph: Annotated[Path, typer.Option(help="A composed supergraph in Apollo's format.")],
    operation_name: Annotated[str | None, typer.Option(help="Operation to plan when the document has several.")] = None,
    variables: Annotated[str | None, typer.Option(help="Variables as JSON (for @skip/@include).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Print the query plan of an operation."""
    from .planner import DocumentError, Planner, PlanningError
    from .supergraph import load_supergraph

    try:
        model = load_supergraph(_read(supergraph))
    except SupergraphError as error:
        _fail(str(error))
    parsed_variables = _json_object_option("--variables", variables)
    planner = Planner(model)
    try:
        prepared = planner.prepare(query, operation_name)
        query_plan = planner.plan(prepared, parsed_variables or {})
    except (DocumentError, PlanningError) as error:
        _fail(str(error))
    description = query_plan.describe()
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    for node in description["nodes"]:
        after = f" after {node['dependsOn']}" if node["dependsOn"] else ""
        at = f" at {'.'.join(node['mergePath'])}" if node["mergePath"] else ""
        kind = "entities" if node["entity"] else description["kind"]
        typer.echo(f"[{node['id']}] {node['subgraph']} ({kind}){at}{after}")
        typer.echo("    " + node["operation"].replace("\n", "\n    "))
    cost = description["cost"]
    typer.echo(f"cost: {cost['fetches']} fetch(es) in {cost['waves']} wave(s)")


@app.command()
def compose(
    config: Annotated[Path, typer.Argument(help="YAML listing the subgraphs (rover's supergraph.yaml format).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the supergraph here (default: stdout).")
    ] = None,
) -> None:
    """Compose subgraphs (files or URLs) into a supergraph in Apollo's format."""
    from .composition import compose as compose_subgraphs
    from .composition.config import ConfigError, read_compose_config

    try:
        sources = read_compose_config(config)
    except ConfigError as error:
        _fail(str(error), 2)
    result = compose_subgraphs(sources)
    if not result.ok:
        console.print(f"[red]composition failed with {len(result.errors)} error(s):[/red]")
        for error in result.errors:
            console.print(f"  {_one_line(str(error))}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    if output is None:
        typer.echo(result.supergraph, nl=False)
    else:
        output.write_text(result.supergraph or "", encoding="utf-8")
        console.print(f"supergraph of {len(sources)} subgraphs written to {escape(str(output))}", highlight=False)


@app.command()
def demo(
    connectors: Annotated[Path, typer.Option(help="The folder of demo connectors.")] = Path("connectors"),
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4000,
) -> None:
    """Run the demo: every connector under CONNECTORS behind the gateway, in one process."""
    import uvicorn

    from .demo import demo_gateway
    from .http_limits import server_config
    from .settings import SettingsError, settings_from_environment

    collector.manage()  # Engines built, frozen and released off the collector's full passes (gateway/collector.py)
    try:
        settings = settings_from_environment()  # the defaults and CITYGATE_* variables, the gateway's too
        limits = settings.http_limits()
    except SettingsError as error:
        _fail("; ".join(error.problems))
    gateway = demo_gateway(connectors, host, port, console)
    gateway.pool.max_answer_bytes = settings.limits.max_subgraph_answer_bytes
    uvicorn.Server(server_config(gateway.app, host=host, port=port, limits=limits)).run()


@app.command()
def schema(
    supergraph: Annotated[
        Path,
        typer.Option(help="A composed supergraph in Apollo's format (a running gateway's: GET /admin/supergraph)."),
    ],
    policy: Annotated[Path | None, typer.Option(help="The operator's policy file (YAML).")] = None,
    client: Annotated[
        str | None, typer.Option(help="The client's id in the policy (absent: the public, no credentials).")
    ] = None,
    resident: Annotated[
        bool, typer.Option("--resident", help="A resident signed in through the client (sees their own data).")
    ] = False,
    role: Annotated[list[str] | None, typer.Option(help="A role a token adds to the client's (repeatable).")] = None,
    owner: Annotated[
        list[str] | None,
        typer.Option(help="SUBGRAPH=OWNER, the party owning a subgraph (repeatable; by default each its own)."),
    ] = None,
) -> None:
    """Print the schema (SDL) that a client's introspection shows: the fields its policy could ever let it receive."""
    from graphql import print_schema

    from .privacy import PUBLIC_AUDIENCE, Audience, client_schema

    loaded = _policy(policy)
    if client is None:
        if resident or role:
            _fail("--resident and --role need --client: a resident signs in through a client", 2)
        audience = PUBLIC_AUDIENCE
    elif client not in loaded.clients:
        _fail(f"no client {client!r} in the policy (clients: {', '.join(sorted(loaded.clients)) or 'none'})", 2)
    else:
        audience = Audience(client, resident, frozenset(loaded.clients[client].roles) | frozenset(role or ()))
    owners = {}
    for entry in owner or ():
        subgraph_name, _, owner_name = entry.partition("=")
        if not subgraph_name or not owner_name:
            _fail(f"--owner takes SUBGRAPH=OWNER, not {entry!r}", 2)
        owners[subgraph_name] = owner_name
    sdl = _read(supergraph)
    try:
        filtered = client_schema(sdl, loaded, audience, owners or None)
    except SupergraphError as error:
        _fail(f"{supergraph} cannot be served: {error}")
    typer.echo(print_schema(filtered))


connector_app = typer.Typer(
    help="Validate, register, list and remove connectors through the admin API; draft and test rest connectors locally.",
    no_args_is_help=True,
)
partner_app = typer.Typer(help="Manage partners (operator only).", no_args_is_help=True)
app.add_typer(connector_app, name="connector")
app.add_typer(partner_app, name="partner")

GatewayOption = Annotated[str, typer.Option(envvar="CITYGATE_URL", help="The gateway's base URL.")]
KeyOption = Annotated[str, typer.Option(envvar="CITYGATE_KEY", help="Your partner (or the operator) key.")]


_LOCAL_VARIABLE = r"\$\{([A-Z_][A-Z0-9_]*)\}"


@dataclass(frozen=True)
class _LocalManifest:
    """A connector's manifest as its partner wrote it, and its SDL file's text: read once per command."""

    path: Path  # the manifest.yaml
    data: dict[str, Any]  # as written
    sdl_file: str | None  # the SDL file's path as written in the manifest, if any
    sdl: str | None  # that file's text, or the manifest's inline `sdl`

    @property
    def sdl_name(self) -> str:
        """How locations name the SDL: its file as written, or `sdl` (inline)."""
        return self.sdl_file or "sdl"


def _read_manifest(path: Path) -> _LocalManifest:
    """The manifest of `path` (a connector's folder or its manifest.yaml) and its SDL file; one line
    and exit code 2 when either cannot be read or the file is not a manifest."""
    import yaml

    manifest_path = path / "manifest.yaml" if path.is_dir() else path
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        _fail(f"cannot read {manifest_path}: {error.strerror if isinstance(error, OSError) else error}", 2)
    if not isinstance(data, dict):
        console.print(f"[red]{escape(str(manifest_path))} is not a manifest[/red]", highlight=False)
        raise typer.Exit(2)
    sdl_file = data.get("sdl_file")
    if sdl_file is not None:
        return _LocalManifest(manifest_path, data, str(sdl_file), _read(manifest_path.parent / str(sdl_file)))
    inline = data.get("sdl")
    return _LocalManifest(manifest_path, data, None, inline if isinstance(inline, str) else None)


def _manifest_payload(local: _LocalManifest) -> dict:
    """What is sent to the admin API: the manifest with its SDL file's text inline, `${NAME}`s in
    its headers read from this shell (see _local_secrets)."""
    data = copy.deepcopy(local.data)  # _local_secrets fills its `secrets`: the manifest as written stays
    data.pop("sdl_file", None)
    if local.sdl_file is not None:
        data["sdl"] = local.sdl
    _local_secrets(data, local.path)
    return data


def _local_secrets(data: dict, manifest_path: Path) -> None:
    """`${NAME}` in a header value, read from *this* machine's environment (the partner's), travels
    as the connector's secret NAME (`${secret:NAME}`): the gateway stores it write-only and sends it
    to the connector's url only. The gateway never fills `${NAME}` from its own environment for a
    manifest it receives: it refuses it. Everything else is sent as written."""
    import os
    import re

    headers = data.get("headers")
    if not isinstance(headers, dict):
        return
    secrets = data.get("secrets")
    if secrets is None:
        secrets = {}
    if not isinstance(secrets, dict):
        return  # the gateway says what is wrong with it
    missing: list[str] = []

    def secret(match: re.Match) -> str:
        name = match[1]
        if name not in os.environ:
            missing.append(name)
        elif name in secrets and secrets[name] != os.environ[name]:
            missing.append(name)  # two values for one name: refuse rather than pick one
        else:
            secrets[name] = os.environ[name]
        return f"${{secret:{name}}}"

    converted = {
        key: re.sub(_LOCAL_VARIABLE, secret, value) if isinstance(value, str) else value
        for key, value in headers.items()
    }
    if missing:
        names = ", ".join(sorted(set(missing)))
        console.print(
            f"[red]{escape(str(manifest_path))} uses {escape(names)} in its headers: set them in this shell's environment "
            "(each is sent to the gateway as a secret of the connector), or give them under 'secrets'[/red]",
            highlight=False,
        )
        raise typer.Exit(2)
    data["headers"] = converted
    if secrets:
        data["secrets"] = secrets


def gateway_base_url(url: str) -> str:
    """The gateway's base URL from what a user gives: its base URL, or its GraphQL endpoint
    (`.../graphql`, what the demo's curl examples use): the admin API is under the base."""
    url = url.strip().rstrip("/")
    if url.endswith("/graphql"):
        url = url[: -len("/graphql")].rstrip("/")
    return url


def check_connectors_folder(folder: Path) -> None:
    """An operator's connectors folder checked before the gateway starts: a manifest that cannot be
    read, or whose `${NAME}` is not set in this environment, is one line naming the connector and
    the problem, and exit code 1 (not a traceback from the server's start-up)."""
    from .registry import ManifestError, read_manifest_folder

    if not folder.is_dir():
        console.print(f"[red]{escape(str(folder))} is not a folder of connectors[/red]", highlight=False)
        raise typer.Exit(1)
    problems: list[str] = []
    for manifest_path in sorted(folder.glob("*/manifest.yaml")):
        try:
            manifest = read_manifest_folder(manifest_path.parent, allow_python=True)
            if manifest.kind != "python":
                manifest.resolved_url()
            manifest.resolved_headers()
        except ManifestError as error:
            problems.extend(
                f"connector {manifest_path.parent.name} ({manifest_path}): {problem}" for problem in error.problems
            )
    if problems:
        for problem in problems:
            console.print(f"[red]{escape(problem)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _admin(method: str, gateway: str, key: str, path: str, payload=None):
    import httpx

    base = gateway_base_url(gateway)
    if not base.startswith(("http://", "https://")):
        shown = f"{gateway!r} is not" if gateway.strip() else "no gateway URL given:"
        _fail(f"{shown} the gateway's http(s) base URL (--gateway or CITYGATE_URL)", 2)
    if not key.strip():
        _fail("no key given (--key or CITYGATE_KEY): a partner key, or the operator's", 2)
    try:
        response = httpx.request(
            method, base + path, json=payload, headers={"authorization": f"Bearer {key.strip()}"}, timeout=60
        )
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        _fail(f"cannot reach {base}: {str(error) or type(error).__name__}", 2)
    if response.status_code == 401:
        console.print(
            f"[red]the gateway rejected the key (401)[/red]: {escape(base)} knows no partner or operator with it",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # not the admin API answering (its answers are JSON objects): never print what did
        console.print(
            f"[red]{escape(base)} answered HTTP {response.status_code} without the admin API[/red]: "
            "give the gateway's base URL, and a gateway serving connectors (citygate serve --connectors)",
            highlight=False,
        )
        raise typer.Exit(1)
    return response.status_code, body


def _print_rows(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """A listing on stdout: a Rich table on a terminal; piped, tab-separated lines without a header,
    one a row, as scripts read them. Cells are the gateway's data, never markup (`Text`)."""
    from rich.table import Table
    from rich.text import Text

    out = Console()
    cells = [tuple("" if value is None else str(value) for value in row) for row in rows]
    if not out.is_terminal:
        for row in cells:
            typer.echo("\t".join(row))
        return
    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in cells:
        table.add_row(*(Text(value) for value in row))
    out.print(table, soft_wrap=True)


def _report(status: int, body: dict, sdl_files: dict[str, str] | None = None) -> None:
    """Print the admin API's errors and warnings. Each location says which SDL it is in: the
    connector sent (by its file's name, `sdl_files`) or another connector's, which a partner may
    not have and must not look for in their own file. Everything the gateway sent is escaped:
    `[parking]` is a subgraph's name, not Rich markup."""
    sdl_files = sdl_files or {}

    def line(kind: str, style: str, problem: dict) -> str:
        subgraph = problem.get("subgraph")
        where = f" [{subgraph}]" if subgraph else ""
        locations = [
            f"{loc.get('line')}:{loc.get('column')}" for loc in problem.get("locations") or [] if isinstance(loc, dict)
        ]
        at = ""
        if locations and subgraph in sdl_files:
            at = " at " + ", ".join(f"{sdl_files[subgraph]}:{location}" for location in locations)
        elif locations and subgraph:
            at = f" at {', '.join(locations)} in the SDL of {subgraph} (another connector's, not yours)"
        elif locations:
            at = f" at {', '.join(locations)}"
        text = f"{problem.get('code')}{where}: {problem.get('message')}{at}"
        return f"[{style}]{kind}[/{style}] {escape(text)}"

    # one line each, never wrapped: editors and CI read `file:line:col`
    for error in body.get("errors", []):
        console.print(line("error", "red", error), highlight=False, soft_wrap=True)
    for warning in body.get("warnings", []):
        console.print(line("warning", "yellow", warning), highlight=False, soft_wrap=True)
    if status >= 300 or not body.get("ok", True):
        raise typer.Exit(1)


def _sdl_files(local: _LocalManifest) -> dict[str, str]:
    """{connector name: how to name its SDL in a location}: its sdl_file (as the partner wrote the
    path), or `sdl` (read from the subgraph's `_service { sdl }` or given inline)."""
    name = local.data.get("name")
    if not isinstance(name, str):
        return {}
    return {name: str(local.path.parent / local.sdl_file) if local.sdl_file else f"{name}'s SDL"}


def _print_connect_problems(problems, sdl_name: str) -> None:
    """`schema.graphql:LINE:COL: CODE message`, one a line, as editors and CI read them. Never
    through Rich markup: a type named `[parking]` in a message must print as written."""
    for problem in problems:
        where = f"{sdl_name}:{problem.line}:{problem.column}" if problem.line is not None else sdl_name
        typer.echo(f"{where}: {problem.code} {problem.message}", err=True)


def _local_rest_check(local: _LocalManifest) -> None:
    """A rest connector's SDL checked on this machine (mapping, URL templates, directives) before
    the gateway is asked: problems with their line and column in the partner's own file."""
    import os
    import re

    from .connect import ConnectError, read_connect_sdl

    data, sdl, sdl_name = local.data, local.sdl, local.sdl_name
    if data.get("kind") != "rest" or sdl is None:
        return
    url = data.get("url") if isinstance(data.get("url"), str) else None
    if url is not None:
        # ${NAME} set in this shell fills the url as the operator's folder would; otherwise the
        # check runs without it (the gateway checks the origin)
        url = re.sub(_LOCAL_VARIABLE, lambda m: os.environ.get(m[1], m[0]), url)
        url = None if "${" in url else url
    try:
        schema = read_connect_sdl(sdl, base_url=url)
    except ConnectError as error:
        _print_connect_problems(error.problems, sdl_name)
        console.print(
            f"[red]{len(error.problems)} problem(s)[/red] in {escape(sdl_name)}: not sent to the gateway",
            highlight=False,
        )
        raise typer.Exit(1) from None
    console.print(
        f"[green]locally valid[/green]: {escape(sdl_name)} maps to {escape(', '.join(sorted(schema.origins)) or 'its base URL')}",
        highlight=False,
    )


@connector_app.command("validate")
def connector_validate(path: Path, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Check a connector against everything registered, changing nothing.

    A rest connector's SDL is checked on this machine first."""
    local = _read_manifest(path)
    _local_rest_check(local)
    payload = _manifest_payload(local)
    status, body = _admin("POST", gateway, key, "/admin/connectors/validate", payload)
    _report(status, body, _sdl_files(local))
    breaking = sum(
        1
        for warning in body.get("warnings", [])
        if warning.get("code") in ("BREAKING_CHANGE", "BREAKING_CHANGE_IN_USE")
    )
    if breaking:
        console.print(
            f"[green]valid[/green]: it composes with every registered connector; [yellow]{breaking} breaking change(s)[/yellow] to the served schema (warnings above)"
        )
        return
    console.print("[green]valid[/green]: it composes with every registered connector")


@connector_app.command("register")
def connector_register(path: Path, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Register (or update) a connector: validated first, then served without dropping a request."""
    local = _read_manifest(path)
    payload = _manifest_payload(local)
    status, body = _admin("PUT", gateway, key, f"/admin/connectors/{payload.get('name', '')}", payload)
    _report(status, body, _sdl_files(local))
    console.print(
        f"[green]registered[/green] {escape(str(payload.get('name')))} (version {escape(str(body.get('version')))})",
        highlight=False,
    )


@connector_app.command("list")
def connector_list(gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """The connectors you manage (a table; tab-separated when piped)."""
    status, body = _admin("GET", gateway, key, "/admin/connectors")
    if status != 200:
        _report(status, body)
    rows = [
        (
            c.get("name"),
            c.get("owner"),
            c.get("kind"),
            f"v{c.get('version')}",
            c.get("source"),
            c.get("url") or c.get("schema") or "",
        )
        for c in body.get("connectors", [])
    ]
    _print_rows(("name", "owner", "kind", "version", "source", "url or schema"), rows)


@connector_app.command("remove")
def connector_remove(name: str, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Remove a connector, if what remains still composes."""
    status, body = _admin("DELETE", gateway, key, f"/admin/connectors/{name}")
    _report(status, body)
    console.print(f"[green]removed[/green] {escape(name)}", highlight=False)


def _read_openapi(spec: str) -> tuple[bytes, str | None]:
    """The document's bytes and, for a URL, where it was read (relative server URLs resolve
    against it). Read within the importer's size bound, from a file or over HTTP(S)."""
    from .connect import MAX_DOCUMENT_BYTES

    if spec.startswith(("http://", "https://")):
        import httpx

        try:
            with httpx.stream("GET", spec, timeout=30, follow_redirects=True) as response:
                if response.status_code != 200:
                    typer.echo(f"cannot read {spec}: HTTP {response.status_code}", err=True)
                    raise typer.Exit(2)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOCUMENT_BYTES:
                        typer.echo(f"{spec} is over {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB", err=True)
                        raise typer.Exit(1)
                    chunks.append(chunk)
                return b"".join(chunks), str(response.url)
        except httpx.HTTPError as error:
            typer.echo(f"cannot read {spec}: {error}", err=True)
            raise typer.Exit(2) from None
    path = Path(spec)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            typer.echo(f"{spec} is over {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB", err=True)
            raise typer.Exit(1)
        return path.read_bytes(), None
    except OSError as error:
        typer.echo(f"cannot read {spec}: {error.strerror}", err=True)
        raise typer.Exit(2) from None


@connector_app.command("import-openapi")
def connector_import_openapi(
    spec: Annotated[
        str, typer.Argument(help="The API's OpenAPI document (3.0 or 3.1, JSON or YAML): a file or an http(s) URL.")
    ],
    name: Annotated[str, typer.Option(help="The connector's name (lowercase letters, digits, dashes).")],
    owner: Annotated[str | None, typer.Option(help="Your partner name (default: the connector's name).")] = None,
    out: Annotated[Path | None, typer.Option(help="The folder to write (default: ./NAME).")] = None,
    url: Annotated[
        str | None, typer.Option(help="The API's base URL, when servers[0] of the document is not it.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds the gateway waits for the API.")] = 5,
    force: Annotated[bool, typer.Option(help="Overwrite the folder's manifest.yaml and schema.graphql.")] = False,
    type_prefix: Annotated[
        str | None,
        typer.Option(
            help="Name every drafted type PREFIX+Name (e.g. Voisinage: VoisinageCategory), so partners' drafts do not clash."
        ),
    ] = None,
) -> None:
    """Draft a rest connector from an OpenAPI document.

    Writes manifest.yaml and schema.graphql (@source/@connect): review them, annotate personal
    data, then validate, test and register the connector."""
    from .connect import OpenApiError, import_openapi
    from .registry import CONNECTOR_NAME

    owner = owner or name
    for what, value in (("--name", name), ("--owner", owner)):
        if not CONNECTOR_NAME.match(value):
            typer.echo(f"{what} must be lowercase letters, digits and dashes, starting with a letter", err=True)
            raise typer.Exit(2)
    folder = out or Path(name)
    targets = [folder / "manifest.yaml", folder / "schema.graphql"]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not force:
        typer.echo(f"{', '.join(existing)} already exist(s): give --force to overwrite, or another --out", err=True)
        raise typer.Exit(2)
    data, location = _read_openapi(spec)
    try:
        draft = import_openapi(
            data, name=name, owner=owner, timeout=timeout, location=location, base_url=url, type_prefix=type_prefix
        )
    except OpenApiError as error:
        for problem in error.problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo(f"{len(error.problems)} problem(s) in {spec}: nothing drafted", err=True)
        raise typer.Exit(1) from None
    folder.mkdir(parents=True, exist_ok=True)
    targets[0].write_text(draft.manifest, encoding="utf-8")
    targets[1].write_text(draft.sdl, encoding="utf-8")
    for skipped in draft.skipped:
        typer.echo(f"not drafted: {skipped}", err=True)
    entities = f", entities: {', '.join(draft.entities)}" if draft.entities else ""
    typer.echo(f"drafted {draft.operations} operation(s) of {draft.base_url} into {folder}{entities}", err=True)
    typer.echo(
        "next: annotate personal data (@personal/@subject) where schema.graphql says TODO, then "
        f"`citygate connector validate {folder}` and `citygate connector test {folder} --query '{{ ... }}'`",
        err=True,
    )


@connector_app.command("test")
def connector_test(
    path: Annotated[Path, typer.Argument(help="The rest connector's folder (manifest.yaml and its SDL).")],
    query: Annotated[str, typer.Option(help="A GraphQL operation against the connector's own schema.")],
    variables: Annotated[str | None, typer.Option(help="The operation's variables, as a JSON object.")] = None,
) -> None:
    """Run one operation through a rest connector against its API, on this machine.

    No gateway involved: prints the mapped result, and each error with its code. `${NAME}` in
    the manifest is read from this shell's environment."""
    import asyncio

    from .connect import ConnectError, RestClient, read_connect_sdl
    from .executor import HttpPool
    from .registry import ManifestError, read_manifest_folder

    folder = path if path.is_dir() else path.parent
    try:
        manifest = read_manifest_folder(folder, allow_python=False)
        if manifest.kind != "rest":
            typer.echo(f"{folder} is a {manifest.kind} connector: `connector test` runs rest connectors", err=True)
            raise typer.Exit(2)
        base_url, headers = manifest.resolved_url(), manifest.resolved_headers()
    except ManifestError as error:
        for problem in error.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None
    try:
        schema = read_connect_sdl(manifest.sdl or "", base_url=base_url)
    except ConnectError as error:
        _print_connect_problems(error.problems, str(_manifest_sdl_name(folder)))
        raise typer.Exit(1) from None
    parsed_variables = _json_object_option("--variables", variables)

    async def run() -> dict:
        pool = HttpPool()
        try:
            # the partner's own API from the partner's machine: no address guard (the gateway's
            # guarded pool checks it once registered)
            client = RestClient(
                schema, pool, name=manifest.name, timeout=manifest.timeout, headers=headers, guarded=False
            )
            return await client.send(query, parsed_variables)
        finally:
            await pool.close()

    result = asyncio.run(run())
    typer.echo(json.dumps({"data": result.get("data")}, indent=2, ensure_ascii=False))
    errors = result.get("errors") or []
    for error in errors:
        code = (error.get("extensions") or {}).get("code", "ERROR")
        where = ".".join(str(p) for p in error.get("path") or [])
        status = (error.get("extensions") or {}).get("status")
        typer.echo(
            f"error {code}"
            + (f" at {where}" if where else "")
            + (f" (HTTP {status})" if status is not None else "")
            + f": {error.get('message')}",
            err=True,
        )
    if errors:
        raise typer.Exit(1)


def _manifest_sdl_name(folder: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "sdl"
    return str(data.get("sdl_file") or "sdl") if isinstance(data, dict) else "sdl"


@partner_app.command("add")
def partner_add(name: str, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Create a partner and print its key (shown once)."""
    status, body = _admin("POST", gateway, key, "/admin/partners", {"name": name})
    _report(status, body)
    typer.echo(body["key"])


@partner_app.command("list")
def partner_list(gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Every partner: name, when it was added, the connectors it owns (a table; tab-separated when piped)."""
    status, body = _admin("GET", gateway, key, "/admin/partners")
    _report(status, body)
    rows = [
        (p.get("name"), p.get("created_at"), ",".join(p.get("connectors") or []) or "-")
        for p in body.get("partners", [])
    ]
    _print_rows(("name", "added", "connectors"), rows)


@partner_app.command("revoke")
def partner_revoke(name: str, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Revoke a partner: its key is refused from now on, by every replica. Its connectors stay
    served until you remove them (`citygate connector remove NAME`)."""
    status, body = _admin("DELETE", gateway, key, f"/admin/partners/{name}")
    _report(status, body)
    console.print(f"[green]revoked[/green] {escape(name)}: its key is refused from now on", highlight=False)
    if body.get("connectors"):
        console.print(
            f"its connectors are still served: {escape(', '.join(body['connectors']))} (`citygate connector remove NAME` to stop one)",
            highlight=False,
        )


@partner_app.command("rotate-key")
def partner_rotate_key(name: str, gateway: GatewayOption = "http://127.0.0.1:4000", key: KeyOption = "") -> None:
    """Give a partner a new key and print it (shown once): the old one is refused from now on."""
    status, body = _admin("POST", gateway, key, f"/admin/partners/{name}/key")
    _report(status, body)
    console.print(f"[green]new key[/green] for {escape(name)}; the old one is refused from now on", highlight=False)
    typer.echo(body["key"])


audit_app = typer.Typer(help="The audit log of disclosures.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(documents_app, name="documents")  # gateway/cli_documents.py: trusted documents


def _existing_store(store: str) -> None:
    """A SQLite store's file must be there: reading the audit log never creates an empty store."""
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        _fail(f"there is no SQLite store at {store.removeprefix('sqlite:///')}", 2)


@audit_app.command("verify")
def audit_verify(
    store: Annotated[
        str, typer.Option(help="Store URL (sqlite:///file.db or postgresql://...).")
    ] = "sqlite:///citygate.db",
) -> None:
    """Recompute the audit log's hash chain: any record edited, inserted or deleted is named."""
    import asyncio

    from .consent import AuditLog
    from .store import Store

    _existing_store(store)

    async def verify():
        database = Store(store)
        try:
            return await AuditLog(database).verify()
        finally:
            await database.close()

    try:
        result = asyncio.run(verify())
    except Exception as error:  # the store cannot be read: say so, never "intact"
        reason = (str(error).strip().splitlines() or [""])[0]  # not the statement SQLAlchemy appends
        _fail(f"cannot read the audit log: {type(error).__name__}: {reason}", 2)
    if result.intact:
        console.print(f"[green]intact[/green]: {result.entries} entries, the chain and its head agree")
        return
    console.print(f"[red]tampered[/red]: {len(result.problems)} problem(s) in {result.entries} entries")
    for problem in result.problems:
        console.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(1)


@audit_app.command("head")
def audit_head(
    store: Annotated[
        str, typer.Option(help="Store URL (sqlite:///file.db or postgresql://...).")
    ] = "sqlite:///citygate.db",
    as_json: Annotated[bool, typer.Option("--json", help="Print the head as JSON.")] = False,
) -> None:
    """Print the audit chain's head (seq, hash, time of its newest entry): publish it elsewhere now
    and then, so that even a rewrite of the whole chain shows. Reads only; takes no lock."""
    import asyncio

    from .store import Store

    _existing_store(store)

    async def read() -> tuple[int, str, dict | None]:
        database = Store(store)
        try:
            seq, head = await database.audit_chain_head()
            newest = await database.audit_entries(limit=1, newest_first=True)
            return seq, head, newest[0] if newest else None
        finally:
            await database.close()

    try:
        seq, head, newest = asyncio.run(read())
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]  # not the statement SQLAlchemy appends
        _fail(f"cannot read the audit log: {type(error).__name__}: {reason}", 2)
    if (newest is None and seq != 0) or (newest is not None and (newest["seq"], newest["hash"]) != (seq, head)):
        console.print(
            f"[red]the chain head (seq {seq}) is not the newest entry's[/red]: run `citygate audit verify --store ...`",
            highlight=False,
        )
        raise typer.Exit(1)
    at = newest["at"] if newest is not None else None
    if as_json:
        typer.echo(json.dumps({"seq": seq, "hash": head, "at": at}))
        return
    typer.echo(f"seq {seq}\nhash {head}\nat {at or '- (no entry yet)'}")


keys_app = typer.Typer(
    help="The gateway's signing keys (receipts, audit heads, erasure requests).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
StoreOption = Annotated[
    str, typer.Option(help="Store URL (sqlite:///file.db or postgresql://...).", envvar="CITYGATE_STORE")
]


def _signing_keys(store: str, action):
    """Run `action(SigningKeyStore)` on the store's keys; exit 2 when the key is the operator's own."""
    import asyncio
    import os

    from .consent import SigningKeyError, SigningKeyStore
    from .store import Store

    if os.environ.get("CITYGATE_SIGNING_KEY"):
        _fail("CITYGATE_SIGNING_KEY gives the key: it is yours to rotate (the store's keys are not used)", 2)
    _existing_store(store)

    async def run():
        database = Store(store)
        try:
            return await action(SigningKeyStore(database))
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except SigningKeyError as error:
        _fail(str(error), 1)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]  # not the statement SQLAlchemy appends
        _fail(f"cannot read the signing keys: {type(error).__name__}: {reason}", 2)


@keys_app.command("rotate")
def keys_rotate(
    store: StoreOption = "sqlite:///citygate.db",
    verification_days: Annotated[
        float,
        typer.Option(
            help="Days the current key stays published after it is replaced, so what it signed still verifies.", min=0
        ),
    ] = 30,
) -> None:
    """Make a new signing key the current one; running gateways sign with it within a minute."""
    new, old = _signing_keys(store, lambda keys: keys.rotate(verification_days))
    console.print(
        f"[green]new signing key[/green] {new}; {old} stays published for {verification_days:g} days", highlight=False
    )
    typer.echo(new)


@keys_app.command("list")
def keys_list(store: StoreOption = "sqlite:///citygate.db") -> None:
    """The store's signing keys (never a private half): current, published, or past their window."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = []
    for key in _signing_keys(store, lambda keys: keys.listed()):
        state = "current" if key.retired_at is None else ("published" if key.published(now) else "expired")
        until = key.verify_until.isoformat(timespec="seconds") if key.verify_until is not None else "-"
        rows.append((key.kid, state, key.created_at.isoformat(timespec="seconds"), until))
    _print_rows(("kid", "state", "created", "published until"), rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
