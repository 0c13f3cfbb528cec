"""Real JSON APIs for the OpenAPI documents under openapi/: one Starlette app per document, with
small data, implementing the document's operations (paths, parameters, pagination, bodies) as a
partner would, served by uvicorn on a loopback port the OS chose, recording what each received.

The data below is the API's own (JSON names, JSON types): the tests compute what the connector
must answer from it, never from literals.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SPECS = Path(__file__).parent / "openapi"


@dataclass
class Seen:
    """One request an API received: method, path with its query string, body."""

    method: str
    target: str
    body: bytes


@dataclass
class Api:
    """A running API: its base URL (where the document's server is), its data, what it saw."""

    app: Starlette
    data: dict[str, Any]
    prefix: str  # the path of the document's server URL
    seen: list[Seen] = field(default_factory=list)
    origin: str = ""
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    def targets(self, method: str = "GET") -> list[str]:
        return [s.target[len(self.prefix) :] for s in self.seen if s.method == method]

    def bodies(self, method: str) -> list[Any]:
        return [orjson.loads(s.body) for s in self.seen if s.method == method]

    def start(self) -> Api:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))  # the OS picks the port; uvicorn serves this very socket
        self.origin = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = uvicorn.Config(_Recording(self.app, self), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=5)


class _Recording:
    def __init__(self, app: Starlette, api: Api) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        more = True
        while more:  # read the whole body first, then hand it on to the app
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        query = scope["query_string"].decode()
        self.api.seen.append(Seen(scope["method"], scope["path"] + (f"?{query}" if query else ""), body))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"code": 404, "message": f"no such {what}"}, status_code=404)


def _flag(value: str | None) -> bool | None:
    return None if value is None else value == "true"


# -- petstore.yaml (OpenAPI 3.0, YAML): /v1 ------------------------------------------------------

PETS = [
    {
        "id": 1,
        "name": "Rex",
        "tag": "dog",
        "status": "available",
        "birth_date": "2019-04-02",
        "category": {"id": 10, "name": "Dogs"},
        "tags": [{"id": 100, "label": "friendly"}, {"id": 101, "label": "trained"}],
        "weight-kg": 31.5,
    },
    {
        "id": 2,
        "name": "Minou",
        "tag": None,
        "status": "sold",
        "birth_date": "2021-11-30",
        "category": {"id": 11, "name": "Cats"},
        "tags": [],
        "weight-kg": 4.2,
    },
    {
        "id": 3,
        "name": "Bubulle",
        "tag": "fish",
        "status": "available",
        "birth_date": None,
        "category": None,
        "tags": [{"id": 102, "label": "quiet"}],
        "weight-kg": 0.1,
    },
    {
        "id": 4,
        "name": "Caramel",
        "tag": "hamster",
        "status": "pending",
        "birth_date": "2023-01-15",
        "category": {"id": 12, "name": "Rodents"},
        "tags": [{"id": 103, "label": "night"}],
        "weight-kg": 0.2,
    },
]


def petstore() -> Api:
    api = Api(Starlette(), {"pets": copy.deepcopy(PETS)}, "/v1")
    pets: list[dict] = api.data["pets"]

    async def list_pets(request: Request) -> JSONResponse:
        status = request.query_params.get("status")
        found = [p for p in pets if status is None or p["status"] == status]
        return JSONResponse(found[: int(request.query_params.get("limit", "100"))])

    async def create_pet(request: Request) -> JSONResponse:
        body = await request.json()
        pet = {
            "id": max(p["id"] for p in pets) + 1,
            "name": body["name"],
            "tag": body.get("tag"),
            "status": "available",
            "birth_date": None,
            "category": None,
            "tags": [],
            "weight-kg": None,
            "owner_email": body.get("owner_email"),
        }
        pets.append(pet)
        return JSONResponse({k: v for k, v in pet.items() if k != "owner_email"}, status_code=201)  # writeOnly

    async def pet(request: Request) -> Response:
        pet_id = int(request.path_params["pet_id"])
        found = next((p for p in pets if p["id"] == pet_id), None)
        if found is None:
            return _not_found("pet")
        if request.method == "DELETE":
            pets.remove(found)
            return Response(status_code=204)
        return JSONResponse(found)

    api.app = Starlette(
        routes=[
            Route("/v1/pets", list_pets, methods=["GET"]),
            Route("/v1/pets", create_pet, methods=["POST"]),
            Route("/v1/pets/{pet_id:int}", pet, methods=["GET", "DELETE"]),
        ]
    )
    return api


