"""A corpus of OpenAPI documents imported, validated and queried against real APIs.

Five documents of different shapes (openapi/: a 3.0 YAML petstore, a 3.1 JSON services API, a
3.1 YAML jobs API, a 3.0 JSON dining API, a 3.1 YAML libraries API published by the API itself
with a relative server URL): each is drafted into a connector (the importer's API, or the CLI
for the published one), read back by the connector engine without a problem, composed by the
gateway's composition, and queried through an Engine over that supergraph (and `_entities`
through its RestClient) against a Starlette app on loopback implementing the document
(openapi_apis.py). What the connector answers is compared with what the API holds, mapped by
the draft's renames: lists with pagination arguments followed page after page, entities by
key, nested objects and arrays, repeated query parameters, mutations with a JSON body.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli import app as citygate
from gateway.composition import SubgraphSource, compose
from gateway.connect import RestClient, read_connect_sdl
from gateway.connect._openapi import import_openapi
from gateway.engine import Engine
from gateway.executor import Subgraphs
from tests.connect import openapi_apis
from tests.connect.openapi_apis import APIS, SPECS, Api, dinner_view, job_view

ENTITIES = "query($representations: [_Any!]!) { _entities(representations: $representations) { ... on %s { %s } } }"


@dataclass
class Connected:
    api: Api
    client: RestClient
    engine: Engine
    entities: list[str]

    async def ask(self, query: str, variables: dict | None = None) -> dict:
        response = await self.engine.run(query, variables=variables)
        assert response.errors == [], response.errors
        assert response.data is not None
        return response.data

    async def entities_of(self, type_name: str, fields: str, representations: list[dict]) -> list:
        answer = await self.client.send(ENTITIES % (type_name, fields), {"representations": representations})
        assert "errors" not in answer, answer
        return answer["data"]["_entities"]


def connector_name(document: str) -> str:
    return Path(document).stem.replace("_", "-")


@contextlib.asynccontextmanager
async def connected(
    document: str, pool, *, sdl: str | None = None, served: Api | None = None
) -> AsyncIterator[Connected]:
    """The document's API running, its draft (or `sdl`) read, composed and served by an Engine."""
    api = served or APIS[document]().start()
    try:
        name = connector_name(document)
        entities: list[str] = []
        if sdl is None:
            draft = import_openapi((SPECS / document).read_bytes(), name=name, owner="partner", base_url=api.base_url)
            sdl, entities = draft.sdl, draft.entities
            assert draft.base_url == api.base_url
        schema = read_connect_sdl(sdl, base_url=api.base_url)  # raises ConnectError listing any problem
        assert schema.origins == frozenset({api.origin})
        composed = compose([SubgraphSource(name, schema.composition_sdl, api.base_url)])
        assert composed.errors == [] and composed.supergraph is not None
        client = RestClient(schema, pool, name=name)
        engine = Engine.from_sdl(composed.supergraph, Subgraphs({name: client}))
        try:
            yield Connected(api, client, engine, entities)
        finally:
            await engine.close()
    finally:
        api.stop()


def renamed(value: dict | None, names: dict[str, str], **nested) -> dict | None:
    """`value` (the API's JSON) as the draft maps it: each GraphQL field from its JSON name
    (`names`: GraphQL -> JSON), `nested` fields mapped by a function of their own."""
    if value is None:
        return None
    mapped = {field: value.get(json_name) for field, json_name in names.items()}
    for field, mapper in nested.items():
        mapped[field] = mapper(value.get(names.get(field, field)))
    return mapped


def each(mapper):
    return lambda values: None if values is None else [mapper(v) for v in values]


def as_id(value) -> str | None:
    return None if value is None else str(value)  # GraphQL's ID serializes JSON numbers as strings


# -- petstore.yaml: 3.0, YAML, allOf, enums, readOnly/writeOnly, a 204 --------------------------------

PET_FIELDS = "name tag id status birthDate category { id name } tags { id label } weightKg"


