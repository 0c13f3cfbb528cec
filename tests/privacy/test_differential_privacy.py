"""Open data under differential privacy (issue 17): calibrated noise through OpenDP, budgets per
client and period in the store (SQLite and PostgreSQL), the same question answered from the
store, k-suppression first; over HTTP against the privacy world's gateway where it shows."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import uuid

import pytest
import sqlalchemy

from gateway.policy import PolicyError, parse_policy
from gateway.privacy._noise import calibrate, period_of, question_key, release
from gateway.store import Store
from tests.privacy import world
from tests.privacy.conftest import City, connectors_folder, policy_document
from tests.registry.conftest import POSTGRES_URL as SHARED_POSTGRES_URL
from tests.registry.conftest import reset_postgres as reset_shared_postgres

# PostgreSQL for these tests: this xdist worker's shared test database unless told otherwise (a helper's own database)
POSTGRES_URL = os.environ.get("CITYGATE_DP_TEST_POSTGRES", SHARED_POSTGRES_URL)

MEAN_OF_BIRTH_YEARS = {"contributors": "residentCount", "statistic": "mean", "lower": 1900, "upper": 2030}


async def reset_postgres() -> None:
    if POSTGRES_URL == SHARED_POSTGRES_URL:
        await reset_shared_postgres()  # creates it when missing
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.begin() as connection:
        await connection.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    await engine.dispose()


def laplace_cdf(x: float, scale: float) -> float:
    return 0.5 * math.exp(x / scale) if x < 0 else 1 - 0.5 * math.exp(-x / scale)


def kolmogorov_smirnov(draws: list[float], scale: float) -> float:
    """The largest gap between the draws' empirical distribution and Laplace(0, scale)."""
    ordered = sorted(draws)
    n = len(ordered)
    return max(
        max(abs((i + 1) / n - laplace_cdf(x, scale)), abs(i / n - laplace_cdf(x, scale))) for i, x in enumerate(ordered)
    )


# -- calibration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "lower", "upper", "contributors", "exact", "epsilon", "sensitivity"),
    [
        # an average age over the demo's 100 residents at least (scale 2.2 years): 18 scales from
        # the nearer bound, so the clamp to [0, 110] never applies and the draws are the mechanism's
        ("mean", 0.0, 110.0, 100, 58.1, 0.5, 110 / 100),
        ("sum", -3.0, 8.0, 50, 120.0, 1.0, 8.0),  # a sum: the largest magnitude of one contributor
        ("count", None, None, 500, 500.0, 0.25, 1.0),  # a count: one resident moves it by one
    ],
)
def test_noise_is_calibrated_to_sensitivity_over_epsilon(
    statistic, lower, upper, contributors, exact, epsilon, sensitivity
):
    calibrated = calibrate(statistic, lower, upper, contributors, epsilon)
    assert calibrated is not None
    assert calibrated.sensitivity == pytest.approx(sensitivity)
    assert calibrated.epsilon == pytest.approx(epsilon, rel=1e-9)  # OpenDP's privacy map: what a release costs
    scale = sensitivity / epsilon
    draws = [
        release(calibrated, exact, statistic, lower, upper, contributors, whole=False) - exact for _ in range(2000)
    ]
    spread = statistics.pstdev(draws)
    gap = kolmogorov_smirnov(draws, scale)
    print(
        f"{statistic}: scale {scale:.3f}, std {spread:.3f} (Laplace: {math.sqrt(2) * scale:.3f}), mean {statistics.fmean(draws):+.3f}, KS {gap:.4f}"
    )
    assert spread == pytest.approx(math.sqrt(2) * scale, rel=0.10)
    assert abs(statistics.fmean(draws)) < 4 * math.sqrt(2) * scale / math.sqrt(2000)  # centred: 4 standard errors
    assert gap < 0.045  # the 5% critical value for 2,000 draws is 0.030; this is p < 0.0001


