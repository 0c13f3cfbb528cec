"""Many replicas, one truth (issue 13): three `citygate serve` replicas on one PostgreSQL database,
Debian's nginx in front, driven from outside as residents, partners and the operator would.

- 200 grant/withdraw cycles for one resident (r0003 to Parkr), each mutation through a random
  entry (nginx or one replica directly), each followed at once by a read on every replica and
  through nginx, while readers hammer every replica and nginx: no read sent after a withdrawal
  answered discloses (nor is audited under that consent), no read sent after a grant answered
  (and done before the next withdrawal) misses it.
- Mid-run, one replica's LISTEN connection is terminated (`pg_terminate_backend`): still no stale
  disclosure, and that replica's /readyz answers 503 and then recovers.
- A connector registered through one replica is served by all three; a policy reload through one
  replica (the policy file they share changed) applies on all three. How soon is printed (the
  issue asks for 1 s; docs/benchmarks.md has the figures), not asserted.

The figures are printed (run with -s to see them when it passes) and are in every failure message.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from gateway.demo import PartnerServer
from tests.e2e.replicas import ROOT, City, Nginx, Replica, fresh_database, postgres_up
from tests.e2e.weather import schema as weather_schema
from tests.world.server import WorldServer

pytestmark = pytest.mark.skipif(not postgres_up(), reason="no PostgreSQL on 127.0.0.1:5432")

CYCLES = 200
READER_PAUSE = 0.03  # seconds between two reads of one reader: one reader on each replica and one through nginx
KILL_AT_CYCLE = 60
RESIDENT = "r0003"
PARKR_READ = f'{{ resident(id: "{RESIDENT}") {{ email phone }} }}'
GRANT = (
    'mutation { grantConsent(recipient: "parkr-app", purpose: "booking", categories: ["user.contact"], expiresInDays: 30) '
    "{ consent { id active } } }"
)
WITHDRAW = "mutation Withdraw($id: ID!) { withdrawConsent(consentId: $id) { active withdrawnAt } }"
WEATHER_READ = '{ district(code: "75105") { temperature } }'
WEATHER_KNOWN = '{ district(code: "75105") @skip(if: true) { temperature } }'
# the gateways' listening connections (gateway/store/_changes.py names them), in this database only
LISTENERS = """
    SELECT pid, client_port, application_name FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND (application_name = 'citygate-listener' OR query ILIKE 'LISTEN%')
