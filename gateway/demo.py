"""The demo city: every connector of `connectors/`, the gateway in front, in one command.

The city's services run in-process; the partners' subgraphs (schema.py in their folders) and
REST APIs (api.py in the folders of `rest` connectors) are served by a second server on loopback
and reached over HTTP, as real partners would be. The
store is a fresh SQLite file under `.citygate/`. Every secret — the operator key, the clients'
API keys, the partners' keys, the identity provider's signing key and the residents' tokens — is generated at start,
printed once and written to `.citygate/demo-credentials.json` for scripts; none is committed.
Demo consents are recorded for some residents. For demos only: it listens on loopback, and its
demo-only sign-in (`/demo/sign-in`, for the privacy centre at /privacy) hands the demo residents'
tokens to whoever asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from strawberry.asgi import GraphQL

from .app import Gateway, registry_app
from .http import GraphiQL
from .policy import parse_policy
from .registry import load_python_schema, new_key, read_manifest_folder

ISSUER = "https://id.demo.citygate.local"
CLIENTS = {
    "city-app": {
        "name": "Paris, the city's app",
        "purposes": ["service-delivery"],
        "roles": ["city"],
        "collects_consent": True,
    },
    # `partner`: the connector owner running the app, so a consent to the app covers its subgraphs too
    "parkr-app": {"name": "Parkr", "purposes": ["booking", "marketing"], "roles": ["parkr"], "partner": "parkr"},
    "voisinage-app": {
        "name": "Voisinage",
        "purposes": ["neighbourhood-help"],
        "roles": ["voisinage"],
        "partner": "voisinage",
    },
    "tablehote-app": {"name": "Table d'hôte", "purposes": ["dining"], "roles": ["tablehote"], "partner": "tablehote"},
    "cyclo-app": {"name": "Cyclo", "purposes": ["bike-sharing"], "roles": ["cyclo"], "partner": "cyclo"},
    "technician-console": {"name": "Technicians' console", "purposes": ["street-maintenance"], "roles": ["technician"]},
    "open-data-portal": {"name": "Open data portal", "purposes": ["statistics"], "roles": []},
}
DEMO_RESIDENTS = ("r0001", "r0002", "r0003")


def demo_policy(client_keys: dict[str, str], jwks_file: Path) -> dict:
    clients = {
        client_id: {**details, "api_key_sha256": hashlib.sha256(client_keys[client_id].encode()).hexdigest()}
        for client_id, details in CLIENTS.items()
    }
    return {
        "version": "demo-2026-11",
        "controller": {
            "name": "Ville de Paris (demo)",
            "jurisdiction": "FR",
            "policy_url": "https://citygate.dev/demo/privacy",
        },
        "purposes": {
            "service-delivery": {"description": "The city's services to residents"},
            "street-maintenance": {"description": "Handle the street issues residents report"},
            "booking": {"description": "Book and pay parking spots"},
            "marketing": {"description": "Offers from Parkr"},
            "neighbourhood-help": {"description": "Post and take small jobs between neighbours"},
            "dining": {"description": "Host and book home dinners"},
            "bike-sharing": {"description": "Rent Cyclo's shared bikes"},
            "statistics": {"description": "Open data, aggregated per district"},
        },
        "clients": clients,
        "legal_bases": [
            {
                # the street issues themselves (where, who), as the technicians reach them: as issues
                "name": "street-issues-public-task",
                "basis": "public_task",
                "roles": ["technician"],
                "purposes": ["street-maintenance"],
                "categories": ["user.location", "user.unique_id"],
                "sources": ["city"],
                "paths": ["Query.streetIssues", "District.openIssues", "Mutation.updateIssueStatus"],
            },
            {
                # a resident's contact details only as the reporter of a street issue, not the directory
                "name": "street-issue-reporters-public-task",
                "basis": "public_task",
                "roles": ["technician"],
                "purposes": ["street-maintenance"],
                "categories": ["user.contact", "user.name", "user.unique_id"],
                "sources": ["city"],
                "paths": ["StreetIssue.reporter"],
            },
            {
                # Parkr's own bookings only: not another partner's payments of the same category
                "name": "parkr-bookings-contract",
                "basis": "contract",
                "roles": ["parkr"],
                "purposes": ["booking"],
                "categories": ["user.financial", "user.behavior", "user.location.imprecise"],
                "sources": ["parkr"],
            },
            {
                # flows: a resident's identifier, wherever a partner's data names it, may go to the
                # city's own directory (to answer for the resident's fields there, each decided)
                "name": "city-directory-public-task",
                "basis": "public_task",
                "recipients": ["city"],
                "purposes": [
                    "service-delivery",
                    "street-maintenance",
                    "booking",
                    "marketing",
                    "neighbourhood-help",
                    "dining",
                    "bike-sharing",
                    "statistics",
                ],
                "categories": ["user.unique_id"],
                "sources": ["city", "parkr", "voisinage", "tablehote", "cyclo"],
            },
        ],
        "masking": {
            "default": "null",
            "categories": {
                "user.contact.email": "partial",
                "user.contact.phone_number": "partial",
                "user.contact.address": "coarsen",
                "user.location.precise": "coarsen",
                "user.demographic.date_of_birth": "coarsen",
                "user.government_id.vehicle_registration": "pseudonymise",
            },
        },
        "aggregates": {"k": 10},
        # open data under differential privacy: each aggregate value costs epsilon_per_query of the
        # requester's budget for the period (docs/privacy.md, "Open data: differential privacy")
        "open_data": {
            "public": {"epsilon_per_query": 0.5, "budget": {"epsilon": 10, "period": "day"}},
            "clients": {"open-data-portal": {"epsilon_per_query": 0.25, "budget": {"epsilon": 50, "period": "week"}}},
        },
        # what the city's aggregates are, to calibrate their noise (the connector's @aggregate says
        # the same once composition carries statistic, lower and upper). An average age is published
        # only for a district with at least 100 residents in the directory (the DPO's choice): the
        # mean's noise is calibrated on that minimum, scale 110 / 100 / 0.5 = 2.2 years for the
        # public (over k = 10 it would be 22 years: useless); smaller districts get it withheld (below-k)
        "privacy": {
            "aggregates": {
                "District.averageAge": {
                    "contributors": "residentCount",
                    "min_contributors": 100,
                    "statistic": "mean",
                    "lower": 0,
                    "upper": 110,
                }
            }
        },
        "identity": {
            "issuers": [{"issuer": ISSUER, "audience": "citygate", "jwks_file": str(jwks_file), "client_claim": "azp"}]
        },
        "registry": {"allow_upstreams": ["127.0.0.0/8", "::1/128"]},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PartnerServer:
    """The partners' subgraphs (/subgraphs/NAME) and REST APIs (/rest/NAME) on their own loopback
    server, in a background thread."""

    def __init__(self, folder: Path) -> None:
        routes: list[Route | Mount] = []
        for manifest_path in sorted(folder.glob("*/manifest.yaml")):
            manifest = read_manifest_folder(manifest_path.parent, allow_python=True)  # its url is resolved later
            if manifest.kind == "subgraph" and (manifest_path.parent / "schema.py").is_file():
                schema = load_python_schema(replace(manifest, schema="schema.py:schema"))
                routes.append(Route(f"/subgraphs/{manifest.name}", GraphQL(schema), methods=["GET", "POST"]))
                erasure = getattr(
                    sys.modules.get(f"citygate_connector_{manifest.name.replace('-', '_')}"), "erasure", None
                )
                if (
                    erasure is not None
                ):  # the partner's erasure endpoint, beside its subgraph (its manifest's `erasure`)
                    routes.append(Route(f"/subgraphs/{manifest.name}/erasure", erasure, methods=["POST"]))
            elif manifest.kind == "rest" and (manifest_path.parent / "api.py").is_file():
                routes.append(
                    Mount(f"/rest/{manifest.name}", app=load_python_schema(replace(manifest, schema="api.py:app")))
                )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)

    def start(self) -> PartnerServer:
        import threading

        threading.Thread(target=self.server.run, daemon=True).start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the partners' subgraphs did not start")
            time.sleep(0.05)
        return self


def _examples(keys: dict[str, str], tokens: dict[str, str]) -> tuple[dict, ...]:
    """GraphiQL's tabs: the README's example operations, with the demo's credentials."""
    district = (
        'query DistrictOpenData {\n  district(code: "75118") {\n    name population averageAge\n    waterQuality { nitratesMgPerL compliant }\n'
        "    wasteCollection { kind weekdays }\n    freeSpots parkingOccupancy\n    openJobs { title reward }\n    dinners { title pricePerSeat seatsLeft }\n"
        "    openIssues { kind status }\n  }\n}"
    )
    me = (
        "query MyCity {\n  me { residentId consents { recipient purpose categories active } disclosures { at recipient fields basis } }\n"
        '  resident(id: "r0001") {\n    name email phone address\n    parkingBookings { startsAt amountPaid spot { street } }\n'
        "    jobsPosted { title status }\n    dinnerReservations { seats dinner { title date } }\n  }\n}"
    )
    parkr = 'query ParkrCustomers {\n  consenting: resident(id: "r0001") { email phone vehicles { plate model } }\n  other: resident(id: "r0003") { email phone vehicles { plate model } }\n}'
    technician = "query OpenIssues {\n  streetIssues(status: OPEN, first: 5) {\n    kind description location { latitude longitude }\n    reporter { name phone }\n  }\n}"
    grant = (
        'mutation GrantParkrMyContact {\n  grantConsent(recipient: "parkr-app", purpose: "booking", categories: ["user.contact"], expiresInDays: 30) {\n'
        "    consent { id active }\n    receipt\n  }\n}"
    )
    # a REST partner (connectors/bikes): stations are open data; Cyclo sees r0001's rides as consented, not their price
    bikes = 'query BikesNearby {\n  district(code: "75118") {\n    name\n    bikeStations { name mechanicalBikes electricBikes }\n  }\n}'
    cyclo = 'query CycloRides {\n  resident(id: "r0001") {\n    bikeRentals { startedAt minutes electric priceCents fromStation { name districtCode } }\n  }\n}'
    bearer = {"Authorization": f"Bearer {tokens['r0001']}"}
    return (
        {"query": district, "headers": "{}"},
        {"query": me, "headers": json.dumps(bearer, indent=2)},
        {
            "query": parkr,
            "headers": json.dumps({"x-api-key": keys["parkr-app"], "x-citygate-purpose": "booking"}, indent=2),
        },
        {"query": technician, "headers": json.dumps({"x-api-key": keys["technician-console"]}, indent=2)},
        {"query": grant, "headers": json.dumps({"Authorization": f"Bearer {tokens['r0003']}"}, indent=2)},
        {"query": bikes, "headers": "{}"},
        {
            "query": cyclo,
            "headers": json.dumps({"x-api-key": keys["cyclo-app"], "x-citygate-purpose": "bike-sharing"}, indent=2),
        },
    )


