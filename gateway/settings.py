"""Gateway settings: one TOML file, overridable by environment variables.

File format::

    [gateway]
    max_entities_per_request = 1000   # Query.entities accepts at most this many codes
    max_batch_keys = 500              # keys per statement (IN-list size); larger batches are chunked
    max_search_page = 100             # largest page of Query.searchEntities
    graphiql = false                  # serve GraphiQL at GET /graphql

    [sources.hz-market]               # one table per source; the key is the source id
    connector = "market"              # connector kind, see connectors.CONNECTORS
    url = "sqlite+aiosqlite:///data/market.db"
    department = "惠州市市场监督管理局"
    city = "惠州"
    timeout_seconds = 5.0             # optional
    simulated_latency_ms = 0          # optional; demos and benchmarks only

Environment overrides: ``CREDIT_GATEWAY_<KEY>`` sets a ``[gateway]`` key and
``CREDIT_GATEWAY_SOURCE_<ID>_<KEY>`` a source key, where ``<ID>`` is the source
id upper-cased with ``-`` as ``_`` (``CREDIT_GATEWAY_SOURCE_HZ_MARKET_URL``).
Unknown keys, in the file or the environment, are errors: a typo never passes
silently. ``load_settings`` raises ``ConfigurationError`` naming the problem.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigurationError

ENV_PREFIX = "CREDIT_GATEWAY_"
ENV_CONFIG_PATH = "CREDIT_GATEWAY_CONFIG"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    id: str
    connector: str
    url: str
    department: str
    city: str
    timeout_seconds: float = 5.0
    simulated_latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Settings:
    sources: tuple[SourceSettings, ...]
    max_entities_per_request: int = 1000
    max_batch_keys: int = 500
    max_search_page: int = 100
    graphiql: bool = False


def _field_types(cls: type, exclude: set[str]) -> dict[str, type]:
    types = {"int": int, "float": float, "bool": bool, "str": str}
    return {
        f.name: types[f.type] for f in dataclasses.fields(cls) if f.name not in exclude
    }


GATEWAY_KEYS = _field_types(Settings, {"sources"})
SOURCE_KEYS = _field_types(SourceSettings, {"id"})
_REQUIRED_SOURCE_KEYS = {
    f.name for f in dataclasses.fields(SourceSettings)
    if f.default is dataclasses.MISSING and f.name != "id"
}


def _coerce(where: str, key: str, value: Any, kind: type) -> Any:
    """Check a file value, or convert an environment string, to ``kind``."""
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return text in ("true", "1", "yes")
            return kind(text)
        except ValueError:
            raise ConfigurationError(
                f"{where}: {key} must be {kind.__name__}, got {value!r}"
            ) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ConfigurationError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _positive(where: str, key: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigurationError(f"{where}: {key} must not be negative, got {value!r}")


def _env_id(source_id: str) -> str:
    return source_id.upper().replace("-", "_")


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str], where: str = "configuration"
) -> Settings:
    """Build ``Settings`` from parsed TOML and environment overrides."""
    unknown = set(data) - {"gateway", "sources"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown section(s) {sorted(unknown)}")
    raw_sources = data.get("sources", {})
    if not isinstance(raw_sources, dict) or not all(
        isinstance(t, dict) for t in raw_sources.values()
    ):
        raise ConfigurationError(f"{where}: [sources] must hold one table per source")
    if not isinstance(data.get("gateway", {}), dict):
        raise ConfigurationError(f"{where}: [gateway] must be a table")
    gateway = dict(data.get("gateway", {}))
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
        elif rest.lower() in GATEWAY_KEYS:
            gateway[rest.lower()] = value
        else:
            raise ConfigurationError(f"environment variable {name} is not a gateway setting")

    unknown = set(gateway) - set(GATEWAY_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) in [gateway]: {sorted(unknown)}")
    gateway_values = {}
    for key, value in gateway.items():
        gateway_values[key] = _coerce(f"{where} [gateway]", key, value, GATEWAY_KEYS[key])
        _positive(f"{where} [gateway]", key, gateway_values[key])
    for key in ("max_entities_per_request", "max_batch_keys", "max_search_page"):
        if gateway_values.get(key, 1) < 1:
            raise ConfigurationError(f"{where} [gateway]: {key} must be at least 1")

    if not sources:
        raise ConfigurationError(f"{where}: no [sources.<id>] tables: nothing to serve")
    parsed = []
    for sid, table in sources.items():
        section = f"{where} [sources.{sid}]"
        unknown = set(table) - set(SOURCE_KEYS)
        if unknown:
            raise ConfigurationError(f"{section}: unknown key(s) {sorted(unknown)}")
        missing = _REQUIRED_SOURCE_KEYS - set(table)
        if missing:
            raise ConfigurationError(f"{section}: missing key(s) {sorted(missing)}")
        values = {k: _coerce(section, k, v, SOURCE_KEYS[k]) for k, v in table.items()}
        for key, value in values.items():
            _positive(section, key, value)
        parsed.append(SourceSettings(id=sid, **values))
    return Settings(sources=tuple(parsed), **gateway_values)


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
    return parse_settings(data, os.environ if env is None else env, str(path))
