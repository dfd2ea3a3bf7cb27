"""``WorkerThreads``: blocking calls run on a few threads of their own, awaited
from the event loop (a SQLite file source's statements, a SQLite audit trail's
commits)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = None


class WorkerThreads:
    """Up to ``size`` daemon threads named ``name-N`` that run the calls handed
    to ``run``, in the order handed.

    ``await run(fn, *args)`` returns ``fn(*args)`` or raises what it raised.
    A caller cancelled while its call runs does not stop the call (no thread
    can be interrupted): its result is dropped. A thread starts when a call
    arrives and more calls wait than threads are idle, up to ``size``. Lighter than
    ``loop.run_in_executor`` on a ``ThreadPoolExecutor``: a call is one queue
    put and its answer one ``call_soon_threadsafe``, with no concurrent future
    chained to the asyncio one and no idle-thread semaphore whose lock the
    event loop contends for with the workers (about 20 µs per call, profiled
    under load).
    """

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a call
        self._pending = 0  # calls handed but not yet taken by a thread
        self._idle_lock = threading.Lock()  # guards both counts
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError(f"{self._name} threads are closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._idle_lock:
            self._pending += 1
            more = self._pending > self._idle and len(self._threads) < self._size
        self._calls.put((fn, args, future, loop))
        if more:  # more calls waiting than threads to take them
            self._start()
        return await future

    def close(self) -> None:
        """Stop taking calls; each thread ends after the calls queued before."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._calls.put(_STOP)

    def _start(self) -> None:
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self._name}-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            with self._idle_lock:
                self._idle += 1
            call = self._calls.get()
            with self._idle_lock:
                self._idle -= 1
                if call is not _STOP:
                    self._pending -= 1
            if call is _STOP:
                return
            fn, args, future, loop = call
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the caller, like run_in_executor
                _answer(loop, future, _set_exception, exc)
            else:
                _answer(loop, future, _set_result, result)


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future, how: Callable,
            value: Any) -> None:
    try:
        loop.call_soon_threadsafe(how, future, value)
    except RuntimeError:  # the loop is closed: nobody waits for the answer
        pass


def _set_result(future: asyncio.Future, result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
