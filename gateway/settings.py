"""Gateway settings: one TOML file, overridable by environment variables.

File format::

    [gateway]
    max_batch_keys = 500              # keys per statement (IN-list size); larger batches are chunked
    max_search_page = 100             # largest page of Query.searchEntities
    compiled_execution = true         # plain record subtrees completed by compiled projections
                                      # (gateway/compiled.py); false: graphql-core field by field
    graphiql = false                  # serve GraphiQL at GET /graphql
    graphiql_assets = "graphiql-assets"  # its files (`credit-gateway graphiql-assets` fetches
                                      # them; gateway/graphiql.py); default: beside this file
    introspection = false             # introspection and "did you mean" for every client
    policy_file = ""                  # purpose-of-use catalog; empty: the packaged gateway/policy.toml
    operations_file = ""              # persisted operations (format: gateway/operations.py);
                                      # empty: none (a persisted_only client then runs nothing)
    # Limits on one request, checked before any work (see gateway/admission.py):
    max_body_bytes = 1048576          # request body (413 beyond, not read further)
    max_query_length = 20000          # characters of the GraphQL document
    max_tokens = 3000                 # lexical tokens of the document (the parser stops there)
    max_depth = 20                    # nesting of fields (introspection needs 15)
    max_aliases = 30                  # aliased fields
    max_root_fields = 20              # fields of the operation's root
    max_directives = 4                # directives on one field or fragment
    max_subjects_per_request = 1000   # organizations and persons asked about, all fields together
    max_cost = 20000                  # subjects x record types read (an estimate of source work)

    [auth]                            # OAuth 2.0 JWT access tokens (RFC 9068)
    issuer = "https://idp.example/"   # required `iss`
    audience = "urn:huizhou:credit-gateway"  # required in `aud`
    jwks_file = "jwks.json"           # signing keys: a JWKS file, re-read when it changes ...
    jwks_url = ""                     # ... or a URL, fetched and cached
    jwks_refresh_seconds = 300        # the URL is re-fetched once its keys are this old (> 0)
    jwks_min_refetch_seconds = 60     # an unknown `kid` re-fetches the URL at most this often
    algorithms = ["RS256", "ES256"]   # accepted `alg` values
    clients_file = "clients.toml"     # the client registry

    [audit]                           # the access audit trail (PIPL arts. 55-56)
    url = "postgresql+asyncpg://gateway@audit-db/audit"   # its own database
    subject_key = "..."               # secret (32+ characters) keying the hashes of ID numbers
    # subject_key_file = "/run/secrets/subject-key"  # ... or read from a file (see below)
    retention_days = 1096             # at least three years

    [limits]                          # per-client rate limits (gateway/limits.py); all optional
    default_rate = "600/minute"       # requests per window of a client with no `rate_limit`
    default_cost = "200000/minute"    # admitted cost (gateway/admission.py) per window, likewise
    storage_url = ""                  # empty: counted in memory, per process; shared by every
                                      # process and instance: "async+redis://redis.internal:6379/0"
    key_prefix = "credit-gateway"     # of the storage's keys (instances sharing one Redis and
                                      # one budget use the same prefix)
    on_storage_error = "open"         # the storage fails: "open" serves (logged, counted),
                                      # "closed" refuses (503 RATE_LIMIT_UNAVAILABLE)
    storage_timeout_seconds = 0.5     # one storage call at most; a failure skips the storage
                                      # for a second before it is tried again

    [transparency]                    # signed checkpoints of the audit tree and witnesses;
                                      # optional: see gateway/transparency.py
    [witness]                         # this gateway cosigns other logs' checkpoints; optional

    [telemetry]                       # OpenTelemetry traces (gateway/tracing.py); all optional
    tracing = false                   # spans per request, admission, planning, source call, audit
    otlp_endpoint = ""                # OTLP/HTTP collector ("http://otel-collector:4318"); empty:
                                      # spans kept in memory only (tests, debugging)
    service_name = "credit-gateway"   # the spans' service.name

    [sources.hz-market]               # one table per source; the key is the source id
    connector = "market"              # connector kind, see connectors.CONNECTORS
    url = "sqlite+aiosqlite:///data/market.db"
    department = "惠州市市场监督管理局"
    city = "惠州"
    timeout_seconds = 5.0             # optional
    simulated_latency_ms = 0          # optional; demos and benchmarks only
    pool_size = 16                    # optional; connections kept open to this database

    [sources.sz-gateway]              # a partner city's endpoint (HTTP connectors)
    connector = "shenzhen"
    url = "https://credit.sz.example/graphql"
    department = "深圳市公共信用中心"
    city = "深圳"
    divisions = ["4403"]              # registrations of these division codes come from here
    token_url = "https://credit.sz.example/oauth/token"   # OAuth 2.0 client credentials
    client_id = "huizhou-gateway"
    client_secret = "..."
    timeout_seconds = 2.0             # per request, retries included
    retries = 2                       # extra attempts for reads, exponential backoff with jitter
    backoff_seconds = 0.05
    breaker_failures = 5              # consecutive failures that open the circuit ...
    breaker_reset_seconds = 30        # ... for this long
    max_concurrency = 8               # requests in flight at once
    max_response_bytes = 5000000

Relative file paths are read relative to the configuration file.
Environment overrides: ``CREDIT_GATEWAY_<KEY>`` sets a ``[gateway]`` key,
``CREDIT_GATEWAY_AUTH_<KEY>`` an ``[auth]`` key (lists comma-separated),
``CREDIT_GATEWAY_AUDIT_<KEY>`` an ``[audit]`` key,
``CREDIT_GATEWAY_LIMITS_<KEY>`` a ``[limits]`` key,
``CREDIT_GATEWAY_TELEMETRY_<KEY>`` a ``[telemetry]`` key and
``CREDIT_GATEWAY_SOURCE_<ID>_<KEY>`` a source key, where ``<ID>`` is the
source id upper-cased with ``-`` as ``_`` (``CREDIT_GATEWAY_SOURCE_HZ_MARKET_URL``).

Secrets need not be in the file: each of ``SECRET_FILE_KEYS`` (the audit
trail's ``subject_key`` and ``url``, a source's ``client_secret`` and ``url``,
the limits' ``storage_url``) can instead be given as ``<key>_file``, the path
of a file holding the value (surrounding whitespace stripped; relative to the
configuration file), in the file or the environment
(``CREDIT_GATEWAY_AUDIT_SUBJECT_KEY_FILE=/run/secrets/subject-key``,
``CREDIT_GATEWAY_SOURCE_SZ_GATEWAY_CLIENT_SECRET_FILE=...``). Setting both a
key and its ``_file`` in the file is an error; an environment variable for
either replaces both.
Unknown keys, in the file or the environment, are errors: a typo never passes
silently. ``load_settings`` raises ``ConfigurationError`` naming the problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import SourceSettings
from core.errors import ConfigurationError
from gateway.tables import read_secret_files, strict_table
from gateway.transparency import (
    TransparencySettings, WitnessSettings, parse_transparency, parse_witness,
)

ENV_PREFIX = "CREDIT_GATEWAY_"
ENV_CONFIG_PATH = "CREDIT_GATEWAY_CONFIG"
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "Ed25519")
DEFAULT_GRAPHIQL_ASSETS = "graphiql-assets"  # relative to the configuration file
MIN_RETENTION_DAYS = 1096  # PIPL art. 56: processing records kept at least three years


@dataclass(frozen=True, slots=True)
class AuthSettings:
    issuer: str
    audience: str
    clients_file: str
    jwks_file: str = ""
    jwks_url: str = ""
    jwks_min_refetch_seconds: float = 60.0
    jwks_refresh_seconds: float = 300.0  # a removed key is refused within this long
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS


@dataclass(frozen=True, slots=True)
class AuditSettings:
    url: str
    subject_key: str
    retention_days: int = MIN_RETENTION_DAYS


ON_STORAGE_ERROR = ("open", "closed")
# Storages of the `limits` library the limiter may use (async, with the moving window).
LIMIT_STORAGE_SCHEMES = ("async+memory", "async+redis", "async+rediss", "async+redis+unix",
                         "async+redis+cluster", "async+redis+sentinel")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Rate limits per client (``gateway.limits``); a client's own are in the registry."""

    # A burst of a few thousand requests in seconds is refused after 600; a
    # portal's or an app's use (a few requests a second) passes.
    default_rate: str = "600/minute"
    # The admitted cost: ten requests of the largest cost (`max_cost`, 20,000)
    # a minute, or a thousand 500-enterprise portfolios (2 per enterprise).
    default_cost: str = "200000/minute"
    storage_url: str = ""  # empty: in memory, per process
    key_prefix: str = "credit-gateway"
    on_storage_error: str = "open"  # or "closed"
    storage_timeout_seconds: float = 0.5


