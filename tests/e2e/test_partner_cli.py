"""`citygate partner` and `citygate audit head` as processes, against a real gateway and store; what
the CLI says when the key or the gateway's URL is wrong."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from gateway.consent import AuditLog
from gateway.consent._audit import Disclosure
from gateway.store import Store
from tests.e2e.test_connector_cli import OPERATOR_KEY, citygate
from tests.e2e.test_connector_cli import gateway as gateway  # the fixture: `citygate serve --connectors` as a process


def test_the_operator_lists_rotates_and_revokes_partners_with_the_cli(gateway):
    for name in ("meteo", "velib"):
        assert citygate("partner", "add", name, key=OPERATOR_KEY, url=gateway).stdout.startswith("cgp_")
    listed = citygate("partner", "list", key=OPERATOR_KEY, url=gateway)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(row[0], row[2]) for row in rows] == [("meteo", "-"), ("velib", "-")] and all(row[1] for row in rows)

    rotated = citygate("partner", "rotate-key", "meteo", key=OPERATOR_KEY, url=gateway)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    assert new_key.startswith("cgp_") and "the old one is refused" in rotated.stderr
    assert citygate("connector", "list", key=new_key, url=gateway).returncode == 0

    revoked = citygate("partner", "revoke", "meteo", key=OPERATOR_KEY, url=gateway)
    assert revoked.returncode == 0 and "revoked meteo" in revoked.stderr
    refused = citygate("connector", "list", key=new_key, url=gateway)
    assert refused.returncode == 1 and "the gateway rejected the key (401)" in refused.stderr
    assert [
        line.split("\t")[0] for line in citygate("partner", "list", key=OPERATOR_KEY, url=gateway).stdout.splitlines()
    ] == ["velib"]

    unknown = citygate("partner", "revoke", "meteo", key=OPERATOR_KEY, url=gateway)
    assert unknown.returncode == 1 and "PARTNER_NOT_FOUND" in unknown.stderr and "'meteo'" in unknown.stderr
    velib_key = citygate("partner", "rotate-key", "velib", key=OPERATOR_KEY, url=gateway).stdout.strip()
    not_operator = citygate("partner", "revoke", "velib", key=velib_key, url=gateway)
    assert not_operator.returncode == 1 and "FORBIDDEN" in not_operator.stderr


def test_the_cli_says_what_is_wrong_with_the_key_or_the_url(gateway):
    no_key = citygate("connector", "list", key="", url=gateway)
    assert no_key.returncode == 2
    assert "no key given (--key or CITYGATE_KEY)" in no_key.stderr and "Illegal header" not in no_key.stderr

    wrong_key = citygate("connector", "list", key="cgp_not-a-key-of-this-gateway", url=gateway)
    assert wrong_key.returncode == 1 and "the gateway rejected the key (401)" in wrong_key.stderr

    # the GraphQL endpoint's URL (what the demo's curl examples use) is taken as the base URL
    for given in (f"{gateway}/graphql", f"{gateway}/graphql/", f"{gateway}/"):
        listed = citygate("connector", "list", key=OPERATOR_KEY, url=given)
        assert listed.returncode == 0, (given, listed.stderr)
        assert "city" in listed.stdout.split()

    elsewhere = citygate("connector", "list", key=OPERATOR_KEY, url=f"{gateway}/healthz")
    assert elsewhere.returncode == 1 and "answered HTTP 404 without the admin API" in elsewhere.stderr
    no_scheme = citygate("partner", "list", key=OPERATOR_KEY, url="city.example")
    assert no_scheme.returncode == 2 and "'city.example' is not the gateway's http(s) base URL" in no_scheme.stderr


def test_audit_head_prints_the_chain_head_operators_publish(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    async def create() -> None:
        store = Store(url)
        await store.create()
        await store.close()

    async def record() -> list[dict]:
        store = Store(url)
        audit = AuditLog(store)
        try:
            for request in range(3):
                await audit.record(
                    f"request-{request}",
                    "parkr-app",
                    "booking",
                    [Disclosure(f"r000{request}", {"Resident.email"}, {"consent:c1"})],
                )
            return await store.audit_entries()
        finally:
            await store.close()

    missing = citygate("audit", "head", "--store", url)
    assert missing.returncode == 2 and "there is no SQLite store at" in missing.stderr
    assert not (tmp_path / "audit.db").exists()  # a mistyped path is not made into an empty store

    asyncio.run(create())
    empty = citygate("audit", "head", "--json", "--store", url)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == {"seq": 0, "hash": "0" * 64, "at": None}

    entries = asyncio.run(record())
    newest = entries[-1]
    head = citygate("audit", "head", "--json", "--store", url)
    assert head.returncode == 0, head.stderr
    assert json.loads(head.stdout) == {"seq": 3, "hash": newest["hash"], "at": newest["at"]}
    text = citygate("audit", "head", "--store", url)
    assert text.stdout.splitlines() == ["seq 3", f"hash {newest['hash']}", f"at {newest['at']}"]
    assert citygate("audit", "verify", "--store", url).returncode == 0

    # a head that is not the newest entry's is not published as if it were
    with sqlite3.connect(tmp_path / "audit.db") as database:
        database.execute("UPDATE audit_head SET seq = 2, hash = ? WHERE id = 1", (entries[1]["hash"],))
    moved = citygate("audit", "head", "--store", url)
    assert moved.returncode == 1 and "citygate audit verify" in moved.stderr and moved.stdout == ""

    unreadable = citygate("audit", "head", "--store", "postgresql://nobody@127.0.0.1:1/none")
    assert unreadable.returncode == 2 and "cannot read the audit log" in unreadable.stderr
