"""Drafting a rest connector from an OpenAPI document (`citygate connector import-openapi`).

The fixture documents under openapi/ are real OpenAPI files: a 3.0 YAML petstore, a 3.1 JSON
API with $ref/allOf/oneOf/enums/arrays/recursion/pagination, and an invalid one. Drafts are read
back with graphql-core and with the connector engine's own reader (`read_connect_sdl`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from graphql import (
    DocumentNode,
    EnumTypeDefinitionNode,
    FieldDefinitionNode,
    InputObjectTypeDefinitionNode,
    ScalarTypeDefinitionNode,
    parse,
    print_ast,
)

from gateway.composition import SubgraphSource, compose
from gateway.connect import ConnectError, read_connect_sdl
from gateway.connect._openapi import (
    DRAFT_NOTICE,
    MAX_OPERATIONS,
    ConnectorDraft,
    OpenApiError,
    camel_case,
    import_openapi,
)

SPECS = Path(__file__).parent / "openapi"


def draft(name: str, **options) -> ConnectorDraft:
    return import_openapi((SPECS / name).read_bytes(), name=options.pop("connector", "pets"), owner="petco", **options)


def definitions(sdl: str) -> dict[str, object]:
    document: DocumentNode = parse(sdl)
    return {d.name.value: d for d in document.definitions if hasattr(d, "name") and d.name is not None}


def field(type_def, name: str) -> FieldDefinitionNode:
    return next(f for f in type_def.fields if f.name.value == name)


def directive_arguments(node, directive: str) -> dict[str, str]:
    applied = next(d for d in node.directives if d.name.value == directive)
    return {a.name.value: print_ast(a.value) for a in applied.arguments}


def http_of(node) -> dict[str, str]:
    """The @connect's `http` object: method -> URL template (and `body`)."""
    value = next(
        a.value for d in node.directives if d.name.value == "connect" for a in d.arguments if a.name.value == "http"
    )
    return {f.name.value: f.value.value for f in value.fields}


def selection_of(node) -> list[str]:
    text = next(
        a.value.value
        for d in node.directives
        if d.name.value == "connect"
        for a in d.arguments
        if a.name.value == "selection"
    )
    return [line.strip() for line in text.strip().splitlines()]


