"""The operator's policy file (YAML): read, validated with clear errors, never half-applied.

It reads like the rules it states. Every section is optional; what is absent is closed (no
client, no legal basis, every personal value masked with null). See docs/policy.md.

    version: "2026-11"                      # recorded with every consent (notice version)
    controller: {name: Ville de Paris, jurisdiction: FR, policy_url: https://...}
    purposes:
      street-maintenance: {description: Handle the street issues residents report}
    clients:
      technician-console:
        name: Technician console
        api_key_sha256: 5e88...            # or api_key_env: TECH_CONSOLE_KEY
        purposes: [street-maintenance]
        roles: [technician]
        collects_consent: false             # may record residents' consents (grantConsent)
        rate_limit: 50                      # optional: requests per second (else the server's default)
        max_in_flight: 8                    # optional: requests at once (else the server's default)
        max_cost: 20000                     # optional: estimated cost of one operation (else the server's max_cost)
        persisted_documents: safelist       # optional: only its trusted documents run (default allow)
    persisted_documents: {public: allow}    # the public's mode (allow | safelist)
    legal_bases:
      - name: public-task-street-issue-reporters
        basis: public_task
        roles: [technician]
        purposes: [street-maintenance]
        categories: [user.contact, user.name]
        sources: [city]                     # whose data: owners of subgraphs (required)
        paths: [StreetIssue.reporter]       # optional: only where the object was reached so
    masking:
      default: null
      categories: {user.contact.email: partial, user.location.precise: coarsen}
    aggregates: {k: 10}
    open_data:                              # differential privacy for aggregates (docs/privacy.md)
      public: {epsilon_per_query: 0.1, budget: {epsilon: 1, period: day}}
      clients:
        open-data-portal: {epsilon_per_query: 0.5, budget: {epsilon: 10, period: week}}
    audit: {enabled: true}
    identity:
      issuers:
        - issuer: https://id.paris.example
          audience: citygate
          jwks_file: jwks.json              # or jwks_url: https://id.paris.example/jwks
          client_claim: azp
          roles_claim: roles                # optional: roles the token may carry
    privacy:                                # annotations by schema coordinate (add or override)
      fields: {Resident.email: {category: user.contact.email, strategy: partial}}
      subjects: {Resident: id}
      aggregates: {District.averageAge: {contributors: residentCount, statistic: mean, lower: 0, upper: 110}}
      non_personal: [StreetIssue.kind]      # on a type with a subject, every other field is personal
    registry:
      allow_upstreams: ["10.20.0.0/16"]
      agreements: [{owner: city, grants: parking, fields: ["District.name"]}]
      max_timeout: 10                       # partners' timeouts (s); max_sdl_bytes, max_types, max_fields,
      composition_budget: 10                # composition_budget (s): docs/operators.md
      circuit_breaker: {failures: 5, cool_down: 10}
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .supergraph import STRATEGIES, AggregateField, PersonalField, PrivacyAnnotations
from .taxonomy import category_covers

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_COORDINATE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*\.[_A-Za-z][_0-9A-Za-z]*$")  # Type.field
_BASES = ("public_task", "legal_obligation", "vital_interests", "contract", "legitimate_interests")
# what a requester may send (gateway/persisted.py): any document (allow), or only the trusted
# documents pushed for it (safelist)
PERSISTED_DOCUMENT_MODES = ("allow", "safelist")


class PolicyError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Agreement:
    owner: str
    grants: str
    fields: tuple[str, ...]  # coordinates, "Type.field" or "Type.*"

    def covers(self, owner: str, partner: str, coordinate: str) -> bool:
        return self.owner == owner and self.grants == partner and any(fnmatch.fnmatchcase(coordinate, p) for p in self.fields)


@dataclass(frozen=True)
class RegistryPolicy:
    allow_upstreams: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    agreements: tuple[Agreement, ...] = ()
    # what one partner's connector may cost the gateway (docs/operators.md, "Partners")
    max_timeout: float = 10.0  # seconds; a registration asking more is refused, stored ones are clamped
    max_sdl_bytes: int = 1024 * 1024  # checked before the SDL is parsed
    max_types: int = 2000  # per subgraph, before it is composed
    max_fields: int = 20000
    composition_budget: float = 10.0  # seconds of composition (in a worker process) per change
    breaker_failures: int = 5  # consecutive failures that open a subgraph's circuit breaker (0: never)
    breaker_cool_down: float = 10.0  # seconds it stays open before one probe

    def agreed(self, owner: str, partner: str, coordinate: str) -> bool:
        return any(a.covers(owner, partner, coordinate) for a in self.agreements)


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    description: str
    purposes: tuple[str, ...]
    roles: tuple[str, ...]
    api_key_sha256: str | None
    collects_consent: bool
    rate_limit: float | None = None  # requests per second; None: the server's default (docs/operators.md)
    max_in_flight: int | None = None  # requests in flight at once; None: the server's default
    max_cost: int | None = None  # estimated cost of one operation (demand control); None: the server's max_cost; 0: none
    # the partner (connector owner) operating this client: a resident's consent to the client is
    # consent to that organisation, so it also covers flows to the partner's subgraphs
    partner: str | None = None
    persisted_documents: str = "allow"  # allow | safelist (PERSISTED_DOCUMENT_MODES)


@dataclass(frozen=True)
class LegalBasis:
    """A rule of the policy that allows disclosing without consent: to requesters with one of
    `roles`, for one of `purposes`, values of `categories`, and only from the data of `sources`
    (owners: a value is theirs when every subgraph that can resolve its field belongs to one of
    them). With `paths` (coordinates `Parent.field`), only where the value's object was reached
    through one of those fields."""

    name: str
    basis: str
    roles: tuple[str, ...]
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    sources: frozenset[str] = frozenset()
    paths: frozenset[str] = frozenset()
    # owners of subgraphs that may receive such values in the gateway's own requests to them
    # (representations, @requires inputs): a basis for flows rather than for requesters
    recipients: frozenset[str] = frozenset()

    def covers_flow(self, recipient: str, purpose: str, category: str, sources: frozenset[str]) -> bool:
        """Whether the rule lets a value of `category` from `sources` go to the subgraphs of
        `recipient` for `purpose` (never a path-scoped rule: a flow is not reached through a field)."""
        return recipient in self.recipients and purpose in self.purposes and not self.paths and self.could_cover(category, sources)

    def could_cover(self, category: str, sources: frozenset[str]) -> bool:
        """Whether the rule covers a value of `category` from `sources` for some requester and
        some way of reaching it. No source (nobody resolves the field): nothing is covered."""
        return bool(sources) and sources <= self.sources and any(category_covers(c, category) for c in self.categories)

    def covers(self, roles: frozenset[str], purpose: str, category: str, sources: frozenset[str], via: frozenset[str]) -> bool:
        """Whether the rule covers a value of `category` from `sources`, whose object was reached
        through the fields `via` (the parent field's coordinates on the parent's type and its
        interfaces; empty when unknown), for a requester with `roles` and `purpose`."""
        return (
            purpose in self.purposes
            and not roles.isdisjoint(self.roles)
            and (not self.paths or not via.isdisjoint(self.paths))
            and self.could_cover(category, sources)
        )


OPEN_DATA_PERIODS = ("day", "week", "month")
AGGREGATE_STATISTICS = ("count", "sum", "mean")


@dataclass(frozen=True)
class OpenDataBudget:
    """What one client (or the public) may learn from aggregates: each value released costs
    `epsilon_per_query`, and the releases of one period may cost `epsilon` in all."""

    epsilon_per_query: float
    epsilon: float
    period: str  # day | week | month (UTC)


@dataclass(frozen=True)
class OpenData:
    """The policy's `open_data` section: when present, every aggregate value is released with
    calibrated noise, charged to the requester's budget; a requester without one gets none."""

    public: OpenDataBudget | None = None
    clients: dict[str, OpenDataBudget] = field(default_factory=dict)

    def budget_for(self, recipient: str, is_public: bool) -> OpenDataBudget | None:
        return self.public if is_public else self.clients.get(recipient)


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str
    jwks_file: str | None
    jwks_url: str | None
    client_claim: str
    roles_claim: str | None


