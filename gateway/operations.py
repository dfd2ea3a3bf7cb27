"""Persisted operations: GraphQL documents the operator registers, run by their id.

The store is a TOML file deployed with the configuration (``operations_file``
in ``[gateway]``), so every gateway instance behind a load balancer runs the
same documents. One table per document, keyed by the lower-case hex SHA-256
of the document's UTF-8 text exactly as it stands in ``document``::

    [operations."0f3c…64 hex digits…9a"]
    name = "BankPortfolio"                          # optional: the operation's own name
    clients = ["bank-icbc-huizhou", "bank-hzrcb"]   # optional: who may run it; empty or
                                                    # absent: any client (its purpose's
                                                    # policy still applies)
    document = '''
    query BankPortfolio($usccs: [USCC!]!) { financingProfiles(usccs: $usccs) { uscc } }
    '''

Validated strictly (``ConfigurationError`` naming the entry): unknown keys,
a key that is not the document's hash, a document that does not parse or
holds anything but one operation and its fragments, an anonymous operation
without ``name`` (or a ``name`` other than the operation's), a client the
registry does not know, and two operations of one name that a client could
both run. ``credit-gateway operations add|list|remove`` writes the file
(validating each document against the schema first); it is replaced
atomically, so a running gateway never reads half of it.

**Saved views** are the operations an internal app registers for itself
(``credit-gateway views add|list|remove``): a client's views are the stored
operations that name it in ``clients`` (``views_of``; an operation for any
client is no one's view). Adding a view of a document stored already adds
the client to that entry (``with_view``); removing one takes the client off
it and drops the entry when no client is left (``without_view``).

A client runs one with the GraphQL-over-HTTP persisted-document request
``{"documentId": "sha256:<hex>", "variables": {...}}`` (``gateway.http``);
``OperationStore.lookup`` answers which document that is for the client,
re-reading the file when it changed (looked at at most once a second; a file
that becomes unreadable or invalid keeps the last good store and logs an
error, like a ``jwks_file``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    validate,
)

from core.errors import ConfigurationError
from gateway.tables import strict_table

logger = logging.getLogger("gateway.operations")

DOCUMENT_ID_PREFIX = "sha256:"
#: ``view:<Name>``: the calling client's saved view of that name (run by name).
VIEW_ID_PREFIX = "view:"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
#: The store file is looked at (``os.stat``) at most this often.
CHECK_SECONDS = 1.0
#: A file modified less than this long ago (wall clock) is read again at the next check.
SETTLE_SECONDS = 2.0

_HEX = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")  # a GraphQL Name
_REQUIRED = {"document"}
_OPTIONAL = {"name", "clients"}
HEADER = (
    "# Persisted GraphQL operations (format: gateway/operations.py), written by\n"
    "# `credit-gateway operations`. Each key is the SHA-256 of its document's\n"
    "# UTF-8 text, exactly as it stands below: do not edit a document by hand.\n"
)


@dataclass(frozen=True, slots=True)
class Operation:
    """One stored document: ``name`` is what clients, the operator and the
    audit trail call it; ``operation_name`` the operation's own name in the
    document (``None``: anonymous); ``clients`` who may run it (empty: any)."""

    sha256: str
    name: str
    document: str
    clients: tuple[str, ...] = ()
    operation_name: str | None = None

    @property
    def document_id(self) -> str:
        return DOCUMENT_ID_PREFIX + self.sha256

    def allows(self, client_id: str) -> bool:
        return not self.clients or client_id in self.clients


def document_hash(text: str) -> str:
    """The lower-case hex SHA-256 of ``text``'s UTF-8 encoding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_document_id(value: object) -> bool:
    """Whether ``value`` is a document identifier: ``sha256:<64 lower-case
    hex>``, or ``view:<Name>`` (a saved view of the caller, by its name)."""
    if not isinstance(value, str):
        return False
    if value.startswith(VIEW_ID_PREFIX):
        return _NAME.fullmatch(value, len(VIEW_ID_PREFIX)) is not None
    return value.startswith(DOCUMENT_ID_PREFIX) and \
        _HEX.fullmatch(value, len(DOCUMENT_ID_PREFIX)) is not None


