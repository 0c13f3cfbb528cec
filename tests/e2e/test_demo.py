"""`citygate demo`, the command behind `make demo`, as a real process: the README's examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.readme import examples, headers
from tests.e2e.test_serve import wait_until_ready
from tests.world.server import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    assets = ROOT / ".citygate" / "graphiql"
    if assets.is_dir():  # GraphiQL's files, fetched by make (the browser test needs them)
        (directory / ".citygate").mkdir()
        (directory / ".citygate" / "graphiql").symlink_to(assets)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port), "--connectors", str(ROOT / "connectors")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=directory,  # the demo keeps its store and credentials under ./.citygate
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", process, seconds=60)
        credentials = json.loads((directory / ".citygate" / "demo-credentials.json").read_text())
        yield f"http://127.0.0.1:{port}", credentials, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(demo, name: str, variables: dict | None = None) -> dict:
    url, credentials, _ = demo
    example = examples()[name]
    response = httpx.post(
        f"{url}/graphql",
        json={"query": example.query, "variables": variables or {}},
        headers=headers(example, credentials),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_readme_examples_run_against_the_demo(demo):
    district = run(demo, "district")["data"]["district"]
    assert district["name"] == "Buttes-Montmartre" and district["population"] == 185825
    # 160 residents, at least the policy's min_contributors (100): released with Laplace noise of
    # scale 110 / 100 / 0.5 = 2.2 years around the exact 58.1, below 18 with a chance of
    # 0.5 * exp(-40.1 / 2.2) = 6e-9 (calibrated over k = 10, scale 22, it was 8%)
    assert district["averageAge"] > 18
    assert district["waterQuality"]["compliant"] is True
    assert district["openJobs"] and district["dinners"] and 0 <= district["parkingOccupancy"] <= 1

    me = run(demo, "me")
    assert me["data"]["me"]["residentId"] == "r0001"
    assert me["data"]["me"]["consents"][0]["recipient"] == "parkr-app"
    resident = me["data"]["resident"]
    assert "@" in resident["email"] and "*" not in resident["email"]  # their own data, unmasked
    assert resident["parkingBookings"] and resident["jobsPosted"] and resident["dinnerReservations"]
    assert me["extensions"] == {"cost": {"estimated": 52}}  # the demo runs in development mode: no privacy extension

    technician = run(demo, "technician")["data"]["streetIssues"]
    assert len(technician) == 3 and all(issue["reporter"]["name"] for issue in technician)


def test_consent_granted_disclosed_withdrawn_withheld(demo):
    before = run(demo, "parkr-before")
    email_masked = before["data"]["resident"]["email"]
    assert "***@" in email_masked
    assert {w["reason"] for w in before["extensions"]["privacy"]["withheld"]} == {"no-consent"}

    granted = run(demo, "grant")["data"]["grantConsent"]
    assert granted["consent"]["active"] is True
    assert (
        granted["receipt"]["piiPrincipalId"] == "r0003"
        and granted["receipt"]["services"][0]["purposes"][0]["purpose"] == "booking"
    )

    after = run(demo, "parkr-after")
    email = after["data"]["resident"]["email"]
    assert "*" not in email and email.split("@")[1] == email_masked.split("@")[1]
    assert after["extensions"] == {"cost": {"estimated": 1}}  # nothing withheld

    withdrawn = run(demo, "withdraw", {"id": granted["consent"]["id"]})["data"]["withdrawConsent"]
    assert withdrawn["active"] is False and withdrawn["withdrawnAt"]

    again = run(demo, "parkr-withdrawn")
    assert again["data"]["resident"]["email"] == email_masked
    assert {w["reason"] for w in again["extensions"]["privacy"]["withheld"]} == {"no-consent"}


def test_the_demo_has_two_thousand_residents_and_no_secret_on_disk_in_the_repository(demo):
    url, credentials, _ = demo
    answer = httpx.post(
        f"{url}/graphql",
        json={"query": '{ a: resident(id: "r2000") { id } b: resident(id: "r2001") { id } }'},
        timeout=30,
    ).json()
    # r2000 exists, r2001 does not; a resident's id is their personal data: withheld from the public
    assert answer["data"] == {"a": {"id": None}, "b": None}
    assert answer["extensions"]["privacy"]["withheld"] == [
        {"path": ["a", "id"], "category": "user.unique_id", "reason": "public-requester", "strategy": "null"}
    ]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "demo-credentials" not in tracked and "demo-jwks" not in tracked
    assert credentials["operator_key"] not in (ROOT / "README.md").read_text()


def _bikes_data() -> dict:
    """What Cyclo's REST API (connectors/bikes/api.py) holds: the same seed, read here directly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_bikes_api", ROOT / "connectors" / "bikes" / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DATA


