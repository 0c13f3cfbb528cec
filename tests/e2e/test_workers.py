"""`citygate serve --workers 2`: two worker processes on one port and one PostgreSQL database.

A resident grants Parkr a consent and withdraws it, each through a new connection (whichever
worker takes it); the next reads, each on a new connection too, must follow it, whichever worker
serves them: a grant is seen, a withdrawal withholds. Rounds go on until both workers have
served reads after a withdrawal (the kernel picks the worker of each connection), so both are
shown to agree. Which worker served what is read from the JSON access log (its `pid`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.replicas import POSTGRES, ROOT, City, postgres_up
from tests.world.server import free_port

pytestmark = pytest.mark.skipif(not postgres_up(), reason="no PostgreSQL on 127.0.0.1:5432")

RESIDENT = "r0003"
PARKR_READ = f'{{ resident(id: "{RESIDENT}") {{ email phone }} }}'
GRANT = (
    'mutation { grantConsent(recipient: "parkr-app", purpose: "booking", categories: ["user.contact"], expiresInDays: 30) '
    "{ consent { id active } } }"
)
WITHDRAW = "mutation Withdraw($id: ID!) { withdrawConsent(consentId: $id) { active } }"
READS_PER_ROUND = 4
MAX_ROUNDS = 40


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of this test's own (citygate_n_<random>), dropped at the end."""
    name = f"citygate_n_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(f"{POSTGRES}/postgres", timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


class Workers:
    """`citygate serve --workers 2` over the city's own connector and the demo's policy."""

    def __init__(self, folder: Path, store: str, city: City) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "workers.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
        environment.update(CITYGATE_OPERATOR_KEY=city.operator_key, CITYGATE_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--workers",
            "2",
            "--connectors",
            str(ROOT / "examples" / "connectors"),
            "--policy",
            str(city.policy_file),
            "--store",
            store,
            "--port",
            str(self.port),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=folder)

    def wait_until_ready(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"citygate exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}"
            )
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"citygate did not become ready:\n{self.log.read_text()[-3000:]}")

    def post(self, query: str, headers: dict[str, str], variables: dict | None = None) -> tuple[str, dict]:
        """One request on a connection of its own (so the kernel picks a worker for each): its id and body."""
        request_id = uuid.uuid4().hex
        with httpx.Client(timeout=30) as client:  # a new connection
            response = client.post(
                self.url + "/graphql",
                json={"query": query, "variables": variables},
                headers={**headers, "x-request-id": request_id},
            )
        assert response.headers["x-request-id"] == request_id
        return request_id, response.json()

    def served_by(self) -> dict[str, int]:
        """request id -> the pid of the worker that answered it (the JSON access log)."""
        pids = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "citygate.access" and "request_id" in entry:
                    pids[entry["request_id"]] = entry["pid"]
        return pids

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def disclosed(body: dict) -> bool:
    resident = (body.get("data") or {}).get("resident") or {}
    assert resident, body
    return any(isinstance(value, str) and "*" not in value for value in (resident.get("email"), resident.get("phone")))


def test_two_workers_agree_on_a_withdrawal_at_the_next_request(database, tmp_path: Path):
    city = City(tmp_path)
    parkr = {"x-api-key": city.client_keys["parkr-app"], "x-citygate-purpose": "booking"}
    resident = {"authorization": f"Bearer {city.resident_token(RESIDENT)}"}
    workers = Workers(tmp_path, database, city)
    try:
        workers.wait_until_ready()
        after_grant: list[str] = []
        after_withdrawal: list[str] = []
        mutations: list[str] = []
        stale: list[tuple[str, dict]] = []
        missed: list[tuple[str, dict]] = []
        rounds = 0
        for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007  (printed below)
            request_id, body = workers.post(GRANT, resident)
            consent = body["data"]["grantConsent"]["consent"]
            assert consent["active"] is True, body
            mutations.append(request_id)
            for _ in range(READS_PER_ROUND):
                request_id, body = workers.post(PARKR_READ, parkr)
                after_grant.append(request_id)
                if not disclosed(body):
                    missed.append((request_id, body))
            request_id, body = workers.post(WITHDRAW, resident, {"id": consent["id"]})
            assert body["data"]["withdrawConsent"]["active"] is False, body
            mutations.append(request_id)
            for _ in range(READS_PER_ROUND):
                request_id, body = workers.post(PARKR_READ, parkr)
                after_withdrawal.append(request_id)
                if disclosed(body):
                    stale.append((request_id, body))
            time.sleep(0.3)  # the access log lines of this round are written
            served = workers.served_by()
            if (
                len({served.get(r) for r in after_withdrawal} - {None}) == 2
                and len({served.get(r) for r in mutations} - {None}) == 2
            ):
                break
        served = workers.served_by()
        assert stale == [], f"disclosed after a withdrawal had answered: {stale}"
        assert missed == [], f"withheld after a grant had answered: {missed}"
        pids = {served[r] for r in after_withdrawal if r in served}
        assert len(pids) == 2, (
            f"reads after withdrawals were all served by {pids}: both workers were not shown to agree"
        )
        assert len({served[r] for r in mutations if r in served}) == 2  # and both took consent changes
        assert workers.process.pid not in pids  # the parent serves nothing itself
        per_worker = Counter(served[r] for r in after_grant + after_withdrawal if r in served)
        print(f"{rounds} rounds; reads per worker {sorted(per_worker.values())}")
    finally:
        workers.stop()
    assert workers.process.returncode == 0