def operation_of(document: str, name: str | None = None, clients: Iterable[str] = (),
                 where: str = "operation") -> Operation:
    """The ``Operation`` for ``document`` (its hash computed), or ``ConfigurationError``:
    it must parse and hold one operation (and fragments), named or given ``name``."""
    if not isinstance(document, str) or not document.strip():
        raise ConfigurationError(f"{where}: document must be a non-empty string")
    try:
        parsed = parse(document)
    except GraphQLError as error:
        raise ConfigurationError(f"{where}: the document does not parse: {error.message}") from None
    operations = []
    for definition in parsed.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operations.append(definition)
        elif not isinstance(definition, FragmentDefinitionNode):
            raise ConfigurationError(f"{where}: the document may hold only an operation and "
                                     f"its fragments, not a {definition.kind}")
    if len(operations) != 1:
        raise ConfigurationError(f"{where}: the document must hold exactly one operation, "
                                 f"not {len(operations)}")
    operation_name = operations[0].name.value if operations[0].name else None
    if name is None:
        if operation_name is None:
            raise ConfigurationError(f"{where}: the operation is anonymous: give it a name")
        name = operation_name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(f"{where}: name {name!r} is not a GraphQL name")
    if operation_name is not None and name != operation_name:
        raise ConfigurationError(f"{where}: name {name!r} differs from the operation's own "
                                 f"name {operation_name!r}")
    clients = tuple(clients)
    if not all(isinstance(c, str) and c for c in clients) or len(set(clients)) != len(clients):
        raise ConfigurationError(f"{where}: clients must be a list of distinct client ids")
    return Operation(document_hash(document), name, document, clients, operation_name)


def _conflict(a: Operation, b: Operation) -> bool:
    """Whether one client could run both (two of one name)."""
    return a.name == b.name and (not a.clients or not b.clients
                                 or bool(set(a.clients) & set(b.clients)))


def check_names(operations: Iterable[Operation], where: str = "operations") -> None:
    """``ConfigurationError`` when two operations of one name share a client
    (an operation for any client shares every client)."""
    by_name: dict[str, list[Operation]] = {}
    for operation in operations:
        for other in by_name.get(operation.name, ()):
            if _conflict(operation, other):
                shared = sorted(set(operation.clients) & set(other.clients)) or ["any client"]
                raise ConfigurationError(
                    f"{where}: two operations named {operation.name!r} ({other.document_id}, "
                    f"{operation.document_id}) for {', '.join(shared)}: names are unique per "
                    f"client")
        by_name.setdefault(operation.name, []).append(operation)


def check_clients(operations: Iterable[Operation], known_clients: Collection[str],
                  where: str = "operations") -> None:
    for operation in operations:
        unknown = sorted(set(operation.clients) - set(known_clients))
        if unknown:
            raise ConfigurationError(f"{where} [operations.\"{operation.sha256}\"] "
                                     f"({operation.name}): unknown client(s) {unknown}")


def parse_operations(data: Mapping[str, Any], where: str = "operations file",
                     known_clients: Collection[str] | None = None) -> dict[str, Operation]:
    """Validate a parsed store; its operations by hash. ``known_clients``: the
    registry's ids (``None``: not checked)."""
    if set(data) - {"operations"} or not isinstance(data.get("operations", {}), dict):
        raise ConfigurationError(f"{where}: expected only [operations.\"<sha256>\"] tables")
    found: dict[str, Operation] = {}
    for key, table in data.get("operations", {}).items():
        section = f"{where} [operations.\"{key}\"]"
        strict_table(section, table, _REQUIRED, _OPTIONAL)
        if not _HEX.fullmatch(key):
            raise ConfigurationError(f"{section}: the key must be the document's SHA-256 in "
                                     f"64 lower-case hex digits")
        clients = table.get("clients", [])
        if not isinstance(clients, list):
            raise ConfigurationError(f"{section}: clients must be a list of client ids")
        name = table.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigurationError(f"{section}: name must be a string")
        operation = operation_of(table["document"], name, clients, section)
        if operation.sha256 != key:
            raise ConfigurationError(f"{section}: the document's SHA-256 is {operation.sha256}, "
                                     f"not its key (the document was changed after it was "
                                     f"registered)")
        found[key] = operation
    check_names(found.values(), where)
    if known_clients is not None:
        check_clients(found.values(), known_clients, where)
    return found


def read_operations(path: str | os.PathLike[str],
                    known_clients: Collection[str] | None = None) -> dict[str, Operation]:
    """The store at ``path``; ``ConfigurationError`` when it is missing or invalid."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"operations file {path} does not exist (create it with "
                                 f"`credit-gateway operations add`)") from None
    except OSError as exc:
        raise ConfigurationError(f"operations file {path} cannot be read: {exc.strerror}") from None
    return _parse_bytes(data, str(path), known_clients)


def _parse_bytes(data: bytes, where: str,
                 known_clients: Collection[str] | None) -> dict[str, Operation]:
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigurationError(f"{where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{where} is not valid TOML: {exc}") from None
    return parse_operations(parsed, where, known_clients)


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_document(text: str) -> str:
    """``text`` as a TOML string that reads back exactly: a multi-line literal
    string where it can be one, else a basic string with escapes."""
    literal = ("'''" not in text and not text.endswith("'")
               and not any((ord(c) < 0x20 and c not in "\t\n") or c == "\x7f" for c in text))
    return f"'''\n{text}'''" if literal else _toml_string(text)


def operations_text(operations: Iterable[Operation]) -> str:
    """The store's file text: the operations by name, then hash."""
    lines = [HEADER.rstrip("\n")]
    for operation in sorted(operations, key=lambda o: (o.name, o.sha256)):
        lines += ["", f'[operations."{operation.sha256}"]',
                  f"name = {_toml_string(operation.name)}",
                  f"clients = [{', '.join(_toml_string(c) for c in operation.clients)}]",
                  f"document = {_toml_document(operation.document)}"]
    return "\n".join(lines) + "\n"


