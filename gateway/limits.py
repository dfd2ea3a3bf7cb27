"""Per-client rate limits: requests and admitted cost per window.

``RateLimiter.check`` runs once per request, after the caller is identified
and the document admitted (``gateway.http``): the admission's ``cost``
(subjects x the source-backed fields they select, ``gateway.admission``) is
known then, and nothing has been read yet. Each client has two budgets:

* **requests** per window (its ``rate_limit`` in the client registry, else
  the ``[limits] default_rate``), counted with the ``limits`` library's
  *moving window*: one timestamp per admitted request, at most the limit's
  amount of them per client, so a burst never gets twice the limit across a
  window's boundary. A refused request is not counted.
* **cost** per window (``cost_limit``, else ``default_cost``), counted with
  the *fixed window*: one counter per client. A moving window keeps one entry
  per unit (a 200,000 budget would be a list of 200,000 timestamps in Redis,
  and a request of cost 20,000 would push 20,000 of them); the fixed window
  keeps one integer, at the price of its boundary (up to twice the budget
  within a short time across two windows, which the request budget and
  ``max_cost`` bound). The library counts a refused hit in this window too:
  a client over its cost budget waits for the window's reset, which is what
  its ``Retry-After`` says.

The clients of kind ``partner_city`` of one organization (a partner city's
several client ids) share one budget, keyed by the organization.

Over a budget: 429 with ``Retry-After`` (whole seconds until the window frees
what was refused) and ``errors[0].extensions.code`` ``RATE_LIMITED`` (with
``requestId``, ``limit``, ``budget`` and ``retryAfter``). A request whose cost
alone exceeds the whole cost budget is refused the same way, without
``Retry-After``: waiting would not help.

**Recorded, but not each one.** A refusal is a security event in the audit
trail, like the caller's refusals, but a flood must not turn into as many
audit writes (the trail is kept for three years and writing it is the
costliest part of a refusal): the first refusal of a budget is recorded (and
logged), the others within the limit's window length after it are counted
(``count_refusal``: ``credit_gateway_rate_limited_total``) and their number
is given in the next recorded event's ``detail``: at most one audit record
per budget per window length. The bookkeeping is per process, so N
processes record at most N events per budget and window.

**Storage.** ``[limits] storage_url`` empty: the library's memory storage, per
process (and per event loop), so each process counts on its own; set it to
Redis (``async+redis://host:6379/0``) to share the budgets across processes
and instances (keys under ``key_prefix``). A storage call is bounded by
``storage_timeout_seconds`` (the connection is opened at start-up,
``start``); when it fails (Redis down, timed out) the
request is served (``on_storage_error = "open"``: logged as a warning at
most every ``WARNING_INTERVAL_SECONDS``, passed to ``count_storage_error``)
or refused with 503 ``RATE_LIMIT_UNAVAILABLE`` (``"closed"``), and the
storage is left alone for ``STORAGE_RETRY_SECONDS`` (the same answer
meanwhile), so an unreachable Redis does not add its timeout to every
request. Neither kind of failure is recorded in the audit trail: it is the
gateway's state, not a client's doing, and would be one write per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from gateway import metrics
from gateway.caller import Caller, RequestRejected
from gateway.clients import Client
from gateway.settings import LimitSettings, parse_rate_limit

if TYPE_CHECKING:
    from gateway.recording import AuditRecorder

log = logging.getLogger("gateway.limits")

RATE_LIMITED = "RATE_LIMITED"
RATE_LIMIT_UNAVAILABLE = "RATE_LIMIT_UNAVAILABLE"
STORAGE_RETRY_SECONDS = 1.0  # after a storage failure, how long it is not tried
WARNING_INTERVAL_SECONDS = 10.0  # storage failures are logged at most this often
STARTUP_TIMEOUT_SECONDS = 5.0  # for the storage's first connection, at start-up
MEMORY_URL = "async+memory://"
_WARM_UP = RateLimitItemPerSecond(1)  # a start-up hit on a key of its own, gone in a second
# What a failing storage raises (wrapped by the library), or its timeout.
_STORAGE_FAILURES = (StorageError, TimeoutError, OSError)


def count_refusal(client_id: str, budget: str, scope: str) -> None:
    """Called for every request refused over a budget (``budget``:
    ``"requests"`` or ``"cost"``; ``scope``: ``"client"`` or ``"organization"``):
    ``credit_gateway_rate_limited_total{client}`` (``gateway.metrics``)."""
    metrics.rate_limited(client_id)


def count_storage_error() -> None:
    """Called for every request whose limits could not be checked because the
    storage failed (or was being left alone after a failure), whichever
    ``on_storage_error`` says: ``credit_gateway_rate_limit_storage_errors_total``."""
    metrics.rate_limit_storage_error()


@dataclass(frozen=True, slots=True)
class Budget:
    """A client's two limits and whose they are (the client's, or its organization's)."""

    scope: str  # "client" or "organization"
    owner: str  # the client id or the organization
    requests: RateLimitItem
    cost: RateLimitItem

    def identifiers(self, budget: str) -> tuple[str, ...]:
        """The storage key's parts for ``budget`` (``"requests"`` or ``"cost"``):
        the two are stored apart (a list and a counter)."""
        return (budget, self.scope, self.owner)