# -- district_services.json (OpenAPI 3.1, JSON): /api --------------------------------------------

SERVICES = [
    {
        "id": "6a1f0c1e-0000-4000-8000-000000000001",
        "created_at": "2024-01-10T09:00:00Z",
        "name": "Bibliothèque Mouffetard",
        "kind": "library",
        "open_days": ["TUE", "WED", "SAT"],
        "contact": {"phone": "+33 1 43 31 00 00"},
        "manager": {"full_name": "Odile Ferrand", "person_id": "p-17"},
        "capacity": 120,
        "location": {"lat": 48.8421, "lng": 2.3497, "street-address": "74 rue Mouffetard"},
        "extra": {"wifi": True, "floors": 2},
        "rating": 4.5,
        "district": "75105",
    },
    {
        "id": "6a1f0c1e-0000-4000-8000-000000000002",
        "created_at": "2023-06-01T08:30:00Z",
        "name": "Piscine Jean Taris",
        "kind": "pool",
        "open_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "contact": {"email": "taris@paris.example"},
        "manager": None,
        "capacity": 85.5,
        "location": {"lat": 48.8445, "lng": 2.3491, "street-address": "16 rue Thouin"},
        "extra": {},
        "rating": None,
        "district": "75105",
    },
    {
        "id": "6a1f0c1e-0000-4000-8000-000000000003",
        "created_at": "2025-02-02T10:00:00Z",
        "name": "Médiathèque (travaux)",
        "kind": "in-progress",
        "open_days": [],
        "contact": None,
        "manager": {"full_name": "Rémi Tan", "person_id": "p-23"},
        "capacity": 0,
        "location": None,
        "extra": {"reopens": "2026"},
        "rating": None,
        "district": "75105",
    },
    {
        "id": "6a1f0c1e-0000-4000-8000-000000000004",
        "created_at": "2022-09-09T09:09:09Z",
        "name": "Bibliothèque Parmentier",
        "kind": "library",
        "open_days": ["SAT", "SUN"],
        "contact": {"phone": "+33 1 55 28 00 00"},
        "manager": None,
        "capacity": 60,
        "location": {"lat": 48.8617, "lng": 2.3752, "street-address": "20 avenue Parmentier"},
        "extra": {},
        "rating": 3.9,
        "district": "75111",
    },
]
CATEGORIES = [
    {
        "slug": "culture",
        "parent": None,
        "children": [{"slug": "libraries", "children": []}, {"slug": "museums", "children": []}],
    },
    {"slug": "libraries", "parent": {"slug": "culture", "parent": None}, "children": []},
    {"slug": "sport", "parent": None, "children": [{"slug": "pools", "children": [{"slug": "outdoor"}]}]},
]
PAGE_SIZE = 2  # the services API's page: a cursor is the index of the next item


def district_services() -> Api:
    api = Api(Starlette(), {"services": copy.deepcopy(SERVICES), "categories": copy.deepcopy(CATEGORIES)}, "/api")
    services: list[dict] = api.data["services"]

    def public(service: dict) -> dict:
        return {k: v for k, v in service.items() if k != "district"}

    async def district(request: Request) -> JSONResponse:
        kinds = request.query_params.getlist("kinds")
        found = [
            s for s in services if s["district"] == request.path_params["code"] and (not kinds or s["kind"] in kinds)
        ]
        start = int(request.query_params.get("cursor") or 0)
        end = start + PAGE_SIZE
        return JSONResponse(
            {"items": [public(s) for s in found[start:end]], "next_cursor": str(end) if end < len(found) else None}
        )

    async def service(request: Request) -> JSONResponse:
        found = next((s for s in services if s["id"] == request.path_params["service_id"]), None)
        if found is None:
            return _not_found("service")
        if request.method == "PATCH":  # a JSON merge patch (RFC 7396) of the two patchable fields
            patch = await request.json()
            found.update({k: v for k, v in patch.items() if k in ("name", "open_days")})
        return JSONResponse(public(found))

    async def categories(request: Request) -> JSONResponse:
        return JSONResponse(api.data["categories"])

    async def stats(request: Request) -> JSONResponse:
        by_kind: dict[str, int] = {}
        for s in services:
            by_kind[s["kind"]] = by_kind.get(s["kind"], 0) + 1
        return JSONResponse({"total": len(services), "by_kind": by_kind})

    api.app = Starlette(
        routes=[
            Route("/api/districts/{code}/services", district),
            Route("/api/services/{service_id}", service, methods=["GET", "PATCH"]),
            Route("/api/categories", categories),
            Route("/api/stats", stats),
        ]
    )
    return api


