"""Group commit: one writer thread per process stores every batch that queued up meanwhile.

A request hands its batch to the writer and awaits a future; the writer takes all
batches waiting in its queue, stores them in one transaction (one fsync on SQLite), and
only after the commit resolves each request's future, so a 202 always means "stored".
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from collector.db import write_transaction
from collector.errors import CollectorError, StoreUnavailable
from collector.ingest.service import PendingBatch, StoreOutcome, store_batches

log = logging.getLogger(__name__)

GroupObserver = Callable[[int, float], None]
"""Called after each committed group with its size and the seconds the transaction took."""


@dataclass(slots=True)
class _Job:
    pending: PendingBatch
    future: asyncio.Future[StoreOutcome]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class GroupCommitWriter:
    """The one thread of this process that writes pushes to the store."""

    def __init__(
        self, engine: Engine, *, max_group: int = 256, observer: GroupObserver | None = None
    ) -> None:
        self._engine = engine
        self._max_group = max_group
        self._observer = observer
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="watchkeeper-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Store what is queued, then stop the thread."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def submit(self, pending: PendingBatch) -> StoreOutcome:
        """Queue a batch and wait until it is committed (or failed)."""
        if self._closed or self._thread is None:
            raise StoreUnavailable("the collector is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoreOutcome] = loop.create_future()
        self._queue.put(_Job(pending, future, loop))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            group = [first]
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Job)
                group.append(item)
            self._store(group)

    def _store(self, group: Sequence[_Job]) -> None:
        try:
            outcomes = self._transaction(group)
        except IntegrityError:
            # Another collector stored one of these batches at the same moment (or a
            # result id repeated across hosts' batches): retry each batch on its own,
            # where a batch already stored is found and answered as a duplicate.
            log.info("group of %d batches hit a unique violation; retrying one by one",
                     len(group))
            for job in group:
                self._store_one(job)
            return
        except Exception as exc:  # resolved into every waiting request, not swallowed
            log.exception("storing a group of %d batches failed", len(group))
            self._fail(group, exc)
            return
        self._resolve(group, outcomes)

    def _store_one(self, job: _Job) -> None:
        try:
            outcomes = self._transaction([job])
        except Exception as exc:
            log.exception("storing batch %s failed", job.pending.batch.batch_id)
            self._fail([job], exc)
            return
        self._resolve([job], outcomes)

    def _transaction(self, group: Sequence[_Job]) -> list[StoreOutcome]:
        start = time.perf_counter()
        with write_transaction(self._engine) as conn:
            outcomes = store_batches(conn=conn, pending=[job.pending for job in group])
        if self._observer is not None:
            self._observer(len(group), time.perf_counter() - start)
        return outcomes

    def _resolve(self, group: Sequence[_Job], outcomes: Sequence[StoreOutcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, StoreOutcome]]] = {}
        for job, outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job, outcome))
        for loop, pairs in by_loop.items():
            _call_soon(loop, _set_results, pairs)

    def _fail(self, group: Sequence[_Job], exc: Exception) -> None:
        if isinstance(exc, CollectorError):
            error: CollectorError = exc
        elif isinstance(exc, DBAPIError):
            error = StoreUnavailable(f"the store refused the batch: {type(exc.orig).__name__}")
        else:
            error = StoreUnavailable(f"storing the batch failed: {type(exc).__name__}")
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            _call_soon(loop, _set_errors, jobs, error)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass  # the request's loop is closed: nobody waits for this answer any more


def _set_results(pairs: Sequence[tuple[_Job, StoreOutcome]]) -> None:
    for job, outcome in pairs:
        if not job.future.done():
            job.future.set_result(outcome)


def _set_errors(jobs: Sequence[_Job], error: CollectorError) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