def pet(value: dict) -> dict:
    return renamed(
        value,
        {
            "name": "name",
            "tag": "tag",
            "id": "id",
            "status": "status",
            "birthDate": "birth_date",
            "category": "category",
            "tags": "tags",
            "weightKg": "weight-kg",
        },
        id=as_id,
        category=lambda c: renamed(c, {"id": "id", "name": "name"}, id=as_id),
        tags=each(lambda t: renamed(t, {"id": "id", "label": "label"}, id=as_id)),
    )  # type: ignore[return-value]


async def test_petstore_lists_with_its_query_parameters_reads_by_path_and_entity_creates_and_deletes(pool):
    async with connected("petstore.yaml", pool) as petstore:
        pets = petstore.api.data["pets"]
        data = await petstore.ask(f"{{ listPets(limit: 2, status: available) {{ {PET_FIELDS} }} }}")
        assert data["listPets"] == [pet(p) for p in pets if p["status"] == "available"][:2]
        data = await petstore.ask(f"{{ listPets {{ {PET_FIELDS} }} }}")
        assert data["listPets"] == [pet(p) for p in pets]
        assert petstore.api.targets() == [
            "/pets?limit=2&status=available",
            "/pets",
        ]  # a null argument sends no parameter

        last = pets[-1]
        data = await petstore.ask(f'{{ showPetById(petId: "{last["id"]}") {{ {PET_FIELDS} }} }}')
        assert data["showPetById"] == pet(last)
        assert petstore.entities == ["Pet"]
        found = await petstore.entities_of(
            "Pet", PET_FIELDS, [{"__typename": "Pet", "id": str(p["id"])} for p in reversed(pets)]
        )
        assert found == [pet(p) for p in reversed(pets)]

        before = len(pets)
        data = await petstore.ask(
            "mutation($input: NewPetInput!) { createPet(input: $input) { id name tag status tags { id } } }",
            {"input": {"name": "Filou", "tag": "cat", "ownerEmail": "owner@example.org"}},
        )
        assert len(pets) == before + 1
        assert petstore.api.bodies("POST") == [{"name": "Filou", "tag": "cat", "owner_email": "owner@example.org"}]
        created = pets[-1]
        assert data["createPet"] == {
            "id": str(created["id"]),
            "name": "Filou",
            "tag": "cat",
            "status": created["status"],
            "tags": [],
        }

        data = await petstore.ask(f'mutation {{ deletePetsByPetId(petId: "{created["id"]}") }}')
        assert data == {"deletePetsByPetId": True}
        assert created not in pets and petstore.api.targets("DELETE") == [f"/pets/{created['id']}"]

        response = await petstore.engine.run(f'{{ showPetById(petId: "{created["id"]}") {{ id }} }}')
        assert response.data == {"showPetById": None}
        assert [(e["path"], e["extensions"]["code"], e["extensions"]["status"]) for e in response.errors] == [
            (["showPetById"], "CONNECTOR_HTTP_ERROR", 404)
        ]
        assert "no such pet" not in str(response.errors)  # the API's error body stays out


# -- district_services.json: 3.1, JSON, cursor pagination, allOf, oneOf/anyOf, recursion, maps -------

SERVICE_FIELDS = "id createdAt name kind openDays contact manager { fullName personId } capacity location { lat lng streetAddress } extra rating"


def service(value: dict) -> dict:
    return renamed(
        value,
        {
            "id": "id",
            "createdAt": "created_at",
            "name": "name",
            "kind": "kind",
            "openDays": "open_days",
            "contact": "contact",
            "manager": "manager",
            "capacity": "capacity",
            "location": "location",
            "extra": "extra",
            "rating": "rating",
        },
        manager=lambda m: renamed(m, {"fullName": "full_name", "personId": "person_id"}),
        location=lambda loc: renamed(loc, {"lat": "lat", "lng": "lng", "streetAddress": "street-address"}),
    )  # type: ignore[return-value]


def category(value: dict, depth: int = 0) -> dict | None:
    """The draft's selection of the recursive Category: its leaf fields where it recurs."""
    if value is None:
        return None
    if depth == 1:
        return {"slug": value.get("slug")}
    return {
        "slug": value["slug"],
        "parent": category(value.get("parent"), 1),
        "children": [category(c, 1) for c in value["children"]] if value.get("children") is not None else None,
    }