def demo_sign_in_routes(tokens: dict[str, str]) -> list[Route]:
    """DEMO ONLY: the demo's identity provider signs anyone in as a demo resident, without a
    password (the privacy centre's "Sign in as" buttons). A real city's page sends residents to
    its own identity provider instead; nothing like this exists outside `citygate demo`."""

    def refusal(message: str, code: str, status: int) -> JSONResponse:
        return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

    async def sign_in(request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"demo": True, "residents": sorted(tokens)}, headers={"cache-control": "no-store"})
        # JSON only: a cross-site form cannot send it without a preflight
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return refusal('send {"resident": ...} as application/json', "BAD_REQUEST", 415)
        try:
            resident = (await request.json()).get("resident")
        except (ValueError, AttributeError):
            return refusal('send {"resident": ...} as application/json', "BAD_REQUEST", 400)
        if resident not in tokens:
            return refusal(f"the demo signs in only {', '.join(sorted(tokens))}", "UNKNOWN_DEMO_RESIDENT", 404)
        return JSONResponse({"resident": resident, "token": tokens[resident]}, headers={"cache-control": "no-store"})

    return [Route("/demo/sign-in", sign_in, methods=["GET", "POST"])]


@dataclass(frozen=True)
class DemoCredentials:
    """The secrets of one demo run, generated at start: never committed, printed once."""

    operator_key: str
    client_keys: dict[str, str]  # client id -> API key
    tokens: dict[str, str]  # demo resident -> a JWT signed in through the city's app
    jwks_file: Path  # the demo identity provider's public keys, which the policy trusts


