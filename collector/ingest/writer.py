"""Group commit: every batch that arrives while a transaction runs is stored in the next one.

Requests append their push to a list on the event loop and await a future. One flush
task per process hands the whole list to the writer thread, which has the store validate
it and commit the valid batches in one transaction (one fsync on SQLite); only after the
commit are the futures resolved, so a 202 always means "stored". The hand-over between the
loop and the writer thread happens once per group, not once per request: waking a thread
for every push costs more than the push (measured: half the throughput with a writer that
stored nothing). By default the collector uses the store process instead
(``collector.ingest.storeproc``, ``ingest.store``), which groups the same way on its side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from collector.errors import CollectorError, StoreUnavailable
from collector.ingest.service import PendingBatch, StoreOutcome
from collector.ingest.store import GroupReport, GroupStore, Stored, as_error

log = logging.getLogger(__name__)

GroupObserver = Callable[[int, float], None]
"""Called after each committed transaction with its batches and the seconds it took."""


class Writer(Protocol):
    """Takes pushes from the views and answers each once it is committed or refused:
    ``GroupCommitWriter`` (a thread of this process) or ``ProcessWriter`` (a store
    process of its own, ``collector.ingest.storeproc``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, pending: PendingBatch) -> StoreOutcome: ...


class GroupCommitWriter:
    """The writer of this process: a flush task on the loop, a thread for the database."""

    def __init__(
        self, store: GroupStore, *, max_group: int = 256, observer: GroupObserver | None = None
    ) -> None:
        self._store = store
        self._max_group = max_group
        self._observer = observer
        self._waiting: list[tuple[PendingBatch, asyncio.Future[StoreOutcome]]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._flush: asyncio.Task[None] | None = None
        self._closed = True

    async def start(self) -> None:
        """Start accepting pushes (called from the app's lifespan)."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="watchkeeper-writer")
        self._closed = False

    async def stop(self) -> None:
        """Store what is waiting, then stop the writer thread."""
        self._closed = True
        if self._flush is not None:
            await self._flush
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, pending: PendingBatch) -> StoreOutcome:
        """Queue a push and wait until it is committed (or refused)."""
        if self._closed:
            raise StoreUnavailable("the collector is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoreOutcome] = loop.create_future()
        self._waiting.append((pending, future))
        if self._flush is None:
            self._flush = loop.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
                batches = [pending for pending, _ in group]
                try:
                    report = await loop.run_in_executor(self._executor, self._store.store,
                                                        batches)
                except Exception as exc:  # resolved into every waiting request
                    log.exception("storing a group of %d pushes failed", len(group))
                    report = GroupReport([as_error(exc)] * len(group))
                observe(report, self._observer)
                for (_, future), outcome in zip(group, report.outcomes, strict=True):
                    answer(future, outcome)
        finally:
            self._flush = None


def observe(report: GroupReport, observer: GroupObserver | None) -> None:
    """Tell the metrics about the report's transactions."""
    if observer is not None:
        for size, seconds in report.transactions:
            observer(size, seconds)


def answer(future: asyncio.Future[StoreOutcome], outcome: Stored) -> None:
    """Resolve a waiting push with its outcome (unless its client has gone)."""
    if future.done():
        return  # the client went away; the batch is stored all the same
    if isinstance(outcome, CollectorError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
