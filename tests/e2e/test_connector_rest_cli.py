"""`citygate connector import-openapi`, `connector test` and `connector validate` for a rest
connector, as processes, against a real REST API on loopback that publishes its OpenAPI document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.world.server import AppServer, free_port

API_KEY = "parking-api-key-for-tests"
SPOTS = {
    "s1": {
        "spot_id": "s1",
        "name": "Rue Mouffetard",
        "district": "75105",
        "free_now": 3,
        "ev_charging": True,
        "address": {"street": "12 rue Mouffetard", "post_code": "75005"},
        "tags": ["covered"],
        "kind": "street",
    },
    "s2": {
        "spot_id": "s2",
        "name": "Garage Panthéon",
        "district": "75105",
        "free_now": 0,
        "ev_charging": False,
        "address": {"street": "1 place du Panthéon", "post_code": "75005"},
        "tags": [],
        "kind": "garage",
    },
    "s3": {
        "spot_id": "s3",
        "name": "Bastille",
        "district": "75111",
        "free_now": 12,
        "ev_charging": True,
        "address": {"street": "3 rue de la Roquette", "post_code": "75011"},
        "tags": ["ev"],
        "kind": "garage",
    },
}

SPOT = {
    "type": "object",
    "required": ["spot_id", "name"],
    "properties": {
        "spot_id": {"type": "string"},
        "name": {"type": "string"},
        "free_now": {"type": "integer", "description": "Free places right now"},
        "ev_charging": {"type": "boolean"},
        "address": {"type": "object", "properties": {"street": {"type": "string"}, "post_code": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "kind": {"type": "string", "enum": ["street", "garage"]},
    },
}


def openapi_document() -> dict:
    answer = lambda schema: {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "Parkr parking API", "version": "1.2.0"},
        "servers": [{"url": "/api"}],  # relative: to where this document is read
        "paths": {
            "/spots": {
                "get": {
                    "operationId": "list_spots",
                    "parameters": [
                        {"name": "district", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": answer(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Spot"}},
                                "next_page": {"type": ["string", "null"]},
                            },
                        }
                    ),
                }
            },
            "/spots/{spot_id}": {
                "get": {
                    "operationId": "get_spot",
                    "parameters": [{"name": "spot_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": answer({"$ref": "#/components/schemas/Spot"}),
                }
            },
            "/spots/{spot_id}/reservations": {
                "post": {
                    "operationId": "create_reservation",
                    "parameters": [{"name": "spot_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewReservation"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "made",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reservation"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {
                "Spot": SPOT,
                "NewReservation": {
                    "type": "object",
                    "required": ["plate_number"],
                    "properties": {
                        "plate_number": {"type": "string"},
                        "start_at": {"type": "string", "format": "date-time"},
                    },
                },
                "Reservation": {
                    "type": "object",
                    "properties": {
                        "reservation_id": {"type": "string"},
                        "spot_id": {"type": "string"},
                        "plate_number": {"type": "string"},
                        "status": {"type": "string", "enum": ["CONFIRMED", "WAITING"]},
                    },
                },
            },
        },
    }


class ParkingApi(AppServer):
    """The partner's REST API: its OpenAPI document, three operations, an API key, and a record
    of every request it receives."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        routes = [
            Route("/openapi.json", self.document),
            Route("/api/spots", self.list_spots),
            Route("/api/spots/{spot_id}", self.get_spot),
            Route("/api/spots/{spot_id}/reservations", self.reserve, methods=["POST"]),
        ]
        super().__init__(Starlette(routes=routes))

    async def document(self, request: Request):
        return JSONResponse(openapi_document())

    async def _record(self, request: Request) -> JSONResponse | None:
        body = await request.body()
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": str(request.url.query),
                "key": request.headers.get("x-api-key"),
                "body": body,
            }
        )
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"error": "bad key", "owner_email": "someone@example.org"}, status_code=401)
        return None

    async def list_spots(self, request: Request):
        refused = await self._record(request)
        if refused:
            return refused
        items = [
            {k: v for k, v in spot.items() if k != "district"}
            for spot in SPOTS.values()
            if spot["district"] == request.query_params["district"]
        ]
        return JSONResponse({"items": items[: int(request.query_params.get("limit", 100))], "next_page": None})

    async def get_spot(self, request: Request):
        refused = await self._record(request)
        if refused:
            return refused
        spot = SPOTS.get(request.path_params["spot_id"])
        return (
            JSONResponse({k: v for k, v in spot.items() if k != "district"})
            if spot
            else JSONResponse({"error": "no such spot"}, status_code=404)
        )

    async def reserve(self, request: Request):
        refused = await self._record(request)
        if refused:
            return refused
        sent = await request.json()
        return JSONResponse(
            {
                "reservation_id": "r-1",
                "spot_id": request.path_params["spot_id"],
                "plate_number": sent["plate_number"],
                "status": "CONFIRMED",
            },
            status_code=201,
        )


