"""Gateway settings: one TOML file, overridable by environment variables.

File format::

    [gateway]
    max_batch_keys = 500              # keys per statement (IN-list size); larger batches are chunked
    max_search_page = 100             # largest page of Query.searchEntities
    graphiql = false                  # serve GraphiQL at GET /graphql
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
    retention_days = 1096             # at least three years

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
``CREDIT_GATEWAY_AUDIT_<KEY>`` an ``[audit]`` key and
``CREDIT_GATEWAY_SOURCE_<ID>_<KEY>`` a source key, where ``<ID>`` is the
source id upper-cased with ``-`` as ``_`` (``CREDIT_GATEWAY_SOURCE_HZ_MARKET_URL``).
Unknown keys, in the file or the environment, are errors: a typo never passes
silently. ``load_settings`` raises ``ConfigurationError`` naming the problem.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import SourceSettings
from core.errors import ConfigurationError
from gateway.tables import strict_table

ENV_PREFIX = "CREDIT_GATEWAY_"
ENV_CONFIG_PATH = "CREDIT_GATEWAY_CONFIG"
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "Ed25519")
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


@dataclass(frozen=True, slots=True)
class Settings:
    sources: tuple[SourceSettings, ...]
    auth: AuthSettings
    audit: AuditSettings
    max_batch_keys: int = 500
    max_search_page: int = 100
    graphiql: bool = False
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


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "tuple[str, ...]": tuple}
_PATH_KEYS = {"clients_file", "jwks_file", "policy_file", "operations_file"}


def _keys(cls: type, exclude: set[str]) -> dict[str, type]:
    return {f.name: _TYPES[f.type] for f in dataclasses.fields(cls) if f.name not in exclude}


def _required(cls: type, exclude: set[str]) -> set[str]:
    return {
        f.name for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in exclude
    }


GATEWAY_KEYS = _keys(Settings, {"sources", "auth", "audit"})
AUTH_KEYS = _keys(AuthSettings, set())
AUDIT_KEYS = _keys(AuditSettings, set())
SOURCE_KEYS = _keys(SourceSettings, {"id"})


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
    unknown = set(data) - {"gateway", "auth", "audit", "sources"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown section(s) {sorted(unknown)}")
    gateway = _table(data, "gateway", where)
    auth = _table(data, "auth", where)
    audit = _table(data, "audit", where)
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
                 if rest.startswith(eid + "_") and rest[len(eid) + 1:].lower() in SOURCE_KEYS),
                None,
            )
            if match is None:
                raise ConfigurationError(
                    f"environment variable {name} names no configured source and key"
                )
            sources[env_ids[match]][rest[len(match) + 1:].lower()] = value
        elif rest.startswith("AUTH_") and rest[len("AUTH_"):].lower() in AUTH_KEYS:
            auth[rest[len("AUTH_"):].lower()] = value
        elif rest.startswith("AUDIT_") and rest[len("AUDIT_"):].lower() in AUDIT_KEYS:
            audit[rest[len("AUDIT_"):].lower()] = value
        elif rest.lower() in GATEWAY_KEYS:
            gateway[rest.lower()] = value
        else:
            raise ConfigurationError(f"environment variable {name} is not a gateway setting")

    gateway_values = _section(f"{where} [gateway]", gateway, GATEWAY_KEYS, set(), base_dir)
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
    audit_values = _section(f"{where} [audit]", audit, AUDIT_KEYS,
                            _required(AuditSettings, set()), base_dir)
    if audit_values.get("retention_days", MIN_RETENTION_DAYS) < MIN_RETENTION_DAYS:
        raise ConfigurationError(
            f"{where} [audit]: retention_days must be at least {MIN_RETENTION_DAYS} (three years)"
        )
    if len(audit_values["subject_key"]) < 32:
        raise ConfigurationError(f"{where} [audit]: subject_key must have at least 32 characters")

    if not sources:
        raise ConfigurationError(f"{where}: no [sources.<id>] tables: nothing to serve")
    parsed = tuple(
        SourceSettings(id=sid, **_section(
            f"{where} [sources.{sid}]", table, SOURCE_KEYS, _required(SourceSettings, {"id"}), None
        ))
        for sid, table in sources.items()
    )
    return Settings(sources=parsed, auth=AuthSettings(**auth_values),
                    audit=AuditSettings(**audit_values), **gateway_values)


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