def test_a_released_mean_is_clamped_to_its_bounds():
    # epsilon one millionth: the mechanism's scale is 1.1 / 1e-6 = 1.1 million years, so nearly
    # every draw lands far outside [0, 110]; what `release` returns never does
    calibrated = calibrate("mean", 0.0, 110.0, 100, 1e-6)
    assert calibrated is not None and calibrated.epsilon == pytest.approx(1e-6, rel=1e-9)
    drawn = [float(calibrated.measurement(58.1)) for _ in range(1000)]
    assert sum(not 0.0 <= d <= 110.0 for d in drawn) > 990  # about 1 in 20,000 falls inside
    released = [release(calibrated, 58.1, "mean", 0.0, 110.0, 100, whole=False) for _ in range(1000)]
    assert all(isinstance(r, float) and 0.0 <= r <= 110.0 for r in released)
    # draws beyond either bound, each clamped to the nearer one (both occur: 2^-1000 otherwise)
    assert {r for r in released if r in (0.0, 110.0)} == {0.0, 110.0}
    # a partner answering a mean outside the bounds changes nothing: clamped before and after
    assert all(0.0 <= release(calibrated, 500.0, "mean", 0.0, 110.0, 100, whole=False) <= 110.0 for _ in range(200))
    # an Int mean is rounded within the bounds, a fractional bound included
    fractional = calibrate("mean", 0.5, 10.5, 100, 1e-6)
    whole = [release(fractional, 5.0, "mean", 0.5, 10.5, 100, whole=True) for _ in range(500)]
    assert all(isinstance(w, int) and 1 <= w <= 10 for w in whole) and {1, 10} <= set(whole)


def test_a_statistic_without_bounds_is_not_calibrated():
    assert calibrate("mean", None, 10.0, 20, 1.0) is None
    assert calibrate("sum", 5.0, 1.0, 20, 1.0) is None  # lower above upper
    assert calibrate("median", 0.0, 1.0, 20, 1.0) is None
    assert calibrate(None, 0.0, 1.0, 20, 1.0) is None


def test_whole_numbers_stay_whole_and_counts_never_negative():
    calibrated = calibrate("count", None, None, 3, 0.1)
    draws = [release(calibrated, 3, "count", None, None, 3, whole=True) for _ in range(300)]
    assert all(isinstance(d, int) and d >= 0 for d in draws)
    assert len(set(draws)) > 10  # noise, not the exact 3


def test_periods():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert (period_of("day", moment), period_of("week", moment), period_of("month", moment)) == (
        "2026-11-25",
        "2026-W48",
        "2026-11",
    )


# -- the policy -----------------------------------------------------------------------------------


def test_policy_reads_open_data_and_refuses_what_cannot_work(signer):
    document = policy_document(signer.jwks_file)
    document["open_data"] = {
        "public": {"epsilon_per_query": 0.5, "budget": {"epsilon": 2, "period": "week"}},
        "clients": {"stats-portal": {"epsilon_per_query": 1, "budget": {"epsilon": 10}}},
    }
    document["privacy"]["aggregates"] = {"District.averageBirthYear": MEAN_OF_BIRTH_YEARS}
    policy = parse_policy(document)
    assert policy.open_data is not None
    public = policy.open_data.budget_for("public", True)
    assert (public.epsilon_per_query, public.epsilon, public.period) == (0.5, 2.0, "week")
    assert policy.open_data.budget_for("stats-portal", False).period == "day"
    assert policy.open_data.budget_for("city-app", False) is None  # no budget: nothing released
    aggregate = policy.privacy.aggregates[("District", "averageBirthYear")]
    assert (aggregate.statistic, aggregate.lower, aggregate.upper) == ("mean", 1900.0, 2030.0)

    document["open_data"] = {
        "public": {"epsilon_per_query": 0, "budget": {"epsilon": 2}},
        "clients": {
            "nobody": {"epsilon_per_query": 1, "budget": {"epsilon": 1}},
            "stats-portal": {"epsilon_per_query": 1, "budget": {"epsilon": 0.5}},
        },
    }
    document["privacy"]["aggregates"] = {
        "District.averageBirthYear": {"contributors": "residentCount", "statistic": "mean", "lower": 5}
    }
    with pytest.raises(PolicyError) as refused:
        parse_policy(document)
    problems = "\n".join(refused.value.problems)
    assert "open_data.public.epsilon_per_query must be a positive number" in problems
    assert "open_data.clients: 'nobody' is not declared under clients" in problems
    assert "open_data.clients.stats-portal.budget.epsilon must be a number at least epsilon_per_query" in problems
    assert "a mean needs lower and upper" in problems


