"""Screenshots of the dashboard for the documentation: a collector with a realistic scene.

    .venv/bin/python tests/browser/make_screenshot.py [--out docs/img] [--hold]

Starts a real collector process (a new SQLite store in a temporary directory) and fills it
the way a NOC would meet it at the start of a shift:

- 3 customers (acme, globex, initech) with 30 hosts: billing, softswitch, database, web,
  DNS and monitoring servers, each pushing its checks (agent, disk, NTP, backup, updates)
  over HTTP with its own token, as its agent would;
- problems of every status: CRITICAL (a full filesystem, a stopped replica, a disk over
  its threshold, a firewall without default deny, a missing backup), WARNING (clock
  offset, pending security updates), UNKNOWN (a DNS check that could not run) and one
  host that stopped pushing (SILENT);
- the tickets the collector opened for them, of several priorities: those opened three
  hours ago on the collector's clock have breached their first response (and escalated),
  the newer ones count down; one was answered and waits for its next update.

The collector's clock is moved forward through its offset file
(``WATCHKEEPER_CLOCK_OFFSET_FILE``), so three hours pass in seconds. Then Debian's
headless Chromium (``/usr/bin/chromium``, or ``WATCHKEEPER_CHROMIUM``) logs in as a
support engineer and saves:

- ``<out>/dashboard.png``: the overview, 1400 px wide, the full page;
- ``<out>/ticket.png``: the page of the stopped replica's ticket.

``--hold`` keeps the collector running afterwards (its URL and a login are printed) until
Ctrl-C, to look around in a browser. Takes about a minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser.dashboard import (  # noqa: E402
    PasswordApi,
    add_user,
    launch_chromium,
    log_in,
    new_page,
)
from tests.e2e.ticketing import (  # noqa: E402
    HOUR,
    ClockFile,
    Host,
    TicketCollector,
    wait_for,
)

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
USER, PASSWORD = "tess", "a long night shift"
# The interval the hosts declare: silent after 3 times that without a push (30 min), so
# the three hours the clock jumps pass unnoticed for them (the collector restarts at the
# jump and counts silence from its start); the monitoring host declares a minute.
QUIET_INTERVAL = 600.0
SILENT_HOST = "mon1.acme.example"

CONFIG = """
[silence]
min_silence = "3m"
startup_grace = "1m"
check_every = "1s"

[tickets]
engine_every = "0.5s"

[dashboard]
refresh = "2s"

[notifications.recipients]
tsm = ["tsm@support.example"]
crm = ["crm@support.example"]
cto = ["cto@support.example"]

[customers.acme]
contacts = ["noc@acme.example"]

[customers.globex]
contacts = ["ops@globex.example"]