@dataclass(frozen=True)
class Controller:
    name: str = "the city"
    jurisdiction: str = "FR"
    policy_url: str = ""


@dataclass(frozen=True)
class Policy:
    version: str = "unversioned"
    controller: Controller = field(default_factory=Controller)
    purposes: dict[str, str] = field(default_factory=dict)  # id -> description
    clients: dict[str, Client] = field(default_factory=dict)
    legal_bases: tuple[LegalBasis, ...] = ()
    masking_default: str = "null"
    masking: dict[str, str] = field(default_factory=dict)  # category -> strategy
    k: int = 10
    open_data: OpenData | None = None  # None: aggregates above k are released as they are
    audit_enabled: bool = True
    issuers: tuple[Issuer, ...] = ()
    privacy: PrivacyAnnotations = field(default_factory=PrivacyAnnotations)
    registry: RegistryPolicy = field(default_factory=RegistryPolicy)
    public_persisted_documents: str = "allow"  # the public requester's mode (PERSISTED_DOCUMENT_MODES)

    def persisted_documents_mode(self, client: Client | None) -> str:
        """What documents a requester may send: its client's mode, or the public's."""
        return client.persisted_documents if client is not None else self.public_persisted_documents

    def strategy_for(self, category: str, declared: str | None, fits: frozenset[str] | None = None) -> str:
        """The field's own strategy, else the most specific category rule, else the default. A
        declared strategy fits its field (checked when the policy is applied); one the category
        rules pick that the field's type cannot take (`fits`) masks with null instead: a masked
        value always fits the schema."""
        if declared:
            return declared
        best = None
        for prefix, strategy in self.masking.items():
            if (category == prefix or category.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, strategy)
        chosen = best[1] if best else self.masking_default
        return chosen if fits is None or chosen in fits else "null"

    def client_for_key(self, key: str) -> Client | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return next((c for c in self.clients.values() if c.api_key_sha256 is not None and c.api_key_sha256 == digest), None)


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def mapping(self, value: Any, where: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{where} must be a mapping")
            return {}
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{where} must be a list of strings")
            return ()
        return tuple(value)

    def known_keys(self, data: dict, allowed: set[str], where: str) -> None:
        for unknown in sorted(set(data) - allowed):
            self.problem(f"{where}: unknown key {unknown!r}")


def parse_policy(data: Any, base: Path | None = None) -> Policy:
    from .taxonomy import fides_categories

    reader = _Reader()
    top = reader.mapping(data, "the policy")
    reader.known_keys(
        top,
        {"version", "controller", "purposes", "clients", "legal_bases", "masking", "aggregates", "open_data", "audit", "identity", "privacy", "registry",
         "persisted_documents"},
        "the policy",
    )
    categories = fides_categories()

    def category(value: str, where: str) -> None:
        if value not in categories:
            reader.problem(f'{where}: "{value}" is not a data category of the Fides taxonomy')

    controller_data = reader.mapping(top.get("controller"), "controller")
    controller = Controller(
        name=str(controller_data.get("name", "the city")),
        jurisdiction=str(controller_data.get("jurisdiction", "FR")),
        policy_url=str(controller_data.get("policy_url", "")),
    )

    purposes: dict[str, str] = {}
    for purpose, details in reader.mapping(top.get("purposes"), "purposes").items():
        if not isinstance(purpose, str) or not _NAME.match(purpose):
            reader.problem(f"purposes: {purpose!r} must be lowercase letters, digits and dashes")
            continue
        purposes[purpose] = str(reader.mapping(details, f"purposes.{purpose}").get("description", ""))

    clients: dict[str, Client] = {}
    for client_id, details in reader.mapping(top.get("clients"), "clients").items():
        where = f"clients.{client_id}"
        if not isinstance(client_id, str) or not _NAME.match(client_id):
            reader.problem(f"{where}: the id must be lowercase letters, digits and dashes")
            continue
        if client_id == "public":  # the public requester's name (usage, trusted documents, metrics)
            reader.problem(f"{where}: 'public' names the public requester (no credentials); give the client another id")
            continue
        details = reader.mapping(details, where)
        reader.known_keys(
            details, {"name", "description", "purposes", "roles", "api_key_sha256", "api_key_env", "collects_consent", "rate_limit", "max_in_flight", "max_cost",
                      "partner", "persisted_documents"}, where
        )
        rate_limit, max_in_flight = details.get("rate_limit"), details.get("max_in_flight")
        if rate_limit is not None and (not isinstance(rate_limit, int | float) or isinstance(rate_limit, bool) or rate_limit < 0):
            reader.problem(f"{where}.rate_limit must be a number of requests per second (0: no limit)")
            rate_limit = None
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or isinstance(max_in_flight, bool) or max_in_flight < 0):
            reader.problem(f"{where}.max_in_flight must be a whole number of requests (0: no limit)")
            max_in_flight = None
        max_cost = details.get("max_cost")
        if max_cost is not None and (not isinstance(max_cost, int) or isinstance(max_cost, bool) or max_cost < 0):
            reader.problem(f"{where}.max_cost must be a whole number (0: no limit)")
            max_cost = None
        client_purposes = reader.strings(details.get("purposes"), f"{where}.purposes")
        for purpose in client_purposes:
            if purpose not in purposes:
                reader.problem(f"{where}.purposes: {purpose!r} is not declared under purposes")
        key_hash = details.get("api_key_sha256")
        if key_hash is not None and (not isinstance(key_hash, str) or not re.fullmatch(r"[0-9a-f]{64}", key_hash)):
            reader.problem(f"{where}.api_key_sha256 must be 64 lowercase hex digits")
            key_hash = None
        if details.get("api_key_env") is not None:
            value = os.environ.get(str(details["api_key_env"]))
            if value is None:
                reader.problem(f"{where}.api_key_env: environment variable {details['api_key_env']} is not set")
            else:
                key_hash = hashlib.sha256(value.encode()).hexdigest()
        clients[client_id] = Client(
            id=client_id,
            name=str(details.get("name", client_id)),
            description=str(details.get("description", "")),
            purposes=client_purposes,
            roles=reader.strings(details.get("roles"), f"{where}.roles"),
            api_key_sha256=key_hash,
            collects_consent=details.get("collects_consent") is True,
            partner=_partner(details.get("partner"), where, reader),
            rate_limit=rate_limit,
            max_in_flight=max_in_flight,
            max_cost=max_cost,
            persisted_documents=_persisted_documents_mode(details.get("persisted_documents"), f"{where}.persisted_documents", reader),
        )

    legal_bases = []
    for index, rule in enumerate(top.get("legal_bases") or []):
        where = f"legal_bases[{index}]"
        rule = reader.mapping(rule, where)
        reader.known_keys(rule, {"name", "basis", "roles", "purposes", "categories", "sources", "paths", "recipients"}, where)
        if rule.get("basis") not in _BASES:
            reader.problem(f"{where}.basis must be one of {', '.join(_BASES)} (consent is the ledger's business)")
        rule_categories = reader.strings(rule.get("categories"), f"{where}.categories")
        for value in rule_categories:
            category(value, f"{where}.categories")
        rule_purposes = reader.strings(rule.get("purposes"), f"{where}.purposes")
        for purpose in rule_purposes:
            if purpose not in purposes:
                reader.problem(f"{where}.purposes: {purpose!r} is not declared under purposes")
        roles = reader.strings(rule.get("roles"), f"{where}.roles")
        recipients = reader.strings(rule.get("recipients"), f"{where}.recipients")
        if not (roles or recipients) or not rule_purposes or not rule_categories:
            reader.problem(f"{where} needs roles (or recipients), purposes and categories: a rule for everything is not a rule")
        # whose data the rule covers: owners of subgraphs (an owner not registered yet is no error)
        sources = reader.strings(rule.get("sources"), f"{where}.sources")
        if not sources or not all(source.strip() for source in sources):
            reader.problem(f"{where}.sources: a basis names whose data it covers (owners, e.g. [city])")
        paths = reader.strings(rule.get("paths"), f"{where}.paths")
        if rule.get("paths") is not None and not paths:
            reader.problem(f"{where}.paths: name at least one field (Type.field), or leave paths out")
        for path in paths:
            if not _COORDINATE.match(path):
                reader.problem(f"{where}.paths: {path!r} is not a schema coordinate Type.field")
        legal_bases.append(
            LegalBasis(
                str(rule.get("name", f"rule-{index}")), str(rule.get("basis")), roles, rule_purposes, rule_categories,
                frozenset(sources), frozenset(paths), frozenset(recipients),
            )
        )

    masking_data = reader.mapping(top.get("masking"), "masking")
    default = masking_data.get("default") or "null"
    if default not in STRATEGIES:
        reader.problem(f"masking.default must be one of {', '.join(STRATEGIES)}")
    masking = {}
    for key, strategy in reader.mapping(masking_data.get("categories"), "masking.categories").items():
        category(str(key), "masking.categories")
        if strategy not in STRATEGIES:
            reader.problem(f"masking.categories.{key}: {strategy!r} is not one of {', '.join(STRATEGIES)}")
        masking[str(key)] = str(strategy)

    k = reader.mapping(top.get("aggregates"), "aggregates").get("k", 10)
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        reader.problem("aggregates.k must be a whole number of at least 2")
        k = 10
    audit = reader.mapping(top.get("audit"), "audit")
    open_data = _open_data(top.get("open_data"), clients, reader)

    issuers = []
    for index, entry in enumerate(reader.mapping(top.get("identity"), "identity").get("issuers") or []):
        where = f"identity.issuers[{index}]"
        entry = reader.mapping(entry, where)
        if not entry.get("issuer") or not entry.get("audience"):
            reader.problem(f"{where} needs issuer and audience")
            continue
        if bool(entry.get("jwks_file")) == bool(entry.get("jwks_url")):
            reader.problem(f"{where} needs exactly one of jwks_file and jwks_url")
            continue
        jwks_file = entry.get("jwks_file")
        if jwks_file and base is not None and not Path(jwks_file).is_absolute():
            jwks_file = str(base / jwks_file)
        issuers.append(
            Issuer(str(entry["issuer"]), str(entry["audience"]), jwks_file, entry.get("jwks_url"), str(entry.get("client_claim", "azp")), entry.get("roles_claim"))
        )

    privacy = PrivacyAnnotations()
    privacy_data = reader.mapping(top.get("privacy"), "privacy")
    reader.known_keys(privacy_data, {"fields", "subjects", "aggregates", "non_personal"}, "privacy")
    for coordinate, details in reader.mapping(privacy_data.get("fields"), "privacy.fields").items():
        details = reader.mapping(details, f"privacy.fields.{coordinate}")
        if "." not in str(coordinate) or not isinstance(details.get("category"), str):
            reader.problem(f"privacy.fields.{coordinate}: needs Type.field and a category")
            continue
        category(details["category"], f"privacy.fields.{coordinate}")
        type_name, field_name = str(coordinate).split(".", 1)
        privacy.personal[(type_name, field_name)] = PersonalField(details["category"], details.get("strategy"))
    for type_name, subject in reader.mapping(privacy_data.get("subjects"), "privacy.subjects").items():
        privacy.subjects[str(type_name)] = str(subject)
    for coordinate, details in reader.mapping(privacy_data.get("aggregates"), "privacy.aggregates").items():
        details = reader.mapping(details, f"privacy.aggregates.{coordinate}")
        if "." not in str(coordinate) or not isinstance(details.get("contributors"), str):
            reader.problem(f"privacy.aggregates.{coordinate}: needs Type.field and contributors")
            continue
        type_name, field_name = str(coordinate).split(".", 1)
        privacy.aggregates[(type_name, field_name)] = AggregateField(
            details["contributors"], details.get("min_contributors"), *_statistic(details, f"privacy.aggregates.{coordinate}", reader)
        )
    # fields the operator declares non-personal, on types with a subject (default private otherwise)
    for coordinate in reader.strings(privacy_data.get("non_personal"), "privacy.non_personal"):
        if "." not in coordinate:
            reader.problem(f"privacy.non_personal: {coordinate!r} must be Type.field")
        elif tuple(coordinate.split(".", 1)) in privacy.personal:
            reader.problem(f"privacy.non_personal: {coordinate} is also under privacy.fields")
        else:
            privacy.non_personal.add(tuple(coordinate.split(".", 1)))  # type: ignore[arg-type]

    registry_data = reader.mapping(top.get("registry"), "registry")
    networks = []
    for index, value in enumerate(registry_data.get("allow_upstreams") or []):
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            reader.problem(f"registry.allow_upstreams[{index}]: {value!r} is not an IP network")
    agreements = []
    for index, entry in enumerate(registry_data.get("agreements") or []):
        where = f"registry.agreements[{index}]"
        if not isinstance(entry, dict):
            reader.problem(f"{where}: must be a mapping")
            continue
        owner, grants, fields = entry.get("owner"), entry.get("grants"), entry.get("fields")
        if not isinstance(owner, str) or not isinstance(grants, str):
            reader.problem(f"{where}: needs owner and grants (partner names)")
            continue
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and "." in f for f in fields):
            reader.problem(f"{where}: fields must list coordinates such as Type.field or Type.*")
            continue
        agreements.append(Agreement(owner, grants, tuple(fields)))
    registry_limits = _registry_limits(registry_data, reader)
    persisted_data = reader.mapping(top.get("persisted_documents"), "persisted_documents")
    reader.known_keys(persisted_data, {"public"}, "persisted_documents")
    public_mode = _persisted_documents_mode(persisted_data.get("public"), "persisted_documents.public", reader)

    if reader.problems:
        raise PolicyError(reader.problems)
    return Policy(
        version=str(top.get("version", "unversioned")),
        controller=controller,
        purposes=purposes,
        clients=clients,
        legal_bases=tuple(legal_bases),
        masking_default=str(default),
        masking=masking,
        k=k,
        open_data=open_data,
        audit_enabled=audit.get("enabled", True) is not False,
        issuers=tuple(issuers),
        privacy=privacy,
        registry=RegistryPolicy(tuple(networks), tuple(agreements), **registry_limits),
        public_persisted_documents=public_mode,
    )


