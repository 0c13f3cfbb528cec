"""Table d'hôte, a home-dining platform: its own REST/JSON API (no GraphQL), for the dinners
residents host at home and the seats guests book.

The gateway reaches it through the `rest` connector of this folder (schema.graphql maps it into
the graph with @source/@connect); `citygate demo` serves this app on the partners' loopback server
at /rest/dining. The API answers whoever asks (it trusts the gateway, which decides what leaves
it). Data comes from a fixed seed: every run of the demo shows the same dinners.

Routes (JSON, snake_case):
- GET /dinners?district=&cuisine=&first=20 - upcoming dinners (first: at most 100)
- GET /dinners?ids=d0001,d0002 - several dinners at once (the gateway's batched entity calls)
- GET /dinners/{dinnerId}
- GET /districts/{code}/dinners - a district's dinners
- GET /districts/{code}/stats - a district's figures (the average price of a seat)
- GET /residents/{residentId}/dinners - the dinners a resident hosts
- GET /residents/{residentId}/reservations - the seats a resident booked
- GET /reservations?ids=res0001,res0002 - several reservations at once
- GET /openapi.json - this API's OpenAPI 3.1 document
"""

from __future__ import annotations

import os
import random

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.sdk_erasure import ErasureRequestVerifier

RESIDENTS = 2000
MAX_FIRST = 100
MAX_IDS = 100  # one batched call names at most this many
CUISINES = [
    "Provençale",
    "Bretonne",
    "Lyonnaise",
    "Libanaise",
    "Vietnamienne",
    "Sénégalaise",
    "Végétarienne",
    "Italienne",
]


def _generate() -> dict:
    # the same draws, in the same order, as the demo's GraphQL subgraph made: the same dinners
    rng = random.Random(23)
    dinners = {}
    for index in range(1, 151):
        number = rng.randint(1, 20)
        seats = rng.randint(4, 10)
        dinners[f"d{index:04d}"] = {
            "title": f"{rng.choice(['Dîner', 'Soirée', 'Table'])} {rng.choice(CUISINES).lower()}",
            "cuisine": rng.choice(CUISINES),
            "date": f"2026-12-{rng.randint(1, 23):02d}T20:00",
            "price": float(rng.choice([18, 22, 25, 30, 35, 40])),
            "seats": seats,
            "district": f"751{number:02d}",
            "host": f"r{rng.randint(1, RESIDENTS):04d}",
            "address": f"{rng.randint(1, 120)} rue {rng.choice(['des Martyrs', 'de Charonne', 'Caulaincourt', 'du Bac', 'de la Roquette'])}, 751{number:02d} Paris",
        }
    dinners["d0001"]["host"] = "r0002"
    reservations = {}
    for index in range(1, 401):
        dinner = f"d{rng.randint(1, 150):04d}"
        reservations[f"res{index:04d}"] = {
            "dinner": dinner,
            "guest": f"r{rng.randint(1, RESIDENTS):04d}",
            "seats": rng.randint(1, 3),
        }
    reservations["res0001"].update(guest="r0001", dinner="d0001")
    return {"dinners": dinners, "reservations": reservations}


DATA = _generate()


def _booked_seats() -> dict[str, int]:
    booked: dict[str, int] = {}
    for reservation in DATA["reservations"].values():
        booked[reservation["dinner"]] = booked.get(reservation["dinner"], 0) + reservation["seats"]
    return booked


BOOKED = _booked_seats()  # per dinner, once: the data changes only on an erasure request (recounted then)


def _dinner(dinner_id: str) -> dict:
    dinner = DATA["dinners"][dinner_id]
    booked = BOOKED.get(dinner_id, 0)
    return {
        "id": dinner_id,
        "title": dinner["title"],
        "cuisine": dinner["cuisine"],
        "date": dinner["date"],
        "price_per_seat": dinner["price"],
        "seats": dinner["seats"],
        "seats_left": max(0, dinner["seats"] - booked),
        "host_id": dinner["host"],
        "district": dinner["district"],
        "address": dinner["address"],
    }


def _reservation(reservation_id: str) -> dict:
    reservation = DATA["reservations"][reservation_id]
    price = DATA["dinners"][reservation["dinner"]]["price"]
    return {
        "id": reservation_id,
        "guest_id": reservation["guest"],
        "dinner_id": reservation["dinner"],
        "seats": reservation["seats"],
        "amount_paid": price * reservation["seats"],
    }


