"""`citygate documents`: the trusted documents operators push for clients (gateway/persisted.py).

The commands write and read the store directly (like `citygate audit`): every gateway on that store
serves a pushed document without a restart or a reload (an id it found missing just before: once
PostgreSQL notifies the push, or after `persisted_documents.miss_ttl` seconds, gateway/persisted.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

documents_app = typer.Typer(
    help="Trusted documents (persisted queries) per client: push a manifest, list what is stored.", no_args_is_help=True
)
console = Console(stderr=True)

StoreOption = Annotated[
    str, typer.Option(envvar="CITYGATE_STORE", help="Store URL (sqlite:///file.db or postgresql://...).")
]
_CLIENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # a policy client's id (gateway/policy.py), or "public"


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(code)


@documents_app.command("push")
def documents_push(
    manifest: Annotated[
        Path, typer.Argument(help="Apollo's persisted query manifest (JSON), or a map {id: document}.")
    ],
    client: Annotated[
        str, typer.Option(help="The policy client the documents are for ('public': the public requester).")
    ],
    store: StoreOption = "sqlite:///citygate.db",
) -> None:
    """Store a manifest's documents for a client: with `persisted_documents: safelist` in the
    policy, the client may run only these. Pushing the same documents again changes nothing; an id
    already stored with another text is refused (nothing is written)."""
    from .persisted import ManifestError, read_manifest
    from .store import DocumentConflict, Store, put_documents

    if not _CLIENT.match(client):
        raise _fail(
            f"--client {client!r} is not a client id (lowercase letters, digits and dashes; 'public' for the public)"
        )
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except OSError as error:
        raise _fail(f"cannot read {manifest}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _fail(f"{manifest} is not JSON: {error}") from None
    try:
        documents = read_manifest(data)
    except ManifestError as error:
        console.print(f"[red]{escape(str(manifest))} cannot be pushed:[/red]", highlight=False)
        for problem in error.problems[:50]:
            console.print(f"  - {problem}", highlight=False, markup=False)
        if len(error.problems) > 50:
            console.print(f"  ... and {len(error.problems) - 50} more", highlight=False, markup=False)
        raise typer.Exit(2) from None

    async def push() -> tuple[int, int]:
        database = Store(store)
        try:
            await database.create()  # a new store, or one a gateway of an older version created
            return await put_documents(database, client, documents)
        finally:
            await database.close()

    try:
        added, present = asyncio.run(push())
    except DocumentConflict as conflict:
        shown = ", ".join(conflict.ids[:10]) + (f" and {len(conflict.ids) - 10} more" if len(conflict.ids) > 10 else "")
        raise _fail(
            f"refused, nothing stored: {client} already has documents with these ids and another text: {shown}", 1
        ) from None
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]  # not the statement SQLAlchemy appends
        raise _fail(f"cannot write to the store: {type(error).__name__}: {reason}") from None
    typer.echo(f"{client}: {added} document(s) added, {present} already stored ({len(documents)} in {manifest.name})")


@documents_app.command("list")
def documents_list(
    client: Annotated[str | None, typer.Option(help="Only this client's documents.")] = None,
    store: StoreOption = "sqlite:///citygate.db",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per document.")] = False,
) -> None:
    """The stored trusted documents: client, id, operation name and type, SHA-256 of the text (never the text)."""
    from rich.table import Table

    from .store import Store, documents_of

    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        raise _fail(f"there is no SQLite store at {store.removeprefix('sqlite:///')}")

    async def read():
        database = Store(store)
        try:
            return await documents_of(database, client)
        finally:
            await database.close()

    try:
        found = asyncio.run(read())
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0]
        if "persisted_documents" in reason:
            found = []  # a store no gateway of this version opened yet: no document
        else:
            raise _fail(f"cannot read the store: {type(error).__name__}: {reason}") from None
    if as_json:
        for document in found:
            typer.echo(
                json.dumps(
                    {
                        "client": document.client,
                        "id": document.id,
                        "name": document.name,
                        "type": document.type,
                        "sha256": document.sha256,
                        "created_at": document.created_at.isoformat(),
                    }
                )
            )
        return
    if not found:
        typer.echo("no trusted document" + (f" for {client}" if client else ""))
        return
    table = Table()
    for column in ("client", "id", "name", "type", "sha256"):
        table.add_column(column, overflow="fold")  # ids whole, wrapped rather than cut
    for document in found:
        table.add_row(
            escape(document.client),
            escape(document.id),
            escape(document.name or "-"),
            document.type or "-",
            document.sha256,
        )
    Console().print(table)
