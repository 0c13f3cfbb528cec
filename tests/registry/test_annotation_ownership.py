"""Only the owner of a coordinate annotates it: partners re-declaring the city's annotations are
refused (PRIVACY_ANNOTATION_NOT_OWNED), the running supergraph and its decisions stay as they were.

The city (people and reports, owner `city`, and parking, owner `parking`: tests/privacy/world.py)
runs behind a real gateway; a hostile partner, `rogue`, registers real Strawberry subgraphs over
loopback with its own partner key, each re-annotating what the city owns in another way.
"""

from __future__ import annotations

import httpx
import pytest
import strawberry

from gateway.http import GatewayState
from gateway.registry import Registry, RegistryError
from gateway.sdk import privacy
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document, privacy_world, signer  # noqa: F401
from tests.registry.conftest import LOOPBACK
from tests.world.server import WorldServer

# -- the rogue partner's subgraphs ------------------------------------------------------------------


@strawberry.federation.type(keys=["id"], name="Resident", directives=[privacy.Subject(field="alias")])
class AliasedResident:
    """Names itself the subject of the city's Resident: `alias`, the attacker (r2) for everyone."""

    id: strawberry.ID
    alias: strawberry.ID

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> AliasedResident:
        return cls(id=id, alias=strawberry.ID("r2"))


@strawberry.type
class AliasQuery:
    @strawberry.field
    def alias_version(self) -> int:
        return 1


@strawberry.federation.type(keys=["id"], name="Resident", extend=True)
class ReannotatedResident:
    """Re-annotates the city's fields through @external, with categories a consent or a legal basis
    already covers (r1's consent to parking-app for user.financial; the technicians' basis for user.name)."""

    id: strawberry.ID
    email: str | None = strawberry.federation.field(
        external=True, directives=[privacy.Personal(category="user.financial")]
    )
    birth_date: str | None = strawberry.federation.field(
        external=True, directives=[privacy.Personal(category="user.name")]
    )

    @strawberry.federation.field(requires=["email birthDate"])
    def greeting(self) -> str | None:
        return "hello"


@strawberry.type
class ReannotatedQuery:
    @strawberry.field
    def rogue_version(self) -> int:
        return 1


@strawberry.interface(directives=[privacy.Subject(field="id")])
class Contact:
    """An interface of the rogue's, with a subject and a category, that the city's Resident implements."""

    id: strawberry.ID
    phone: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.financial")])


@strawberry.federation.type(keys=["id"], name="Resident")
class ContactResident(Contact):
    phone: str | None = strawberry.federation.field(external=True)


@strawberry.type
class ContactQuery:
    @strawberry.field
    def contacts(self) -> list[Contact]:
        return []


@strawberry.federation.type(keys=["code"], name="District", directives=[privacy.Subject(field="mayorId")])
class MayoralDistrict:
    """Gives the city's districts (no subject: open data) a subject of the rogue's."""

    code: str
    mayor_id: strawberry.ID


@strawberry.type
class MayorQuery:
    @strawberry.field
    def mayors(self) -> list[MayoralDistrict]:
        return []


@strawberry.type(directives=[privacy.Subject(field="holderId")])
class Card:
    holder_id: strawberry.ID
    points: int | None = strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])


@strawberry.federation.type(keys=["id"], name="Resident")
class LoyalResident:
    """What a partner may do: add its own fields to the city's Resident and annotate them; those it
    leaves unannotated are personal data of the city's subject (default private)."""

    id: strawberry.ID
    tier: str | None = strawberry.federation.field(directives=[privacy.Personal(category="user.behavior")])
    nickname: str | None

    @strawberry.field
    def cards(self) -> list[Card]:
        return [Card(holder_id=self.id, points=12)]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> LoyalResident:
        return cls(id=id, tier="gold", nickname="Goldie")


@strawberry.type
class LoyaltyQuery:
    @strawberry.field
    def loyalty_version(self) -> int:
        return 1


ROGUE = {
    "alias": strawberry.federation.Schema(query=AliasQuery, types=[AliasedResident], federation_version="2.5"),
    "reannotated": strawberry.federation.Schema(
        query=ReannotatedQuery, types=[ReannotatedResident], federation_version="2.5"
    ),
    "contact": strawberry.federation.Schema(query=ContactQuery, types=[ContactResident], federation_version="2.5"),
    "mayor": strawberry.federation.Schema(query=MayorQuery, types=[MayoralDistrict], federation_version="2.5"),
    "loyalty": strawberry.federation.Schema(query=LoyaltyQuery, types=[LoyalResident], federation_version="2.5"),
}

# @nonPersonal on the city's e-mail, through @external (pinned SDL: served by the rogue's server)
NON_PERSONAL_SDL = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@external", "@requires", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@nonPersonal"])
  @composeDirective(name: "@nonPersonal")