# -- the store: budgets and released values (SQLite and PostgreSQL) -------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'open-data.db'}"
    else:
        await reset_postgres()
        url = POSTGRES_URL
    opened = Store(url)
    await opened.create()
    yield opened
    await opened.close()


async def test_budget_is_charged_and_refuses_when_spent(store):
    question = question_key("District.averageAge", {"code": "75118"})
    released = [await store.open_data_release("portal", "2026-11-25", None, 0.4, 1.0, 40.0 + i) for i in range(3)]
    assert [r[0] for r in released] == ["released", "released", "exhausted"]
    assert [r[2] for r in released] == [pytest.approx(0.4), pytest.approx(0.8), pytest.approx(0.8)]
    assert await store.open_data_spent("portal", "2026-11-25") == pytest.approx(0.8)
    # an exhausted budget stores no answer either: the same question later is not answered from it
    assert (await store.open_data_release("portal", "2026-11-25", question, 0.4, 1.0, 41.0))[0] == "exhausted"
    # another client, or another period, has its own budget
    assert (await store.open_data_release("other", "2026-11-25", question, 0.4, 1.0, 42.0))[0] == "released"
    assert (await store.open_data_release("portal", "2026-11-26", question, 0.4, 1.0, 43.0))[0] == "released"


async def test_the_same_question_is_answered_the_same_without_charge(store):
    question = question_key("District.averageAge", {"code": "75118"})
    first = await store.open_data_release("portal", "2026-W48", question, 0.5, 1.0, 38.7)
    again = [
        await store.open_data_release("portal", "2026-W48", question, 0.5, 1.0, draw) for draw in (52.0, 12.5, 99.9)
    ]
    assert first == ("released", 38.7, pytest.approx(0.5))
    assert again == [("cached", 38.7, None)] * 3  # the first release, not the new draws
    assert await store.open_data_spent("portal", "2026-W48") == pytest.approx(0.5)
    # another entity is another question; the same entity for another client is that client's
    other = await store.open_data_release(
        "portal", "2026-W48", question_key("District.averageAge", {"code": "75105"}), 0.5, 1.0, 44.0
    )
    assert other[0] == "released" and await store.open_data_spent("portal", "2026-W48") == pytest.approx(1.0)
    assert (await store.open_data_release("public", "2026-W48", question, 0.5, 1.0, 61.0))[:2] == ("released", 61.0)


async def test_replicas_asking_the_same_question_at_once_charge_it_once(tmp_path):
    await reset_postgres()
    replicas = [Store(POSTGRES_URL) for _ in range(4)]
    await replicas[0].create()
    try:
        question = question_key("District.jobs", {"code": "75111"})
        answers = await asyncio.gather(
            *(
                replica.open_data_release("portal", "2026-11", question, 0.25, 5.0, float(i))
                for i, replica in enumerate(replicas * 5)
            )
        )
        values = {a[1] for a in answers}
        assert len(values) == 1  # one release, seen by everyone
        assert sorted(a[0] for a in answers).count("released") == 1
        assert await replicas[0].open_data_spent("portal", "2026-11") == pytest.approx(0.25)
        # different questions at once: each charged, never beyond the budget
        answers = await asyncio.gather(
            *(
                replica.open_data_release(
                    "portal", "2026-11", question_key("District.jobs", {"code": str(i)}), 0.25, 5.0, 1.0
                )
                for i, replica in enumerate(replicas * 10)
            )
        )
        assert [a[0] for a in answers].count("released") == 19  # 4.75 of 5 left: 19 more releases
        assert await replicas[0].open_data_spent("portal", "2026-11") == pytest.approx(5.0)
    finally:
        for replica in replicas:
            await replica.close()


# -- over HTTP: the privacy world's gateway ------------------------------------------------------------


