"""Default private, and masking strategies that fit their field, through a real gateway.

A partner, `jobs`, registers a real Strawberry subgraph over loopback: jobs residents post, with
a subject (the poster), fields it declares non-personal, a field it leaves unannotated, and the
poster both as an identifier and as a linked Resident object.
"""

from __future__ import annotations

import json

import httpx
import pytest
import strawberry
import yaml

from gateway.sdk import privacy
from tests.privacy import world
from tests.privacy.conftest import OPERATOR_KEY, City, connectors_folder, policy_document
from tests.world.server import WorldServer

JOBS = [
    {"id": "j1", "title": "Water my plants", "poster": "r1", "note": "Away until Sunday, key under the mat"},
    {"id": "j2", "title": "Walk my dog", "poster": "r2", "note": "He bites strangers"},
]


@strawberry.federation.type(keys=["id"], name="Resident", extend=True)
class Poster:
    id: strawberry.ID


@strawberry.federation.type(keys=["id"], directives=[privacy.Subject(field="posterId")])
class Job:
    id: strawberry.ID = strawberry.federation.field(directives=[privacy.NonPersonal()])
    title: str = strawberry.federation.field(directives=[privacy.NonPersonal()])
    poster_id: strawberry.ID  # the subject field: names the poster, personal by default
    note: str | None  # no annotation: personal data of the poster (generic category)

    @strawberry.federation.field(directives=[privacy.Personal(category="user.unique_id")])
    def poster(self) -> Poster | None:
        return Poster(id=self.poster_id)


@strawberry.type
class JobsQuery:
    @strawberry.field
    def jobs(self) -> list[Job]:
        return [
            Job(id=strawberry.ID(j["id"]), title=j["title"], poster_id=strawberry.ID(j["poster"]), note=j["note"])
            for j in JOBS
        ]


JOBS_SCHEMA = strawberry.federation.Schema(query=JobsQuery, types=[Job, Poster], federation_version="2.5")

_HEAD = """extend schema
  @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@composeDirective"])
  @link(url: "https://citygate.dev/privacy/v0.1", import: ["@personal", "@subject", "@nonPersonal"])
  @composeDirective(name: "@personal") @composeDirective(name: "@subject") @composeDirective(name: "@nonPersonal")
directive @personal(category: String!, strategy: String) on FIELD_DEFINITION
directive @subject(field: String!) on OBJECT | INTERFACE
directive @nonPersonal on FIELD_DEFINITION
"""
UNANNOTATED = (
    _HEAD
    + """type Query { errands: [Errand] }
type Errand @key(fields: "id") { id: ID! @nonPersonal homeAddress: String takerId: ID what: String @nonPersonal }
"""
)
PSEUDONYMISED_OBJECT = (
    _HEAD
    + """type Query { errands: [Errand] }
type Resident @key(fields: "id", resolvable: false) { id: ID! }
type Errand @key(fields: "id") @subject(field: "posterId") {
  id: ID! @nonPersonal posterId: ID! poster: Resident @personal(category: "user.unique_id", strategy: "pseudonymise")
}
"""
)


@pytest.fixture(scope="module")
def partner():
    server = WorldServer({"jobs": JOBS_SCHEMA}).start()
    yield server
    server.stop()


@pytest.fixture
async def city(tmp_path, privacy_world, signer):
    world.reset()
    document = policy_document(signer.jwks_file)
    document["registry"] = {"allow_upstreams": ["127.0.0.0/8"]}
    running = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), document, signer
    )
    running.document = document  # type: ignore[attr-defined]
    yield running
    await running.close()


async def _register(city: City, name: str, url: str, **extra) -> httpx.Response:
    return await city.client.put(
        f"/admin/connectors/{name}",
        json={"owner": "jobs", "kind": "subgraph", "url": url, **extra},
        headers={"authorization": f"Bearer {OPERATOR_KEY}"},
    )


@pytest.fixture
async def jobs_city(city, partner):
    response = await _register(city, "jobs", partner.url("jobs"))
    assert response.status_code == 200, response.text
    return city


def _withheld(answer: dict) -> dict[tuple, tuple]:
    return {
        tuple(w["path"]): (w["category"], w["reason"], w["strategy"])
        for w in answer.get("extensions", {}).get("privacy", {}).get("withheld", [])
    }