@pytest.fixture
def parking_api():
    server = ParkingApi().start()
    yield server
    server.stop()


def citygate(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CITYGATE_URL": f"http://127.0.0.1:{free_port()}", **env}  # no gateway there
    environment.pop("CITYGATE_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60, env=environment
    )


def imported(parking_api: ParkingApi, folder: Path) -> Path:
    drafted = citygate(
        "connector",
        "import-openapi",
        f"{parking_api.base_url}/openapi.json",
        "--name",
        "parking-api",
        "--owner",
        "parkr",
        "--out",
        str(folder),
    )
    assert drafted.returncode == 0, drafted.stderr
    assert f"drafted 3 operation(s) of {parking_api.base_url}/api into {folder}, entities: Spot" in " ".join(
        drafted.stderr.split()
    )
    # the partner turns the manifest's commented header hint into a real header
    manifest = (folder / "manifest.yaml").read_text()
    hint = next(line for line in manifest.splitlines() if line.startswith("# headers:"))
    (folder / "manifest.yaml").write_text(manifest + hint[2:].split("   #")[0] + "\n")
    return folder


def test_import_then_test_runs_the_operations_against_the_api(parking_api, tmp_path):
    folder = imported(parking_api, tmp_path / "parking-api")
    sdl = (folder / "schema.graphql").read_text()
    assert f'baseURL: "{parking_api.base_url}/api"' in sdl and 'type Spot @key(fields: "spotId")' in sdl

    listed = citygate(
        "connector",
        "test",
        str(folder),
        "--query",
        "query($d: String!) { listSpots(district: $d, limit: 5) { items { spotId name freeNow evCharging address { street postCode } tags kind } nextPage } }",
        "--variables",
        json.dumps({"d": "75105"}),
        PARKING_API_API_KEY=API_KEY,
    )
    assert listed.returncode == 0, listed.stderr
    expected = [
        {
            "spotId": s["spot_id"],
            "name": s["name"],
            "freeNow": s["free_now"],
            "evCharging": s["ev_charging"],
            "address": {"street": s["address"]["street"], "postCode": s["address"]["post_code"]},
            "tags": s["tags"],
            "kind": s["kind"],
        }
        for s in SPOTS.values()
        if s["district"] == "75105"
    ]
    assert json.loads(listed.stdout) == {"data": {"listSpots": {"items": expected, "nextPage": None}}}
    assert parking_api.requests[-1] == {
        "method": "GET",
        "path": "/api/spots",
        "query": "district=75105&limit=5",
        "key": API_KEY,
        "body": b"",
    }

    # the entity connector drafted from GET /spots/{spot_id}: one call per representation
    entities = citygate(
        "connector",
        "test",
        str(folder),
        "--query",
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Spot { spotId name freeNow } } }",
        "--variables",
        json.dumps({"r": [{"__typename": "Spot", "spotId": "s3"}, {"__typename": "Spot", "spotId": "s1"}]}),
        PARKING_API_API_KEY=API_KEY,
    )
    assert entities.returncode == 0, entities.stderr
    assert json.loads(entities.stdout)["data"]["_entities"] == [
        {"spotId": "s3", "name": "Bastille", "freeNow": 12},
        {"spotId": "s1", "name": "Rue Mouffetard", "freeNow": 3},
    ]
    assert sorted(r["path"] for r in parking_api.requests[-2:]) == ["/api/spots/s1", "/api/spots/s3"]

    # a mutation: the input's GraphQL names go back to the API's JSON names
    reserved = citygate(
        "connector",
        "test",
        str(folder),
        "--query",
        'mutation { createReservation(spotId: "s2", input: {plateNumber: "AB-123-CD", startAt: "2026-05-01T08:00:00Z"}) { reservationId spotId status } }',
        PARKING_API_API_KEY=API_KEY,
    )
    assert reserved.returncode == 0, reserved.stderr
    assert json.loads(reserved.stdout) == {
        "data": {"createReservation": {"reservationId": "r-1", "spotId": "s2", "status": "CONFIRMED"}}
    }
    call = parking_api.requests[-1]
    assert (call["method"], call["path"]) == ("POST", "/api/spots/s2/reservations")
    assert json.loads(call["body"]) == {"plate_number": "AB-123-CD", "start_at": "2026-05-01T08:00:00Z"}


