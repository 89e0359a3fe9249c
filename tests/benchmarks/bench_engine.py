"""Ticket engine benchmark: what one pass costs the store and the collector's process.

    .venv/bin/python tests/benchmarks/bench_engine.py [--hosts 100] [--checks 12] [--passes 5]
                                                      [--results 1]

Builds a store on SQLite (or ``--url``, e.g. a PostgreSQL database to use up) with
``--hosts`` hosts of ``--checks`` checks each, every ``--failing-every``-th check WARNING
(100 x 12 / 5: 300 failing check states). Before each measured pass every host pushes one
more result per check, as the ingest benchmark's agents do between two passes of the
engine, so each pass folds a new result into every failing row (``--results 50``: as
many as the ingest benchmark's 1,000 pushes/s bring in the engine's 5 s). The first passes open the
tickets and are not measured. A steady pass is measured for: its wall time, the CPU time
of the thread running it (the collector runs the engine in a worker thread of its HTTP
process), the time it holds the store's write lock (all its write transactions together,
and the longest one: what an ingest commit can wait for) and its SQL statements. Then a
quiet pass (no new result, nothing due) must take no write transaction at all.
Targets: median write-lock time of a steady pass < 100 ms, longest write transaction
< 20 ms, no write transaction in a quiet pass. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sqlalchemy import Connection, Engine, event  # noqa: E402

from collector.db import create_db_engine, migrate, session_factory, write_transaction  # noqa: E402
from collector.hosts.service import enroll  # noqa: E402
from collector.policy import build_policy  # noqa: E402
from collector.problems import engine as ticket_engine  # noqa: E402
from collector.settings import Settings  # noqa: E402
from collector.state.service import apply_results  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402

TARGET_LOCK_MS = 100.0
TARGET_LONGEST_MS = 20.0


class _Meter:
    """Write transactions of the engine (count, time held) and SQL statements, per pass."""

    def __init__(self, engine: Engine) -> None:
        self.holds: list[float] = []
        self.statements = 0
        event.listen(engine, "before_cursor_execute", self._count)
        self._original = ticket_engine.engine_transaction

        @contextmanager
        def timed(bound: Engine) -> Iterator[Connection]:
            started = time.perf_counter()
            try:
                with self._original(bound) as conn:
                    yield conn
            finally:
                self.holds.append(time.perf_counter() - started)

        ticket_engine.engine_transaction = timed  # type: ignore[assignment]

    def _count(self, *_args: Any) -> None:
        self.statements += 1

    def reset(self) -> None:
        self.holds, self.statements = [], 0

    def close(self) -> None:
        ticket_engine.engine_transaction = self._original


def _push(engine: Engine, host_ids: list[int], args: argparse.Namespace, seq: Iterator[int],
          now: float) -> None:
    for n in range(args.results):
        at = now - args.results + n + 1
        rows = []
        for host_id in host_ids:
            for i in range(args.checks):
                status = 1 if i % args.failing_every == 0 else 0
                rows.append((host_id, str(uuid.uuid4()), next(seq), "disk", "disk", f"/m{i}",
                             status, "used 91%" if status else "used 40%", "[]", "{}", at, at))
        with write_transaction(engine) as conn:
            apply_results(conn=conn, results=rows, hosts=host_ids, now=at)


def _pass(engine: Engine, settings: Settings, meter: _Meter, now: float) -> dict[str, Any]:
    policy = build_policy(settings)
    meter.reset()
    wall, cpu = time.perf_counter(), time.thread_time()
    report = ticket_engine.run_once(engine=engine, policy=policy, settings=settings, now=now)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    holds = meter.holds
    return {"wall_ms": round(wall * 1000, 1), "cpu_ms": round(cpu * 1000, 1),
            "lock_ms": round(sum(holds) * 1000, 1),
            "longest_ms": round(max(holds, default=0.0) * 1000, 1),
            "transactions": len(holds), "statements": meter.statements,
            "results": report.results, "opened": len(report.opened)}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--checks", type=int, default=12, help="checks per host")
    parser.add_argument("--failing-every", type=int, default=5,
                        help="every n-th check of a host is WARNING")
    parser.add_argument("--passes", type=int, default=5, help="steady passes measured")
    parser.add_argument("--results", type=int, default=1,
                        help="results per check pushed before each pass")
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        url = args.url or f"sqlite:///{tmp}/store.db"
        settings = Settings.model_validate({"database": {"url": url}})
        engine = create_db_engine(settings)
        migrate(engine)
        with session_factory(engine)() as session:
            for i in range(args.hosts):
                enroll(session=session, customer="bench", fqdn=f"bench{i:03d}.example.net",
                       critical=False, rotate=False, now=1_000.0)
        with engine.connect() as conn:
            host_ids = sorted(int(r[0]) for r in conn.exec_driver_sql("SELECT id FROM hosts"))
        meter = _Meter(engine)
        seq, now = count(1), 1_790_000_000.0 + args.results
        try:
            for _ in range(3):  # soft, hard (tickets open), first update
                _push(engine, host_ids, args, seq, now)
                now += args.results + 10
                _pass(engine, settings, meter, now)
            steady = []
            for _ in range(args.passes):
                _push(engine, host_ids, args, seq, now)
                now += args.results + 10
                steady.append(_pass(engine, settings, meter, now))
            now += args.results + 10
            quiet = _pass(engine, settings, meter, now)
        finally:
            meter.close()
            engine.dispose()

    failing = sum(1 for i in range(args.checks) if i % args.failing_every == 0) * args.hosts

    def median(name: str) -> float:
        return float(statistics.median(p[name] for p in steady))

    report: dict[str, object] = {
        "benchmark": "engine", "hosts": args.hosts, "checks": args.checks,
        "results_per_pass": args.results,
        "failing_rows": failing, "steady": steady, "quiet": quiet,
        "lock_ms": median("lock_ms"), "longest_ms": max(p["longest_ms"] for p in steady),
        "cpu_ms": median("cpu_ms"), "wall_ms": median("wall_ms"),
        "targets": {"lock_ms": TARGET_LOCK_MS, "longest_ms": TARGET_LONGEST_MS,
                    "quiet_transactions": 0}}
    columns = ("wall_ms", "cpu_ms", "lock_ms", "longest_ms", "transactions", "statements",
               "results")
    print(f"{'pass':10}" + "".join(f"{c:>14}" for c in columns))
    for number, figures in enumerate(steady, 1):
        print(f"{'steady ' + str(number):10}" + "".join(f"{figures[c]:>14}" for c in columns))
    print(f"{'quiet':10}" + "".join(f"{quiet[c]:>14}" for c in columns))
    print(f"{failing} failing check states with {args.results} new result(s) each; "
          f"median write lock "
          f"{report['lock_ms']} ms (target < {TARGET_LOCK_MS:g}), longest transaction "
          f"{report['longest_ms']} ms (target < {TARGET_LONGEST_MS:g}), quiet pass "
          f"{quiet['transactions']} write transactions (target 0)")
    return finish(report, {"lock_ms": report["lock_ms"] < TARGET_LOCK_MS,  # type: ignore[operator]
                           "longest_ms": report["longest_ms"] < TARGET_LONGEST_MS,  # type: ignore[operator]
                           "quiet": quiet["transactions"] == 0})


if __name__ == "__main__":
    sys.exit(exit_code(main()))
