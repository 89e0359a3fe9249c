"""/metrics and dashboard benchmark: a collector watching 10,000 hosts x 12 checks.

    .venv/bin/python tests/benchmarks/bench_metrics.py [--hosts 10000] [--checks 12]
                                                       [--scrapes 5] [--url URL]

Fills a store (a new SQLite file, or ``--url``, e.g. an empty PostgreSQL database) with
``--hosts`` hosts over ``--customers`` customers, each with ``--checks`` current check
states of two metrics each: every ``--failing-every``-th check WARNING, every
``--unknown-every``-th UNKNOWN, every ``--silent-every``-th host silent, and for every
``--problem-every``-th host a CRITICAL problem with an active ticket (new, open or stalled,
some of their SLA clocks past due) and two resolved ones before it. The rows are inserted
directly (no pushes: only the current state matters to a scrape or a page). Then it starts
the collector (``watchkeeper-collector serve``) on that store and, over HTTP on loopback,
after one warm-up request each:

- times ``GET /metrics`` ``--scrapes`` times;
- logs in to the dashboard as a NOC user and times the first page of ``/`` (the
  overview), ``/problems`` and ``/hosts``, ``--scrapes`` times each.

Targets: median /metrics scrape <= 1 s; median of each dashboard page <= 1 s.
It also times ``collector.ops.metrics.render_metrics`` on the same store in this process
(the text a scrape answers with, without HTTP), as the floor of a scrape.
Prints a table and one JSON line; exits 1 when a target is missed.
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
from collector.people.service import create_user  # noqa: E402
from collector.problems.keys import ProblemKey  # noqa: E402
from collector.problems.models import ProblemRecord  # noqa: E402
from collector.settings import Settings  # noqa: E402
from collector.state.models import CheckState  # noqa: E402
from collector.tickets.models import Ticket  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402
from tests.support.processes import Collector  # noqa: E402

TARGET_S = 1.0
PAGE_TARGET_S = 1.0
PAGES = {"overview": "/", "problems": "/problems", "hosts": "/hosts"}
NOC_USER, NOC_PASSWORD = "bench-noc", "bench password"
CHECKS = ("cpu", "load", "memory", "swap", "disk", "inode", "ntp", "smart", "raid", "backup",
          "firewall", "updates", "logrotate", "mail_queue", "services", "certificate")


def _rows(table: Any, rows: list[dict[str, Any]], conn: Any) -> None:
    for start in range(0, len(rows), 5000):
        conn.execute(insert(table), rows[start:start + 5000])


def fill(url: str, *, hosts: int, checks: int, customers: int, failing_every: int,
         problem_every: int, now: float, unknown_every: int = 500,
         silent_every: int = 200) -> dict[str, int]:
    """Write the store's current state directly; the counts of what was written."""
    settings = Settings.model_validate({"database": {"url": url}})
    engine = create_db_engine(settings)
    migrate(engine)
    counts = {"hosts": hosts, "check_states": 0, "problems": 0, "silent_hosts": 0,
              "tickets": 0, "resolved_tickets": 0}
    problem_hosts = set(range(0, hosts, problem_every))
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
                    n = h * checks + c
                    status = (2 if c == 0 and h in problem_hosts
                              else 3 if n % unknown_every == 0
                              else 1 if n % failing_every == 0 else 0)
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
            for h in range(silent_every // 2, hosts, silent_every):
                states.append({
                    "host_id": h + 1, "check": "collector", "target": "silence",
                    "type": "silence", "status": 2, "summary": "no push for 12m",
                    "metrics": [], "details": {}, "last_result_at": now - 120,
                    "last_change_at": now - 120, "previous_status": 0, "results_count": 1,
                    "history": "2", "dirty": False,
                })
                counts["silent_hosts"] += 1
            _rows(CheckState.__table__, states, conn)
            counts["check_states"] = len(states)
            counts["problems"] = sum(1 for state in states if state["status"] != 0)
            create_user(conn, name=NOC_USER, role="noc", password=NOC_PASSWORD, now=now)
            tickets, records = [], []
            number = 0
            for h in sorted(problem_hosts):
                customer = f"customer{h % customers:03d}"
                fqdn = f"host{h:05d}.{customer}.example.net"
                for age in (3, 2):  # the host's earlier problems, resolved days ago
                    number += 1
                    tickets.append(_ticket(number, None, h, h % customers + 1, fqdn,
                                           now - age * 86400, state="resolved"))
                    counts["resolved_tickets"] += 1
                number += 1
                counts["tickets"] += 1
                kind = counts["tickets"] % 10
                key = str(ProblemKey(customer, fqdn, "cpu", "t0"))
                state = "stalled" if kind == 9 else "open" if kind >= 5 else "new"
                tickets.append(_ticket(number, key, h, h % customers + 1, fqdn,
                                       now - 600 - 60 * kind, state=state))
                records.append({
                    "customer": customer, "host": fqdn, "check": "cpu", "target": "t0",
                    "check_type": "cpu", "folded": 10, "ticket_id": number, "reported": True,
                    "updated_at": now - 30,
                    "state": {"state_type": "hard", "flapping": number % 10 == 0},
                })
            _rows(Ticket.__table__, tickets, conn)
            _rows(ProblemRecord.__table__, records, conn)
    finally:
        engine.dispose()
    return counts


def _ticket(number: int, key: str | None, h: int, customer_id: int, fqdn: str,
            opened: float, *, state: str) -> dict[str, Any]:
    """A ticket row: ``new`` has its first-response clock running (every seventh past
    due), ``open`` was answered and runs its update clock, ``stalled`` stopped it."""
    priority = ("P1", "P2", "P3", "P4")[number % 4]
    answered = state in ("open", "stalled", "resolved")
    return {
        "id": number, "live_key": key, "customer_id": customer_id,
        "host_id": h + 1, "host": fqdn, "check": "cpu", "target": "t0", "check_type": "cpu",
        "subject": f"{fqdn}: cpu t0 CRITICAL: benchmark", "priority": priority,
        "priority_reason": "", "state": state, "status": 0 if state == "resolved" else 2,
        "flapping": False, "created_at": opened, "updated_at": opened,
        "clock_started_at": opened,
        "first_response_due": opened + (300 if number % 7 == 0 else 3600 + number),
        "first_response_at": opened + 200 if answered else None,
        "last_update_at": opened + 200 if answered else None,
        "next_update_due": opened + 7200 + number if state == "open" else None,
        "stalled_since": opened + 300 if state == "stalled" else None,
        "update_left": 3600.0 if state == "stalled" else None,
        "resolved_at": opened + 3600 if state == "resolved" else None,
        "worked": answered,
    }


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


def page_times(collector: Collector, rounds: int) -> dict[str, list[float]]:
    """Seconds of each timed GET of each dashboard page (after one warm-up each), logged
    in as the NOC user, as a browser asks for a page."""
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=collector.url, timeout=60,
                      headers={"Accept": "text/html"}) as client:
        login = client.post("/login", data={"name": NOC_USER, "password": NOC_PASSWORD})
        if login.status_code != 303:
            raise SystemExit(f"dashboard login failed: {login.status_code} {login.text[:200]}")
        for name, path in PAGES.items():
            answer = client.get(path)
            answer.raise_for_status()
            if "data-problem" not in answer.text and "data-host-row" not in answer.text:
                raise SystemExit(f"{path} shows no problem and no host: not a real page")
            times[name] = []
            for _ in range(rounds):
                started = time.perf_counter()
                answer = client.get(path)
                times[name].append(time.perf_counter() - started)
                answer.raise_for_status()
    return times


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
    parser.add_argument("--unknown-every", type=int, default=500,
                        help="every n-th check state is UNKNOWN")
    parser.add_argument("--silent-every", type=int, default=200,
                        help="every n-th host is silent")
    parser.add_argument("--problem-every", type=int, default=20,
                        help="every n-th host has a CRITICAL problem with an active ticket")
    parser.add_argument("--scrapes", type=int, default=5,
                        help="timed scrapes, and timed requests of each dashboard page")
    parser.add_argument("--url", help="an empty store to fill instead of a new SQLite file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wk-bench-metrics-") as tmp:
        workdir = Path(tmp)
        url = args.url or f"sqlite:///{workdir / 'collector.db'}"
        started = time.perf_counter()
        counts = fill(url, hosts=args.hosts, checks=args.checks, customers=args.customers,
                      failing_every=args.failing_every, problem_every=args.problem_every,
                      unknown_every=args.unknown_every, silent_every=args.silent_every,
                      now=time.time())
        fill_s = time.perf_counter() - started
        rendered = render_times(url, args.scrapes)
        collector = Collector(workdir, database_url=url).start(timeout=120)
        try:
            times, size, lines = scrape_times(collector, args.scrapes)
            pages = page_times(collector, args.scrapes)
        finally:
            collector.stop()
    median = statistics.median(times)
    page_medians = {name: statistics.median(values) for name, values in pages.items()}
    report: dict[str, object] = {
        "benchmark": "metrics", "store": url.split(":", 1)[0], **counts,
        "fill_s": round(fill_s, 2), "scrape_s": [round(t, 3) for t in times],
        "median_scrape_s": round(median, 3),
        "render_s": [round(t, 3) for t in rendered],
        "median_render_s": round(statistics.median(rendered), 3), "bytes": size, "lines": lines,
        "pages": {name: {"path": PAGES[name], "s": [round(t, 3) for t in values],
                         "median_s": round(page_medians[name], 3)}
                  for name, values in pages.items()},
        "targets": {"median_scrape_s": TARGET_S,
                    **{f"median_{name}_page_s": PAGE_TARGET_S for name in PAGES}},
    }
    print(f"{'hosts':>8}{'check states':>14}{'problems':>10}{'tickets':>9}{'lines':>10}"
          f"{'MB':>7}{'median s':>10}{'max s':>8}")
    print(f"{counts['hosts']:>8}{counts['check_states']:>14}{counts['problems']:>10}"
          f"{counts['tickets']:>9}{lines:>10}{size / 1e6:>7.1f}{median:>10.3f}"
          f"{max(times):>8.3f}")
    print(f"median render_metrics in process: {statistics.median(rendered):.3f} s")
    print(f"median /metrics scrape: {median:.3f} s (target <= {TARGET_S:g} s)")
    print(f"{'dashboard page':<16}{'median s':>10}{'max s':>8}")
    for name, values in pages.items():
        print(f"{PAGES[name]:<16}{page_medians[name]:>10.3f}{max(values):>8.3f}")
    print(f"target: median of each page <= {PAGE_TARGET_S:g} s")
    return finish(report, {"median_scrape_s": median <= TARGET_S, **{
        f"median_{name}_page_s": page_medians[name] <= PAGE_TARGET_S for name in PAGES}})


if __name__ == "__main__":
    sys.exit(exit_code(main()))
