"""The server's settings: one file (`citygate.yaml`), `CITYGATE_*` variables and `serve`'s options.

Every setting `citygate serve` has is a field of `Settings`, a typed model: a flag wins over its
environment variable, which wins over the file, which wins over the default. Unknown keys and bad
values are refused at start, one line per problem naming the key and where its value came from
(`SettingsError.problems`); nothing starts half-configured.

Secrets never live here: the operator key and the pseudonymisation key stay in the environment
(`CITYGATE_OPERATOR_KEY`, `CITYGATE_PSEUDONYM_KEY`), and a refused store or Redis URL is never
repeated in a problem (it may hold a password). docs/operators.md ("Settings") lists every key;
a test checks that it does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from .errors import ConfigurationError
from .http_limits import HttpLimits
from .planner import DocumentLimits
from .store import StoreTimeouts

# what a browser may send cross-origin without a preflight (the Fetch standard's CORS-safelisted
# content types): a GraphQL request with one of these, or none, must prove it is not a form
SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
# keys whose values may hold a password: never repeated in a problem
_SECRET_KEYS = {"store.url", "redis.url", "telemetry.otlp_endpoint", "telemetry.metrics_token"}
# keys holding a path: relative to the configuration file's folder when they come from it
_PATH_KEYS = {"policy", "supergraph", "connectors", "server.graphiql_assets"}


def setting(default: Any, env: str | None, description: str, *, flag: str | None = None, **constraints: Any) -> Any:
    """A field with its environment variable, its `serve` option if it has one, and its description."""
    return Field(default, description=description, json_schema_extra={"env": env, "flag": flag}, **constraints)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = setting("127.0.0.1", "CITYGATE_HOST", "Interface to listen on.", flag="--host")
    port: int = setting(4000, "CITYGATE_PORT", "Port to listen on.", ge=0, le=65535, flag="--port")
    workers: int = setting(
        1,
        "CITYGATE_WORKERS",
        "Worker processes sharing the port (one per core); more than 1 needs a PostgreSQL store.",
        ge=1,
        le=256,
        flag="--workers",
    )
    dev: bool = setting(
        False,
        "CITYGATE_DEV",
        "Development mode: query plans on request, introspection and suggestions for everyone.",
        flag="--dev",
    )
    graphiql_assets: Path = setting(
        Path(".citygate/graphiql"),
        "CITYGATE_GRAPHIQL_ASSETS",
        "GraphiQL's files (else it loads them from a CDN).",
        flag="--graphiql-assets",
    )
    subgraph_sharing: bool = setting(
        True,
        "CITYGATE_SUBGRAPH_SHARING",
        "Identical subgraph requests in flight at once share one call (they carry no requester's identity).",
        flag="--subgraph-sharing",
    )
    introspection: Literal["all", "clients", "none"] | None = setting(
        None,
        "CITYGATE_INTROSPECTION",
        "Who may introspect: all, clients (identified clients, not the public), none; unset: clients (all with dev).",
        flag="--introspection",
    )
    suggestions: bool | None = setting(
        None,
        "CITYGATE_SUGGESTIONS",
        "'Did you mean' in validation errors; unset: off (on with dev).",
        flag="--suggestions",
    )


class StoreSettings(_Section):
    url: str = setting(
        "sqlite:///citygate.db",
        "CITYGATE_STORE",
        "sqlite:///file.db (one process) or postgresql://user@host/db.",
        flag="--store",
    )
    connect_timeout: float = setting(
        5.0,
        "CITYGATE_STORE_CONNECT_TIMEOUT",
        "Seconds to connect to the store (or wait for a pooled connection).",
        gt=0,
        flag="--store-connect-timeout",
    )
    statement_timeout: float = setting(
        5.0,
        "CITYGATE_STORE_STATEMENT_TIMEOUT",
        "Seconds for one store statement or lock.",
        gt=0,
        flag="--store-statement-timeout",
    )

    @property
    def is_postgresql(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://"))


_H, _D = HttpLimits, DocumentLimits  # the defaults are theirs: one place each


class LimitSettings(_Section):
    """The HTTP edge's limits (`HttpLimits`) and one operation's (`DocumentLimits`)."""

    max_body_bytes: int = setting(
        _H.max_body_bytes, "CITYGATE_MAX_BODY_BYTES", "Largest /graphql request body.", ge=0, flag="--max-body-bytes"
    )
    admin_max_body_bytes: int = setting(
        _H.admin_max_body_bytes,
        "CITYGATE_ADMIN_MAX_BODY_BYTES",
        "Largest /admin request body.",
        ge=0,
        flag="--admin-max-body-bytes",
    )
    max_header_bytes: int = setting(_H.max_header_bytes, "CITYGATE_MAX_HEADER_BYTES", "Request line and headers.", ge=0)
    max_headers: int = setting(_H.max_headers, "CITYGATE_MAX_HEADERS", "Headers of one request.", ge=0)
    header_timeout: float = setting(
        _H.header_timeout, "CITYGATE_HEADER_TIMEOUT", "Seconds for a request's headers.", ge=0, flag="--header-timeout"
    )
    body_timeout: float = setting(
        _H.body_timeout, "CITYGATE_BODY_TIMEOUT", "Seconds for a request's body.", ge=0, flag="--body-timeout"
    )
    keep_alive_timeout: float = setting(
        _H.keep_alive_timeout,
        "CITYGATE_KEEP_ALIVE_TIMEOUT",
        "Seconds an idle connection stays open.",
        ge=0,
        flag="--keep-alive-timeout",
    )
    write_timeout: float = setting(
        _H.write_timeout,
        "CITYGATE_WRITE_TIMEOUT",
        "Seconds in which a client must take 64 KiB of its answer (or all).",
        ge=0,
        flag="--write-timeout",
    )
    rate_limit: float = setting(
        _H.rate_limit,
        "CITYGATE_RATE_LIMIT",
        "Requests per second per client (the policy may set its own); 0: none.",
        ge=0,
        flag="--rate-limit",
    )
    public_rate_limit: float = setting(
        _H.public_rate_limit,
        "CITYGATE_PUBLIC_RATE_LIMIT",
        "Requests per second per remote address of the public (queries and the public records routes: /audit/head, the JWKS, the privacy centre, ...); 0: none.",
        ge=0,
        flag="--public-rate-limit",
    )
    max_in_flight: int = setting(
        _H.max_in_flight,
        "CITYGATE_MAX_IN_FLIGHT",
        "Requests in flight per client or public address; 0: none.",
        ge=0,
        flag="--max-in-flight",
    )
    admin_auth_failures: int = setting(
        _H.admin_auth_failures,
        "CITYGATE_ADMIN_AUTH_FAILURES",
        "Refused /admin keys a minute per address before 429; 0: none.",
        ge=0,
        flag="--admin-auth-failures",
    )
    max_document_size: int = setting(
        _D.max_document_size,
        "CITYGATE_MAX_DOCUMENT_SIZE",
        "Characters in a document, checked before parsing.",
        ge=0,
        flag="--max-document-size",
    )
    max_tokens: int = setting(_D.max_tokens, "CITYGATE_MAX_TOKENS", "Tokens in a document.", ge=0, flag="--max-tokens")
    max_depth: int = setting(
        _D.max_depth, "CITYGATE_MAX_DEPTH", "Fields on an operation's longest path.", ge=0, flag="--max-depth"
    )
    max_fields: int = setting(
        _D.max_fields, "CITYGATE_MAX_FIELDS", "Fields once fragments are expanded.", ge=0, flag="--max-fields"
    )
    max_aliases: int = setting(
        _D.max_aliases, "CITYGATE_MAX_ALIASES", "Aliases, fragments expanded.", ge=0, flag="--max-aliases"
    )
    max_root_fields: int = setting(
        _D.max_root_fields,
        "CITYGATE_MAX_ROOT_FIELDS",
        "Root fields, fragments expanded.",
        ge=0,
        flag="--max-root-fields",
    )
    max_variables_depth: int = setting(
        _D.max_variables_depth,
        "CITYGATE_MAX_VARIABLES_DEPTH",
        "Nesting of the variables.",
        ge=0,
        flag="--max-variables-depth",
    )
    max_variables_values: int = setting(
        _D.max_variables_values,
        "CITYGATE_MAX_VARIABLES_VALUES",
        "Values in the variables.",
        ge=0,
        flag="--max-variables-values",
    )
    planning_timeout: float = setting(
        _D.planning_timeout,
        "CITYGATE_PLANNING_TIMEOUT",
        "Seconds to plan one operation; 0: no budget.",
        ge=0,
        flag="--planning-timeout",
    )
    max_cost: int = setting(
        _D.max_cost,
        "CITYGATE_MAX_COST",
        "Estimated cost of one operation (demand control); 0: none.",
        ge=0,
        flag="--max-cost",
    )
    default_list_size: int = setting(
        _D.default_list_size,
        "CITYGATE_DEFAULT_LIST_SIZE",
        "List size assumed when no argument gives it.",
        ge=0,
        flag="--default-list-size",
    )
    # HttpPool's default (executor/_transport.py DEFAULT_MAX_ANSWER_BYTES, which says why 16 MiB;
    # tests/executor/test_answer_cap.py checks they agree): imported, it would be a cycle
    # (executor -> telemetry -> settings)
    max_subgraph_answer_bytes: int = setting(
        16 * 1024 * 1024,
        "CITYGATE_MAX_SUBGRAPH_ANSWER_BYTES",
        "Largest answer read from a GraphQL subgraph; past it the subgraph's fetch fails (SUBREQUEST_HTTP_ERROR).",
        ge=1,
        flag="--max-subgraph-answer-bytes",
    )


class RedisSettings(_Section):
    url: str | None = setting(
        None,
        "CITYGATE_REDIS_URL",
        "Share rate limits between replicas through Redis (redis://host:6379/0); trusted documents are cached there too.",
        flag="--redis-url",
    )


class PersistedDocumentsSettings(_Section):
    """Persisted documents (gateway/persisted.py): APQ, and the trusted documents' caches."""

    apq: bool = setting(
        True,
        "CITYGATE_APQ",
        "Automatic persisted queries (Apollo's APQ): a document's SHA-256 instead of its text, once the gateway has it.",
    )
    apq_cache_bytes: int = setting(
        16 * 1024 * 1024,
        "CITYGATE_APQ_CACHE_BYTES",
        "Memory APQ documents may take per process (least recently used dropped first).",
        ge=0,
    )
    cache_entries: int = setting(
        10_000, "CITYGATE_PERSISTED_DOCUMENTS_CACHE_ENTRIES", "Trusted documents kept in memory per process.", ge=0
    )
    redis_ttl: int = setting(
        86_400,
        "CITYGATE_PERSISTED_DOCUMENTS_REDIS_TTL",
        "Seconds a trusted document stays cached in Redis (with redis.url).",
        ge=1,
    )
    miss_ttl: float = setting(
        10.0,
        "CITYGATE_PERSISTED_DOCUMENTS_MISS_TTL",
        "Seconds an id no trusted document has is remembered as missing in memory (a push on PostgreSQL forgets it at once); 0: never.",
        ge=0,
    )


