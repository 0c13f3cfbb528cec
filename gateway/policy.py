"""The operator's policy file (YAML): read, validated with clear errors, never half-applied.

The file's sections are typed models (pydantic: frozen, unknown keys refused); the models are the
policy the gateway runs with. Every problem is listed at once, each naming its key path
(`clients.app.purposes`, `legal_bases[0].paths`) and never repeating more of the input than the
offending name. A key set to nothing (`key:` in YAML) is the same as the key left out.

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
      aggregates: {District.averageAge: {contributors: residentCount, min_contributors: 100, statistic: mean, lower: 0, upper: 110}}
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
from collections.abc import Callable, Collection
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NoReturn

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from .supergraph import STRATEGIES, AggregateField, PersonalField, PrivacyAnnotations
from .taxonomy import category_covers, fides_categories

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_COORDINATE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*\.[_A-Za-z][_0-9A-Za-z]*$")  # Type.field
_BASES = ("public_task", "legal_obligation", "vital_interests", "contract", "legitimate_interests")
# what a requester may send (gateway/persisted.py): any document (allow), or only the trusted
# documents pushed for it (safelist)
PERSISTED_DOCUMENT_MODES = ("allow", "safelist")
OPEN_DATA_PERIODS = ("day", "week", "month")
AGGREGATE_STATISTICS = ("count", "sum", "mean")
_EVERYTHING = "{parent} needs roles (or recipients), purposes and categories: a rule for everything is not a rule"


class PolicyError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# -- how a rule of the file is stated ---------------------------------------------------------------


# How a rule of a file read into models (the policy, connector manifests) is stated: a problem of
# type RULE, whose message says `{where}` for the key path of the value and `{parent}` for the
# path of the mapping holding it; the reader puts the paths in (`_problem`). Never the input.
RULE = "rule"


def refuse(message: str) -> NoReturn:
    """Refuse the value being read, for the reason `message` states (see RULE)."""
    raise PydanticCustomError(RULE, message)


def explained(message: str) -> WrapValidator:
    """Any failure of the type it wraps (wrong type, out of range) is reported as `message`."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            refuse(message)

    return WrapValidator(wrap)


def choice(options: tuple[str, ...], message: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in options:
            refuse(message)
        return value

    return BeforeValidator(check)


def matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """A string that `pattern` matches; `{value}` in `message` is the refused string, quoted."""

    def check(value: str) -> str:
        if not pattern.match(value):
            refuse(message.replace("{value}", repr(value)))
        return value

    return AfterValidator(check)


def _quoted(values: Collection[str]) -> str:
    return ", ".join(repr(value) for value in sorted(values))


def _undeclared(values: Collection[str], info: ValidationInfo, section: str) -> None:
    """Refuse names not declared under `section` (the names parse_policy put in the context).
    Fails closed: read without parse_policy's context (`Policy.model_validate` called directly),
    no name counts as declared, so a reference can never go unchecked."""
    declared = (info.context or {}).get(section, frozenset())
    missing = [value for value in values if value not in declared]
    if missing:
        refuse(f"{{where}}: {_quoted(missing)} {'is' if len(missing) == 1 else 'are'} not declared under {section}")


def _category(value: str) -> str:
    if value not in fides_categories():
        refuse(f'{{where}}: "{value}" is not a data category of the Fides taxonomy')
    return value


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value) if isinstance(value, str | int) else "-", strict=False)
    except ValueError:
        refuse(
            f"{{where}}: {value!r} is not an IP network"
            if isinstance(value, str | int)
            else "{where} must be an IP network"
        )


def _text(value: Any) -> Any:
    """A scalar written unquoted in YAML (`version: 3`, a date) read as the text it was."""
    return str(value) if isinstance(value, int | float | date) and not isinstance(value, bool) else value


Name = Annotated[StrictStr, matching(_NAME, "{where}: {value} must be lowercase letters, digits and dashes")]
Category = Annotated[StrictStr, AfterValidator(_category)]
Coordinate = Annotated[StrictStr, matching(_COORDINATE, "{where}: {value} is not a schema coordinate Type.field")]
Strategy = Annotated[
    str,
    BeforeValidator(
        lambda value: (
            value if value in STRATEGIES else refuse(f"{{where}}: {value!r} is not one of {', '.join(STRATEGIES)}")
        )
    ),
]
Mode = Annotated[
    str, choice(PERSISTED_DOCUMENT_MODES, f"{{where}} must be one of {', '.join(PERSISTED_DOCUMENT_MODES)}")
]
Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]
Strings = tuple[StrictStr, ...]


