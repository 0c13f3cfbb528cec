"""The demo: every connector of `connectors/` composed and served, in one process.

Python connectors run in-process; the store is a fresh SQLite file under `.citygate/`; the
operator key and one key per partner are generated at start and printed, never stored in clear
and never committed. For demos only: it listens on loopback unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .app import Gateway, registry_app
from .policy import parse_policy
from .registry import new_key

# The demo's connectors live on this machine: the policy allows loopback upstreams.
DEMO_POLICY = {"registry": {"allow_upstreams": ["127.0.0.0/8", "::1/128"]}}


def demo_gateway(folder: Path, host: str, port: int, console: Console, state_dir: Path = Path(".citygate")) -> Gateway:
    state_dir.mkdir(exist_ok=True)
    database = state_dir / "demo.db"
    database.unlink(missing_ok=True)
    operator_key = new_key("cgo")
    url = f"http://{host}:{port}"

    async def announce(gateway: Gateway) -> None:
        owners = sorted({c.manifest.owner for c in gateway.registry.connectors.values()})
        partner_keys = {}
        for owner in owners:
            partner_keys[owner] = new_key("cgp")
            await gateway.store.add_partner(owner, partner_keys[owner])
        names = ", ".join(sorted(gateway.registry.connectors))
        console.print(f"[bold]Citygate demo[/bold]: {len(gateway.registry.connectors)} connectors ({names})")
        console.print(f"GraphiQL: {url}/graphql")
        console.print("Demo keys (generated for this run only):", highlight=False)
        console.print(f"  operator: {operator_key}", highlight=False)
        for owner, key in partner_keys.items():
            console.print(f"  partner {owner}: {key}", highlight=False)
        console.print("Try it:")
        console.print(
            f"  curl -s {url}/graphql -H 'content-type: application/json' "
            "-d '{\"query\": \"{ district(code: \\\"75118\\\") { name freeSpots openJobs { title reward } } }\"}'",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"  curl -s {url}/admin/connectors -H 'authorization: Bearer {operator_key}'", highlight=False, soft_wrap=True)

    return registry_app(
        folder=folder,
        store_url=f"sqlite:///{database}",
        policy=parse_policy(DEMO_POLICY),
        operator_key=operator_key,
        development=True,
        on_start=announce,
    )
