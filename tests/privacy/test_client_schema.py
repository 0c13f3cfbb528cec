"""Per-client schema: introspection over HTTP shows each requester the fields its policy could
ever let it receive (privacy/_client_schema.py), against the privacy world behind a real gateway.

Expectations are computed here from the policy and the annotations (the supergraph's own look-up
of which field is personal or an aggregate), never by the module under test.
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_client_schema,
    build_schema,
    get_introspection_query,
    get_named_type,
    validate_schema,
)

from gateway.app import registry_app
from gateway.http_limits import HttpLimits
from gateway.planner import DocumentLimits
from gateway.policy import parse_policy
from gateway.privacy import PUBLIC_AUDIENCE, Audience
from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS, OPERATOR_KEY, City, connectors_folder, policy_document
from tests.world.server import AppServer

INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)
BUDGET = {"epsilon_per_query": 0.5, "budget": {"epsilon": 10, "period": "day"}}


def city_policy(jwks_file) -> dict:
    policy = policy_document(jwks_file)
    # open data: the public and the statistics portal have a budget, the other clients none
    policy["open_data"] = {"public": BUDGET, "clients": {"stats-portal": BUDGET}}
    # every field of a booking personal: the type has nothing left for the public
    policy["privacy"]["fields"] = {
        "Booking.id": {"category": "user.unique_id"},
        "Booking.residentId": {"category": "user.unique_id"},
    }
    policy["identity"]["issuers"][0]["roles_claim"] = "roles"  # a client's own token may carry roles
    return policy


class OpenCity(City):
    """The privacy world's gateway, introspection open to every requester (in production the
    public's is off by default: `introspection: clients`)."""

    def __init__(self, store_url: str, folder: Path, policy: dict, signer) -> None:
        self.signer = signer
        self.policy_path = folder / "policy.yaml"  # reloads read this file
        self.policy_path.write_text(yaml.safe_dump(policy))
        self.gateway = registry_app(
            folder=folder,
            store_url=store_url,
            policy=parse_policy(policy),
            policy_path=self.policy_path,
            operator_key=OPERATOR_KEY,
            limits=HttpLimits(document=DocumentLimits(introspection="all")),
        )
        self.server = AppServer(self.gateway.app, lifespan="on").start()
        self.client = httpx.AsyncClient(base_url=self.server.base_url, timeout=30)


@pytest.fixture
async def schema_city(tmp_path, privacy_world, signer):
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    running = OpenCity(f"sqlite:///{tmp_path / 'city.db'}", folder, city_policy(signer.jwks_file), signer)
    yield running
    await running.close()


async def introspect(city: City, **who) -> GraphQLSchema:
    answer = await city.ask(INTROSPECTION, **who)
    assert answer["_status"] == 200 and "errors" not in answer, answer
    return build_client_schema(answer["data"])


def fields_of(schema: GraphQLSchema) -> set[str]:
    return {
        f"{name}.{field}"
        for name, named in schema.type_map.items()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not name.startswith("__")
        for field in named.fields
    }


def could_receive(city: City, policy: dict, who: dict, type_name: str, field_name: str) -> bool:
    """The rules of docs/privacy.md read for "could ever", the simplest way: a personal field
    reaches a resident (their own), a client with a purpose (a resident may consent to any of its
    purposes, any category), never the public; an aggregate under open_data only a requester with
    a budget."""
    privacy = city.gateway.state.engine.privacy
    if privacy.personal(type_name, field_name) is not None:
        if who.get("resident"):
            return True
        client = who.get("client")
        return client is not None and bool(policy["clients"][client]["purposes"])
    if privacy.aggregate(type_name, field_name) is not None:
        client = who.get("client")
        return client in policy["open_data"]["clients"] if client else "public" in policy["open_data"]
    return True


def expected_fields(city: City, policy: dict, who: dict, seen: GraphQLSchema) -> set[str]:
    """Of the whole API schema, the fields the requester could receive whose parent and type are in
    the schema it was shown, and, on an interface, that each implementation shown could receive."""
    api = city.gateway.state.engine.model.api_schema
    expected = set()
    for name, named in api.type_map.items():
        if (
            not isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
            or name.startswith("__")
            or name not in seen.type_map
        ):
            continue
        implementations = api.get_possible_types(named) if isinstance(named, GraphQLInterfaceType) else []
        for field_name, definition in named.fields.items():
            targets = [
                get_named_type(definition.type).name,
                *(get_named_type(a.type).name for a in definition.args.values()),
            ]
            if (
                could_receive(city, policy, who, name, field_name)
                and all(target in seen.type_map for target in targets)
                and all(
                    could_receive(city, policy, who, i.name, field_name)
                    for i in implementations
                    if i.name in seen.type_map
                )
            ):
                expected.add(f"{name}.{field_name}")
    return expected


