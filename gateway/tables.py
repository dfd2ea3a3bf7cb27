"""Strict validation of one TOML table, shared by the gateway's data files."""

from __future__ import annotations

from typing import Any

from core.errors import ConfigurationError


def strict_table(where: str, table: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    """``table`` if it is a table with all ``required`` keys and no key outside
    ``required | optional``; else a ``ConfigurationError`` naming the keys."""
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where}: must be a table")
    unknown = set(table) - required - optional
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {sorted(unknown)}")
    missing = required - set(table)
    if missing:
        raise ConfigurationError(f"{where}: missing key(s) {sorted(missing)}")
    return table
