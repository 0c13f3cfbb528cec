"""REST connectors (`kind: rest`) registered through the real admin API of a real gateway.

The city (tests/privacy/world.py: people, reports and parking, behind a gateway with its policy,
clients and consent ledger) is joined by Cyclo, a shared-bike start-up with a REST/JSON API only:
a Starlette app on loopback behind a recorder that keeps every request's path and headers. Its
connector maps stations per district (open data) and a resident's rentals (personal data) into
the city's graph with @source/@connect. Misbehaving partners are real servers too: one that
redirects to another origin, one that answers 500 with a resident's e-mail in the body, one that
is stopped.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from gateway.http import GatewayState
from gateway.registry import Registry, RegistryError
from gateway.sdk import privacy
from tests.postgres import fresh_database
from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document, privacy_world, signer  # noqa: F401
from tests.registry.conftest import LOOPBACK
from tests.registry.test_secrets import Recorder
from tests.workers import worker_database
from tests.world.server import AppServer, WorldServer

SECRET = "cyclo-upstream-token-5e1d0a"
LEAKED_BODY = "amelie@example.org is over her quota"

STATIONS = [
    {"id": "s1", "name": "Abbesses", "district": "75118", "capacity": 30, "bikes": {"mechanical": 7, "electric": 3}},
    {"id": "s2", "name": "Lamarck", "district": "75118", "capacity": 24, "bikes": {"mechanical": 0, "electric": 5}},
    {"id": "s3", "name": "Mouffetard", "district": "75105", "capacity": 20, "bikes": {"mechanical": 11, "electric": 0}},
]
RENTALS = [
    {
        "id": "rt1",
        "resident_id": "r1",
        "from_station": "s1",
        "started_at": "2026-10-02T08:10",
        "duration_min": 14,
        "price_cents": 100,
    },
    {
        "id": "rt2",
        "resident_id": "r1",
        "from_station": "s2",
        "started_at": "2026-10-03T18:40",
        "duration_min": 41,
        "price_cents": 210,
    },
    {
        "id": "rt3",
        "resident_id": "r2",
        "from_station": "s3",
        "started_at": "2026-10-04T12:00",
        "duration_min": 9,
        "price_cents": 0,
    },
]


def cyclo_api(redirect_to: str | None = None) -> Starlette:
    """Cyclo's REST API. Its answers name residents: only the gateway decides what leaves."""

    async def stations(request: Request) -> JSONResponse:
        district = request.query_params.get("district")
        return JSONResponse([s for s in STATIONS if district is None or s["district"] == district])

    async def rentals(request: Request) -> JSONResponse:
        return JSONResponse([r for r in RENTALS if r["resident_id"] == request.path_params["id"]])

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"error": LEAKED_BODY}, status_code=500)

    async def moved(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{redirect_to}/stations", status_code=307)

    return Starlette(
        routes=[
            Route("/api/stations", stations),
            Route("/api/residents/{id}/rentals", rentals),
            Route("/api/broken", broken),
            Route("/api/moved", moved),
        ]
    )


class RestApi:
    """A REST API on loopback, recording what reaches it."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.recorder = Recorder(cyclo_api(redirect_to))
        self.server = AppServer(self.recorder).start()
        self.base_url = f"{self.server.base_url}/api"

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def apis():
    started: list[RestApi] = []

    def start(redirect_to: str | None = None) -> RestApi:
        api = RestApi(redirect_to)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


def city_policy(signer) -> dict:  # noqa: F811
    document = policy_document(signer.jwks_file)
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    return document


@pytest.fixture
async def city(tmp_path, privacy_world, signer):  # noqa: F811
    world.reset()
    store_url = f"sqlite:///{tmp_path / 'city.db'}"
    running = City(store_url, connectors_folder(tmp_path / "connectors", privacy_world), city_policy(signer), signer)
    running.store_url = store_url  # type: ignore[attr-defined]
    yield running
    await running.close()


# -- the connector's SDL ------------------------------------------------------------------------

HEADER = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.11", import: ["@key", "@composeDirective"])
  @link(url: "https://specs.apollo.dev/connect/v0.2", import: ["@connect", "@source"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@nonPersonal"])
  @composeDirective(name: "@personal")
  @composeDirective(name: "@subject")
  @composeDirective(name: "@nonPersonal")
  @source(name: "cyclo"{source_http})

directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @nonPersonal on FIELD_DEFINITION
"""

STATION = "id name districtCode: district mechanicalBikes: bikes.mechanical electricBikes: bikes.electric"

BODY = """
type Station {{
  id: ID!
  name: String!
  districtCode: String!
  mechanicalBikes: Int!
  electricBikes: Int!
}}

type District @key(fields: "code") {{
  code: String!
  bikeStations: [Station!] @connect({district_source}http: {{ GET: "{stations_url}?district={{$this.code}}" }}, selection: "{station}")
}}

"A ride: the rider's personal data."
type BikeRental @subject(field: "residentId") {{
  id: ID! @nonPersonal
  residentId: ID!
  startedAt: String @personal(category: "user.behavior")
  minutes: Int @personal(category: "user.behavior")
  priceCents: Int @personal(category: "user.financial")
}}

type Resident @key(fields: "id") {{
  id: ID!
  bikeRentals: [BikeRental!] @personal(category: "user.behavior") @connect(
    source: "cyclo"
    http: {{ GET: "/residents/{{$this.id}}/rentals" }}
    selection: "id residentId: resident_id startedAt: started_at minutes: duration_min priceCents: price_cents"
  )
}}

type Query {{
  bikeStations(district: String): [Station!] @connect(source: "cyclo", http: {{ GET: "/stations?district={{$args.district}}" }}, selection: "{station}")
  brokenStations: [Station!] @connect(source: "cyclo", http: {{ GET: "/broken" }}, selection: "{station}")
  movedStations: [Station!] @connect(source: "cyclo", http: {{ GET: "/moved" }}, selection: "{station}")
}}
"""


def cyclo_sdl(*, base_url: str | None = None, stations_url: str | None = None, station: str = STATION) -> str:
    """The connector's SDL: @source without a baseURL (the manifest's url is the base) unless given;
    `stations_url`: District.bikeStations calls this absolute URL, without the source."""
    source_http = f', http: {{ baseURL: "{base_url}" }}' if base_url else ", http: {}"
    district_source = "" if stations_url else 'source: "cyclo", '
    body = BODY.format(district_source=district_source, stations_url=stations_url or "/stations", station=station)
    return HEADER.replace("{source_http}", source_http) + body


def manifest(api: RestApi, sdl: str | None = None, **extra) -> dict:
    return {
        "name": "bikes",
        "owner": "cyclo",
        "kind": "rest",
        "url": api.base_url,
        "timeout": 5,
        "sdl": sdl or cyclo_sdl(),
        **extra,
    }


async def partner_key(city: City, name: str = "cyclo") -> str:
    created = await city.client.post(
        "/admin/partners", json={"name": name}, headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert created.status_code == 201, created.text
    return created.json()["key"]


async def admin(city: City, method: str, path: str, key: str, body: dict | None = None) -> httpx.Response:
    return await city.client.request(method, path, json=body, headers={"authorization": f"Bearer {key}"})


async def register(city: City, key: str, body: dict) -> httpx.Response:
    return await admin(city, "PUT", f"/admin/connectors/{body['name']}", key, body)


async def supergraph(city: City) -> str:
    return (await admin(city, "GET", "/admin/supergraph", OPERATOR_KEY)).text


def codes(response: httpx.Response) -> set[str]:
    return {error["code"] for error in response.json()["errors"]}


DISTRICT_STATIONS = "{ districts { code name bikeStations { name mechanicalBikes electricBikes } } }"


# -- registration -------------------------------------------------------------------------------


async def test_a_rest_connector_joins_the_citys_districts(city, apis):
    api = apis()
    key = await partner_key(city)
    validated = await admin(city, "POST", "/admin/connectors/validate", key, manifest(api))
    assert validated.status_code == 200, validated.text
    registered = await register(city, key, manifest(api))
    assert registered.status_code == 200, registered.text
    assert registered.json()["ok"] is True and registered.json()["version"] == 1

    answer = await city.ask(DISTRICT_STATIONS)
    assert "errors" not in answer, answer
    by_code = {d["code"]: d for d in answer["data"]["districts"]}
    assert by_code["75118"]["name"] == "Buttes-Montmartre"  # the city's field, next to the partner's
    assert by_code["75118"]["bikeStations"] == [
        {"name": "Abbesses", "mechanicalBikes": 7, "electricBikes": 3},
        {"name": "Lamarck", "mechanicalBikes": 0, "electricBikes": 5},
    ]
    assert by_code["75111"]["bikeStations"] == []
    root = await city.ask('{ bikeStations(district: "75105") { id name districtCode } }')
    assert root["data"] == {"bikeStations": [{"id": "s3", "name": "Mouffetard", "districtCode": "75105"}]}
    assert {path for path, _, _ in api.recorder.requests} >= {"/api/stations"}

    # what the admin API lists and the supergraph carries: the manifest, the SDL without @connect
    listing = (await admin(city, "GET", "/admin/connectors", key)).json()["connectors"]
    assert listing == [
        {
            "name": "bikes",
            "owner": "cyclo",
            "kind": "rest",
            "url": api.base_url,
            "timeout": 5.0,
            "version": 1,
            "source": "registry",
        }
    ]
    served = await supergraph(city)
    assert "bikeStations" in served and "@connect" not in served and "specs.apollo.dev/connect" not in served


async def test_mapping_problems_come_back_with_their_locations_and_change_nothing(city, apis):
    api = apis()
    key = await partner_key(city)
    before, engine = await supergraph(city), city.gateway.state.engine
    misspelt = cyclo_sdl(
        station="id nme districtCode: district mechanicalBikes: bikes.mechanical electricBikes: bikes.electric"
    )
    for method, path in (("POST", "/admin/connectors/validate"), ("PUT", "/admin/connectors/bikes")):
        answer = await admin(city, method, path, key, manifest(api, misspelt))
        assert answer.status_code == 422, answer.text
        errors = answer.json()["errors"]
        assert errors and all(e["code"].startswith("CONNECT_") for e in errors), errors
        assert all(e["subgraph"] == "bikes" for e in errors)
        # each problem where it is in the SDL: the four selections naming `nme`, each on its line
        misspellings = [e for e in errors if '"nme"' in e["message"]]
        lines = [loc["line"] for e in misspellings for loc in e["locations"]]
        expected = [number for number, text in enumerate(misspelt.splitlines(), start=1) if '"id nme ' in text]
        assert len(expected) == 4 and sorted(lines) == expected, (lines, expected)
        for error in misspellings:
            column = error["locations"][0]["column"]
            assert misspelt.splitlines()[error["locations"][0]["line"] - 1][column - 1 : column + 2] == "nme", error
    assert await supergraph(city) == before and city.gateway.state.engine is engine
    assert api.recorder.requests == []  # validation calls nothing

    # no SDL: a REST API has no _service to read it from
    no_sdl = {k: v for k, v in manifest(api).items() if k != "sdl"}
    answer = await admin(city, "POST", "/admin/connectors/validate", key, no_sdl)
    assert answer.status_code == 422 and codes(answer) == {"INVALID_MANIFEST"} and "SDL" in answer.text
    # and the URL rules as a subgraph's: the url is the API's base
    elsewhere = await admin(
        city, "POST", "/admin/connectors/validate", key, {**manifest(api), "url": "http://169.254.169.254/api"}
    )
    assert elsewhere.status_code == 422 and "UPSTREAM_URL_REFUSED" in codes(elsewhere)


async def test_a_connector_calling_another_origin_is_refused(city, apis):
    api, other = apis(), apis()
    key = await partner_key(city)
    before = await supergraph(city)
    # @source's baseURL on another origin than the manifest's url (where the secrets go)
    source_elsewhere = manifest(
        api, cyclo_sdl(base_url=other.base_url), headers={"x-api-key": "${secret:K}"}, secrets={"K": SECRET}
    )
    # an absolute URL in one @connect
    absolute = manifest(api, cyclo_sdl(stations_url=f"{other.base_url}/stations"))
    for body in (source_elsewhere, absolute):
        for method, path in (("POST", "/admin/connectors/validate"), ("PUT", "/admin/connectors/bikes")):
            answer = await admin(city, method, path, key, body)
            assert answer.status_code == 422, answer.text
            assert "CONNECT_URL_ORIGIN" in codes(answer), answer.text
            assert SECRET not in answer.text
    assert await supergraph(city) == before
    assert other.recorder.requests == [] and api.recorder.requests == []


async def test_a_secret_goes_only_to_the_apis_origin(city, apis):
    other = apis()
    api = apis(redirect_to=other.base_url)  # its /moved answers 307 to the other origin
    key = await partner_key(city)
    body = manifest(api, headers={"authorization": "Bearer ${secret:CYCLO_TOKEN}"}, secrets={"CYCLO_TOKEN": SECRET})
    registered = await register(city, key, body)
    assert registered.status_code == 200, registered.text
    assert SECRET not in registered.text

    assert "errors" not in await city.ask(DISTRICT_STATIONS)
    assert set(api.recorder.header_values("authorization")) == {f"Bearer {SECRET}"}
    # a redirect is not followed: the call fails, its secret stays home
    moved = await city.ask("{ movedStations { name } }")
    assert moved["data"] == {"movedStations": None}
    assert moved["errors"][0]["extensions"]["code"].startswith("CONNECTOR_"), moved
    assert other.recorder.requests == [] and not other.recorder.saw(SECRET)

    listing = await admin(city, "GET", "/admin/connectors", key)
    assert SECRET not in listing.text and listing.json()["connectors"][0]["headers"] == {
        "authorization": "Bearer ${secret:CYCLO_TOKEN}"
    }
    assert SECRET not in await supergraph(city)
    # moved to another origin, the stored secret is dropped: it must be sent again
    moving = await register(city, key, {**body, "url": other.base_url, "secrets": None})
    assert moving.status_code == 422 and codes(moving) == {"INVALID_MANIFEST"} and "CYCLO_TOKEN" in moving.text


# -- the operator's folder --------------------------------------------------------------------------


def rest_folder(folder, sdl: str) -> None:
    """A REST connector in the operator's folder: its url and key from the gateway's environment."""
    (folder / "bikes").mkdir()
    (folder / "bikes" / "schema.graphql").write_text(sdl)
    (folder / "bikes" / "manifest.yaml").write_text(
        "name: bikes\nowner: cyclo\nkind: rest\nurl: ${CG_TEST_CYCLO_URL}\nheaders:\n  x-api-key: ${CG_TEST_CYCLO_KEY}\nsdl_file: schema.graphql\n"
    )


async def test_the_operators_folder_serves_a_rest_connector(tmp_path, privacy_world, signer, apis, monkeypatch):  # noqa: F811
    api = apis()
    monkeypatch.setenv("CG_TEST_CYCLO_URL", api.base_url)
    monkeypatch.setenv("CG_TEST_CYCLO_KEY", "the-operators-cyclo-key")
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    rest_folder(folder, cyclo_sdl())
    running = City(f"sqlite:///{tmp_path / 'city.db'}", folder, city_policy(signer), signer)
    try:
        answer = await running.ask("{ district: districts { code bikeStations { name } } }")
        assert {d["code"]: [s["name"] for s in d["bikeStations"]] for d in answer["data"]["district"]}["75118"] == [
            "Abbesses",
            "Lamarck",
        ]
        assert api.recorder.header_values("x-api-key") == ["the-operators-cyclo-key"] * 3  # one call per district
        listing = (await admin(running, "GET", "/admin/connectors", OPERATOR_KEY)).json()["connectors"]
        bikes = next(c for c in listing if c["name"] == "bikes")
        assert bikes["source"] == "folder" and bikes["headers"] == {"x-api-key": "${CG_TEST_CYCLO_KEY}"}
    finally:
        await running.close()


async def test_a_folder_rest_connector_that_does_not_read_stops_the_start(tmp_path, privacy_world, apis, monkeypatch):  # noqa: F811
    api = apis()
    monkeypatch.setenv("CG_TEST_CYCLO_URL", api.base_url)
    monkeypatch.setenv("CG_TEST_CYCLO_KEY", "the-operators-cyclo-key")
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    sdl = cyclo_sdl(
        station="id name districtCode: district mechanicalBikes: bikes.mechanical electricBikes: bikes.electric ->"
    )
    rest_folder(folder, sdl)
    async with httpx.AsyncClient() as client:
        registry = Registry(GatewayState(None), store=None, policy=LOOPBACK.registry, http_client=client, folder=folder)
        with pytest.raises(RegistryError, match="connector bikes: CONNECT_INVALID_SELECTION") as failure:
            await registry.start()
    line = next(
        number for number, text in enumerate(sdl.splitlines(), start=1) if "electricBikes: bikes.electric ->" in text
    )
    assert f" at {line}:" in str(failure.value), failure.value
    assert api.recorder.requests == []


# -- privacy --------------------------------------------------------------------------------------

RENTALS_QUERY = '{ resident(id: "r1") { name bikeRentals { id startedAt minutes priceCents } } }'


async def test_a_rest_connectors_personal_fields_follow_consent(city, apis):
    api = apis()
    key = await partner_key(city)
    assert (await register(city, key, manifest(api))).status_code == 200

    public = await city.ask(RENTALS_QUERY, client="parking-app", purpose="booking")
    # which rentals r1 has is r1's (the link, user.behavior): withheld whole, nothing inside it listed
    assert public["data"]["resident"]["bikeRentals"] is None
    withheld = {
        (tuple(w["path"][-1:]), w["category"], w["reason"]) for w in public["extensions"]["privacy"]["withheld"]
    }
    assert (("bikeRentals",), "user.behavior", "no-consent") in withheld
    assert not any(path in (("startedAt",), ("priceCents",)) for path, _, _ in withheld)
    assert "2026-10-02T08:10" not in json.dumps(public) and "rt1" not in json.dumps(public)

    await city.grant("r1", "parking-app", "booking", ["user.behavior"])
    consented = await city.ask(RENTALS_QUERY, client="parking-app", purpose="booking")
    rentals = consented["data"]["resident"]["bikeRentals"]
    assert [(r["startedAt"], r["minutes"]) for r in rentals] == [("2026-10-02T08:10", 14), ("2026-10-03T18:40", 41)]
    assert all(r["priceCents"] is None for r in rentals)  # user.financial: not consented
    assert {w["category"] for w in consented["extensions"]["privacy"]["withheld"]} == {"user.financial", "user.name"}

    own = await city.ask(RENTALS_QUERY, resident="r1")
    assert own["data"]["resident"]["bikeRentals"][1] == {
        "id": "rt2",
        "startedAt": "2026-10-03T18:40",
        "minutes": 41,
        "priceCents": 210,
    }
    other = await city.ask(RENTALS_QUERY, resident="r2")
    assert other["data"]["resident"]["bikeRentals"] is None  # r1's rentals: r2 has no basis for them


# the same data as a federation subgraph (Strawberry), to compare the decisions on both


@strawberry.type
class Station:
    id: strawberry.ID
    name: str
    district_code: str
    mechanical_bikes: int
    electric_bikes: int

    @classmethod
    def of(cls, row: dict) -> Station:
        return cls(
            id=strawberry.ID(row["id"]),
            name=row["name"],
            district_code=row["district"],
            mechanical_bikes=row["bikes"]["mechanical"],
            electric_bikes=row["bikes"]["electric"],
        )


@strawberry.federation.type(keys=["code"])
class District:
    code: str

    @strawberry.field
    def bike_stations(self) -> list[Station] | None:
        return [Station.of(s) for s in STATIONS if s["district"] == self.code]

    @classmethod
    def resolve_reference(cls, code: str) -> District:
        return cls(code=code)


@strawberry.type(directives=[privacy.Subject(field="residentId")])
class BikeRental:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    resident_id: strawberry.ID
    started_at: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])
    minutes: int | None = strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])
    price_cents: int | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])