def _client_id(value: str) -> str:
    if value == "public":  # the public requester's name (usage, trusted documents, metrics)
        refuse("{where}.public: 'public' names the public requester (no credentials); give the client another id")
    if not _NAME.match(value):
        refuse(f"{{where}}: {value!r} must be lowercase letters, digits and dashes (a client's id)")
    return value


def _description(value: Any) -> str:
    """A purpose's entry, `{description: ...}`, read as its description."""
    if value is None:
        return ""
    if (
        not isinstance(value, dict)
        or set(value) - {"description"}
        or not isinstance(value.get("description", ""), str | None)
    ):
        refuse("{where} must be {description: text}")
    return value.get("description") or ""


class _Section(BaseModel):
    """A part of the policy: frozen, unknown keys refused, a key set to nothing (`key:`) absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _nothing_is_absent(cls, data: Any) -> Any:
        return _present(data)


def _present(data: Any) -> Any:
    return {key: value for key, value in data.items() if value is not None} if isinstance(data, dict) else data


# -- the policy's parts, as the gateway uses them -------------------------------------------------


class Agreement(_Section):
    owner: StrictStr
    grants: StrictStr
    fields: tuple[StrictStr, ...] = Field((), validate_default=True)  # coordinates, "Type.field" or "Type.*"

    @model_validator(mode="before")
    @classmethod
    def _parties(cls, data: Any) -> Any:
        if isinstance(data, dict) and not (isinstance(data.get("owner"), str) and isinstance(data.get("grants"), str)):
            refuse("{where}: needs owner and grants (partner names)")
        return data

    @field_validator("fields")
    @classmethod
    def _coordinates(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        if not fields or not all("." in coordinate for coordinate in fields):
            refuse("{where} must list coordinates such as Type.field or Type.*")
        return fields

    def covers(self, owner: str, partner: str, coordinate: str) -> bool:
        return (
            self.owner == owner
            and self.grants == partner
            and any(fnmatch.fnmatchcase(coordinate, p) for p in self.fields)
        )


class CircuitBreaker(_Section):
    failures: Annotated[
        StrictInt, Field(ge=0, le=1000), explained("{where}: must be a whole number between 0 (never opens) and 1000")
    ] = 5
    cool_down: Annotated[
        StrictFloat, Field(gt=0, le=3600), explained("{where}: must be a number of seconds between 0 and 3600")
    ] = 10.0


class RegistryPolicy(_Section):
    allow_upstreams: tuple[Network, ...] = ()
    agreements: tuple[Agreement, ...] = ()
    # what one partner's connector may cost the gateway (docs/operators.md, "Partners")
    # seconds; a registration asking more is refused, stored ones are clamped
    max_timeout: Annotated[
        StrictFloat, Field(ge=0.001, le=300), explained("{where}: must be a number between 0.001 and 300")
    ] = 10.0
    # checked before the SDL is parsed
    max_sdl_bytes: Annotated[
        StrictInt, Field(ge=1, le=64 * 1024 * 1024), explained("{where}: must be a whole number between 1 and 67108864")
    ] = 1024 * 1024
    max_types: Annotated[
        StrictInt, Field(ge=1, le=1_000_000), explained("{where}: must be a whole number between 1 and 1000000")
    ] = 2000  # per subgraph
    max_fields: Annotated[
        StrictInt, Field(ge=1, le=10_000_000), explained("{where}: must be a whole number between 1 and 10000000")
    ] = 20000
    # seconds of composition (in a worker process) per change
    composition_budget: Annotated[
        StrictFloat, Field(ge=0.1, le=600), explained("{where}: must be a number between 0.1 and 600")
    ] = 10.0
    circuit_breaker: CircuitBreaker = CircuitBreaker()

    @property
    def breaker_failures(self) -> int:
        """Consecutive failures that open a subgraph's circuit breaker (0: never)."""
        return self.circuit_breaker.failures

    @property
    def breaker_cool_down(self) -> float:
        """Seconds the breaker stays open before one probe."""
        return self.circuit_breaker.cool_down

    def agreed(self, owner: str, partner: str, coordinate: str) -> bool:
        return any(a.covers(owner, partner, coordinate) for a in self.agreements)