"""


@dataclass
class Cluster:
    replicas: list[Replica]
    nginx: Nginx
    city: City
    store: str
    weather_url: str

    def entries(self) -> dict[str, str]:
        """Where a request may enter: nginx, or each replica directly."""
        return {"nginx": self.nginx.url, **{replica.name: replica.url for replica in self.replicas}}

    def replica_by_address(self, address: str) -> str:
        for replica in self.replicas:
            if address.endswith(f":{replica.port}"):
                return replica.name
        return address

    def logs(self) -> str:
        return (
            "\n".join(f"--- {replica.name} ---\n{replica.tail(15)}" for replica in self.replicas)
            + f"\n--- nginx ---\n{self.nginx.errors()}"
        )


@pytest.fixture
def cluster(tmp_path: Path):
    with fresh_database() as store:
        city = City(tmp_path)
        partners = PartnerServer(ROOT / "connectors").start()  # the demo's Parkr, Voisinage, Table d'hôte
        weather = WorldServer({"weather": weather_schema}).start()  # a partner registering later
        replicas: list[Replica] = []
        nginx = None
        try:
            # the first replica creates the tables; the other two start together on them
            replicas.append(Replica("a", tmp_path, store, city, partners.url))
            replicas[0].wait_until_ready()
            replicas += [Replica(name, tmp_path, store, city, partners.url) for name in ("b", "c")]
            for replica in replicas[1:]:
                replica.wait_until_ready()
            nginx = Nginx(tmp_path / "nginx", replicas)
            yield Cluster(replicas, nginx, city, store, weather.url("weather"))
        finally:
            if nginx is not None:
                nginx.stop()
            for replica in replicas:
                replica.stop()
            partners.server.should_exit = True
            weather.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: dict  # the JSON answer when the status is 200, else empty
    text: str


@dataclass
class Read:
    entry: str
    kind: str  # "follow-up" (right after a mutation answered) or "reader" (hammering)
    sent: float
    answered: float
    served_by: str
    disclosed: bool | None  # None: the request failed
    reasons: frozenset[str]
    request_id: str | None


@dataclass
class Mutation:
    kind: str  # grant | withdraw
    consent_id: str
    entry: str
    served_by: str
    sent: float
    answered: float


@dataclass
class ListenerKill:
    replica: str
    backends: list[dict] = field(default_factory=list)
    killed_at: float | None = None
    not_ready_after: float | None = None  # seconds from the kill to the first 503
    not_ready_reason: str = ""
    ready_again_after: float | None = None  # seconds from the kill to 200 again
    cycle: int | None = None


class Run:
    """The traffic and what it saw; times are the test process's monotonic clock."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.cluster = cluster
        self.random = random.Random(seed)
        self.seed = seed
        self.reads: list[Read] = []
        self.mutations: list[Mutation] = []
        self.failures: Counter = Counter()
        self.kill: ListenerKill | None = None
        self.took: dict[str, float] = {}  # seconds the registration and the reload took to answer
        parkr = {"x-api-key": cluster.city.client_keys["parkr-app"], "x-citygate-purpose": "booking"}
        self.parkr_headers = parkr
        self.resident_headers = {"authorization": f"Bearer {cluster.city.resident_token(RESIDENT)}"}
        # aiohttp rather than httpx here: a third of the client's CPU per request, on a machine the
        # replicas, nginx and PostgreSQL share with this process
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15), connector=aiohttp.TCPConnector(limit=64)
        )

    async def request(self, method: str, url: str, headers: dict | None = None, payload: dict | None = None) -> Answer:
        async with self.session.request(method, url, json=payload, headers=headers or {}) as response:
            text = await response.text()
            try:
                body = json.loads(text) if response.status == 200 else {}
            except ValueError:
                body = {}
            headers = {name.lower(): value for name, value in response.headers.items()}
            return Answer(response.status, headers, body if isinstance(body, dict) else {}, text)

    async def post(self, base: str, query: str, headers: dict, variables: dict | None = None) -> Answer:
        return await self.request("POST", f"{base}/graphql", headers, {"query": query, "variables": variables or {}})

    def served_by(self, entry: str, response: Answer) -> str:
        if entry != "nginx":
            return entry
        return self.cluster.replica_by_address(response.headers.get("x-citygate-upstream", "?"))

    async def read(self, entry: str, kind: str) -> Read:
        base = self.cluster.entries()[entry]
        sent = time.monotonic()
        disclosed, reasons, request_id, served_by = None, frozenset(), None, "?"
        try:
            response = await self.post(base, PARKR_READ, self.parkr_headers)
            served_by = self.served_by(entry, response)
            request_id = response.headers.get("x-request-id")
            body = response.body
            resident = (body.get("data") or {}).get("resident")
            if resident is None or body.get("errors"):
                self.failures[f"read {response.status} {json.dumps(body.get('errors'))[:200]}"] += 1
            else:
                # disclosed: a value in clear (masked values carry '*', or are null)
                values = [resident.get("email"), resident.get("phone")]
                disclosed = any(isinstance(value, str) and "*" not in value for value in values)
                withheld = (body.get("extensions") or {}).get("privacy", {}).get("withheld", [])
                reasons = frozenset(item.get("reason", "?") for item in withheld)
        except (aiohttp.ClientError, TimeoutError) as error:
            self.failures[f"read {type(error).__name__}"] += 1
        observed = Read(entry, kind, sent, time.monotonic(), served_by, disclosed, reasons, request_id)
        self.reads.append(observed)
        return observed

    async def mutate(self, kind: str, consent_id: str | None = None) -> Mutation:
        entry = self.random.choice(list(self.cluster.entries()))
        base = self.cluster.entries()[entry]
        sent = time.monotonic()
        if kind == "grant":
            response = await self.post(base, GRANT, self.resident_headers)
        else:
            response = await self.post(base, WITHDRAW, self.resident_headers, {"id": consent_id})
        answered = time.monotonic()
        body = response.body or {"status": response.status, "text": response.text[:300]}
        if kind == "grant":
            consent = ((body.get("data") or {}).get("grantConsent") or {}).get("consent") or {}
            assert consent.get("active") is True, f"grant through {entry} failed: {body}"
            consent_id = consent["id"]
        else:
            withdrawn = (body.get("data") or {}).get("withdrawConsent") or {}
            assert withdrawn.get("active") is False, f"withdrawal through {entry} failed: {body}"
        assert consent_id is not None
        mutation = Mutation(kind, consent_id, entry, self.served_by(entry, response), sent, answered)
        self.mutations.append(mutation)
        return mutation

    async def follow_up(self) -> None:
        """The next request on every replica, and through nginx, at once."""
        await asyncio.gather(*(self.read(entry, "follow-up") for entry in self.cluster.entries()))

    async def hammer(self, entry: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.read(entry, "reader")
            await asyncio.sleep(READER_PAUSE)  # hammering, but leaving the cycles (and the 2-core CI) room to run

    async def cycles(self) -> None:
        stop = asyncio.Event()
        readers = [asyncio.create_task(self.hammer(entry, stop)) for entry in self.cluster.entries()]
        killer = None
        try:
            for cycle in range(CYCLES):
                if cycle == KILL_AT_CYCLE:
                    killer = asyncio.create_task(self.kill_listener(self.cluster.replicas[1], cycle))
                granted = await self.mutate("grant")
                await self.follow_up()
                await self.mutate("withdraw", granted.consent_id)
                await self.follow_up()
        finally:
            stop.set()
            await asyncio.gather(*readers)
            if killer is not None:
                await killer

    async def kill_listener(self, replica: Replica, cycle: int) -> None:
        """Terminate the replica's LISTEN connection (only its own, in this test's database), then
        watch its /readyz: 503 while the listener is down, 200 once it is back."""
        kill = self.kill = ListenerKill(replica.name, cycle=cycle)
        connection = await asyncpg.connect(self.cluster.store, timeout=5)
        try:
            deadline = time.monotonic() + 5
            while not kill.backends and time.monotonic() < deadline:
                ports = replica.local_tcp_ports()
                rows = await connection.fetch(LISTENERS)
                kill.backends = [dict(row) for row in rows if row["client_port"] in ports]
                if not kill.backends:
                    await asyncio.sleep(0.1)
            if not kill.backends:
                return
            kill.killed_at = time.monotonic()
            await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [b["pid"] for b in kill.backends]
            )
        finally:
            await connection.close()
        deadline = kill.killed_at + 10
        while time.monotonic() < deadline:
            response = await self.request("GET", f"{replica.url}/readyz")
            elapsed = time.monotonic() - kill.killed_at
            if response.status == 503 and kill.not_ready_after is None:
                kill.not_ready_after, kill.not_ready_reason = elapsed, response.text[:200]
            elif response.status == 200 and kill.not_ready_after is not None:
                kill.ready_again_after = elapsed
                return
            await asyncio.sleep(0.02)


