"""The per-request context handed to every resolver as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.clients import Client
from gateway.enforcement import Plan, PlanCache
from gateway.loaders import Loaders
from gateway.policy import Decision, Policy
from gateway.recording import AuditRecorder
from gateway.settings import Settings
from gateway.sources import SourceRegistry


@dataclass(slots=True)
class RequestContext:
    """Everything one request's resolvers share.

    ``client`` is the authenticated caller and ``purpose`` the purpose of use
    it declared (and was granted); ``decision`` is the policy's decision for
    that purpose, ``today`` the date row rules are evaluated on. ``loaders``
    are this request's DataLoaders; ``sources`` the process's connectors (for
    calls that are not batched, such as a name search). ``denied_fields``,
    ``authorizations_used``, ``released`` and ``loaders.withheld`` record
    what the policy did, for the response and the audit trail; ``subjects`` are the
    organizations and (hashed) persons the request asked about, ``plan`` the
    enforcement plan of the operation (``plans``: the app's plans of
    operations seen before), ``recorder`` writes its audit record.
    ``response`` is the HTTP response being built (status and headers).
    """

    request_id: str
    settings: Settings
    sources: SourceRegistry
    policy: Policy
    client: Client
    purpose: str
    decision: Decision
    today: date
    loaders: Loaders
    response: Any
    recorder: AuditRecorder
    plans: PlanCache
    started: float  # time.perf_counter() when the request arrived
    admitted: Any = None  # gateway.admission.Admitted: the document to execute
    on_behalf_of: str | None = None  # the organization a partner city asks for
    plan: Plan | None = None
    released: set[str] = field(default_factory=set)  # coordinates returned with data
    rejected: bool = False
    subjects: set[str] = field(default_factory=set)
    denied_fields: list[str] = field(default_factory=list)
    authorizations_used: set[str] = field(default_factory=set)

    @property
    def withheld(self):
        return self.loaders.withheld
