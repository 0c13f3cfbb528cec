"""Property, against hostile partners: whatever they answer, no personal value reaches a client or a
subgraph without an allow, and every allowed one that leaves for someone else is audited first.

The privacy world's city (tests/privacy/world.py) plus two partners registered over the admin
API, real Strawberry subgraphs on loopback whose answers hypothesis has rewritten at random:

- `perks` (tests/privacy/hostile.py) extends Resident with `loyaltyTier` and names a resident of
  its choosing in `favouriteResident`: it adds keys nobody asked for (the gateway's own
  `_cg_subject`, `_cg_count_*`, `id`, someone's e-mail) at every depth, and lies about whom its
  objects are (the same lie under every key, or different values under different keys);
- `courier` extends Resident with `deliveryNote`, which `@requires` the city's `address` and
  echoes it back in a field it declares non-personal; it tampers the same way.

Each example draws a query (residents, one resident, the partner's favourite, aliases, the
partners' fields), a requester, consents (to the city's clients and to the courier's own app)
and the partners' misbehaviour, then checks: every personal value in the answer is the truth only
where SPEC.md's decision allows it, and is listed where withheld; no resident's personal value
appears anywhere in the answer unless the requester may see it, or the courier received it under
an allowed flow and echoed it; the courier received an address only under an allowed flow; every
such flow is in the audit log (recipient `courier`) for that request. EXAMPLES run in CI,
derandomized.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.privacy import world
from tests.privacy.conftest import CLIENT_KEYS, OPERATOR_KEY, City, connectors_folder, policy_document
from tests.privacy.hostile import COURIER, HostilePartner, objects_in
from tests.privacy.test_property import PERSONAL, RESIDENTS, Asker, _headers, allowed, personal_values, truth
from tests.world.server import WorldServer

EXAMPLES = 80
COURIER_KEY = "ck_courier-app-test-key"
PURPOSES = {
    "city-app": ["service-delivery"],
    "technician-console": ["street-maintenance"],
    "parking-app": ["booking", "marketing"],
    "courier-app": ["service-delivery"],
}


# -- what the partners do -----------------------------------------------------------------------

EMAILS = [r["email"] for r in world.data["residents"].values() if r["email"]]


@st.composite
def misbehaviour(draw) -> dict:
    """How a partner lies this time: extra keys (where), and whom its objects are said to be."""
    extra = draw(
        st.dictionaries(
            st.sampled_from(["_cg_subject", "_cg_count_averageBirthYear", "_cg_1_id", "id", "email", "oracleSubject"]),
            st.one_of(st.sampled_from(RESIDENTS), st.sampled_from(EMAILS), st.integers(0, 99)),
            max_size=3,
        )
    )
    return {
        "extra": extra,
        "everywhere": draw(st.booleans()),
        # rewrite the asked keys naming a resident: the same lie everywhere, or a different one per key
        "rename": draw(st.one_of(st.none(), st.sampled_from(RESIDENTS))),
        "split": draw(st.booleans()),
    }


def tamper(partner: HostilePartner, plan: dict) -> None:
    if plan["extra"]:
        (partner.add_everywhere if plan["everywhere"] else partner.add_to_entities)(**plan["extra"])
    if plan["rename"] is not None:
        lie, split = plan["rename"], plan["split"]

        def rename(_request: dict, answer: dict) -> None:
            for index, obj in enumerate(objects_in(answer.get("data"))):
                for key in ("id", "oracleId", "oracleSubject", "_cg_subject"):
                    if isinstance(obj.get(key), str) and obj[key].startswith("r"):
                        obj[key] = (
                            RESIDENTS[(RESIDENTS.index(lie) + index) % len(RESIDENTS)] if split and key != "id" else lie
                        )

        partner.rewrite(rename)


# -- queries -------------------------------------------------------------------------------------


@st.composite
def resident_fields(draw) -> str:
    parts = ["oracleType: __typename", "oracleId: id", "oracleSubject: id"]
    for alias in draw(
        st.lists(st.sampled_from(["p_name", "p_email", "p_phone", "p_address", "p_birth"]), max_size=3, unique=True)
    ):
        parts.append(f"{alias}: {PERSONAL[alias][0]}")
    parts += draw(
        st.lists(
            st.sampled_from(
                [
                    "loyaltyTier",
                    "deliveryNote",
                    "note: deliveryNote",
                    "bookings { oracleType: __typename oracleId: id oracleSubject: residentId p_plate: plate }",
                ]
            ),
            max_size=3,
            unique=True,
        )
    )
    if draw(st.booleans()):
        parts.append("id")
    return " ".join(parts)


@st.composite
def adversarial_query(draw) -> str:
    roots = []
    for root in draw(
        st.lists(st.sampled_from(["residents", "resident", "favourite"]), min_size=1, max_size=2, unique=True)
    ):
        fields = draw(resident_fields())
        if root == "residents":
            roots.append(f"residents {{ {fields} }}")
        elif root == "resident":
            roots.append(f'resident(id: "{draw(st.sampled_from(RESIDENTS))}") {{ {fields} }}')
        else:
            roots.append(f"favouriteResident {{ {fields} }}")
    return "query Q { " + " ".join(roots) + " }"


askers = st.one_of(
    st.just(Asker(None, None, None)),
    st.sampled_from([(c, p) for c, ps in PURPOSES.items() for p in ps]).map(lambda cp: Asker(cp[0], cp[1], None)),
    st.sampled_from(RESIDENTS).map(lambda r: Asker("city-app", "service-delivery", r)),
)
consents = st.lists(
    st.tuples(
        st.sampled_from(RESIDENTS),
        st.sampled_from([(c, p) for c, ps in PURPOSES.items() for p in ps]),
        st.lists(
            st.sampled_from(
                ["user.contact", "user.contact.address", "user.contact.email", "user.name", "user.unique_id"]
            ),
            min_size=1,
            max_size=2,
            unique=True,
        ),
    ),
    max_size=3,
)


# -- the oracle -----------------------------------------------------------------------------------


def flow_allowed(asker: Asker, subject: str, granted: dict[str, list[dict]]) -> bool:
    """Whether the resident's address may go to the courier for this request (docs/privacy.md, flows)."""
    if asker.resident is not None and asker.resident == subject:
        return True
    return any(
        c["recipient"] == "courier-app"
        and c["purpose"] == asker.purpose
        and any("user.contact.address".startswith(g) for g in c["categories"])
        for c in granted.get(subject, [])
    )


