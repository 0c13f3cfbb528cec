"""Persisted documents against `citygate serve` as a real process: Apollo's APQ over GET and POST
(not found, registration, hash mismatch, versions, limits, the bound on what is kept), trusted
documents pushed with `citygate documents push` (SQLite and PostgreSQL, shared by two gateways,
cached in a real Redis) and the safelist mode of the policy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
import yaml

from gateway.persisted import ApqCache, ManifestError, read_manifest, text_hash
from tests.http.edge import CITYGATE, ServeProcess
from tests.postgres import temporary_database
from tests.workers import REDIS_URL

APP_KEY = "ck_persisted-app-not-a-secret"
SAFE_KEY = "ck_persisted-safe-not-a-secret"
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"

DISTRICTS = "query Districts { districts { code } }"
DISTRICT = "query District($code: String!) { district(code: $code) { name } }"
MANIFEST = {
    "format": "apollo-persisted-query-manifest",
    "version": 1,
    "operations": [
        {"id": text_hash(DISTRICTS), "name": "Districts", "type": "query", "body": DISTRICTS},
        {"id": "district-by-code", "name": "District", "type": "query", "body": DISTRICT},
    ],
}
CODES = {"districts": [{"code": "75105"}, {"code": "75111"}, {"code": "75118"}]}


def policy(public: str = "allow") -> dict:
    return {
        "purposes": {"probing": {"description": "Ask the gateway whether it answers"}},
        "clients": {
            "app": {
                "name": "App",
                "purposes": ["probing"],
                "api_key_sha256": hashlib.sha256(APP_KEY.encode()).hexdigest(),
            },
            "safe": {
                "name": "Safe",
                "purposes": ["probing"],
                "api_key_sha256": hashlib.sha256(SAFE_KEY.encode()).hexdigest(),
                "persisted_documents": "safelist",
            },
        },
        "persisted_documents": {"public": public},
    }


@pytest.fixture(scope="module")
def files(world_server, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("persisted")
    (directory / "supergraph.graphql").write_text(world_server.supergraph())
    (directory / "policy.yaml").write_text(yaml.safe_dump(policy()))
    (directory / "public-safelist.yaml").write_text(yaml.safe_dump(policy("safelist")))
    (directory / "manifest.json").write_text(json.dumps(MANIFEST))
    return directory


def serve(
    files: Path, store: str, *arguments: str, policy_file: str = "policy.yaml", env: dict[str, str] | None = None
) -> ServeProcess:
    return ServeProcess(
        [
            "--supergraph",
            str(files / "supergraph.graphql"),
            "--policy",
            str(files / policy_file),
            "--store",
            store,
            *arguments,
        ],
        env or {},
    )


@pytest.fixture(scope="module")
def sqlite_store(files) -> str:
    return f"sqlite:///{files / 'gateway.db'}"


@pytest.fixture(scope="module")
def gateway(files, sqlite_store):
    running = serve(files, sqlite_store, "--max-aliases", "2")
    yield running
    running.stop()


def post(gateway: ServeProcess, body: dict, *, key: str | None = None, accept: str = JSON) -> httpx.Response:
    headers = {"accept": accept, **({"x-api-key": key} if key else {})}
    return httpx.post(gateway.url + "/graphql", json=body, headers=headers, timeout=30)


def get(gateway: ServeProcess, params: dict, *, key: str | None = None) -> httpx.Response:
    headers = {
        "apollo-require-preflight": "true",
        "accept": JSON,
        **({"x-api-key": key} if key else {}),
    }  # CSRF prevention
    return httpx.get(gateway.url + "/graphql", params=params, headers=headers, timeout=30)


def apq(query: str, version: object = 1) -> dict:
    return {"persistedQuery": {"version": version, "sha256Hash": text_hash(query)}}


def code_of(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def push(manifest: Path, client: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CITYGATE, "documents", "push", str(manifest), "--client", client, "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- APQ ------------------------------------------------------------------------------------------


def test_apq_over_post_hash_first_then_the_text_then_the_hash_alone(gateway):
    query = "query ApqPost { districts { code } }"
    missing = post(gateway, {"extensions": apq(query)})
    # as Apollo Router answers: 200, Apollo's own message (its clients read it), not to be cached
    assert missing.status_code == 200
    assert missing.json()["errors"] == [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
    assert missing.headers["cache-control"] == "private, no-cache, must-revalidate"
    registered = post(gateway, {"query": query, "extensions": apq(query)})
    assert registered.status_code == 200 and registered.json()["data"] == CODES
    again = post(gateway, {"extensions": apq(query)}, accept=GRAPHQL_RESPONSE)
    assert again.status_code == 200 and again.json()["data"] == CODES


def test_apq_over_get_with_variables(gateway):
    query = "query ApqGet($code: String!) { district(code: $code) { name } }"
    extensions = json.dumps(apq(query))
    variables = json.dumps({"code": "75111"})
    assert code_of(get(gateway, {"extensions": extensions, "variables": variables})) == "PERSISTED_QUERY_NOT_FOUND"
    registered = get(gateway, {"query": query, "extensions": extensions, "variables": variables})
    assert registered.json()["data"] == {"district": {"name": "Popincourt"}}
    hit = get(gateway, {"extensions": extensions, "variables": json.dumps({"code": "75105"})})
    assert hit.status_code == 200 and hit.json()["data"] == {"district": {"name": "Panthéon"}}


def test_a_hash_that_is_not_the_texts_is_refused_and_nothing_is_kept(gateway):
    query = "query Mismatch { districts { code } }"
    wrong = {"persistedQuery": {"version": 1, "sha256Hash": text_hash(query + " ")}}
    refused = post(gateway, {"query": query, "extensions": wrong})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"message": "provided sha does not match query", "extensions": {"code": "PERSISTED_QUERY_HASH_MISMATCH"}}
    ]
    assert code_of(post(gateway, {"extensions": wrong})) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_another_version_than_1_is_refused(gateway, version):
    query = "{ districts { code } }"
    for body in ({"extensions": apq(query, version)}, {"query": query, "extensions": apq(query, version)}):
        response = post(gateway, body)
        assert response.status_code == 400 and code_of(response) == "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (
            "query TooManyAliases { a: districts { code } b: districts { code } c: districts { code } }",
            "MAX_ALIASES_EXCEEDED",
        ),
        ("query Unknown { districts { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        ("query Broken { districts { code }", "GRAPHQL_PARSE_FAILED"),
    ],
)
def test_a_document_a_limit_refuses_is_never_kept(gateway, query, code):
    refused = post(gateway, {"query": query, "extensions": apq(query)})
    assert code_of(refused) == code
    assert code_of(post(gateway, {"extensions": apq(query)})) == "PERSISTED_QUERY_NOT_FOUND"


def test_bad_persisted_query_extensions_are_refused_with_a_code(gateway):
    assert code_of(post(gateway, {"extensions": {"persistedQuery": "abc"}})) == "BAD_REQUEST"
    assert code_of(post(gateway, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 12}}})) == "BAD_REQUEST"
    assert (
        code_of(post(gateway, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "x" * 201}}}))
        == "BAD_REQUEST"
    )
    assert code_of(post(gateway, {"documentId": 7})) == "BAD_REQUEST"
    assert post(gateway, {"extensions": {}}).status_code == 400  # no query, no document: as before


def test_apq_keeps_a_bounded_number_of_bytes_per_process(files):
    """A cap of 20 kB: documents registered past it evict the least recently used; hashes sent
    alone and unknown are not kept at all."""
    bounded = serve(files, f"sqlite:///{files / 'bounded.db'}", env={"CITYGATE_APQ_CACHE_BYTES": "20000"})
    try:
        queries = [f"query Bounded{i} {{ districts {{ code }} }}" for i in range(150)]
        with httpx.Client(base_url=bounded.url, timeout=30) as client:
            for query in queries:
                assert client.post("/graphql", json={"query": query, "extensions": apq(query)}).json()["data"] == CODES
            for _ in range(300):  # invented hashes: all missing, none kept
                invented = {"persistedQuery": {"version": 1, "sha256Hash": uuid.uuid4().hex * 2}}
                assert (
                    client.post("/graphql", json={"extensions": invented}).json()["errors"][0]["extensions"]["code"]
                    == "PERSISTED_QUERY_NOT_FOUND"
                )
            assert (
                client.post("/graphql", json={"extensions": apq(queries[0])}).json()["errors"][0]["extensions"]["code"]
                == "PERSISTED_QUERY_NOT_FOUND"
            )
            assert client.post("/graphql", json={"extensions": apq(queries[-1])}).json()["data"] == CODES
    finally:
        bounded.stop()


def test_the_apq_cache_counts_its_bytes_and_never_passes_its_cap():
    cache = ApqCache(50_000)
    for i in range(10_000):
        text = f"query Q{i} {{ districts {{ code }} }}" + " " * (i % 300)
        cache.put("app", text_hash(text), text)
        assert cache.bytes <= 50_000
    assert 50 < len(cache) < 200
    huge = "{ districts { code } }" + " " * 60_000
    cache.put("app", text_hash(huge), huge)  # larger than the cap: not kept (nothing evicted for it)
    assert cache.get("app", text_hash(huge)) is None and len(cache) > 50
    assert len(ApqCache(0)) == 0 and ApqCache(0).get("app", "x") is None


def test_a_hash_one_requester_registered_is_unknown_to_every_other(gateway):
    """Otherwise anyone could test whether someone sent an exact document (a resident's id or a
    report's text written inline) by sending its hash alone."""
    query = '{ district(code: "75111") { name } } # ' + uuid.uuid4().hex
    assert post(gateway, {"query": query, "extensions": apq(query)}, key=APP_KEY).json()["data"]
    assert post(gateway, {"extensions": apq(query)}, key=APP_KEY).json()["data"]  # the client's own: known
    assert code_of(post(gateway, {"extensions": apq(query)})) == "PERSISTED_QUERY_NOT_FOUND"  # the public
    # and the other way round: what the public registered is not the client's
    public = '{ district(code: "75105") { name } } # ' + uuid.uuid4().hex
    assert post(gateway, {"query": public, "extensions": apq(public)}).json()["data"]
    assert post(gateway, {"extensions": apq(public)}).json()["data"]
    assert code_of(post(gateway, {"extensions": apq(public)}, key=APP_KEY)) == "PERSISTED_QUERY_NOT_FOUND"


def test_apq_turned_off_and_the_public_in_safelist_mode(files):
    closed = serve(
        files, f"sqlite:///{files / 'closed.db'}", policy_file="public-safelist.yaml", env={"CITYGATE_APQ": "false"}
    )
    try:
        query = "query Off { districts { code } }"
        # the public may only run its trusted documents: an APQ hash unknown to them is "not found"
        # (an APQ client sends the text next), the text is refused
        assert code_of(post(closed, {"extensions": apq(query)})) == "PERSISTED_QUERY_NOT_FOUND"
        refused = post(closed, {"query": query})
        assert refused.status_code == 403 and code_of(refused) == "PERSISTED_DOCUMENT_REQUIRED"
        # a client in allow mode: APQ is off (as Apollo Router says it), its plain text runs
        off = post(closed, {"extensions": apq(query)}, key=APP_KEY)
        assert off.status_code == 200 and off.json()["errors"] == [
            {"message": "PersistedQueryNotSupported", "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"}}
        ]
        assert (
            code_of(post(closed, {"query": query, "extensions": apq(query)}, key=APP_KEY))
            == "PERSISTED_QUERY_NOT_SUPPORTED"
        )
        assert post(closed, {"query": query}, key=APP_KEY).json()["data"] == CODES
        # the public's trusted documents, pushed while the gateway runs: they run, by id and as text
        assert push(files / "manifest.json", "public", f"sqlite:///{files / 'closed.db'}").returncode == 0
        assert post(closed, {"documentId": "district-by-code", "variables": {"code": "75118"}}).json()["data"] == {
            "district": {"name": "Buttes-Montmartre"}
        }
        assert post(closed, {"query": DISTRICTS}).json()["data"] == CODES
        assert (
            post(closed, {"extensions": apq(DISTRICTS)}).json()["data"] == CODES
        )  # APQ off: a trusted document's hash still runs
    finally:
        closed.stop()


