"""Privacy decisions are the same whether a partner's data comes from a subgraph or a REST API.

The parking partner's bookings (a resident's plates, amounts and where they parked) and its
per-district statistics are served twice: (a) by a Strawberry federation subgraph annotated
through the partner SDK, (b) by a Starlette JSON API behind a rest connector whose SDL carries
the same annotations (@subject, @personal, @nonPersonal, @aggregate). Each is composed with the
city's subgraphs of the privacy world (people, reports: residents with contact data, street
issues), all over loopback HTTP, and served by an Engine with the privacy tests' policy plus a
legal basis on the partner's data. The same operations are then asked by the public, a client
without consent, the same client once the resident consented, a client under a legal basis, and
the subject: the two answers (data, errors, extensions.privacy with what was withheld and why)
and what each audited are identical, for every requester and every operation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import orjson
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from gateway.composition import SubgraphSource, compose
from gateway.connect import RestClient, read_connect_sdl
from gateway.consent import AuditLog, Ledger
from gateway.engine import Engine, GraphQLResponse
from gateway.executor import HttpPool, HttpSubgraph, Subgraphs
from gateway.identity import PUBLIC, Requester
from gateway.policy import parse_policy
from gateway.privacy import PrivacyGuard
from gateway.sdk import privacy
from gateway.store import Store
from tests.connect.openapi_apis import Api
from tests.privacy import world
from tests.privacy.conftest import Signer, policy_document

# the partner's data, in its API's JSON names: where each car was parked, for how much
BOOKINGS = [
    {"id": "b1", "resident": "r1", "plate": "AB-123-CD", "amount_eur": 4.5, "district": "75118"},
    {"id": "b2", "resident": "r2", "plate": "EF-456-GH", "amount_eur": 2.0, "district": "75105"},
    {"id": "b3", "resident": "r2", "plate": "EF-456-GH", "amount_eur": 3.5, "district": "75111"},
    {"id": "b4", "resident": "r3", "plate": "IJ-789-KL", "amount_eur": 6.0, "district": "75105"},
]
bookings: list[dict] = []


def district_stats(code: str) -> dict:
    here = [b for b in bookings if b["district"] == code]
    return {
        "code": code,
        "bookers": len({b["resident"] for b in here}),
        "average_amount": sum(b["amount_eur"] for b in here) / len(here) if here else None,
    }


# -- (a) the partner as a federation subgraph -------------------------------------------------------


@strawberry.type(directives=[privacy.Subject(field="residentId")])
class Booking:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    resident_id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    plate: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.unique_id")])
    amount: float | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])
    parked_in: str | None = strawberry.federation.field(
        directives=[privacy.Personal(category="user.location.imprecise")]
    )

    @classmethod
    def of(cls, row: dict) -> Booking:
        return cls(
            id=strawberry.ID(row["id"]),
            resident_id=strawberry.ID(row["resident"]),
            plate=row["plate"],
            amount=row["amount_eur"],
            parked_in=row["district"],
        )


@strawberry.federation.type(keys=["id"], name="Resident")
class ParkingResident:
    id: strawberry.ID

    @strawberry.federation.field(directives=[privacy.Personal(category="user.behavior.purchase_history")])
    def bookings(self) -> list[Booking]:
        return [Booking.of(b) for b in bookings if b["resident"] == self.id]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> ParkingResident:
        return cls(id=id)


@strawberry.federation.type(keys=["code"], name="District")
class ParkingDistrict:
    code: str
    parking_contributors: int
    average_parking_amount: float | None = strawberry.federation.field(
        directives=[privacy.Aggregate(contributors="parkingContributors")]
    )

    @classmethod
    def resolve_reference(cls, code: str) -> ParkingDistrict:
        stats = district_stats(code)
        return cls(code=code, parking_contributors=stats["bookers"], average_parking_amount=stats["average_amount"])


@strawberry.type
class ParkingQuery:
    @strawberry.field
    def bookings(self) -> list[Booking]:
        return [Booking.of(b) for b in bookings]


parking_subgraph = strawberry.federation.Schema(
    query=ParkingQuery, types=[ParkingResident, ParkingDistrict], federation_version="2.5"
)


# -- (b) the partner as a REST API and its connector ----------------------------------------------


def parking_api() -> Api:
    async def all_bookings(request: Request) -> JSONResponse:
        return JSONResponse(bookings)

    async def bookings_of(request: Request) -> JSONResponse:
        return JSONResponse([b for b in bookings if b["resident"] == request.path_params["id"]])

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(district_stats(request.path_params["code"]))

    app = Starlette(
        routes=[
            Route("/v1/bookings", all_bookings),
            Route("/v1/residents/{id}/bookings", bookings_of),
            Route("/v1/districts/{code}/stats", stats),
        ]
    )
    return Api(app, {}, "/v1")


BOOKING_SELECTION = "id residentId: resident plate amount: amount_eur parkedIn: district"
PARKING_CONNECTOR = f'''
extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])
  @link(url: "https://specs.apollo.dev/connect/v0.1", import: ["@connect", "@source"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@aggregate", "@nonPersonal"])
  @composeDirective(name: "@personal")
  @composeDirective(name: "@subject")
  @composeDirective(name: "@aggregate")
  @composeDirective(name: "@nonPersonal")
  @source(name: "parking", http: {{ baseURL: "BASE" }})

directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @aggregate(contributors: String!, minContributors: Int) on FIELD_DEFINITION
directive @nonPersonal on FIELD_DEFINITION

type Booking @subject(field: "residentId") {{
  id: ID! @nonPersonal
  residentId: ID! @nonPersonal
  plate: String @personal(category: "user.unique_id")
  amount: Float @personal(category: "user.financial")
  parkedIn: String @personal(category: "user.location.imprecise")
}}

type Resident @key(fields: "id") {{
  id: ID!
  bookings: [Booking!]! @personal(category: "user.behavior.purchase_history")
    @connect(source: "parking", http: {{ GET: "/residents/{{$this.id}}/bookings" }}, selection: "{BOOKING_SELECTION}")
}}

type District @key(fields: "code")
  @connect(source: "parking", http: {{ GET: "/districts/{{$this.code}}/stats" }},
           selection: "code parkingContributors: bookers averageParkingAmount: average_amount") {{
  code: String!
  parkingContributors: Int!
  averageParkingAmount: Float @aggregate(contributors: "parkingContributors")
}}

type Query {{
  bookings: [Booking!]! @connect(source: "parking", http: {{ GET: "/bookings" }}, selection: "{BOOKING_SELECTION}")
}}
'''


# -- the city around each ------------------------------------------------------------------------

OWNERS = {"people": "city", "reports": "city", "parking": "parking"}
ENFORCEMENT_KEY_SHA256 = "0" * 64  # no request in these tests authenticates: the engine is given requesters


def parity_policy(jwks_file) -> dict:
    """The privacy tests' policy, with a legal basis on the partner's data: a city enforcement
    service reads plates (not amounts) to check parking, as a public task."""
    document = policy_document(jwks_file)
    document["purposes"]["parking-enforcement"] = {"description": "Check that parked cars paid"}
    document["clients"]["enforcement-console"] = {
        "name": "enforcement-console",
        "purposes": ["parking-enforcement"],
        "roles": ["enforcement"],
        "collects_consent": False,
        "api_key_sha256": ENFORCEMENT_KEY_SHA256,
    }
    document["legal_bases"].append(
        {
            "name": "parking-enforcement-public-task",
            "basis": "public_task",
            "roles": ["enforcement"],
            "purposes": ["parking-enforcement"],
            # the plates, and which bookings a resident has (the link Resident.bookings)
            "categories": ["user.unique_id", "user.behavior.purchase_history"],
            "sources": ["parking"],
        }
    )
    return document


@dataclass
class Side:
    name: str
    engine: Engine
    store: Store


async def side(
    name: str, city: Api, transport_parking, parking_sdl: str, parking_url: str, policy, tmp_path, pool: HttpPool
) -> Side:
    sources = [
        SubgraphSource(s, await fetch_sdl(pool, f"{city.origin}/{s}"), f"{city.origin}/{s}")
        for s in ("people", "reports")
    ]
    composed = compose([*sources, SubgraphSource("parking", parking_sdl, parking_url)])
    assert composed.errors == [] and composed.supergraph is not None, composed.errors
    store = Store(f"sqlite:///{tmp_path / f'{name}.db'}")
    await store.create()
    guard = PrivacyGuard(policy, Ledger(store, policy), AuditLog(store), b"parity-pseudonym-key")
    # the same consent on both sides, recorded in each side's own ledger
    await guard.ledger.grant(
        subject="r2",
        recipient="parking-app",
        purpose="booking",
        # which bookings r2 has (the link Resident.bookings), the plates (user.unique_id): not the amounts
        categories=["user.unique_id", "user.contact", "user.behavior.purchase_history"],
        expires_in_days=None,
        collection_method="test",
    )
    clients = {s.name: HttpSubgraph(pool, s.url, 10.0) for s in sources} | {"parking": transport_parking}
    engine = Engine.from_sdl(
        composed.supergraph, Subgraphs(clients), guard=guard, privacy_overrides=policy.privacy, owners=OWNERS
    )
    return Side(name, engine, store)


async def fetch_sdl(pool: HttpPool, url: str) -> str:
    answer = await HttpSubgraph(pool, url, 10.0).send("{ _service { sdl } }", None)
    body = orjson.loads(answer) if isinstance(answer, bytes | bytearray) else answer
    return body["data"]["_service"]["sdl"]


@pytest.fixture
async def sides(tmp_path):
    """(a) and (b): an engine over the city and the partner's subgraph, one over the city and its REST API."""
    world.reset()
    bookings[:] = copy.deepcopy(BOOKINGS)
    routes = [
        Route(f"/{n}", GraphQL(s), methods=["GET", "POST"])
        for n, s in (("people", world.people), ("reports", world.reports))
    ]
    routes.append(Route("/parking", GraphQL(parking_subgraph), methods=["GET", "POST"]))
    city = Api(Starlette(routes=routes), {}, "").start()
    rest = parking_api().start()
    pool = HttpPool()
    policy = parse_policy(parity_policy(Signer(tmp_path).jwks_file))
    built: list[Side] = []
    try:
        subgraph_sdl = await fetch_sdl(pool, f"{city.origin}/parking")
        subgraph = HttpSubgraph(pool, f"{city.origin}/parking", 10.0)
        built.append(
            await side("subgraph", city, subgraph, subgraph_sdl, f"{city.origin}/parking", policy, tmp_path, pool)
        )
        connector = read_connect_sdl(PARKING_CONNECTOR.replace("BASE", rest.base_url), base_url=rest.base_url)
        client = RestClient(connector, pool, name="parking")
        built.append(await side("rest", city, client, connector.composition_sdl, rest.base_url, policy, tmp_path, pool))
        yield built[0], built[1], policy, rest
    finally:
        for done in built:
            await done.engine.close()
            await done.store.close()
        await pool.close()
        rest.stop()
        city.stop()


