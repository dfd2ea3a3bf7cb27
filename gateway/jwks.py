"""The issuer's signing keys: a JWKS file, re-read when it changes, or a JWKS
URL, fetched and refreshed (``IssuerKeys``), for ``gateway.auth``."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from core.errors import ConfigurationError
from gateway.settings import AuthSettings

logger = logging.getLogger("gateway.auth")

JWKS_FETCH_TIMEOUT_SECONDS = 5.0
#: A JWKS URL's last good key set is trusted, while fetches fail, until it is this many
#: ``jwks_refresh_seconds`` old.
JWKS_STALE_FACTOR = 3
#: A JWKS file is looked at (``os.stat``) at most this often.
JWKS_FILE_CHECK_SECONDS = 1.0
#: A JWKS file modified less than this long ago (wall clock) is read again at the next check.
JWKS_FILE_SETTLE_SECONDS = 2.0


class IssuerKeys:
    """The key set tokens are checked against (``keys``, with their ``kids``;
    ``loaded``: a set from the source, not none fetched yet or dropped).

    Key sets are refreshed lazily, by the verifications themselves (there is
    no background task); on the hot path a verification costs one monotonic
    clock reading and a comparison.

    With ``jwks_url``:

    * the set is fetched on first use, and again by the first verification
      that finds it older than ``jwks_refresh_seconds``. That verification
      waits for the fetch (at most ``JWKS_FETCH_TIMEOUT_SECONDS``); others
      arriving meanwhile go on with the cached set, which is still within its
      grace. Only one fetch is ever in flight.
    * a token naming a ``kid`` the set lacks (key rotation) fetches it too,
      at most once per ``jwks_min_refetch_seconds`` counting every fetch;
      concurrent callers wait for that one fetch.
    * a fetched set replaces the cached one entirely: a key it no longer
      lists is refused from then on, and an empty ``"keys"`` list trusts no key.
    * a failed fetch (network, HTTP status, redirect, not a JWKS) logs a
      warning and keeps the last good set, retried after
      ``min(jwks_min_refetch_seconds, jwks_refresh_seconds)``. The last good
      set is trusted until it is ``JWKS_STALE_FACTOR`` refresh intervals old;
      then it is dropped (logged as an error) and every token is refused
      (401) until a fetch succeeds. So a removed key is refused within
      ``jwks_refresh_seconds`` (plus one fetch) while the issuer answers,
      within ``JWKS_STALE_FACTOR`` intervals when it does not.

    With ``jwks_file``: the file is read at start-up (an unusable file is a
    ``ConfigurationError``) and looked at (``os.stat``: device, inode, size,
    mtime, ctime) at most once per ``JWKS_FILE_CHECK_SECONDS``; when it
    changed it is re-read, so a key removed from it is refused from the next
    check. A file that becomes unreadable or is not a valid JWKS keeps the
    last good set and logs an error (once per problem) until it is fixed.

    ``transport`` and ``clock`` (monotonic seconds) are for tests.
    Raises ``ConfigurationError`` for unusable settings or JWKS file.
    """


    def __init__(
        self,
        settings: AuthSettings,
        transport: httpx2.AsyncBaseTransport | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if bool(settings.jwks_file) == bool(settings.jwks_url):
            raise ConfigurationError("[auth]: set exactly one of jwks_file and jwks_url")
        if not 0 < settings.jwks_refresh_seconds < math.inf:
            raise ConfigurationError("[auth]: jwks_refresh_seconds must be a positive number of seconds")
        self._settings = settings
        self._clock = clock
        self.keys = KeySet([])
        self.kids: frozenset[str | None] = frozenset()  # of the keys in ``keys``
        self.loaded = False  # the keys are a set from the source (not: none fetched yet, or dropped)
        # jwks_url
        self._client: httpx2.AsyncClient | None = None
        self._lock = anyio.Lock()
        self._last_attempt: float | None = None  # of any fetch: the unknown-kid rate limit
        self._fetched_at = -math.inf  # when the fetch of the cached set started
        self._refresh_at = -math.inf  # the next scheduled fetch; never later than _expires_at
        self._expires_at = -math.inf  # the cached set is trusted until then
        self._failing = False
        # jwks_file
        self._path = Path(settings.jwks_file)
        self._check_at = math.inf  # the next look at the file
        self._file_signature: tuple[int, ...] | None = None
        self._file_settling = False  # modified too recently for its signature to be trusted
        self._file_bytes: bytes | None = None  # as last read
        self._file_problem: str | None = None  # as last logged
        if settings.jwks_url:
            _check_jwks_url(settings.jwks_url)
            self._client = httpx2.AsyncClient(
                transport=transport, timeout=JWKS_FETCH_TIMEOUT_SECONDS, follow_redirects=False
            )
        else:
            self._load_file_at_start()

    async def ready(self, kid: str | None) -> None:
        """Bring ``keys`` up to date for a token naming ``kid``: the file
        re-read if it changed (checked at most once per
        ``JWKS_FILE_CHECK_SECONDS``), the URL refreshed when due or fetched
        for an unknown ``kid``. On the hot path: a clock reading and a comparison."""
        if self._client is None:
            now = self._clock()
            if now >= self._check_at:
                self._check_file(now)
        else:
            await self._ensure_key(kid)

    async def aclose(self) -> None:
        """Close the HTTP client used for the JWKS URL."""
        if self._client is not None:
            await self._client.aclose()

    def _set_keys(self, keys: KeySet, source: str) -> None:
        kids = frozenset(key.kid for key in keys.keys)
        if kids != self.kids or not self.loaded:
            logger.info("%s: key ids %s", source, sorted(str(kid) for kid in kids))
        if not kids:
            logger.warning("%s has no keys: every token is refused", source)
        self.keys, self.kids, self.loaded = keys, kids, True

    def _drop_keys(self) -> None:
        self.keys, self.kids, self.loaded = KeySet([]), frozenset(), False

    # ---- jwks_url ----

    async def _ensure_key(self, kid: str | None) -> None:
        """Refresh the JWKS URL's set when due, or fetch it for an unknown ``kid``, rate permitting."""
        now = self._clock()
        if now < self._refresh_at and self._has_key(kid):
            return  # the hot path
        if now >= self._refresh_at and not (self._lock.locked() and now < self._expires_at):
            # due; while another verification fetches, the cached set is still within its grace
            async with self._lock:
                now = self._clock()
                if now >= self._refresh_at:  # not refreshed while we waited
                    await self._fetch_jwks(now)
        if self._has_key(kid):
            return
        async with self._lock:  # concurrent callers wait for one fetch
            if self._has_key(kid):
                return
            now = self._clock()
            interval = self._settings.jwks_min_refetch_seconds
            if self._last_attempt is not None and now - self._last_attempt < interval:
                return
            await self._fetch_jwks(now)

    def _has_key(self, kid: str | None) -> bool:
        # a token without kid can use a set that has any key (joserfc picks the only one)
        kids = self.kids
        return bool(kids) and (kid is None or kid in kids)

    async def _fetch_jwks(self, now: float) -> None:
        """Fetch the JWKS URL (``now``: when the fetch starts), under ``self._lock``."""
        assert self._client is not None
        self._last_attempt = now
        url = self._settings.jwks_url
        refresh = self._settings.jwks_refresh_seconds
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = _parse_jwks(response.json(), allow_empty=True)
        except (httpx2.HTTPError, ValueError, RecursionError) as exc:
            self._fetch_failed(now, exc)
            return
        if self._failing:
            logger.info("JWKS %s fetched again", url)
        self._failing = False
        self._set_keys(keys, f"JWKS {url} fetched")
        self._fetched_at = now
        self._refresh_at = now + refresh
        self._expires_at = now + JWKS_STALE_FACTOR * refresh

    def _fetch_failed(self, now: float, exc: Exception) -> None:
        settings = self._settings
        url = settings.jwks_url
        retry = min(settings.jwks_min_refetch_seconds, settings.jwks_refresh_seconds)
        self._failing = True
        if not self.loaded:
            self._refresh_at = now + retry
            logger.warning("JWKS %s could not be fetched: %s", url, exc)
        elif now < self._expires_at:
            self._refresh_at = min(now + retry, self._expires_at)
            logger.warning("JWKS %s could not be fetched, keeping the previous keys for at most %.0f s: %s",
                           url, self._expires_at - now, exc)
        else:
            logger.error("JWKS %s could not be fetched (%s) and its last keys are %.0f s old: "
                         "dropped, every token is refused until it can be fetched",
                         url, exc, now - self._fetched_at)
            self._drop_keys()
            self._refresh_at, self._expires_at = now + retry, -math.inf

    # ---- jwks_file ----

    def _load_file_at_start(self) -> None:
        path = self._path
        try:
            signature, data = _read_file(path)
            keys = _parse_jwks(json.loads(data))
        except FileNotFoundError:
            raise ConfigurationError(f"[auth]: jwks_file {path} does not exist") from None
        except OSError as exc:
            raise ConfigurationError(f"[auth]: jwks_file {path} cannot be read: {exc.strerror}") from None
        except (ValueError, RecursionError) as exc:  # includes json.JSONDecodeError
            raise ConfigurationError(f"[auth]: jwks_file {path}: {exc}") from None
        self._remember_file(signature, data)
        self._set_keys(keys, f"jwks_file {path} read")
        self._check_at = self._clock() + JWKS_FILE_CHECK_SECONDS

    def _check_file(self, now: float) -> None:
        """Re-read the JWKS file if it changed; keep the last good set if it is unusable."""
        self._check_at = now + JWKS_FILE_CHECK_SECONDS
        path = self._path
        try:
            if _signature(os.stat(path)) == self._file_signature and not self._file_settling:
                return
            signature, data = _read_file(path)
        except OSError as exc:
            self._file_signature = self._file_bytes = None  # re-read once it is back
            self._file_trouble(f"cannot be read: {exc.strerror or exc}")
            return
        if data == self._remember_file(signature, data):
            return
        try:
            keys = _parse_jwks(json.loads(data), allow_empty=True)
        except (ValueError, RecursionError) as exc:
            self._file_trouble(str(exc))
            return
        self._file_problem = None
        self._set_keys(keys, f"jwks_file {path} re-read")

    def _remember_file(self, signature: tuple[int, ...], data: bytes) -> bytes | None:
        """Note the file as read; the previous content read."""
        previous, self._file_bytes, self._file_signature = self._file_bytes, data, signature
        # timestamps are coarse: a same-size rewrite within one tick keeps the signature,
        # so a file changed this recently is read again at the next check
        self._file_settling = time.time() - max(signature[3], signature[4]) / 1e9 < JWKS_FILE_SETTLE_SECONDS
        return previous

    def _file_trouble(self, problem: str) -> None:
        if problem != self._file_problem:
            logger.error("jwks_file %s %s; keeping the last good keys %s", self._path,
                         problem if problem.startswith("cannot") else f"is unusable: {problem}",
                         sorted(str(kid) for kid in self.kids))
        self._file_problem = problem