REQUESTERS = [
    pytest.param({}, id="public"),
    *(pytest.param({"client": client}, id=client) for client in CLIENT_KEYS),
    pytest.param({"client": "city-app", "resident": "r1"}, id="resident"),
]


@pytest.mark.parametrize("who", REQUESTERS)
async def test_each_requester_introspects_exactly_what_it_could_receive_and_a_valid_schema(schema_city, signer, who):
    policy = city_policy(signer.jwks_file)
    purpose = {"parking-app": "booking"}.get(who.get("client", ""))
    seen = await introspect(schema_city, **who, purpose=purpose)
    assert validate_schema(seen) == []
    shown = fields_of(seen)
    assert shown == expected_fields(schema_city, policy, who, seen)
    # nothing shown that the requester could never receive
    for coordinate in shown:
        assert could_receive(schema_city, policy, who, *coordinate.split(".")), coordinate


async def test_the_public_sees_no_personal_field(schema_city):
    seen = fields_of(await introspect(schema_city))
    engine = schema_city.gateway.state.engine
    api = engine.model.api_schema
    personal = {
        f"{name}.{field}"
        for name, named in api.type_map.items()
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not name.startswith("__")
        for field in named.fields
        if engine.privacy.personal(name, field) is not None
    }
    # annotated ones at least: the SDL's @personal and the policy's privacy.fields
    assert {
        "Resident.email",
        "Resident.phone",
        "Resident.name",
        "Incident.location",
        "Booking.plate",
        "Booking.id",
    } <= personal
    assert {f"{t}.{f}" for t, f in engine.model.privacy.personal} <= personal
    assert seen and not seen & personal
    assert "District.averageBirthYear" in seen  # open data: the public has a budget
    assert "Resident.id" in seen  # declared non-personal by the test city's policy


async def test_a_type_left_without_fields_goes_with_every_field_pointing_at_it(schema_city):
    public = await introspect(schema_city)
    assert "Booking" not in public.type_map  # id and residentId made personal, plate and amount are
    for coordinate in fields_of(public):
        type_name, field_name = coordinate.split(".")
        assert get_named_type(public.type_map[type_name].fields[field_name].type).name != "Booking"  # type: ignore[union-attr]
    full = schema_city.gateway.state.engine.model.api_schema
    pointing = {
        f"{n}.{f}"
        for n, t in full.type_map.items()
        for f, d in (getattr(t, "fields", None) or {}).items()
        if get_named_type(d.type).name == "Booking"
    }
    assert pointing and not pointing & fields_of(public)
    # a type only reached through a personal field goes too (the incident's location)
    assert "GeoPoint" in full.type_map and "GeoPoint" not in public.type_map
    # __type of a removed type is null; __typename is unaffected
    answer = await schema_city.ask(
        '{ __typename booking: __type(name: "Booking") { name } district: __type(name: "District") { name } }'
    )
    assert answer["data"] == {"__typename": "Query", "booking": None, "district": {"name": "District"}}
    # the parking app, which could receive a booking's fields with consent, sees it all
    parking = await introspect(schema_city, client="parking-app", purpose="booking")
    assert {"Booking.id", "Booking.plate", "Booking.amount"} <= fields_of(parking)


async def test_a_field_not_in_the_schema_shown_is_still_answered_withheld_with_its_reason(schema_city):
    """Validation and execution stay on the whole API schema: an explained refusal, not
    "Cannot query field"."""
    answer = await schema_city.ask('{ resident(id: "r1") { email phone } }')
    assert "errors" not in answer, answer
    assert answer["data"]["resident"] != {
        "email": "amelie@example.org",
        "phone": "+33 6 12 34 56 78",
    }  # masked (partial)
    reasons = {(tuple(w["path"]), w["reason"]) for w in answer["extensions"]["privacy"]["withheld"]}
    assert reasons == {(("resident", "email"), "public-requester"), (("resident", "phone"), "public-requester")}
    aggregate = await schema_city.ask("{ districts { averageBirthYear } }", client="parking-app", purpose="booking")
    assert "Cannot query field" not in str(aggregate)


async def test_a_policy_reload_changes_what_a_client_sees(schema_city, signer):
    before = fields_of(await introspect(schema_city, client="parking-app", purpose="booking"))
    assert "District.averageBirthYear" not in before  # open data, and no budget of its own
    policy = city_policy(signer.jwks_file)
    changed = copy.deepcopy(policy)
    changed["open_data"]["clients"]["parking-app"] = BUDGET
    changed["privacy"]["fields"] = {}
    schema_city.policy_path.write_text(yaml.safe_dump(changed))
    reload = await schema_city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert reload.status_code == 200, reload.text
    after = fields_of(await introspect(schema_city, client="parking-app", purpose="booking"))
    assert "District.averageBirthYear" in after
    public = await introspect(schema_city)
    assert "Booking" in public.type_map and fields_of(public) >= {
        "Booking.id",
        "Booking.residentId",
    }  # no longer made personal


