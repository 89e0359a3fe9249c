"""The durable spool: results wait here, on disk, until the collector has stored them.

One SQLite file (WAL, ``synchronous=FULL``) under the spool directory. ``add`` writes a
result, its per-agent ``seq`` and the produced counter in one transaction, so a result
counts as produced only once it is on disk, and a SIGKILL right after loses nothing.

Batches: ``take_batch`` first returns a batch that was formed but never acknowledged (the
rows keep their ``batch_id`` across restarts, so a resend carries the same id); otherwise
it gives the oldest unassigned rows a new ``batch_id``. ``ack`` deletes a batch's rows.

Bounds, enforced on every ``add`` inside the same transaction:

1. age: rows older than ``max_age`` are dropped. Rows of a batch in flight are kept
   while any row of that batch is younger; once all are expired the whole batch goes.
2. size (sum of the JSON payload sizes over ``max_bytes``): routine results
   (``status_changed`` false) go first, oldest first; then status changes, oldest first;
   a batch in flight is dropped only when nothing else is left to drop, and then whole,
   so that a resend of a ``batch_id`` never carries other content than its first send.

Each dropped row is counted by reason in persisted counters. Rows the collector refused
for good (HTTP 413/422 on a single result) move to the ``rejected`` table, are counted,
and are kept for ``max_age`` for inspection; nothing leaves the spool uncounted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.result import CheckResult

SPOOL_FILE = "spool.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    produced_at REAL NOT NULL,
    type TEXT NOT NULL,
    check_name TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    status_changed INTEGER NOT NULL,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    batch_id TEXT
);
CREATE INDEX IF NOT EXISTS results_batch ON results (batch_id);
CREATE INDEX IF NOT EXISTS results_produced ON results (produced_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS last_status (
    check_name TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    PRIMARY KEY (check_name, target)
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    produced_at REAL NOT NULL,
    check_name TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    batch_id TEXT,
    http_status INTEGER,
    reason TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
"""

_COUNTERS = ("next_seq", "produced_total", "dropped_age", "dropped_size", "rejected_total")


@dataclass(frozen=True)
class Spooled:
    """What ``add`` wrote: the result's identity and whether its status changed."""

    id: str
    seq: int
    status_changed: bool


@dataclass(frozen=True)
class Batch:
    """Results to push together under one ``batch_id`` (wire dicts, oldest first)."""

    batch_id: str
    results: tuple[dict[str, Any], ...]

    @property
    def seqs(self) -> tuple[int, ...]:
        """The ``seq`` of each result."""
        return tuple(int(r["seq"]) for r in self.results)


@dataclass(frozen=True)
class SpoolStats:
    """Figures for the agent self-check and the logs."""

    depth: int
    bytes: int
    oldest_age: float | None
    in_flight: int
    produced_total: int
    dropped_age: int
    dropped_size: int
    rejected_total: int

    @property
    def dropped_total(self) -> int:
        """Results dropped for age or size, together."""
        return self.dropped_age + self.dropped_size


