"""The `citygate` command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .supergraph import SupergraphError

app = typer.Typer(help="Citygate: a consent-aware GraphQL federation gateway.", no_args_is_help=True)
console = Console(stderr=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        console.print(f"[red]cannot read {path}: {error.strerror}[/red]")
        raise typer.Exit(2) from None


@app.command()
def serve(
    supergraph: Annotated[Path, typer.Option(help="A composed supergraph in Apollo's format.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4000,
    dev: Annotated[bool, typer.Option("--dev", help="Development mode: query plans on request.")] = False,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "warning",
) -> None:
    """Serve a supergraph at /graphql."""
    import uvicorn

    from .engine import Engine
    from .http import GatewayState, create_app

    logging.basicConfig(level=log_level.upper())
    try:
        engine = Engine.from_sdl(_read(supergraph))
    except SupergraphError as error:
        console.print(f"[red]the supergraph cannot be served: {error}[/red]")
        raise typer.Exit(1) from None
    application = create_app(GatewayState(engine, development=dev))
    console.print(f"Citygate serving {len(engine.model.subgraphs)} subgraphs at http://{host}:{port}/graphql")
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


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
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    planner = Planner(model)
    try:
        prepared = planner.prepare(query, operation_name)
        query_plan = planner.plan(prepared, json.loads(variables) if variables else {})
    except (DocumentError, PlanningError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
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


@app.command()
def compose(
    config: Annotated[Path, typer.Argument(help="YAML listing the subgraphs (rover's supergraph.yaml format).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the supergraph here (default: stdout).")] = None,
) -> None:
    """Compose subgraphs (files or URLs) into a supergraph in Apollo's format."""
    from .composition import compose as compose_subgraphs
    from .composition.config import ConfigError, read_compose_config

    try:
        sources = read_compose_config(config)
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    result = compose_subgraphs(sources)
    if not result.ok:
        console.print(f"[red]composition failed with {len(result.errors)} error(s):[/red]")
        for error in result.errors:
            console.print(f"  {error}", highlight=False, markup=False)
        raise typer.Exit(1)
    if output is None:
        typer.echo(result.supergraph, nl=False)
    else:
        output.write_text(result.supergraph or "", encoding="utf-8")
        console.print(f"supergraph of {len(sources)} subgraphs written to {output}")


@app.command()
def demo(
    connectors: Annotated[Path, typer.Option(help="The folder of demo connectors.")] = Path("connectors"),
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4000,
) -> None:
    """Run the demo: every connector under CONNECTORS behind the gateway, in one process."""
    import uvicorn

    from .demo import demo_app

    application, engine = demo_app(connectors, host, port)
    url = f"http://{host}:{port}/graphql"
    console.print(f"[bold]Citygate demo[/bold]: {len(engine.model.subgraphs)} connectors ({', '.join(sorted(engine.model.subgraphs))})")
    console.print(f"GraphiQL: {url}")
    console.print("Try it:")
    console.print(
        f"  curl -s {url} -H 'content-type: application/json' "
        "-d '{\"query\": \"{ district(code: \\\"75118\\\") { name freeSpots openJobs { title reward } } }\"}'",
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
