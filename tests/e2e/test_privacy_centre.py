"""The residents' privacy centre (/privacy) in headless Chromium, against `citygate demo` as a real
process: a demo resident signs in, grants Parkr a consent, Parkr (its own client, over HTTP from
the test) reads the resident's e-mail, the disclosure shows on the page, the signed receipt
downloads and verifies against the published JWKS, the resident withdraws and Parkr sees it masked,
downloads the export of their data and requests erasure (each connector's status on the page)."""

from __future__ import annotations

import json

import httpx
from joserfc import jws
from joserfc.jwk import KeySet

from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.e2e.test_demo import demo  # noqa: F401  (the running demo fixture)

RESIDENT = "r0003"  # the demo seeds no consent for r0003
PARKR_EMAIL = f'{{ resident(id: "{RESIDENT}") {{ email }} }}'
WAIT = 20_000  # ms: how long the page may take to show what it is asked for


def _as_parkr(url: str, credentials: dict) -> dict:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": PARKR_EMAIL},
        headers={"x-api-key": credentials["clients"]["parkr-app"], "x-citygate-purpose": "booking"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_resident_grants_sees_the_disclosure_and_withdraws_in_the_browser(demo, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    url, credentials, _ = demo
    before = _as_parkr(url, credentials)["data"]["resident"]["email"]
    assert "***@" in before  # no consent yet: masked

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(accept_downloads=True)
            problems: list[str] = []  # a script error or a Content-Security-Policy refusal
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "response",
                lambda response: (
                    problems.append(f"{response.status} {response.url}") if response.status >= 400 else None
                ),
            )
            page.goto(f"{url}/privacy", wait_until="load")

            # demo sign-in: the demo's identity provider hands over r0003's token
            page.click(f"#demo-residents button[data-resident='{RESIDENT}']", timeout=WAIT)
            page.wait_for_selector("#centre:not([hidden])", timeout=WAIT)
            assert page.inner_text("#resident-id") == RESIDENT
            assert page.locator("#consents tbody tr").count() == 0
            assert page.is_visible("#no-disclosures")
            assert page.is_visible("#your-rights") and page.is_visible("#no-erasures")

            # grant Parkr (booking) the resident's contact details
            page.select_option("#grant-client", "parkr-app")
            page.select_option("#grant-purpose", "booking")
            page.check("#grant-categories input[value='user.contact']")
            page.click("#grant")
            granted = page.locator("#consents tbody tr[data-recipient='parkr-app'][data-status='active']")
            granted.wait_for(timeout=WAIT)
            assert "user.contact" in granted.inner_text() and "booking" in granted.inner_text()
            consent_id = granted.get_attribute("data-consent-id")

            # Parkr asks, as its own client: the e-mail now goes to Parkr, and is audited
            email = _as_parkr(url, credentials)["data"]["resident"]["email"]
            assert "*" not in email and email.split("@")[1] == before.split("@")[1]

            page.click("#refresh")
            disclosure = page.locator("#disclosures tbody tr[data-recipient='parkr-app']")
            disclosure.wait_for(timeout=WAIT)
            shown = disclosure.inner_text()
            assert (
                "Parkr" in shown
                and "booking" in shown
                and "Resident.email" in shown
                and "your consent (booking)" in shown
            )
            assert disclosure.locator("td").last.get_attribute("title") == f"consent:{consent_id}"

            # the signed receipt, downloaded from the page, verifies with a stock JOSE library
            with page.expect_download(timeout=WAIT) as download_info:
                granted.locator("button.receipt").click()
            token = tmp_path / "receipt.jws"
            download_info.value.save_as(token)
            keys = KeySet.import_key_set(httpx.get(f"{url}/.well-known/jwks.json", timeout=10).json())
            payload = json.loads(jws.deserialize_compact(token.read_text(), keys, algorithms=["ES256"]).payload)
            record = payload["iso27560"]
            assert record["dct:identifier"] == consent_id and record["dpv:hasDataSubject"]["dct:identifier"] == RESIDENT
            assert record["dpv:hasRecipient"]["dct:identifier"] == "parkr-app" and record["dpv:hasConsentStatus"] == {
                "@id": "dpv:ConsentGiven"
            }

            # withdraw: the row says so, and Parkr's next request is masked again
            granted.locator("button.withdraw").click()
            page.locator(f"#consents tbody tr[data-consent-id='{consent_id}'][data-status='withdrawn']").wait_for(
                timeout=WAIT
            )
            assert page.locator(f"#consents tbody tr[data-consent-id='{consent_id}'] button.withdraw").count() == 0
            assert _as_parkr(url, credentials)["data"]["resident"]["email"] == before

            # the export: everything about the resident, from every connector, as a JSON file
            with page.expect_download(timeout=60_000) as download_info:
                page.click("#export")
            exported_file = tmp_path / "export.json"
            download_info.value.save_as(exported_file)
            exported = json.loads(exported_file.read_text())
            assert exported["format"] == "citygate-export/1" and exported["subject"] == RESIDENT
            city = {v["coordinate"]: v["value"] for r in exported["connectors"]["city"]["records"] for v in r["values"]}
            assert city["Resident.email"].split("@")[1] == before.split("@")[1] and "*" not in city["Resident.email"]
            page.locator("#disclosures tbody tr[data-recipient='city-app']").wait_for(
                timeout=WAIT
            )  # the export, audited

            # erasure: asked once, each connector's status listed, the city's own "retained" (kept by law)
            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#request-erasure")
            page.locator("#erasures tbody tr[data-connector='city'][data-status='retained']").wait_for(timeout=WAIT)
            page.locator("#erasures tbody tr[data-connector='parking'][data-status='done']").wait_for(timeout=WAIT)
            assert page.locator("#erasures tbody tr").count() == 5

            # signing out forgets the token
            page.click("#sign-out")
            page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT)
            assert page.evaluate("sessionStorage.length") == 0
            assert problems == []
        finally:
            browser.close()


def test_the_page_is_served_with_a_strict_policy_and_the_demo_sign_in_knows_only_demo_residents(demo):  # noqa: F811
    url, _, _ = demo
    page = httpx.get(f"{url}/privacy", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script = httpx.get(f"{url}/privacy/assets/privacy.js", timeout=10)
    assert script.status_code == 200 and "innerHTML" not in script.text  # text only, never markup

    assert httpx.get(f"{url}/demo/sign-in", timeout=10).json()["residents"] == ["r0001", "r0002", "r0003"]
    stranger = httpx.post(f"{url}/demo/sign-in", json={"resident": "r0004"}, timeout=10)
    assert stranger.status_code == 404 and stranger.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_DEMO_RESIDENT"
    as_form = httpx.post(
        f"{url}/demo/sign-in",
        content=b"resident=r0001",
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert as_form.status_code == 415 and "token" not in as_form.json()