def parse_rate_limit(where: str, key: str, value: Any) -> Any:
    """``value`` (``"600/minute"``, ``"100 per 10 seconds"``) as one ``limits``
    ``RateLimitItem``, or a ``ConfigurationError``: not a string, not the
    library's notation, several limits (``"1/second;5/minute"``) or an amount of 0."""
    from limits import parse_many

    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: {key} must be a string like \"600/minute\", "
                                 f"got {value!r}")
    try:
        items = parse_many(value)
    except ValueError:
        raise ConfigurationError(f"{where}: {key} {value!r} is not a rate limit: write "
                                 f"\"<amount>/<second|minute|hour|day>\" or \"<amount> per "
                                 f"<n> <seconds|minutes|...>\"") from None
    if len(items) != 1:
        raise ConfigurationError(f"{where}: {key} {value!r} must be one limit, not {len(items)}")
    if items[0].amount < 1:
        raise ConfigurationError(f"{where}: {key} {value!r} must allow at least 1")
    return items[0]


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Traces (``gateway.tracing``); metrics and logs need no settings."""

    tracing: bool = False
    otlp_endpoint: str = ""  # empty: spans kept in memory, exported nowhere
    service_name: str = "credit-gateway"


@dataclass(frozen=True, slots=True)
class Settings:
    sources: tuple[SourceSettings, ...]
    auth: AuthSettings
    audit: AuditSettings
    max_batch_keys: int = 500
    max_search_page: int = 100
    compiled_execution: bool = True  # gateway/compiled.py
    graphiql: bool = False
    graphiql_assets: str = DEFAULT_GRAPHIQL_ASSETS  # GraphiQL's files (gateway/graphiql.py)
    introspection: bool = False  # for every client; the registry can enable it per client
    policy_file: str = ""
    operations_file: str = ""  # persisted operations (gateway/operations.py); empty: none
    # Limits on one request, checked before it is parsed or executed (gateway/admission.py).
    max_body_bytes: int = 1_048_576
    max_query_length: int = 20_000
    max_tokens: int = 3_000
    max_depth: int = 20
    max_aliases: int = 30
    max_root_fields: int = 20
    max_directives: int = 4
    max_subjects_per_request: int = 1000
    max_cost: int = 20_000
    limits: LimitSettings = dataclasses.field(default_factory=LimitSettings)
    telemetry: TelemetrySettings = dataclasses.field(default_factory=TelemetrySettings)
    transparency: TransparencySettings | None = None  # signed checkpoints of the audit tree
    witness: WitnessSettings | None = None  # this gateway cosigns other cities' checkpoints


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "tuple[str, ...]": tuple}
_PATH_KEYS = {"clients_file", "jwks_file", "policy_file", "operations_file", "graphiql_assets"}


def _keys(cls: type, exclude: set[str]) -> dict[str, type]:
    return {f.name: _TYPES[f.type] for f in dataclasses.fields(cls) if f.name not in exclude}


def _required(cls: type, exclude: set[str]) -> set[str]:
    return {
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in exclude
    }


GATEWAY_KEYS = _keys(Settings, {"sources", "auth", "audit", "limits", "telemetry",
                                "transparency", "witness"})
TELEMETRY_KEYS = _keys(TelemetrySettings, set())
AUTH_KEYS = _keys(AuthSettings, set())
AUDIT_KEYS = _keys(AuditSettings, set())
LIMITS_KEYS = _keys(LimitSettings, set())
SOURCE_KEYS = _keys(SourceSettings, {"id"})
# Secrets that may be read from a file named by `<key>_file` instead (per section).
SECRET_FILE_KEYS = {"audit": ("subject_key", "url"), "sources": ("client_secret", "url"),
                    "limits": ("storage_url",)}
AUDIT_FILE_KEYS = {f"{k}_file" for k in SECRET_FILE_KEYS["audit"]}
SOURCE_FILE_KEYS = {f"{k}_file" for k in SECRET_FILE_KEYS["sources"]}
LIMITS_FILE_KEYS = {f"{k}_file" for k in SECRET_FILE_KEYS["limits"]}


def _set(table: dict[str, Any], key: str, value: str) -> None:
    """An environment value for ``key`` (or ``<key>_file``): it replaces both in ``table``."""
    base = key.removesuffix("_file")
    table.pop(base, None)
    table.pop(f"{base}_file", None)
    table[key] = value


def _coerce(where: str, key: str, value: Any, kind: type) -> Any:
    """Check a file value, or convert an environment string, to ``kind``."""
    if kind is tuple:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"{where}: {key} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return text in ("true", "1", "yes")
            value = kind(text)
        except ValueError:
            raise ConfigurationError(
                f"{where}: {key} must be {kind.__name__}, got {value!r}"
            ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigurationError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    if kind in (int, float) and value < 0:
        raise ConfigurationError(f"{where}: {key} must not be negative, got {value!r}")
    return value


def _section(
    where: str, table: Mapping[str, Any], keys: Mapping[str, type], required: set[str],
    base_dir: Path | None,
) -> dict[str, Any]:
    """Validate one table: no unknown or missing keys, values of the right type."""
    strict_table(where, table, required, set(keys) - required)
    values = {key: _coerce(where, key, value, keys[key]) for key, value in table.items()}
    for key in _PATH_KEYS & set(values):
        if values[key] and base_dir is not None:
            values[key] = str(base_dir / values[key])
    return values


def _env_id(source_id: str) -> str:
    return source_id.upper().replace("-", "_")


def _table(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: [{name}] must be a table")
    return dict(value)


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str], where: str = "configuration",
    base_dir: Path | None = None,
) -> Settings:
    """Build ``Settings`` from parsed TOML and environment overrides."""
    unknown = set(data) - {"gateway", "auth", "audit", "limits", "telemetry", "sources",
                           "transparency", "witness"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown section(s) {sorted(unknown)}")
    gateway = _table(data, "gateway", where)
    auth = _table(data, "auth", where)
    audit = _table(data, "audit", where)
    limits = _table(data, "limits", where)
    telemetry = _table(data, "telemetry", where)
    raw_sources = _table(data, "sources", where)
    if not all(isinstance(t, dict) for t in raw_sources.values()):
        raise ConfigurationError(f"{where}: [sources] must hold one table per source")
    sources = {sid: dict(table) for sid, table in raw_sources.items()}

    env_ids = {_env_id(sid): sid for sid in sources}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_PATH:
            continue
        rest = name[len(ENV_PREFIX):]
        if rest.startswith("SOURCE_"):
            rest = rest[len("SOURCE_"):]
            match = next(
                (eid for eid in sorted(env_ids, key=len, reverse=True)
                 if rest.startswith(eid + "_")
                 and rest[len(eid) + 1:].lower() in SOURCE_KEYS.keys() | SOURCE_FILE_KEYS),
                None,
            )
            if match is None:
                raise ConfigurationError(
                    f"environment variable {name} names no configured source and key"
                )
            _set(sources[env_ids[match]], rest[len(match) + 1:].lower(), value)
        elif rest.startswith("AUTH_") and rest[len("AUTH_"):].lower() in AUTH_KEYS:
            auth[rest[len("AUTH_"):].lower()] = value
        elif rest.startswith("AUDIT_") and rest[len("AUDIT_"):].lower() in (
                AUDIT_KEYS.keys() | AUDIT_FILE_KEYS):
            _set(audit, rest[len("AUDIT_"):].lower(), value)
        elif rest.startswith("LIMITS_") and rest[len("LIMITS_"):].lower() in (
                LIMITS_KEYS.keys() | LIMITS_FILE_KEYS):
            _set(limits, rest[len("LIMITS_"):].lower(), value)
        elif rest.startswith("TELEMETRY_") and rest[len("TELEMETRY_"):].lower() in TELEMETRY_KEYS:
            telemetry[rest[len("TELEMETRY_"):].lower()] = value
        elif rest.lower() in GATEWAY_KEYS:
            gateway[rest.lower()] = value
        else:
            raise ConfigurationError(f"environment variable {name} is not a gateway setting")

    gateway_values = _section(f"{where} [gateway]", gateway, GATEWAY_KEYS, set(), base_dir)
    if "graphiql_assets" not in gateway_values and base_dir is not None:
        gateway_values["graphiql_assets"] = str(base_dir / DEFAULT_GRAPHIQL_ASSETS)
    for key in [k for k in GATEWAY_KEYS if k.startswith("max_")]:
        if gateway_values.get(key, 1) < 1:
            raise ConfigurationError(f"{where} [gateway]: {key} must be at least 1")

    if not auth:
        raise ConfigurationError(f"{where}: no [auth] table: every client must authenticate")
    auth_values = _section(f"{where} [auth]", auth, AUTH_KEYS, _required(AuthSettings, set()), base_dir)
    if bool(auth_values.get("jwks_file")) == bool(auth_values.get("jwks_url")):
        raise ConfigurationError(f"{where} [auth]: set exactly one of jwks_file and jwks_url")
    refresh = auth_values.get("jwks_refresh_seconds")
    if refresh is not None and not 0 < refresh < math.inf:
        raise ConfigurationError(
            f"{where} [auth]: jwks_refresh_seconds must be a positive number of seconds, got {refresh!r}"
        )
    if not auth_values.get("algorithms", DEFAULT_ALGORITHMS):
        raise ConfigurationError(f"{where} [auth]: algorithms must not be empty")

    if not audit:
        raise ConfigurationError(f"{where}: no [audit] table: every release must be recorded")
    audit = read_secret_files(f"{where} [audit]", audit, SECRET_FILE_KEYS["audit"], base_dir)
    audit_values = _section(f"{where} [audit]", audit, AUDIT_KEYS,
                            _required(AuditSettings, set()), base_dir)
    if audit_values.get("retention_days", MIN_RETENTION_DAYS) < MIN_RETENTION_DAYS:
        raise ConfigurationError(
            f"{where} [audit]: retention_days must be at least {MIN_RETENTION_DAYS} (three years)"
        )
    if len(audit_values["subject_key"]) < 32:
        raise ConfigurationError(f"{where} [audit]: subject_key must have at least 32 characters")

    limits = read_secret_files(f"{where} [limits]", limits, SECRET_FILE_KEYS["limits"],
                                base_dir)
    limit_values = _section(f"{where} [limits]", limits, LIMITS_KEYS, set(), None)
    for key in ("default_rate", "default_cost"):
        if key in limit_values:
            parse_rate_limit(f"{where} [limits]", key, limit_values[key])
    if limit_values.get("on_storage_error", "open") not in ON_STORAGE_ERROR:
        raise ConfigurationError(f"{where} [limits]: on_storage_error must be \"open\" or "
                                 f"\"closed\", got {limit_values['on_storage_error']!r}")
    storage_url = limit_values.get("storage_url", "")
    if storage_url and storage_url.split("://", 1)[0] not in LIMIT_STORAGE_SCHEMES:
        raise ConfigurationError(
            f"{where} [limits]: storage_url must be empty (in memory) or start with one of "
            f"{', '.join(s + '://' for s in LIMIT_STORAGE_SCHEMES)}")
    if not 0 < limit_values.get("storage_timeout_seconds", 1.0) < math.inf:
        raise ConfigurationError(f"{where} [limits]: storage_timeout_seconds must be a positive "
                                 f"number of seconds")

    telemetry_values = _section(f"{where} [telemetry]", telemetry, TELEMETRY_KEYS, set(), None)
    endpoint = telemetry_values.get("otlp_endpoint", "")
    if endpoint and not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", endpoint):
        raise ConfigurationError(f"{where} [telemetry]: otlp_endpoint must be an http:// or "
                                 f"https:// URL, got {endpoint!r}")
    if not telemetry_values.get("service_name", "credit-gateway").strip():
        raise ConfigurationError(f"{where} [telemetry]: service_name must not be empty")

    if not sources:
        raise ConfigurationError(f"{where}: no [sources.<id>] tables: nothing to serve")
    parsed = tuple(
        SourceSettings(id=sid, **_section(
            f"{where} [sources.{sid}]",
            read_secret_files(f"{where} [sources.{sid}]", table, SECRET_FILE_KEYS["sources"],
                               base_dir),
            SOURCE_KEYS, _required(SourceSettings, {"id"}), None
        ))
        for sid, table in sources.items()
    )
    return Settings(sources=parsed, auth=AuthSettings(**auth_values),
                    audit=AuditSettings(**audit_values), limits=LimitSettings(**limit_values),
                    telemetry=TelemetrySettings(**telemetry_values),
                    transparency=parse_transparency(f"{where} [transparency]",
                                                    data.get("transparency"), base_dir),
                    witness=parse_witness(f"{where} [witness]", data.get("witness"), base_dir),
                    **gateway_values)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the TOML file at ``path`` with environment overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from None
    return parse_settings(data, os.environ if env is None else env, str(path), path.parent.resolve())