@dataclass
class Verdict:
    judged_withdrawn: int = 0  # reads entirely between a withdrawal's answer and the next grant
    judged_granted: int = 0  # reads entirely between a grant's answer and its withdrawal
    stale: list[Read] = field(default_factory=list)  # disclosed after a withdrawal answered
    missed: list[Read] = field(default_factory=list)  # "no-consent" after a grant answered
    withheld_otherwise: Counter = field(default_factory=Counter)  # after a grant, withheld for another reason
    stale_audited: list[tuple[str, str]] = field(default_factory=list)  # (request id, consent id)
    audited_under_consent: int = 0


def judge(run: Run, audit_rows: list[asyncpg.Record]) -> Verdict:
    verdict = Verdict()
    mutations = run.mutations  # one after the other: each sent after the previous one answered
    answered = [m.answered for m in mutations]
    for read in run.reads:
        if read.disclosed is None:
            continue
        # the last mutation answered before the read was sent, and none sent before the read answered
        index = bisect.bisect_right(answered, read.sent) - 1
        if index < 0:
            continue
        last = mutations[index]
        if index + 1 < len(mutations) and mutations[index + 1].sent < read.answered:
            continue  # another mutation in flight while it was read: either answer is right
        if last.kind == "withdraw":
            verdict.judged_withdrawn += 1
            if read.disclosed:
                verdict.stale.append(read)
        else:
            verdict.judged_granted += 1
            if not read.disclosed:
                if read.reasons <= {"no-consent"}:
                    verdict.missed.append(read)
                else:
                    verdict.withheld_otherwise[",".join(sorted(read.reasons))] += 1
    # the audit log: no disclosure recorded under a consent for a read sent after its withdrawal answered
    withdrawn_at = {m.consent_id: m.answered for m in mutations if m.kind == "withdraw"}
    reads_by_id = {read.request_id: read for read in run.reads if read.request_id}
    for row in audit_rows:
        for basis in json.loads(row["basis"]):
            if not basis.startswith("consent:"):
                continue
            verdict.audited_under_consent += 1
            consent_id = basis.removeprefix("consent:")
            read = reads_by_id.get(row["request_id"])
            if read is not None and consent_id in withdrawn_at and read.sent >= withdrawn_at[consent_id]:
                verdict.stale_audited.append((row["request_id"], consent_id))
    return verdict