async def test_an_unannotated_field_of_a_type_with_a_subject_is_personal(jobs_city):
    public = await jobs_city.ask("{ jobs { title note } }")
    assert public["data"]["jobs"] == [
        {"title": "Water my plants", "note": None},
        {"title": "Walk my dog", "note": None},
    ]  # @nonPersonal: served
    assert _withheld(public) == {
        ("jobs", 0, "note"): ("user", "public-requester", "null"),
        ("jobs", 1, "note"): ("user", "public-requester", "null"),
    }

    unconsented = await jobs_city.ask("{ jobs { title note } }", client="parking-app", purpose="booking")
    assert [j["note"] for j in unconsented["data"]["jobs"]] == [None, None]
    assert {reason for _, reason, _ in _withheld(unconsented).values()} == {"no-consent"}

    await jobs_city.grant("r1", "parking-app", "booking", ["user"])  # the generic category: everything of r1's
    consented = await jobs_city.ask("{ jobs { title note } }", client="parking-app", purpose="booking")
    assert [j["note"] for j in consented["data"]["jobs"]] == ["Away until Sunday, key under the mat", None]  # r1's only
    mine = await jobs_city.ask("{ me { disclosures { recipient fields } } }", resident="r1")
    assert {"recipient": "parking-app", "fields": ["Job.note"]} in mine["data"]["me"]["disclosures"]


async def test_an_identifier_naming_the_subject_is_personal(jobs_city):
    public = await jobs_city.ask("{ jobs { title posterId } }")
    pseudonyms = [j["posterId"] for j in public["data"]["jobs"]]  # the policy pseudonymises user.unique_id
    # no raw id anywhere in the answer (as a JSON string: a pseudonym may contain "r1" by chance)
    assert (
        all(p.startswith("pse_") for p in pseudonyms)
        and '"r1"' not in json.dumps(public)
        and '"r2"' not in json.dumps(public)
    )
    assert _withheld(public)[("jobs", 0, "posterId")] == ("user.unique_id", "public-requester", "pseudonymise")
    partner = await jobs_city.ask("{ jobs { posterId } }", client="parking-app", purpose="booking")
    assert [j["posterId"] for j in partner["data"]["jobs"]] != pseudonyms and '"r1"' not in json.dumps(
        partner
    )  # keyed per recipient
    # nullable in the API, since it may be withheld; the key keeps its type
    fields = {
        name: str(f.type) for name, f in jobs_city.gateway.state.engine.model.api_schema.get_type("Job").fields.items()
    }
    assert fields["posterId"] == "ID" and fields["id"] == "ID!"


async def test_a_category_rule_reaching_an_object_field_masks_it_with_null_and_nothing_inside_is_audited(jobs_city):
    # r1 lets parking-app read their contact details; the poster link itself (user.unique_id) is not
    # consented, and the policy's rule for user.unique_id, pseudonymise, cannot take an object
    await jobs_city.grant("r1", "parking-app", "booking", ["user.contact"])
    answer = await jobs_city.ask("{ jobs { title poster { email } } }", client="parking-app", purpose="booking")
    assert [j["poster"] for j in answer["data"]["jobs"]] == [None, None]  # never a string where an object goes
    assert _withheld(answer)[("jobs", 0, "poster")] == ("user.unique_id", "no-consent", "null")
    mine = await jobs_city.ask("{ me { disclosures { recipient fields } } }", resident="r1")
    assert not any(
        "Resident.email" in d["fields"] for d in mine["data"]["me"]["disclosures"]
    )  # not disclosed: not audited


async def test_registration_refuses_a_likely_personal_field_without_an_annotation(city, partner):
    response = await _register(city, "errands", partner.url("jobs"), sdl=UNANNOTATED)
    assert response.status_code == 422, response.text
    missing = {e["coordinate"] for e in response.json()["errors"] if e["code"] == "PRIVACY_ANNOTATION_MISSING"}
    assert missing == {"Errand.homeAddress", "Errand.takerId"}
    declared = UNANNOTATED.replace("homeAddress: String", "homeAddress: String @nonPersonal").replace(
        "takerId: ID", "takerId: ID @nonPersonal"
    )
    assert (await _register(city, "errands", partner.url("jobs"), sdl=declared)).status_code == 200


async def test_pseudonymise_on_an_object_field_is_refused(city, partner):
    response = await _register(city, "errands", partner.url("jobs"), sdl=PSEUDONYMISED_OBJECT)
    assert response.status_code == 422, response.text
    assert [(e["code"], "Errand.poster" in e["message"]) for e in response.json()["errors"]] == [
        ("PRIVACY_STRATEGY_UNFIT", True)
    ]

    # the same strategy, declared in the policy for the city's location object: the policy is refused
    document = dict(city.document)
    document["privacy"] = {
        **document.get("privacy", {}),
        "fields": {"Incident.location": {"category": "user.location.precise", "strategy": "pseudonymise"}},
    }
    city.policy_path.write_text(yaml.safe_dump(document))
    reload = await city.client.post("/admin/policy/reload", headers={"authorization": f"Bearer {OPERATOR_KEY}"})
    assert reload.status_code == 422 and "PRIVACY_STRATEGY_UNFIT" in reload.json()["errors"][0]["message"]
    still = await city.ask("{ incidents { location { latitude } } }", client="city-app")
    assert still["data"]["incidents"][0]["location"] == {"latitude": 48.89}  # coarsened, as before