def _refused(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _ids(request: Request) -> list[str]:
    return [i for value in request.query_params.getlist("ids") for i in value.split(",") if i]


async def dinners(request: Request) -> JSONResponse:
    wanted = _ids(request)
    if wanted:
        if len(wanted) > MAX_IDS:
            return _refused(f"at most {MAX_IDS} ids")
        return JSONResponse([_dinner(i) for i in dict.fromkeys(wanted) if i in DATA["dinners"]])
    district, cuisine = request.query_params.get("district"), request.query_params.get("cuisine")
    try:
        first = int(request.query_params.get("first", "20"))
    except ValueError:
        return _refused("first is a number")
    found = [
        i
        for i, d in DATA["dinners"].items()
        if (district is None or d["district"] == district) and (cuisine is None or d["cuisine"] == cuisine)
    ]
    return JSONResponse([_dinner(i) for i in found[: max(0, min(first, MAX_FIRST))]])


async def dinner(request: Request) -> JSONResponse:
    dinner_id = request.path_params["dinner_id"]
    if dinner_id not in DATA["dinners"]:
        return JSONResponse({"error": "dinner not found"}, status_code=404)
    return JSONResponse(_dinner(dinner_id))


async def district_dinners(request: Request) -> JSONResponse:
    code = request.path_params["code"]
    return JSONResponse([_dinner(i) for i, d in DATA["dinners"].items() if d["district"] == code])


async def district_stats(request: Request) -> JSONResponse:
    code = request.path_params["code"]
    prices = [d["price"] for d in DATA["dinners"].values() if d["district"] == code]
    return JSONResponse(
        {
            "district": code,
            "dinners": len(prices),
            "average_price_per_seat": round(sum(prices) / len(prices), 2) if prices else None,
        }
    )


async def hosted_dinners(request: Request) -> JSONResponse:
    resident = request.path_params["resident_id"]
    return JSONResponse([_dinner(i) for i, d in DATA["dinners"].items() if d["host"] == resident])


async def resident_reservations(request: Request) -> JSONResponse:
    resident = request.path_params["resident_id"]
    return JSONResponse([_reservation(i) for i, r in DATA["reservations"].items() if r["guest"] == resident])


async def reservations(request: Request) -> JSONResponse:
    wanted = _ids(request)
    if len(wanted) > MAX_IDS:
        return _refused(f"at most {MAX_IDS} ids")
    return JSONResponse([_reservation(i) for i in dict.fromkeys(wanted) if i in DATA["reservations"]])


# the city's gateway signs each erasure request for this connector (gateway/sdk_erasure.py); the
# demo reads the gateway's keys where `citygate demo` says the gateway listens
ERASURE_REQUESTS = ErasureRequestVerifier(
    "dining", lambda: os.environ.get("CITYGATE_DEMO_GATEWAY_URL", "") + "/.well-known/jwks.json"
)


async def erasure(request: Request) -> JSONResponse:
    """A resident's erasure request, from the city: their reservations and the dinners they host
    (with the seats booked on them) are deleted."""
    subject = await ERASURE_REQUESTS.subject_or_refusal(request)
    if isinstance(subject, JSONResponse):
        return subject
    hosted = {i for i, d in DATA["dinners"].items() if d["host"] == subject}
    for reservation_id in [
        i for i, r in DATA["reservations"].items() if r["guest"] == subject or r["dinner"] in hosted
    ]:
        del DATA["reservations"][reservation_id]
    for dinner_id in hosted:
        del DATA["dinners"][dinner_id]
    BOOKED.clear()
    BOOKED.update(_booked_seats())
    return JSONResponse({"status": "done"})


def _openapi_document() -> dict:
    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(schema: dict) -> dict:
        return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}

    def path_parameter(name: str, description: str) -> dict:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}

    text = {"type": "string"}
    ids = {"name": "ids", "in": "query", "schema": text, "description": f"comma-separated, at most {MAX_IDS}"}
    dinner_schema = {
        "type": "object",
        "description": "A dinner a resident hosts at home.",
        "required": [
            "id",
            "title",
            "cuisine",
            "date",
            "price_per_seat",
            "seats",
            "seats_left",
            "host_id",
            "district",
            "address",
        ],
        "properties": {
            "id": text,
            "title": text,
            "cuisine": text,
            "date": {"type": "string", "description": "local time, YYYY-MM-DDTHH:MM"},
            "price_per_seat": {"type": "number", "description": "euros"},
            "seats": {"type": "integer"},
            "seats_left": {"type": "integer"},
            "host_id": {"type": "string", "description": "the resident who hosts it"},
            "district": {"type": "string", "description": "INSEE code of the arrondissement"},
            "address": {"type": ["string", "null"], "description": "the host's home"},
        },
    }
    reservation_schema = {
        "type": "object",
        "description": "Seats a guest booked at a dinner.",
        "required": ["id", "guest_id", "dinner_id", "seats", "amount_paid"],
        "properties": {
            "id": text,
            "guest_id": text,
            "dinner_id": text,
            "seats": {"type": "integer"},
            "amount_paid": {"type": ["number", "null"], "description": "euros"},
        },
    }
    stats = {
        "type": "object",
        "required": ["district", "dinners", "average_price_per_seat"],
        "properties": {
            "district": text,
            "dinners": {"type": "integer"},
            "average_price_per_seat": {"type": ["number", "null"], "description": "euros"},
        },
    }
    dinners_answer = answer({"type": "array", "items": ref("Dinner")})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Table d'hôte", "version": "1.0.0", "description": "Home dinners and their reservations"},
        "servers": [{"url": "."}],
        "paths": {
            "/dinners": {
                "get": {
                    "operationId": "listDinners",
                    "summary": "Upcoming dinners, of one cuisine or district, or the dinners named by ids",
                    "parameters": [
                        {"name": "district", "in": "query", "schema": text},
                        {"name": "cuisine", "in": "query", "schema": text},
                        {
                            "name": "first",
                            "in": "query",
                            "schema": {"type": "integer", "default": 20, "maximum": MAX_FIRST},
                        },
                        ids,
                    ],
                    "responses": dinners_answer,
                }
            },
            "/dinners/{dinnerId}": {
                "get": {
                    "operationId": "getDinner",
                    "parameters": [path_parameter("dinnerId", "the dinner")],
                    "responses": {**answer(ref("Dinner")), "404": {"description": "no such dinner"}},
                }
            },
            "/districts/{code}/dinners": {
                "get": {
                    "operationId": "listDistrictDinners",
                    "parameters": [path_parameter("code", "INSEE code of the arrondissement")],
                    "responses": dinners_answer,
                }
            },
            "/districts/{code}/stats": {
                "get": {
                    "operationId": "getDistrictStats",
                    "parameters": [path_parameter("code", "INSEE code of the arrondissement")],
                    "responses": answer(ref("DistrictStats")),
                }
            },
            "/residents/{residentId}/dinners": {
                "get": {
                    "operationId": "listHostedDinners",
                    "parameters": [path_parameter("residentId", "the host")],
                    "responses": dinners_answer,
                }
            },
            "/residents/{residentId}/reservations": {
                "get": {
                    "operationId": "listReservations",
                    "parameters": [path_parameter("residentId", "the guest")],
                    "responses": answer({"type": "array", "items": ref("Reservation")}),
                }
            },
            "/reservations": {
                "get": {
                    "operationId": "getReservations",
                    "parameters": [ids],
                    "responses": answer({"type": "array", "items": ref("Reservation")}),
                }
            },
        },
        "components": {"schemas": {"Dinner": dinner_schema, "Reservation": reservation_schema, "DistrictStats": stats}},
    }


OPENAPI = _openapi_document()


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


app = Starlette(
    routes=[
        Route("/openapi.json", openapi),
        Route("/dinners", dinners),
        Route("/dinners/{dinner_id}", dinner),
        Route("/districts/{code}/dinners", district_dinners),
        Route("/districts/{code}/stats", district_stats),
        Route("/residents/{resident_id}/dinners", hosted_dinners),
        Route("/residents/{resident_id}/reservations", resident_reservations),
        Route("/reservations", reservations),
        Route("/erasure", erasure, methods=["POST"]),  # the manifest's erasure endpoint, not in the OpenAPI document
    ]
)