@strawberry.federation.type(keys=["id"])
class Resident:
    id: strawberry.ID

    @strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])
    def bike_rentals(self) -> list[BikeRental] | None:
        return [
            BikeRental(
                id=strawberry.ID(r["id"]),
                resident_id=strawberry.ID(r["resident_id"]),
                started_at=r["started_at"],
                minutes=r["duration_min"],
                price_cents=r["price_cents"],
            )
            for r in RENTALS
            if r["resident_id"] == self.id
        ]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Resident:
        return cls(id=id)


@strawberry.type
class BikesQuery:
    @strawberry.field
    def bike_stations(self, district: str | None = None) -> list[Station] | None:
        return [Station.of(s) for s in STATIONS if district is None or s["district"] == district]


BIKES_SUBGRAPH = strawberry.federation.Schema(
    query=BikesQuery, types=[District, Resident, BikeRental], federation_version="2.5"
)


async def test_privacy_decisions_are_the_same_as_for_the_same_data_from_a_subgraph(city, apis):
    api = apis()
    subgraph = WorldServer({"bikes": BIKES_SUBGRAPH}).start()
    try:
        key = await partner_key(city)
        as_subgraph = {"name": "bikes", "owner": "cyclo", "kind": "subgraph", "url": subgraph.url("bikes")}
        queries = [
            DISTRICT_STATIONS,
            '{ bikeStations(district: "75118") { id name } }',
            RENTALS_QUERY,
            "{ residents { id bikeRentals { id minutes priceCents } } }",
        ]
        requesters = [
            {},
            {"client": "parking-app", "purpose": "booking"},
            {"resident": "r1"},
            {"resident": "r2"},
            {"client": "technician-console"},
        ]

        async def answers() -> list[dict]:
            return [await city.ask(query, **requester) for query in queries for requester in requesters]

        for phase in ("before any consent", "after r1's consent"):
            assert (await register(city, key, as_subgraph)).status_code == 200
            from_subgraph = await answers()
            assert (await register(city, key, manifest(api))).status_code == 200  # the same connector, now over REST
            from_rest = await answers()
            assert from_rest == from_subgraph, phase
            assert all("errors" not in answer for answer in from_rest), from_rest
            if phase == "before any consent":
                await city.grant("r1", "parking-app", "booking", ["user.behavior", "user.financial"])
        # what the comparison compared: withheld values, disclosed ones, and the decisions' reasons
        withheld = [
            w for answer in from_rest for w in answer.get("extensions", {}).get("privacy", {}).get("withheld", [])
        ]
        assert {w["reason"] for w in withheld} >= {"no-consent", "public-requester"}
        rides = [r for answer in from_rest for r in ((answer["data"].get("resident") or {}).get("bikeRentals") or [])]
        assert any(r["priceCents"] == 210 for r in rides)
        # and the links decided: a resident's rentals withheld whole where no basis covers them
        assert any(w["path"][-1] == "bikeRentals" and w["category"] == "user.behavior" for w in withheld)
    finally:
        await asyncio.to_thread(subgraph.stop)


