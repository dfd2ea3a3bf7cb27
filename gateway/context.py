"""The per-request context handed to every resolver as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.clients import Client
from gateway.enforcement import Plan, PlanCache
from gateway.loaders import Loaders
from gateway.operations import Operation, OperationStore
from gateway.policy import Decision, Policy
from gateway.recording import AuditRecorder
from gateway.settings import Settings
from gateway.sources import SourceRegistry


@dataclass(frozen=True, slots=True)
class Services:
    """The application's parts every request uses, one set per process:
    ``sources`` the connectors (for calls that are not batched, such as a
    name search), ``recorder`` the audit trail's writer, ``plans`` the
    enforcement plans of operations seen before, ``schema`` graphql-core's
    schema (for planning), ``purpose_schemas`` its view per purpose that
    introspection answers with (``gateway.purpose_schema.PurposeSchemas``),
    ``operations`` the persisted-operation store (``None``: none configured;
    ``Query.myViews`` lists a client's saved views from it)."""

    settings: Settings
    sources: SourceRegistry
    policy: Policy
    recorder: AuditRecorder
    plans: PlanCache
    schema: Any
    purpose_schemas: Any = None  # None: introspection sees the whole schema
    operations: OperationStore | None = None


@dataclass(slots=True)
class RequestContext:
    """One request's state, handed to every resolver as ``info.context``.

    ``client`` is the authenticated caller and ``purpose`` the purpose of use
    it declared (and was granted); ``decision`` is the policy's decision for
    that purpose, ``today`` the date row rules are evaluated on (in China).
    ``admitted`` is the document admitted for execution and ``plan`` its
    enforcement plan, both made before this context; ``loaders`` are this
    request's loaders, made from the plan (they forward its selection to
    partners). ``denied_fields``, ``authorizations_used``, ``released`` and
    ``loaders.withheld`` record what the policy did, for the response and
    the audit trail; ``subjects`` are the organizations and (hashed) persons
    the request asked about. ``response`` is the HTTP response being built
    (status and headers). ``persisted`` is the persisted operation the
    request runs (``None``: the client sent the text).
    """

    services: Services
    request_id: str
    client: Client
    purpose: str
    decision: Decision
    today: date
    loaders: Loaders
    response: Any
    started: float  # time.perf_counter() when the request arrived
    admitted: Any = None  # gateway.admission.Admitted
    plan: Plan | None = None
    on_behalf_of: str | None = None  # the organization a partner city asks for
    persisted: Operation | None = None  # the persisted operation run, if any
    released: set[str] = field(default_factory=set)  # coordinates returned with data
    rejected: bool = False
    subjects: set[str] = field(default_factory=set)
    denied_fields: list[str] = field(default_factory=list)
    authorizations_used: set[str] = field(default_factory=set)

    @property
    def withheld(self):
        return self.loaders.withheld
