"""Cyclo, a shared-bike operator: its own REST/JSON API, as a start-up runs it (no GraphQL).

The gateway reaches it through the `rest` connector of this folder (schema.graphql maps it into
the graph with @source/@connect); `citygate demo` serves this app on the partners' loopback server
at /rest/bikes. Stations are open data; rentals are a resident's personal data, answered here to
whoever asks (the API trusts the gateway, which decides what leaves it). Data comes from Faker and
a fixed seed: every run of the demo shows the same bikes.

Routes (JSON, snake_case as such APIs are):
- GET /stations?district=75118 - the stations of a district (or all)
- GET /stations?ids=s0001,s0002 - several stations at once (the gateway's batched entity calls)
- GET /stations/{id}
- GET /residents/{id}/rentals - a resident's rentals, newest first
- GET /openapi.json - this API's OpenAPI document (what `citygate connector import-openapi` reads)
- POST /erasure - the city forwards a resident's erasure request (signed: gateway/sdk_erasure.py): their rentals are deleted
  (the manifest's `erasure` endpoint; not in the OpenAPI document, it is no part of the graph)
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta

from faker import Faker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.sdk_erasure import ErasureRequestVerifier

RESIDENTS = 2000
MAX_IDS = 100  # one batched call names at most this many stations
# the twenty arrondissements' centres, as the city's schema has them
CENTRES = [
    (48.8603, 2.3401),
    (48.8683, 2.3428),
    (48.8630, 2.3600),
    (48.8543, 2.3576),
    (48.8445, 2.3507),
    (48.8491, 2.3328),
    (48.8562, 2.3122),
    (48.8727, 2.3126),
    (48.8770, 2.3375),
    (48.8761, 2.3607),
    (48.8590, 2.3800),
    (48.8350, 2.4212),
    (48.8283, 2.3623),
    (48.8291, 2.3265),
    (48.8421, 2.2988),
    (48.8603, 2.2620),
    (48.8873, 2.3067),
    (48.8925, 2.3484),
    (48.8871, 2.3848),
    (48.8634, 2.4012),
]


def _generate() -> dict:
    fake = Faker("fr_FR")
    fake.seed_instance(31)
    rng = random.Random(31)
    stations = {}
    for number, (lat, lng) in enumerate(CENTRES, start=1):
        for _ in range(rng.randint(3, 7)):
            station_id = f"s{len(stations) + 1:04d}"
            capacity = rng.choice([20, 24, 30, 36, 40])
            electric = rng.randint(0, capacity // 3)
            stations[station_id] = {
                "id": station_id,
                "name": f"{fake.street_name().title()} ({number})",
                "district": f"751{number:02d}",
                "capacity": capacity,
                "bikes": {"mechanical": rng.randint(0, capacity - electric), "electric": electric},
                "position": {
                    "lat": round(lat + rng.uniform(-0.006, 0.006), 6),
                    "lng": round(lng + rng.uniform(-0.008, 0.008), 6),
                },
            }
    ids = sorted(stations)
    start = datetime(2026, 9, 1, 7, 0)
    rentals = {}
    for index in range(1, 801):
        minutes = rng.randint(4, 75)
        electric = rng.random() < 0.3
        rentals[f"rt{index:04d}"] = {
            "id": f"rt{index:04d}",
            "resident_id": f"r{rng.randint(1, RESIDENTS):04d}",
            "from_station": rng.choice(ids),
            "to_station": rng.choice(ids),
            "started_at": (start + timedelta(minutes=rng.randint(0, 60 * 24 * 80))).isoformat(timespec="minutes"),
            "duration_min": minutes,
            "bike": {"type": "electric" if electric else "mechanical"},
            "price_cents": (100 if electric else 0) + max(0, minutes - 30) * (10 if electric else 5),
        }
    for rental in ("rt0001", "rt0002", "rt0003"):  # the demo's first resident rides too
        rentals[rental]["resident_id"] = "r0001"
    return {"stations": stations, "rentals": rentals}


DATA = _generate()


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"{what} not found"}, status_code=404)


async def stations(request: Request) -> JSONResponse:
    wanted = [
        i
        for value in request.query_params.getlist("ids") + request.query_params.getlist("id")
        for i in value.split(",")
        if i
    ]
    if wanted:
        if len(wanted) > MAX_IDS:
            return JSONResponse({"error": f"at most {MAX_IDS} ids"}, status_code=400)
        return JSONResponse([DATA["stations"][i] for i in dict.fromkeys(wanted) if i in DATA["stations"]])
    district = request.query_params.get("district")
    return JSONResponse([s for s in DATA["stations"].values() if district is None or s["district"] == district])


async def station(request: Request) -> JSONResponse:
    found = DATA["stations"].get(request.path_params["id"])
    return JSONResponse(found) if found is not None else _not_found("station")


async def rentals(request: Request) -> JSONResponse:
    resident = request.path_params["id"]
    found = [r for r in DATA["rentals"].values() if r["resident_id"] == resident]
    return JSONResponse(sorted(found, key=lambda r: r["started_at"], reverse=True))


# the city's gateway signs each erasure request for this connector (gateway/sdk_erasure.py); the
# demo reads the gateway's keys where `citygate demo` says the gateway listens
ERASURE_REQUESTS = ErasureRequestVerifier(
    "bikes", lambda: os.environ.get("CITYGATE_DEMO_GATEWAY_URL", "") + "/.well-known/jwks.json"
)


async def erasure(request: Request) -> JSONResponse:
    subject = await ERASURE_REQUESTS.subject_or_refusal(request)
    if isinstance(subject, JSONResponse):
        return subject
    for rental_id in [i for i, r in DATA["rentals"].items() if r["resident_id"] == subject]:
        del DATA["rentals"][rental_id]
    return JSONResponse({"status": "done"})


def _openapi_document() -> dict:
    station = {
        "type": "object",
        "required": ["id", "name", "district", "capacity", "bikes", "position"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "district": {"type": "string", "description": "INSEE code of the arrondissement"},
            "capacity": {"type": "integer"},
            "bikes": {
                "type": "object",
                "required": ["mechanical", "electric"],
                "properties": {"mechanical": {"type": "integer"}, "electric": {"type": "integer"}},
            },
            "position": {
                "type": "object",
                "required": ["lat", "lng"],
                "properties": {"lat": {"type": "number"}, "lng": {"type": "number"}},
            },
        },
    }
    rental = {
        "type": "object",
        "required": [
            "id",
            "resident_id",
            "from_station",
            "to_station",
            "started_at",
            "duration_min",
            "bike",
            "price_cents",
        ],
        "properties": {
            "id": {"type": "string"},
            "resident_id": {"type": "string"},
            "from_station": {"type": "string"},
            "to_station": {"type": "string"},
            "started_at": {"type": "string"},
            "duration_min": {"type": "integer"},
            "bike": {"type": "object", "properties": {"type": {"type": "string", "enum": ["mechanical", "electric"]}}},
            "price_cents": {"type": "integer"},
        },
    }

    def answer(schema: dict) -> dict:
        return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}

    stations_ref, rental_ref = {"$ref": "#/components/schemas/Station"}, {"$ref": "#/components/schemas/Rental"}
    text = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cyclo", "version": "1.0.0", "description": "Shared bikes: stations and rentals"},
        "servers": [{"url": "."}],
        "paths": {
            "/stations": {
                "get": {
                    "operationId": "listStations",
                    "parameters": [
                        {"name": "district", "in": "query", "schema": text},
                        {"name": "ids", "in": "query", "schema": text},
                    ],
                    "responses": answer({"type": "array", "items": stations_ref}),
                }
            },
            "/stations/{stationId}": {
                "get": {
                    "operationId": "getStation",
                    "parameters": [{"name": "stationId", "in": "path", "required": True, "schema": text}],
                    "responses": {**answer(stations_ref), "404": {"description": "no such station"}},
                }
            },
            "/residents/{residentId}/rentals": {
                "get": {
                    "operationId": "listRentals",
                    "parameters": [{"name": "residentId", "in": "path", "required": True, "schema": text}],
                    "responses": answer({"type": "array", "items": rental_ref}),
                }
            },
        },
        "components": {"schemas": {"Station": station, "Rental": rental}},
    }


OPENAPI = _openapi_document()


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


app = Starlette(
    routes=[
        Route("/openapi.json", openapi),
        Route("/stations", stations),
        Route("/stations/{id}", station),
        Route("/residents/{id}/rentals", rentals),
        Route("/erasure", erasure, methods=["POST"]),
    ]
)