async def test_district_services_follow_their_cursor_filter_by_repeated_kinds_and_patch(pool):
    async with connected("district_services.json", pool) as services:
        held = services.api.data["services"]
        in_district = [s for s in held if s["district"] == "75105"]
        query = f'query($cursor: String) {{ districtServices(code: "75105", cursor: $cursor) {{ items {{ {SERVICE_FIELDS} }} nextCursor }} }}'
        collected, cursor, pages = [], None, 0
        while True:
            page = (await services.ask(query, {"cursor": cursor}))["districtServices"]
            collected += page["items"]
            pages += 1
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert collected == [service(s) for s in in_district]
        assert pages == math.ceil(len(in_district) / openapi_apis.PAGE_SIZE) > 1

        kinds = ["library", "in-progress"]
        data = await services.ask(
            '{ districtServices(code: "75105", kinds: ["library", "in-progress"]) { items { name kind } nextCursor } }'
        )
        wanted = [s for s in in_district if s["kind"] in kinds]
        assert (
            data["districtServices"]["items"]
            == [{"name": s["name"], "kind": s["kind"]} for s in wanted][: openapi_apis.PAGE_SIZE]
        )
        assert (
            services.api.targets()[-1] == "/districts/75105/services?kinds=library&kinds=in-progress"
        )  # repeated, a null cursor dropped

        one = held[1]
        data = await services.ask(f'{{ getService(serviceId: "{one["id"]}") {{ {SERVICE_FIELDS} }} }}')
        assert data["getService"] == service(one)
        found = await services.entities_of(
            "Service", "id name openDays", [{"__typename": "Service", "id": s["id"]} for s in held]
        )
        assert found == [{"id": s["id"], "name": s["name"], "openDays": s["open_days"]} for s in held]

        data = await services.ask("{ getCategories { slug parent { slug } children { slug } } stats { total byKind } }")
        assert data["getCategories"] == [category(c) for c in services.api.data["categories"]]
        kinds_count = {kind: sum(1 for s in held if s["kind"] == kind) for kind in {s["kind"] for s in held}}
        assert data["stats"] == {"total": len(held), "byKind": kinds_count}

        target = held[0]
        data = await services.ask(
            "mutation($id: ID!, $patch: ServicePatchInput) { updateService(serviceId: $id, input: $patch) { id name openDays } }",
            {"id": target["id"], "patch": {"name": "Bibliothèque Mouffetard-Buffon", "openDays": ["MON", "SAT"]}},
        )
        assert services.api.bodies("PATCH") == [{"name": "Bibliothèque Mouffetard-Buffon", "open_days": ["MON", "SAT"]}]
        assert data["updateService"] == {"id": target["id"], "name": target["name"], "openDays": target["open_days"]}
        assert target["name"] == "Bibliothèque Mouffetard-Buffon"


# -- jobs.yaml: 3.1, YAML, page/per_page pagination with meta, nested arrays, oneOf, two path parameters

JOB_FIELDS = "id title posterId skills { name level } pay schedule postedAt"


def job(value: dict) -> dict:
    return renamed(
        job_view(value),
        {
            "id": "id",
            "title": "title",
            "posterId": "poster_id",
            "skills": "skills",
            "pay": "pay",
            "schedule": "schedule",
            "postedAt": "posted_at",
        },
    )  # type: ignore[return-value]