def write_operations(path: str | os.PathLike[str], operations: Iterable[Operation]) -> None:
    """Write the store at ``path`` (creating it and its folder), replacing the
    old file atomically; what is written is read back and checked first."""
    path = Path(path)
    operations = list(operations)
    text = operations_text(operations)
    if _parse_bytes(text.encode("utf-8"), str(path), None) != {o.sha256: o for o in operations}:
        raise ConfigurationError(f"operations file {path}: the written store does not read "
                                 f"back as written")  # pragma: no cover - a bug of ours
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def added(operations: Mapping[str, Operation], operation: Operation) -> dict[str, Operation]:
    """``operations`` with ``operation``, or ``ConfigurationError`` if its hash is
    registered otherwise or its name clashes for a client."""
    existing = operations.get(operation.sha256)
    if existing is not None and existing != operation:
        raise ConfigurationError(
            f"{operation.document_id} is already registered as {existing.name!r} for "
            f"{', '.join(existing.clients) or 'any client'}: remove it first")
    result = {**operations, operation.sha256: operation}
    check_names(result.values())
    return result


def matching(operations: Mapping[str, Operation], name_or_hash: str) -> list[Operation]:
    """The operations ``name_or_hash`` names: a hash (with or without
    ``sha256:``), else every operation of that name."""
    key = name_or_hash.removeprefix(DOCUMENT_ID_PREFIX)
    if key in operations:
        return [operations[key]]
    return [o for o in operations.values() if o.name == name_or_hash]


def views_of(operations: Iterable[Operation], client_id: str) -> list[Operation]:
    """The saved views of ``client_id``: the operations naming it, by name."""
    return sorted((o for o in operations if client_id in o.clients), key=lambda o: o.name)


def with_view(operations: Mapping[str, Operation], operation: Operation,
              client_id: str) -> dict[str, Operation]:
    """``operations`` with ``operation``'s document saved as a view of
    ``client_id``: a new entry for that client, or the client added to the
    entry of the same document (unchanged when that entry is for any client
    or names it already); ``ConfigurationError`` when the client has another
    view (or operation) of that name."""
    existing = operations.get(operation.sha256)
    if existing is None:
        saved = replace(operation, clients=(client_id,))
    elif not existing.clients or client_id in existing.clients:
        return dict(operations)
    else:
        saved = replace(existing, clients=(*existing.clients, client_id))
    result = {**operations, saved.sha256: saved}
    check_names(result.values())
    return result


def without_view(operations: Mapping[str, Operation], name: str,
                 client_id: str) -> tuple[dict[str, Operation], Operation]:
    """``operations`` without ``client_id``'s view ``name`` (the entry kept for
    its other clients), and that view; ``ConfigurationError`` when the client
    has no view of that name."""
    found = [o for o in views_of(operations.values(), client_id) if o.name == name]
    if not found:
        raise ConfigurationError(f"client {client_id!r} has no saved view {name!r}")
    (view,) = found  # names are unique per client (check_names)
    result = dict(operations)
    others = tuple(c for c in view.clients if c != client_id)
    if others:
        result[view.sha256] = replace(view, clients=others)
    else:
        del result[view.sha256]
    return result, view


