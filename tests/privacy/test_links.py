"""A link is its parent's subject's personal data, through a real gateway over the privacy world.

A field whose type names a subject of its own (`Resident.bookings: [Booking]`) is a link. That a
resident leads to these bookings says something of the resident (that they booked, how often),
whatever the bookings' own fields are: the link is decided for the parent's subject like any other
field, and the objects it leads to are then decided by their own type, each for its own subject.
The privacy world publishes the link (its bookings carry a published residentId); the policy here
makes it personal, as an operator may, and gives the parking partner's app a contract basis for it.
"""

from __future__ import annotations

import pytest
import strawberry
import yaml

from gateway.composition import SubgraphSource, compose
from gateway.privacy import PrivacySchema
from gateway.sdk import privacy
from gateway.supergraph import PersonalField, load_supergraph
from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document
from tests.world.server import WorldServer

LINK_CATEGORY = "user.behavior.purchase_history"
BOOKINGS = '{ resident(id: "%s") { name bookings { id plate amount } } }'


def links_policy(jwks_file) -> dict:
    document = policy_document(jwks_file)
    document["privacy"] = {
        **document["privacy"],
        "fields": {"Resident.bookings": {"category": LINK_CATEGORY}},
    }
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}  # the library partner below, on loopback
    document["legal_bases"].append(
        {
            # a resident's bookings, for the parking partner's own app, to run the bookings
            "name": "parking-bookings-contract",
            "basis": "contract",
            "roles": ["partner"],
            "purposes": ["booking"],
            "categories": ["user.behavior"],
            "sources": ["parking"],
        }
    )
    return document


@pytest.fixture
async def links_city(tmp_path, privacy_world, signer):
    world.reset()
    document = links_policy(signer.jwks_file)
    running = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), document, signer
    )
    running.document = document  # type: ignore[attr-defined]
    yield running
    await running.close()


def _withheld(answer: dict) -> dict[tuple, tuple]:
    return {
        tuple(w["path"]): (w["category"], w["reason"], w["strategy"])
        for w in answer.get("extensions", {}).get("privacy", {}).get("withheld", [])
    }


async def _disclosures(city: City, resident: str) -> list[dict]:
    answer = await city.ask("{ me { disclosures { recipient purpose fields basis } } }", resident=resident)
    assert "errors" not in answer, answer
    return answer["data"]["me"]["disclosures"]


async def test_the_public_gets_a_link_withheld_and_listed_and_nothing_inside_it_decided(links_city):
    answer = await links_city.ask(BOOKINGS % "r2")
    assert answer["data"] == {"resident": {"name": None, "bookings": None}}
    assert _withheld(answer) == {
        ("resident", "name"): ("user.name", "public-requester", "null"),
        ("resident", "bookings"): (LINK_CATEGORY, "public-requester", "null"),
    }  # withheld whole: no booking's plate or amount is listed, nor its count told

    # a resident without bookings: the empty list is withheld too (else it tells who booked)
    none = await links_city.ask('{ resident(id: "r3") { bookings { id } } }')
    assert none["data"] == {"resident": {"bookings": None}}
    assert _withheld(none) == {("resident", "bookings"): (LINK_CATEGORY, "public-requester", "null")}


async def test_the_subject_gets_their_own_link_unaudited(links_city):
    answer = await links_city.ask(BOOKINGS % "r2", resident="r2")
    assert answer["data"]["resident"]["bookings"] == [
        {"id": "b2", "plate": "EF-456-GH", "amount": 2.0},
        {"id": "b3", "plate": "EF-456-GH", "amount": 3.5},
    ]
    assert _withheld(answer) == {}
    assert await _disclosures(links_city, "r2") == []  # the subject's own reading is no disclosure