async def test_introspection_is_cached_per_requester_never_shared_between_them(schema_city):
    """The same introspection text, the public first, then a client: each gets its own."""
    query = '{ __type(name: "Resident") { fields { name } } }'
    public = await schema_city.ask(query)
    client = await schema_city.ask(query, client="parking-app", purpose="booking")
    again = await schema_city.ask(query)
    public_fields = {f["name"] for f in public["data"]["__type"]["fields"]}
    client_fields = {f["name"] for f in client["data"]["__type"]["fields"]}
    assert "email" not in public_fields and "email" in client_fields
    assert again["data"] == public["data"]


async def test_roles_that_enable_no_legal_basis_build_no_other_schema_nor_fill_the_caches(schema_city, signer):
    """A client's tokens carrying ever new sets of roles: only the roles that enable one of the
    policy's legal bases for its purposes decide its schema, so a flood of role combinations
    builds one schema and caches one introspection answer, not one per combination."""
    engine = schema_city.gateway.state.engine
    schemas, answers = engine.client_schemas._schemas, engine.executor._introspection
    query = '{ __type(name: "Resident") { fields { name } } }'

    async def introspect_with(client: str, purpose: str, roles: list[str]) -> dict:
        token = signer.token(client, client, roles=roles)  # the client's own token: no resident
        answer = await schema_city.ask(query, token=token, purpose=purpose)
        assert answer["_status"] == 200 and "errors" not in answer, answer
        return answer["data"]

    first = await introspect_with("technician-console", "street-maintenance", [])
    schemas_before, answers_before = len(schemas), len(answers)
    for n in range(24):
        junk = [f"role-{n}-{i}" for i in range(n % 5 + 1)]
        assert await introspect_with("technician-console", "street-maintenance", [*junk, "technician"]) == first
    assert (len(schemas), len(answers)) == (schemas_before, answers_before)
    # a role enabling no legal basis for the client's purposes counts for nothing either
    partner = await introspect_with("parking-app", "booking", [])
    schemas_before, answers_before = len(schemas), len(answers)
    for n in range(12):
        assert await introspect_with("parking-app", "booking", ["technician", f"role-{n}"]) == partner
    assert (len(schemas), len(answers)) == (schemas_before, answers_before)

    # what is kept is what decides: the roles enabling a basis for the client's purposes
    client_schemas = engine.client_schemas
    technician = client_schemas.decisive(Audience("technician-console", False, frozenset({"technician", "role-x"})))
    assert technician == Audience("technician-console", False, frozenset({"technician"}))
    assert client_schemas.decisive(Audience("parking-app", False, frozenset({"technician"}))) == Audience("parking-app")
    assert client_schemas.decisive(Audience("city-app", True, frozenset({"technician"}))) == Audience("city-app", True)
    assert client_schemas.decisive(Audience(None, False, frozenset({"technician"}))) == PUBLIC_AUDIENCE
    assert client_schemas.schema(
        Audience("technician-console", False, frozenset({"technician", "role-y"}))
    ) is client_schemas.schema(technician)


async def test_graphiql_page_and_its_schema_load_for_the_public(schema_city):
    page = await schema_city.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    # GraphiQL's own introspection query (the one its page sends), answered as a valid schema
    seen = await introspect(schema_city)
    assert validate_schema(seen) == [] and "districts" in seen.query_type.fields  # type: ignore[union-attr]


async def test_the_cli_prints_the_schema_a_client_introspects(schema_city, signer, tmp_path):
    """`citygate schema`, offline, from the supergraph the gateway serves and the policy file."""
    supergraph = await schema_city.client.get("/admin/supergraph", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert supergraph.status_code == 200
    (tmp_path / "supergraph.graphql").write_text(supergraph.text)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(city_policy(signer.jwks_file)))
    owners = [f"--owner={name}={'parking' if name == 'parking' else 'city'}" for name in world.SUBGRAPHS]

    async def cli(*arguments: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            "schema",
            "--supergraph",
            str(tmp_path / "supergraph.graphql"),
            "--policy",
            str(tmp_path / "policy.yaml"),
            *owners,
            *arguments,
        ]
        return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)

    for arguments, who in (
        ((), {}),
        (("--client", "parking-app"), {"client": "parking-app", "purpose": "booking"}),
        (("--client", "city-app", "--resident"), {"client": "city-app", "resident": "r1"}),
    ):
        printed = await cli(*arguments)
        assert printed.returncode == 0, printed.stderr
        assert fields_of(build_schema(printed.stdout)) == fields_of(await introspect(schema_city, **who)), arguments
    unknown = await cli("--client", "nobody")
    assert unknown.returncode == 2 and "no client 'nobody'" in unknown.stderr
