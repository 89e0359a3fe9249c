"""/metrics benchmark: one Prometheus scrape of a collector watching 10,000 hosts x 12 checks.

    .venv/bin/python tests/benchmarks/bench_metrics.py [--hosts 10000] [--checks 12]
                                                       [--scrapes 5] [--url URL]

Fills a store (a new SQLite file, or ``--url``, e.g. an empty PostgreSQL database) with
``--hosts`` hosts over ``--customers`` customers, each with ``--checks`` current check
states of two metrics each, every ``--failing-every``-th check WARNING, and a hard problem
with an open ticket for every ``--problem-every``-th host. The rows are inserted directly
(no pushes: only the current state matters to a scrape). Then it starts the collector
(``watchkeeper-collector serve``) on that store and times ``GET /metrics`` over HTTP on
loopback ``--scrapes`` times after one warm-up scrape. Target: median scrape <= 1 s.
It also times ``collector.ops.metrics.render_metrics`` on the same store in this process
(the text a scrape answers with, without HTTP), as the floor of a scrape.
Prints a table and one JSON line; exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import httpx  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from collector.db import create_db_engine, migrate, write_transaction  # noqa: E402
from collector.hosts.models import Customer, Host  # noqa: E402
from collector.ops.metrics import StateCollector, render_metrics  # noqa: E402
from collector.ops.support_metrics import SupportCollector  # noqa: E402
from collector.problems.models import ProblemRecord  # noqa: E402
from collector.settings import Settings  # noqa: E402
from collector.state.models import CheckState  # noqa: E402
from collector.tickets.models import Ticket  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402
from tests.support.processes import Collector  # noqa: E402

TARGET_S = 1.0
CHECKS = ("cpu", "load", "memory", "swap", "disk", "inode", "ntp", "smart", "raid", "backup",
          "firewall", "updates", "logrotate", "mail_queue", "services", "certificate")


def _rows(table: Any, rows: list[dict[str, Any]], conn: Any) -> None:
    for start in range(0, len(rows), 5000):
        conn.execute(insert(table), rows[start:start + 5000])


def fill(url: str, *, hosts: int, checks: int, customers: int, failing_every: int,
         problem_every: int, now: float) -> dict[str, int]:
    """Write the store's current state directly; the counts of what was written."""
    settings = Settings.model_validate({"database": {"url": url}})
    engine = create_db_engine(settings)
    migrate(engine)
    counts = {"hosts": hosts, "check_states": 0, "tickets": 0}
    try:
        with write_transaction(engine) as conn:
            _rows(Customer.__table__, [{"id": c + 1, "name": f"customer{c:03d}",
                                         "created_at": now} for c in range(customers)], conn)
            _rows(Host.__table__, [{
                "id": h + 1, "customer_id": h % customers + 1,
                "fqdn": f"host{h:05d}.customer{h % customers:03d}.example.net",
                "token_hash": f"{h:064x}", "enrolled_at": now - 86400, "last_seen_at": now - 30,
                "agent_version": "0.1.0", "agent_started_at": now - 3600,
                "expected_interval": 60.0, "critical": False, "tags": [],
            } for h in range(hosts)], conn)
            states: list[dict[str, Any]] = []
            for h in range(hosts):
                for c in range(checks):
                    status = 1 if (h * checks + c) % failing_every == 0 else 0
                    states.append({
                        "host_id": h + 1, "check": CHECKS[c % len(CHECKS)],
                        "target": f"t{c // len(CHECKS)}", "type": CHECKS[c % len(CHECKS)],
                        "status": status, "summary": "benchmark state",
                        "metrics": [{"name": "used_ratio", "value": 0.42, "unit": ""},
                                    {"name": "free_bytes", "value": 1e9 + h, "unit": "B"}],
                        "details": {}, "last_result_at": now - 30, "last_change_at": now - 600,
                        "previous_status": None, "results_count": 10, "history": "0" * 10,
                        "dirty": False,
                    })
            _rows(CheckState.__table__, states, conn)
            counts["check_states"] = len(states)
            tickets, records = [], []
            for number, h in enumerate(range(0, hosts, problem_every), 1):
                customer = f"customer{h % customers:03d}"
                fqdn = f"host{h:05d}.{customer}.example.net"
                tickets.append({
                    "id": number, "live_key": f"{customer}|{fqdn}|cpu|t0",
                    "customer_id": h % customers + 1, "host_id": h + 1, "host": fqdn,
                    "check": "cpu", "target": "t0", "check_type": "cpu", "subject": "cpu",
                    "priority": ("P1", "P2", "P3", "P4")[number % 4], "priority_reason": "",
                    "state": "new", "status": 2, "flapping": False, "created_at": now - 600,
                    "updated_at": now - 600, "clock_started_at": now - 600,
                    "first_response_due": now + 3000 - number, "next_update_due": now + 7200,
                    "worked": False,
                })
                records.append({
                    "customer": customer, "host": fqdn, "check": "cpu", "target": "t0",
                    "check_type": "cpu", "folded": 10, "ticket_id": number, "reported": True,
                    "updated_at": now - 30,
                    "state": {"state_type": "hard", "flapping": number % 10 == 0},
                })
            _rows(Ticket.__table__, tickets, conn)
            _rows(ProblemRecord.__table__, records, conn)
            counts["tickets"] = len(tickets)
    finally:
        engine.dispose()
    return counts