async def first_seen(check, seconds: float) -> float | None:
    """Seconds until a `check()` answered true, or None if none did within `seconds`. A check is
    sent every 50 ms without waiting for the previous one, so the figure is the change's delay plus
    one request's latency (polling one after the other would add up to two), and the checks load
    the replica little while it does the change."""
    started = time.monotonic()
    seen: list[float] = []

    async def one() -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            if await check():
                seen.append(time.monotonic() - started)

    checks = []
    while not seen and time.monotonic() - started < seconds:
        checks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.05)
    await asyncio.gather(*checks)
    return min(seen) if seen else None


async def registration_propagation(run: Run) -> dict[str, float | None]:
    """Register a partner's connector through replica a; seconds until each replica serves it."""
    cluster = run.cluster
    operator = {"authorization": f"Bearer {cluster.city.operator_key}"}
    first = cluster.replicas[0]

    def knows(replica: Replica):
        # the replica's schema has the new field: the query validates (skipped: nothing is fetched, so
        # the figure is the replica's, not the weather server's, which shares this test's process)
        async def check() -> bool:
            answer = (await run.post(replica.url, WEATHER_KNOWN, {})).body
            return "data" in answer and not answer.get("errors")

        return check

    assert not any([await knows(replica)() for replica in cluster.replicas]), (
        "the weather connector is served before it is registered"
    )
    added = await run.request("POST", f"{first.url}/admin/partners", operator, {"name": "meteo"})
    assert added.status in (200, 201), added.text
    manifest = {"name": "weather", "owner": "meteo", "kind": "subgraph", "url": cluster.weather_url, "timeout": 5}
    started = time.monotonic()
    registered = await run.request("PUT", f"{first.url}/admin/connectors/weather", operator, manifest)
    run.took["registration"] = time.monotonic() - started
    assert registered.status == 200 and registered.body.get("ok") is True, registered.text
    times = await asyncio.gather(*(first_seen(knows(replica), 10) for replica in cluster.replicas))
    for replica, seconds in zip(cluster.replicas, times, strict=True):
        if seconds is not None:  # and it is served: the weather partner answers through every replica
            answer = (await run.post(replica.url, WEATHER_READ, {})).body
            assert answer == {"data": {"district": {"temperature": 14.5}}}, f"replica {replica.name}: {answer}"
    return {replica.name: seconds for replica, seconds in zip(cluster.replicas, times, strict=True)}


async def policy_propagation(run: Run) -> dict[str, float | None]:
    """Change the shared policy file (phone numbers masked to null, a new version), reload it
    through replica b; seconds until each replica applies it."""
    cluster = run.cluster

    def phone_nulled(replica: Replica):
        async def check() -> bool:
            answer = (await run.post(replica.url, PARKR_READ, run.parkr_headers)).body
            resident = (answer.get("data") or {}).get("resident") or {}
            return "phone" in resident and resident["phone"] is None

        return check

    assert not any([await phone_nulled(replica)() for replica in cluster.replicas]), (
        "phone numbers are nulled before the reload"
    )
    policy = cluster.city.policy
    policy["version"] = f"{policy['version']}-reloaded"
    policy["masking"]["categories"]["user.contact.phone_number"] = "null"
    cluster.city.write_policy()
    started = time.monotonic()
    reloaded = await run.request(
        "POST",
        f"{cluster.replicas[1].url}/admin/policy/reload",
        {"authorization": f"Bearer {cluster.city.operator_key}"},
    )
    run.took["reload"] = time.monotonic() - started
    assert reloaded.status == 200, reloaded.text
    times = await asyncio.gather(*(first_seen(phone_nulled(replica), 10) for replica in cluster.replicas))
    return {replica.name: seconds for replica, seconds in zip(cluster.replicas, times, strict=True)}


def _percentiles(durations: list[float]) -> str:
    ordered = sorted(durations) or [0.0]
    return f"p50 {ordered[len(ordered) // 2] * 1000:.0f} ms, p95 {ordered[int(len(ordered) * 0.95)] * 1000:.0f} ms"


def _seconds(value: float | None) -> str:
    return "never (10 s)" if value is None else f"{value * 1000:.0f} ms"