[customers.initech]
contacts = ["it@initech.example"]
"""

# customer -> hosts (short names; the FQDN is <name>.<customer>.example)
FLEET = {
    "acme": ["bill1", "bill2", "bill3", "ss1", "ss2", "db1", "db2", "db3", "web1", "web2",
             "dns1", "mon1"],
    "globex": ["bill1", "bill2", "ss1", "ss2", "db1", "db2", "web1", "web2", "dns1",
               "dns2"],
    "initech": ["bill1", "ss1", "db1", "db2", "web1", "web2", "dns1", "mon1"],
}


@dataclass(frozen=True)
class Failure:
    """A check that fails on one host: ``at`` "old" (three hours before the screenshot)
    or "new" (a few minutes before)."""

    fqdn: str
    check: str
    type: str
    target: str
    status: int
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    at: str = "new"


FAILURES = [
    Failure("db2.acme.example", "replication", "mysql_replication", "replica", CRITICAL,
            "SQL thread stopped: Error 1062 duplicate entry '4711' for key 'PRIMARY'",
            {"state": "sql_error", "last_errno": 1062}, at="old"),
    Failure("bill1.globex.example", "disk", "disk", "/var", CRITICAL,
            "/var 100.0% used, 0 B free", {"condition": "full", "used_pct": 100.0},
            at="old"),
    Failure("web1.initech.example", "backup", "backup", "nightly", CRITICAL,
            "no backup matching site-*.tar.gz in /srv/backup", {"condition": "missing"},
            at="old"),
    Failure("web2.acme.example", "os_updates", "os_updates", "security", WARNING,
            "3 security updates pending (openssl, libc6, sudo)", {"count": 3}, at="old"),
    Failure("bill2.acme.example", "disk", "disk", "/srv", CRITICAL,
            "/srv 97.2% used, 2.8 GiB free", {"condition": "space", "used_pct": 97.2}),
    Failure("ss1.globex.example", "firewall", "firewall", "input", CRITICAL,
            "input chain accepts by default (policy accept, no final drop)",
            {"condition": "not_denying"}),
    Failure("db1.initech.example", "ntp", "ntp", "offset", WARNING,
            "clock offset +212 ms from 3 servers", {"offset_ms": 212}),
    Failure("dns2.globex.example", "dns", "dns", "billing.globex.example", UNKNOWN,
            "resolver 10.1.0.53 did not answer within 2s",
            {"question": "forward", "condition": "timeout"}),
]

BASELINE = [  # (check, type, target, summary) every host reports OK
    ("agent", "agent", "-", "agent 0.1.0 up 6d 4h, spool 0 results"),
    ("disk", "disk", "/", "/ 41.0% used, 23.6 GiB free"),
    ("ntp", "ntp", "offset", "clock offset +3 ms from 3 servers"),
    ("backup", "backup", "nightly", "db-20261126.sql.xz 1.2 GiB, 5h old, 7 kept"),
    ("os_updates", "os_updates", "security", "no security updates pending"),
]


def fqdn(customer: str, name: str) -> str:
    return f"{name}.{customer}.example"


class Scene:
    """The collector, its hosts and the support engineer's API."""

    def __init__(self, workdir: Path) -> None:
        self.clock = ClockFile(workdir / "clock-offset")
        self.collector = TicketCollector(workdir / "collector", clock=self.clock, config=CONFIG)
        self.hosts: dict[str, Host] = {}
        for customer, names in FLEET.items():
            for name in names:
                host = fqdn(customer, name)
                self.hosts[host] = Host(self.collector.url, host,
                                        self.collector.enroll(customer, host),
                                        interval=QUIET_INTERVAL)
        self.hosts[SILENT_HOST].interval = 60.0
        add_user(self.collector, USER, "tse", PASSWORD)
        self.api = PasswordApi(self.collector.url, USER, PASSWORD)

    def push_baseline(self, skip: str | None = None) -> None:
        """Every host's checks OK (the failing ones are pushed on top)."""
        for host in self.hosts.values():
            if host.fqdn == skip:
                continue
            host.push([host.result(check=c, type=t, target=target, status=OK,
                                   at=self.clock.now(), summary=s)
                       for c, t, target, s in BASELINE])

    def fail(self, failures: list[Failure]) -> None:
        """Each failure twice (a hard problem), as the host's agent would push it."""
        for _ in range(2):
            for f in failures:
                host = self.hosts[f.fqdn]
                host.push([host.result(check=f.check, type=f.type, target=f.target,
                                       status=f.status, at=self.clock.now(),
                                       summary=f.summary, details=f.details)])
            time.sleep(0.3)

    def ticket(self, host: str, check: str) -> dict[str, Any]:
        found = [t for t in self.api.tickets(state="all")
                 if t["host"] == host and t["check"] == check]
        assert found, f"no ticket for {host} {check}"
        return found[0]

    def silent(self, host: str) -> bool:
        answer = self.api.get(f"/api/v1/hosts/{host}")
        return answer.status_code == 200 and any(
            c["check"] == "collector" and c["status"] == CRITICAL for c in answer.json()["checks"])

    def wait_tickets(self, count: int) -> None:
        wait_for(lambda: len(self.api.tickets(state="all")) >= count, 60,
                 f"{count} tickets", tail=self.collector.log_tail)


