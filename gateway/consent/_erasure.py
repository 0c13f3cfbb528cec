"""Residents' erasure requests (GDPR art. 17), recorded and forwarded to every connector that holds
their data, through the endpoint its manifest declares (`erasure: {url, method}`).

A request is stored (tables `erasure_requests` and `erasure_deliveries`, one delivery per
connector) before anything is sent, and the mutation answers at once: deliveries run in the
background (`ErasureDispatcher`), so a slow or hanging partner holds neither the resident's request
nor the process. Each delivery is one row whose status only its own attempt changes: `pending`
(being sent, or to be sent again), `done` (the partner confirmed), `failed` (with a stable reason),
`not-supported` (the connector holds residents' data and declares no endpoint) or `retained` (the
operator declares that the connector must keep the data, with a stable legal reason). What cannot be
sent (no endpoint, retained, an endpoint or address refused) is final from the moment it is recorded:
never `pending`, never retried, never audited as a disclosure.

What a partner receives: `{"requestId": ..., "residentId": ..., "requestedAt": ...}` as JSON, with
the connector's own headers (its secrets: the endpoint is on the connector's origin) and a JWT the
gateway signs for this connector and resident (`Citygate-Erasure-Token`, gateway/sdk_erasure.py),
through `HttpPool.post_guarded` (a registered partner's addresses checked at connection, no redirect
followed), within the connector's timeout (capped by the registry's `max_timeout`). What it answers:
2xx with `{"status": "done"}` (erased) or `{"status": "pending"}` (accepted, not finished: it is
asked again, with the same request id, until it says done or the attempts run out). Its answer is
read up to 4 KiB and never stored or shown: only the status and a reason of ours are kept.

Attempts are bounded (`ErasureSettings.max_attempts`), spaced by a doubling delay, and survive
restarts: the dispatcher reads the pending deliveries that are due from the store. Several replicas
share the work: a delivery is claimed with a lease (a conditional UPDATE), so only one sends it at
a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, and_, insert, or_, select, update

from ..executor import AnswerTooLarge, HttpPool, SubgraphUnavailable, UpstreamAddressRefused, UpstreamStatus
from ..sdk_erasure import ERASURE_TOKEN_HEADER, ERASURE_TOKEN_ISSUER, ERASURE_TOKEN_LIFETIME, ERASURE_TOKEN_TYPE
from ..store import Store
from ._receipts import RecordSigner

logger = logging.getLogger("citygate.erasure")

metadata = MetaData()

erasure_requests = Table(
    "erasure_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(200), nullable=False, index=True),
    Column("via", String(100), nullable=False),  # the client the resident asked through
    Column("requested_at", DateTime(timezone=True), nullable=False),
)

erasure_deliveries = Table(
    "erasure_deliveries",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("connector", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("status", String(20), nullable=False, index=True),  # pending | done | failed | not-supported | retained
    Column("reason", String(40)),  # ours, stable; never a partner's words
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

PENDING, DONE, FAILED, NOT_SUPPORTED, RETAINED = "pending", "done", "failed", "not-supported", "retained"
# reasons (stable, documented in docs/privacy.md)
NO_ENDPOINT = "no-endpoint"
REJECTED = "rejected"  # a 4xx answer: the partner refuses this request
HTTP_ERROR = "http-error"  # 5xx (or 429) on every attempt
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
INVALID_RESPONSE = "invalid-response"  # not JSON, too large, no known status
ADDRESS_REFUSED = "address-refused"  # the host resolves to an address the policy refuses
ENDPOINT_REFUSED = "endpoint-refused"  # the endpoint is not on the connector's origin
CONNECTOR_REMOVED = "connector-removed"
# the connector's name now belongs to another owner (removed, then registered again by someone
# else): the resident's id goes to nobody who was not audited as holding their data
OWNER_CHANGED = "owner-changed"
NO_CONFIRMATION = "no-confirmation"  # still "pending" when the attempts ran out
SIGNING_UNAVAILABLE = "signing-unavailable"  # the gateway's key could not sign the delivery's token
# a retained connector's reason is the legal one its manifest declares (registry RETENTION_REASONS)
MAX_ANSWER_BYTES = 4096
# headers of ours a connector's own headers never replace
_OWN_HEADERS = {ERASURE_TOKEN_HEADER, "content-type", "accept"}


@dataclass(frozen=True, slots=True)
class ErasureSettings:
    max_attempts: int = 6
    first_retry: float = 30.0  # seconds before the second attempt; doubled each time
    max_retry: float = 3600.0
    poll: float = 5.0  # how often due deliveries are looked for (another replica's, or after a restart)
    concurrency: int = 8  # deliveries in flight at once, per process


@dataclass(frozen=True, slots=True)
class ErasureTarget:
    """Where and how one connector receives erasure requests (None url: it declares none)."""

    connector: str
    owner: str
    url: str | None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    guarded: bool = True  # a registered partner's: its addresses checked at each connection
    problem: str | None = None  # a reason the endpoint cannot be used (ENDPOINT_REFUSED, ADDRESS_REFUSED)
    retained: str | None = None  # the legal reason the operator declares for keeping the data

    def initial(self) -> tuple[str, str | None]:
        """The status and reason a delivery to this target is recorded with: only a target that
        can be sent to is `pending`; anything else is final at once."""
        if self.retained is not None:
            return RETAINED, self.retained
        if self.url is None:
            return NOT_SUPPORTED, NO_ENDPOINT
        if self.problem is not None:
            return FAILED, self.problem
        return PENDING, None

    @property
    def deliverable(self) -> bool:
        """Whether the resident's id is to be sent to this connector (and audited as disclosed)."""
        return self.initial()[0] == PENDING