def _persisted_documents_mode(value: Any, where: str, reader: _Reader) -> str:
    if value is None:
        return "allow"
    if value not in PERSISTED_DOCUMENT_MODES:
        reader.problem(f"{where} must be one of {', '.join(PERSISTED_DOCUMENT_MODES)}")
        return "safelist"  # never read: the policy is refused
    return str(value)


_REGISTRY_LIMITS: dict[str, tuple[type, float, float]] = {  # key: (type, lowest, highest)
    "max_timeout": (float, 0.001, 300.0),
    "max_sdl_bytes": (int, 1, 64 * 1024 * 1024),
    "max_types": (int, 1, 1_000_000),
    "max_fields": (int, 1, 10_000_000),
    "composition_budget": (float, 0.1, 600.0),
}


def _registry_limits(data: dict, reader: _Reader) -> dict[str, Any]:
    """The registry section's limits (absent: RegistryPolicy's defaults) and its circuit breaker."""
    limits: dict[str, Any] = {}
    for key, (kind, lowest, highest) in _REGISTRY_LIMITS.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()) or not lowest <= value <= highest:
            reader.problem(f"registry.{key}: must be a {'whole ' if kind is int else ''}number between {lowest:g} and {highest:g}")
        else:
            limits[key] = kind(value)
    breaker = reader.mapping(data.get("circuit_breaker"), "registry.circuit_breaker")
    failures, cool_down = breaker.get("failures"), breaker.get("cool_down")
    if failures is not None:
        if isinstance(failures, bool) or not isinstance(failures, int) or not 0 <= failures <= 1000:
            reader.problem("registry.circuit_breaker.failures: must be a whole number between 0 (never opens) and 1000")
        else:
            limits["breaker_failures"] = failures
    if cool_down is not None:
        if isinstance(cool_down, bool) or not isinstance(cool_down, (int, float)) or not 0 < cool_down <= 3600:
            reader.problem("registry.circuit_breaker.cool_down: must be a number of seconds between 0 and 3600")
        else:
            limits["breaker_cool_down"] = float(cool_down)
    return limits


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def _statistic(details: dict, where: str, reader: _Reader) -> tuple[str | None, float | None, float | None]:
    """An aggregate's statistic and the bounds of one contributor's value (privacy.aggregates)."""
    statistic, lower, upper = details.get("statistic"), details.get("lower"), details.get("upper")
    if statistic is None:
        return None, None, None
    if statistic not in AGGREGATE_STATISTICS:
        reader.problem(f"{where}.statistic must be one of {', '.join(AGGREGATE_STATISTICS)}")
        return None, None, None
    if statistic == "count":
        return statistic, None, None
    if not _number(lower) or not _number(upper) or lower > upper:
        reader.problem(f"{where}: a {statistic} needs lower and upper, the bounds of one contributor's value (lower <= upper)")
        return None, None, None
    return statistic, float(lower), float(upper)