def schema_problems(schema: Any, operation: Operation) -> list[str]:
    """What graphql-core's validation finds wrong with ``operation`` against ``schema``."""
    return [error.message for error in validate(schema, parse(operation.document))]


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What tells a changed file: (device, inode, size, mtime ns, ctime ns)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class OperationStore:
    """The persisted operations of ``path``, kept current.

    Read at start-up (a missing or invalid file is a ``ConfigurationError``);
    ``lookup`` looks at the file (``os.stat``) at most once per
    ``CHECK_SECONDS`` and re-reads it when it changed. A file that becomes
    unreadable or invalid keeps the last good store and logs an error (once
    per problem) until it is fixed. ``known_clients`` are the registry's ids
    (an operation naming another is invalid); with ``schema``, an operation
    that does not validate against it is logged as a warning when first seen
    (it is kept: a client running it gets the validation errors, as with
    the text). ``clock`` (monotonic seconds) is for tests.
    """

    def __init__(self, path: str | os.PathLike[str], known_clients: Collection[str] | None = None,
                 schema: Any = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._known_clients = None if known_clients is None else frozenset(known_clients)
        self._graphql_schema = schema
        self._clock = clock
        self._checked: set[str] = set()  # hashes validated against the schema
        self._problem: str | None = None  # as last logged
        self._bytes: bytes | None = None  # the file as last read
        self._signature: tuple[int, ...] | None = None
        self._settling = False  # modified too recently for its signature to be trusted
        try:
            signature, data = self._read()
        except FileNotFoundError:
            raise ConfigurationError(f"operations file {self.path} does not exist (create it "
                                     f"with `credit-gateway operations add`)") from None
        except OSError as exc:
            raise ConfigurationError(
                f"operations file {self.path} cannot be read: {exc.strerror}") from None
        self.operations = _parse_bytes(data, f"operations file {self.path}", self._known_clients)
        self._remember(signature, data)
        self._check_schema()
        logger.info("operations file %s read: %d operations", self.path, len(self.operations))
        self._check_at = self._clock() + CHECK_SECONDS

    def lookup(self, document_id: str, client_id: str) -> Operation | None:
        """The operation ``document_id`` (``sha256:<hex>``, or ``view:<Name>``
        for ``client_id``'s saved view of that name) names, if ``client_id``
        may run it; ``None`` otherwise, whether or not it exists for another
        client. ``ValueError`` for a malformed id."""
        if not is_document_id(document_id):
            raise ValueError(f"not a document id: {document_id!r}")
        if document_id.startswith(VIEW_ID_PREFIX):
            name = document_id[len(VIEW_ID_PREFIX):]
            return next((view for view in self.views(client_id) if view.name == name), None)
        now = self._clock()
        if now >= self._check_at:
            self.check(now)
        operation = self.operations.get(document_id[len(DOCUMENT_ID_PREFIX):])
        return operation if operation is not None and operation.allows(client_id) else None

    def views(self, client_id: str) -> list[Operation]:
        """``client_id``'s saved views (``views_of``), the file re-read as by ``lookup``."""
        now = self._clock()
        if now >= self._check_at:
            self.check(now)
        return views_of(self.operations.values(), client_id)

    def check(self, now: float | None = None) -> None:
        """Re-read the file if it changed; keep the last good store if it is unusable."""
        self._check_at = (self._clock() if now is None else now) + CHECK_SECONDS
        try:
            if _signature(os.stat(self.path)) == self._signature and not self._settling:
                return
            signature, data = self._read()
        except OSError as exc:
            self._signature = self._bytes = None  # re-read once it is back
            self._trouble(f"operations file {self.path} cannot be read: {exc.strerror or exc}")
            return
        if data == self._remember(signature, data):
            return  # rewritten (or touched) with the same text
        try:
            operations = _parse_bytes(data, f"operations file {self.path}", self._known_clients)
        except ConfigurationError as exc:
            self._trouble(str(exc))  # names the file
            return
        gone = sorted(o.name for h, o in self.operations.items() if h not in operations)
        new = sorted(o.name for h, o in operations.items() if h not in self.operations)
        self.operations, self._problem = operations, None
        self._check_schema()
        logger.info("operations file %s re-read: %d operations (added: %s; removed: %s)",
                    self.path, len(operations), ", ".join(new) or "none",
                    ", ".join(gone) or "none")

    def _read(self) -> tuple[tuple[int, ...], bytes]:
        with self.path.open("rb") as file:
            # before reading: a later write changes it
            signature = _signature(os.fstat(file.fileno()))
            return signature, file.read()

    def _remember(self, signature: tuple[int, ...], data: bytes) -> bytes | None:
        """Note the file as read; the previous content read."""
        previous, self._bytes, self._signature = self._bytes, data, signature
        # timestamps are coarse: a same-size rewrite within one tick keeps the
        # signature, so a file changed this recently is read again at the next check
        self._settling = time.time() - max(signature[3], signature[4]) / 1e9 < SETTLE_SECONDS
        return previous

    def _trouble(self, problem: str) -> None:
        if problem != self._problem:
            logger.error("%s; keeping the last good store (%d operations)", problem,
                         len(self.operations))
        self._problem = problem

    def _check_schema(self) -> None:
        if self._graphql_schema is None:
            return
        for sha256, operation in self.operations.items():
            if sha256 in self._checked:
                continue
            self._checked.add(sha256)
            problems = schema_problems(self._graphql_schema, operation)
            if problems:
                logger.warning("persisted operation %s (%s) does not validate against the "
                               "schema: %s", operation.name, operation.document_id,
                               "; ".join(problems[:3]))