def requesters(policy) -> dict[str, Requester]:
    parking_app = policy.clients["parking-app"]
    return {
        "public": PUBLIC,
        "client without consent": Requester(
            parking_app, "marketing", frozenset({"partner"})
        ),  # r2 consented to booking only
        "client never consented to": Requester(policy.clients["stats-portal"], "statistics", frozenset()),
        "client with consent": Requester(parking_app, "booking", frozenset({"partner"})),
        "legal basis": Requester(
            policy.clients["enforcement-console"], "parking-enforcement", frozenset({"enforcement"})
        ),
        "the subject": Requester(policy.clients["city-app"], "service-delivery", frozenset({"city"}), resident="r2"),
    }


QUERIES = {
    "root list": "{ bookings { id residentId plate amount parkedIn } }",
    "one resident across subgraphs": '{ resident(id: "r2") { id name email bookings { id plate amount parkedIn } } }',
    "every resident": "{ residents { id phone bookings { plate amount } } }",
    "three hops from a street issue": "{ incidents { id location { latitude } reporter { name bookings { residentId plate amount } } } }",
    "aggregates below and above k": "{ districts { code name averageBirthYear averageParkingAmount } }",
    "a union": "{ feed { __typename ... on Incident { reporter { bookings { plate } } } ... on Notice { text } } }",
}