def test_the_rest_partner_joins_the_citys_districts_under_the_same_privacy_rules(demo):
    url, credentials, _ = demo
    data = _bikes_data()

    def ask(query: str, headers: dict | None = None) -> dict:
        response = httpx.post(f"{url}/graphql", json={"query": query}, headers=headers or {}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    # open data: the city's district (in-process) joined with the stations of Cyclo's REST API
    district = ask(
        '{ district(code: "75118") { name population bikeStations { id name mechanicalBikes electricBikes } } }'
    )
    assert "errors" not in district, district
    district = district["data"]["district"]
    assert district["name"] == "Buttes-Montmartre" and district["population"] == 185825
    expected = [s for s in data["stations"].values() if s["district"] == "75118"]
    assert district["bikeStations"] == [
        {
            "id": s["id"],
            "name": s["name"],
            "mechanicalBikes": s["bikes"]["mechanical"],
            "electricBikes": s["bikes"]["electric"],
        }
        for s in expected
    ]

    # a resident's rides, as Cyclo's app sees them: what r0001 consented to, never the price
    rides_query = '{ resident(id: "r0001") { bikeRentals { id startedAt minutes priceCents fromStation { name } } } }'
    rentals = sorted(
        (r for r in data["rentals"].values() if r["resident_id"] == "r0001"),
        key=lambda r: r["started_at"],
        reverse=True,
    )
    cyclo = ask(rides_query, {"x-api-key": credentials["clients"]["cyclo-app"], "x-citygate-purpose": "bike-sharing"})
    assert cyclo["data"]["resident"]["bikeRentals"] == [
        {
            "id": r["id"],
            "startedAt": r["started_at"],
            "minutes": r["duration_min"],
            "priceCents": None,
            "fromStation": {"name": data["stations"][r["from_station"]]["name"]},
        }
        for r in rentals
    ]
    assert {(w["category"], w["reason"]) for w in cyclo["extensions"]["privacy"]["withheld"]} == {
        ("user.financial", "no-consent")
    }
    # the public: not even the resident's id goes to Cyclo to ask (a flow to a partner is a disclosure)
    public = ask(rides_query)
    assert public["data"] == {"resident": {"bikeRentals": None}}
    assert public["extensions"]["privacy"]["withheld"] == [
        {
            "path": ["resident", "bikeRentals"],
            "category": "user.unique_id",
            "reason": "no-consent",
            "strategy": "null",
            "recipient": "cyclo",
        }
    ]
    # the rider: everything
    own = ask(rides_query, {"authorization": f"Bearer {credentials['residents']['r0001']}"})
    assert [r["priceCents"] for r in own["data"]["resident"]["bikeRentals"]] == [r["price_cents"] for r in rentals]


def _partner_api(name: str):
    """A demo partner's REST API (connectors/NAME/api.py) as a module: its data, read here directly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"demo_{name}_api", ROOT / "connectors" / name / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_voisinage_and_table_dhote_answer_from_their_rest_apis_under_the_same_privacy_rules(demo):
    url, credentials, _ = demo
    jobs, ratings = _partner_api("neighbourhood").DATA["jobs"], _partner_api("neighbourhood").DATA["ratings"]
    dining = _partner_api("dining").DATA
    dinners, reservations = dining["dinners"], dining["reservations"]

    def ask(query: str, headers: dict | None = None) -> dict:
        response = httpx.post(f"{url}/graphql", json={"query": query}, headers=headers or {}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def seats_left(dinner_id: str) -> int:
        return max(
            0, dinners[dinner_id]["seats"] - sum(r["seats"] for r in reservations.values() if r["dinner"] == dinner_id)
        )

    # open data: what a listing shows, joined to the city's district; who posted or hosts it is withheld
    public = ask(
        '{ district(code: "75118") { name openJobs { title reward posterId } averageJobReward'
        " dinners { title pricePerSeat seatsLeft hostId } averageDinnerPrice } }"
    )
    district = public["data"]["district"]
    assert district["name"] == "Buttes-Montmartre"
    open_jobs = [j for j in jobs.values() if j["district"] == "75118" and j["status"] == "OPEN"]
    assert district["openJobs"] == [{"title": j["title"], "reward": j["reward"], "posterId": None} for j in open_jobs]
    rewards = [j["reward"] for j in jobs.values() if j["district"] == "75118"]
    assert district["averageJobReward"] == round(sum(rewards) / len(rewards), 2)
    hosted_here = [i for i, d in dinners.items() if d["district"] == "75118"]
    assert district["dinners"] == [
        {"title": dinners[i]["title"], "pricePerSeat": dinners[i]["price"], "seatsLeft": seats_left(i), "hostId": None}
        for i in hosted_here
    ]
    prices = [dinners[i]["price"] for i in hosted_here]
    assert district["averageDinnerPrice"] == round(sum(prices) / len(prices), 2)
    assert {(w["category"], w["reason"]) for w in public["extensions"]["privacy"]["withheld"]} == {
        ("user.unique_id", "public-requester")
    }

    # the resident, signed in: their jobs, ratings and reservations, each dinner
    # fetched from Table d'hôte's API by id ($batch)
    own = ask(
        '{ resident(id: "r0001") { jobsPosted { id title assignment { takerId } } ratings { jobId score }'
        " dinnerReservations { id seats amountPaid dinner { id title date } } } }",
        {"authorization": f"Bearer {credentials['residents']['r0001']}"},
    )
    assert "errors" not in own, own
    resident = own["data"]["resident"]
    # who took r0001's job is the taker's (r0002's) personal data: r0001 sees it was taken, not by whom
    assert resident["jobsPosted"] == [
        {"id": i, "title": j["title"], "assignment": {"takerId": None} if j["taker"] else None}
        for i, j in jobs.items()
        if j["poster"] == "r0001"
    ]
    assert resident["jobsPosted"][0]["assignment"] == {"takerId": None}
    assert resident["ratings"] == [
        {"jobId": r["job"], "score": r["score"]} for r in ratings.values() if r["ratee"] == "r0001"
    ]
    # a dinner's id and date are its host's personal data: the guest sees the dinner's title only
    assert resident["dinnerReservations"] == [
        {
            "id": i,
            "seats": r["seats"],
            "amountPaid": dinners[r["dinner"]]["price"] * r["seats"],
            "dinner": {"id": None, "title": dinners[r["dinner"]]["title"], "date": None},
        }
        for i, r in reservations.items()
        if r["guest"] == "r0001"
    ]
    assert {(tuple(w["path"]), w["reason"]) for w in own["extensions"]["privacy"]["withheld"]} == {
        (("resident", "jobsPosted", 0, "assignment", "takerId"), "no-consent"),
        (("resident", "dinnerReservations", 0, "dinner", "id"), "no-consent"),
        (("resident", "dinnerReservations", 0, "dinner", "date"), "no-consent"),
    }

    # Table d'hôte's app: r0002 consented to their phone number only, so not even their id goes
    # to Table d'hôte's API to ask for the dinners they host
    tablehote = ask(
        '{ resident(id: "r0002") { phone dinnersHosted { title } } }',
        {"x-api-key": credentials["clients"]["tablehote-app"], "x-citygate-purpose": "dining"},
    )
    assert tablehote["data"]["resident"]["phone"] and "*" not in tablehote["data"]["resident"]["phone"]
    assert tablehote["data"]["resident"]["dinnersHosted"] is None
    assert tablehote["extensions"]["privacy"]["withheld"] == [
        {
            "path": ["resident", "dinnersHosted"],
            "category": "user.unique_id",
            "reason": "no-consent",
            "strategy": "null",
            "recipient": "tablehote",
        }
    ]


def test_voisinage_connector_is_drafted_from_the_openapi_document_its_api_publishes(tmp_path):
    """The walk-through of docs/partners.md: import-openapi over Voisinage's /openapi.json, then the edits."""
    from graphql import build_ast_schema, parse

    from gateway.connect import read_connect_sdl
    from tests.world.server import AppServer

    api = AppServer(_partner_api("neighbourhood").app).start()
    try:
        drafted = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "connector",
                "import-openapi",
                f"{api.base_url}/openapi.json",
                "--name",
                "neighbourhood",
                "--owner",
                "voisinage",
                "--out",
                str(tmp_path / "draft"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        api.stop()
    assert drafted.returncode == 0, drafted.stderr
    said = " ".join((drafted.stdout + drafted.stderr).split())  # the console's report, however it wraps
    assert "drafted 7 operation(s)" in said and "entities: Job" in said
    draft_sdl = (tmp_path / "draft" / "schema.graphql").read_text()
    draft = {d.name.value: d for d in parse(draft_sdl).definitions if hasattr(d, "name")}
    assert {f.name.value for f in draft["Query"].fields} == {
        "listJobs",
        "getJob",
        "listDistrictJobs",
        "getDistrictStats",
        "listPostedJobs",
        "listTakenJobs",
        "listRatings",
    }
    assert "# TODO personal?" in draft_sdl

    # the edited SDL keeps the draft's enums and entity, and maps the same API
    edited_sdl = (ROOT / "connectors" / "neighbourhood" / "schema.graphql").read_text()
    edited = read_connect_sdl(edited_sdl, base_url="http://127.0.0.1:8731")
    assert "TODO" not in edited_sdl
    schema = build_ast_schema(parse(edited.composition_sdl), assume_valid_sdl=True)
    for enum in ("JobKind", "JobStatus"):
        assert [v.name.value for v in draft[enum].values] == list(schema.get_type(enum).values)
    assert {f for f in schema.query_type.fields if not f.startswith("_")} == {"jobs"}