def open_data_policy(signer, *, public_budget: float = 30.0) -> dict:
    """Birth years in [1900, 2030] over k = 2: the public's noise has scale 130 / 2 / 10 = 6.5 years,
    the portal's 13. Epsilons this large because a released mean is clamped to its bounds, and two
    independent draws clamped to the same bound would look like one: Panthéon's exact mean (1985)
    reaches 2030 for the public with a chance of 5e-4 and for the portal 1.6e-2, Popincourt's
    (1995) for the public 2.3e-3, so the tests below see two draws coincide with a chance below 1e-5
    (at epsilon 1 and 0.5, about 10%)."""
    document = policy_document(signer.jwks_file)
    document["open_data"] = {
        "public": {"epsilon_per_query": 10.0, "budget": {"epsilon": public_budget, "period": "day"}},
        "clients": {"stats-portal": {"epsilon_per_query": 5.0, "budget": {"epsilon": 10.0, "period": "week"}}},
    }
    document["privacy"]["aggregates"] = {"District.averageBirthYear": MEAN_OF_BIRTH_YEARS}
    return document


async def start_open_city(kind: str, tmp_path, privacy_world, signer, document: dict) -> City:
    world.reset()
    if kind == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'city.db'}"
    else:
        await reset_postgres()
        store_url = POSTGRES_URL
    folder = connectors_folder(tmp_path / f"connectors-{uuid.uuid4().hex[:6]}", privacy_world)
    running = City(store_url, folder, document, signer)
    running.store = Store(store_url)  # type: ignore[attr-defined]  # to read the budgets as another process would
    return running


async def stop_open_city(running: City) -> None:
    await running.store.close()  # type: ignore[attr-defined]
    await running.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_city(request, tmp_path, privacy_world, signer):
    running = await start_open_city(request.param, tmp_path, privacy_world, signer, open_data_policy(signer))
    yield running
    await stop_open_city(running)


@pytest.fixture(params=["sqlite", "postgresql"])
async def crowded_city(request, tmp_path, privacy_world, signer):
    """Every district above k (two residents each), and a public budget for two releases a day."""
    running = await start_open_city(
        request.param, tmp_path, privacy_world, signer, open_data_policy(signer, public_budget=20.0)
    )
    for resident, district, birth in (("r5", "75111", "1980-03-01T09:00:00"), ("r6", "75118", "1975-06-30T09:00:00")):
        world.data["residents"][resident] = {
            "name": f"Resident {resident}",
            "email": None,
            "phone": None,
            "address": "Paris",
            "birth": birth,
            "district": district,
        }
    yield running
    await stop_open_city(running)


DISTRICTS = "{ districts { name averageBirthYear } }"
EXACT_PANTHEON = (1969 + 2001) / 2  # two contributors: k is 2 in the test policy
EXACT_CROWDED = {"Panthéon": EXACT_PANTHEON, "Popincourt": (2010 + 1980) / 2, "Buttes-Montmartre": (1990 + 1975) / 2}


def by_name(answer: dict) -> dict:
    return {d["name"]: d["averageBirthYear"] for d in answer["data"]["districts"]}


def reasons(answer: dict) -> dict:
    return {
        tuple(w["path"]): w["reason"] for w in (answer.get("extensions") or {}).get("privacy", {}).get("withheld", [])
    }


async def test_open_data_is_noisy_and_the_same_question_charged_once(open_city):
    store = open_city.store
    released = []
    for _ in range(3):
        answer = await open_city.ask(DISTRICTS)
        assert "errors" not in answer, answer
        values = by_name(answer)
        # below k: withheld first, and free of charge
        assert values["Popincourt"] is None and values["Buttes-Montmartre"] is None
        assert set(reasons(answer).values()) == {"below-k"}
        released.append(values["Panthéon"])
    assert all(isinstance(v, float) for v in released)
    assert EXACT_PANTHEON not in released  # Laplace noise of scale 130/2/10 = 6.5 years: never the exact mean
    # the same question (client, coordinate, district, period): the stored release, charged once
    assert len(set(released)) == 1
    assert await store.open_data_spent("(public)", period_of("day")) == pytest.approx(10.0)

    # the same district reached by another path, twice in one response: the same question again
    both = await open_city.ask(
        '{ districts { name averageBirthYear } resident(id: "r2") { district { name averageBirthYear } } }'
    )
    assert "errors" not in both, both
    assert by_name(both)["Panthéon"] == released[0]
    assert both["data"]["resident"]["district"] == {"name": "Panthéon", "averageBirthYear": released[0]}
    assert await store.open_data_spent("(public)", period_of("day")) == pytest.approx(10.0)

    # a second client has its own budget and its own draw; asking again costs it nothing either
    portal = [by_name(await open_city.ask(DISTRICTS, client="stats-portal"))["Panthéon"] for _ in range(3)]
    assert portal[0] is not None and len(set(portal)) == 1
    assert portal[0] != released[0]
    assert await store.open_data_spent("stats-portal", period_of("week")) == pytest.approx(5.0)