class CorsSettings(_Section):
    allow_origins: list[str] = setting(
        [],
        "CITYGATE_CORS_ALLOW_ORIGINS",
        "Origins whose pages may call the gateway (exact, e.g. https://app.paris.example; '*': any, without credentials).",
    )
    allow_credentials: bool = setting(
        False, "CITYGATE_CORS_ALLOW_CREDENTIALS", "Browsers may send cookies and HTTP authentication along."
    )
    allow_methods: list[str] = setting(["GET", "POST"], "CITYGATE_CORS_ALLOW_METHODS", "Methods allowed cross-origin.")
    allow_headers: list[str] = setting(
        [
            "content-type",
            "authorization",
            "x-api-key",
            "x-citygate-purpose",
            "x-request-id",
            "apollo-require-preflight",
            "x-apollo-operation-name",
            "traceparent",
            "tracestate",
        ],
        "CITYGATE_CORS_ALLOW_HEADERS",
        "Request headers allowed cross-origin (beyond the CORS-safelisted ones).",
    )
    expose_headers: list[str] = setting(
        ["x-request-id", "retry-after"], "CITYGATE_CORS_EXPOSE_HEADERS", "Response headers a page may read."
    )
    max_age: int = setting(600, "CITYGATE_CORS_MAX_AGE", "Seconds a browser may keep a preflight's answer.", ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*":
                continue
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest or "*" in rest:
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path, no wildcard (or '*' alone)"
                )
        return origins

    @model_validator(mode="after")
    def _no_credentials_for_everyone(self) -> CorsSettings:
        if "*" in self.allow_origins and self.allow_credentials:
            raise ValueError(
                "allow_origins '*' cannot go with allow_credentials: list the origins that may send credentials"
            )
        return self