def demo_credentials(state_dir: Path) -> DemoCredentials:
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update(kid=secrets.token_hex(4), use="sig", alg="RS256")
    jwks_file = state_dir / "demo-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())

    def token(subject: str, client: str) -> str:
        claims = {"iss": ISSUER, "aud": "citygate", "sub": subject, "azp": client, "iat": now, "exp": now + 12 * 3600}
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": jwk["kid"]})

    return DemoCredentials(
        operator_key=new_key("cgo"),
        client_keys={client_id: new_key("cgc") for client_id in CLIENTS},
        tokens={resident: token(resident, "city-app") for resident in DEMO_RESIDENTS},
        jwks_file=jwks_file,
    )


async def seed_consents(ledger: Any) -> None:
    """The demo's consents: the ones the README's examples rely on, then 150 random ones (seeded)."""
    await ledger.grant(
        subject="r0001",
        recipient="parkr-app",
        purpose="booking",
        categories=["user.contact", "user.unique_id", "user.government_id.vehicle_registration"],
        expires_in_days=365,
        collection_method="demo seed",
    )
    await ledger.grant(
        subject="r0002",
        recipient="tablehote-app",
        purpose="dining",
        categories=["user.contact.phone_number"],
        expires_in_days=365,
        collection_method="demo seed",
    )
    # Cyclo (a REST connector) sees when and where r0001 rode, not what it cost them: no consent for user.financial
    await ledger.grant(
        subject="r0001",
        recipient="cyclo-app",
        purpose="bike-sharing",
        categories=["user.unique_id", "user.behavior", "user.location"],
        expires_in_days=365,
        collection_method="demo seed",
    )
    rng = random.Random(2026)
    for index in rng.sample(range(4, 2001), 150):
        client = rng.choice(["parkr-app", "voisinage-app", "tablehote-app"])
        purpose = CLIENTS[client]["purposes"][0]
        categories = rng.sample(
            ["user.contact", "user.name", "user.contact.email", "user.unique_id", "user.social"], rng.randint(1, 2)
        )
        await ledger.grant(
            subject=f"r{index:04d}",
            recipient=client,
            purpose=purpose,
            categories=categories,
            expires_in_days=365,
            collection_method="demo seed",
        )