# -- restart, failures -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'city.db'}"
    # this file's own database (tests/registry's shared one is reset by other tests)
    return await fresh_database(worker_database("citygate_b2"))


async def test_a_restart_serves_the_stored_rest_connector_again(store_url, tmp_path, privacy_world, signer, apis):  # noqa: F811
    api = apis()
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    first = City(store_url, folder, city_policy(signer), signer)
    try:
        key = await partner_key(first)
        body = manifest(api, headers={"x-api-key": "${secret:K}"}, secrets={"K": SECRET})
        assert (await register(first, key, body)).status_code == 200
        expected = await first.ask(DISTRICT_STATIONS)
        assert "errors" not in expected
    finally:
        await first.close()

    second = City(store_url, folder, city_policy(signer), signer)
    try:
        assert await second.ask(DISTRICT_STATIONS) == expected
        assert api.recorder.header_values("x-api-key")[-1] == SECRET  # the stored secret, after the restart
        listing = (await admin(second, "GET", "/admin/connectors", OPERATOR_KEY)).json()["connectors"]
        assert {c["name"]: c["kind"] for c in listing}["bikes"] == "rest"
    finally:
        await second.close()


async def test_a_failing_rest_api_costs_only_its_own_fields(city, apis):
    api = apis()
    key = await partner_key(city)
    assert (await register(city, key, manifest(api))).status_code == 200

    broken = await city.ask("{ districts { name } brokenStations { name } }")
    assert [d["name"] for d in broken["data"]["districts"]] == ["Panthéon", "Popincourt", "Buttes-Montmartre"]
    assert broken["data"]["brokenStations"] is None
    error = broken["errors"][0]
    # a partner's error as every subgraph's reaches a client: its code, the connector and the API's
    # HTTP status (the executor keeps no other extension of a partner's)
    assert error["extensions"] == {"code": "CONNECTOR_HTTP_ERROR", "status": 500, "serviceName": "bikes"}, error
    assert error["path"] == ["brokenStations"]
    assert "amelie" not in json.dumps(broken) and "quota" not in json.dumps(broken)  # never the partner's body

    await asyncio.to_thread(api.stop)  # the API is down
    down = await city.ask(DISTRICT_STATIONS)
    assert [d["name"] for d in down["data"]["districts"]] == ["Panthéon", "Popincourt", "Buttes-Montmartre"]
    assert all(d["bikeStations"] is None for d in down["data"]["districts"])
    assert down["errors"] and all(
        e["extensions"]["code"] == "SUBGRAPH_UNAVAILABLE" or e["extensions"]["code"].startswith("CONNECTOR_")
        for e in down["errors"]
    ), down["errors"]