class CsrfSettings(_Section):
    enabled: bool = setting(
        True,
        "CITYGATE_CSRF",
        "Refuse operations a browser could send without a preflight unless they carry a required header.",
    )
    required_headers: list[str] = setting(
        ["x-apollo-operation-name", "apollo-require-preflight"],
        "CITYGATE_CSRF_REQUIRED_HEADERS",
        "Any of these (non-empty) proves a request was preflighted.",
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error", "critical"] = setting(
        "warning", "CITYGATE_LOG_LEVEL", "Level of the gateway's own log lines.", flag="--log-level"
    )
    format: Literal["text", "json"] = setting(
        "text",
        "CITYGATE_LOG_FORMAT",
        "text (readable, with the time) or json (one object a line).",
        flag="--log-format",
    )
    access_log: bool = setting(
        True, "CITYGATE_ACCESS_LOG", "One line per request: method, path, status, duration, client id, request id."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, level: Any) -> Any:
        return level.lower() if isinstance(level, str) else level


class TelemetrySettings(_Section):
    metrics: bool = setting(True, "CITYGATE_METRICS", "Prometheus metrics at metrics_path.")
    metrics_path: str = setting(
        "/metrics", "CITYGATE_METRICS_PATH", "Where the metrics are served.", pattern=r"^/[A-Za-z0-9/_.-]*$"
    )
    metrics_token: SecretStr | None = setting(
        None,
        "CITYGATE_METRICS_TOKEN",
        "Set: the metrics answer only `Authorization: Bearer <token>`; unset: only requests from loopback addresses.",
    )
    otlp_endpoint: str | None = setting(
        None, "CITYGATE_OTLP_ENDPOINT", "OTLP/HTTP endpoint traces are exported to; unset: no traces exported."
    )
    service_name: str = setting("citygate", "CITYGATE_SERVICE_NAME", "service.name of the traces.", min_length=1)
    traces_sample_ratio: float | None = setting(
        None,
        "CITYGATE_TRACES_SAMPLE_RATIO",
        "Share of requests traced (0 to 1); unset: OTEL_TRACES_SAMPLER's, else every one.",
        ge=0,
        le=1,
    )