def scrape_times(collector: Collector, scrapes: int) -> tuple[list[float], int, int]:
    """Seconds of each timed scrape (after one warm-up), the body's bytes and lines."""
    with httpx.Client(base_url=collector.url, timeout=60) as client:
        body = client.get("/metrics")
        body.raise_for_status()
        times = []
        for _ in range(scrapes):
            started = time.perf_counter()
            answer = client.get("/metrics")
            times.append(time.perf_counter() - started)
            answer.raise_for_status()
    return times, len(answer.content), answer.text.count("\n")


def render_times(url: str, scrapes: int) -> list[float]:
    """Seconds of ``render_metrics`` on the app's collectors, in this process."""
    settings = Settings.model_validate({"database": {"url": url}})
    engine = create_db_engine(settings)
    registry = CollectorRegistry()
    registry.register(StateCollector(engine))
    registry.register(SupportCollector(engine, time.time))
    times = []
    try:
        render_metrics(registry)
        for _ in range(scrapes):
            started = time.perf_counter()
            render_metrics(registry)
            times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return times


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=12, help="check states per host")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--failing-every", type=int, default=50,
                        help="every n-th check state is WARNING")
    parser.add_argument("--problem-every", type=int, default=20,
                        help="every n-th host has a hard problem with a ticket")
    parser.add_argument("--scrapes", type=int, default=5, help="timed scrapes")
    parser.add_argument("--url", help="an empty store to fill instead of a new SQLite file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wk-bench-metrics-") as tmp:
        workdir = Path(tmp)
        url = args.url or f"sqlite:///{workdir / 'collector.db'}"
        started = time.perf_counter()
        counts = fill(url, hosts=args.hosts, checks=args.checks, customers=args.customers,
                      failing_every=args.failing_every, problem_every=args.problem_every,
                      now=time.time())
        fill_s = time.perf_counter() - started
        rendered = render_times(url, args.scrapes)
        collector = Collector(workdir, database_url=url).start(timeout=120)
        try:
            times, size, lines = scrape_times(collector, args.scrapes)
        finally:
            collector.stop()
    median = statistics.median(times)
    report: dict[str, object] = {
        "benchmark": "metrics", "store": url.split(":", 1)[0], **counts,
        "fill_s": round(fill_s, 2), "scrape_s": [round(t, 3) for t in times],
        "median_scrape_s": round(median, 3),
        "render_s": [round(t, 3) for t in rendered],
        "median_render_s": round(statistics.median(rendered), 3), "bytes": size, "lines": lines,
        "targets": {"median_scrape_s": TARGET_S},
    }
    print(f"{'hosts':>8}{'check states':>14}{'tickets':>9}{'lines':>10}{'MB':>7}"
          f"{'median s':>10}{'max s':>8}")
    print(f"{counts['hosts']:>8}{counts['check_states']:>14}{counts['tickets']:>9}{lines:>10}"
          f"{size / 1e6:>7.1f}{median:>10.3f}{max(times):>8.3f}")
    print(f"median render_metrics in process: {statistics.median(rendered):.3f} s")
    print(f"median /metrics scrape: {median:.3f} s (target <= {TARGET_S:g} s)")
    return finish(report, {"median_scrape_s": median <= TARGET_S})


if __name__ == "__main__":
    sys.exit(exit_code(main()))