def print_welcome(
    console: Console, url: str, credentials: DemoCredentials, partner_keys: dict[str, str], connectors: dict[str, Any]
) -> None:
    """What runs, where, and every credential of this run, ready to paste."""
    tokens = credentials.tokens
    how = {"python": "in-process", "rest": "REST, called by the gateway"}
    names = ", ".join(
        f"{n} ({c.source if c.source != 'folder' else how.get(c.manifest.kind, 'HTTP')})"
        for n, c in sorted(connectors.items())
    )
    console.print(f"[bold]Citygate demo city[/bold]: {names}")
    console.print(f"GraphiQL, with example operations ready: [bold]{url}/graphql[/bold]")
    console.print(f"The residents' privacy centre (demo sign-in): [bold]{url}/privacy[/bold]")
    console.print("Credentials of this run (also in .citygate/demo-credentials.json), ready to paste:", highlight=False)
    # CITYGATE_URL is the base URL, as the CLI and docs/partners.md read it; GraphQL is at /graphql
    console.print(f"  export CITYGATE_URL={url}", highlight=False, soft_wrap=True)
    console.print(f"  export RESIDENT_TOKEN={tokens['r0001']}", highlight=False, soft_wrap=True)
    console.print(f"  export OTHER_RESIDENT_TOKEN={tokens['r0003']}", highlight=False, soft_wrap=True)
    for client_id, key in credentials.client_keys.items():
        console.print(f"  export {client_id.upper().replace('-', '_')}_KEY={key}", highlight=False, soft_wrap=True)
    console.print(f"  export CITYGATE_OPERATOR_KEY={credentials.operator_key}", highlight=False, soft_wrap=True)
    # the partners' keys, for the `citygate connector` commands of docs/partners.md (CITYGATE_KEY)
    for owner, key in partner_keys.items():
        console.print(f"  export {owner.upper().replace('-', '_')}_PARTNER_KEY={key}", highlight=False, soft_wrap=True)
    console.print("Then, for instance (the README has more):", highlight=False)
    console.print(
        "  curl -s $CITYGATE_URL/graphql -H 'content-type: application/json' "
        '-d \'{"query": "{ district(code: \\"75118\\") { name averageAge freeSpots openJobs { title } } }"}\'',
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "  curl -s $CITYGATE_URL/graphql -H 'content-type: application/json' -H \"authorization: Bearer $RESIDENT_TOKEN\" "
        '-d \'{"query": "{ me { residentId consents { recipient purpose } } }"}\'',
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "  CITYGATE_KEY=$PARKR_PARTNER_KEY .venv/bin/citygate connector list   # as Parkr, a partner (docs/partners.md)",
        highlight=False,
        soft_wrap=True,
    )