# -- jobs.yaml (OpenAPI 3.1, YAML): /v2 ----------------------------------------------------------

JOBS = [
    {
        "id": "j1",
        "employer": "e1",
        "title": "Garde d'enfants",
        "poster_id": "r-101",
        "remote": False,
        "skills": [{"name": "childcare", "level": "EXPERT"}, {"name": "first-aid", "level": "BEGINNER"}],
        "pay": {"kind": "hourly", "per_hour": 14.5},
        "schedule": [["MON", "18:00"], ["THU", "18:00"]],
        "posted_at": "2025-03-01T10:00:00Z",
    },
    {
        "id": "j2",
        "employer": "e1",
        "title": "Cours de maths en ligne",
        "poster_id": "r-102",
        "remote": True,
        "skills": [{"name": "maths", "level": "INTERMEDIATE"}],
        "pay": {"kind": "fixed", "amount": 200},
        "schedule": [],
        "posted_at": "2025-03-02T10:00:00Z",
    },
    {
        "id": "j3",
        "employer": "e2",
        "title": "Jardinage",
        "poster_id": "r-101",
        "remote": False,
        "skills": [],
        "pay": {"kind": "hourly", "per_hour": 12},
        "schedule": [["SAT"]],
        "posted_at": "2025-03-03T10:00:00Z",
    },
    {
        "id": "j4",
        "employer": "e2",
        "title": "Traduction de menus",
        "poster_id": "r-103",
        "remote": True,
        "skills": [{"name": "english", "level": "EXPERT"}, {"name": "menus", "level": None}],
        "pay": {"kind": "fixed", "amount": 80.5},
        "schedule": [["ANY"]],
        "posted_at": "2025-03-04T10:00:00Z",
    },
    {
        "id": "j5",
        "employer": "e3",
        "title": "Aide aux devoirs",
        "poster_id": "r-104",
        "remote": False,
        "skills": [{"name": "maths", "level": "BEGINNER"}],
        "pay": {"kind": "hourly", "per_hour": 15},
        "schedule": [["TUE", "17:00", "19:00"]],
        "posted_at": "2025-03-05T10:00:00Z",
    },
]


def job_view(job: dict) -> dict:
    """A job as the jobs API answers it (the employer is in the path, not the body)."""
    return {k: v for k, v in job.items() if k not in ("employer", "remote")}


def jobs() -> Api:
    api = Api(Starlette(), {"jobs": copy.deepcopy(JOBS)}, "/v2")
    all_jobs: list[dict] = api.data["jobs"]

    async def search(request: Request) -> JSONResponse:
        q = (request.query_params.get("q") or "").lower()
        remote = _flag(request.query_params.get("remote"))
        found = [j for j in all_jobs if q in j["title"].lower() and (remote is None or j["remote"] == remote)]
        page, per_page = int(request.query_params.get("page", "1")), int(request.query_params.get("per_page", "10"))
        chunk = found[(page - 1) * per_page : page * per_page]
        return JSONResponse(
            {"data": [job_view(j) for j in chunk], "meta": {"total": len(found), "page": page, "per_page": per_page}}
        )

    async def employer_job(request: Request) -> JSONResponse:
        found = next(
            (
                j
                for j in all_jobs
                if j["id"] == request.path_params["job_id"] and j["employer"] == request.path_params["employer_id"]
            ),
            None,
        )
        return JSONResponse(job_view(found)) if found else _not_found("job")

    async def replace_skills(request: Request) -> JSONResponse:
        found = next((j for j in all_jobs if j["id"] == request.path_params["job_id"]), None)
        if found is None:
            return _not_found("job")
        found["skills"] = await request.json()
        return JSONResponse(found["skills"])

    api.app = Starlette(
        routes=[
            Route("/v2/jobs", search),
            Route("/v2/employers/{employer_id}/jobs/{job_id}", employer_job),
            Route("/v2/jobs/{job_id}/skills", replace_skills, methods=["PUT"]),
        ]
    )
    return api