async def test_jobs_page_through_with_their_meta_filter_and_replace_an_array(pool):
    async with connected("jobs.yaml", pool) as jobs:
        held = jobs.api.data["jobs"]
        query = f"query($page: Int) {{ searchJobs(page: $page, perPage: 2) {{ data {{ {JOB_FIELDS} }} meta {{ total page perPage }} }} }}"
        collected, page = [], 1
        while True:
            answer = (await jobs.ask(query, {"page": page}))["searchJobs"]
            assert answer["meta"] == {"total": len(held), "page": page, "perPage": 2}
            collected += answer["data"]
            if len(collected) >= answer["meta"]["total"]:
                break
            page += 1
        assert collected == [job(j) for j in held]
        assert page == math.ceil(len(held) / 2)

        data = await jobs.ask('{ searchJobs(q: "a", remote: false) { data { id title } meta { total } } }')
        wanted = [j for j in held if "a" in j["title"].lower() and not j["remote"]]
        assert data["searchJobs"] == {
            "data": [{"id": j["id"], "title": j["title"]} for j in wanted],
            "meta": {"total": len(wanted)},
        }
        assert jobs.api.targets()[-1] == "/jobs?q=a&page=1&remote=false"  # the document's default page

        one = held[3]
        data = await jobs.ask(
            f'{{ employerJob(employerId: "{one["employer"]}", jobId: "{one["id"]}") {{ {JOB_FIELDS} }} }}'
        )
        assert data["employerJob"] == job(one)
        assert jobs.entities == []  # two parameters in the path: no entity

        skills = [{"name": "pruning", "level": "EXPERT"}, {"name": "composting", "level": None}]
        data = await jobs.ask(
            "mutation($id: ID!, $skills: [SkillInput!]!) { replaceSkills(jobId: $id, input: $skills) { name level } }",
            {"id": "j3", "skills": skills},
        )
        assert jobs.api.bodies("PUT") == [skills]  # the array, as it is
        assert data["replaceSkills"] == next(j for j in held if j["id"] == "j3")["skills"] == skills


# -- dining.json: 3.0, JSON, a required query parameter, nested objects in arrays in objects, a map ---

COURSE_FIELDS = "courses { name allergens wine { region vintage } }"
DINNER_FIELDS = f"id menu {{ {COURSE_FIELDS} }} price seats translations hostId startsAt"


def dinner(value: dict) -> dict:
    return renamed(
        dinner_view(value),
        {
            "id": "id",
            "menu": "menu",
            "price": "price",
            "seats": "seats",
            "translations": "translations",
            "hostId": "host_id",
            "startsAt": "starts_at",
        },
        id=as_id,
    )  # type: ignore[return-value]


async def test_dining_lists_nested_menus_by_district_and_price_and_cancels(pool):
    async with connected("dining.json", pool) as dining:
        held = dining.api.data["dinners"]
        data = await dining.ask(f'{{ listDinners(district: "75018") {{ {DINNER_FIELDS} }} }}')
        assert data["listDinners"] == [dinner(d) for d in held if d["district"] == "75018"]
        data = await dining.ask('{ listDinners(district: "75018", maxPrice: 20) { id price } }')
        assert data["listDinners"] == [
            {"id": str(d["id"]), "price": d["price"]}
            for d in held
            if d["district"] == "75018" and float(d["price"]) <= 20
        ]

        one = held[-1]
        data = await dining.ask(f'{{ dinner(id: "{one["id"]}") {{ {DINNER_FIELDS} }} }}')
        assert data["dinner"] == dinner(one)
        found = await dining.entities_of(
            "Dinner", f"id menu {{ {COURSE_FIELDS} }}", [{"__typename": "Dinner", "id": str(d["id"])} for d in held]
        )
        assert found == [{"id": str(d["id"]), "menu": d["menu"]} for d in held]

        seats = one["seats"]
        data = await dining.ask(f'mutation {{ cancelDinner(id: "{one["id"]}") {{ cancelled refunds }} }}')
        assert data == {"cancelDinner": {"cancelled": True, "refunds": seats}}
        assert one not in held and dining.api.targets("DELETE") == [f"/dinners/{one['id']}"]


# -- libraries.yaml: 3.1, YAML, published with a relative server URL, drafted by the CLI ------------

BOOK_FIELDS = (
    "isbn title authors { name born } subjects series { title number } edition copies { barcode branch available }"
)
BRANCH_FIELDS = "id name address { street postcode city } hours services accessible"


def book(value: dict) -> dict:
    return dict(value)  # the libraries' JSON names are GraphQL names: the draft renames nothing


@pytest.fixture
def libraries_folder(tmp_path):
    """The libraries API running, and the connector the CLI drafted from the document it publishes."""
    api = openapi_apis.libraries().start()
    folder = tmp_path / "libraries"
    result = CliRunner().invoke(
        citygate,
        ["connector", "import-openapi", f"{api.origin}/openapi.yaml", "--name", "libraries", "--out", str(folder)],
    )
    assert result.exit_code == 0, result.output
    assert "entities: Branch, Book" in result.output
    yield api, folder
    if api._thread is not None and api._thread.is_alive():
        api.stop()


