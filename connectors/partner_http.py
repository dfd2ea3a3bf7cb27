"""HTTP plumbing for partner-city connectors: a resilient, authenticated client.

``PartnerClient`` talks to one partner endpoint (``SourceSettings.url``) with
OAuth 2.0 client credentials (authlib's ``AsyncOAuth2Client`` on httpx2) and
applies, to every call:

* a circuit breaker: ``breaker_failures`` consecutive failed calls (timeouts,
  unavailability, 5xx, unreadable answers) open it for ``breaker_reset_seconds``;
  a call whose deadline passed while it waited for a concurrency slot never
  reached the partner and does not count (a burst of ours is not its failure);
  calls then fail at once with ``CircuitOpen``; after that one trial call is let
  through, whose outcome closes or reopens it;
* one overall deadline of ``timeout_seconds``, covering the wait for a
  concurrency slot (``max_concurrency``), token fetches, every attempt and the
  backoff between them; past it: ``SourceTimeout``;
* retries for reads (GET, and POST with ``idempotent=True``): up to ``retries``
  extra attempts on connection errors, attempt timeouts, 429 and 502/503/504,
  with full-jitter exponential backoff (``Retry-After`` honoured), never
  sleeping past the deadline. Failures that prove the request was not
  processed (connection refused, 429) are retried for any request;
* answers read as JSON: streamed and cut off at ``max_response_bytes``.

Every failure leaves as a ``core.errors.SourceError`` with a client-safe
message (source id and department, HTTP status at most): no URL, token or
upstream body. Details go to the ``gateway.sources`` logger, without query
strings (they may hold the subjects' ID numbers) or credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx2
import orjson
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Auth, OAuthError

from core.errors import (
    BadSourceData, CircuitOpen, PartnerRefused, SourceError, SourceTimeout, SourceUnavailable,
)
from core.config import SourceSettings

log = logging.getLogger("gateway.sources")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
TOKEN_LEEWAY_SECONDS = 30.0  # refresh a token this long before it expires ...
TOKEN_LEEWAY_FRACTION = 0.1  # ... or this share of its lifetime, whichever is shorter


class RequestRefused(SourceUnavailable):
    """The partner answered but refused this request with HTTP ``status`` (a 3xx,
    or a 4xx other than 401, 403 and 429). The partner is up, so this does not
    count against the breaker. A 403 is the partner's own policy refusing the
    asking organization or purpose: ``core.errors.PartnerRefused``."""

    def __init__(self, source: str, message: str, status: int) -> None:
        super().__init__(source, message)
        self.status = status


class CircuitBreaker:
    """Consecutive-failure breaker: closed, open for ``reset_seconds``, then
    half-open (one trial call), measured on ``clock``. ``failures == 0`` disables it."""

    def __init__(
        self, source: str, failures: int, reset_seconds: float, clock: Callable[[], float],
    ) -> None:
        self.source, self.failures, self.reset_seconds, self.clock = (
            source, failures, reset_seconds, clock,
        )
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._trial_in_flight or self.clock() - self._opened_at < self.reset_seconds:
            return "open"
        return "half-open"

    def admit(self) -> bool:
        """Let a call through, returning whether it is the half-open trial; raise
        ``CircuitOpen`` while open."""
        state = self.state
        if state == "open":
            raise CircuitOpen(
                self.source,
                f"source {self.source} is failing: calls to it are suspended for "
                f"up to {self.reset_seconds:g} s",
            )
        self._trial_in_flight = state == "half-open"
        return self._trial_in_flight

    def record(self, ok: bool | None, *, trial: bool) -> None:
        """Record a call's outcome; ``None``: no verdict (it was cancelled)."""
        if trial:
            self._trial_in_flight = False
        if ok is None:
            return
        if ok:
            self._consecutive, self._opened_at = 0, None
            return
        self._consecutive += 1
        if trial or (self.failures and self._consecutive >= self.failures):
            if self._opened_at is None or trial:
                log.warning("source %s: circuit opened after %d consecutive failures",
                            self.source, self._consecutive)
            self._opened_at = self.clock()


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix; ``error`` is the final word."""

    def __init__(self, error: SourceError, *, unprocessed: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error, self.unprocessed, self.retry_after = error, unprocessed, retry_after


class _Sent:
    """Whether a call got as far as the partner (a slot of ours, then a request)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = False