def test_a_30_yaml_petstore_becomes_queries_mutations_types_and_an_entity():
    result = draft("petstore.yaml")
    sdl = result.sdl
    assert sdl.startswith(f"# {DRAFT_NOTICE}\n")
    types = definitions(sdl)

    query, mutation = types["Query"], types["Mutation"]
    assert [f.name.value for f in query.fields] == ["listPets", "showPetById"]
    assert [f.name.value for f in mutation.fields] == [
        "createPet",
        "deletePetsByPetId",
    ]  # operationId camelCased; none: method+path

    list_pets = field(query, "listPets")
    assert print_ast(list_pets.type) == "[Pet!]"
    assert {a.name.value: print_ast(a.type) for a in list_pets.arguments} == {"limit": "Int", "status": "PetStatus"}
    assert http_of(list_pets) == {"GET": "/pets?limit={$args.limit}&status={$args.status}"}
    assert "# GET /pets (header parameter 'X-Request-Id' not mapped)" in sdl
    pet_selection = selection_of(list_pets)
    assert pet_selection[:4] == ["name", "tag", "id", "status"]  # allOf: NewPet's properties, then the rest
    assert "birthDate: birth_date" in pet_selection and 'weightKg: "weight-kg"' in pet_selection
    assert pet_selection[pet_selection.index("category {") : pet_selection.index("category {") + 4] == [
        "category {",
        "id",
        "name",
        "}",
    ]

    show = field(query, "showPetById")
    assert {a.name.value: print_ast(a.type) for a in show.arguments} == {"petId": "ID!"}  # path-level parameter, an id
    assert http_of(show) == {"GET": "/pets/{$args.petId}"}

    create = field(mutation, "createPet")
    assert {a.name.value: print_ast(a.type) for a in create.arguments} == {"input": "NewPetInput!"}
    body = next(
        a.value for d in create.directives if d.name.value == "connect" for a in d.arguments if a.name.value == "http"
    )
    body_text = next(f.value.value for f in body.fields if f.name.value == "body")
    assert [line.strip() for line in body_text.strip().splitlines()] == [
        "$args.input {",
        "name",
        "tag",
        "owner_email: ownerEmail",
        "}",
    ]
    delete = field(mutation, "deletePetsByPetId")
    assert print_ast(delete.type) == "Boolean" and selection_of(delete) == ["$(true)"]  # 204: no JSON answer

    pet = types["Pet"]
    assert directive_arguments(pet, "key") == {"fields": '"id"'}
    assert http_of(pet) == {"GET": "/pets/{$this.id}"}
    assert selection_of(pet) == pet_selection
    assert {f.name.value: print_ast(f.type) for f in pet.fields} == {
        "name": "String!",
        "tag": "String",
        "id": "ID!",
        "status": "PetStatus",
        "birthDate": "String",
        "category": "Category",
        "tags": "[Tag!]",
        "weightKg": "Float",
    }  # ownerEmail is writeOnly: not in the output type
    assert {f.name.value for f in types["NewPetInput"].fields} == {"name", "tag", "ownerEmail"}  # id is readOnly
    assert isinstance(types["NewPetInput"], InputObjectTypeDefinitionNode)
    assert isinstance(types["PetStatus"], EnumTypeDefinitionNode)
    assert [v.name.value for v in types["PetStatus"].values] == ["available", "pending", "sold"]
    assert "  name: String!  # TODO personal?" in sdl and "  birthDate: String  # TODO personal?" in sdl
    assert "  tag: String\n" in sdl  # not personal-looking: no TODO

    assert result.entities == ["Pet"]
    assert result.skipped == ["POST /pets/{petId}/photo: its request body is not JSON (multipart/form-data): left out"]
    manifest = yaml.safe_load(result.manifest)
    assert manifest == {
        "name": "pets",
        "owner": "petco",
        "kind": "rest",
        "url": "https://petstore.example/v1",
        "timeout": 5,
        "sdl_file": "schema.graphql",
    }
    assert '# headers: {"X-API-Key": "${PETS_API_KEY}"}' in result.manifest  # a hint, commented out


def test_a_31_json_document_with_refs_allof_oneof_enums_arrays_and_recursion():
    result = draft("district_services.json", connector="district-services")
    types = definitions(result.sdl)
    assert result.base_url == "https://services.example/api"  # the server variable's default
    assert '@source(name: "district_services", http: {baseURL: "https://services.example/api"})' in result.sdl

    services = field(types["Query"], "districtServices")  # operationId "district-services"
    assert {a.name.value: print_ast(a.type) for a in services.arguments} == {
        "code": "String!",
        "cursor": "String",
        "kinds": "[String!]",  # $ref'd parameter; an enum that is no GraphQL name: String
    }
    assert http_of(services) == {"GET": "/districts/{$args.code}/services?cursor={$args.cursor}&kinds={$args.kinds}"}
    assert {f.name.value: print_ast(f.type) for f in types["ServicePage"].fields} == {
        "items": "[Service!]!",
        "nextCursor": "String",
    }

    service = types["Service"]  # allOf: Base's properties merged with its own
    assert {f.name.value: print_ast(f.type) for f in service.fields} == {
        "id": "ID!",
        "createdAt": "String",
        "name": "String!",
        "kind": "String!",
        "openDays": "[Weekday!]",
        "contact": "JSON",  # oneOf of two objects
        "manager": "Person",  # anyOf [Person, null]
        "capacity": "Float",  # oneOf [integer, number]
        "location": "ServiceLocation",
        "extra": "JSON",
        "rating": "Float",
    }
    assert isinstance(types["JSON"], ScalarTypeDefinitionNode)
    assert [v.name.value for v in types["Weekday"].values] == ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
    assert directive_arguments(service, "key") == {"fields": '"id"'}
    assert http_of(service) == {"GET": "/services/{$this.id}"}  # {service_id} is the service's id
    assert 'streetAddress: "street-address"' in selection_of(service)

    # a schema that refers to itself: one type; where it recurs, its leaf fields only
    categories = field(types["Query"], "getCategories")
    assert selection_of(categories) == ["slug", "parent {", "slug", "}", "children {", "slug", "}"]
    assert {f.name.value: print_ast(f.type) for f in types["Category"].fields} == {
        "slug": "String",
        "parent": "Category",
        "children": "[Category!]",
    }

    update = field(types["Mutation"], "updateService")  # application/merge-patch+json is JSON
    assert {a.name.value: print_ast(a.type) for a in update.arguments} == {
        "serviceId": "ID!",
        "input": "ServicePatchInput",
    }
    stats = types["StatsResult"]  # an inline response object, named after its operation
    assert {f.name.value: print_ast(f.type) for f in stats.fields} == {"total": "Int", "byKind": "JSON"}  # a map: JSON
    assert (
        "  fullName: String  # TODO personal?" in result.sdl
        and "  streetAddress: String  # TODO personal?" in result.sdl
    )


