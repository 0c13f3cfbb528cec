"""The privacy world behind a real gateway: policy, JWKS, clients, a store (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.app import registry_app
from gateway.consent import AuditLog, Ledger
from gateway.executor import ExecutionResult, FieldGuard
from gateway.policy import parse_policy
from gateway.privacy import PrivacyGuard
from gateway.store import Store
from gateway.supergraph import PersonalField
from tests.privacy import world
from tests.registry.conftest import POSTGRES_URL, reset_postgres
from tests.world.server import AppServer, WorldServer

ISSUER = "https://id.citygate.test"
OPERATOR_KEY = "cgo_privacy-tests-operator-key-not-a-secret"
CLIENT_KEYS = {  # test-only keys: the policy holds their SHA-256
    "city-app": "ck_city-app-test-key",
    "technician-console": "ck_technician-test-key",
    "parking-app": "ck_parking-app-test-key",
    "stats-portal": "ck_stats-portal-test-key",
}


def policy_document(jwks_file: Path) -> dict:
    def client(name, purposes, roles=(), collects=False):
        return {
            "name": name,
            "purposes": list(purposes),
            "roles": list(roles),
            "collects_consent": collects,
            "api_key_sha256": hashlib.sha256(CLIENT_KEYS[name].encode()).hexdigest(),
        }

    return {
        "version": "test-2026-11",
        "controller": {
            "name": "Ville de Paris (tests)",
            "jurisdiction": "FR",
            "policy_url": "https://paris.example/privacy",
        },
        "purposes": {
            "service-delivery": {"description": "Deliver the city's services"},
            "street-maintenance": {"description": "Handle street issues"},
            "booking": {"description": "Book parking spots"},
            "marketing": {"description": "Offers"},
            "statistics": {"description": "Open data"},
        },
        "clients": {
            "city-app": client("city-app", ["service-delivery"], ["city"], collects=True),
            "technician-console": client("technician-console", ["street-maintenance"], ["technician"]),
            "parking-app": client("parking-app", ["booking", "marketing"], ["partner"]),
            "stats-portal": client("stats-portal", ["statistics"]),
        },
        "legal_bases": [
            {
                "name": "street-issues-public-task",
                "basis": "public_task",
                "roles": ["technician"],
                "purposes": ["street-maintenance"],
                "categories": ["user.contact", "user.location", "user.name"],
                "sources": ["city"],  # the people and reports subgraphs' owner
            }
        ],
        "masking": {
            "default": "null",
            "categories": {
                "user.contact.email": "partial",
                "user.contact.phone_number": "partial",
                "user.location.precise": "coarsen",
                "user.unique_id": "pseudonymise",
            },
        },
        "aggregates": {"k": 2},
        "identity": {
            "issuers": [{"issuer": ISSUER, "audience": "citygate", "jwks_file": str(jwks_file), "client_claim": "azp"}]
        },
        # default private makes a resident's id personal; the test city publishes it (an operator's
        # say: no subgraph may, the key being shared by the city and parking) so that the tests of
        # decisions read it as before
        "privacy": {"non_personal": ["Resident.id"]},
    }


class Signer:
    """Test signing keys (generated per session) and a JWKS file with their public halves."""

    def __init__(self, directory: Path) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec-1", use="sig", alg="ES256")
        self.rsa_public_jwk = rsa_jwk
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))

    def token(self, sub: str, azp: str = "city-app", *, alg: str = "RS256", **overrides) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "citygate", "sub": sub, "azp": azp, "iat": now, "exp": now + 600, **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        key, kid = (self.rsa, "rsa-1") if alg == "RS256" else (self.ec, "ec-1")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="session")
def privacy_world():
    server = WorldServer(world.SUBGRAPHS).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def signer(tmp_path_factory):
    return Signer(tmp_path_factory.mktemp("keys"))


def connectors_folder(directory: Path, server: WorldServer) -> Path:
    for name in world.SUBGRAPHS:
        folder = directory / name
        folder.mkdir(parents=True)
        owner = "parking" if name == "parking" else "city"
        (folder / "manifest.yaml").write_text(
            f"name: {name}\nowner: {owner}\nkind: subgraph\nurl: {server.url(name)}\n"
        )
    return directory


class City:
    """A running gateway over the privacy world, and ways to ask it things."""

    def __init__(self, store_url: str, folder: Path, policy: dict, signer: Signer) -> None:
        self.signer = signer
        self.policy_path = folder / "policy.yaml"  # reloads read this file
        self.policy_path.write_text(yaml.safe_dump(policy))
        self.gateway = registry_app(
            folder=folder,
            store_url=store_url,
            policy=parse_policy(policy),
            policy_path=self.policy_path,
            operator_key=OPERATOR_KEY,
        )
        self.server = AppServer(self.gateway.app, lifespan="on").start()
        self.client = httpx.AsyncClient(base_url=self.server.base_url, timeout=30)

    async def ask(
        self,
        query: str,
        variables: dict | None = None,
        *,
        client: str | None = None,
        resident: str | None = None,
        purpose: str | None = None,
        token: str | None = None,
    ) -> dict:
        headers = {}
        if client is not None and resident is None and token is None:
            headers["x-api-key"] = CLIENT_KEYS[client]
        if resident is not None:
            token = self.signer.token(resident, client or "city-app")
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if purpose is not None:
            headers["x-citygate-purpose"] = purpose
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = response.json()
        body["_status"] = response.status_code
        return body

    async def grant(
        self, resident: str, recipient: str, purpose: str, categories: list[str], expires_in_days: int | None = None
    ) -> dict:
        answer = await self.ask(
            "mutation($r: String!, $p: String!, $c: [String!]!, $e: Int) { grantConsent(recipient: $r, purpose: $p, categories: $c, expiresInDays: $e) { consent { id active } receipt } }",
            {"r": recipient, "p": purpose, "c": categories, "e": expires_in_days},
            resident=resident,
        )
        assert "errors" not in answer, answer
        return answer["data"]["grantConsent"]

    async def withdraw(
        self, resident: str, consent_id: str, client: str = "city-app", purpose: str | None = None
    ) -> dict:
        answer = await self.ask(
            "mutation($id: ID!) { withdrawConsent(consentId: $id) { id active withdrawnAt } }",
            {"id": consent_id},
            resident=resident,
            client=client,
            purpose=purpose,
        )
        assert "errors" not in answer, answer
        return answer["data"]["withdrawConsent"]

    async def close(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(self.server.stop)


@pytest.fixture(params=["sqlite", "postgresql"])
async def city(request, tmp_path, privacy_world, signer):
    world.reset()
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp_path / 'city.db'}"
    else:
        await reset_postgres()
        store_url = POSTGRES_URL
    folder = connectors_folder(tmp_path / f"connectors-{uuid.uuid4().hex[:6]}", privacy_world)
    running = City(store_url, folder, policy_document(signer.jwks_file), signer)
    running.store_url = store_url  # type: ignore[attr-defined]
    yield running
    await running.close()


@pytest.fixture
async def sqlite_city(tmp_path, privacy_world, signer):
    """For tests that need one store only."""
    world.reset()
    folder = connectors_folder(tmp_path / "connectors", privacy_world)
    running = City(f"sqlite:///{tmp_path / 'city.db'}", folder, policy_document(signer.jwks_file), signer)
    running.store_url = f"sqlite:///{tmp_path / 'city.db'}"  # type: ignore[attr-defined]
    yield running
    await running.close()


# Resident.email as the shaper hands it to the privacy stage, for tests that drive the guard alone
EMAIL = FieldGuard(
    "personal", PersonalField("user.contact.email"), "_cg_subject", "Resident", "email", sources=frozenset({"city"})
)


def shape_email(decisions) -> tuple[dict, list]:
    """What shaping `{ email }` of resident r1 gives under `decisions`: (data, errors)."""
    return {"email": decisions.place(EMAIL, "r1", "amelie@example.org", None, "email")}, []


async def settle_email(guard, requester, decisions, request_id: str, *, refusal_raises: bool = False):
    """Shape and settle r1's e-mail; returns (data, what `decided` was called with, audited)."""
    result = ExecutionResult(*shape_email(decisions), reshape=shape_email)
    decided: list = []
    audited = await guard.settle(
        requester, decisions, result, request_id, decided.append, refusal_raises=refusal_raises
    )
    return result.data, decided, audited


@pytest.fixture
async def bare_guard(tmp_path, signer):
    """A PrivacyGuard over its own SQLite store, without a gateway around it: (guard, store)."""
    policy = parse_policy(policy_document(signer.jwks_file))
    store = Store(f"sqlite:///{tmp_path / 'guard.db'}")
    await store.create()
    ledger = Ledger(store, policy)
    guard = PrivacyGuard(policy, ledger, AuditLog(store), b"test-pseudonym-key")
    yield guard, store
    await store.close()


def hold_reads(store) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the store's next consent reads return only once `release` is set (and say when a read
    is done by setting `read_done`); returns (read_done, release). Restore with `restore_reads`."""
    read_done, release = asyncio.Event(), asyncio.Event()
    real_read = store.consent_events_for

    async def slow_read(*args, **kwargs):
        events = await real_read(*args, **kwargs)  # read before a change is written...
        read_done.set()
        await release.wait()  # ...and returned after it
        return events

    store.real_consent_events_for = real_read
    store.consent_events_for = slow_read
    return read_done, release


def restore_reads(store) -> None:
    store.consent_events_for = store.real_consent_events_for
