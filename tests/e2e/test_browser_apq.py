"""GraphiQL in headless Chromium sends automatic persisted queries: the document's hash first, the
document only when the gateway does not have it. Run twice, the second run sends the hash alone
and gets the answer (seen in the browser's requests and in the gateway's metrics)."""

from __future__ import annotations

import json
import re

import httpx

from tests.e2e.test_browser import CHROMIUM, FLAGS
from tests.e2e.test_demo import ROOT, demo  # noqa: F401  (the running demo fixture)

RESULT_READY = "document.querySelector('.result-window') && document.querySelector('.result-window').innerText.includes('Buttes-Montmartre')"


def apq_hits(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(r'^citygate_cache_lookups_total\{cache="apq",result="hit"\} (\S+)$', metrics, re.MULTILINE)
    return float(found[1]) if found else 0.0


def test_graphiql_sends_the_hash_alone_the_second_time(demo):  # noqa: F811
    from playwright.sync_api import sync_playwright

    assert (ROOT / ".citygate" / "graphiql" / "graphiql.min.js").is_file(), "run make: it fetches GraphiQL's files"
    url, _, _ = demo
    sent: list[tuple[dict, dict]] = []  # (request body, answer body) of each operation GraphiQL posted
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()

            def answered(response) -> None:
                request = response.request
                if request.method == "POST" and request.url.endswith("/graphql"):
                    body = json.loads(request.post_data or "{}")
                    if "IntrospectionQuery" not in json.dumps(body):
                        sent.append((body, response.json()))

            page.on("response", answered)

            def answers(count: int) -> int:
                """The operations answered so far, once `count` are (the browser's events reach
                Python while it waits on the page; 10 s at most)."""
                for _ in range(200):
                    if len(sent) >= count:
                        break
                    page.wait_for_timeout(50)
                return len(sent)

            page.goto(f"{url}/graphql", wait_until="load")
            page.wait_for_selector(".graphiql-execute-button", timeout=20_000)
            assert "DistrictOpenData" in page.content()  # the demo's first example, ready in the first tab
            page.click(".graphiql-execute-button")
            page.wait_for_function(RESULT_READY, timeout=20_000)
            first_run = answers(2)
            hits_before = apq_hits(url)
            with page.expect_response(
                lambda response: response.request.method == "POST" and response.url.endswith("/graphql"), timeout=20_000
            ):
                page.click(".graphiql-execute-button")
            page.wait_for_function(RESULT_READY, timeout=20_000)
            answers(3)
            assert '"population": 185825' in page.inner_text(".result-window")
        finally:
            browser.close()
    # first run: the hash alone, "not found", then the document with its hash
    (hash_only, missing), (with_text, first_answer) = sent[0], sent[1]
    assert first_run == 2
    assert "query" not in hash_only and hash_only["extensions"]["persistedQuery"]["version"] == 1
    assert missing["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert with_text["query"] and with_text["extensions"] == hash_only["extensions"]
    assert first_answer["data"]["district"]["name"] == "Buttes-Montmartre"
    # second run: one request, the hash alone, answered
    assert len(sent) == 3
    second, second_answer = sent[2]
    assert "query" not in second and second["extensions"] == hash_only["extensions"]
    assert second_answer["data"]["district"]["population"] == 185825 and "errors" not in second_answer
    assert apq_hits(url) >= hits_before + 1  # the gateway found the document by its hash