@dataclass(frozen=True, slots=True)
class Delivery:
    connector: str
    owner: str
    status: str
    reason: str | None
    attempts: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    id: str
    subject: str
    via: str
    requested_at: datetime
    deliveries: tuple[Delivery, ...]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ErasureStore:
    """The requests and their deliveries, on the gateway's store (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._created = False
        # the dispatcher's first claim and the first record() can ask at once: one create_all, not
        # two racing to CREATE TABLE (SQLite answers the second with "table already exists")
        self._creating = asyncio.Lock()

    async def create(self) -> None:
        if self._created:
            return
        async with self._creating:
            if not self._created:
                await self.store.create_tables(metadata)
                self._created = True

    async def record(self, subject: str, via: str, targets: Iterable[ErasureTarget]) -> str:
        """One request and a delivery per target, in one transaction; its id."""
        await self.create()
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        rows = [
            {
                "request_id": request_id,
                "connector": target.connector,
                "owner": target.owner,
                "status": target.initial()[0],
                "reason": target.initial()[1],
                "attempts": 0,
                "next_attempt_at": now,
                "lease_until": None,
                "updated_at": now,
            }
            for target in targets
        ]
        async with self.store.engine.begin() as connection:
            await connection.execute(
                insert(erasure_requests).values(id=request_id, subject=subject, via=via, requested_at=now)
            )
            if rows:
                await connection.execute(insert(erasure_deliveries), rows)
        return request_id

    async def requests_for(self, subject: str, limit: int = 20) -> list[ErasureRequest]:
        await self.create()
        async with self.store.engine.connect() as connection:
            requests = (
                await connection.execute(
                    select(erasure_requests)
                    .where(erasure_requests.c.subject == subject)
                    .order_by(erasure_requests.c.requested_at.desc())
                    .limit(limit)
                )
            ).all()
            ids = [r.id for r in requests]
            deliveries = (
                (
                    await connection.execute(
                        select(erasure_deliveries)
                        .where(erasure_deliveries.c.request_id.in_(ids))
                        .order_by(erasure_deliveries.c.connector)
                    )
                ).all()
                if ids
                else []
            )
        by_request: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_request.setdefault(d.request_id, []).append(
                Delivery(d.connector, d.owner, d.status, d.reason, d.attempts, _aware(d.updated_at))
            )
        return [
            ErasureRequest(r.id, r.subject, r.via, _aware(r.requested_at), tuple(by_request.get(r.id, ())))
            for r in requests
        ]

    async def due(self, limit: int) -> list[tuple[str, str, str, str, int]]:
        """Pending deliveries whose time has come and that nobody holds: (request, connector, owner
        the request was recorded and audited for, subject, attempts)."""
        await self.create()
        now = datetime.now(UTC)
        d, r = erasure_deliveries.c, erasure_requests.c
        statement = (
            select(d.request_id, d.connector, d.owner, r.subject, d.attempts)
            .join(erasure_requests, r.id == d.request_id)
            .where(
                and_(d.status == PENDING, d.next_attempt_at <= now, or_(d.lease_until.is_(None), d.lease_until < now))
            )
            .order_by(d.next_attempt_at)
            .limit(limit)
        )
        async with self.store.engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(statement)).all()]

    async def claim(self, request_id: str, connector: str, attempts: int, lease: float) -> bool:
        """Hold one delivery for `lease` seconds: False when another process took it first."""
        now = datetime.now(UTC)
        d = erasure_deliveries.c
        statement = (
            update(erasure_deliveries)
            .where(
                and_(
                    d.request_id == request_id,
                    d.connector == connector,
                    d.status == PENDING,
                    d.attempts == attempts,
                    or_(d.lease_until.is_(None), d.lease_until < now),
                )
            )
            .values(lease_until=now + timedelta(seconds=lease), attempts=attempts + 1, updated_at=now)
        )
        async with self.store.engine.begin() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def settle(
        self, request_id: str, connector: str, status: str, reason: str | None, retry_in: float | None
    ) -> None:
        """The outcome of one attempt, for this delivery only."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status, "reason": reason, "lease_until": None, "updated_at": now}
        if retry_in is not None:
            values["next_attempt_at"] = now + timedelta(seconds=retry_in)
        d = erasure_deliveries.c
        async with self.store.engine.begin() as connection:
            await connection.execute(
                update(erasure_deliveries)
                .where(and_(d.request_id == request_id, d.connector == connector))
                .values(**values)
            )