@dataclass(frozen=True, slots=True)
class _Refusal:
    budget: str  # "requests" or "cost"
    limit: RateLimitItem
    reset: float | None  # epoch seconds when the window frees; None: never enough


class RateLimiter:
    """The limits of ``settings`` for the clients of ``clients``; refusals are
    recorded (sampled, see the module) through ``recorder``."""

    def __init__(self, settings: LimitSettings, clients: Mapping[str, Client],
                 recorder: AuditRecorder | None = None) -> None:
        self.settings = settings
        self.recorder = recorder
        self._default_rate = parse_rate_limit("[limits]", "default_rate", settings.default_rate)
        self._default_cost = parse_rate_limit("[limits]", "default_cost", settings.default_cost)
        self._budgets = {client_id: self.budget_of(client) for client_id, client in clients.items()}
        self._url = settings.storage_url or MEMORY_URL
        self._storage: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests: MovingWindowRateLimiter | None = None
        self._costs: FixedWindowRateLimiter | None = None
        self._down_until = 0.0
        self._failures = 0  # since the last warning
        self._warned_at = -math.inf
        # (budget, scope, owner) -> [end of the window recorded, refusals not recorded]
        self._episodes: dict[tuple[str, ...], list[Any]] = {}

    def budget_of(self, client: Client) -> Budget:
        requests = (parse_rate_limit(client.id, "rate_limit", client.rate_limit)
                    if client.rate_limit else self._default_rate)
        cost = (parse_rate_limit(client.id, "cost_limit", client.cost_limit)
                if client.cost_limit else self._default_cost)
        if client.shares_organization_budget:
            return Budget("organization", client.organization, requests, cost)
        return Budget("client", client.id, requests, cost)

    async def check(self, caller: Caller, cost: int, request_id: str,
                    started: float) -> RequestRejected | None:
        """``None`` when the request fits its client's budgets (and is counted),
        else the refusal to answer with (429, or 503 when the storage fails
        and ``on_storage_error`` is ``"closed"``)."""
        client = caller.client
        budget = self._budgets.get(client.id) or self.budget_of(client)
        if cost > budget.cost.amount:
            refusal = _Refusal("cost", budget.cost, None)
        else:
            if time.monotonic() < self._down_until:
                return self._storage_failed(request_id, None)
            try:
                async with asyncio.timeout(self.settings.storage_timeout_seconds):
                    refusal = await self._hit(budget, cost)
            except _STORAGE_FAILURES as exc:
                self._down_until = time.monotonic() + STORAGE_RETRY_SECONDS
                return self._storage_failed(request_id, exc)
            if refusal is None:
                return None
        count_refusal(client.id, refusal.budget, budget.scope)
        return await self._refused(caller, budget, refusal, cost, request_id, started)

    async def _hit(self, budget: Budget, cost: int) -> _Refusal | None:
        requests, costs = self._strategies()
        ids = budget.identifiers("requests")
        if not await requests.hit(budget.requests, *ids):
            stats = await requests.get_window_stats(budget.requests, *ids)
            return _Refusal("requests", budget.requests, stats.reset_time)
        if cost > 0:
            ids = budget.identifiers("cost")
            if not await costs.hit(budget.cost, *ids, cost=cost):
                stats = await costs.get_window_stats(budget.cost, *ids)
                return _Refusal("cost", budget.cost, stats.reset_time)
        return None

    async def start(self) -> None:
        """Open the storage before the first request (the app's lifespan): a
        Redis connection, the library's scripts loaded, so that no request pays
        for them within ``storage_timeout_seconds``; an unreachable storage is
        reported now (the requests then meet ``on_storage_error``)."""
        requests, costs = self._strategies()
        if self._url == MEMORY_URL:
            return
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
                await requests.hit(_WARM_UP, "requests", "warm-up")  # a list ...
                await costs.hit(_WARM_UP, "cost", "warm-up")  # ... and a counter: two keys
        except _STORAGE_FAILURES as exc:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            log.warning("rate-limit storage unavailable at start-up (%s): until it answers, "
                        "requests are %s (on_storage_error = %s)",
                        repr(cause) if str(cause) else type(cause).__name__,
                        "refused (503)" if self.settings.on_storage_error == "closed"
                        else "served without limits", self.settings.on_storage_error)

    def _strategies(self) -> tuple[MovingWindowRateLimiter, FixedWindowRateLimiter]:
        """The strategies over this event loop's storage (a Redis client's
        connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._storage is None or self._loop is not loop:
            options: dict[str, Any] = {"wrap_exceptions": True}
            if self._url != MEMORY_URL:
                timeout = self.settings.storage_timeout_seconds
                options.update(key_prefix=self.settings.key_prefix)
                if self._url.split("://", 1)[0] in ("async+redis", "async+rediss",
                                                    "async+redis+unix"):
                    options.update(connect_timeout=timeout, stream_timeout=timeout)
            self._storage = storage_from_string(self._url, **options)
            self._loop = loop
            self._requests = MovingWindowRateLimiter(self._storage)
            self._costs = FixedWindowRateLimiter(self._storage)
        assert self._requests is not None and self._costs is not None
        return self._requests, self._costs

    async def aclose(self) -> None:
        """Release the storage's connections (the memory storage's expiry task)."""
        storage, self._storage = self._storage, None
        if storage is None:
            return
        timer = getattr(storage, "timer", None)  # MemoryStorage's expiry task
        if timer is not None and not timer.done():
            timer.cancel()
        # The library has no close: its Redis bridge holds the client (coredis or redis-py).
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        try:
            if hasattr(client, "aclose"):
                await client.aclose()
            elif hasattr(getattr(client, "connection_pool", None), "disconnect"):
                client.connection_pool.disconnect()
        except Exception as exc:  # closing is best effort
            log.warning("rate-limit storage not closed cleanly: %r", exc)

    def _storage_failed(self, request_id: str, exc: BaseException | None) -> RequestRejected | None:
        count_storage_error()
        closed = self.settings.on_storage_error == "closed"
        self._failures += 1
        now = time.monotonic()
        if exc is not None and now - self._warned_at >= WARNING_INTERVAL_SECONDS:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            log.warning("rate-limit storage unavailable (%s): requests are %s "
                        "(on_storage_error = %s); %d request(s) since the last warning",
                        repr(cause) if str(cause) else type(cause).__name__,
                        "refused (503)" if closed else "served without limits",
                        self.settings.on_storage_error, self._failures)
            self._warned_at, self._failures = now, 0
        if not closed:
            return None
        return RequestRejected(
            503, RATE_LIMIT_UNAVAILABLE,
            "the rate limiter is unavailable, so no request can be admitted; try again later",
            {"Retry-After": str(math.ceil(STORAGE_RETRY_SECONDS))}, requestId=request_id)

    async def _refused(self, caller: Caller, budget: Budget, refusal: _Refusal, cost: int,
                       request_id: str, started: float) -> RequestRejected:
        whose = (f"client {budget.owner!r}" if budget.scope == "client"
                 else f"organization {budget.owner!r} (its partner-city clients together)")
        item = refusal.limit
        per = f"per {item.multiples} {item.GRANULARITY.name}{'s' if item.multiples > 1 else ''}"
        extensions: dict[str, Any] = {"requestId": request_id, "limit": repr(item),
                                      "budget": refusal.budget}
        headers = {}
        if refusal.reset is None:
            message = (f"the request's cost of {cost} exceeds the whole cost budget of {whose}, "
                       f"{item.amount} {per}: ask for less in one request")
        else:
            retry_after = max(1, math.ceil(refusal.reset - time.time()))
            headers["Retry-After"] = str(retry_after)
            extensions["retryAfter"] = retry_after
            if refusal.budget == "requests":
                message = f"rate limit exceeded: {whose} may send {item.amount} requests {per}"
            else:
                message = (f"cost limit exceeded: {whose} may spend a cost of {item.amount} "
                           f"{per} (this request costs {cost})")
            message += f"; retry after {retry_after} s"
        await self._record(caller, budget, refusal, message, request_id, started)
        return RequestRejected(429, RATE_LIMITED, message, headers, **extensions)

    async def _record(self, caller: Caller, budget: Budget, refusal: _Refusal, message: str,
                      request_id: str, started: float) -> None:
        """The first refusal of a budget in a window as a security event; the
        others counted, their number in the next recorded one."""
        key = budget.identifiers(refusal.budget)
        now = time.time()
        episode = self._episodes.get(key)
        if episode is not None and now < episode[0]:
            episode[1] += 1
            return
        # One window's length, whatever the reset: a moving window frees one
        # request at a time, and a flood would otherwise start a new episode each time.
        until = now + refusal.limit.get_expiry()
        self._episodes[key] = [until, 0]
        detail = (f"{message}; further refusals of this budget until "
                  f"{datetime.fromtimestamp(until, UTC).isoformat(timespec='seconds')} are "
                  f"counted, not recorded one by one")
        if episode is not None and episode[1]:
            detail += f"; {episode[1]} refusal(s) of its previous window were not recorded"
        log.warning("request %s refused: %s", request_id, message)
        if self.recorder is not None:
            await self.recorder.record_refusal(request_id, started, caller.client.id,
                                               caller.purpose, RATE_LIMITED.lower(), detail)