class _Unauthorized(Exception):
    """The partner answered 401 to a request signed with ``auth``."""

    def __init__(self, auth: OAuth2Auth) -> None:
        super().__init__("401")
        self.auth = auth


class PartnerClient:
    """A resilient, authenticated HTTP client for one partner endpoint.

    ``get_json`` and ``post_json`` return the decoded JSON answer of a 2xx
    (``None`` for 204) or raise only ``SourceError`` subclasses: ``CircuitOpen``,
    ``SourceTimeout``, ``SourceUnavailable`` (``RequestRefused`` for a refused
    request) or ``BadSourceData``. Checking the answer's shape is the caller's
    job (``bad_data``). ``clock`` drives the breaker and token expiry.

    Attempt timeouts: a read's attempt gets an equal share of the time left
    (``timeout_seconds / (1 + retries)`` at first), so a hung attempt leaves time
    to retry; a non-idempotent POST waits for its answer until the deadline.
    """

    def __init__(
        self, settings: SourceSettings, transport: httpx2.AsyncBaseTransport | None = None,
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.id = settings.id
        self._clock = clock
        self._http = AsyncOAuth2Client(
            client_id=settings.client_id, client_secret=settings.client_secret,
            transport=transport, follow_redirects=False, timeout=settings.timeout_seconds,
        )
        self._auth: OAuth2Auth | None = None  # signs requests with the current token
        self._auth_refresh_at = 0.0  # on ``clock``
        self._token_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max(1, settings.max_concurrency))
        self.breaker = CircuitBreaker(
            settings.id, settings.breaker_failures, settings.breaker_reset_seconds, clock,
        )

    async def get_json(
        self, path: str, *, params: dict | None = None, headers: dict | None = None,
    ) -> Any:
        """GET ``path`` (relative to the source url) and decode its JSON answer."""
        return await self._call("GET", path, True, params=params, headers=self._headers(headers))

    async def post_json(
        self, path: str, body: Any, *, headers: dict | None = None, idempotent: bool = True,
    ) -> Any:
        """POST ``body`` as JSON and decode the answer. ``idempotent=False``: sent
        again only when it provably was not processed (connection refused, 429, 401)."""
        headers = self._headers(headers) | {"Content-Type": "application/json"}
        return await self._call("POST", path, idempotent, content=orjson.dumps(body),
                                headers=headers)

    def check(self) -> None:
        """For readiness: ``CircuitOpen`` while the breaker is open; the partner
        is not called (its health is its own, measured by the calls)."""
        if self.breaker.state == "open":
            raise CircuitOpen(self.id, f"{self._name} is failing: calls to it are suspended")

    def bad_data(self, message: str) -> BadSourceData:
        """A ``BadSourceData`` for this source; ``message`` must be client-safe."""
        log.warning("source %s: %s", self.id, message)
        return BadSourceData(self.id, message)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- one call: breaker, deadline, retries ---------------------------------

    async def _call(self, method: str, path: str, idempotent: bool, **request: Any) -> Any:
        url = self._url(path)
        path = "/" + path.split("?")[0].lstrip("/")  # for the log: relative, no query
        trial = self.breaker.admit()
        ok: bool | None = None
        sent = _Sent()
        try:
            result = await self._with_retries(method, url, path, idempotent, request, sent)
            ok = True
            return result
        except (RequestRefused, PartnerRefused):
            ok = True  # the partner is up; the request was wrong
            raise
        except SourceError:
            # A call that timed out still waiting for one of our own slots never
            # reached the partner: one client's burst is no verdict on it.
            ok = False if sent.value else None
            raise
        finally:
            self.breaker.record(ok, trial=trial)

    async def _with_retries(
        self, method: str, url: str, path: str, idempotent: bool, request: dict[str, Any],
        sent: _Sent,
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout_seconds
        attempts = 1 + self.settings.retries
        failed = 0
        refused: OAuth2Auth | None = None  # the token the partner answered 401 to
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    left = max(deadline - loop.time(), 0.001)
                    share = left / (attempts - failed)  # an attempt's part of what is left
                    timeout = httpx2.Timeout(share if idempotent else left, connect=share)
                    try:
                        return await self._attempt(method, url, path, timeout, refused, request,
                                                   sent)
                    except _Unauthorized as exc:
                        if refused is not None:
                            log.warning("source %s: %s %s: 401 after a token refresh",
                                        self.id, method, path)
                            raise SourceUnavailable(
                                self.id, f"{self._name} refused the gateway's credentials"
                            ) from None
                        refused = exc.auth  # one token refresh and one retry, never more
                    except _Retryable as exc:
                        failed += 1
                        if failed >= attempts or not (idempotent or exc.unprocessed):
                            raise exc.error from None
                        delay = exc.retry_after
                        if delay is None:  # full jitter
                            ceiling = self.settings.backoff_seconds * 2 ** (failed - 1)
                            delay = random.uniform(0, ceiling)
                        if loop.time() + delay >= deadline:
                            raise exc.error from None
                        log.info("source %s: %s %s: %s; retry %d in %.3f s",
                                 self.id, method, path, exc.error.message, failed, delay)
                        await asyncio.sleep(delay)
        except TimeoutError:
            log.warning("source %s: %s %s: deadline of %g s passed",
                        self.id, method, path, self.settings.timeout_seconds)
            raise self._timeout() from None

    # -- one attempt: token, slot, request, answer ----------------------------

    async def _attempt(
        self, method: str, url: str, path: str, timeout: httpx2.Timeout,
        refused: OAuth2Auth | None, request: dict[str, Any], sent: _Sent,
    ) -> Any:
        try:
            auth = await self._current_auth(timeout, refused, sent)
            async with self._slots:
                sent.value = True
                async with self._http.stream(method, url, auth=auth, timeout=timeout,
                                             **request) as resp:
                    if resp.status_code == 401:
                        raise _Unauthorized(auth)
                    self._check_status(method, path, resp)
                    if resp.status_code == 204:
                        return None
                    body = await self._read(method, path, resp)
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            self._log_failure(method, path, exc)
            error = self._timeout() if isinstance(exc, httpx2.TimeoutException) else self._down()
            raise _Retryable(error, unprocessed=True) from None
        except httpx2.TimeoutException as exc:
            self._log_failure(method, path, exc)
            raise _Retryable(self._timeout()) from None
        except httpx2.TransportError as exc:
            self._log_failure(method, path, exc)
            raise _Retryable(self._down()) from None
        except httpx2.DecodingError as exc:
            self._log_failure(method, path, exc)
            raise BadSourceData(self.id, f"{self._name} sent an undecodable answer") from None
        except httpx2.HTTPError as exc:
            self._log_failure(method, path, exc)
            raise self._down() from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            log.warning("source %s: %s %s: malformed JSON: %s", self.id, method, path, exc)
            raise BadSourceData(self.id, f"{self._name} answered with malformed JSON") from None

    def _check_status(self, method: str, path: str, resp: httpx2.Response) -> None:
        """Raise for a non-2xx or non-JSON answer (its body is never read)."""
        status = resp.status_code
        if 200 <= status < 300:
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if status != 204 and not (ctype == "application/json" or ctype.endswith("+json")):
                log.warning("source %s: %s %s: HTTP %d with content type %r",
                            self.id, method, path, status, ctype)
                raise BadSourceData(
                    self.id, f"{self._name} answered with {ctype or 'untyped'} content, not JSON"
                )
            return
        log.warning("source %s: %s %s: HTTP %d", self.id, method, path, status)
        if status in RETRY_STATUSES:
            what = "is rate-limiting the gateway" if status == 429 else "is unavailable"
            raise _Retryable(
                SourceUnavailable(self.id, f"{self._name} {what} (HTTP {status})"),
                unprocessed=status == 429,
                retry_after=_retry_after(resp.headers.get("retry-after")),
            )
        if status >= 500:
            raise SourceUnavailable(self.id, f"{self._name} failed (HTTP {status})")
        if status == 403:
            raise PartnerRefused(
                self.id, f"{self._name} does not share this data for the declared purpose"
            )
        raise RequestRefused(self.id, f"{self._name} refused the request (HTTP {status})", status)

    async def _read(self, method: str, path: str, resp: httpx2.Response) -> bytes:
        """The decoded body, streamed; ``BadSourceData`` past ``max_response_bytes``."""
        limit = self.settings.max_response_bytes
        too_large = BadSourceData(
            self.id, f"{self._name} answered with more than {limit} bytes"
        )
        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            log.warning("source %s: %s %s: Content-Length %s over the limit",
                        self.id, method, path, length)
            raise too_large
        body = bytearray()
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > limit:
                log.warning("source %s: %s %s: body over %d bytes", self.id, method, path, limit)
                raise too_large
        return bytes(body)

    # -- the token --------------------------------------------------------------

    async def _current_auth(
        self, timeout: httpx2.Timeout, refused: OAuth2Auth | None, sent: _Sent,
    ) -> OAuth2Auth:
        """The signer of the current token. Fetched when missing, about to expire
        or ``refused`` by the partner; concurrent callers share one fetch."""
        async with self._token_lock:
            auth = self._auth
            if auth is None or auth is refused or self._clock() >= self._auth_refresh_at:
                sent.value = True  # the token endpoint is the partner's too
                auth = self._auth = await self._fetch_token(timeout)
            return auth

    async def _fetch_token(self, timeout: httpx2.Timeout) -> OAuth2Auth:
        fetched_at = self._clock()
        what = "token endpoint"
        try:
            token = await self._http.fetch_token(
                self.settings.token_url, grant_type="client_credentials", timeout=timeout,
            )
            if not isinstance(token.get("access_token"), str) or (
                token.get("token_type", "bearer").lower() != "bearer"
            ):
                raise ValueError("no access_token, or not a bearer token")
            lifetime = float(token.get("expires_in", "inf"))  # none: until a 401
            if not lifetime > 0:
                raise ValueError(f"expires_in {lifetime}")
        except OAuthError as exc:
            log.warning("source %s: %s refused the credentials: %s", self.id, what, exc.error)
            raise SourceUnavailable(
                self.id, f"{self._name} refused the gateway's credentials"
            ) from None
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            log.warning("source %s: %s: HTTP %d", self.id, what, status)
            if status in RETRY_STATUSES:
                raise _Retryable(
                    SourceUnavailable(self.id, f"{self._name} is unavailable (HTTP {status})"),
                    unprocessed=True,
                    retry_after=_retry_after(exc.response.headers.get("retry-after")),
                ) from None
            if status in (400, 401, 403):
                raise SourceUnavailable(
                    self.id, f"{self._name} refused the gateway's credentials"
                ) from None
            raise SourceUnavailable(
                self.id, f"{self._name} is unavailable (HTTP {status})"
            ) from None
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("source %s: %s answer unreadable: %s", self.id, what, exc)
            raise BadSourceData(
                self.id, f"{self._name} answered a token request with data the gateway "
                "cannot interpret"
            ) from None
        leeway = min(TOKEN_LEEWAY_SECONDS, TOKEN_LEEWAY_FRACTION * lifetime)
        self._auth_refresh_at = fetched_at + lifetime - leeway
        log.info("source %s: fetched an access token valid for %g s", self.id, lifetime)
        return OAuth2Auth(token)

    # -- small helpers ------------------------------------------------------------

    @property
    def _name(self) -> str:
        return f"source {self.id} ({self.settings.department})"

    def _url(self, path: str) -> str:
        if "://" in path or path.startswith("//"):
            raise ValueError("path must be relative to the source's url")
        if not path:
            return self.settings.url
        return self.settings.url.rstrip("/") + "/" + path.lstrip("/")

    @staticmethod
    def _headers(headers: dict | None) -> dict:
        return {"Accept": "application/json", **(headers or {})}

    def _timeout(self) -> SourceTimeout:
        return SourceTimeout(
            self.id, f"{self._name} did not answer within {self.settings.timeout_seconds:g} s"
        )

    def _down(self) -> SourceUnavailable:
        return SourceUnavailable(self.id, f"{self._name} is unavailable")

    def _log_failure(self, method: str, path: str, exc: Exception) -> None:
        # The exception's text may name the host; that is for the log only.
        log.warning("source %s: %s %s: %s: %s", self.id, method, path, type(exc).__name__, exc)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a delta-seconds ``Retry-After``; ``None`` otherwise (dates: backoff)."""
    return float(value.strip()) if value and value.strip().isdigit() else None

