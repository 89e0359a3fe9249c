"""The store side of ingest: a group of validated batches committed together.

``GroupStore.store`` is what the group-commit writer runs for each group, either in a
thread of the collector's process or in a store process of its own
(``collector.ingest.storeproc``); it is the same code either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from collector.db import write_transaction
from collector.errors import CollectorError, StoreUnavailable
from collector.ingest.service import PendingBatch, StoreOutcome, store_batches

log = logging.getLogger(__name__)

Stored = StoreOutcome | CollectorError
"""One batch's answer: stored (or a duplicate), or the error to answer with."""


@dataclass(slots=True)
class GroupReport:
    """The answers to a group, in the order given, and the transactions it took."""

    outcomes: list[Stored]
    transactions: list[tuple[int, float]] = field(default_factory=list)
    """(batches, seconds) per committed transaction, for the ingest metrics."""


class GroupStore:
    """Stores a group of batches in one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def store(self, batches: Sequence[PendingBatch]) -> GroupReport:
        """One transaction for the group, or one per batch after a unique violation."""
        report = GroupReport([])
        report.outcomes = self._store(batches, report)
        return report

    def _store(self, batches: Sequence[PendingBatch], report: GroupReport) -> list[Stored]:
        if not batches:
            return []
        try:
            return list(self._transaction(batches, report))
        except IntegrityError:
            # Another collector stored one of these batches at the same moment: retry each
            # batch on its own, where a batch already stored is answered as a duplicate.
            log.info("group of %d batches hit a unique violation; retrying one by one",
                     len(batches))
        except Exception as exc:
            log.exception("storing a group of %d batches failed", len(batches))
            return [as_error(exc)] * len(batches)
        results: list[Stored] = []
        for pending in batches:
            try:
                results.extend(self._transaction([pending], report))
            except Exception as exc:
                log.exception("storing batch %s failed", pending.batch_id)
                results.append(as_error(exc))
        return results

    def _transaction(
        self, batches: Sequence[PendingBatch], report: GroupReport
    ) -> list[StoreOutcome]:
        start = time.perf_counter()
        with write_transaction(self._engine) as conn:
            outcomes = store_batches(conn=conn, pending=batches)
        report.transactions.append((len(batches), time.perf_counter() - start))
        return outcomes


def as_error(exc: BaseException) -> CollectorError:
    """Any failure of the store as the error a push is answered with."""
    if isinstance(exc, CollectorError):
        return exc
    if isinstance(exc, DBAPIError):
        return StoreUnavailable(f"the store refused the batch: {type(exc.orig).__name__}")
    return StoreUnavailable(f"storing the batch failed: {type(exc).__name__}")
