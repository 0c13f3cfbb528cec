"""CORS: an allow-list of origins, preflights answered, and a page on another origin in Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gateway.http import GatewayState, create_app
from gateway.settings import CorsSettings, Settings, SettingsError, load_settings
from tests.world.server import AppServer

APP_ORIGIN = "https://app.city.example"
QUERY = {"query": "{ districts { code } }"}


@pytest.fixture
def served(engine):
    """The gateway over loopback HTTP with the settings a test gives (start(settings))."""
    servers: list[AppServer] = []

    def start(settings: Settings) -> str:
        server = AppServer(create_app(GatewayState(engine), settings=settings)).start()
        servers.append(server)
        return server.base_url

    yield start
    for server in servers:
        server.stop()


def preflight(url: str, origin: str, method: str = "POST", headers: str = "content-type, x-api-key") -> httpx.Response:
    return httpx.options(
        url + "/graphql",
        headers={"origin": origin, "access-control-request-method": method, "access-control-request-headers": headers},
    )


def test_a_preflight_from_a_listed_origin_is_answered(served):
    url = served(Settings(cors=CorsSettings(allow_origins=[APP_ORIGIN], max_age=900)))
    answer = preflight(url, APP_ORIGIN)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")} == {"GET", "POST"}
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-api-key", "authorization", "x-citygate-purpose", "apollo-require-preflight"} <= allowed
    assert answer.headers["access-control-max-age"] == "900"
    assert "access-control-allow-credentials" not in answer.headers


def test_an_origin_off_the_list_gets_no_permission(served):
    url = served(Settings(cors=CorsSettings(allow_origins=[APP_ORIGIN])))
    refused = preflight(url, "https://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    # a method or a header off the list is refused too
    assert preflight(url, APP_ORIGIN, method="DELETE").status_code == 400
    assert preflight(url, APP_ORIGIN, headers="x-not-allowed").status_code == 400
    # the request itself is answered (CORS is the browser's to enforce), without the permission
    answer = httpx.post(url + "/graphql", json=QUERY, headers={"origin": "https://evil.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_an_answer_to_a_listed_origin_carries_the_permission_and_exposed_headers(served):
    url = served(Settings(cors=CorsSettings(allow_origins=[APP_ORIGIN, "http://localhost:3000"])))
    answer = httpx.post(url + "/graphql", json=QUERY, headers={"origin": APP_ORIGIN})
    assert answer.status_code == 200 and answer.json()["data"]["districts"]
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert "origin" in answer.headers["vary"].lower()  # caches keep one answer per origin


def test_without_origins_no_page_may_call_and_preflights_are_still_answered(served):
    url = served(Settings())
    answer = preflight(url, APP_ORIGIN)
    assert answer.status_code == 400  # refused, not 405 as before CORS
    assert "access-control-allow-origin" not in answer.headers


def test_any_origin_only_without_credentials(served, tmp_path: Path):
    url = served(Settings(cors=CorsSettings(allow_origins=["*"])))
    answer = preflight(url, "https://anyone.example")
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"
    config = tmp_path / "citygate.yaml"
    config.write_text("cors:\n  allow_origins: ['*']\n  allow_credentials: true\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(config, {})
    assert refused.value.problems == [
        "cors: allow_origins '*' cannot go with allow_credentials: list the origins that may send credentials"
    ]


def test_credentials_for_listed_origins(served):
    url = served(Settings(cors=CorsSettings(allow_origins=[APP_ORIGIN], allow_credentials=True)))
    answer = preflight(url, APP_ORIGIN)
    assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    "origin", ["https://app.example/path", "app.example", "https://*.example", "ftp://app.example"]
)
def test_an_origin_is_exact(origin, tmp_path: Path):
    with pytest.raises(SettingsError) as refused:
        load_settings(None, {"CITYGATE_CORS_ALLOW_ORIGINS": f"https://ok.example,{origin}"})
    assert len(refused.value.problems) == 1
    assert (
        refused.value.problems[0].startswith("cors.allow_origins")
        and "(from CITYGATE_CORS_ALLOW_ORIGINS)" in refused.value.problems[0]
    )


# -- a page on another origin, in Chromium ---------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CALL = """async (gateway) => {
  try {
    const answer = await fetch(gateway + '/graphql', {method: 'POST', headers: {'content-type': 'application/json', 'x-citygate-purpose': 'x'},
                                                     body: JSON.stringify({query: '{ districts { code } }'})});
    return {status: answer.status, body: await answer.json(), requestId: answer.headers.get('x-request-id')};
  } catch (error) {
    return {failed: String(error)};
  }
}"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is installed by make test")
def test_a_page_on_a_listed_origin_calls_the_gateway_and_another_cannot(served):
    from playwright.sync_api import sync_playwright

    page_server = AppServer(
        Starlette(routes=[Route("/", lambda _request: HTMLResponse("<!doctype html><title>city app</title>"))])
    ).start()
    try:
        listed = page_server.base_url  # http://127.0.0.1:PORT
        other = listed.replace("127.0.0.1", "localhost")  # the same page, another origin
        gateway = served(Settings(cors=CorsSettings(allow_origins=[listed])))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(listed + "/", wait_until="load")
                allowed = page.evaluate(CALL, gateway)
                page.goto(other + "/", wait_until="load")
                blocked = page.evaluate(CALL, gateway)
            finally:
                browser.close()
    finally:
        page_server.stop()
    assert allowed["status"] == 200 and allowed["body"]["data"]["districts"][0] == {"code": "75105"}
    assert allowed["requestId"]  # exposed to the page
    assert "failed" in blocked and "Failed to fetch" in blocked["failed"]