CORPUS = {  # document -> (origin, entity types, a type the supergraph must have)
    "petstore.yaml": ("https://petstore.example", ["Pet"], "Pet"),
    "district_services.json": ("https://services.example", ["Service"], "ServicePage"),
    "jobs.yaml": ("https://jobs.voisinage.example", [], "SearchJobsResultMeta"),  # two-parameter paths: no entity
    "dining.json": ("https://api.tablehote.example", ["Dinner"], "DinnerMenuCoursesWine"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_drafts_read_without_problems_and_compose(name):
    origin, entities, some_type = CORPUS[name]
    result = draft(name)
    assert result.entities == entities
    schema = read_connect_sdl(result.sdl, base_url=result.base_url)
    assert schema.origins == frozenset({origin})
    composed = compose([SubgraphSource("pets", schema.composition_sdl, result.base_url)])
    assert composed.errors == []
    assert f"type {some_type}" in composed.supergraph


def test_shapes_of_the_jobs_and_dining_documents():
    jobs = definitions(draft("jobs.yaml").sdl)
    search = field(jobs["Query"], "searchJobs")
    assert http_of(search) == {
        "GET": "/jobs?q={$args.q}&page={$args.page}&per_page={$args.perPage}&remote={$args.remote}"
    }
    assert selection_of(search)[-5:] == ["meta {", "total", "page", "perPage: per_page", "}"]  # pagination metadata
    assert {f.name.value: print_ast(f.type) for f in jobs["Job"].fields} == {
        "id": "ID!",
        "title": "String!",
        "posterId": "ID",
        "skills": "[Skill!]",  # <x>_id: an ID
        "pay": "JSON",  # a discriminated oneOf of objects
        "schedule": "[[String!]!]",
        "postedAt": "String",
    }
    replace = field(jobs["Mutation"], "replaceSkills")  # an array body, no renames: sent as it is
    assert {a.name.value: print_ast(a.type) for a in replace.arguments} == {"jobId": "ID!", "input": "[SkillInput!]!"}
    assert http_of(replace) == {"PUT": "/jobs/{$args.jobId}/skills", "body": "$args.input"}
    job_sdl = draft("jobs.yaml").sdl
    assert "  posterId: ID  # TODO personal?" in job_sdl and "  page: Int\n" in job_sdl
    # the page parameter's default (1) is the argument's
    assert {
        a.name.value: (print_ast(a.type), a.default_value and print_ast(a.default_value)) for a in search.arguments
    }["page"] == ("Int", "1")

    dining_sdl = draft("dining.json").sdl
    dining = definitions(dining_sdl)
    assert "# GET /dinners (cookie parameter 'session' not mapped)" in dining_sdl
    courses = selection_of(field(dining["Query"], "listDinners"))
    assert courses[:10] == ["id", "menu {", "courses {", "name", "allergens", "wine {", "region", "vintage", "}", "}"]
    assert {f.name.value: print_ast(f.type) for f in dining["Dinner"].fields} == {
        "id": "ID!",
        "menu": "DinnerMenu!",
        "price": "String",
        "seats": "Int",
        "translations": "JSON",
        "hostId": "ID",
        "startsAt": "String",
    }
    cancel = field(dining["Mutation"], "cancelDinner")
    assert [d.name.value for d in cancel.directives] == ["deprecated", "connect"]


def test_an_invalid_document_gets_one_line_per_problem_and_no_draft():
    with pytest.raises(OpenApiError) as refused:
        draft("invalid.yaml")
    assert sorted(refused.value.problems) == sorted(
        [
            "#/info: 'version' is a required property",
            "#/paths/~1things/get/parameters/0/schema/type: 'strng' is not one of ['array', 'boolean', 'integer', 'number', 'object', 'string']",
            "#/paths/~1things/get/responses/200/content/application~1json/schema: $ref '#/components/schemas/Thing' does not resolve",
            "#/paths/~1secrets/get/responses/200/content/application~1json/schema: $ref 'file:///etc/passwd' points outside the document (never fetched)",
        ]
    )


def test_semantic_problems_are_found_once_the_structure_is_right():
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/a/{id}": {"get": {"operationId": "same", "responses": {"200": {"description": "ok"}}}},
            "/b": {"get": {"operationId": "same", "responses": {"200": {"description": "ok"}}}},
        },
    }
    with pytest.raises(OpenApiError) as refused:
        import_openapi(json.dumps(document), name="a", owner="a")
    assert refused.value.problems == [
        "#: Path parameter 'id' for 'get' operation in '/a/{id}' was not resolved",
        "#: Operation ID 'same' for 'get' in '/b' is not unique",
    ]


