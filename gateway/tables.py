"""Strict validation of one TOML table, shared by the gateway's data files."""

from __future__ import annotations

from pathlib import Path
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


def read_secret_files(where: str, table: dict[str, Any], secrets: tuple[str, ...],
                       base_dir: Path | None) -> dict[str, Any]:
    """``table`` with each ``<secret>_file`` replaced by the file's content (stripped)."""
    table = dict(table)
    for key in secrets:
        file_key = f"{key}_file"
        if file_key not in table:
            continue
        if key in table:
            raise ConfigurationError(f"{where}: set either {key} or {file_key}, not both")
        name = table.pop(file_key)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{where}: {file_key} must be a file path")
        path = Path(name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{where}: {file_key}: {path} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{where}: {file_key}: {path} is not UTF-8 text") from None
        if not value:
            raise ConfigurationError(f"{where}: {file_key}: {path} is empty")
        table[key] = value
    return table