class _Outcome(Exception):
    def __init__(self, status: str, reason: str | None, retry: bool = False) -> None:
        super().__init__(reason or status)
        self.status, self.reason, self.retry = status, reason, retry


class ErasureDispatcher:
    """Sends the pending deliveries, in the background, a bounded number at a time."""

    def __init__(
        self,
        store: ErasureStore,
        targets: Callable[[], dict[str, ErasureTarget]],
        pool: HttpPool,
        signer: RecordSigner,
        settings: ErasureSettings | None = None,
    ) -> None:
        self.store = store
        self.targets = targets  # read at each attempt: a connector registered again sends to its new endpoint
        self.pool = pool  # post_guarded: a fresh connection, addresses checked for a registered partner
        self.signer = signer  # the gateway's key: each delivery carries a token it signs
        self.settings = settings or ErasureSettings()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()
        self._held: set[tuple[str, str]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store not answering: try again at the next poll
                logger.error("erasure deliveries could not be read (%s)", type(error).__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll)
            self._wake.clear()

    async def run_once(self) -> None:
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            return
        for request_id, connector, owner, subject, attempts in await self.store.due(free + len(self._held)):
            if (request_id, connector) in self._held or len(self._in_flight) >= self.settings.concurrency:
                continue
            task = asyncio.ensure_future(self._deliver(request_id, connector, owner, subject, attempts))
            self._held.add((request_id, connector))
            self._in_flight.add(task)
            task.add_done_callback(
                lambda t, key=(request_id, connector): (
                    self._in_flight.discard(t),
                    self._held.discard(key),
                    self._wake.set(),
                )
            )

    async def _deliver(self, request_id: str, connector: str, owner: str, subject: str, attempts: int) -> None:
        target = self.targets().get(connector)
        timeout = target.timeout if target is not None else 1.0
        if not await self.store.claim(request_id, connector, attempts, lease=timeout + 30):
            return
        attempt = attempts + 1
        try:
            if target is None:
                raise _Outcome(FAILED, CONNECTOR_REMOVED)
            if target.owner != owner:
                raise _Outcome(FAILED, OWNER_CHANGED)
            status, reason = target.initial()
            if status != PENDING:  # its manifest changed since the request: final, nothing sent
                raise _Outcome(status, reason)
            await asyncio.wait_for(self._send(target, request_id, subject), timeout)
            status, reason, retry = DONE, None, False
        except _Outcome as outcome:
            status, reason, retry = outcome.status, outcome.reason, outcome.retry
        except TimeoutError:
            status, reason, retry = FAILED, TIMEOUT, True
        except asyncio.CancelledError:
            raise  # shutting down: the lease runs out, the delivery is due again after a restart
        except Exception as error:  # anything else the partner made happen: a failure of ours to name
            logger.warning("erasure delivery to %s failed (%s)", connector, type(error).__name__)
            status, reason, retry = FAILED, UNREACHABLE, True
        retry_in = None
        if retry or status == PENDING:
            if attempt < self.settings.max_attempts:
                retry_in = min(self.settings.first_retry * 2 ** (attempt - 1), self.settings.max_retry)
                status, reason = PENDING, (reason if status != PENDING else None)
            elif status == PENDING:
                status, reason = FAILED, NO_CONFIRMATION
        await self.store.settle(request_id, connector, status, reason, retry_in)

    async def _send(self, target: ErasureTarget, request_id: str, subject: str) -> None:
        assert target.url is not None
        try:
            token = await erasure_token(self.signer, target.connector, request_id, subject)
        except Exception as error:  # the key cannot be read: nothing goes out unsigned
            logger.error("an erasure delivery could not be signed (%s)", type(error).__name__)
            raise _Outcome(FAILED, SIGNING_UNAVAILABLE, retry=True) from None
        body = orjson.dumps(
            {"requestId": request_id, "residentId": subject, "requestedAt": datetime.now(UTC).isoformat()}
        )
        headers = {name: value for name, value in target.headers if name.lower() not in _OWN_HEADERS}
        headers.update({ERASURE_TOKEN_HEADER: token, "content-type": "application/json", "accept": "application/json"})
        try:
            answer = await self.pool.post_guarded(
                target.url, body, headers, method=target.method, max_bytes=MAX_ANSWER_BYTES, guarded=target.guarded
            )
        except UpstreamAddressRefused:
            raise _Outcome(FAILED, ADDRESS_REFUSED) from None  # nothing was sent: final
        except UpstreamStatus as error:
            if error.status == 429 or error.status >= 500:
                raise _Outcome(FAILED, HTTP_ERROR, retry=True) from None
            # a 4xx, or a redirect (never followed: the partner must answer at its endpoint)
            raise _Outcome(FAILED, REJECTED) from None
        except AnswerTooLarge:
            raise _Outcome(FAILED, INVALID_RESPONSE, retry=True) from None
        except SubgraphUnavailable:
            raise _Outcome(FAILED, UNREACHABLE, retry=True) from None
        try:
            status = orjson.loads(answer).get("status")
        except (orjson.JSONDecodeError, AttributeError):
            raise _Outcome(FAILED, INVALID_RESPONSE, retry=True) from None
        if status == "pending":
            raise _Outcome(PENDING, None)
        if status != "done":
            raise _Outcome(FAILED, INVALID_RESPONSE, retry=True)


async def erasure_token(signer: RecordSigner, connector: str, request_id: str, subject: str) -> str:
    """The JWT a delivery carries (gateway/sdk_erasure.py checks it): for this connector only
    (`aud`), this resident (`sub`, the id the connector knows) and this request, for 5 minutes."""
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": ERASURE_TOKEN_ISSUER,
        "aud": connector,
        "sub": subject,
        "requestId": request_id,
        "iat": now,
        "exp": now + ERASURE_TOKEN_LIFETIME,
        "jti": str(uuid.uuid4()),
    }
    return await signer.sign(claims, ERASURE_TOKEN_TYPE)
