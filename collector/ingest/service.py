"""The rules of a push: who may push what, and storing a group of batches in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import cast

from pydantic_core import to_json
from sqlalchemy import Connection, Table, bindparam, delete, update

from collector.db import BulkStatement, in_list, is_postgres, upsert_insert
from collector.errors import Forbidden, InvalidPayload
from collector.hosts.models import Host
from collector.ingest.models import Batch, Result, WireBatch
from collector.state.models import SILENCE_CHECK
from collector.state.service import NewResult, apply_results

BATCHES = cast(Table, Batch.__table__)
RESULTS = cast(Table, Result.__table__)
HOSTS = cast(Table, Host.__table__)


_RESULT_COLUMNS = ("host_id", "result_uid", "seq", "type", "check", "target", "status",
                   "summary", "metrics", "details", "produced_at", "received_at")
# A result id stored before (a resend under a new batch id) is skipped, not an error.
RESULT_INSERT = BulkStatement(
    lambda conn: upsert_insert(conn, RESULTS).on_conflict_do_nothing(
        index_elements=[RESULTS.c.host_id, RESULTS.c.produced_at, RESULTS.c.result_uid]
    ),
    _RESULT_COLUMNS,
)

HOST_SEEN_PG = (
    update(HOSTS)
    .where(HOSTS.c.id == bindparam("b_id"))
    .values(last_seen_at=bindparam("b_seen"), agent_version=bindparam("b_version"),
            agent_started_at=bindparam("b_started"), expected_interval=bindparam("b_interval"))
)
_HOST_SEEN_KEYS = ("b_id", "b_seen", "b_version", "b_started", "b_interval")
_HOST_SEEN_SQLITE = (
    "UPDATE hosts SET last_seen_at = v.column2, agent_version = v.column3,"
    " agent_started_at = v.column4, expected_interval = v.column5"
    " FROM (VALUES {}) AS v WHERE hosts.id = v.column1"
)

BATCH_INSERT = BulkStatement(
    lambda _conn: BATCHES.insert(), ("host_id", "batch_id", "received_at", "result_count")
)


class PendingBatch:
    """A validated batch from an authenticated host, waiting for the writer.

    Built on the event loop right after validation: the results become the rows that will
    be stored (JSON columns already serialized) and the pydantic objects are dropped at
    once. A queued batch then holds only tuples of strings and numbers, which the garbage
    collector stops scanning; hundreds of queued pydantic batches made the full collections
    (tens of ms each, with the GIL held) the largest single cost of a push (measured).
    """

    __slots__ = ("host_id", "batch_id", "received_at", "agent", "rows")

    def __init__(self, *, host_id: int, batch: WireBatch, received_at: float) -> None:
        self.host_id = host_id
        self.batch_id = batch.batch_id
        self.received_at = received_at
        agent = batch.agent
        self.agent = (agent.version, agent.started_at, agent.interval)
        self.rows: tuple[NewResult, ...] = tuple([
            (host_id, res.id, res.seq, res.type, res.check, res.target, res.status,
             res.summary, to_json(res.metrics, exclude_none=True).decode() if res.metrics
             else "[]", to_json(res.details).decode() if res.details else "{}",
             res.produced_at, received_at)
            for res in batch.results
        ])


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What the 202 answer says about one batch."""

    batch_id: str
    accepted: int
    duplicate: bool


def check_batch(*, batch: WireBatch, host_fqdn: str, max_results: int) -> None:
    """Refuse a batch for another host, an oversized batch, or results under reserved names."""
    if batch.host != host_fqdn:
        raise Forbidden(
            f"the token belongs to host {host_fqdn!r}, the batch is for host {batch.host!r}"
        )
    if len(batch.results) > max_results:
        raise InvalidPayload(
            f"results: {len(batch.results)} results in one batch, the limit is {max_results}"
        )
    for index, result in enumerate(batch.results):
        if result.check == SILENCE_CHECK:
            raise InvalidPayload(
                f"results.{index}.check: {SILENCE_CHECK!r} is reserved for the collector"
            )


def store_batches(*, conn: Connection, pending: Sequence[PendingBatch]) -> list[StoreOutcome]:
    """Store batches in the caller's transaction; a batch id seen before is a duplicate.

    Hosts are locked first, in id order (the last_seen update takes the row lock on
    PostgreSQL), so two collectors storing for the same host serialize here and the second
    one sees the first one's batch as a duplicate instead of failing.
    """
    if not pending:
        return []
    latest: dict[int, PendingBatch] = {}
    for item in pending:
        seen = latest.get(item.host_id)
        if seen is None or item.received_at >= seen.received_at:
            latest[item.host_id] = item
    host_ids = sorted(latest)
    seen_rows = [(hid, latest[hid].received_at, *latest[hid].agent) for hid in host_ids]
    if is_postgres(conn):
        # executemany in id order: the row locks are taken in the same order everywhere
        conn.execute(HOST_SEEN_PG, [dict(zip(_HOST_SEEN_KEYS, row, strict=True))
                                    for row in seen_rows])
    else:
        # one statement for the group (SQLite holds the database lock already)
        conn.exec_driver_sql(
            _HOST_SEEN_SQLITE.format(", ".join(["(?, ?, ?, ?, ?)"] * len(seen_rows))),
            tuple(chain.from_iterable(seen_rows)),
        )
    batch_ids = list({item.batch_id for item in pending})
    stored: set[tuple[int, str]] = {(r[0], r[1]) for r in conn.exec_driver_sql(
        f"SELECT host_id, batch_id FROM batches WHERE host_id IN ({in_list(conn, len(host_ids))})"
        f" AND batch_id IN ({in_list(conn, len(batch_ids))})",
        (*host_ids, *batch_ids),
    )}
    outcomes: list[StoreOutcome] = []
    batch_rows: list[tuple[object, ...]] = []
    result_rows: list[NewResult] = []
    for item in pending:
        key = (item.host_id, item.batch_id)
        if key in stored:
            outcomes.append(StoreOutcome(item.batch_id, 0, True))
            continue
        stored.add(key)
        count = len(item.rows)
        outcomes.append(StoreOutcome(item.batch_id, count, False))
        batch_rows.append((item.host_id, item.batch_id, item.received_at, count))
        result_rows.extend(item.rows)
    BATCH_INSERT.execute(conn, batch_rows)
    RESULT_INSERT.execute(conn, result_rows)
    now = max(item.received_at for item in pending)
    apply_results(conn=conn, results=result_rows, hosts=host_ids, now=now)
    return outcomes


def prune_results(*, conn: Connection, older_than: float) -> tuple[int, int]:
    """Delete results and batch ids received before ``older_than``; return both counts.

    A batch id is kept as long as its results, so a resend within the retention is
    still recognised as a duplicate.
    """
    results = conn.execute(delete(RESULTS).where(RESULTS.c.received_at < older_than)).rowcount
    batches = conn.execute(delete(BATCHES).where(BATCHES.c.received_at < older_than)).rowcount
    return results, batches