def demo_gateway(folder: Path, host: str, port: int, console: Console, state_dir: Path = Path(".citygate")) -> Gateway:
    state_dir.mkdir(exist_ok=True)
    database = state_dir / "demo.db"
    database.unlink(missing_ok=True)
    url = f"http://{host}:{port}"
    credentials = demo_credentials(state_dir)  # secrets of this run only

    partners = PartnerServer(folder).start()
    os.environ["CITYGATE_DEMO_URL"] = partners.url
    # where the demo partners read the gateway's JWKS, to check the erasure requests it signs
    os.environ["CITYGATE_DEMO_GATEWAY_URL"] = url

    async def seed(gateway: Gateway) -> None:
        """Once the gateway runs: the partners' keys, the demo consents, the credentials file, the welcome."""
        registry, runtime = gateway.registry, gateway.runtime
        assert registry is not None and runtime is not None
        partner_keys = {}
        for owner in sorted({c.manifest.owner for c in registry.connectors.values() if c.source == "folder"}):
            partner_keys[owner] = new_key("cgp")
            await gateway.store.add_partner(owner, partner_keys[owner])
        await seed_consents(runtime.ledger)
        written = {
            "url": url,
            "graphql": f"{url}/graphql",
            "operator_key": credentials.operator_key,
            "clients": credentials.client_keys,
            "partners": partner_keys,
            "residents": credentials.tokens,
        }
        (state_dir / "demo-credentials.json").write_text(json.dumps(written, indent=2))
        print_welcome(console, url, credentials, partner_keys, registry.connectors)

    return registry_app(
        folder=folder,
        store_url=f"sqlite:///{database}",
        policy=parse_policy(demo_policy(credentials.client_keys, credentials.jwks_file)),
        operator_key=credentials.operator_key,
        development=True,
        on_start=seed,
        routes=demo_sign_in_routes(credentials.tokens),
        graphiql=GraphiQL(assets=state_dir / "graphiql", tabs=_examples(credentials.client_keys, credentials.tokens)),
    )