async def test_a_basis_for_the_links_category_places_it_audited_and_its_objects_are_decided_by_their_type(
    links_city,
):
    answer = await links_city.ask(BOOKINGS % "r2", client="parking-app", purpose="booking")
    bookings = answer["data"]["resident"]["bookings"]
    assert [b["id"] for b in bookings] == ["b2", "b3"]
    # inside the placed link, each booking's fields are decided by Booking's annotations: the
    # amount (user.financial) is not under the basis, the plate (user.unique_id) is pseudonymised
    assert [b["amount"] for b in bookings] == [None, None]
    assert all(b["plate"].startswith("pse_") for b in bookings)
    assert _withheld(answer) == {
        ("resident", "name"): ("user.name", "no-consent", "null"),
        **{("resident", "bookings", i, "amount"): ("user.financial", "no-consent", "null") for i in (0, 1)},
        **{("resident", "bookings", i, "plate"): ("user.unique_id", "no-consent", "pseudonymise") for i in (0, 1)},
    }
    # the same again: this requester's verdicts are kept, the second answer is the same and audited too
    again = await links_city.ask(BOOKINGS % "r2", client="parking-app", purpose="booking")
    assert again["data"] == answer["data"]
    assert (
        await _disclosures(links_city, "r2")
        == [
            {
                "recipient": "parking-app",
                "purpose": "booking",
                "fields": ["Resident.bookings"],
                "basis": ["policy:parking-bookings-contract"],
            }
        ]
        * 2
    )

    # r2 consents to their payments: the amounts come in, under the consent, beside the link's basis
    await links_city.grant("r2", "parking-app", "booking", ["user.financial"])
    consented = await links_city.ask(BOOKINGS % "r2", client="parking-app", purpose="booking")
    assert [b["amount"] for b in consented["data"]["resident"]["bookings"]] == [2.0, 3.5]
    newest = (await _disclosures(links_city, "r2"))[0]
    assert newest["fields"] == ["Booking.amount", "Resident.bookings"]
    assert "policy:parking-bookings-contract" in newest["basis"]
    assert any(basis.startswith("consent:") for basis in newest["basis"])


async def test_a_link_over_many_subjects_is_decided_and_audited_per_subject(links_city):
    answer = await links_city.ask("{ residents { id bookings { id } } }", client="parking-app", purpose="booking")
    residents = list(world.data["residents"])
    assert answer["data"]["residents"] == [
        {"id": r, "bookings": [{"id": b["id"]} for b in world.data["bookings"] if b["resident"] == r]}
        for r in residents
    ]
    assert {"r1", "r2", "r3"} <= set(residents) and not any(b["resident"] == "r3" for b in world.data["bookings"])
    for resident in residents:  # an empty list too: it tells that r3 booked nothing
        assert [d["fields"] for d in await _disclosures(links_city, resident)] == [["Resident.bookings"]]


async def test_a_client_without_basis_or_consent_gets_the_link_withheld_until_the_subject_consents(links_city):
    # the contract basis is for booking, not marketing
    answer = await links_city.ask(BOOKINGS % "r2", client="parking-app", purpose="marketing")
    assert answer["data"]["resident"]["bookings"] is None
    assert _withheld(answer)[("resident", "bookings")] == (LINK_CATEGORY, "no-consent", "null")
    assert not any(path[:2] == ("resident", "bookings") and len(path) > 2 for path in _withheld(answer))

    # r2 consents to their behaviour (which covers purchases) for marketing: r2's link is placed, r1's is not
    grant = await links_city.grant("r2", "parking-app", "marketing", ["user.behavior"])
    both = await links_city.ask(
        '{ r1: resident(id: "r1") { bookings { id } } r2: resident(id: "r2") { bookings { id } } }',
        client="parking-app",
        purpose="marketing",
    )
    assert both["data"] == {"r1": {"bookings": None}, "r2": {"bookings": [{"id": "b2"}, {"id": "b3"}]}}
    assert _withheld(both) == {("r1", "bookings"): (LINK_CATEGORY, "no-consent", "null")}
    assert (await _disclosures(links_city, "r2"))[0]["basis"] == [f"consent:{grant['consent']['id']}"]
    assert await _disclosures(links_city, "r1") == []


async def test_a_link_is_nullable_in_the_api_and_takes_null_only_as_its_mask(links_city):
    fields = links_city.gateway.state.engine.model.api_schema.get_type("Resident").fields
    assert (
        str(fields["bookings"].type) == "[Booking!]"
    )  # the subgraph says [Booking!]!: withholding it must not erase the resident

    # a strategy that cannot mask a list is refused when the policy is applied
    document = dict(links_city.document)
    unfit = {
        **document["privacy"],
        "fields": {"Resident.bookings": {"category": LINK_CATEGORY, "strategy": "pseudonymise"}},
    }
    links_city.policy_path.write_text(yaml.safe_dump({**document, "privacy": unfit}))
    reload = await links_city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert reload.status_code == 422 and "PRIVACY_STRATEGY_UNFIT" in reload.json()["errors"][0]["message"]

    # a category rule reaching the link (user.unique_id: pseudonymise) masks it with null instead
    as_identifier = {**document["privacy"], "fields": {"Resident.bookings": {"category": "user.unique_id"}}}
    links_city.policy_path.write_text(yaml.safe_dump({**document, "privacy": as_identifier}))
    reload = await links_city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert reload.status_code == 200, reload.text
    answer = await links_city.ask('{ resident(id: "r2") { bookings { id } } }')
    assert answer["data"] == {"resident": {"bookings": None}}
    assert _withheld(answer) == {("resident", "bookings"): ("user.unique_id", "public-requester", "null")}