def client_allowed(asker: Asker, subject: str, category: str, granted: dict[str, list[dict]]) -> bool:
    return allowed(asker, subject, category, granted)


# -- the test -------------------------------------------------------------------------------------


@dataclass
class Running:
    city: City
    client: httpx.Client
    database: object
    perks: HostilePartner
    courier: HostilePartner


@pytest.fixture(scope="module")
def running(tmp_path_factory, signer):
    server = WorldServer(world.SUBGRAPHS).start()
    perks, courier = HostilePartner().start(), HostilePartner(COURIER).start()
    directory = tmp_path_factory.mktemp("adversarial")
    world.reset()
    policy = policy_document(signer.jwks_file)
    policy["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    policy["clients"]["courier-app"] = {
        "name": "Courier",
        "purposes": ["service-delivery"],
        "roles": ["courier"],
        "partner": "courier",
        "api_key_sha256": hashlib.sha256(COURIER_KEY.encode()).hexdigest(),
    }
    CLIENT_KEYS.setdefault("courier-app", COURIER_KEY)
    city = City(
        f"sqlite:///{directory / 'city.db'}", connectors_folder(directory / "connectors", server), policy, signer
    )
    client = httpx.Client(base_url=city.server.base_url, timeout=30)
    for name, partner in (("perks", perks), ("courier", courier)):
        created = client.post(
            "/admin/partners", json={"name": name}, headers={"authorization": f"Bearer {OPERATOR_KEY}"}
        ).json()
        registered = client.put(
            f"/admin/connectors/{name}",
            json={"owner": name, "kind": "subgraph", "url": partner.url},
            headers={"authorization": f"Bearer {created['key']}"},
        )
        assert registered.status_code == 200, registered.text
    yield Running(city, client, directory / "city.db", perks, courier)
    client.close()
    city.server.stop()
    for partner in (perks, courier):
        partner.stop()
    server.stop()


def _graphql(run: Running, asker: Asker, text: str, variables: dict | None = None) -> httpx.Response:
    return run.client.post(
        "/graphql", json={"query": text, "variables": variables or {}}, headers=_headers(run.city, asker)
    )


