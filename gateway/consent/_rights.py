"""Residents' rights across every connector: the export (`_export.py`) and erasure requests
(`_erasure.py`), wired to the Engine being served and to the registry's connectors.

One `ResidentRights` lives as long as the gateway (policy reloads rebuild the control plane, not
this): it holds the erasure dispatcher, whose deliveries must go on whatever is reloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from ..errors import ClientRefusal
from ..identity import Requester
from ._audit import AuditLog, Disclosure
from ._erasure import (
    ADDRESS_REFUSED,
    ENDPOINT_REFUSED,
    PENDING,
    ErasureDispatcher,
    ErasureRequest,
    ErasureSettings,
    ErasureStore,
    ErasureTarget,
)
from ._export import (
    EXPORT_BASIS,
    EXPORT_PURPOSE,
    ExportOperation,
    ExportUnavailable,
    build_document,
    build_export_operation,
    new_request_id,
)

logger = logging.getLogger("citygate.rights")

ERASURE_PURPOSE = "erasure"
ERASURE_BASIS = "self:erasure"
# a resident's erasure request answers their repeats made within this time (and while it is pending)
ERASURE_REPEAT_WINDOW = timedelta(minutes=1)


class RightsError(ClientRefusal):
    """An export or erasure refused or not served now: `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ResidentRights:
    def __init__(
        self,
        erasures: ErasureStore,
        *,
        engine: Callable[[], Any],
        connectors: Callable[[], dict[str, Any]],
        max_timeout: Callable[[], float],
        pool: Any,
        signer: Any,
        address_refused: Callable[[str], bool] | None = None,
        erasure_endpoint: Callable[[Any], tuple[str, dict[str, str]] | None] = lambda _manifest: None,
        excluded: frozenset[str] = frozenset(),
        settings: ErasureSettings | None = None,
    ) -> None:
        self.erasures = erasures
        self.engine = engine  # the Engine served now
        self.connectors = connectors  # the registry's connectors now: name -> Connector
        self.max_timeout = max_timeout
        self.excluded = excluded  # the control plane: never exported from, never asked to erase
        # a manifest's erasure URL and headers, resolved and checked (the registry's rules), or None: refused
        self.erasure_endpoint = erasure_endpoint
        # a registered partner's endpoint whose address the policy refuses: final when recorded
        self.address_refused = address_refused or (lambda _url: False)
        self._exporting: set[str] = set()  # residents with an export running: one at a time each
        self.dispatcher = ErasureDispatcher(erasures, self.targets, pool, signer, settings)
        self._operations: WeakKeyDictionary = WeakKeyDictionary()  # Engine -> its export operation

    # -- export ----------------------------------------------------------------------------------

    def operation(self, engine) -> ExportOperation:
        operation = self._operations.get(engine)
        if operation is None:
            if engine.privacy is None:
                raise ExportUnavailable("the supergraph carries no privacy annotations")
            operation = self._operations[engine] = build_export_operation(engine.model, engine.privacy, self.excluded)
        return operation

    async def export(self, requester: Requester, audit: AuditLog | None) -> dict[str, Any]:
        """One export at a time per resident: an operation repeating `export` under a hundred aliases
        runs one, the others are refused (each is a whole generated operation over every connector)."""
        resident = requester.resident
        assert resident is not None
        if resident in self._exporting:
            raise RightsError("RATE_LIMITED", "an export of yours is already running: ask again once it is answered")
        self._exporting.add(resident)
        try:
            return await self._export(requester, audit)
        finally:
            self._exporting.discard(resident)

    async def _export(self, requester: Requester, audit: AuditLog | None) -> dict[str, Any]:
        """Everything about the signed-in resident, through the Engine with the resident as the
        requester, audited (recipient: the client it is handed to, purpose `export`) before it is
        returned; an audit log that refuses refuses the export (fail closed)."""
        resident = requester.resident
        assert resident is not None
        engine = self.engine()
        if engine is None:
            raise RightsError("EXPORT_UNAVAILABLE", "the gateway is not serving yet")
        try:
            operation = self.operation(engine)
        except ExportUnavailable as error:
            raise RightsError("EXPORT_UNAVAILABLE", str(error)) from None
        request_id = new_request_id()
        # the generated operation is the gateway's own: it may be larger than a client's may be
        limits = replace(
            engine.planner.limits, max_fields=50_000, max_tokens=200_000, max_document_size=1024 * 1024, max_cost=0
        )
        response = await engine.run(
            operation.query,
            "CitygateExport",
            {"resident": resident},
            allowed_kinds=("query",),
            requester=requester,
            request_id=request_id,
            limits=limits,
            max_cost=0,
        )
        owners = {name: c.manifest.owner for name, c in self.connectors().items()}
        exported = build_document(
            operation,
            response.data,
            response.errors,
            resident=resident,
            model=engine.model,
            privacy=engine.privacy,
            request_id=request_id,
            connectors=owners,
        )
        if audit is not None:
            try:
                await audit.record(
                    request_id,
                    requester.recipient,
                    EXPORT_PURPOSE,
                    [Disclosure(resident, set(exported.coordinates), {EXPORT_BASIS})],
                )
            except Exception as error:
                logger.error("an export could not be audited (%s): refused", type(error).__name__)
                raise RightsError("AUDIT_UNAVAILABLE", "the export cannot be recorded now: ask again later") from None
        return exported.document

    # -- erasure ---------------------------------------------------------------------------------

    def holders(self) -> dict[str, str]:
        """The connectors holding residents' data in the served supergraph (they resolve a personal
        field of a type with a subject, a resident's id as a key included), with their owners."""
        engine = self.engine()
        if engine is None or engine.privacy is None:
            return {}
        model, privacy = engine.model, engine.privacy
        found: set[str] = set()
        for type_name, named in model.api_schema.type_map.items():
            if type_name.startswith("__") or privacy.subject_field(type_name) is None or not hasattr(named, "fields"):
                continue
            for field_name in named.fields:
                if privacy.personal(type_name, field_name) is not None:
                    found.update(model.subgraphs_resolving(type_name, field_name))
        connectors = self.connectors()
        return {
            name: (connectors[name].manifest.owner if name in connectors else model.owner_of(name))
            for name in sorted(found - self.excluded)
        }

    def targets(self) -> dict[str, ErasureTarget]:
        """Every connector's erasure endpoint as its manifest says now (read at each attempt)."""
        targets = {}
        cap = self.max_timeout()
        for name, connector in self.connectors().items():
            manifest = connector.manifest
            timeout = min(manifest.timeout, cap)
            guarded = connector.source == "registry"
            if manifest.erasure is None or manifest.erasure.retained is not None:
                retained = manifest.erasure.retained if manifest.erasure is not None else None
                targets[name] = ErasureTarget(
                    name, manifest.owner, None, timeout=timeout, guarded=guarded, retained=retained
                )
                continue
            endpoint = self.erasure_endpoint(manifest)
            url, headers, problem = (
                (endpoint[0], endpoint[1], None) if endpoint is not None else (None, {}, ENDPOINT_REFUSED)
            )
            if problem is None and guarded and self.address_refused(url):
                problem = ADDRESS_REFUSED
            targets[name] = ErasureTarget(
                name,
                manifest.owner,
                url or manifest.erasure.url,
                manifest.erasure.method,
                tuple(headers.items()),
                timeout,
                guarded,
                problem,
            )
        return targets

    async def request_erasure(self, requester: Requester, audit: AuditLog | None) -> ErasureRequest:
        resident = requester.resident
        assert resident is not None
        # a request still pending, or made within the repeat window, is the answer to another one
        # (mutations aliased a hundred times, a resident pressing twice, a retry after a lost
        # answer): no new deliveries, no new disclosures. The window matters when deliveries are
        # quick: the aliases of one operation run one after another and must not open one request
        # each because the first one's deliveries were already done.
        now = datetime.now(UTC)
        for earlier in await self.requests(resident, limit=5):
            recent = now - earlier.requested_at < ERASURE_REPEAT_WINDOW
            if recent or any(delivery.status == PENDING for delivery in earlier.deliveries):
                return earlier
        holders = self.holders()
        targets = self.targets()
        chosen = [targets.get(name) or ErasureTarget(name, owner, None) for name, owner in holders.items()]
        key = self._resident_key()
        if audit is not None:
            # each partner with an endpoint receives the resident's id: a disclosure, recorded
            # before anything is sent (an audit log that refuses refuses the request)
            request_tag = new_request_id()
            try:
                for owner in sorted({t.owner for t in chosen if t.deliverable}):
                    await audit.record(
                        request_tag, owner, ERASURE_PURPOSE, [Disclosure(resident, {key}, {ERASURE_BASIS})]
                    )
            except Exception as error:
                logger.error("an erasure request could not be audited (%s): refused", type(error).__name__)
                raise RightsError(
                    "AUDIT_UNAVAILABLE", "the erasure request cannot be recorded now: ask again later"
                ) from None
        try:
            request_id = await self.erasures.record(resident, requester.recipient, chosen)
        except Exception as error:
            logger.error("an erasure request could not be stored (%s)", type(error).__name__)
            raise RightsError(
                "STORE_UNAVAILABLE", "the erasure request cannot be recorded now: ask again later"
            ) from None
        self.dispatcher.wake()
        for request in await self.requests(resident, limit=50):
            if request.id == request_id:
                return request
        raise RightsError(
            "STORE_UNAVAILABLE",
            "the erasure request is recorded but cannot be read back now: see me { erasureRequests }",
        )

    def _resident_key(self) -> str:
        """The coordinate of the resident's id as connectors receive it (`Resident.id`)."""
        engine = self.engine()
        try:
            operation = self.operation(engine) if engine is not None else None
        except ExportUnavailable:
            operation = None
        return f"{operation.resident_type}.{operation.argument}" if operation is not None else "Resident.id"

    async def requests(self, subject: str, limit: int = 20) -> list[ErasureRequest]:
        try:
            return await self.erasures.requests_for(subject, limit)
        except Exception as error:
            logger.error("erasure requests could not be read (%s)", type(error).__name__)
            raise RightsError("STORE_UNAVAILABLE", "erasure requests cannot be read now: ask again later") from None