def _document(paths: dict, schemas: dict | None = None) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example"}],
        "paths": paths,
        "components": {"schemas": schemas or {}},
    }


def _answer(schema: dict) -> dict:
    return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def test_bounds_size_operations_aliases_and_nesting():
    with pytest.raises(OpenApiError, match="over 10 MB"):
        import_openapi(b'{"openapi": "3.0.0"' + b" " * (10 * 1024 * 1024) + b"}", name="a", owner="a")
    many = _document({f"/p{i}": {"get": {"responses": _answer({"type": "string"})}} for i in range(MAX_OPERATIONS + 1)})
    with pytest.raises(OpenApiError, match=f"{MAX_OPERATIONS + 1} operations"):
        import_openapi(json.dumps(many), name="a", owner="a")
    # a billion laughs: ten aliases of ten aliases... refused from its node graph, never expanded
    bomb = 'openapi: 3.0.0\ninfo: {title: t, version: "1"}\npaths: {}\nx0: &a0 [l, l, l, l, l, l, l, l, l, l]\n'
    bomb += "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    with pytest.raises(OpenApiError, match="expands to more than"):
        import_openapi(bomb, name="a", owner="a")
    with pytest.raises(OpenApiError, match="nesting depth"):
        import_openapi("openapi: 3.0.0\nx: " + "[" * 5000 + "]" * 5000, name="a", owner="a")
    with pytest.raises(OpenApiError, match="depth limit"):
        import_openapi('{"a":' * 3000 + "1" + "}" * 3000, name="a", owner="a")
    with pytest.raises(OpenApiError, match=r"Swagger 2\.0"):
        import_openapi('swagger: "2.0"\ninfo: {title: t, version: "1"}\npaths: {}', name="a", owner="a")


def test_ref_cycles_end():
    mutual = _document(
        {"/a": {"get": {"responses": _answer({"$ref": "#/components/schemas/A"})}}},
        {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}, "n": {"type": "integer"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}, "m": {"type": "string"}}},
        },
    )
    result = import_openapi(json.dumps(mutual), name="a", owner="a")
    assert selection_of(field(definitions(result.sdl)["Query"], "getA")) == ["b {", "a {", "n", "}", "m", "}", "n"]
    # $refs that only point at each other, and allOf through itself: refused, not looped on
    for schemas in (
        {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}},
        {"A": {"allOf": [{"$ref": "#/components/schemas/B"}]}, "B": {"allOf": [{"$ref": "#/components/schemas/A"}]}},
    ):
        started = time.monotonic()
        with pytest.raises(OpenApiError, match="nested too deeply"):
            import_openapi(
                json.dumps(
                    _document({"/a": {"get": {"responses": _answer({"$ref": "#/components/schemas/A"})}}}, schemas)
                ),
                name="a",
                owner="a",
            )
        assert time.monotonic() - started < 60  # a bound on a loop, not a speed check


