"""Group commit: one writer task per process turns waiting appends into batches.

``submit`` queues an entry with a future and wakes the writer. The writer
takes every entry waiting (up to ``max_batch``), hands them to ``commit`` (one
database transaction) and resolves each future with its record, or, when the
commit fails, with ``AuditUnavailable``. While a batch commits the next one
gathers, so under load each transaction carries many entries and no caller
waits for more than the batch in flight plus its own.

A caller cancelled while waiting does not cancel the batch it is in (other
callers share it); an entry whose caller was cancelled before its batch
started is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from gateway.audit.entry import AuditEntry, AuditRecord
from gateway.audit.errors import AuditUnavailable

log = logging.getLogger("gateway.audit")

Commit = Callable[[Sequence[AuditEntry]], Awaitable[Sequence[AuditRecord]]]
_Waiter = tuple[AuditEntry, "asyncio.Future[AuditRecord]"]


class GroupCommitWriter:
    def __init__(self, commit: Commit, *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._commit = commit
        self._max_batch = max_batch
        self._queue: deque[_Waiter] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, entry: AuditEntry) -> AuditRecord:
        """The record once ``entry`` is committed; ``AuditUnavailable`` if it was not."""
        if self._closed:
            raise AuditUnavailable("the audit store is closed")
        loop = asyncio.get_running_loop()
        self._ensure_running(loop)
        future: asyncio.Future[AuditRecord] = loop.create_future()
        self._queue.append((entry, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def aclose(self) -> None:
        """Stop taking entries, let the queued ones commit, end the writer."""
        self._closed = True
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            assert self._wakeup is not None
            self._wakeup.set()
            await task
        self._fail(list(self._queue), "the audit store is closed")
        self._queue.clear()

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            # A writer of another (finished) event loop cannot serve this one.
            self._fail([w for w in self._queue if w[1].get_loop() is not loop],
                       "the audit writer's event loop has ended")
            self._queue = deque(w for w in self._queue if w[1].get_loop() is loop)
            self._wakeup = asyncio.Event()
            # A context of its own: not that of the request that happened to start
            # it (its log lines would carry that request's id, its spans that trace).
            self._task = loop.create_task(self._run(), name="audit-group-commit",
                                          context=contextvars.Context())

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Waiter] = []
            while self._queue and len(batch) < self._max_batch:
                waiter = self._queue.popleft()
                if not waiter[1].done():  # its caller was cancelled: drop it
                    batch.append(waiter)
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Waiter]) -> None:
        try:
            records = await self._commit([entry for entry, _ in batch])
        except Exception as exc:
            # The driver's error, not SQLAlchemy's text around it (which repeats the
            # statement's parameters: the entries themselves).
            driver = getattr(exc, "orig", None) or exc
            log.error("audit batch of %d entries not committed: %s: %s", len(batch),
                      type(driver).__name__, str(driver).split("\n", 1)[0][:300])
            reason = str(exc) if isinstance(exc, AuditUnavailable) else exc.__class__.__name__
            self._fail(batch, f"the audit trail could not be written: {reason}", cause=exc)
            return
        except BaseException:  # the writer itself is cancelled: nobody may wait forever
            self._fail(batch, "the audit writer was stopped")
            raise
        for (_, future), record in zip(batch, records, strict=True):
            if not future.done():
                future.set_result(record)

    @staticmethod
    def _fail(waiters: list[_Waiter], message: str, cause: BaseException | None = None) -> None:
        for _, future in waiters:
            if not future.done():
                error = AuditUnavailable(message)
                error.__cause__ = cause
                try:
                    future.set_exception(error)
                except RuntimeError:  # its event loop is closed: nobody waits on it
                    pass