# -- dining.json (OpenAPI 3.0, JSON): at the root --------------------------------------------------

DINNERS = [
    {
        "id": 7,
        "district": "75018",
        "menu": {
            "courses": [
                {"name": "Velouté", "allergens": ["celery"], "wine": None},
                {"name": "Boeuf bourguignon", "allergens": [], "wine": {"region": "Bourgogne", "vintage": 2019}},
                {
                    "name": "Tarte Tatin",
                    "allergens": ["gluten", "milk"],
                    "wine": {"region": "Jurançon", "vintage": 2021},
                },
            ]
        },
        "price": "32.00",
        "seats": 6,
        "translations": {"en": "Home dinner in Montmartre"},
        "host_id": "h-1",
        "starts_at": "2025-06-01T19:30:00Z",
    },
    {
        "id": 8,
        "district": "75018",
        "menu": {"courses": [{"name": "Couscous", "allergens": ["gluten"], "wine": None}]},
        "price": "18.50",
        "seats": 8,
        "translations": {},
        "host_id": "h-2",
        "starts_at": None,
    },
    {
        "id": 9,
        "district": "75011",
        "menu": {"courses": []},
        "price": "45.00",
        "seats": 2,
        "translations": {"en": "Tasting", "es": "Degustación"},
        "host_id": "h-1",
        "starts_at": "2025-06-03T20:00:00Z",
    },
]


def dinner_view(dinner: dict) -> dict:
    return {k: v for k, v in dinner.items() if k != "district"}


def dining() -> Api:
    api = Api(Starlette(), {"dinners": copy.deepcopy(DINNERS)}, "")
    dinners: list[dict] = api.data["dinners"]

    async def list_dinners(request: Request) -> JSONResponse:
        if "district" not in request.query_params:
            return JSONResponse({"code": 400, "message": "district is required"}, status_code=400)
        max_price = request.query_params.get("max_price")
        found = [
            d
            for d in dinners
            if d["district"] == request.query_params["district"]
            and (max_price is None or float(d["price"]) <= float(max_price))
        ]
        return JSONResponse([dinner_view(d) for d in found], media_type="application/json; charset=utf-8")

    async def dinner(request: Request) -> JSONResponse:
        found = next((d for d in dinners if d["id"] == request.path_params["id"]), None)
        if found is None:
            return _not_found("dinner")
        if request.method == "DELETE":
            dinners.remove(found)
            return JSONResponse({"cancelled": True, "refunds": found["seats"]})
        return JSONResponse(dinner_view(found))

    api.app = Starlette(
        routes=[Route("/dinners", list_dinners), Route("/dinners/{id:int}", dinner, methods=["GET", "DELETE"])]
    )
    return api


# -- libraries.yaml (OpenAPI 3.1, YAML, a relative server URL): /lib/v1 -----------------------------

BRANCHES = [
    {
        "id": "b-mouff",
        "name": "Mouffetard",
        "address": {"street": "74 rue Mouffetard", "postcode": "75005", "city": "Paris"},
        "hours": {"tue": "10-19", "sat": "10-18"},
        "services": ["wifi", "printing"],
        "accessible": True,
    },
    {
        "id": "b-parm",
        "name": "Parmentier",
        "address": {"street": "20 avenue Parmentier", "postcode": "75011", "city": "Paris"},
        "hours": {"sat": "10-18"},
        "services": [],
        "accessible": False,
    },
    {
        "id": "b-goutte",
        "name": "Goutte d'Or",
        "address": {"street": "2 rue Fleury", "postcode": "75018", "city": "Paris"},
        "hours": {},
        "services": ["wifi"],
        "accessible": True,
    },
    {
        "id": "b-batig",
        "name": "Batignolles",
        "address": {"street": "18 rue des Batignolles", "postcode": "75017", "city": "Paris"},
        "hours": {"wed": "13-19"},
        "services": ["printing", "makerspace"],
        "accessible": True,
    },
    {
        "id": "b-vaug",
        "name": "Vaugirard",
        "address": {"street": "154 rue Lecourbe", "postcode": "75015", "city": "Paris"},
        "hours": {"mon": "14-19"},
        "services": ["wifi"],
        "accessible": False,
    },
]
BOOKS = [
    {
        "isbn": "9782070360024",
        "title": "L'Étranger",
        "authors": [{"name": "Albert Camus", "born": 1913}],
        "subjects": ["novel"],
        "series": None,
        "edition": 1942,
        "copies": [
            {"barcode": "c-1", "branch": "b-mouff", "available": True},
            {"barcode": "c-2", "branch": "b-parm", "available": False},
        ],
    },
    {
        "isbn": "9782253006329",
        "title": "Les Misérables I",
        "authors": [{"name": "Victor Hugo", "born": 1802}],
        "subjects": ["novel", "history"],
        "series": {"title": "Les Misérables", "number": 1},
        "edition": "Poche",
        "copies": [{"barcode": "c-3", "branch": "b-mouff", "available": False}],
    },
    {
        "isbn": "9782070612758",
        "title": "Le Petit Prince",
        "authors": [{"name": "Antoine de Saint-Exupéry", "born": 1900}],
        "subjects": ["children"],
        "series": None,
        "edition": 1943,
        "copies": [
            {"barcode": "c-4", "branch": "b-mouff", "available": True},
            {"barcode": "c-5", "branch": "b-goutte", "available": True},
        ],
    },
    {
        "isbn": "9782266286206",
        "title": "Guide des mots croisés",
        "authors": [{"name": "A. Verbe", "born": None}, {"name": "B. Grille", "born": 1970}],
        "subjects": [],
        "series": None,
        "edition": None,
        "copies": [],
    },
]