def build(scene: Scene) -> int:
    """Fill the collector (see the module's docstring); the id of the ticket to show."""
    collector, clock = scene.collector, scene.clock
    collector.start()
    old = [f for f in FAILURES if f.at == "old"]
    new = [f for f in FAILURES if f.at == "new"]

    # Three hours before the screenshot: the older problems open their tickets.
    scene.push_baseline()
    scene.fail(old)
    scene.wait_tickets(len(old))
    # Twenty minutes in, the full filesystem's ticket got its first answer, and the
    # monitoring host (it pushes every minute) has been quiet for long enough: silent.
    clock.set(20 * 60)
    full = scene.ticket("bill1.globex.example", "disk")
    answer = scene.api.post(f"/api/v1/tickets/{full['id']}/reply", {
        "text": "Rotating /var/log/billing by hand; cleanup of old CDR exports under way."})
    assert answer.status_code == 200, answer.text
    replica = scene.ticket("db2.acme.example", "replication")
    answer = scene.api.post(f"/api/v1/tickets/{replica['id']}/comment", {
        "text": "Duplicate key on the replica only: checking the primary's binlog position."})
    assert answer.status_code == 200, answer.text
    wait_for(lambda: scene.silent(SILENT_HOST), 60, f"{SILENT_HOST} to be silent",
             tail=collector.log_tail)

    # Three hours in, the collector restarts (silence is counted from its start at the
    # earliest); every host but the silent one pushes again and the newer problems open.
    collector.stop()
    clock.set(3 * HOUR)
    collector.start()
    scene.push_baseline(skip=SILENT_HOST)
    scene.fail(new)
    scene.wait_tickets(len(old) + len(new) + 1)  # and the silent host's
    assert any(t["host"] == SILENT_HOST for t in scene.api.tickets()), "no silence ticket"
    # The screenshot is taken twelve minutes later (well within the others' silence).
    clock.set(3 * HOUR + 12 * 60)
    return int(replica["id"])


def shoot(scene: Scene, ticket_id: int, out: Path) -> list[Path]:
    """Log in as the support engineer and save the overview and the ticket's page."""
    out.mkdir(parents=True, exist_ok=True)
    url = scene.collector.url
    saved = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context, page = new_page(browser, width=1400)
            log_in(page, url, USER, PASSWORD)
            expect(page.locator(f'tr[data-problem][data-host="{SILENT_HOST}"]')).to_be_visible()
            saved.append(out / "dashboard.png")
            page.screenshot(path=str(saved[-1]), full_page=True)
            page.goto(f"{url}/tickets/{ticket_id}")
            expect(page.locator(f'section#ticket[data-ticket="{ticket_id}"]')).to_be_visible()
            saved.append(out / "ticket.png")
            page.screenshot(path=str(saved[-1]), full_page=True)
            context.close()
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent.parent / "docs" / "img",
                        help="directory for dashboard.png and ticket.png (default docs/img)")
    parser.add_argument("--hold", action="store_true",
                        help="keep the collector running afterwards, until Ctrl-C")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="watchkeeper-screenshot-") as tmp:
        scene = Scene(Path(tmp))
        try:
            ticket_id = build(scene)
            for path in shoot(scene, ticket_id, args.out):
                print(f"saved {path}")
            print(f"in {time.monotonic() - started:.0f} s")
            if args.hold:
                print(f"collector on {scene.collector.url}: log in as {USER} / {PASSWORD}; "
                      "Ctrl-C stops it")
                hold(lambda: scene.collector.proc is not None and scene.collector.proc.alive())
        finally:
            scene.collector.stop()
    return 0


def hold(running: Callable[[], bool]) -> None:
    try:
        while running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