async def test_two_districts_in_one_request_are_charged_apart_and_refused_when_spent(crowded_city):
    store = crowded_city.store
    first = await crowded_city.ask(DISTRICTS)
    values = by_name(first)
    # the budget (20 at 10 a value) pays for the first two districts, each its own question
    pantheon, popincourt = values["Panthéon"], values["Popincourt"]
    assert isinstance(pantheon, float) and isinstance(popincourt, float)
    assert pantheon != EXACT_CROWDED["Panthéon"] and popincourt != EXACT_CROWDED["Popincourt"]
    # independent draws: not one noise added to both, nor one value for both
    assert pantheon != popincourt and pantheon - EXACT_CROWDED["Panthéon"] != popincourt - EXACT_CROWDED["Popincourt"]
    assert await store.open_data_spent("(public)", period_of("day")) == pytest.approx(20.0)
    assert values["Buttes-Montmartre"] is None
    assert reasons(first) == {("districts", 2, "averageBirthYear"): "budget"}
    assert [(e["path"], e["extensions"]["code"]) for e in first["errors"]] == [
        (["districts", 2, "averageBirthYear"], "PRIVACY_BUDGET_EXHAUSTED")
    ]
    assert not any(
        "Buttes" in e["message"] or str(EXACT_CROWDED["Buttes-Montmartre"]) in e["message"] for e in first["errors"]
    )

    # a spent budget still answers what it paid for, the same way; a refusal costs nothing
    again = await crowded_city.ask(DISTRICTS)
    assert by_name(again) == values
    reached = await crowded_city.ask('{ resident(id: "r1") { district { name averageBirthYear } } }')
    assert reached["data"]["resident"]["district"]["averageBirthYear"] is None  # Buttes-Montmartre: not paid for
    assert [e["extensions"]["code"] for e in reached["errors"]] == ["PRIVACY_BUDGET_EXHAUSTED"]
    assert await store.open_data_spent("(public)", period_of("day")) == pytest.approx(20.0)


async def test_below_k_is_withheld_without_charge(open_city):
    for _ in range(5):  # more than the public's budget would pay for
        answer = await open_city.ask('{ resident(id: "r1") { district { name averageBirthYear } } }')
        assert answer["data"]["resident"]["district"]["averageBirthYear"] is None
        assert reasons(answer) == {("resident", "district", "averageBirthYear"): "below-k"}
        assert "errors" not in answer
    assert await open_city.store.open_data_spent("(public)", period_of("day")) == 0.0


async def test_a_client_without_budget_gets_no_aggregate(open_city):
    answer = await open_city.ask(DISTRICTS, client="technician-console")
    assert by_name(answer)["Panthéon"] is None
    assert reasons(answer)[("districts", 0, "averageBirthYear")] == "budget"
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"PRIVACY_BUDGET_EXHAUSTED"}


async def test_an_aggregate_without_a_statistic_is_withheld_not_guessed(tmp_path, privacy_world, signer):
    world.reset()
    document = open_data_policy(signer)
    document["privacy"]["aggregates"] = {"District.averageBirthYear": {"contributors": "residentCount"}}
    city = City(
        f"sqlite:///{tmp_path / 'city.db'}", connectors_folder(tmp_path / "connectors", privacy_world), document, signer
    )
    try:
        answer = await city.ask(DISTRICTS)
        assert by_name(answer)["Panthéon"] is None
        assert reasons(answer)[("districts", 0, "averageBirthYear")] == "uncalibrated"
    finally:
        await city.close()