def library_document() -> bytes:
    return (SPECS / "libraries.yaml").read_bytes()


def libraries() -> Api:
    api = Api(Starlette(), {"branches": copy.deepcopy(BRANCHES), "books": copy.deepcopy(BOOKS), "holds": []}, "/lib/v1")
    branches: list[dict] = api.data["branches"]
    books: list[dict] = api.data["books"]

    async def document(request: Request) -> Response:
        return Response(library_document(), media_type="application/yaml")

    async def list_branches(request: Request) -> JSONResponse:
        offset, limit = int(request.query_params.get("offset", "0")), int(request.query_params.get("limit", "20"))
        following = offset + limit
        next_link = f"{api.base_url}/branches?offset={following}&limit={limit}" if following < len(branches) else None
        return JSONResponse(
            {
                "count": len(branches),
                "results": branches[offset:following],
                "links": {"next": next_link, "self": str(request.url)},
            }
        )

    async def branch(request: Request) -> JSONResponse:
        found = next((b for b in branches if b["id"] == request.path_params["branch_id"]), None)
        return JSONResponse(found) if found else _not_found("branch")

    async def books_of(request: Request) -> JSONResponse:
        branch_id = request.path_params["branch_id"]
        available = _flag(request.query_params.get("available"))
        subjects = request.query_params.getlist("subject")
        found = [
            b
            for b in books
            if any(c["branch"] == branch_id and (available is None or c["available"] == available) for c in b["copies"])
            and (not subjects or set(subjects) & set(b["subjects"]))
        ]
        return JSONResponse(found)

    async def book(request: Request) -> JSONResponse:
        found = next((b for b in books if b["isbn"] == request.path_params["isbn"]), None)
        return JSONResponse(found) if found else _not_found("book")

    async def place_hold(request: Request) -> JSONResponse:
        body = await request.json()
        found = next((b for b in books if b["isbn"] == body["isbn"]), None)
        if found is None:
            return JSONResponse({"code": 422, "message": "unknown book"}, status_code=422)
        hold = {
            "id": f"h-{len(api.data['holds']) + 1}",
            "created_at": "2025-05-05T12:00:00Z",
            "status": "waiting",
            "book": found,
            "pickup": {
                "branch": body["pickup"]["branch_id"],
                "by": body["pickup"].get("by"),
                "notes": body["pickup"].get("notes", []),
            },
        }
        api.data["holds"].append(hold)
        return JSONResponse(hold, status_code=201)

    api.app = Starlette(
        routes=[
            Route("/openapi.yaml", document),
            Route("/lib/v1/branches", list_branches),
            Route("/lib/v1/branches/{branch_id}", branch),
            Route("/lib/v1/branches/{branch_id}/books", books_of),
            Route("/lib/v1/books/{isbn}", book),
            Route("/lib/v1/holds", place_hold, methods=["POST"]),
        ]
    )
    return api


APIS = {  # fixture document -> the API implementing it
    "petstore.yaml": petstore,
    "district_services.json": district_services,
    "jobs.yaml": jobs,
    "dining.json": dining,
    "libraries.yaml": libraries,
}
