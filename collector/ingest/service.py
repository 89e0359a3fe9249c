"""The rules of a push: who may push what, and storing a group of batches in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import cast

from pydantic_core import to_json
from sqlalchemy import Connection, Table, bindparam, delete, update

from collector.db import BulkStatement, is_postgres, upsert_insert
from collector.errors import Forbidden, InvalidPayload
from collector.hosts.models import Host
from collector.ingest.body import parse_batch
from collector.ingest.models import Result, WireBatch
from collector.state.models import SILENCE_CHECK
from collector.state.service import NewResult, apply_results

RESULTS = cast(Table, Result.__table__)
HOSTS = cast(Table, Host.__table__)


_RESULT_COLUMNS = ("host_id", "result_uid", "seq", "type", "check", "target", "status",
                   "summary", "metrics", "details", "produced_at", "received_at")
# A result stored before (a resend) is skipped, not an error; the ids of the results
# actually inserted come back, which is how a resend is told from a new batch.
RESULT_INSERT = BulkStatement(
    lambda conn: upsert_insert(conn, RESULTS).on_conflict_do_nothing(
        index_elements=[RESULTS.c.produced_at, RESULTS.c.host_id, RESULTS.c.result_uid]
    ),
    _RESULT_COLUMNS,
    returning=("host_id", "result_uid"),
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


class PendingBatch:
    """A validated batch from an authenticated host, ready to be stored.

    Built in the HTTP process right after validation: the results become the rows that
    will be stored (JSON columns already serialized) and the pydantic objects are dropped
    at once. A waiting batch then holds only tuples of strings and numbers, which the
    garbage collector stops scanning and which cross to the store process cheaply.
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

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _restore, (self.host_id, self.batch_id, self.received_at, self.agent, self.rows)


def _restore(host_id: int, batch_id: str, received_at: float,
             agent: tuple[str, float | None, float | None],
             rows: tuple[NewResult, ...]) -> PendingBatch:
    """A PendingBatch from its pickled fields (the store process's side)."""
    pending = PendingBatch.__new__(PendingBatch)
    pending.host_id, pending.batch_id, pending.received_at = host_id, batch_id, received_at
    pending.agent, pending.rows = agent, rows
    return pending


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What the 202 answer says about one batch."""

    batch_id: str
    accepted: int
    duplicate: bool


def validated(
    body: bytes, *, host_id: int, host_fqdn: str, max_results: int, received_at: float
) -> PendingBatch:
    """The JSON body parsed and checked: InvalidPayload (422) or Forbidden (403).

    Nothing of the parsed pydantic batch outlives this call, only the PendingBatch.
    """
    batch = parse_batch(body)
    check_batch(batch=batch, host_fqdn=host_fqdn, max_results=max_results)
    return PendingBatch(host_id=host_id, batch=batch, received_at=received_at)


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
    """Store batches in the caller's transaction; a batch whose results are all stored
    already is a duplicate (a resend), and a result is never stored twice.

    Duplicates are recognised by the results themselves, keyed (produced_at, host, result
    id): a resend under the same or another batch id, a batch sent twice in one group, or
    two collectors storing the same batch at once all store each result exactly once.
    (An earlier design also kept a table of batch ids; it cost a quarter of every commit's
    writes and an extra lookup, and proved nothing the result keys do not.)

    Hosts are locked first, in id order (the last_seen update takes the row lock on
    PostgreSQL), so two collectors storing for the same host serialize here.
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
    rows = [row for item in pending for row in item.rows]
    inserted = set(RESULT_INSERT.execute(conn, rows))
    if len(inserted) == len(rows):
        outcomes = [StoreOutcome(item.batch_id, len(item.rows), False) for item in pending]
        stored = rows
    else:
        outcomes, stored = [], []
        for item in pending:
            new = []
            for row in item.rows:
                key = (row[0], row[1])
                if key in inserted:
                    inserted.discard(key)  # a second copy in this group is a duplicate
                    new.append(row)
            outcomes.append(StoreOutcome(item.batch_id, len(new), bool(item.rows) and not new))
            stored.extend(new)
    now = max(item.received_at for item in pending)
    apply_results(conn=conn, results=stored, hosts=host_ids, now=now)
    return outcomes


def prune_results(*, conn: Connection, older_than: float) -> int:
    """Delete results received before ``older_than``; return how many.

    A resend is recognised as long as its results are kept: the agent's spool must not
    hold results longer than this retention (its default maximum age is far shorter).
    """
    return int(conn.execute(delete(RESULTS).where(RESULTS.c.received_at < older_than)).rowcount)