def _add_districts(codes: list[str], residents: int) -> None:
    """Districts of the privacy world, each with `residents` residents born in 1965."""
    for code in codes:
        world.data["districts"][code] = f"District {code}"
        for number in range(residents):
            world.data["residents"][f"{code}-{number}"] = {
                "name": None,
                "email": None,
                "phone": None,
                "address": "Paris",
                "birth": "1965-04-01T09:00:00",
                "district": code,
            }


async def test_a_mean_is_calibrated_on_the_public_minimum_whatever_count_the_partner_answers(
    tmp_path, privacy_world, signer
):
    # k is 2 and the aggregate's min_contributors 10: the noise must have scale 130 / 10 / 10 = 1.3
    # years, whatever the city's subgraph answers as residentCount (40 here: over that count the
    # scale would be 0.325; over k, 6.5). 150 districts of 40 residents born in 1965, each its own
    # question, so 150 independent draws around an exact mean of 1965.0
    document = open_data_policy(signer, public_budget=1500.0)
    document["privacy"]["aggregates"] = {"District.averageBirthYear": {**MEAN_OF_BIRTH_YEARS, "min_contributors": 10}}
    running = await start_open_city("sqlite", tmp_path, privacy_world, signer, document)
    try:
        codes = [f"9{number:04d}" for number in range(150)]
        _add_districts(codes, residents=40)
        # residentCount is not asked: it is itself a count aggregate now (its own test below); the
        # gateway reads the count the partner answers (40) for k alone
        answer = await running.ask("{ districts { code averageBirthYear } }")
        assert "errors" not in answer, answer
        districts = {d["code"]: d for d in answer["data"]["districts"]}
        noise = [districts[code]["averageBirthYear"] - 1965.0 for code in codes]
        assert await running.store.open_data_spent("(public)", period_of("day")) == pytest.approx(1500.0)
        # Laplace(b): the mean absolute draw is the estimate of b; over 150 draws it falls outside
        # [0.67 b, 1.5 b] with a chance of 2.5e-6 (Gamma(150)). Calibrated on the count (b / 4) or on
        # k (2.5 b), it would fall inside with a chance below 1e-8
        scale = 130 / 10 / 10
        estimate = statistics.fmean(abs(n) for n in noise)
        print(f"mean |noise| {estimate:.3f} against the scale {scale} (count: {130 / 40 / 10}, k: {130 / 2 / 10})")
        assert 0.67 * scale < estimate < 1.5 * scale
        # Panthéon's two residents reach k but not the minimum: nothing is released
        assert districts["75105"]["averageBirthYear"] is None
        assert reasons(answer)[("districts", 0, "averageBirthYear")] == "below-k"
    finally:
        await stop_open_city(running)


async def test_the_count_of_an_aggregates_contributors_is_a_noisy_count_itself(tmp_path, privacy_world, signer):
    """District.residentCount counts averageBirthYear's contributors: released exact, it would be
    the figure the mean's noise hides and what differencing needs (the count before and after one
    resident moves in). It is an aggregate of its own: withheld below k, else released with noise
    and charged to the budget, whatever the annotations say of it."""
    document = open_data_policy(signer, public_budget=1000.0)
    document["open_data"]["public"]["epsilon_per_query"] = 0.5  # scale 2 for a count
    running = await start_open_city("sqlite", tmp_path, privacy_world, signer, document)
    try:
        codes = [f"8{number:04d}" for number in range(60)]
        _add_districts(codes, residents=40)
        _add_districts(["89999"], residents=1)
        answer = await running.ask("{ districts { code residentCount } }")
        assert "errors" not in answer, answer
        counts = [d["residentCount"] for d in answer["data"]["districts"] if d["code"] in codes]
        # Laplace(2) rounded: a draw is the exact 40 with a chance of 1 - e^(-1/4) = 0.22; all 60
        # exact with a chance of 1e-39
        assert len(counts) == 60 and all(isinstance(c, int) for c in counts) and set(counts) != {40}
        assert await running.store.open_data_spent("(public)", period_of("day")) > 0
        # a district of one resident, under k = 2: its count is withheld like any aggregate's
        lonely = next(i for i, d in enumerate(answer["data"]["districts"]) if d["code"] == "89999")
        assert answer["data"]["districts"][lonely]["residentCount"] is None
        assert reasons(answer)[("districts", lonely, "residentCount")] == "below-k"
    finally:
        await stop_open_city(running)
