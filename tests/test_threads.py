"""WorkerThreads: blocking calls awaited from the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.threads import WorkerThreads

pytestmark = pytest.mark.anyio


async def test_a_call_returns_its_result_or_raises_its_error():
    threads = WorkerThreads(2, "t")
    try:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 / 0)
        assert await threads.run(threading.current_thread) is not threading.current_thread()
    finally:
        threads.close()


async def test_calls_run_concurrently_up_to_the_size_and_no_further():
    size = 3
    threads = WorkerThreads(size, "t")
    barrier = threading.Barrier(size, timeout=30)  # generous: this is not about speed
    names: set[str] = set()

    def meet() -> None:
        names.add(threading.current_thread().name)
        barrier.wait()  # only passes if `size` calls run at the same time

    try:
        await asyncio.gather(*(threads.run(meet) for _ in range(2 * size)))
    finally:
        threads.close()
    assert names == {f"t-{i}" for i in range(size)}


async def test_a_cancelled_caller_leaves_the_thread_serving_the_next():
    threads = WorkerThreads(1, "t")
    running, release = threading.Event(), threading.Event()

    def call() -> bool:
        running.set()
        return release.wait(30)

    try:
        waiting = asyncio.ensure_future(threads.run(call))
        async with asyncio.timeout(30):  # cancelled while its call runs, not before
            while not running.is_set():
                await asyncio.sleep(0.001)
        waiting.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await threads.run(lambda: "next") == "next"
    finally:
        threads.close()


async def test_closed_threads_refuse_new_calls_and_end():
    threads = WorkerThreads(2, "t")
    await asyncio.gather(threads.run(lambda: None), threads.run(lambda: None))
    started = list(threads._threads)
    threads.close()
    with pytest.raises(RuntimeError, match="closed"):
        await threads.run(lambda: None)
    for thread in started:
        thread.join(timeout=30)
        assert not thread.is_alive()


async def test_calls_waiting_outnumbering_idle_threads_start_another():
    """Two calls handed while one thread is idle, before it has taken the
    first, must not both wait for that thread: here they wait for each other."""
    import queue as _queue

    from core.threads import WorkerThreads

    class Gated:
        """The call queue, whose takers wait until ``open`` is set."""

        def __init__(self) -> None:
            self.calls: _queue.SimpleQueue = _queue.SimpleQueue()
            self.open = threading.Event()

        def put(self, item) -> None:
            self.calls.put(item)

        def get(self):
            self.open.wait(30)
            return self.calls.get()

    threads = WorkerThreads(2, "test-outnumbered")
    gated = threads._calls = Gated()
    gated.open.set()
    try:
        await threads.run(lambda: None)  # one thread, which goes idle again
        for _ in range(3000):
            if threads._idle == 1:
                break
            await asyncio.sleep(0.001)
        gated.open.clear()  # the idle thread takes nothing until both calls are handed
        barrier = threading.Barrier(2, timeout=30)
        calls = [asyncio.ensure_future(threads.run(barrier.wait)) for _ in range(2)]
        await asyncio.sleep(0)
        gated.open.set()
        await asyncio.wait_for(asyncio.gather(*calls), 60)
    finally:
        threads.close()