def test_test_prints_the_error_code_and_never_the_apis_body(parking_api, tmp_path):
    folder = imported(parking_api, tmp_path / "parking-api")
    refused = citygate(
        "connector",
        "test",
        str(folder),
        "--query",
        '{ getSpot(spotId: "s1") { name } }',
        PARKING_API_API_KEY="a-wrong-key",
    )
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {"data": {"getSpot": None}}
    assert "CONNECTOR_HTTP_ERROR at getSpot (HTTP 401)" in refused.stderr
    assert "someone@example.org" not in refused.stderr + refused.stdout and "bad key" not in refused.stderr
    unset = citygate("connector", "test", str(folder), "--query", '{ getSpot(spotId: "s1") { name } }')
    assert unset.returncode == 2 and "PARKING_API_API_KEY is not set" in unset.stderr


def test_validate_explains_mapping_errors_with_file_line_and_column(parking_api, tmp_path):
    document = tmp_path / "parking.json"
    document.write_text(json.dumps(openapi_document()))
    folder = tmp_path / "parking-api"
    drafted = citygate(
        "connector",
        "import-openapi",
        str(document),
        "--name",
        "parking-api",
        "--url",
        f"{parking_api.base_url}/api",
        "--out",
        str(folder),
    )
    assert drafted.returncode == 0, drafted.stderr
    again = citygate(
        "connector",
        "import-openapi",
        str(document),
        "--name",
        "parking-api",
        "--url",
        f"{parking_api.base_url}/api",
        "--out",
        str(folder),
    )
    assert again.returncode == 2 and "--force" in again.stderr  # a draft being edited is never overwritten silently

    schema = folder / "schema.graphql"
    lines = schema.read_text().splitlines()
    at = lines.index("          spotId: spot_id")  # in listSpots' selection, inside items { }
    lines.insert(at + 1, "          nickname")
    source = next(i for i, line in enumerate(lines) if line.strip() == 'source: "parking_api"')
    lines[source] = lines[source].replace('"parking_api"', '"[parking]"')
    schema.write_text("\n".join(lines) + "\n")

    validated = citygate("connector", "validate", str(folder))
    assert validated.returncode == 1, validated.stderr  # refused here: the gateway (none runs) is not asked
    assert f"schema.graphql:{at + 2}:11: CONNECT_UNKNOWN_FIELD" in validated.stderr
    assert "CONNECT_UNKNOWN_SOURCE" in validated.stderr and "[parking]" in validated.stderr  # not eaten as Rich markup
    assert "cannot reach" not in validated.stderr


def test_an_invalid_document_is_refused_with_every_problem(tmp_path):
    broken = openapi_document()
    del broken["info"]["version"]
    broken["paths"]["/spots"]["get"]["parameters"][1]["schema"]["type"] = "int"
    document = tmp_path / "broken.yaml"
    document.write_text(json.dumps(broken))  # JSON is YAML
    refused = citygate(
        "connector", "import-openapi", str(document), "--name", "parking-api", "--out", str(tmp_path / "out")
    )
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: #/info: 'version' is a required property",
        "error: #/paths/~1spots/get/parameters/1/schema/type: 'int' is not one of ['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']",
    ]
    assert not (tmp_path / "out").exists()