def bases(basis) -> list[str]:
    """A disclosure's bases, a consent named by its kind: each side's ledger gave it its own id."""
    return sorted("consent" if b.startswith("consent:") else b for b in basis)


def answer_of(response: GraphQLResponse) -> dict:
    """What a client receives, and what the audit log got (subject, fields, bases)."""
    audited = sorted((d.subject, sorted(d.fields), bases(d.basis)) for d in response.disclosures)
    return {"body": response.to_dict(), "audited": audited}


async def test_every_requester_gets_the_same_answer_from_the_subgraph_and_from_the_rest_connector(sides):
    a, b, policy, rest = sides
    answers: dict[tuple[str, str], dict] = {}
    for who, requester in requesters(policy).items():
        for label, query in QUERIES.items():
            subgraph_response = await a.engine.run(query, requester=requester, request_id=f"a-{who}-{label}")
            rest_response = await b.engine.run(query, requester=requester, request_id=f"b-{who}-{label}")
            from_subgraph, from_rest = answer_of(subgraph_response), answer_of(rest_response)
            assert from_rest == from_subgraph, (who, label)
            assert rest_response.subgraph_requests == subgraph_response.subgraph_requests, (who, label)  # the same plan
            assert "errors" not in from_rest["body"], (who, label, from_rest["body"])
            answers[(who, label)] = from_rest["body"]
    assert rest.targets(), "the REST side never called its API"

    # the decisions compared are real ones: each requester got what the policy gives them
    r2 = [b for b in bookings if b["resident"] == "r2"]
    mine = answers[("the subject", "one resident across subgraphs")]
    assert mine["data"]["resident"]["bookings"] == [
        {"id": b["id"], "plate": b["plate"], "amount": b["amount_eur"], "parkedIn": b["district"]} for b in r2
    ]
    assert "extensions" not in mine

    consented = answers[("client with consent", "one resident across subgraphs")]
    assert [x["plate"] for x in consented["data"]["resident"]["bookings"]] == [
        b["plate"] for b in r2
    ]  # user.unique_id consented
    assert [x["amount"] for x in consented["data"]["resident"]["bookings"]] == [None] * len(r2)  # user.financial not
    assert {w["reason"] for w in consented["extensions"]["privacy"]["withheld"]} == {"no-consent"}

    for who in ("public", "client without consent", "client never consented to"):
        seen = answers[(who, "root list")]["data"]["bookings"]
        assert all(x["plate"].startswith("pse_") and x["amount"] is None and x["parkedIn"] is None for x in seen), who

    enforcement = answers[("legal basis", "root list")]["data"]["bookings"]
    assert [x["plate"] for x in enforcement] == [b["plate"] for b in bookings]
    assert all(x["amount"] is None for x in enforcement)

    districts = {
        d["code"]: d["averageParkingAmount"]
        for d in answers[("public", "aggregates below and above k")]["data"]["districts"]
    }
    above_k = {
        code for code in districts if len({b["resident"] for b in bookings if b["district"] == code}) >= policy.k
    }
    assert above_k and districts == {
        code: (district_stats(code)["average_amount"] if code in above_k else None) for code in districts
    }