async def test_libraries_drafted_from_the_published_document_page_by_next_link_and_hold(pool, libraries_folder):
    api, folder = libraries_folder
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert (
        manifest["kind"] == "rest" and manifest["url"] == api.base_url
    )  # the relative server, against where the document was read
    async with connected("libraries.yaml", pool, sdl=(folder / "schema.graphql").read_text(), served=api) as libraries:
        branches, books = api.data["branches"], api.data["books"]
        query = f"query($offset: Int) {{ listBranches(offset: $offset, limit: 2) {{ count results {{ {BRANCH_FIELDS} }} links {{ next }} }} }}"
        collected, offset, pages = [], 0, 0
        while offset is not None:
            page = (await libraries.ask(query, {"offset": offset}))["listBranches"]
            assert page["count"] == len(branches)
            collected += page["results"]
            pages += 1
            following = page["links"]["next"]
            offset = None if following is None else int(parse_qs(urlsplit(following).query)["offset"][0])
        assert collected == branches and pages == math.ceil(len(branches) / 2)

        data = await libraries.ask(
            f'{{ booksAtBranch(branchId: "b-mouff", available: true, subject: ["novel", "children"]) {{ {BOOK_FIELDS} }} }}'
        )
        wanted = [
            b
            for b in books
            if any(c["branch"] == "b-mouff" and c["available"] for c in b["copies"])
            and {"novel", "children"} & set(b["subjects"])
        ]
        assert wanted and data["booksAtBranch"] == [book(b) for b in wanted]
        assert api.targets()[-1] == "/branches/b-mouff/books?available=true&subject=novel&subject=children"

        for held in books:  # series: an object or null; edition: a oneOf of an integer and a string (JSON)
            data = await libraries.ask(f'{{ getBook(isbn: "{held["isbn"]}") {{ {BOOK_FIELDS} }} }}')
            assert data["getBook"] == book(held)
        found = await libraries.entities_of(
            "Branch", BRANCH_FIELDS, [{"__typename": "Branch", "id": b["id"]} for b in reversed(branches)]
        )
        assert found == list(reversed(branches))
        found = await libraries.entities_of(
            "Book", "isbn title", [{"__typename": "Book", "isbn": b["isbn"]} for b in books]
        )
        assert found == [{"isbn": b["isbn"], "title": b["title"]} for b in books]

        request = {
            "isbn": books[2]["isbn"],
            "pickup": {"branchId": "b-goutte", "by": "2025-05-20", "notes": ["front desk", "after 5pm"]},
        }
        data = await libraries.ask(
            f"mutation($r: HoldRequestInput!) {{ placeHold(input: $r) {{ id status createdAt book {{ {BOOK_FIELDS} }} pickup {{ branch by notes }} }} }}",
            {"r": request},
        )
        assert api.bodies("POST") == [
            {
                "isbn": request["isbn"],
                "pickup": {"branch_id": "b-goutte", "by": "2025-05-20", "notes": ["front desk", "after 5pm"]},
            }
        ]
        [hold] = api.data["holds"]
        assert data["placeHold"] == {
            "id": hold["id"],
            "status": hold["status"],
            "createdAt": hold["created_at"],
            "book": book(books[2]),
            "pickup": hold["pickup"],
        }


def test_the_corpus_covers_both_versions_both_formats_and_each_shape():
    """The corpus covers what the acceptance asks: both versions, both formats, and each shape."""
    versions, formats = set(), set()
    for document in APIS:
        raw = (SPECS / document).read_bytes()
        parsed = yaml.safe_load(raw)
        versions.add(parsed["openapi"][:3])
        formats.add(Path(document).suffix)
    assert versions == {"3.0", "3.1"} and formats == {".json", ".yaml"} and len(APIS) >= 5
    text = "".join((SPECS / document).read_text() for document in APIS)
    for shape in ("allOf", "oneOf", "anyOf", "in: path", '"in": "path"', "in: query", "items", "$ref"):
        assert shape in text, shape


