"""An adversarial partner: a real federation subgraph whose answers a test rewrites at will.

Partners are untrusted (SPEC.md, Trust): a partner's subgraph can answer anything. This module
gives tests one that does, over real HTTP on loopback:

- `Tampering`: ASGI middleware around any GraphQL app. Every answer is parsed, handed to the
  test's rewrites (in order) and sent back re-encoded; requests and rewritten answers are kept.
- `HostilePartner`: a Strawberry federation subgraph behind `Tampering`, served with
  `tests.world.server.AppServer` at `/graphql`. The default schema (`PERKS`) is a loyalty
  start-up that extends the privacy world's `Resident` (tests/privacy/world.py) with a field of
  its own (`loyaltyTier`) and names a resident of its choosing (`favouriteResident`), so the
  gateway reaches it both through `_entities` and through a root field. Pass another Strawberry
  schema (e.g. one with `@requires`) to reuse the same knobs.

Knobs (reset with `reset()` between tests):

    partner.favourite = "r2"                      # whom Query.favouriteResident names
    partner.delay = 0.3                           # seconds before answering (answer after the others)
    partner.add_to_entities(_cg_subject="r1")     # keys nobody asked for, in every `_entities` object
    partner.add_everywhere(_cg_count_x=99)        # keys nobody asked for, in every object at every depth
    partner.rewrite(lambda request, answer: ...)  # anything else (e.g. rewrite an asked value)
    partner.requests, partner.answers             # what the gateway sent, what it got back

Register it like any partner (`url` is its GraphQL endpoint; `sdl()` its SDL for a pinned one).
Nothing here imports the gateway but its partner SDK (`gateway.sdk`), as any partner would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.sdk import privacy
from tests.world.server import AppServer

Rewrite = Callable[[dict, dict], None]  # (request body, answer) -> None; mutates the answer


def objects_in(value: Any) -> Iterator[dict]:
    """Every JSON object in `value`, at every depth (the value itself first)."""
    if isinstance(value, dict):
        yield value
        for item in list(value.values()):
            yield from objects_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from objects_in(item)


class Tampering:
    """ASGI middleware: lets a test rewrite every JSON answer of the app it wraps."""

    def __init__(self, app) -> None:
        self.app = app
        self.rewrites: list[Rewrite] = []
        self.delay = 0.0
        self.requests: list[dict] = []
        self.answers: list[dict] = []

    def reset(self) -> None:
        self.rewrites.clear()
        self.delay = 0.0
        self.requests.clear()
        self.answers.clear()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received: list[bytes] = []
        start: dict = {}
        body: list[bytes] = []

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                received.append(message.get("body", b""))
            return message

        async def holding_send(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(scope, recording_receive, holding_send)
        request = _json(b"".join(received))
        answer = _json(b"".join(body))
        self.requests.append(request)
        if isinstance(answer, dict) and isinstance(request, dict):
            for rewrite in list(self.rewrites):
                rewrite(request, answer)
            self.answers.append(answer)
            content = json.dumps(answer).encode()
        else:
            content = b"".join(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


# -- the default partner: a loyalty start-up -----------------------------------------------------


class _Choice:
    favourite = "r1"


@strawberry.federation.type(keys=["id"], name="Resident")
class PerksResident:
    id: strawberry.ID

    @strawberry.field
    def loyalty_tier(self) -> str | None:
        return "gold" if self.id in ("r1", "r3") else "silver"

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> PerksResident:
        return cls(id=id)


@strawberry.type
class PerksQuery:
    @strawberry.field
    def favourite_resident(self, info: strawberry.Info) -> PerksResident | None:
        return PerksResident(id=strawberry.ID(info.context["choice"].favourite))


PERKS = strawberry.federation.Schema(query=PerksQuery, types=[PerksResident], federation_version="2.5")


@strawberry.federation.type(keys=["id"], name="Resident")
class ShadowingResident:
    id: strawberry.ID

    @strawberry.field(name="_cg_subject")
    def claimed_subject(self) -> strawberry.ID:
        return strawberry.ID("r1")

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> ShadowingResident:
        return cls(id=id)


@strawberry.type
class ShadowingQuery:
    @strawberry.field
    def shadow(self) -> ShadowingResident:
        return ShadowingResident(id=strawberry.ID("r2"))


# A partner whose schema takes a name of the gateway's own (`Resident._cg_subject`): registration
# must refuse it (RESERVED_NAME), whatever it would answer.
SHADOWING = strawberry.federation.Schema(query=ShadowingQuery, types=[ShadowingResident], federation_version="2.5")


# A courier start-up: `deliveryNote` @requires the city's `address` and echoes it back, in a field it
# declares non-personal (its own alone, so it may): without a decision on the flow, anyone reading
# the note reads the address.
@strawberry.federation.type(keys=["id"], name="Resident")
class CourierResident:
    id: strawberry.ID
    address: str | None = strawberry.federation.field(external=True)

    @strawberry.federation.field(requires=["address"], directives=[privacy.NonPersonal()])
    def delivery_note(self) -> str | None:
        return f"ring at {self.address}" if self.address else None

    @classmethod
    def resolve_reference(cls, id: strawberry.ID, address: str | None = None) -> CourierResident:
        return cls(id=id, address=address)


@strawberry.type
class CourierQuery:
    @strawberry.field(directives=[privacy.NonPersonal()])
    def courier_open(self) -> bool:
        return True


COURIER = strawberry.federation.Schema(query=CourierQuery, types=[CourierResident], federation_version="2.5")


class _WithChoice(GraphQL):
    def __init__(self, schema, choice: _Choice) -> None:
        super().__init__(schema)
        self.choice = choice

    async def get_context(self, request, response) -> dict:
        return {"request": request, "response": response, "choice": self.choice}


class HostilePartner:
    """A partner subgraph that answers what an attacker would (see the module's docstring)."""

    def __init__(self, schema: strawberry.federation.Schema = PERKS) -> None:
        self.schema = schema
        self._choice = _Choice()
        self.tampering = Tampering(_WithChoice(schema, self._choice))
        self.server = AppServer(Starlette(routes=[Route("/graphql", self.tampering)]))
        self.url = f"{self.server.base_url}/graphql"

    def start(self) -> HostilePartner:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """Honest again: no rewrites, no delay, favourite r1, nothing recorded."""
        self.tampering.reset()
        self._choice.favourite = "r1"

    def sdl(self) -> str:
        """The partner's SDL as its `_service { sdl }` gives it (for a pinned registration)."""
        return self.schema.execute_sync("{ _service { sdl } }").data["_service"]["sdl"]

    # -- knobs ------------------------------------------------------------------------------

    @property
    def favourite(self) -> str:
        return self._choice.favourite

    @favourite.setter
    def favourite(self, resident: str) -> None:
        self._choice.favourite = resident

    @property
    def delay(self) -> float:
        return self.tampering.delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        self.tampering.delay = seconds

    @property
    def requests(self) -> list[dict]:
        return self.tampering.requests

    @property
    def answers(self) -> list[dict]:
        return self.tampering.answers

    def rewrite(self, rewrite: Rewrite) -> None:
        """Run `rewrite(request, answer)` on every answer from now on (after the earlier ones)."""
        self.tampering.rewrites.append(rewrite)

    def add_to_entities(self, **keys: Any) -> None:
        """Add `keys` to every object of every `_entities` answer (where it has no such key)."""

        def add(_request: dict, answer: dict) -> None:
            data = answer.get("data")
            entities = data.get("_entities") if isinstance(data, dict) else None
            for entity in entities if isinstance(entities, list) else ():
                if isinstance(entity, dict):
                    _add_missing(entity, keys)

        self.rewrite(add)

    def add_everywhere(self, **keys: Any) -> None:
        """Add `keys` to every object below `data`, at every depth (where it has no such key)."""

        def add(_request: dict, answer: dict) -> None:
            data = answer.get("data")
            for obj in list(objects_in(data)):
                if obj is not data:
                    _add_missing(obj, keys)

        self.rewrite(add)


def _add_missing(obj: dict, keys: dict) -> None:
    for key, value in keys.items():
        if key not in obj:
            obj[key] = json.loads(json.dumps(value))  # a copy per object
