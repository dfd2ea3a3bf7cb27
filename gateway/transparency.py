"""Settings of the audit log's transparency: signed checkpoints and witnesses.

``[transparency]`` (this gateway publishes checkpoints of its audit tree)::

    [transparency]
    key_file = "secrets/audit-log.key"   # PRIVATE+KEY+<origin>+<id>+<seed> (or key = ...)
    interval_seconds = 60                # sign when the tree grew, at most this often
    directory = "checkpoints"            # also written here (optional)
    required_witnesses = ["shenzhen"]    # default: every witness listed
    [[transparency.witnesses]]
    name = "shenzhen"
    key = "shenzhen-witness+1a2b3c4d+AQ..."   # the witness's verifier key
    url = "https://gateway.sz.example/witness/add-checkpoint"

The key's name is the log's origin, the first line of every checkpoint.

``[witness]`` (this gateway cosigns other cities' checkpoints)::

    [witness]
    key_file = "secrets/witness.key"     # its own signer key
    logs = ["huizhou.credit/audit+...+AQ..."]   # verifier keys of the logs it watches
    state_file = "witness-state.json"    # what it cosigned last, per log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from gateway.audit.checkpoint import NoteError, Signer, Verifier
from gateway.tables import read_secret_files, strict_table


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    name: str
    key: Verifier
    url: str


@dataclass(frozen=True, slots=True)
class TransparencySettings:
    signer: Signer
    interval_seconds: float = 60.0
    directory: str = ""
    witnesses: tuple[WitnessEndpoint, ...] = ()
    required_witnesses: tuple[str, ...] = ()
    witness_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    signer: Signer
    logs: tuple[Verifier, ...]
    state_file: str = ""


def _signer(where: str, table: dict[str, Any], base_dir: Path | None) -> Signer:
    table = read_secret_files(where, table, ("key",), base_dir)
    if not isinstance(table.get("key"), str):
        raise ConfigurationError(f"{where}: key (or key_file) is a signer key string")
    try:
        return Signer.parse(table["key"])
    except NoteError as exc:
        raise ConfigurationError(f"{where}: key: {exc}") from None


def _verifier(where: str, value: Any) -> Verifier:
    try:
        if not isinstance(value, str):
            raise NoteError("a verifier key is a string")
        return Verifier.parse(value)
    except NoteError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def _path(value: Any, where: str, key: str, base_dir: Path | None) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: {key} must be a path")
    return str(base_dir / value) if value and base_dir is not None else value


def _seconds(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86_400:
        raise ConfigurationError(f"{where}: {key} must be a number of seconds above 0")
    return float(value)


def parse_transparency(where: str, table: Any, base_dir: Path | None
                       ) -> TransparencySettings | None:
    if table is None:
        return None
    strict_table(where, table, set(), {"key", "key_file", "interval_seconds", "directory",
                                       "witnesses", "required_witnesses",
                                       "witness_timeout_seconds"})
    signer = _signer(where, table, base_dir)
    witnesses = []
    for n, item in enumerate(table.get("witnesses", [])):
        at = f"{where} witnesses[{n}]"
        strict_table(at, item, {"name", "key", "url"}, set())
        if not str(item["url"]).startswith(("http://", "https://")):
            raise ConfigurationError(f"{at}: url must be http:// or https://")
        witnesses.append(WitnessEndpoint(str(item["name"]), _verifier(at, item["key"]),
                                         str(item["url"])))
    names = [w.name for w in witnesses]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{where}: witness names must be distinct")
    required = table.get("required_witnesses", names)
    if not isinstance(required, list) or not set(required) <= set(names):
        raise ConfigurationError(f"{where}: required_witnesses must name listed witnesses")
    return TransparencySettings(
        signer=signer,
        interval_seconds=_seconds(where, "interval_seconds", table.get("interval_seconds", 60)),
        directory=_path(table.get("directory", ""), where, "directory", base_dir),
        witnesses=tuple(witnesses), required_witnesses=tuple(required),
        witness_timeout_seconds=_seconds(where, "witness_timeout_seconds",
                                         table.get("witness_timeout_seconds", 5)),
    )


def parse_witness(where: str, table: Any, base_dir: Path | None) -> WitnessSettings | None:
    if table is None:
        return None
    strict_table(where, table, {"logs"}, {"key", "key_file", "state_file"})
    logs = table["logs"]
    if not isinstance(logs, list) or not logs:
        raise ConfigurationError(f"{where}: logs must list the verifier keys of the logs watched")
    return WitnessSettings(signer=_signer(where, table, base_dir),
                           logs=tuple(_verifier(f"{where} logs", v) for v in logs),
                           state_file=_path(table.get("state_file", ""), where, "state_file",
                                            base_dir))
