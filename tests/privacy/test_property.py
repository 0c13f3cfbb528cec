"""Property: no personal value reaches a requester without an allow, and every allowed value
for someone other than its subject has its audit record.

Hypothesis generates queries over the privacy world (aliases, named and inline fragments on an
interface and a union, nested entities across three subgraphs, @skip/@include) and random consent
states (grants and withdrawals through the control plane), and asks as random requesters (the
public, clients for each purpose, residents). Each personal value in the answer is checked against
the world's own data and an oracle of SPEC.md's decision order; the audit log is read back from
the store. EXAMPLES cases run in CI (derandomized: the same cases on every run).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS, City, connectors_folder, policy_document
from tests.world.server import WorldServer

EXAMPLES = 200
RESIDENTS = ["r1", "r2", "r3", "r4"]
CATEGORIES = [
    "user.contact",
    "user.contact.email",
    "user.contact.phone_number",
    "user.name",
    "user.unique_id",
    "user.financial",
    "user.location",
    "user.demographic",
]
PURPOSES = {
    "city-app": ["service-delivery"],
    "technician-console": ["street-maintenance"],
    "parking-app": ["booking", "marketing"],
    "stats-portal": ["statistics"],
}
# alias -> (field, category); the alias marks a personal value in the answer
PERSONAL = {
    "p_name": ("name", "user.name"),
    "p_email": ("email", "user.contact.email"),
    "p_phone": ("phone", "user.contact.phone_number"),
    "p_address": ("address", "user.contact.address"),
    "p_birth": ("birthDate", "user.demographic.date_of_birth"),
    "p_location": ("location", "user.location.precise"),
    "p_plate": ("plate", "user.unique_id"),
    "p_amount": ("amount", "user.financial"),
}
RULE = ("technician", "street-maintenance", ("user.contact", "user.location", "user.name"))


# -- queries ---------------------------------------------------------------------------------------


def _directive(draw) -> str:
    choice = draw(
        st.sampled_from(
            ["", "", "", " @include(if: $on)", " @skip(if: $on)", " @include(if: $off)", " @skip(if: $off)"]
        )
    )
    return choice


@st.composite
def resident_selection(draw, depth: int) -> str:
    parts = ["oracleType: __typename", "oracleId: id", "oracleSubject: id"]
    for alias in draw(
        st.lists(
            st.sampled_from(["p_name", "p_email", "p_phone", "p_address", "p_birth"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    ):
        parts.append(f"{alias}: {PERSONAL[alias][0]}{_directive(draw)}")
    if draw(st.booleans()):
        parts.append("district { code name }")
    if depth > 0 and draw(st.booleans()):
        parts.append(f"bookings{_directive(draw)} {{ {draw(booking_selection())} }}")
    if draw(st.booleans()):
        parts.append("...ResidentParts")
    return " ".join(parts)


@st.composite
def booking_selection(draw) -> str:
    parts = ["oracleType: __typename", "oracleId: id", "oracleSubject: residentId"]
    for alias in draw(st.lists(st.sampled_from(["p_plate", "p_amount"]), min_size=1, max_size=2, unique=True)):
        parts.append(f"{alias}: {PERSONAL[alias][0]}{_directive(draw)}")
    return " ".join(parts)


@st.composite
def incident_fields(draw, depth: int) -> str:
    parts = ["oracleType: __typename", "oracleId: id", "oracleSubject: reporterId"]
    if draw(st.booleans()):
        parts.append(f"p_location: location{_directive(draw)} {{ latitude longitude }}")
    if draw(st.booleans()):
        parts.append("description")
    if depth > 0 and draw(st.booleans()):
        parts.append(f"reporter {{ {draw(resident_selection(depth - 1))} }}")
    return " ".join(parts)


@st.composite
def incident_selection(draw, depth: int) -> str:
    """On the interface: fields of the interface, and inline fragments on its types."""
    parts = [draw(incident_fields(depth))]
    if draw(st.booleans()):
        parts.append(f"... on Pothole {{ depthCm {draw(incident_fields(depth))} }}")
    if draw(st.booleans()):
        parts.append(f"... on Graffiti {{ {draw(incident_fields(depth))} }}")
    return " ".join(parts)


@st.composite
def query(draw) -> str:
    roots = []
    choices = draw(
        st.lists(
            st.sampled_from(["residents", "resident", "incidents", "feed", "bookings"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    for root in choices:
        alias = draw(st.sampled_from(["", f"aliased_{root}: "]))
        if root == "residents":
            roots.append(f"{alias}residents {{ {draw(resident_selection(1))} }}")
        elif root == "resident":
            roots.append(
                f'{alias}resident(id: "{draw(st.sampled_from(RESIDENTS))}") {{ {draw(resident_selection(1))} }}'
            )
        elif root == "incidents":
            roots.append(f"{alias}incidents {{ {draw(incident_selection(1))} }}")
        elif root == "bookings":
            roots.append(f"{alias}bookings {{ {draw(booking_selection())} }}")
        else:
            roots.append(
                f"{alias}feed {{ __typename ... on Incident {{ {draw(incident_fields(1))} }} "
                f"... on Pothole {{ {draw(incident_fields(0))} }} ... on Notice {{ text }} }}"
            )
    body = "{ " + " ".join(roots) + " }"
    variables = [f"${name}: Boolean!" for name in ("on", "off") if f"${name}" in body]
    text = "query Q" + (f"({', '.join(variables)})" if variables else "") + " " + body
    if "...ResidentParts" in body:
        text += "\nfragment ResidentParts on Resident { oracleType: __typename oracleId: id oracleSubject: id p_email: email }"
    return text


# -- requesters and consents ---------------------------------------------------------------------


@dataclass(frozen=True)
class Asker:
    client: str | None
    purpose: str | None
    resident: str | None


requesters = st.one_of(
    st.just(Asker(None, None, None)),
    st.sampled_from([(c, p) for c, ps in PURPOSES.items() for p in ps]).map(lambda cp: Asker(cp[0], cp[1], None)),
    st.sampled_from(RESIDENTS).map(lambda r: Asker("city-app", "service-delivery", r)),
)
grants = st.lists(
    st.tuples(
        st.sampled_from(RESIDENTS),
        st.sampled_from([(c, p) for c, ps in PURPOSES.items() for p in ps]),
        st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True),
    ),
    max_size=3,
)


# -- the oracle ------------------------------------------------------------------------------------


def truth(node: dict, field: str):
    if node["oracleType"] == "Resident":
        row = world.data["residents"][node["oracleId"]]
        return {
            "name": row["name"],
            "email": row["email"],
            "phone": row["phone"],
            "address": row["address"],
            "birthDate": row["birth"],
        }[field]
    if node["oracleType"] == "Booking":
        row = next(b for b in world.data["bookings"] if b["id"] == node["oracleId"])
        return {"plate": row["plate"], "amount": row["amount"]}[field]
    row = next(r for r in world.data["reports"] if r["id"] == node["oracleId"])
    return {"latitude": row["lat"], "longitude": row["lng"]}


def allowed(asker: Asker, subject: str, category: str, consents: dict[str, list[dict]]) -> bool:
    if asker.resident is not None and asker.resident == subject:
        return True
    if asker.client is None:
        return False
    roles = {"technician-console": {"technician"}, "city-app": {"city"}, "parking-app": {"partner"}}.get(
        asker.client, set()
    )
    if (
        RULE[0] in roles
        and asker.purpose == RULE[1]
        and any(category == c or category.startswith(c + ".") for c in RULE[2])
    ):
        return True
    return any(
        c["recipient"] == asker.client
        and c["purpose"] == asker.purpose
        and any(category == g or category.startswith(g + ".") for g in c["categories"])
        for c in consents.get(subject, [])
    )


def personal_values(node, path=()):
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from personal_values(item, (*path, index))
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in PERSONAL:
                yield node, PERSONAL[key], value, (*path, key)
            yield from personal_values(value, (*path, key))


# -- the test --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def running_city(tmp_path_factory, signer):
    server = WorldServer(world.SUBGRAPHS).start()
    directory = tmp_path_factory.mktemp("property")
    world.reset()
    city = City(
        f"sqlite:///{directory / 'city.db'}",
        connectors_folder(directory / "connectors", server),
        policy_document(signer.jwks_file),
        signer,
    )
    client = httpx.Client(base_url=city.server.base_url, timeout=30)
    yield city, client, directory / "city.db"
    client.close()
    city.server.stop()
    server.stop()


def _headers(city: City, asker: Asker) -> dict[str, str]:
    headers = {}
    if asker.resident is not None:
        headers["authorization"] = "Bearer " + city.signer.token(asker.resident, asker.client or "city-app")
    elif asker.client is not None:
        headers["x-api-key"] = CLIENT_KEYS[asker.client]
    if asker.purpose is not None and asker.client is not None:
        headers["x-citygate-purpose"] = asker.purpose
    return headers


def _graphql(
    client: httpx.Client, city: City, asker: Asker, text: str, variables: dict | None = None
) -> httpx.Response:
    return client.post("/graphql", json={"query": text, "variables": variables or {}}, headers=_headers(city, asker))


@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)
@given(operation=query(), asker=requesters, new_grants=grants, withdraw_some=st.booleans(), on=st.booleans())
def test_no_personal_value_without_an_allow_and_every_disclosure_audited(
    running_city, operation, asker, new_grants, withdraw_some, on
):
    city, client, database = running_city
    consents: dict[str, list[dict]] = {}
    for subject, (recipient, purpose), categories in new_grants:
        answer = _graphql(
            client,
            city,
            Asker("city-app", "service-delivery", subject),
            "mutation($r: String!, $p: String!, $c: [String!]!) { grantConsent(recipient: $r, purpose: $p, categories: $c) { consent { id } } }",
            {"r": recipient, "p": purpose, "c": categories},
        ).json()
        assert "errors" not in answer, answer
    for subject in RESIDENTS:
        me = _graphql(
            client,
            city,
            Asker("city-app", "service-delivery", subject),
            "{ me { consents(activeOnly: true) { id recipient purpose categories } } }",
        ).json()
        consents[subject] = me["data"]["me"]["consents"]
        if withdraw_some and consents[subject]:
            victim = consents[subject].pop(0)
            _graphql(
                client,
                city,
                Asker("city-app", "service-delivery", subject),
                "mutation($id: ID!) { withdrawConsent(consentId: $id) { id } }",
                {"id": victim["id"]},
            )

    variables = {name: value for name, value in (("on", on), ("off", not on)) if f"${name}" in operation}
    response = _graphql(client, city, asker, operation, variables)
    body = response.json()
    assert response.status_code == 200 and "data" in body, body
    expected_audit: dict[str, set[str]] = {}
    for node, (field, category), value, path in personal_values(body["data"]):
        subject, real = node["oracleSubject"], truth(node, field)
        if allowed(asker, subject, category, consents):
            event("allowed to the subject" if asker.resident == subject else "allowed to another recipient")
            assert value == real, (path, value)
            if asker.resident != subject:  # a null too: the requester learns the subject has none
                expected_audit.setdefault(subject, set()).add(f"{node['oracleType']}.{field}")
        elif real is not None:
            event("withheld")
            assert value != real, f"{path}: a personal value reached {asker} without an allow"
            listed = [
                w for w in body.get("extensions", {}).get("privacy", {}).get("withheld", []) if tuple(w["path"]) == path
            ]
            assert listed and listed[0]["category"] == category and "value" not in listed[0]
    request_id = response.headers["x-request-id"]
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT subject, recipient, fields FROM audit_log WHERE request_id = ?", (request_id,)
        ).fetchall()
    recorded = {subject: set(json.loads(fields)) for subject, recipient, fields in rows}
    assert all(recipient == (asker.client or "public") for _, recipient, _ in rows)
    assert recorded == expected_audit, (recorded, expected_audit)
    assert str(uuid.UUID(request_id))  # a real request id
