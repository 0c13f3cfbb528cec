"""The importer's follow-ups (issue 14): OpenAPI `default`s kept as argument and input field
defaults (and sent when a client leaves the argument out), `<x>Id` / `<x>_id` properties as ID,
and `--type-prefix` so that two partners' drafts compose side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from graphql import parse, print_ast

from gateway.composition import SubgraphSource, compose
from gateway.connect import RestClient, read_connect_sdl
from gateway.connect._openapi import OpenApiError, import_openapi


def _answer(schema: dict) -> dict:
    return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def catalogue(base_url: str, *, title: str = "Catalogue", extra: dict | None = None) -> dict:
    category = {"$ref": "#/components/schemas/Category"}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {
            "/items": {
                "get": {
                    "operationId": "listItems",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 20}},
                        {
                            "name": "sort",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["name", "price"], "default": "price"},
                        },
                        {
                            "name": "tag",
                            "in": "query",
                            "schema": {"type": "array", "items": {"type": "string"}, "default": ["fresh", "local"]},
                        },
                        {"name": "open", "in": "query", "schema": {"type": "boolean", "default": True}},
                        {"name": "q", "in": "query", "schema": {"type": "string", "default": 'café "au lait"'}},
                        {"name": "ratio", "in": "query", "schema": {"type": "number", "default": 0.5}},
                        {"name": "bad", "in": "query", "schema": {"type": "integer", "default": 10000000000}},
                        {"name": "none", "in": "query", "schema": {"type": ["string", "null"], "default": None}},
                    ],
                    "responses": _answer({"type": "array", "items": {"$ref": "#/components/schemas/Item"}}),
                },
                "post": {
                    "operationId": "addItem",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                    },
                    "responses": _answer({"$ref": "#/components/schemas/Item"}),
                },
            },
            "/categories/{categoryId}": {
                "get": {
                    "operationId": "getCategory",
                    "parameters": [
                        {"name": "categoryId", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": _answer(category),
                }
            },
            **(extra or {}),
        },
        "components": {
            "schemas": {
                "Category": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                },
                "Item": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "integer", "format": "int64"},
                        "owner_id": {"type": "string"},
                        "hostId": {"type": "integer"},
                        "cityID": {"type": "string"},
                        "ratingId": {"type": "number"},
                        "paid": {"type": "string"},
                        "tagIds": {"type": "array", "items": {"type": "string"}},
                        "category": category,
                        "query": {"type": "object", "properties": {"echo": {"type": "string"}}},
                    },
                },
                "NewItem": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "default": "unnamed"},
                        "count": {"type": "integer", "default": 3},
                        "size": {"type": "string", "enum": ["S", "M", "L"], "default": "M"},
                        "meta": {"type": "object", "additionalProperties": True, "default": {"a": 1}},
                    },
                },
            }
        },
    }


def drafted(document: dict, **options):
    return import_openapi(json.dumps(document), name=options.pop("name", "shop"), owner="shop", **options)


def arguments(sdl: str, type_name: str, field_name: str) -> dict[str, tuple[str, str | None]]:
    document = parse(sdl)
    type_def = next(d for d in document.definitions if getattr(getattr(d, "name", None), "value", None) == type_name)
    field_def = next(f for f in type_def.fields if f.name.value == field_name)
    return {
        a.name.value: (print_ast(a.type), a.default_value and print_ast(a.default_value)) for a in field_def.arguments
    }


def fields(sdl: str, type_name: str) -> dict[str, tuple[str, str | None]]:
    document = parse(sdl)
    type_def = next(d for d in document.definitions if getattr(getattr(d, "name", None), "value", None) == type_name)
    return {
        f.name.value: (print_ast(f.type), getattr(f, "default_value", None) and print_ast(f.default_value))
        for f in type_def.fields
    }


def test_defaults_become_argument_and_input_field_defaults_when_they_are_values_of_the_type():
    draft = drafted(catalogue("http://127.0.0.1:9"))
    listed = arguments(draft.sdl, "Query", "listItems")
    assert listed == {
        "limit": ("Int", "20"),
        "sort": ("ListItemsSort", "price"),
        "tag": ("[String!]", '["fresh", "local"]'),
        "open": ("Boolean", "true"),
        "q": ("String", '"café \\"au lait\\""'),
        "ratio": ("Float", "0.5"),
        "bad": ("Int", None),  # past 32 bits: no Int, left out, and said
        "none": ("String", None),  # a null default is no default
    }
    assert "query parameter 'bad': default 10000000000 does not fit Int: not kept" in draft.sdl
    assert fields(draft.sdl, "NewItemInput") == {
        "name": ("String", '"unnamed"'),
        "count": ("Int", "3"),
        "size": ("NewItemInputSize", "M"),
        "meta": ("JSON", None),
    }
    assert '  meta: JSON  # default {"a": 1} not kept: the API applies it' in draft.sdl
    read_connect_sdl(draft.sdl, base_url=draft.base_url)


def test_properties_naming_an_identifier_are_ids():
    draft = drafted(catalogue("http://127.0.0.1:9"))
    item = fields(draft.sdl, "Item")
    assert {name: item[name][0] for name in ("id", "ownerId", "hostId", "cityID", "ratingId", "paid", "tagIds")} == {
        "id": "ID!",
        "ownerId": "ID",
        "hostId": "ID",
        "cityID": "ID",
        "ratingId": "Float",  # a number is no identifier
        "paid": "String",
        "tagIds": "[String!]",
    }


async def test_a_left_out_argument_sends_the_documents_default(pool):
    seen: list[str] = []

    async def items(request: web.Request) -> web.Response:
        seen.append(str(request.rel_url))
        return web.json_response([{"id": 7, "owner_id": "o1", "hostId": 12, "category": {"id": "c1", "name": "Fruit"}}])

    app = web.Application()
    app.router.add_get("/api/items", items)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    try:
        draft = drafted(catalogue(base))
        client = RestClient(read_connect_sdl(draft.sdl, base_url=draft.base_url), pool, name="shop")
        answer = await client.send("{ listItems(limit: 5, tag: null) { id ownerId hostId category { name } } }", None)
        assert answer == {
            "data": {"listItems": [{"id": "7", "ownerId": "o1", "hostId": "12", "category": {"name": "Fruit"}}]}
        }
        # limit given, tag null (dropped); the others the document's defaults
        assert seen == ["/api/items?limit=5&sort=price&open=true&q=caf%C3%A9%20%22au%20lait%22&ratio=0.5"]
    finally:
        await runner.cleanup()


def test_a_type_prefix_keeps_two_partners_drafts_apart():
    first = drafted(catalogue("http://127.0.0.1:9/a", title="Market"), name="market", type_prefix="Market")
    second = drafted(catalogue("http://127.0.0.1:9/b", title="Pantry"), name="pantry", type_prefix="pantry")
    assert set(fields(first.sdl, "MarketItem")) >= {"id", "category"}
    assert fields(first.sdl, "MarketItem")["category"] == ("MarketCategory", None)
    assert arguments(first.sdl, "Query", "listItems")["sort"] == ("MarketListItemsSort", "price")
    assert "input MarketNewItemInput" in first.sdl and "type PantryCategory @key" in second.sdl
    assert first.entities == ["MarketCategory"] and second.entities == [
        "PantryCategory"
    ]  # GET /categories/{categoryId}
    for draft in (first, second):
        read_connect_sdl(draft.sdl, base_url=draft.base_url)

    def composed(*drafts):
        sources = [
            SubgraphSource(name, read_connect_sdl(d.sdl, base_url=d.base_url).composition_sdl, d.base_url)
            for name, d in zip(("market", "pantry"), drafts, strict=True)
        ]
        return compose(sources)

    # the same two APIs without a prefix clash on Category, Item, ... and on their root fields;
    # with one, only the root fields remain to rename
    unprefixed = composed(
        drafted(catalogue("http://127.0.0.1:9/a"), name="market"),
        drafted(catalogue("http://127.0.0.1:9/b"), name="pantry"),
    )
    assert not unprefixed.ok
    assert any("Category" in str(e) for e in unprefixed.errors)
    renamed = (
        second.sdl.replace("listItems", "pantryItems")
        .replace("addItem", "addPantryItem")
        .replace("getCategory", "pantryCategory")
    )
    result = composed(
        first,
        type(second)(second.manifest, renamed, second.base_url, second.operations, second.entities, second.skipped),
    )
    assert result.ok, [str(e) for e in result.errors]


def test_a_type_prefix_must_be_a_name():
    with pytest.raises(OpenApiError) as caught:
        drafted(catalogue("http://127.0.0.1:9"), type_prefix="9lives")
    assert caught.value.problems == [
        "the type prefix must be letters and digits, starting with a letter (e.g. Voisinage)"
    ]


def test_the_cli_takes_a_type_prefix(tmp_path: Path):
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(catalogue("http://127.0.0.1:9/api")))

    def citygate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60)

    done = citygate(
        "connector",
        "import-openapi",
        str(document),
        "--name",
        "shop",
        "--type-prefix",
        "Shop",
        "--out",
        str(tmp_path / "shop"),
    )
    assert done.returncode == 0, done.stderr
    sdl = (tmp_path / "shop" / "schema.graphql").read_text()
    assert "type ShopItem {" in sdl and "entities: ShopCategory" in done.stderr
    refused = citygate(
        "connector",
        "import-openapi",
        str(document),
        "--name",
        "shop",
        "--type-prefix",
        "a-b",
        "--out",
        str(tmp_path / "other"),
    )
    assert refused.returncode == 1
    assert "the type prefix must be letters and digits" in refused.stderr
    assert not (tmp_path / "other").exists()
