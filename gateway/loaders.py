"""Per-request loading: what a selection of entities reads, prefetched in
batches; anything else through DataLoaders, one per (source, record type),
created on first use."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from aiodataloader import DataLoader

from connectors import RECORD_TYPES
from connectors.base import Connector, SourceCall
from core.errors import SourceError
from core.records.credit_office import REPAIRS
from core.records.market import REGISTRATION
from gateway import metrics
from gateway.policy import Decision, PublicityWindow, RowFilter
from gateway.sources import SourceRegistry


class Loaders:
    """The DataLoaders of one request. Never share an instance across requests:
    its caches hold data released under that request's caller and purpose.

    ``load(record_type, key)`` returns an awaitable of that key's value: for a
    single record type from the key's home source, for a list record type the
    records of every source serving it, merged in source order. Keys asked
    for in the same tick are batched into calls of at most ``max_batch_keys``
    keys per source. Partner sources are left out when ``with_partners`` is
    false (the request came from a partner). When some but not all sources of
    a list fail, the others' records are returned and each failure is kept in
    ``partial_failures`` with the field's path. Record lists pass through the
    purpose's row filter; withheld records are counted in ``withheld`` by
    record type; ``sources_called`` names every source asked. ``prefetch``
    reads what a selection needs for known keys up front, and ``value`` hands
    those answers to the fields synchronously.
    """

    __slots__ = ("_registry", "_max_batch_keys", "_loaders", "_decision", "_today",
                 "_with_partners", "_answers", "call", "withheld", "sources_called",
                 "partial_failures")

    def __init__(self, registry: SourceRegistry, max_batch_keys: int, decision: Decision,
                 today: date, call: SourceCall, with_partners: bool = True) -> None:
        self._registry = registry
        self._max_batch_keys = max_batch_keys
        self._decision = decision
        self._today = today
        self._with_partners = with_partners
        self._loaders: dict[tuple[str, str], DataLoader] = {}
        # (record type, key) -> one answer per source: a value, an exception,
        # or a _Pending read.
        self._answers: dict[tuple[str, Any], list[Any]] = {}
        self.call = call
        self.withheld: Counter[str] = Counter()
        self.sources_called: set[str] = set()
        self.partial_failures: list[tuple[Any, SourceError]] = []

    def loader(self, source: Connector, record_type: str) -> DataLoader:
        loader = self._loaders.get((source.id, record_type))
        if loader is None:
            loader = DataLoader(self._batch(source, record_type),
                                max_batch_size=self._max_batch_keys)
            self._loaders[(source.id, record_type)] = loader
        return loader

    def _batch(self, source: Connector, record_type: str) -> Any:
        """``source``'s batch function for ``record_type``: its records
        prepared by their publicity window, then row-filtered."""
        self.sources_called.add(source.id)
        batch = metrics.timed_batch(functools.partial(source.load, record_type, call=self.call),
                                    source.id, record_type)  # one observation per batch call
        window = self._decision.windows.get(record_type)
        if window is not None:
            batch = self._prepared(batch, window, window.repair_kinds and not source.is_partner)
        row_filter = self._decision.row_filters.get(record_type)
        if row_filter is not None:
            batch = self._filtered(batch, row_filter, record_type)
        return batch

    def _prepared(self, batch: Any, window: PublicityWindow, link_repairs: bool) -> Any:
        """``batch`` with each record's window end set and, for a local
        source, its repair linked from the credit repairs of the same keys
        (read once per key with any other use of them; when they cannot be
        read, the batch fails: a record's repair cannot be ignored)."""
        async def prepared_batch(keys: Sequence[Any]) -> list[Any]:
            if link_repairs:
                results, _ = await asyncio.gather(batch(keys),
                                                  self.prefetch([REPAIRS.name], keys))
                repairs = [self.value(REPAIRS.name, key) for key in keys]  # a failure raises
            else:
                results, repairs = await batch(keys), ()
            for index, records in enumerate(results):
                window.prepare(records, repairs[index] if index < len(repairs) else ())
            return results

        return prepared_batch

    def _filtered(self, batch: Any, row_filter: RowFilter, record_type: str) -> Any:
        async def filtered_batch(keys: Sequence[Any]) -> list[Any]:
            results = []
            for records in await batch(keys):
                kept, withheld = row_filter.apply(records, self._today)
                if withheld:
                    self.withheld[record_type] += withheld
                results.append(kept)
            return results

        return filtered_batch

    def load(self, record_type: str, key: Any, path: Any = None) -> Any:
        """An awaitable of ``key``'s value (see the class docstring)."""
        value = self.value(record_type, key, path)
        return value if inspect.isawaitable(value) else _resolved(value)

    def value(self, record_type: str, key: Any, path: Any = None) -> Any:
        """Like ``load``, but the value itself (or its error, raised) when it
        is known: a field resolver returning it completes without an await.

        Every answer of the request is kept per (record type, key), whichever
        way it was read (prefetched, batched by a DataLoader, primed from a
        search hit), so one subject met at several places of an operation is
        read once and every place gets the same answer; a place that comes
        while the read is under way waits for it."""
        answers = self._answers.get((record_type, key))
        if answers is None:
            answers = self._answers[(record_type, key)] = [
                _Pending(self.loader(source, record_type).load(key))
                for source in self._sources(record_type, key)
            ]
            for pending in answers:
                pending.future.add_done_callback(self._settler(answers))
        if len(answers) == 1:  # the common case, kept short: one call per field
            answer = answers[0]
            if type(answer) is _Pending:
                return self._after([answer.future], record_type, key, path)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        pending = [a.future for a in answers if type(a) is _Pending]
        if pending:
            return self._after(pending, record_type, key, path)
        return self._answer(answers, path)

    def settled(self, record_type: str, key: Any) -> Any:
        """``key``'s value when every source's answer is in and none failed,
        exactly what ``value`` would return then; else ``NOT_SETTLED``.
        Reads nothing and records nothing."""
        answers = self._answers.get((record_type, key))
        if answers is None:
            return NOT_SETTLED
        for answer in answers:
            if type(answer) is _Pending or isinstance(answer, BaseException):
                return NOT_SETTLED
        return self._answer(answers, None)  # no failure among them: nothing to record

    def _answer(self, answers: list[Any], path: Any) -> Any:
        if not answers:
            return None
        if len(answers) == 1:
            if isinstance(answers[0], BaseException):
                raise answers[0]
            return answers[0]
        return self._merge(answers, path)

    async def _after(self, pending: list[asyncio.Future], record_type: str, key: Any,
                     path: Any) -> Any:
        await asyncio.gather(*pending, return_exceptions=True)
        return self._answer(self._answers[(record_type, key)], path)

    @staticmethod
    def _settler(answers: list[Any]) -> Any:
        """A done-callback putting a DataLoader future's outcome in its place
        (it runs before anything awaiting the future resumes)."""
        def settle(future: asyncio.Future) -> None:
            for index, answer in enumerate(answers):
                if type(answer) is _Pending and answer.future is future:
                    answers[index] = _outcome(future)
        return settle

    async def prefetch(self, record_types: Sequence[str], keys: Sequence[Any]) -> None:
        """Read ``record_types`` for ``keys`` (distinct) now, every source and
        batch at once, and keep each key's answers (a failure included, for its
        fields to report): ``value`` then returns them without an await. The
        keys are known, so the batch functions are called directly, in
        batches of at most ``max_batch_keys``, without a DataLoader. Keys
        already read or being read are not read again: this waits for them."""
        waiting: dict[asyncio.Future, None] = {}  # each read once, however many keys it has
        all_answers = self._answers
        for record_type in record_types:
            # For a list record type every key has the same sources; for a
            # single one, its home source (or none).
            shared = self._sources(record_type, None) if RECORD_TYPES[record_type].many else None
            by_source: dict[Connector, list[Any]] = {}
            for key in keys:
                answers = all_answers.get((record_type, key))
                if answers is not None:
                    for answer in answers:
                        if type(answer) is _Pending:
                            waiting[answer.future] = None
                    continue
                sources = shared if shared is not None else self._sources(record_type, key)
                all_answers[(record_type, key)] = [None] * len(sources)
                for source in sources:
                    source_keys = by_source.get(source)
                    if source_keys is None:
                        source_keys = by_source[source] = []
                    source_keys.append(key)
            for source, source_keys in by_source.items():
                batch = self._batch(source, record_type)
                position = self._sources(record_type, source_keys[0]).index(source)
                for start in range(0, len(source_keys), self._max_batch_keys):
                    chunk = source_keys[start:start + self._max_batch_keys]
                    task = asyncio.ensure_future(batch(chunk))
                    task.add_done_callback(self._chunk_settler(record_type, position, chunk))
                    pending = _Pending(task)  # one per chunk: it only names the task
                    for key in chunk:
                        all_answers[(record_type, key)][position] = pending
                    waiting[task] = None
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    def _chunk_settler(self, record_type: str, position: int, chunk: list[Any]) -> Any:
        """A done-callback putting each key's answer of a batch call in its place."""
        def settle(task: asyncio.Future) -> None:
            result = _outcome(task)
            if not isinstance(result, BaseException) and len(result) != len(chunk):
                result = TypeError(f"a batch of {len(chunk)} keys returned {len(result)} values")
            answers = self._answers
            if isinstance(result, BaseException):
                for key in chunk:
                    answers[(record_type, key)][position] = result
            else:
                for key, answer in zip(chunk, result):
                    answers[(record_type, key)][position] = answer
        return settle

    def answered(self, record_type: str, key: Any) -> list[Connector]:
        """The sources that answered ``key``'s ``record_type`` in this request
        (a source that failed or is still being read is left out)."""
        answers = self._answers.get((record_type, key), ())
        return [source for source, answer in zip(self._sources(record_type, key), answers)
                if not isinstance(answer, (BaseException, _Pending))]

    def _sources(self, record_type: str, key: Any) -> list[Connector]:
        """The sources asked for ``key``'s ``record_type``, in merge order."""
        if not RECORD_TYPES[record_type].many:
            source = self._registry.home(record_type, key)
            if source is None or (source.is_partner and not self._with_partners):
                return []
            return [source]
        return list(self._registry.serving(record_type, self._with_partners))

    def _merge(self, results: list[Any], path: Any) -> list[Any]:
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == len(results):
            raise failures[0]
        for failure in failures:
            if not isinstance(failure, SourceError):
                raise failure
            self.partial_failures.append((path, failure))
        return [record for result in results if not isinstance(result, BaseException)
                for record in result]

    async def search_registrations(self, text: str, after: str | None,
                                   limit: int) -> list[Any]:
        """Registrations whose name contains ``text`` (the local source's
        ``search_by_name``), each kept as its code's registration answer."""
        source = self._registry.local(REGISTRATION.name)
        self.sources_called.add(source.id)
        with metrics.source_call(source.id, "search", 0):
            found = await source.search_by_name(text, after, limit)
        for registration in found:
            self.prime_local(REGISTRATION.name, registration.uscc, registration)
        return found

    def prime_local(self, record_type: str, key: Any, value: Any) -> None:
        """Keep a value the local source already returned (a search hit) as
        ``key``'s answer, unless the key's answer is read already or it comes
        from another source."""
        if (record_type, key) not in self._answers and \
                self._sources(record_type, key) == [self._registry.local(record_type)]:
            self._answers[(record_type, key)] = [value]


#: What ``Loaders.settled`` returns for an answer not in yet, or failed.
NOT_SETTLED = object()


class _Pending:
    """An answer still being read: ``future``'s outcome, once it is done."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future


def _outcome(future: asyncio.Future) -> Any:
    """A done future's result, or its exception."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception() or future.result()


def _resolved(value: Any) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future