def _check_jwks_url(url: str) -> None:
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, ValueError, TypeError):
        raise ConfigurationError(f"[auth]: jwks_url {url!r} is not a URL") from None
    local = parsed.host in ("localhost", "127.0.0.1", "::1")
    if parsed.scheme != "https" and not (parsed.scheme == "http" and local):
        raise ConfigurationError(f"[auth]: jwks_url {url!r} must use https (http only for localhost)")


def _parse_jwks(data: object, *, allow_empty: bool = False) -> KeySet:
    """A key set from parsed JWKS JSON; ``ValueError`` says what is wrong.

    An empty ``"keys"`` list is an error unless ``allow_empty`` (a refresh:
    the issuer says no key is valid any more).
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError('not a JWKS: expected a JSON object with a "keys" list')
    if not (data["keys"] or allow_empty) or not all(isinstance(key, dict) for key in data["keys"]):
        raise ValueError('not a JWKS: "keys" must be a non-empty list of JWK objects')
    if not data["keys"]:
        return KeySet([])
    try:
        return KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid key in JWKS: {exc}") from exc


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What tells a changed file: (device, inode, size, mtime ns, ctime ns)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_file(path: Path) -> tuple[tuple[int, ...], bytes]:
    """The signature and content of one version of the file at ``path``."""
    with path.open("rb") as file:
        signature = _signature(os.fstat(file.fileno()))  # before reading: a later write changes it
        return signature, file.read()
