"""GraphiQL loads in headless Chromium (Debian's) and runs one example query."""

from __future__ import annotations

import shutil

from tests.e2e.test_demo import ROOT, demo  # noqa: F401  (the running demo fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The machine's network is closed: no background fetches, no first-run, no sandbox as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_graphiql_runs_the_first_example_in_a_browser(demo):  # noqa: F811
    from playwright.sync_api import sync_playwright

    assert (ROOT / ".citygate" / "graphiql" / "graphiql.min.js").is_file(), "run make: it fetches GraphiQL's files"
    url, _, _ = demo
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/graphql", wait_until="load")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            assert "DistrictOpenData" in page.content()  # the example is ready in the first tab
            page.click(".graphiql-execute-button")
            page.wait_for_function(
                "document.querySelector('.result-window') && document.querySelector('.result-window').innerText.includes('Buttes-Montmartre')",
                timeout=20_000,
            )
            result = page.inner_text(".result-window")
            assert '"population": 185825' in result
        finally:
            browser.close()