class Settings(_Section):
    """Everything `citygate serve` needs but its secrets."""

    policy: Path | None = setting(None, "CITYGATE_POLICY", "The operator's policy file (YAML).", flag="--policy")
    supergraph: Path | None = setting(
        None,
        "CITYGATE_SUPERGRAPH",
        "A composed supergraph in Apollo's format (instead of connectors).",
        flag="--supergraph",
    )
    connectors: Path | None = setting(
        None,
        "CITYGATE_CONNECTORS",
        "Compose the connectors of this folder (and the registered ones); the admin API under /admin.",
        flag="--connectors",
    )
    owners: dict[str, str] = setting(
        {},
        "CITYGATE_OWNERS",
        "With supergraph: the party owning each subgraph (SUBGRAPH: OWNER; by default each its own).",
        flag="--owner",
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    persisted_documents: PersistedDocumentsSettings = Field(default_factory=PersistedDocumentsSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    csrf: CsrfSettings = Field(default_factory=CsrfSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.supergraph is not None and self.connectors is not None:
            raise ValueError("give either supergraph or connectors, not both")
        if self.owners and self.supergraph is None:
            raise ValueError("owners name the subgraphs of a supergraph file: give supergraph too")
        if self.server.workers > 1 and not self.store.is_postgresql:
            raise ValueError(
                f"server.workers: {self.server.workers} worker processes need a PostgreSQL store; SQLite is for one gateway "
                "process (store.url is a SQLite file)"
            )
        return self

    def store_timeouts(self) -> StoreTimeouts:
        return StoreTimeouts(connect=self.store.connect_timeout, statement=self.store.statement_timeout)

    def http_limits(self) -> HttpLimits:
        # the subgraph answer cap is the subgraph pool's (cli.py sets it), not the HTTP edge's
        limits = self.limits.model_dump(exclude={"max_subgraph_answer_bytes"})
        document_names = set(DocumentLimits.__dataclass_fields__)
        suggestions = self.server.suggestions
        document = DocumentLimits(
            **{name: value for name, value in limits.items() if name in document_names},
            introspection=self.server.introspection or "",
            suggestions="" if suggestions is None else ("on" if suggestions else "off"),
        )
        return HttpLimits(
            **{name: value for name, value in limits.items() if name not in document_names},
            redis_url=self.redis.url,
            document=document,
        )


# -- reading them ---------------------------------------------------------------------------------


class SettingsError(ConfigurationError):
    """The settings cannot be used; `problems`: one line each, naming the key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def fields(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every setting as (dotted key, field), sections walked into."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info


def env_name(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    return extra.get("env") if isinstance(extra, dict) else None  # type: ignore[return-value]


def flag_name(info: FieldInfo) -> str | None:
    extra = info.json_schema_extra
    return extra.get("flag") if isinstance(extra, dict) else None  # type: ignore[return-value]


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """The defaults, then the CITYGATE_* variables of `environ` (this process's by default): what a
    gateway built without a settings file or options runs with (tests, `citygate demo`). The one
    place, with load_settings, where the server's settings are read from the environment."""
    return load_settings(None, os.environ if environ is None else environ)


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> Settings:
    """The file at `path` (if any), then the CITYGATE_* variables of `environ`, then `flags` (dotted
    keys; None: not given), validated together. Raises SettingsError."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if path is not None:
        _read_file(path, values, sources)
    known = dict(fields())
    for key, info in known.items():
        variable = env_name(info)
        raw = (environ or {}).get(variable) if variable else None
        if raw is None or raw == "":  # empty: unset (the container image passes empty variables)
            continue
        _put(values, key, _from_text(raw, info))
        sources[key] = variable  # type: ignore[assignment]
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in known:
            raise KeyError(f"no setting {key!r}")
        _put(values, key, value)
        sources[key] = flag_name(known[key]) or key
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise SettingsError([_problem(item, sources, path) for item in error.errors()]) from None


def _read_file(path: Path, values: dict[str, Any], sources: dict[str, str]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError([f"cannot read the settings file {path}: {error.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SettingsError([f"{path} is not valid YAML{where}: {getattr(error, 'problem', None) or error}"]) from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise SettingsError(
            [f"{path} must hold a mapping of settings (server:, store:, ...), not a {type(data).__name__}"]
        )
    folder = path.parent
    for key, value in _flatten(data):
        if key in _PATH_KEYS and isinstance(value, str) and value and not Path(value).is_absolute():
            value = str(folder / value)
        _put(values, key, value)
        sources[key] = str(path)


def _flatten(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for each setting in the file: a section's mapping is walked into, a
    setting's own mapping (`owners`) is not."""
    sections = {
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    }
    for name, value in data.items():
        if name in sections and value is None:  # a section whose keys are all commented out
            continue
        if name in sections and isinstance(value, dict):
            yield from ((f"{name}.{inner}", item) for inner, item in value.items())
        else:
            yield str(name), value


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    *sections, name = key.split(".")
    target = values
    for section in sections:
        existing = target.get(section)
        if not isinstance(existing, dict):
            existing = target[section] = {}
        target = existing
    target[name] = value


def _from_text(raw: str, info: FieldInfo) -> Any:
    """A variable's text as the field's shape: lists comma-separated, mappings `A=B,C=D`; pydantic
    converts scalars (numbers, booleans: true/false, on/off, 1/0)."""
    annotation = str(info.annotation)
    if annotation.startswith("list["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if annotation.startswith("dict["):
        pairs: dict[str, str] = {}
        for item in raw.split(","):
            name, separator, value = item.partition("=")
            pairs[name.strip()] = value.strip() if separator else ""
        return pairs
    return raw


def _problem(error: Any, sources: Mapping[str, str], path: Path | None) -> str:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location)
    # the setting the problem is in (a list item's or mapping entry's setting is its parent key)
    setting_key = next(
        (".".join(location[:n]) for n in range(len(location), 0, -1) if ".".join(location[:n]) in sources), key
    )
    source = sources.get(setting_key)
    origin = f" (from {source})" if source else ""
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown setting{origin}"
    message = error["msg"].removeprefix("Value error, ")
    if not location:  # the whole model's check (its message names its keys)
        return message
    given = error.get("input")
    shown = ""
    if setting_key not in _SECRET_KEYS and isinstance(given, str | int | float | bool) and len(str(given)) <= 80:
        shown = f", not {given!r}"
    return f"{key}: {message}{shown}{origin}"
