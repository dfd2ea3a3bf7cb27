"""The client registry: who may call the gateway, and for which purposes.

A TOML file, one table per client id (the ``client_id`` of its tokens)::

    [clients.bank-icbc-huizhou]
    organization = "中国工商银行惠州分行"
    organization_code = "91441300MA4UXXXXXX"   # the organization's USCC (banks: named in authorizations)
    city = "惠州"
    kind = "bank"                 # partner_city | bank | internal_department | public_portal | auditor | enterprise
    purposes = ["FINANCING"]      # purpose codes granted; each must exist in the policy catalog
    on_denied = "partial"         # partial: denied fields are null with errors; reject: 403 for the whole operation
    introspection = false         # true: may introspect the schema and get "did you mean" hints
                                  # (internal apps building views), even where the gateway's
                                  # `introspection` setting is off
    full_schema = false           # true: introspection answers with the whole schema (each
                                  # field described for the declared purpose); false: only
                                  # what the declared purpose may use (gateway/purpose_schema.py)
    persisted_only = false        # true: may run only persisted operations (gateway/operations.py,
                                  # by `documentId`); a `query` text is refused, 403
                                  # PERSISTED_OPERATION_REQUIRED, before it is parsed
    rate_limit = "600/minute"     # requests per window (gateway/limits.py); default: the
                                  # configuration's [limits] default_rate
    cost_limit = "200000/minute"  # admitted cost per window; default: [limits] default_cost

Validated strictly: unknown keys, kinds, purposes or values are errors; a
limit must be one limit in the notation of the `limits` library
(``"600/minute"``, ``"100 per 10 seconds"``). The clients of kind
``partner_city`` of one ``organization`` share one budget (a partner city's
several client ids), so they must declare the same limits.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from core.codes import InvalidCode, validate_uscc
from core.errors import ConfigurationError
from gateway.settings import parse_rate_limit
from gateway.tables import strict_table


class ClientKind(Enum):
    PARTNER_CITY = "partner_city"
    BANK = "bank"
    INTERNAL_DEPARTMENT = "internal_department"
    PUBLIC_PORTAL = "public_portal"
    AUDITOR = "auditor"
    ENTERPRISE = "enterprise"


class OnDenied(Enum):
    PARTIAL = "partial"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    organization: str
    city: str
    kind: ClientKind
    purposes: frozenset[str]
    organization_code: str | None = None
    on_denied: OnDenied = OnDenied.PARTIAL
    introspection: bool = False
    persisted_only: bool = False  # may run only persisted operations, never a query text
    full_schema: bool = False  # introspection shows every field, not only the purpose's
    rate_limit: str | None = None  # requests per window; None: the settings' default_rate
    cost_limit: str | None = None  # admitted cost per window; None: the default_cost

    @property
    def shares_organization_budget(self) -> bool:
        """Whether the client's limits are its organization's, shared with the
        organization's other client ids (a partner city's)."""
        return self.kind is ClientKind.PARTNER_CITY

    @property
    def rejects_denied(self) -> bool:
        """Whether an operation with any denied field is refused whole (403)."""
        return self.on_denied is OnDenied.REJECT


_REQUIRED = {"organization", "city", "kind", "purposes"}
_OPTIONAL = {"organization_code", "on_denied", "introspection", "persisted_only", "full_schema",
             "rate_limit", "cost_limit"}


def parse_clients(
    data: Mapping[str, Any], known_purposes: Collection[str], where: str = "client registry"
) -> dict[str, Client]:
    """Validate a parsed registry against the purposes of the policy catalog."""
    if set(data) != {"clients"} or not isinstance(data["clients"], dict):
        raise ConfigurationError(f"{where}: expected only [clients.<id>] tables")
    clients = {}
    for client_id, table in data["clients"].items():
        section = f"{where} [clients.{client_id}]"
        strict_table(section, table, _REQUIRED, _OPTIONAL)
        for key in ("organization", "city", "kind", "on_denied", "organization_code"):
            if key in table and not isinstance(table[key], str):
                raise ConfigurationError(f"{section}: {key} must be a string")
        try:
            kind = ClientKind(table["kind"])
        except ValueError:
            raise ConfigurationError(
                f"{section}: kind {table['kind']!r} is not one of {[k.value for k in ClientKind]}"
            ) from None
        try:
            on_denied = OnDenied(table.get("on_denied", "partial"))
        except ValueError:
            raise ConfigurationError(f"{section}: on_denied must be 'partial' or 'reject'") from None
        purposes = table["purposes"]
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise ConfigurationError(f"{section}: purposes must be a list of purpose codes")
        unknown_purposes = sorted(set(purposes) - set(known_purposes))
        if unknown_purposes:
            raise ConfigurationError(f"{section}: unknown purpose(s) {unknown_purposes}")
        code = table.get("organization_code")
        if code is not None:
            try:
                code = validate_uscc(code)
            except InvalidCode as exc:
                raise ConfigurationError(f"{section}: organization_code: {exc}") from None
        introspection = table.get("introspection", False)
        if not isinstance(introspection, bool):
            raise ConfigurationError(f"{section}: introspection must be true or false")
        persisted_only = table.get("persisted_only", False)
        if not isinstance(persisted_only, bool):
            raise ConfigurationError(f"{section}: persisted_only must be true or false")
        full_schema = table.get("full_schema", False)
        if not isinstance(full_schema, bool):
            raise ConfigurationError(f"{section}: full_schema must be true or false")
        for key in ("rate_limit", "cost_limit"):
            if key in table:
                parse_rate_limit(section, key, table[key])
        clients[client_id] = Client(
            id=client_id, organization=table["organization"], city=table["city"], kind=kind,
            purposes=frozenset(purposes), organization_code=code, on_denied=on_denied,
            introspection=introspection, persisted_only=persisted_only, full_schema=full_schema,
            rate_limit=table.get("rate_limit"), cost_limit=table.get("cost_limit"),
        )
    _check_shared_budgets(clients, where)
    return clients


def _check_shared_budgets(clients: Mapping[str, Client], where: str) -> None:
    """The client ids sharing an organization's budget declare the same limits."""
    limits: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for client in clients.values():
        if not client.shares_organization_budget:
            continue
        declared = tuple(None if value is None else parse_rate_limit(where, "limit", value)
                         for value in (client.rate_limit, client.cost_limit))
        first = limits.setdefault(client.organization, (client.id, declared))
        if first[1] != declared:
            raise ConfigurationError(
                f"{where}: partner-city clients {first[0]!r} and {client.id!r} of "
                f"{client.organization!r} share one rate-limit budget but declare different "
                f"rate_limit/cost_limit: declare the same (or none) for both")


def load_clients(path: str | Path, known_purposes: Collection[str]) -> dict[str, Client]:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"client registry {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"client registry {path} is not valid TOML: {exc}") from None
    return parse_clients(data, known_purposes, str(path))