class Client(_Section):
    id: StrictStr  # its key under clients
    name: StrictStr  # default: its id
    description: StrictStr = ""
    purposes: Strings = ()
    roles: Strings = ()
    api_key_sha256: (
        Annotated[StrictStr, matching(re.compile(r"^[0-9a-f]{64}\Z"), "{where} must be 64 lowercase hex digits")] | None
    ) = None
    api_key_env: StrictStr | None = Field(None, repr=False)  # read at load into api_key_sha256
    collects_consent: StrictBool = False  # may record residents' consents (grantConsent)
    # requests per second; None: the server's default (docs/operators.md)
    rate_limit: (
        Annotated[
            StrictFloat,
            Field(ge=0, allow_inf_nan=False),
            explained("{where} must be a number of requests per second (0: no limit)"),
        ]
        | None
    ) = None
    # requests in flight at once; None: the server's default
    max_in_flight: (
        Annotated[StrictInt, Field(ge=0), explained("{where} must be a whole number of requests (0: no limit)")] | None
    ) = None
    # estimated cost of one operation (demand control); None: the server's max_cost; 0: none
    max_cost: Annotated[StrictInt, Field(ge=0), explained("{where} must be a whole number (0: no limit)")] | None = None
    # the partner (connector owner) operating this client: a resident's consent to the client is
    # consent to that organisation, so it also covers flows to the partner's subgraphs
    partner: (
        Annotated[
            StrictStr,
            matching(_NAME, "{where} must name a partner (a connector owner: lowercase letters, digits and dashes)"),
        ]
        | None
    ) = None
    persisted_documents: Mode = "allow"  # allow | safelist (PERSISTED_DOCUMENT_MODES)

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        data = _present(data)
        if isinstance(data, dict):
            data = dict(data)
            if "id" in data:
                data.setdefault("name", data["id"])
            variable = data.get("api_key_env")
            if isinstance(variable, str) and variable in os.environ:  # the variable wins over a written hash
                data["api_key_sha256"] = hashlib.sha256(os.environ[variable].encode()).hexdigest()
        return data

    @field_validator("api_key_env")
    @classmethod
    def _variable_is_set(cls, variable: str | None) -> str | None:
        if variable is not None and variable not in os.environ:
            refuse(f"{{where}}: environment variable {variable} is not set")
        return variable

    @field_validator("purposes")
    @classmethod
    def _purposes_declared(cls, purposes: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _undeclared(purposes, info, "purposes")
        return purposes


class LegalBasis(_Section):
    """A rule of the policy that allows disclosing without consent: to requesters with one of
    `roles`, for one of `purposes`, values of `categories`, and only from the data of `sources`
    (owners: a value is theirs when every subgraph that can resolve its field belongs to one of
    them). With `paths` (coordinates `Parent.field`), only where the value's object was reached
    through one of those fields."""

    name: StrictStr  # default: rule-<its index>
    basis: Annotated[
        str, choice(_BASES, f"{{where}} must be one of {', '.join(_BASES)} (consent is the ledger's business)")
    ]
    roles: Strings = ()
    purposes: Strings = Field((), validate_default=True)
    categories: tuple[Category, ...] = Field((), validate_default=True)
    # whose data the rule covers: owners of subgraphs (an owner not registered yet is no error)
    sources: frozenset[StrictStr] = Field(frozenset(), validate_default=True)
    paths: frozenset[StrictStr] = frozenset()
    # owners of subgraphs that may receive such values in the gateway's own requests to them
    # (representations, @requires inputs): a basis for flows rather than for requesters
    recipients: frozenset[StrictStr] = Field(frozenset(), validate_default=True)

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, purposes: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not purposes:
            refuse(_EVERYTHING)
        _undeclared(purposes, info, "purposes")
        return purposes

    @field_validator("categories")
    @classmethod
    def _some_categories(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        if not categories:
            refuse(_EVERYTHING)
        return categories

    @field_validator("recipients")
    @classmethod
    def _someone(cls, recipients: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        if not recipients and info.data.get("roles") == ():  # roles refused already: said there
            refuse(_EVERYTHING)
        return recipients

    @field_validator("sources")
    @classmethod
    def _whose_data(cls, sources: frozenset[str]) -> frozenset[str]:
        if not sources or not all(source.strip() for source in sources):
            refuse("{where}: a basis names whose data it covers (owners, e.g. [city])")
        return sources

    @field_validator("paths")
    @classmethod
    def _fields(cls, paths: frozenset[str]) -> frozenset[str]:
        if not paths:
            refuse("{where}: name at least one field (Type.field), or leave paths out")
        malformed = [path for path in paths if not _COORDINATE.match(path)]
        if malformed:
            refuse(
                f"{{where}}: {_quoted(malformed)} {'is not a schema coordinate' if len(malformed) == 1 else 'are not schema coordinates'} Type.field"
            )
        return paths

    def covers_flow(self, recipient: str, purpose: str, category: str, sources: frozenset[str]) -> bool:
        """Whether the rule lets a value of `category` from `sources` go to the subgraphs of
        `recipient` for `purpose` (never a path-scoped rule: a flow is not reached through a field)."""
        return (
            recipient in self.recipients
            and purpose in self.purposes
            and not self.paths
            and self.could_cover(category, sources)
        )

    def could_cover(self, category: str, sources: frozenset[str]) -> bool:
        """Whether the rule covers a value of `category` from `sources` for some requester and
        some way of reaching it. No source (nobody resolves the field): nothing is covered."""
        return bool(sources) and sources <= self.sources and any(category_covers(c, category) for c in self.categories)

    def covers(
        self, roles: frozenset[str], purpose: str, category: str, sources: frozenset[str], via: frozenset[str]
    ) -> bool:
        """Whether the rule covers a value of `category` from `sources`, whose object was reached
        through the fields `via` (the parent field's coordinates on the parent's type and its
        interfaces; empty when unknown), for a requester with `roles` and `purpose`."""
        return (
            purpose in self.purposes
            and not roles.isdisjoint(self.roles)
            and (not self.paths or not via.isdisjoint(self.paths))
            and self.could_cover(category, sources)
        )


class OpenDataTotal(_Section):
    epsilon: Annotated[
        StrictFloat, Field(allow_inf_nan=False), explained("{where} must be a number at least epsilon_per_query")
    ]
    period: Annotated[str, choice(OPEN_DATA_PERIODS, f"{{where}} must be one of {', '.join(OPEN_DATA_PERIODS)}")] = (
        "day"  # UTC
    )


class OpenDataBudget(_Section):
    """What one client (or the public) may learn from aggregates: each value released costs
    `epsilon_per_query`, and the releases of one period may cost `epsilon` in all."""

    epsilon_per_query: Annotated[
        StrictFloat, Field(gt=0, allow_inf_nan=False), explained("{where} must be a positive number")
    ]
    budget: OpenDataTotal

    @model_validator(mode="after")
    def _affordable(self) -> OpenDataBudget:
        if self.budget.epsilon < self.epsilon_per_query:
            refuse("{where}.budget.epsilon must be a number at least epsilon_per_query")
        return self

    @property
    def epsilon(self) -> float:
        return self.budget.epsilon

    @property
    def period(self) -> str:  # day | week | month (UTC)
        return self.budget.period


def _declared_client(client_id: str, info: ValidationInfo) -> str:
    _undeclared((client_id,), info, "clients")
    return client_id


class OpenData(_Section):
    """The policy's `open_data` section: when present, every aggregate value is released with
    calibrated noise, charged to the requester's budget; a requester without one gets none."""

    public: OpenDataBudget | None = None
    clients: dict[Annotated[StrictStr, AfterValidator(_declared_client)], OpenDataBudget] = {}

    def budget_for(self, recipient: str, is_public: bool) -> OpenDataBudget | None:
        return self.public if is_public else self.clients.get(recipient)


class Issuer(_Section):
    issuer: StrictStr
    audience: StrictStr
    jwks_file: StrictStr | None = None  # relative to the policy file's folder
    jwks_url: StrictStr | None = None
    client_claim: StrictStr = "azp"
    roles_claim: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _complete(cls, data: Any) -> Any:
        data = _present(data)
        if isinstance(data, dict):
            if not data.get("issuer") or not data.get("audience"):
                refuse("{where} needs issuer and audience")
            if bool(data.get("jwks_file")) == bool(data.get("jwks_url")):
                refuse("{where} needs exactly one of jwks_file and jwks_url")
        return data

    @field_validator("jwks_file")
    @classmethod
    def _beside_the_policy(cls, jwks_file: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base")
        return (
            str(base / jwks_file) if jwks_file and base is not None and not Path(jwks_file).is_absolute() else jwks_file
        )


class Controller(_Section):
    name: StrictStr = "the city"
    jurisdiction: StrictStr = "FR"
    policy_url: StrictStr = ""


# -- the sections that are only read --------------------------------------------------------------


class Masking(_Section):
    default: Strategy = "null"
    categories: dict[Category, Strategy] = {}  # category -> strategy


class Aggregates(_Section):
    k: Annotated[StrictInt, Field(ge=2), explained("{where} must be a whole number of at least 2")] = 10


class Audit(_Section):
    enabled: StrictBool = True


class Identity(_Section):
    issuers: tuple[Issuer, ...] = ()


class PersistedDocuments(_Section):
    public: Mode = "allow"  # the public requester's mode


class PersonalRule(_Section):
    category: Category
    strategy: StrictStr | None = None  # checked against the field's type when the policy is applied


class AggregateRule(_Section):
    contributors: StrictStr
    min_contributors: Annotated[StrictInt, Field(ge=0), explained("{where} must be a whole number")] | None = None
    statistic: (
        Annotated[str, choice(AGGREGATE_STATISTICS, f"{{where}} must be one of {', '.join(AGGREGATE_STATISTICS)}")]
        | None
    ) = None
    # the bounds of one contributor's value (sum and mean)
    lower: Annotated[StrictFloat, Field(allow_inf_nan=False)] | None = None
    upper: Annotated[StrictFloat, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> AggregateRule:
        if self.statistic in ("sum", "mean") and (self.lower is None or self.upper is None or self.lower > self.upper):
            refuse(
                f"{{where}}: a {self.statistic} needs lower and upper, the bounds of one contributor's value (lower <= upper)"
            )
        return self

    def annotation(self) -> AggregateField:
        bounded = self.statistic in ("sum", "mean")
        return AggregateField(
            self.contributors,
            self.min_contributors,
            self.statistic,
            self.lower if bounded else None,
            self.upper if bounded else None,
        )


class PrivacyRules(_Section):
    """Annotations by schema coordinate, added to or overriding the owners' (docs/privacy.md)."""

    fields: dict[Coordinate, PersonalRule] = {}
    subjects: dict[StrictStr, StrictStr] = {}  # type -> the field naming its subject
    aggregates: dict[Coordinate, AggregateRule] = {}
    # fields the operator declares non-personal, on types with a subject (default private otherwise)
    non_personal: tuple[Coordinate, ...] = ()

    @model_validator(mode="after")
    def _personal_or_not(self) -> PrivacyRules:
        both = set(self.non_personal) & set(self.fields)
        if both:
            refuse(
                f"{{where}}.non_personal: {', '.join(sorted(both))} {'is' if len(both) == 1 else 'are'} also under privacy.fields"
            )
        return self

    def annotations(self) -> PrivacyAnnotations:
        def split(coordinate: str) -> tuple[str, str]:
            type_name, field_name = coordinate.split(".", 1)
            return type_name, field_name

        return PrivacyAnnotations(
            personal={split(c): PersonalField(rule.category, rule.strategy) for c, rule in self.fields.items()},
            subjects=dict(self.subjects),
            aggregates={split(c): rule.annotation() for c, rule in self.aggregates.items()},
            non_personal={split(c) for c in self.non_personal},
        )


class Policy(_Section):
    version: Annotated[StrictStr, BeforeValidator(_text)] = "unversioned"
    controller: Controller = Controller()
    purposes: dict[Name, Annotated[str, BeforeValidator(_description)]] = {}  # id -> description
    clients: dict[Annotated[StrictStr, AfterValidator(_client_id)], Client] = {}
    legal_bases: tuple[LegalBasis, ...] = ()
    masking: Masking = Masking()
    aggregates: Aggregates = Aggregates()
    open_data: OpenData | None = None  # None: aggregates above k are released as they are
    audit: Audit = Audit()
    identity: Identity = Identity()
    privacy_rules: PrivacyRules = Field(PrivacyRules(), validation_alias="privacy")
    registry: RegistryPolicy = RegistryPolicy()
    persisted_documents: PersistedDocuments = PersistedDocuments()

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        """A client's id is its key; a legal basis without a name is called by its place."""
        data = _present(data)
        if not isinstance(data, dict):
            return data
        data = dict(data)
        clients = data.get("clients")
        if isinstance(clients, dict):
            data["clients"] = {
                key: {**value, "id": key} if isinstance(value, dict) and "id" not in value else value
                for key, value in clients.items()
            }
        rules = data.get("legal_bases")
        if isinstance(rules, list):
            data["legal_bases"] = [
                {"name": f"rule-{index}", **rule} if isinstance(rule, dict) and rule.get("name") is None else rule
                for index, rule in enumerate(rules)
            ]
        return data

    @field_validator("clients")
    @classmethod
    def _ids_are_keys(cls, clients: dict[str, Client]) -> dict[str, Client]:
        for key, client in clients.items():
            if client.id != key:
                refuse(f"{{where}}.{key}: unknown key 'id' (a client's id is its key)")
        return clients

    @cached_property
    def privacy(self) -> PrivacyAnnotations:
        """The privacy section as annotations by coordinate (one object per policy)."""
        return self.privacy_rules.annotations()

    @property
    def k(self) -> int:
        return self.aggregates.k

    @property
    def masking_default(self) -> str:
        return self.masking.default

    @property
    def audit_enabled(self) -> bool:
        return self.audit.enabled

    @property
    def issuers(self) -> tuple[Issuer, ...]:
        return self.identity.issuers

    @property
    def public_persisted_documents(self) -> str:
        """The public requester's mode (PERSISTED_DOCUMENT_MODES)."""
        return self.persisted_documents.public

    def persisted_documents_mode(self, client: Client | None) -> str:
        """What documents a requester may send: its client's mode, or the public's."""
        return client.persisted_documents if client is not None else self.persisted_documents.public

    def strategy_for(self, category: str, declared: str | None, fits: frozenset[str] | None = None) -> str:
        """The field's own strategy, else the most specific category rule, else the default. A
        declared strategy fits its field (checked when the policy is applied); one the category
        rules pick that the field's type cannot take (`fits`) masks with null instead: a masked
        value always fits the schema."""
        if declared:
            return declared
        best = None
        for prefix, strategy in self.masking.categories.items():
            if (category == prefix or category.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[0])
            ):
                best = (prefix, strategy)
        chosen = best[1] if best else self.masking.default
        return chosen if fits is None or chosen in fits else "null"

    def client_for_key(self, key: str) -> Client | None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return next(
            (c for c in self.clients.values() if c.api_key_sha256 is not None and c.api_key_sha256 == digest), None
        )


# -- reading the file ------------------------------------------------------------------------------


def parse_policy(data: Any, base: Path | None = None) -> Policy:
    """The policy from the file's data; `base` is the file's folder (relative jwks_file paths).
    Raises PolicyError with every problem, each naming its key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(["the policy must be a mapping"])
    # what other sections may refer to: names checked where they are declared, so that a
    # reference is checked even when the declaration has problems of its own
    declared = {
        section: frozenset(key for key in data.get(section) or {} if isinstance(key, str) and _NAME.match(key))
        if isinstance(data.get(section) or {}, dict)
        else frozenset()
        for section in ("purposes", "clients")
    }
    try:
        return Policy.model_validate(data, context={**declared, "base": base})
    except ValidationError as error:
        raise PolicyError(list(dict.fromkeys(_problem(item) for item in error.errors()))) from None


# what a wrong type is called in a problem (pydantic's own message otherwise)
TYPE_PROBLEMS = {
    "missing": "is required",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "frozen_set_type": "must be a list",
    "bool_type": "must be true or false",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "int_type": "must be a whole number",
}


def _path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "the policy"


def _problem(error: ErrorDetails) -> str:
    """One line for one problem, naming its key path: pydantic's location, its own message only
    for a wrong type (never the input)."""
    location = error["loc"]
    if location and location[-1] == "[key]":  # a mapping's key: the problem is the mapping's
        where = _path(location[:-2])
        if error["type"] != RULE:
            return f"{where}: the key {location[-2]!r} {TYPE_PROBLEMS.get(error['type'], 'is refused')}"
    else:
        where = _path(location)
    if error["type"] == "extra_forbidden":
        return f"{_path(location[:-1])}: unknown key {str(location[-1])!r}"
    if error["type"] == RULE:
        return error["msg"].replace("{where}", where).replace("{parent}", _path(location[:-1]))
    return f"{where} {TYPE_PROBLEMS.get(error['type'], 'is refused: ' + error['msg'])}"


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