class Spool:
    """Durable, bounded, thread-safe queue of results in one SQLite file."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 50_000_000,
        max_age: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: new_uuid4(),
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / SPOOL_FILE
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._new_id = new_id
        self._lock = threading.Lock()
        self.status_changed = threading.Event()
        """Set whenever a result with a changed status was added; the sender waits on it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-512")  # KiB; the spool is read in order, once
        self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            for name in _COUNTERS:
                db.execute(
                    "INSERT OR IGNORE INTO counters (name, value) VALUES (?, ?)",
                    (name, 1 if name == "next_seq" else 0),
                )
        self._depth, self._bytes = self._totals()

    # -- producing -------------------------------------------------------------------------

    def add(
        self,
        result: CheckResult,
        *,
        type_name: str,
        duration: float = 0.0,
        produced_at: float | None = None,
    ) -> Spooled:
        """Write ``result`` durably; it counts as produced when this returns."""
        status = int(result.status)
        with self._lock, self._transaction() as db:
            now = self._clock()
            when = now if produced_at is None else produced_at
            seq = self._counter(db, "next_seq")
            self._bump(db, "next_seq")
            previous = db.execute(
                "SELECT status FROM last_status WHERE check_name = ? AND target = ?",
                (result.check, result.target),
            ).fetchone()
            changed = previous is None or previous[0] != status
            if changed:
                db.execute(
                    "INSERT OR REPLACE INTO last_status (check_name, target, status) "
                    "VALUES (?, ?, ?)",
                    (result.check, result.target, status),
                )
            result_id = self._new_id()
            wire = {
                "id": result_id,
                "seq": seq,
                "type": type_name,
                **result.to_wire(),
                "produced_at": when,
                "duration": round(duration, 6),
                "status_changed": changed,
            }
            payload = json.dumps(wire, separators=(",", ":"), default=str)
            size = len(payload.encode())
            db.execute(
                "INSERT INTO results (seq, id, produced_at, type, check_name, target, status, "
                "status_changed, payload, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, result_id, when, type_name, result.check, result.target, status,
                 int(changed), payload, size),
            )
            self._bump(db, "produced_total")
            self._depth += 1
            self._bytes += size
            self._enforce_bounds(db, now)
        if changed:
            self.status_changed.set()
        return Spooled(result_id, seq, changed)

    # -- pushing ---------------------------------------------------------------------------

    def take_batch(self, max_results: int, max_bytes: int | None = None) -> Batch | None:
        """The unacknowledged batch if there is one, else a new one of the oldest rows."""
        with self._lock, self._transaction() as db:
            pending = db.execute(
                "SELECT batch_id FROM results WHERE batch_id IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if pending is not None:
                batch_id = str(pending[0])
                rows = db.execute(
                    "SELECT payload FROM results WHERE batch_id = ? ORDER BY seq", (batch_id,)
                ).fetchall()
                return Batch(batch_id, tuple(json.loads(r[0]) for r in rows))
            chosen: list[tuple[int, str]] = []
            total = 0
            for seq, size, payload in db.execute(
                "SELECT seq, size, payload FROM results WHERE batch_id IS NULL "
                "ORDER BY seq LIMIT ?",
                (max(1, max_results),),
            ):
                if chosen and max_bytes is not None and total + size > max_bytes:
                    break
                chosen.append((seq, payload))
                total += size
            if not chosen:
                return None
            batch_id = self._new_id()
            db.execute(
                "UPDATE results SET batch_id = ? WHERE batch_id IS NULL AND seq <= ?",
                (batch_id, chosen[-1][0]),
            )
            return Batch(batch_id, tuple(json.loads(p) for _, p in chosen))

    def ack(self, batch_id: str) -> int:
        """The collector stored ``batch_id``: delete its rows; returns how many."""
        with self._lock, self._transaction() as db:
            return self._delete(db, "batch_id = ?", (batch_id,))

    def split(self, batch_id: str) -> bool:
        """Halve a batch the collector refused as a whole (it stored none of it).

        The older half becomes a batch of its own under a new id; the newer half goes
        back to the queue. Returns False when the batch has one result and cannot split.
        """
        with self._lock, self._transaction() as db:
            seqs = [r[0] for r in db.execute(
                "SELECT seq FROM results WHERE batch_id = ? ORDER BY seq", (batch_id,)
            )]
            if len(seqs) <= 1:
                return False
            keep = seqs[: len(seqs) // 2]
            db.execute(
                "UPDATE results SET batch_id = ? WHERE batch_id = ? AND seq <= ?",
                (self._new_id(), batch_id, keep[-1]),
            )
            db.execute("UPDATE results SET batch_id = NULL WHERE batch_id = ?", (batch_id,))
            return True

    def reject(self, batch_id: str, *, http_status: int | None, reason: str) -> int:
        """Move a batch the collector refused for good to the ``rejected`` table."""
        with self._lock, self._transaction() as db:
            now = self._clock()
            db.execute(
                "INSERT OR REPLACE INTO rejected (seq, id, produced_at, check_name, target, "
                "payload, batch_id, http_status, reason, rejected_at) "
                "SELECT seq, id, produced_at, check_name, target, payload, batch_id, ?, ?, ? "
                "FROM results WHERE batch_id = ?",
                (http_status, reason[:2000], now, batch_id),
            )
            moved = self._delete(db, "batch_id = ?", (batch_id,))
            self._bump(db, "rejected_total", moved)
            db.execute("DELETE FROM rejected WHERE rejected_at < ?", (now - self.max_age,))
            return moved

    def rejected(self) -> list[dict[str, Any]]:
        """The rows the collector refused, oldest first, with the reason."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload, http_status, reason, rejected_at FROM rejected ORDER BY seq"
            ).fetchall()
        return [
            {"result": json.loads(p), "http_status": s, "reason": r, "rejected_at": t}
            for p, s, r, t in rows
        ]

    # -- figures ---------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        """Depth, bytes, age of the oldest row and the persisted counters."""
        with self._lock:
            return _read_stats(self._db, self._clock(), self._depth, self._bytes)

    def __len__(self) -> int:
        with self._lock:
            return self._depth

    def close(self) -> None:
        """Close the database; rows not acknowledged stay for the next start."""
        with self._lock:
            self._db.close()

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            self._depth, self._bytes = self._totals()
            raise
        db.execute("COMMIT")

    def _totals(self) -> tuple[int, int]:
        depth, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM results"
        ).fetchone()
        return int(depth), int(size)

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        return int(db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0])

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int = 1) -> None:
        if by:
            db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (by, name))

    def _delete(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> int:
        count, size = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM results WHERE {where}", args
        ).fetchone()
        if count:
            db.execute(f"DELETE FROM results WHERE {where}", args)
            self._depth -= int(count)
            self._bytes -= int(size)
        return int(count)

    def _enforce_bounds(self, db: sqlite3.Connection, now: float) -> None:
        cutoff = now - self.max_age
        expired = self._delete(db, "batch_id IS NULL AND produced_at < ?", (cutoff,))
        for (batch_id,) in db.execute(
            "SELECT batch_id FROM results WHERE batch_id IS NOT NULL GROUP BY batch_id "
            "HAVING MAX(produced_at) < ?",
            (cutoff,),
        ).fetchall():
            expired += self._delete(db, "batch_id = ?", (batch_id,))
        self._bump(db, "dropped_age", expired)
        if self._bytes <= self.max_bytes:
            return
        dropped = 0
        for changed in (0, 1):
            excess = self._bytes - self.max_bytes
            if excess <= 0:
                break
            freed, last = 0, None
            for seq, size in db.execute(
                "SELECT seq, size FROM results WHERE batch_id IS NULL AND status_changed = ? "
                "ORDER BY seq",
                (changed,),
            ):
                freed += size
                last = seq
                if freed >= excess:
                    break
            if last is not None:
                dropped += self._delete(
                    db, "batch_id IS NULL AND status_changed = ? AND seq <= ?", (changed, last)
                )
        while self._bytes > self.max_bytes:
            oldest = db.execute(
                "SELECT batch_id FROM results WHERE batch_id IS NOT NULL ORDER BY seq LIMIT 1"
            ).fetchone()
            if oldest is None:
                break
            dropped += self._delete(db, "batch_id = ?", (oldest[0],))
        self._bump(db, "dropped_size", dropped)


def new_uuid4() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())``.

    Not ``uuid`` itself: it loads ``platform`` and a C extension, a quarter of a megabyte
    of resident memory on every agent for one function.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def peek_stats(directory: str | Path, clock: Callable[[], float] = time.time) -> SpoolStats | None:
    """Figures of a spool another process owns, read-only; None when there is no spool."""
    path = Path(directory) / SPOOL_FILE
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return None
    try:
        depth, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM results"
        ).fetchone()
        return _read_stats(db, clock(), int(depth), int(size))
    except sqlite3.Error:
        return None
    finally:
        db.close()


def _read_stats(db: sqlite3.Connection, now: float, depth: int, size: int) -> SpoolStats:
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    oldest = db.execute("SELECT MIN(produced_at) FROM results").fetchone()[0]
    in_flight = db.execute(
        "SELECT COUNT(*) FROM results WHERE batch_id IS NOT NULL"
    ).fetchone()[0]
    return SpoolStats(
        depth=depth,
        bytes=size,
        oldest_age=None if oldest is None else max(0.0, now - float(oldest)),
        in_flight=int(in_flight),
        produced_total=int(counters.get("produced_total", 0)),
        dropped_age=int(counters.get("dropped_age", 0)),
        dropped_size=int(counters.get("dropped_size", 0)),
        rejected_total=int(counters.get("rejected_total", 0)),
    )