ERRANDS = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@nonPersonal"])
  @composeDirective(name: "@personal") @composeDirective(name: "@subject") @composeDirective(name: "@nonPersonal")
directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @nonPersonal on FIELD_DEFINITION
type Query { errands: [Errand] helpers: [Helper] }
type Helper @key(fields: "id") @subject(field: "id") { id: ID! @nonPersonal errands: [Errand!]! }
type Errand @key(fields: "id") @subject(field: "posterId") {
  id: ID! @nonPersonal
  posterId: ID!
  helper: Helper
  backup: Helper @nonPersonal
  poster: Helper @personal(category: "user.unique_id")
}
"""


def test_an_unannotated_link_is_its_parents_subjects_data_with_the_generic_category():
    result = compose([SubgraphSource("errands", ERRANDS)])
    assert result.ok, result.errors
    privacy = PrivacySchema(load_supergraph(result.supergraph))  # type: ignore[arg-type]
    assert privacy.view.is_link("Helper") and privacy.view.is_link("Errand")
    assert privacy.personal("Errand", "helper") == PersonalField("user", None, frozenset({"null"}))
    assert privacy.personal("Helper", "errands") == PersonalField("user", None, frozenset({"null"}))
    assert privacy.personal("Errand", "backup") is None  # its owner says it is not personal
    assert privacy.personal("Errand", "poster") == PersonalField("user.unique_id", None, frozenset({"null"}))


# A partner, `library`, adds to the city's Resident the books each resident borrowed, and leaves
# that link unannotated: a resident's loans are then that resident's data, with the generic category
LOANS = [{"title": "Les Misérables", "borrower": "r1"}, {"title": "Nadja", "borrower": "r2"}]


@strawberry.type(directives=[privacy.Subject(field="borrowerId")])
class Loan:
    title: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    borrower_id: strawberry.ID


@strawberry.federation.type(keys=["id"], name="Resident", extend=True)
class Borrower:
    id: strawberry.ID

    @strawberry.field
    def loans(self) -> list[Loan]:
        return [
            Loan(title=x["title"], borrower_id=strawberry.ID(x["borrower"])) for x in LOANS if x["borrower"] == self.id
        ]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Borrower:
        return cls(id=id)


@strawberry.type
class LibraryQuery:
    @strawberry.field
    def books(self) -> list[str]:
        return sorted(x["title"] for x in LOANS)


@pytest.fixture(scope="module")
def library():
    server = WorldServer(
        {"library": strawberry.federation.Schema(query=LibraryQuery, types=[Borrower, Loan], federation_version="2.5")}
    ).start()
    yield server
    server.stop()


async def test_an_unannotated_link_a_partner_adds_is_withheld_from_the_public_and_given_to_its_subject(
    links_city, library
):
    registered = await links_city.client.put(
        "/admin/connectors/library",
        json={"owner": "library", "kind": "subgraph", "url": library.url("library")},
        headers={"authorization": f"Bearer {OPERATOR_KEY}"},
    )
    assert registered.status_code == 200, registered.text
    query = '{ resident(id: "r2") { loans { title } } }'
    public = await links_city.ask(query)
    assert public["data"] == {"resident": {"loans": None}}  # though each loan's title is @nonPersonal
    assert _withheld(public) == {("resident", "loans"): ("user", "public-requester", "null")}
    own = await links_city.ask(query, resident="r2")
    assert own["data"] == {"resident": {"loans": [{"title": "Nadja"}]}} and _withheld(own) == {}
    # the contract basis covers user.behavior, not the generic category: withheld from the partner's app
    partner = await links_city.ask(query, client="parking-app", purpose="booking")
    assert _withheld(partner) == {("resident", "loans"): ("user", "no-consent", "null")}