directive @nonPersonal on FIELD_DEFINITION
type Query { digestVersion: Int }
type Resident @key(fields: "id") { id: ID! email: String @external @nonPersonal digest: String @requires(fields: "email") }
"""


@pytest.fixture(scope="module")
def rogue():
    server = WorldServer(ROGUE).start()
    yield server
    server.stop()


@pytest.fixture
async def city(tmp_path, privacy_world, signer):  # noqa: F811
    from tests.privacy import world

    world.reset()
    document = policy_document(signer.jwks_file)
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    running = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), document, signer
    )
    yield running
    await running.close()


async def _partner_key(city: City, name: str = "rogue") -> str:
    created = await city.client.post(
        "/admin/partners", json={"name": name}, headers={"authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert created.status_code == 201, created.text
    return created.json()["key"]


async def _register(city: City, key: str, name: str, url: str, **extra) -> httpx.Response:
    return await city.client.put(
        f"/admin/connectors/{name}",
        json={"owner": "rogue", "kind": "subgraph", "url": url, **extra},
        headers={"authorization": f"Bearer {key}"},
    )


async def _supergraph(city: City) -> str:
    return (await city.client.get("/admin/supergraph", headers={"authorization": f"Bearer {OPERATOR_KEY}"})).text


def _not_owned(response: httpx.Response) -> set[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return {
        (e["coordinate"], e["owner"]) for e in response.json()["errors"] if e["code"] == "PRIVACY_ANNOTATION_NOT_OWNED"
    }


async def test_a_partner_may_not_name_the_subject_of_the_citys_resident(city, rogue):
    key = await _partner_key(city)
    before, engine = await _supergraph(city), city.gateway.state.engine
    response = await _register(city, key, "rogue", rogue.url("alias"))
    assert _not_owned(response) == {("Resident", "city")}
    assert await _supergraph(city) == before and city.gateway.state.engine is engine
    # r2 reading r1's e-mail is not "self", whatever the rogue's alias says
    answer = await city.ask('{ resident(id: "r1") { email } }', resident="r2")
    assert answer["data"]["resident"]["email"] == "a***@example.org"


async def test_a_partner_may_not_re_annotate_the_citys_fields_through_external(city, rogue):
    await city.grant("r1", "parking-app", "booking", ["user.financial"])  # for parking's own data (bookings)
    key = await _partner_key(city)
    before, engine = await _supergraph(city), city.gateway.state.engine
    response = await _register(city, key, "rogue", rogue.url("reannotated"))
    assert _not_owned(response) == {("Resident.email", "city"), ("Resident.birthDate", "city")}
    assert await _supergraph(city) == before and city.gateway.state.engine is engine
    parking = await city.ask('{ resident(id: "r1") { email } }', client="parking-app", purpose="booking")
    assert parking["data"]["resident"]["email"] == "a***@example.org"
    assert parking["extensions"]["privacy"]["withheld"][0]["category"] == "user.contact.email"
    technician = await city.ask('{ resident(id: "r1") { birthDate } }', client="technician-console")
    assert technician["data"]["resident"]["birthDate"] == "1990-05-17"  # coarsened: no basis covers a birth date


async def test_a_partners_interface_may_not_annotate_the_citys_type_implementing_it(city, rogue):
    key = await _partner_key(city)
    before = await _supergraph(city)
    response = await _register(city, key, "rogue", rogue.url("contact"))
    assert _not_owned(response) == {("Contact", "city"), ("Contact.phone", "city")}
    assert await _supergraph(city) == before
    answer = await city.ask('{ resident(id: "r1") { phone } }', client="parking-app", purpose="booking")
    assert answer["data"]["resident"]["phone"] == "** ** ** ** 78"


async def test_a_partner_may_not_declare_the_citys_field_non_personal(city, rogue):
    key = await _partner_key(city)
    before = await _supergraph(city)
    response = await _register(city, key, "rogue", rogue.url("reannotated"), sdl=NON_PERSONAL_SDL)
    assert _not_owned(response) == {("Resident.email", "city")}
    assert await _supergraph(city) == before
    answer = await city.ask('{ resident(id: "r1") { email } }')
    assert answer["data"]["resident"]["email"] == "a***@example.org"
    assert answer["extensions"]["privacy"]["withheld"][0]["reason"] == "public-requester"


async def test_a_partner_may_not_give_the_citys_open_data_a_subject(city, rogue):
    key = await _partner_key(city)
    response = await _register(city, key, "rogue", rogue.url("mayor"))
    assert _not_owned(response) == {("District", "city")}
    answer = await city.ask("{ districts { name } }")
    assert "extensions" not in answer and answer["data"]["districts"][0]["name"] == "Panthéon"


async def test_a_partner_annotates_what_it_adds_to_the_citys_types(city, rogue):
    key = await _partner_key(city)
    response = await _register(city, key, "rogue", rogue.url("loyalty"))
    assert response.status_code == 200, response.text
    public = await city.ask('{ resident(id: "r1") { tier nickname cards { points } } }')
    # unannotated, the partner's link to the resident's cards is the resident's data too: withheld whole
    assert public["data"]["resident"] == {"tier": None, "nickname": None, "cards": None}
    withheld_paths = [w["path"] for w in public["extensions"]["privacy"]["withheld"]]
    assert ["resident", "nickname"] in withheld_paths and ["resident", "cards"] in withheld_paths
    own = await city.ask('{ resident(id: "r1") { tier nickname cards { points } } }', resident="r1")
    assert own["data"]["resident"] == {"tier": "gold", "nickname": "Goldie", "cards": [{"points": 12}]}


async def test_the_folders_connectors_are_held_to_the_same_rules_at_start(tmp_path, privacy_world, rogue):  # noqa: F811
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    (folder / "rogue").mkdir()
    (folder / "rogue" / "manifest.yaml").write_text(
        f"name: rogue\nowner: rogue\nkind: subgraph\nurl: {rogue.url('reannotated')}\n"
    )
    async with httpx.AsyncClient() as client:
        registry = Registry(GatewayState(None), store=None, policy=LOOPBACK.registry, http_client=client, folder=folder)
        with pytest.raises(RegistryError, match="PRIVACY_ANNOTATION_NOT_OWNED") as failure:
            await registry.start()
    assert "Resident.email" in str(failure.value) and "Resident.birthDate" in str(failure.value)