async def test_pseudonyms_and_audit_entries_match_request_by_request(sides):
    a, b, policy, _rest = sides
    # a requester's pseudonyms are stable and identical across the two sides; another's differ
    query = QUERIES["root list"]
    stats_portal = Requester(policy.clients["stats-portal"], "statistics", frozenset())
    marketing = requesters(policy)["client without consent"]
    plates = {}
    for requester in (stats_portal, marketing):
        from_subgraph = await a.engine.run(query, requester=requester)
        from_rest = await b.engine.run(query, requester=requester)
        assert from_subgraph.to_dict() == from_rest.to_dict()
        plates[requester.recipient] = [x["plate"] for x in from_rest.data["bookings"]]
    assert plates["stats-portal"][1] == plates["stats-portal"][2]  # r2's plate twice: one pseudonym
    assert plates["stats-portal"] != plates["parking-app"]

    # what each side wrote to its audit log for the same requests
    legal = requesters(policy)["legal basis"]
    for side_ in (a, b):
        await side_.engine.run(QUERIES["three hops from a street issue"], requester=legal, request_id="same-request")
    entries = [await _audit_rows(side_.store) for side_ in (a, b)]
    assert entries[0] == entries[1] and entries[0]


async def _audit_rows(store: Store) -> list:
    """The audit log's entries, without what differs by nature (time, hash chain, consent ids)."""
    rows = [
        (
            e["request_id"],
            e["recipient"],
            e["purpose"],
            e["subject"],
            sorted(orjson.loads(e["fields"])),
            bases(orjson.loads(e["basis"])),
        )
        for e in await store.audit_entries()
    ]
    return sorted(rows)
