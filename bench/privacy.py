"""The privacy scenario's policy and store: one client, and its consent from every subject."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import yaml

from gateway.consent import Ledger
from gateway.policy import parse_policy
from gateway.store import Store

BENCH_KEY = "cgc_benchmark-client-key-not-a-secret"
SUBJECTS = [str(n) for n in range(1, 12)]  # users 1-6, products 1-9, reviews 1-11 share these ids
SUBGRAPHS = ("accounts", "inventory", "products", "reviews")
# who owns the four subgraphs: one shop runs them all (flows between them are its own data going
# back to it: nothing to decide), or each is a party of its own (every flow decided and audited)
OWNERS = {"one": dict.fromkeys(SUBGRAPHS, "shop"), "each": {name: name for name in SUBGRAPHS}}


def prepare_store(store_path: Path, policy_path: Path) -> tuple[Path, str]:
    return asyncio.run(seed_store(store_path, policy_path))


async def seed_store(store_path: Path, policy_path: Path, store_url: str | None = None) -> tuple[Path, str]:
    """The policy file and every subject's consent, in a SQLite file at `store_path` (or the
    fresh store at `store_url`, e.g. an empty PostgreSQL database)."""
    document = {
        "purposes": {"benchmark": {"description": "measuring"}},
        "clients": {
            "bench-client": {
                "purposes": ["benchmark"],
                "api_key_sha256": hashlib.sha256(BENCH_KEY.encode()).hexdigest(),
            }
        },
        # flows: the entity fetches carry personal keys (ids, upcs) and @requires values (price,
        # weight) between the four subgraphs; where each is its own owner (OWNERS["each"]), the
        # operator's basis lets them go, so each is decided and audited as in production
        "legal_bases": [
            {
                "name": "bench-subgraphs",
                "basis": "contract",
                "recipients": list(SUBGRAPHS),
                "purposes": ["benchmark"],
                "categories": ["user"],
                "sources": list(SUBGRAPHS),
            }
        ],
    }
    policy_path.write_text(yaml.safe_dump(document))
    if store_url is None:
        store_path.unlink(missing_ok=True)
    store = Store(store_url or f"sqlite:///{store_path}")
    await store.create()
    ledger = Ledger(store, parse_policy(document))
    for subject in SUBJECTS:
        await ledger.grant(
            subject=subject,
            recipient="bench-client",
            purpose="benchmark",
            categories=["user"],
            expires_in_days=30,
            collection_method="bench",
        )
    await store.close()
    return policy_path, BENCH_KEY
