"""SPEC.md's decision order, step by step, through the gateway."""

from __future__ import annotations

QUERY = '{ resident(id: "r1") { id name email phone district { name } } }'


async def test_the_public_sees_no_personal_value(city):
    answer = await city.ask(QUERY)
    assert answer["data"]["resident"] == {
        "id": "r1",
        "name": None,
        "email": "a***@example.org",
        "phone": "** ** ** ** 78",
        "district": {"name": "Buttes-Montmartre"},
    }
    withheld = answer["extensions"]["privacy"]["withheld"]
    assert {(tuple(w["path"]), w["category"], w["reason"]) for w in withheld} == {
        (("resident", "name"), "user.name", "public-requester"),
        (("resident", "email"), "user.contact.email", "public-requester"),
        (("resident", "phone"), "user.contact.phone_number", "public-requester"),
    }
    assert "amelie" not in str(withheld) and "Amélie" not in str(answer)


async def test_step_1_the_subject_sees_their_own_data(city):
    answer = await city.ask(QUERY, resident="r1")
    assert answer["data"]["resident"]["email"] == "amelie@example.org"
    assert answer["data"]["resident"]["name"] == "Amélie Poulain"
    assert "extensions" not in answer
    other = await city.ask('{ resident(id: "r2") { email } }', resident="r1")
    assert other["data"]["resident"]["email"] == "j***@example.org"


async def test_step_2_a_legal_basis_of_the_policy(city):
    query = "{ incidents { id location { latitude longitude } reporter { name email } } }"
    technician = await city.ask(query, client="technician-console")
    first = technician["data"]["incidents"][0]
    assert first["location"] == {"latitude": 48.88621, "longitude": 2.33412}
    assert first["reporter"] == {"name": "Amélie Poulain", "email": "amelie@example.org"}
    assert "extensions" not in technician
    # the same client for another purpose has no basis; another client with no technician role neither
    city_app = await city.ask(query, client="city-app")
    assert city_app["data"]["incidents"][0]["location"] == {"latitude": 48.89, "longitude": 2.33}  # coarsened
    assert city_app["data"]["incidents"][0]["reporter"] == {"name": None, "email": "a***@example.org"}


async def test_step_3_consent_for_recipient_purpose_and_category(city):
    before = await city.ask(QUERY, client="parking-app", purpose="booking")
    assert before["data"]["resident"]["email"] == "a***@example.org"
    await city.grant("r1", "parking-app", "booking", ["user.contact"])
    after = await city.ask(QUERY, client="parking-app", purpose="booking")
    resident = after["data"]["resident"]
    assert resident["email"] == "amelie@example.org"  # user.contact covers user.contact.email
    assert resident["phone"] == "+33 6 12 34 56 78"
    assert resident["name"] is None  # user.name was not consented
    assert [w["path"] for w in after["extensions"]["privacy"]["withheld"]] == [["resident", "name"]]
    # another purpose of the same client, or another client, does not benefit
    marketing = await city.ask(QUERY, client="parking-app", purpose="marketing")
    assert marketing["data"]["resident"]["email"] == "a***@example.org"
    stats = await city.ask(QUERY, client="stats-portal")
    assert stats["data"]["resident"]["email"] == "a***@example.org"


async def test_step_4_withheld_values_are_listed_never_shown(city):
    answer = await city.ask("{ residents { id email birthDate address } }", client="stats-portal")
    residents = answer["data"]["residents"]
    assert residents[0] == {
        "id": "r1",
        "email": "a***@example.org",
        "birthDate": "1990-05-17",
        "address": "75018 Paris",
    }
    assert residents[3]["email"] is None  # r4 has no e-mail: nothing to withhold, nothing listed
    reasons = {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]}
    assert reasons == {"no-consent"}
    assert not any("example.org" in str(w) for w in answer["extensions"]["privacy"]["withheld"])
    paths = [tuple(w["path"]) for w in answer["extensions"]["privacy"]["withheld"]]
    assert ("residents", 3, "email") not in paths and ("residents", 0, "email") in paths


async def test_interfaces_unions_and_entities_across_subgraphs(city):
    query = """{
      feed {
        __typename
        ... on Incident { id location { latitude } reporter { name bookings { plate amount } } }
        ... on Notice { text }
      }
    }"""
    answer = await city.ask(query, resident="r2")
    feed = answer["data"]["feed"]
    graffiti = next(item for item in feed if item["__typename"] == "Graffiti")
    assert graffiti["location"] == {"latitude": 48.84234}  # r2 reported it: their own
    assert graffiti["reporter"]["bookings"] == [
        {"plate": "EF-456-GH", "amount": 2.0},
        {"plate": "EF-456-GH", "amount": 3.5},
    ]
    pothole = next(item for item in feed if item["id"] == "p1")
    assert pothole["location"] == {"latitude": 48.89}
    assert pothole["reporter"]["bookings"][0]["plate"].startswith("pse_")
    assert pothole["reporter"]["bookings"][0]["amount"] is None
    assert feed[-1] == {"__typename": "Notice", "text": "Street cleaning on Monday"}


async def test_pseudonyms_differ_per_recipient_and_are_stable(city):
    query = '{ resident(id: "r2") { bookings { plate } } }'
    first = await city.ask(query, client="stats-portal")
    again = await city.ask(query, client="stats-portal")
    other = await city.ask(query, client="parking-app", purpose="marketing")
    plates = [b["plate"] for b in first["data"]["resident"]["bookings"]]
    assert plates[0] == plates[1]  # the same plate twice: the same pseudonym (joinable within a recipient)
    assert plates == [b["plate"] for b in again["data"]["resident"]["bookings"]]
    assert plates[0] != other["data"]["resident"]["bookings"][0]["plate"]  # not across recipients


async def test_aggregates_below_k_are_withheld(city):
    answer = await city.ask("{ districts { name averageBirthYear } }")
    by_name = {d["name"]: d["averageBirthYear"] for d in answer["data"]["districts"]}
    assert by_name["Panthéon"] == (1969 + 2001) / 2  # two contributors: k is 2
    assert by_name["Popincourt"] is None and by_name["Buttes-Montmartre"] is None
    assert {w["reason"] for w in answer["extensions"]["privacy"]["withheld"]} == {"below-k"}


async def test_the_subject_is_the_subject_field_however_the_query_names_things(city):
    # The subject is read from the client's own `id` when it selects it as it is, else from a field
    # the gateway adds; a field aliased `id`, or `id` under another key, never passes for it.
    shapes = {
        "as it is": "{ residents { id email } }",
        "not selected": "{ residents { email } }",
        "another field aliased id": "{ residents { id: name email } }",
        "id under another key": "{ residents { who: id email } }",
        "both": "{ residents { who: id id: phone email } }",
    }
    for label, query in shapes.items():
        answer = await city.ask(query, resident="r2")
        emails = [r["email"] for r in answer["data"]["residents"]]
        assert emails == ["a***@example.org", "jean@example.org", "c***@example.org", None], label