# -- trusted documents (SQLite) ---------------------------------------------------------------------


def test_push_and_list_with_the_cli(files, gateway, sqlite_store):
    pushed = push(files / "manifest.json", "safe", sqlite_store)
    assert pushed.returncode == 0, pushed.stderr
    assert "safe: 2 document(s) added, 0 already stored" in pushed.stdout
    again = push(files / "manifest.json", "safe", sqlite_store)
    assert again.returncode == 0 and "0 document(s) added, 2 already stored" in again.stdout
    relay = files / "relay.json"
    relay.write_text(json.dumps({"app-districts": DISTRICTS}))  # Relay's / Hive's {id: text}
    assert push(relay, "app", sqlite_store).returncode == 0
    listed = subprocess.run(
        [*CITYGATE, "documents", "list", "--store", sqlite_store, "--json"], capture_output=True, text=True, timeout=60
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {(row["client"], row["id"], row["name"], row["sha256"]) for row in rows} >= {
        ("app", "app-districts", None, text_hash(DISTRICTS)),
        ("safe", text_hash(DISTRICTS), "Districts", text_hash(DISTRICTS)),
        ("safe", "district-by-code", "District", text_hash(DISTRICT)),
    }
    assert "districts {" not in listed.stdout  # never the text
    only_app = subprocess.run(
        [*CITYGATE, "documents", "list", "--store", sqlite_store, "--client", "app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "app-districts" in only_app.stdout and "district-by-code" not in only_app.stdout


def test_the_cli_refuses_a_changed_document_and_a_bad_manifest(files, sqlite_store):
    assert push(files / "manifest.json", "safe", sqlite_store).returncode == 0
    changed = files / "changed.json"
    changed.write_text(json.dumps({"district-by-code": "{ districts { code } }", "new-one": "{ districts { name } }"}))
    refused = push(changed, "safe", sqlite_store)
    assert refused.returncode == 1 and "district-by-code" in refused.stderr and "Traceback" not in refused.stderr
    listed = subprocess.run(
        [*CITYGATE, "documents", "list", "--store", sqlite_store, "--client", "safe", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "new-one" not in listed.stdout  # nothing written
    bad = files / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": "x", "body": "{ districts {"}, {"body": "{ a }"}],
            }
        )
    )
    problems = push(bad, "safe", sqlite_store)
    assert (
        problems.returncode == 2
        and "operations[0]: the body does not parse" in problems.stderr
        and "operations[1]: the id" in problems.stderr
    )
    assert push(files / "manifest.json", "Not A Client", sqlite_store).returncode == 2
    missing = push(files / "nowhere.json", "safe", sqlite_store)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_read_manifest_reads_both_formats_and_names_every_problem():
    apollo = read_manifest(MANIFEST)
    assert [(d.id, d.name, d.type, d.sha256) for d in apollo] == [
        (text_hash(DISTRICTS), "Districts", "query", text_hash(DISTRICTS)),
        ("district-by-code", "District", "query", text_hash(DISTRICT)),
    ]
    assert [d.id for d in read_manifest({"a": DISTRICTS, "b": DISTRICT})] == ["a", "b"]
    with pytest.raises(ManifestError) as error:
        read_manifest(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": "a", "body": DISTRICTS},
                    {"id": "a", "body": DISTRICTS},
                    {"id": "c", "body": DISTRICTS, "type": "fetch"},
                ],
            }
        )
    assert error.value.problems == [
        "operations[1]: the id 'a' is there twice",
        "operations[2]: the type must be one of query, mutation, subscription",
    ]
    for bad in ([DISTRICTS], {"format": "other", "version": 1}, {}):
        with pytest.raises(ManifestError):
            read_manifest(bad)


def test_safelist_mode_runs_only_the_clients_trusted_documents(files, gateway, sqlite_store):
    assert push(files / "manifest.json", "safe", sqlite_store).returncode == 0
    by_id = post(gateway, {"documentId": "district-by-code", "variables": {"code": "75105"}}, key=SAFE_KEY)
    assert by_id.json()["data"] == {"district": {"name": "Panthéon"}}
    assert post(gateway, {"documentId": f"sha256:{text_hash(DISTRICTS)}"}, key=SAFE_KEY).json()["data"] == CODES
    assert get(gateway, {"documentId": "district-by-code", "variables": '{"code": "75111"}'}, key=SAFE_KEY).json()[
        "data"
    ] == {"district": {"name": "Popincourt"}}
    assert post(gateway, {"query": DISTRICTS}, key=SAFE_KEY).json()["data"] == CODES  # the text of a trusted document
    assert (
        post(gateway, {"extensions": apq(DISTRICTS)}, key=SAFE_KEY).json()["data"] == CODES
    )  # its hash, as an APQ client sends it
    other = "query Other { districts { name } }"
    refused = post(gateway, {"query": other}, key=SAFE_KEY, accept=GRAPHQL_RESPONSE)
    assert (
        refused.status_code == 403
        and code_of(refused) == "PERSISTED_DOCUMENT_REQUIRED"
        and "data" not in refused.json()
    )
    assert code_of(post(gateway, {"extensions": apq(other)}, key=SAFE_KEY)) == "PERSISTED_QUERY_NOT_FOUND"
    assert (
        code_of(post(gateway, {"query": other, "extensions": apq(other)}, key=SAFE_KEY))
        == "PERSISTED_DOCUMENT_REQUIRED"
    )
    unknown = post(gateway, {"documentId": "nope"}, key=SAFE_KEY)
    assert unknown.status_code == 404 and code_of(unknown) == "PERSISTED_DOCUMENT_NOT_FOUND"
    both = post(gateway, {"documentId": "district-by-code", "query": DISTRICT}, key=SAFE_KEY)
    assert both.status_code == 400 and code_of(both) == "BAD_REQUEST"


def test_documents_belong_to_their_client(files, gateway, sqlite_store):
    relay = files / "relay-app.json"
    relay.write_text(json.dumps({"app-districts": DISTRICTS}))
    assert push(relay, "app", sqlite_store).returncode == 0
    assert push(files / "manifest.json", "safe", sqlite_store).returncode == 0
    assert post(gateway, {"documentId": "app-districts"}, key=APP_KEY).json()["data"] == CODES
    assert (
        code_of(post(gateway, {"documentId": "district-by-code"}, key=APP_KEY)) == "PERSISTED_DOCUMENT_NOT_FOUND"
    )  # safe's, not app's
    assert code_of(post(gateway, {"documentId": "app-districts"}, key=SAFE_KEY)) == "PERSISTED_DOCUMENT_NOT_FOUND"
    assert code_of(post(gateway, {"documentId": "app-districts"})) == "PERSISTED_DOCUMENT_NOT_FOUND"  # nor the public's
    assert (
        post(gateway, {"query": "query Free { districts { name } }"}, key=APP_KEY).status_code == 200
    )  # allow: any document


# -- trusted documents shared by replicas (PostgreSQL), cached in Redis ----------------------------


@pytest.fixture
async def pg_store():
    async with temporary_database("citygate_h2") as url:
        yield url


@pytest.fixture
def redis_db():
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter("citygate:documents:*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("citygate:documents:*"):
        client.delete(key)
    client.close()


async def test_two_gateways_on_one_postgresql_serve_the_documents_pushed_once_and_redis_caches_them(
    files, pg_store, redis_db
):
    assert push(files / "manifest.json", "safe", pg_store).returncode == 0
    with_redis = {"CITYGATE_REDIS_URL": REDIS_URL, "CITYGATE_PERSISTED_DOCUMENTS_REDIS_TTL": "120"}
    remember_misses = {
        "CITYGATE_PERSISTED_DOCUMENTS_MISS_TTL": "3600"
    }  # only the push's notification can make them forget
    a = serve(files, pg_store, env=remember_misses)
    b = serve(files, pg_store, env={**with_redis, **remember_misses})
    started = [a, b]
    try:
        for gateway in (a, b):
            assert post(
                gateway, {"documentId": "district-by-code", "variables": {"code": "75105"}}, key=SAFE_KEY
            ).json()["data"] == {"district": {"name": "Panthéon"}}
            for _ in range(2):  # missing: remembered so by each replica
                assert (
                    code_of(post(gateway, {"documentId": "late-names"}, key=SAFE_KEY)) == "PERSISTED_DOCUMENT_NOT_FOUND"
                )
        late = files / "late.json"
        late.write_text(json.dumps({"late-names": "query Names { districts { name } }"}))
        assert push(late, "safe", pg_store).returncode == 0  # while both run: no restart, no reload
        for gateway in (a, b):
            # each replica hears the push (PostgreSQL NOTIFY) and forgets what it knew missing
            answer = served_once_heard(gateway, {"documentId": "late-names"}, key=SAFE_KEY)
            assert answer["data"]["districts"][0] == {"name": "Panthéon"}
        # b kept what it read in Redis, for as long as configured
        key = "citygate:documents:safe:id:district-by-code"
        assert redis_db.get(key) == DISTRICT.encode() and 0 < redis_db.ttl(key) <= 120
        # gone from the store (an operator's hand, not the CLI's), a fresh gateway still finds it in
        # Redis; one without Redis does not
        connection = await asyncpg.connect(pg_store)
        try:
            await connection.execute("DELETE FROM persisted_documents WHERE id = 'district-by-code'")
        finally:
            await connection.close()
        c = serve(files, pg_store, env=with_redis)
        started.append(c)
        d = serve(files, pg_store)
        started.append(d)
        assert post(c, {"documentId": "district-by-code", "variables": {"code": "75111"}}, key=SAFE_KEY).json()[
            "data"
        ] == {"district": {"name": "Popincourt"}}
        assert (
            code_of(post(d, {"documentId": "district-by-code", "variables": {"code": "75111"}}, key=SAFE_KEY))
            == "PERSISTED_DOCUMENT_NOT_FOUND"
        )
    finally:
        for gateway in started:
            gateway.stop()


def served_once_heard(gateway: ServeProcess, body: dict, *, key: str, tries: int = 300) -> dict:
    """The answer once the gateway has heard of a change notified asynchronously (polled, no
    deadline asserted: a loaded machine hears later)."""
    for _ in range(tries):
        answer = post(gateway, body, key=key).json()
        if "data" in answer:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"never served: {answer}")


async def test_ids_known_missing_ask_the_store_once_until_a_push_or_their_ttl(tmp_path):
    """The negative cache on a real SQLite store: a document written behind the process's back (as
    `documents push` does from its own process) is not seen while the miss is remembered (the store
    is not asked), is seen once the misses are forgotten (a push notified) or have expired."""
    from gateway.persisted import DocumentAsk, DocumentRefusal, PersistedDocuments, TrustedDocuments
    from gateway.store import Store, TrustedDocument, put_documents

    store = Store(f"sqlite:///{tmp_path / 'misses.db'}")
    await store.create()
    trusted = TrustedDocuments(store, cache_entries=3, miss_ttl=3600)
    documents = PersistedDocuments(trusted=trusted)
    names = "query Names { districts { name } }"
    try:
        for _ in range(2):
            with pytest.raises(DocumentRefusal) as refusal:
                await documents.resolve(DocumentAsk(document_id="late"), "safe", "safelist")
            assert refusal.value.code == "PERSISTED_DOCUMENT_NOT_FOUND"
        assert trusted.misses == 1
        await put_documents(store, "safe", [TrustedDocument("late", text_hash(names), names)])
        assert await trusted.find("safe", document_id="late") is None  # remembered missing: the store was not asked
        documents.forget_misses()  # what the change listener does when PostgreSQL notifies a push
        assert (await documents.resolve(DocumentAsk(document_id="late"), "safe", "safelist")).query == names
        # bounded: a client inventing ids keeps at most cache_entries misses
        for n in range(50):
            assert await trusted.find("safe", document_id=f"invented-{n}") is None
            assert await trusted.find("safe", sha256=f"{n:064x}") is None
        assert trusted.misses == 3
        assert await trusted.find("safe", document_id="late") == names  # found ones are kept apart
        # without a notification (SQLite, CLI pushes): a miss lasts miss_ttl seconds at most
        short = TrustedDocuments(store, miss_ttl=0.2)
        assert await short.find("other", document_id="later") is None
        await put_documents(store, "other", [TrustedDocument("later", text_hash(names), names)])
        assert await short.find("other", document_id="later") is None
        await asyncio.sleep(0.3)
        assert await short.find("other", document_id="later") == names
        # 0: no miss remembered
        never = TrustedDocuments(store, miss_ttl=0)
        assert await never.find("other", document_id="nope") is None and never.misses == 0
    finally:
        await documents.close()
        await store.close()


def test_trusted_documents_are_served_when_redis_is_down(files):
    store = f"sqlite:///{files / 'redis-down.db'}"
    assert push(files / "manifest.json", "safe", store).returncode == 0
    down = serve(files, store, env={"CITYGATE_REDIS_URL": "redis://127.0.0.1:1/0"})  # nothing listens there
    try:
        assert post(down, {"documentId": "district-by-code", "variables": {"code": "75105"}}, key=SAFE_KEY).json()[
            "data"
        ] == {"district": {"name": "Panthéon"}}
    finally:
        down.stop()


# -- the policy's modes, and a store that fails ------------------------------------------------------


def test_the_policy_reads_the_modes_and_refuses_others():
    from gateway.policy import PolicyError, parse_policy

    read = parse_policy(policy("safelist"))
    assert (
        read.clients["safe"].persisted_documents,
        read.clients["app"].persisted_documents,
        read.public_persisted_documents,
    ) == ("safelist", "allow", "safelist")
    assert parse_policy({}).public_persisted_documents == "allow"
    with pytest.raises(PolicyError) as error:
        parse_policy(
            {
                "clients": {"x": {"persisted_documents": "strict"}, "public": {}},
                "persisted_documents": {"public": "no", "default": "allow"},
            }
        )
    assert sorted(error.value.problems) == [
        "clients.public: 'public' names the public requester (no credentials); give the client another id",
        "clients.x.persisted_documents must be one of allow, safelist",
        "persisted_documents.public must be one of allow, safelist",
        "persisted_documents: unknown key 'default'",
    ]


async def test_a_store_that_cannot_be_read_refuses_trusted_documents_with_a_code():
    from gateway.persisted import DocumentAsk, DocumentRefusal, PersistedDocuments, TrustedDocuments
    from gateway.store import Store, StoreTimeouts

    store = Store(
        "postgresql://postgres@127.0.0.1:1/none", StoreTimeouts(connect=0.5, statement=0.5)
    )  # nothing listens there
    documents = PersistedDocuments(trusted=TrustedDocuments(store))
    try:
        for ask, mode in (
            (DocumentAsk(document_id="district-by-code"), "allow"),
            (DocumentAsk(query=DISTRICTS), "safelist"),
        ):
            with pytest.raises(DocumentRefusal) as refusal:
                await documents.resolve(ask, "safe", mode)
            assert (refusal.value.code, refusal.value.status) == ("STORE_UNAVAILABLE", 503)
        assert (
            await documents.resolve(DocumentAsk(query=DISTRICTS), "app", "allow")
        ).query == DISTRICTS  # allow: the store is not asked
    finally:
        await documents.close()
        await store.close()