def test_relative_servers_resolve_against_the_document_or_need_url():
    document = _document({"/a": {"get": {"responses": _answer({"type": "string"})}}})
    document["servers"] = [{"url": "/api/v2"}]
    with pytest.raises(OpenApiError, match="give it with --url"):
        import_openapi(json.dumps(document), name="a", owner="a")
    result = import_openapi(json.dumps(document), name="a", owner="a", location="http://127.0.0.1:8123/openapi.json")
    assert result.base_url == "http://127.0.0.1:8123/api/v2"
    result = import_openapi(json.dumps(document), name="a", owner="a", base_url="https://given.example/x/")
    assert result.base_url == "https://given.example/x"
    assert selection_of(field(definitions(result.sdl)["Query"], "getA")) == ["$"]  # a scalar answer: the answer itself


def test_names_and_clashes():
    assert [camel_case(n) for n in ["first_name", "firstName", "ID", "Pet-Name", "get_pet_by_ID", "2fa", "x.y"]] == [
        "firstName",
        "firstName",
        "id",
        "petName",
        "getPetById",
        "_2fa",
        "xY",
    ]
    document = _document(
        {
            "/query": {"get": {"operationId": "list", "responses": _answer({"$ref": "#/components/schemas/Query"})}},
            "/other": {
                "get": {
                    "operationId": "list",
                    "responses": _answer(
                        {"type": "object", "properties": {"a b": {"type": "string"}, "a_b": {"type": "string"}}}
                    ),
                }
            },
        },
        {"Query": {"type": "object", "properties": {"String": {"type": "string"}}}},
    )
    # two operations named alike: the validator refuses it (operationIds are unique)
    with pytest.raises(OpenApiError, match="is not unique"):
        import_openapi(json.dumps(document), name="a", owner="a")
    document["paths"]["/other"]["get"]["operationId"] = "list_other"
    result = import_openapi(json.dumps(document), name="a", owner="a")
    types = definitions(result.sdl)
    assert "QueryObject" in types  # a component may not be called Query
    assert [f.name.value for f in types["ListOtherResult"].fields] == ["aB", "aB_"]
    assert selection_of(field(types["Query"], "listOther")) == ['aB: "a b"', "aB_: a_b"]


def test_generated_sdl_never_lets_a_description_break_out():
    document = _document(
        {
            "/a": {
                "get": {
                    "summary": 'Evil """ description\n type Query { x: Int }',
                    "responses": _answer(
                        {"type": "object", "properties": {"x": {"type": "string", "description": '"""'}}}
                    ),
                }
            },
            "/b\nscalar Evil": {"get": {"operationId": "b", "responses": _answer({"type": "string"})}},
        }
    )
    document["info"]["version"] = "1\nscalar Evil2"
    result = import_openapi(json.dumps(document), name="a", owner="a")
    types = definitions(result.sdl)
    assert "Evil" not in types and "Evil2" not in types  # names from the document stay inside comments and strings
    assert [f.name.value for f in types["Query"].fields] == ["getA", "b"]
    assert types["Query"].fields[0].description.value == 'Evil """ description type Query { x: Int }'


def test_a_draft_with_a_mapping_error_is_refused_with_its_location():
    result = draft("petstore.yaml")
    broken = result.sdl.replace(
        "        birthDate: birth_date\n", "        birthDate: birth_date\n        nickname\n", 1
    )
    line = broken.splitlines().index("        nickname") + 1
    with pytest.raises(ConnectError) as refused:
        read_connect_sdl(broken, base_url=result.base_url)
    problem = next(p for p in refused.value.problems if "nickname" in p.message)
    assert problem.code == "CONNECT_UNKNOWN_FIELD"
    assert problem.line == line
