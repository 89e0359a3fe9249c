"""Two collector processes on one PostgreSQL, both running the ticket engine, the
escalation clockwork and the notification sender: the same host's agents push to both, the
clock runs eight hours ahead, and still one ticket is opened and everybody is told each
thing once (counted in the outbox and at a real SMTP server with STARTTLS and AUTH), also
when one collector is killed with SIGKILL and the other goes on alone until it is back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.ticketing import (
    CONTACT,
    CUSTOMER,
    HOUR,
    RECIPIENTS,
    Api,
    ClockFile,
    Host,
    Mailbox,
    Store,
    TicketCollector,
    agent_config,
    collector_config,
    disk_result,
    escalated_roles,
    mentions_number,
    only,
    parse_time,
    settle,
    start_agent,
    start_mail_server,
    stays,
    wait_for,
)
from tests.services.postgres import PostgresServer, start_postgres

pytestmark = pytest.mark.e2e

FQDN = "db2.acme.example"
# Free space below 1000 TiB: CRITICAL on any real disk, a P2 "over threshold" problem.
DISK_CHECK = (
    '[checks.disk]\ninterval = "1s"\njitter = "0s"\ninclude_mounts = ["/"]\n'
    'space_crit_free = "1000TiB"\n'
)
DECIDED_ONCE = ("opened", "escalation", "breach")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[Mailbox]:
    with start_mail_server(tmp_path / "smtp") as mailbox:
        yield mailbox


def _at_least(count: Callable[[str], int], role: str, n: int) -> Callable[[], bool]:
    return lambda: count(role) >= n


def test_two_collectors_on_one_postgresql_open_one_ticket_and_tell_everyone_once(
    tmp_path: Path, postgres: PostgresServer, mail: Mailbox,
) -> None:
    url = postgres.create_database("watchkeeper")
    clock = ClockFile(tmp_path / "clock-offset")
    config = collector_config(smtp=mail)
    first = TicketCollector(tmp_path / "first", clock=clock, config=config, database_url=url)
    second = TicketCollector(tmp_path / "second", clock=clock, config=config, database_url=url)
    token = first.enroll(CUSTOMER, FQDN)
    api = Api(first.url, first.user_token("noc1", "noc"))
    first.start()
    second.start()
    store = Store(url)
    agents = [start_agent(agent_config(tmp_path / f"agent-{c.workdir.name}", host=FQDN,
                                       url=c.url, token=token, checks=DISK_CHECK))
              for c in (first, second)]

    def logs() -> str:
        return "\n".join(f"{c.workdir.name}:\n{c.log_tail(30)}" for c in (first, second)) + "\n" + \
            "\n".join(f"agent:\n{a.tail(10)}" for a in agents)

    def tickets() -> list[dict[str, object]]:
        return store.rows('SELECT id, state FROM tickets WHERE host = :h', h=FQDN)

    def escalation_mails(role: str) -> int:
        return len([m for m in mail.to(RECIPIENTS[role]) if m.subject in {
            r["subject"] for r in store.emails() if r["kind"] == "escalation"}])

    try:
        # Both agents report the same failing disk, one to each collector; results also
        # come in by direct pushes, alternating between the two.
        host = Host(first.url, FQDN, token)
        for i in range(6):
            host.push([disk_result(host, 2, time.time(), target="/srv")],
                      url=(first, second)[i % 2].url)
            time.sleep(0.2)
        wait_for(lambda: len(tickets()) >= 2, 60, "tickets for both failing disks", tail=logs)
        stays(lambda: len(tickets()) == 2, 3.0, "a duplicate ticket from the second collector")
        by_target = {t["target"]: t for t in api.tickets() if t["host"] == FQDN}
        assert sorted(by_target) == ["/", "/srv"], by_target
        assert {t["priority"] for t in by_target.values()} == {"P2"}
        ids = sorted(int(t["id"]) for t in by_target.values())

        # The customer's contact got each request number once.
        wait_for(lambda: len(mail.to(CONTACT)) >= 2, 30, "the two opening mails", tail=logs)
        stays(lambda: len(mail.to(CONTACT)) == 2, 2.0, "an opening mail sent twice")
        for ticket_id in ids:
            only((m for m in mail.to(CONTACT) if mentions_number(m, ticket_id)),
                 f"opening mail of #{ticket_id}")

        # Eight hours of collector clock, step by step; the first collector is killed with
        # SIGKILL after the first step (the second goes on alone) and comes back before the
        # last. The clock moves only once what was decided is sent (see ``settle``).
        for hours, role in ((1, "tsm"), (4, "crm"), (8, "cto")):
            settle(store, mail, tail=logs)
            clock.set(hours * HOUR + 5)
            wait_for(_at_least(escalation_mails, role, 2), 30,
                     f"the {role} escalations at {hours} h", tail=logs)
            if role == "tsm":
                settle(store, mail, tail=logs)
                first.kill()
            if role == "crm":
                first.start()
        stays(lambda: all(escalation_mails(r) == 2 for r in ("tsm", "crm", "cto")), 3.0,
              "an escalation mail sent twice")
        for ticket_id in ids:
            ticket = api.ticket(ticket_id)
            roles = escalated_roles(ticket)
            assert sorted(roles) == ["crm", "cto", "tsm"], ticket["escalations"]
            for escalation in ticket["escalations"]:
                assert parse_time(escalation["at"]) >= parse_time(ticket["created_at"]) + HOUR

        # One row per notice decided, however many collectors decided it, and every row
        # sent exactly once.
        rows = store.emails()
        decided = Counter((r["recipient"], r["kind"], r["ticket_id"]) for r in rows
                          if r["kind"] in DECIDED_ONCE and r["kind"] != "breach")
        assert decided == Counter(
            {(CONTACT, "opened", t): 1 for t in ids}
            | {(RECIPIENTS[role], "escalation", t): 1 for role in RECIPIENTS for t in ids}
        )
        breaches = Counter((r["recipient"], r["subject"]) for r in rows if r["kind"] == "breach")
        assert breaches and set(breaches.values()) == {1}, breaches

        settle(store, mail, tail=logs)
        assert store.scalar("SELECT COUNT(*) FROM ticket_escalations") == 3 * len(ids)
        assert len(tickets()) == 2
    finally:
        for agent in agents:
            agent.stop()
        first.stop()
        second.stop()
        store.dispose()