def _open_data(data: Any, clients: dict[str, Client], reader: _Reader) -> OpenData | None:
    if data is None:
        return None
    data = reader.mapping(data, "open_data")
    reader.known_keys(data, {"public", "clients"}, "open_data")

    def budget(value: Any, where: str) -> OpenDataBudget | None:
        value = reader.mapping(value, where)
        reader.known_keys(value, {"epsilon_per_query", "budget"}, where)
        total = reader.mapping(value.get("budget"), f"{where}.budget")
        reader.known_keys(total, {"epsilon", "period"}, f"{where}.budget")
        per_query, epsilon, period = value.get("epsilon_per_query"), total.get("epsilon"), total.get("period", "day")
        if not _number(per_query) or per_query <= 0:
            reader.problem(f"{where}.epsilon_per_query must be a positive number")
        elif not _number(epsilon) or epsilon < per_query:
            reader.problem(f"{where}.budget.epsilon must be a number at least epsilon_per_query")
        elif period not in OPEN_DATA_PERIODS:
            reader.problem(f"{where}.budget.period must be one of {', '.join(OPEN_DATA_PERIODS)}")
        else:
            return OpenDataBudget(float(per_query), float(epsilon), str(period))
        return None

    public = budget(data["public"], "open_data.public") if data.get("public") is not None else None
    budgets: dict[str, OpenDataBudget] = {}
    for client_id, value in reader.mapping(data.get("clients"), "open_data.clients").items():
        if client_id not in clients:
            reader.problem(f"open_data.clients: {client_id!r} is not declared under clients")
            continue
        found = budget(value, f"open_data.clients.{client_id}")
        if found is not None:
            budgets[client_id] = found
    return OpenData(public, budgets)


def _partner(value: Any, where: str, reader: _Reader) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        reader.problem(f"{where}.partner must name a partner (a connector owner: lowercase letters, digits and dashes)")
        return None
    return value


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return parse_policy({})
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError([f"cannot read {path}: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise PolicyError([f"{path} is not valid YAML: {error}"]) from None
    return parse_policy(data, path.parent)