PERSONAL_TEXTS = {  # (subject, category) -> the values of that resident that must never leak whole
    (rid, category): value
    for rid, row in world.data["residents"].items()
    for category, value in (
        ("user.contact.email", row["email"]),
        ("user.contact.phone_number", row["phone"]),
        ("user.contact.address", row["address"]),
        ("user.name", row["name"]),
    )
    if value
}


@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)
@given(
    operation=adversarial_query(),
    asker=askers,
    new_consents=consents,
    perks_plan=misbehaviour(),
    courier_plan=misbehaviour(),
    favourite=st.sampled_from(RESIDENTS),
    withdraw_some=st.booleans(),
)
def test_no_personal_value_reaches_a_client_or_a_partner_without_an_allow(
    running, operation, asker, new_consents, perks_plan, courier_plan, favourite, withdraw_some
):
    run = running
    run.perks.reset()
    run.courier.reset()
    run.perks.favourite = favourite
    granted: dict[str, list[dict]] = {}
    for subject, (recipient, purpose), categories in new_consents:
        answer = _graphql(
            run,
            Asker("city-app", "service-delivery", subject),
            "mutation($r: String!, $p: String!, $c: [String!]!) { grantConsent(recipient: $r, purpose: $p, categories: $c) { consent { id } } }",
            {"r": recipient, "p": purpose, "c": categories},
        ).json()
        assert "errors" not in answer, answer
    for subject in RESIDENTS:
        me = _graphql(
            run,
            Asker("city-app", "service-delivery", subject),
            "{ me { consents(activeOnly: true) { id recipient purpose categories } } }",
        ).json()
        granted[subject] = me["data"]["me"]["consents"]
        if withdraw_some and granted[subject]:
            victim = granted[subject].pop(0)
            _graphql(
                run,
                Asker("city-app", "service-delivery", subject),
                "mutation($id: ID!) { withdrawConsent(consentId: $id) { id } }",
                {"id": victim["id"]},
            )
    tamper(run.perks, perks_plan)
    tamper(run.courier, courier_plan)
    run.courier.requests.clear()

    response = _graphql(run, asker, operation)
    body = response.json()
    assert response.status_code == 200 and "data" in body, body
    text = json.dumps(body, ensure_ascii=False)
    withheld = body.get("extensions", {}).get("privacy", {}).get("withheld", [])

    # 1. each personal value the query selected: the truth exactly where allowed, listed where withheld
    for node, (field, category), value, path in personal_values(body["data"]):
        subject, oracle = node.get("oracleSubject"), node.get("oracleId")
        if subject is None or oracle is None or subject != oracle or oracle not in world.data["residents"]:
            assert value is None or not isinstance(value, str) or value not in PERSONAL_TEXTS.values(), (path, value)
            event("undetermined subject: nothing shown")
            continue
        real = truth(node, field)
        if client_allowed(asker, subject, category, granted):
            event("allowed")
            assert value == real, (path, value)
        elif real is not None:
            event("withheld")
            assert value != real, f"{path}: a personal value reached {asker} without an allow"
            assert any(tuple(w["path"]) == path and "value" not in w for w in withheld), (path, withheld)

    # 2. no resident's value anywhere in the answer (an echo in a partner's field included) unless
    #    the requester may see it, or the courier received it under an allowed flow
    for (subject, category), value in PERSONAL_TEXTS.items():
        if value in text and not client_allowed(asker, subject, category, granted):
            assert category == "user.contact.address" and flow_allowed(asker, subject, granted), (
                subject,
                category,
                asker,
            )
            event("echoed under an allowed flow")

    # 3. the courier received an address only under an allowed flow, and each such flow is audited
    request_id = response.headers["x-request-id"]
    with sqlite3.connect(run.database) as connection:
        rows = connection.execute(
            "SELECT subject, fields FROM audit_log WHERE request_id = ? AND recipient = 'courier'", (request_id,)
        ).fetchall()
    audited = {subject for subject, fields in rows if "Resident.address" in json.loads(fields)}
    received = json.dumps(run.courier.requests, ensure_ascii=False)
    for subject, row in world.data["residents"].items():
        if row["address"] in received:
            event("address sent to the courier")
            assert flow_allowed(asker, subject, granted), (subject, asker)
            assert subject in audited, (subject, rows)