async def test_a_published_document_is_read_over_http_and_drafted_like_the_file(pool):
    api = openapi_apis.libraries().start()
    try:
        async with httpx.AsyncClient() as http:
            published = await http.get(f"{api.origin}/openapi.yaml")
        location = f"{api.origin}/openapi.yaml"
        from_http = import_openapi(published.content, name="libraries", owner="libraries", location=location)
        from_file = import_openapi(
            (SPECS / "libraries.yaml").read_bytes(), name="libraries", owner="libraries", base_url=api.base_url
        )
        assert from_http.sdl == from_file.sdl and from_http.base_url == api.base_url
    finally:
        api.stop()


async def test_the_whole_corpus_composes_into_one_supergraph_once_a_shared_type_name_is_renamed(pool):
    """Five partners' drafts side by side: the petstore's and the services API's `Category` are
    different types under one name (composition says so), so the petstore's partner renames
    theirs, as a draft is meant to be edited; then one Engine answers from the five APIs at once."""
    apis = {document: make().start() for document, make in APIS.items()}
    engine = None
    try:
        drafts = {
            connector_name(document): (
                import_openapi(
                    (SPECS / document).read_bytes(),
                    name=connector_name(document),
                    owner="partner",
                    base_url=api.base_url,
                ).sdl,
                api,
            )
            for document, api in apis.items()
        }

        def source(name: str, sdl: str) -> SubgraphSource:
            return SubgraphSource(
                name, read_connect_sdl(sdl, base_url=drafts[name][1].base_url).composition_sdl, drafts[name][1].base_url
            )

        clash = compose(
            [source("petstore", drafts["petstore"][0]), source("district-services", drafts["district-services"][0])]
        )
        assert clash.errors and all("Category" in str(e) for e in clash.errors)
        petstore_sdl = (
            drafts["petstore"][0]
            .replace("type Category {", "type PetCategory {")
            .replace("category: Category", "category: PetCategory")
        )
        drafts["petstore"] = (petstore_sdl, drafts["petstore"][1])
        sources, clients = [], {}
        for name, (sdl, api) in drafts.items():
            schema = read_connect_sdl(sdl, base_url=api.base_url)
            sources.append(SubgraphSource(name, schema.composition_sdl, api.base_url))
            clients[name] = RestClient(schema, pool, name=name)
        composed = compose(sources)
        assert composed.errors == [] and composed.supergraph is not None, [str(e) for e in composed.errors]
        engine = Engine.from_sdl(composed.supergraph, Subgraphs(clients))
        response = await engine.run(
            '{ listPets(status: available) { name category { name } } districtServices(code: "75111") { items { name } }'
            ' searchJobs(remote: true) { meta { total } } listDinners(district: "75011") { id seats }'
            ' getBook(isbn: "9782070612758") { title copies { branch } } }'
        )
        assert response.errors == [], response.errors
        held = {document: api.data for document, api in apis.items()}
        assert response.data == {
            "listPets": [
                {"name": p["name"], "category": p["category"] and {"name": p["category"]["name"]}}
                for p in held["petstore.yaml"]["pets"]
                if p["status"] == "available"
            ],
            "districtServices": {
                "items": [
                    {"name": s["name"]} for s in held["district_services.json"]["services"] if s["district"] == "75111"
                ]
            },
            "searchJobs": {"meta": {"total": sum(1 for j in held["jobs.yaml"]["jobs"] if j["remote"])}},
            "listDinners": [
                {"id": str(d["id"]), "seats": d["seats"]}
                for d in held["dining.json"]["dinners"]
                if d["district"] == "75011"
            ],
            "getBook": next(
                {"title": b["title"], "copies": [{"branch": c["branch"]} for c in b["copies"]]}
                for b in held["libraries.yaml"]["books"]
                if b["isbn"] == "9782070612758"
            ),
        }
        assert all(len(api.seen) == 1 for api in apis.values())  # one call to each partner
    finally:
        if engine is not None:
            await engine.close()
        for api in apis.values():
            api.stop()