def test_three_replicas_behind_nginx_agree_on_consent_registry_and_policy(cluster: Cluster):
    seed = random.randrange(2**32)

    async def scenario():
        run = Run(cluster, seed)
        try:
            started = time.monotonic()
            await run.cycles()
            cycles_seconds = time.monotonic() - started
            registration = await registration_propagation(run)
            policy = await policy_propagation(run)
        finally:
            await run.session.close()
        audit = await asyncpg.connect(cluster.store, timeout=5)
        try:
            rows = await audit.fetch("SELECT request_id, basis FROM audit_log")
        finally:
            await audit.close()
        return run, cycles_seconds, registration, policy, rows

    run, cycles_seconds, registration, policy, audit_rows = asyncio.run(scenario())
    verdict = judge(run, audit_rows)
    kill = run.kill
    through_nginx = Counter(read.served_by for read in run.reads if read.entry == "nginx")
    while_down = []  # reads the cut-off replica answered between the kill and its readiness again
    if kill is not None and kill.killed_at is not None and kill.ready_again_after is not None:
        back = kill.killed_at + kill.ready_again_after
        while_down = [
            r for r in run.reads if r.served_by == kill.replica and kill.killed_at <= r.sent and r.answered <= back
        ]
    figures = "\n".join(
        [
            f"seed {seed}; {CYCLES} grant/withdraw cycles in {cycles_seconds:.1f} s",
            f"requests: {len(run.mutations)} mutations (entries {dict(Counter(m.entry for m in run.mutations))}), "
            f"{len(run.reads)} reads ({sum(r.kind == 'follow-up' for r in run.reads)} follow-ups, {sum(r.kind == 'reader' for r in run.reads)} by readers), "
            f"through nginx answered by {dict(through_nginx)}",
            f"latency: mutations {_percentiles([m.answered - m.sent for m in run.mutations])}; reads {_percentiles([r.answered - r.sent for r in run.reads])}",
            f"judged: {verdict.judged_withdrawn} reads after a withdrawal answered, {verdict.judged_granted} after a grant answered",
            f"stale disclosures: {len(verdict.stale)} (by replica {dict(Counter(r.served_by for r in verdict.stale))}); "
            f"audited under a withdrawn consent: {len(verdict.stale_audited)} of {verdict.audited_under_consent} consent-based audit entries",
            f"missed grants: {len(verdict.missed)} (by replica {dict(Counter(r.served_by for r in verdict.missed))}); "
            f"withheld for another reason after a grant: {dict(verdict.withheld_otherwise)}; failed requests: {dict(run.failures)}",
            "listener kill: "
            + (
                "not attempted"
                if kill is None
                else f"replica {kill.replica} at cycle {kill.cycle}, backends {kill.backends}; /readyz 503 after "
                f"{_seconds(kill.not_ready_after)} ({kill.not_ready_reason!r}), 200 again after {_seconds(kill.ready_again_after)}; "
                f"{len(while_down)} reads answered by it meanwhile ({sum(bool(r.disclosed) for r in while_down)} disclosing)"
            ),
            f"registration through a (answered in {_seconds(run.took.get('registration'))}) then served by: {', '.join(f'{name} {_seconds(s)}' for name, s in registration.items())}",
            f"policy reload through b (answered in {_seconds(run.took.get('reload'))}) then applied by: {', '.join(f'{name} {_seconds(s)}' for name, s in policy.items())}",
        ]
    )
    print("\n" + figures)
    context = f"\n{figures}\n{cluster.logs()}"

    assert set(through_nginx) == {replica.name for replica in cluster.replicas}, context  # the balancer spread the load
    assert not run.failures, context
    assert verdict.judged_withdrawn >= 4 * CYCLES and verdict.judged_granted >= 4 * CYCLES, (
        context
    )  # the follow-ups at least
    assert not verdict.stale and not verdict.stale_audited, context
    assert not verdict.missed, context
    assert kill is not None and kill.backends, (
        f"no LISTEN connection of replica {cluster.replicas[1].name} in pg_stat_activity{context}"
    )
    assert kill.not_ready_after is not None and kill.ready_again_after is not None, context
    # served by every replica; how soon is a figure (printed), not an assertion: speed is measured,
    # never asserted in tests (issue 13's "within 1 s" is quoted from these figures)
    assert all(seconds is not None for seconds in registration.values()), context
    assert all(seconds is not None for seconds in policy.values()), context
