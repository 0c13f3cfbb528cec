"""Voisinage, a neighbourhood-services platform: its own REST/JSON API (no GraphQL), for the small
jobs residents post and neighbours take.

The gateway reaches it through the `rest` connector of this folder (schema.graphql, drafted from
this API's OpenAPI document by `citygate connector import-openapi`, then annotated: see
docs/partners.md, "Walk-through: a REST partner from its OpenAPI document"); `citygate demo` serves
this app on the partners' loopback server at /rest/neighbourhood. The API answers whoever asks
(it trusts the gateway, which decides what leaves it). Data comes from a fixed seed: every run of
the demo shows the same jobs.

Routes (JSON, snake_case):
- GET /jobs?kind=&district=&status=&first=20 - jobs, newest first (first: at most 100)
- GET /jobs/{jobId}
- GET /districts/{code}/jobs?status=OPEN - a district's jobs, in the order they were posted
- GET /districts/{code}/stats - a district's figures (the average reward of its jobs)
- GET /residents/{residentId}/posted-jobs, /residents/{residentId}/taken-jobs
- GET /residents/{residentId}/ratings - the ratings a resident received
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
KINDS = ("WATERING", "PET_CARE", "DIY", "DELIVERY")
STATUSES = ("OPEN", "TAKEN", "DONE")
TITLES = {
    "WATERING": ["Water my balcony plants", "Water the courtyard garden", "Look after my orchids"],
    "PET_CARE": ["Walk my dog twice a day", "Feed my cat for a week", "Look after two rabbits"],
    "DIY": ["Put up kitchen shelves", "Fix a dripping tap", "Assemble a wardrobe"],
    "DELIVERY": ["Bring groceries upstairs", "Collect a parcel at the post office", "Carry a sofa to the 4th floor"],
}


def _generate() -> dict:
    # the same draws, in the same order, as the demo's GraphQL subgraph made: the same jobs
    rng = random.Random(11)
    jobs = {}
    for index in range(1, 401):
        kind = rng.choice(list(TITLES))
        number = rng.randint(1, 20)
        status = rng.choices(["OPEN", "TAKEN", "DONE"], weights=[5, 2, 3])[0]
        poster = f"r{rng.randint(1, RESIDENTS):04d}"
        jobs[f"j{index:04d}"] = {
            "kind": kind,
            "title": rng.choice(TITLES[kind]),
            "reward": float(rng.choice([8, 10, 12, 15, 20, 25, 30])),
            "status": status,
            "district": f"751{number:02d}",
            "poster": poster,
            "address": f"{rng.randint(1, 150)} rue {rng.choice(['Lepic', 'Oberkampf', 'Monge', 'Cler', 'Mouffetard'])}, 751{number:02d} Paris",
            "taker": None if status == "OPEN" else f"r{rng.randint(1, RESIDENTS):04d}",
        }
    jobs["j0001"].update(poster="r0001", status="DONE", taker="r0002")
    ratings = {}
    for index, (job_id, job) in enumerate((j for j in jobs.items() if j[1]["status"] == "DONE"), start=1):
        ratings[f"rt{index:04d}"] = {
            "job": job_id,
            "ratee": job["taker"],
            "rater": job["poster"],
            "score": rng.randint(2, 5),
            "comment": rng.choice(["Perfect", "Very kind", "On time", "Would ask again", "OK"]),
        }
    return {"jobs": jobs, "ratings": ratings}


DATA = _generate()


def _job(job_id: str) -> dict:
    job = DATA["jobs"][job_id]
    return {
        "id": job_id,
        "kind": job["kind"],
        "title": job["title"],
        "reward": job["reward"],
        "status": job["status"],
        "district": job["district"],
        "poster_id": job["poster"],
        "address": job["address"],
        "assignment": {"taker_id": job["taker"]} if job["taker"] else None,
    }


def _refused(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def jobs(request: Request) -> JSONResponse:
    query = request.query_params
    kind, district, status = query.get("kind"), query.get("district"), query.get("status")
    if kind not in (None, *KINDS) or status not in (None, *STATUSES):
        return _refused("unknown kind or status")
    try:
        first = int(query.get("first", "20"))
    except ValueError:
        return _refused("first is a number")
    found = [
        i
        for i, j in reversed(DATA["jobs"].items())
        if (kind is None or j["kind"] == kind)
        and (district is None or j["district"] == district)
        and (status is None or j["status"] == status)
    ]
    return JSONResponse([_job(i) for i in found[: max(0, min(first, MAX_FIRST))]])


async def job(request: Request) -> JSONResponse:
    job_id = request.path_params["job_id"]
    if job_id not in DATA["jobs"]:
        return JSONResponse({"error": "job not found"}, status_code=404)
    return JSONResponse(_job(job_id))


async def district_jobs(request: Request) -> JSONResponse:
    code, status = request.path_params["code"], request.query_params.get("status")
    return JSONResponse(
        [
            _job(i)
            for i, j in DATA["jobs"].items()
            if j["district"] == code and (status is None or j["status"] == status)
        ]
    )


async def district_stats(request: Request) -> JSONResponse:
    code = request.path_params["code"]
    rewards = [j["reward"] for j in DATA["jobs"].values() if j["district"] == code]
    return JSONResponse(
        {
            "district": code,
            "jobs": len(rewards),
            "average_reward": round(sum(rewards) / len(rewards), 2) if rewards else None,
        }
    )


async def posted_jobs(request: Request) -> JSONResponse:
    resident = request.path_params["resident_id"]
    return JSONResponse([_job(i) for i, j in DATA["jobs"].items() if j["poster"] == resident])


async def taken_jobs(request: Request) -> JSONResponse:
    resident = request.path_params["resident_id"]
    return JSONResponse([_job(i) for i, j in DATA["jobs"].items() if j["taker"] == resident])


async def ratings(request: Request) -> JSONResponse:
    resident = request.path_params["resident_id"]
    return JSONResponse(
        [
            {"id": rating_id, "job_id": r["job"], "ratee_id": r["ratee"], "score": r["score"], "comment": r["comment"]}
            for rating_id, r in DATA["ratings"].items()
            if r["ratee"] == resident
        ]
    )


# the city's gateway signs each erasure request for this connector (gateway/sdk_erasure.py); the
# demo reads the gateway's keys where `citygate demo` says the gateway listens
ERASURE_REQUESTS = ErasureRequestVerifier(
    "neighbourhood", lambda: os.environ.get("CITYGATE_DEMO_GATEWAY_URL", "") + "/.well-known/jwks.json"
)


async def erasure(request: Request) -> JSONResponse:
    """A resident's erasure request, from the city: the jobs they posted and every rating given to
    them or by them are deleted; a job they took is open again, without its taker."""
    subject = await ERASURE_REQUESTS.subject_or_refusal(request)
    if isinstance(subject, JSONResponse):
        return subject
    posted = {i for i, j in DATA["jobs"].items() if j["poster"] == subject}
    for rating_id in [
        i for i, r in DATA["ratings"].items() if subject in (r["ratee"], r["rater"]) or r["job"] in posted
    ]:
        del DATA["ratings"][rating_id]
    for job_id in posted:
        del DATA["jobs"][job_id]
    for job in DATA["jobs"].values():
        if job["taker"] == subject:
            job.update(taker=None, status="OPEN")
    return JSONResponse({"status": "done"})


def _openapi_document() -> dict:
    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(schema: dict) -> dict:
        return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}

    def path_parameter(name: str, description: str) -> dict:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}

    text = {"type": "string"}
    job = {
        "type": "object",
        "description": "A small job a resident posted.",
        "required": ["id", "kind", "title", "reward", "status", "district", "poster_id", "address", "assignment"],
        "properties": {
            "id": text,
            "kind": ref("JobKind"),
            "title": text,
            "reward": {"type": "number", "description": "euros"},
            "status": ref("JobStatus"),
            "district": {"type": "string", "description": "INSEE code of the arrondissement"},
            "poster_id": {"type": "string", "description": "the resident who posted it"},
            "address": {"type": ["string", "null"], "description": "where the job is"},
            "assignment": {"oneOf": [ref("Assignment"), {"type": "null"}], "description": "who took it, if anyone"},
        },
    }
    assignment = {
        "type": "object",
        "description": "The neighbour who took a job.",
        "required": ["taker_id"],
        "properties": {"taker_id": {"type": "string", "description": "the resident who took it"}},
    }
    rating = {
        "type": "object",
        "description": "How a neighbour rated a resident's work.",
        "required": ["id", "job_id", "ratee_id", "score", "comment"],
        "properties": {
            "id": text,
            "job_id": text,
            "ratee_id": {"type": "string", "description": "the resident rated"},
            "score": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
            "comment": {"type": ["string", "null"]},
        },
    }
    stats = {
        "type": "object",
        "required": ["district", "jobs", "average_reward"],
        "properties": {
            "district": text,
            "jobs": {"type": "integer"},
            "average_reward": {"type": ["number", "null"], "description": "euros"},
        },
    }
    jobs_answer = answer({"type": "array", "items": ref("Job")})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Voisinage", "version": "1.0.0", "description": "Small jobs between neighbours"},
        "servers": [{"url": "."}],
        "paths": {
            "/jobs": {
                "get": {
                    "operationId": "listJobs",
                    "summary": "Jobs, newest first, optionally of one kind, district or status",
                    "parameters": [
                        {"name": "kind", "in": "query", "schema": ref("JobKind")},
                        {"name": "district", "in": "query", "schema": text},
                        {"name": "status", "in": "query", "schema": ref("JobStatus")},
                        {
                            "name": "first",
                            "in": "query",
                            "schema": {"type": "integer", "default": 20, "maximum": MAX_FIRST},
                        },
                    ],
                    "responses": jobs_answer,
                }
            },
            "/jobs/{jobId}": {
                "get": {
                    "operationId": "getJob",
                    "parameters": [path_parameter("jobId", "the job")],
                    "responses": {**answer(ref("Job")), "404": {"description": "no such job"}},
                }
            },
            "/districts/{code}/jobs": {
                "get": {
                    "operationId": "listDistrictJobs",
                    "summary": "A district's jobs, in the order they were posted",
                    "parameters": [
                        path_parameter("code", "INSEE code of the arrondissement"),
                        {"name": "status", "in": "query", "schema": ref("JobStatus")},
                    ],
                    "responses": jobs_answer,
                }
            },
            "/districts/{code}/stats": {
                "get": {
                    "operationId": "getDistrictStats",
                    "parameters": [path_parameter("code", "INSEE code of the arrondissement")],
                    "responses": answer(ref("DistrictStats")),
                }
            },
            "/residents/{residentId}/posted-jobs": {
                "get": {
                    "operationId": "listPostedJobs",
                    "parameters": [path_parameter("residentId", "the poster")],
                    "responses": jobs_answer,
                }
            },
            "/residents/{residentId}/taken-jobs": {
                "get": {
                    "operationId": "listTakenJobs",
                    "parameters": [path_parameter("residentId", "the taker")],
                    "responses": jobs_answer,
                }
            },
            "/residents/{residentId}/ratings": {
                "get": {
                    "operationId": "listRatings",
                    "summary": "The ratings a resident received",
                    "parameters": [path_parameter("residentId", "the resident rated")],
                    "responses": answer({"type": "array", "items": ref("Rating")}),
                }
            },
        },
        "components": {
            "schemas": {
                "Job": job,
                "JobKind": {"type": "string", "enum": list(KINDS)},
                "JobStatus": {"type": "string", "enum": list(STATUSES)},
                "Assignment": assignment,
                "Rating": rating,
                "DistrictStats": stats,
            }
        },
    }


OPENAPI = _openapi_document()


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(OPENAPI)


app = Starlette(
    routes=[
        Route("/openapi.json", openapi),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", job),
        Route("/districts/{code}/jobs", district_jobs),
        Route("/districts/{code}/stats", district_stats),
        Route("/residents/{resident_id}/posted-jobs", posted_jobs),
        Route("/residents/{resident_id}/taken-jobs", taken_jobs),
        Route("/residents/{resident_id}/ratings", ratings),
        Route("/erasure", erasure, methods=["POST"]),  # the manifest's erasure endpoint, not in the OpenAPI document
    ]
)
