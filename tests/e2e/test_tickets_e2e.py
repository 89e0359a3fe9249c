"""The ticket engine end to end, with real processes: ``watchkeeper-collector serve``, a
``watchkeeper-agent run`` watching a real MariaDB replica, a real SMTP server (STARTTLS and
AUTH), and the collector's clock run hours ahead through its offset file.

What a customer and the support organisation would notice:

- a replica whose SQL thread stops gets exactly one P2 ticket (RT 60), due for a first
  response two clock hours after it opened, and the customer's contact is mailed the
  request number;
- the Technical Support Manager is told at 1 h, the Customer Relations Manager at 4 h and
  the CTO at 8 h, each exactly once, also when the collector is killed with SIGKILL
  between two steps, and right after a step was decided while the mail server was down
  (the notice goes out after the restart, once);
- once the replica applies again, the ticket nobody worked on is resolved after the
  15-minute recovery hold, and not before;
- a check that flaps a hundred times in an hour gets one ticket, marked flapping;
- a failure inside a maintenance window opens nothing, the audit log says why, and the
  ticket opens once the window is over;
- a support engineer's priority change, with its reason, restarts the SLA clocks from the
  moment of the change and is in the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    chunks,
    collector_config,
    disk_result,
    escalated_roles,
    mentions_number,
    only,
    parse_time,
    replication_check,
    settle,
    start_agent,
    start_mail_server,
    stays,
    wait_for,
)
from tests.services.mariadb import MONITOR_PASSWORD, ReplicationPair, start_pair

pytestmark = pytest.mark.e2e

DB_HOST = "db1.acme.example"
ROLES_IN_ORDER = ("tsm", "crm", "cto")
STEP_HOURS = {"tsm": 1, "crm": 4, "cto": 8}


@pytest.fixture(scope="module")
def replication(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicationPair]:
    pair = start_pair(tmp_path_factory.mktemp("mariadb"))
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[Mailbox]:
    with start_mail_server(tmp_path / "smtp") as mailbox:
        yield mailbox


def _collector(tmp_path: Path, clock: ClockFile, mail: Mailbox | None,
               extra: str = "") -> TicketCollector:
    config = collector_config(smtp=mail, extra=extra)
    return TicketCollector(tmp_path / "collector", clock=clock, config=config)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _check_status(api: Api, host: str, check: str) -> int | None:
    answer = api.get(f"/api/v1/hosts/{host}")
    if answer.status_code != 200:
        return None
    statuses = [c["status"] for c in answer.json()["checks"] if c["check"] == check]
    return max(statuses) if statuses else None


class Escalations:
    """What the support managers were told about one ticket: outbox rows and mail."""

    def __init__(self, store: Store, mail: Mailbox, ticket_id: int) -> None:
        self.store, self.mail, self.ticket_id = store, mail, ticket_id

    def rows(self, role: str) -> list[dict[str, Any]]:
        return [r for r in self.store.emails()
                if r["kind"] == "escalation" and r["ticket_id"] == self.ticket_id
                and r["recipient"] == RECIPIENTS[role]]

    def mails(self, role: str) -> int:
        """Mails to ``role``'s recipient carrying an escalation notice's subject."""
        subjects = {r["subject"] for r in self.rows(role)}
        return sum(1 for m in self.mail.to(RECIPIENTS[role]) if m.subject in subjects)

    def counts(self) -> dict[str, tuple[int, int]]:
        """(outbox rows, mails received) per role."""
        return {role: (len(self.rows(role)), self.mails(role)) for role in ROLES_IN_ORDER}


def _expect_counts(escalations: Escalations, told: tuple[str, ...]) -> Callable[[], bool]:
    want = {role: (1, 1) if role in told else (0, 0) for role in ROLES_IN_ORDER}
    return lambda: escalations.counts() == want


def test_a_stopped_replica_opens_one_p2_ticket_escalates_on_time_and_resolves_after_recovery(
    tmp_path: Path, replication: ReplicationPair, mail: Mailbox,
) -> None:
    clock = ClockFile(tmp_path / "clock-offset")
    collector = _collector(tmp_path, clock, mail)
    host_token = collector.enroll(CUSTOMER, DB_HOST)
    api = Api(collector.url, collector.user_token("tse1", "tse"))
    collector.start()
    store = Store(collector.database_url)
    password_file = tmp_path / "monitor.password"
    password_file.write_text(MONITOR_PASSWORD + "\n")
    password_file.chmod(0o600)
    config = agent_config(tmp_path / "agent", host=DB_HOST, url=collector.url, token=host_token,
                          checks=replication_check(replication.replica.port, password_file))
    agent = start_agent(config)

    def logs() -> str:
        return f"collector:\n{collector.log_tail()}\nagent:\n{agent.tail(10)}"

    try:
        # Healthy first: OK results arrive and nothing is opened.
        wait_for(lambda: _check_status(api, DB_HOST, "replication") == 0, 60,
                 "the replica's OK result at the collector", tail=logs)
        assert api.tickets_for(DB_HOST, "replication") == []

        # 1. The replica's SQL thread stops: CRITICAL, and one P2 ticket.
        replication.replica.sql("STOP SLAVE SQL_THREAD")
        broke_at = clock.now()
        wait_for(lambda: api.tickets_for(DB_HOST, "replication"), 60,
                 "a ticket for the stopped replica", tail=logs)
        stays(lambda: len(api.tickets_for(DB_HOST, "replication")) == 1, 3.0,
              "more than one ticket for the one stopped replica")
        ticket = only(api.tickets_for(DB_HOST, "replication"), "replication ticket")
        ticket_id = int(ticket["id"])
        assert (ticket["priority"], ticket["rt_priority"]) == ("P2", 60), ticket
        assert ticket["customer"] == CUSTOMER and ticket["state"] == "new", ticket
        created = parse_time(ticket["created_at"])
        assert broke_at - 5 <= created <= clock.now(), (broke_at, ticket["created_at"])
        assert parse_time(ticket["first_response_due"]) - created == pytest.approx(
            2 * HOUR, abs=1.0), ticket
        assert ticket["escalations"] == []

        # The customer's contact is told the request number, over STARTTLS with AUTH.
        wait_for(lambda: mail.to(CONTACT), 30, "the mail to the customer's contact", tail=logs)
        told = only(mail.to(CONTACT), "mail to the customer's contact")
        assert mentions_number(told, ticket_id), (told.subject, told.body)
        assert mail.authenticated(), "the collector did not log in to the SMTP server"

        escalations = Escalations(store, mail, ticket_id)

        def state() -> str:
            return (f"(outbox rows, mails) per role: {escalations.counts()}\n"
                    f"escalations decided: {store.escalation_rows(ticket_id)}\n"
                    f"unsent: {store.unsent()}\n{logs()}")

        assert escalations.counts() == dict.fromkeys(ROLES_IN_ORDER, (0, 0))

        # 2. One hour of collector clock: the Technical Support Manager, once.
        settle(store, mail, tail=logs)
        clock.set(1 * HOUR + 5)
        wait_for(_expect_counts(escalations, ("tsm",)), 30, "the TSM escalation at 1 h",
                 tail=state)
        stays(_expect_counts(escalations, ("tsm",)), 2.0, "a second TSM notice, or CRM early")
        assert escalated_roles(api.ticket(ticket_id)) == ["tsm"]

        # Killed with SIGKILL between 1 h and 4 h, and back: nobody is told twice.
        settle(store, mail, tail=logs)
        collector.kill()
        collector.start()
        stays(_expect_counts(escalations, ("tsm",)), 2.0, "a notice repeated after the kill")

        # 4 hours: killed the moment the CRM step is decided. The mail server is down
        # meanwhile, so the notice cannot have left before the kill: it is sent after the
        # restart, once, and not decided again.
        settle(store, mail, tail=logs)
        mail.outage()
        clock.set(4 * HOUR + 5)
        wait_for(lambda: len(store.escalation_rows(ticket_id)) >= 2, 30,
                 "the CRM escalation to be decided", tail=state)
        collector.kill()
        assert escalations.counts()["crm"] == (1, 0)
        mail.back()
        collector.start()
        wait_for(_expect_counts(escalations, ("tsm", "crm")), 30, "the CRM escalation at 4 h",
                 tail=state)
        stays(_expect_counts(escalations, ("tsm", "crm")), 2.0, "a CRM notice repeated")

        # 8 hours: the CTO.
        settle(store, mail, tail=logs)
        clock.set(8 * HOUR + 5)
        wait_for(_expect_counts(escalations, ROLES_IN_ORDER), 30, "the CTO escalation at 8 h",
                 tail=state)
        stays(_expect_counts(escalations, ROLES_IN_ORDER), 2.0, "a repeated notice after 8 h")
        ticket = api.ticket(ticket_id)
        assert sorted(escalated_roles(ticket)) == sorted(ROLES_IN_ORDER), ticket["escalations"]
        for escalation, role in zip(ticket["escalations"], escalated_roles(ticket), strict=True):
            assert parse_time(escalation["at"]) >= created + STEP_HOURS[role] * HOUR - 1, (
                role, escalation)
        # Each manager's mail went out once (the first-response breach the TSM is also told
        # about is a notice of its own); the customer's contact got only the opening.
        settle(store, mail, tail=logs)
        assert len(mail.to(CONTACT)) == 1

        # 3. The replica applies again: the ticket is recovered, held 15 minutes, resolved.
        replication.replica.sql("START SLAVE SQL_THREAD")
        wait_for(lambda: api.ticket(ticket_id)["status"] == 0, 60,
                 "the recovery on the ticket", tail=logs)
        assert api.ticket(ticket_id)["state"] == "new"
        stays(lambda: api.ticket(ticket_id)["state"] == "new", 3.0,
              "the ticket resolved before the recovery hold")
        settle(store, mail, tail=logs)
        clock.set(clock.offset + 14 * 60)
        stays(lambda: api.ticket(ticket_id)["state"] == "new", 2.0,
              "the ticket resolved 14 minutes into the 15-minute hold")
        settle(store, mail, tail=logs)
        clock.set(clock.offset + 2 * 60)
        wait_for(lambda: api.ticket(ticket_id)["state"] == "resolved", 30,
                 "the recovered ticket to resolve after the hold", tail=logs)
        resolved = api.ticket(ticket_id)
        assert parse_time(resolved["resolved_at"]) >= created + 8 * HOUR + 15 * 60
        assert len(api.tickets_for(DB_HOST, "replication")) == 1
        # Nothing else was opened for the host on the way (its agent self-check stayed OK).
        assert [t["check"] for t in api.tickets(host=DB_HOST, state="all")] == ["replication"]
    finally:
        agent.stop()
        collector.stop()
        store.dispose()


def test_a_hundred_flaps_in_an_hour_make_one_ticket_marked_flapping(tmp_path: Path) -> None:
    clock = ClockFile(tmp_path / "clock-offset")
    collector = _collector(tmp_path, clock, None)
    fqdn = "app1.acme.example"
    host = Host(collector.url, fqdn, collector.enroll(CUSTOMER, fqdn))
    api = Api(collector.url, collector.user_token("noc1", "noc"))
    collector.start()
    store = Store(collector.database_url)
    try:
        # 101 results alternating CRITICAL and OK, 36 s apart: 100 changes within the hour,
        # pushed in order as an agent would, a few at a time.
        start = time.time() - HOUR
        results = [disk_result(host, 2 if i % 2 == 0 else 0, start + i * 36)
                   for i in range(101)]
        for batch in chunks(results, 5):
            host.push(batch)
            time.sleep(0.1)
        wait_for(lambda: store.scalar(
            "SELECT results_count FROM check_states cs JOIN hosts h ON h.id = cs.host_id "
            "WHERE h.fqdn = :h AND cs.\"check\" = 'disk'", h=fqdn) == 101, 30,
            "the state of every result", tail=collector.log_tail)
        wait_for(lambda: api.tickets_for(fqdn, "disk"), 30, "the flapping ticket",
                 tail=collector.log_tail)
        stays(lambda: len(api.tickets_for(fqdn, "disk")) == 1, 3.0,
              "more than one ticket for one flapping check")
        ticket = only(api.tickets_for(fqdn, "disk"), "ticket for the flapping check")
        assert ticket["flapping"] is True, ticket
        assert ticket["state"] == "new", ticket
        assert store.scalar("SELECT COUNT(*) FROM tickets WHERE host = :h", h=fqdn) == 1
    finally:
        collector.stop()
        store.dispose()


def test_a_failure_in_a_maintenance_window_opens_nothing_until_the_window_ends(
    tmp_path: Path,
) -> None:
    clock = ClockFile(tmp_path / "clock-offset")
    collector = _collector(tmp_path, clock, None)
    fqdn = "web1.acme.example"
    host = Host(collector.url, fqdn, collector.enroll(CUSTOMER, fqdn))
    api = Api(collector.url, collector.user_token("tse1", "tse"))
    collector.start()
    try:
        now = clock.now()
        window = api.post("/api/v1/maintenance", {
            "customer": CUSTOMER, "host": fqdn, "starts_at": iso(now - 60),
            "ends_at": iso(now + 600), "reason": "disk array replacement"})
        assert window.status_code in (200, 201), window.text

        # Two CRITICAL results: a hard problem, but inside the window.
        for _ in range(3):
            host.push([disk_result(host, 2, clock.now())])
            time.sleep(0.3)

        def not_opened() -> list[dict[str, Any]]:
            return [e for e in api.audit(kind="not_opened")
                    if fqdn in str(e["problem_key"])]

        wait_for(not_opened, 30, "the audit entry of the ticket not opened",
                 tail=collector.log_tail)
        event = not_opened()[0]
        assert event["data"].get("reason") == "maintenance", event
        assert event["data"].get("window") == window.json()["id"], event
        assert "maintenance window" in event["text"], event
        assert "disk array replacement" in event["text"], event
        stays(lambda: api.tickets_for(fqdn, "disk") == [], 2.0, "a ticket inside the window")

        # The window is over (the clock passes its end); the still failing check opens.
        clock.set(700)
        host.push([disk_result(host, 2, clock.now())])
        wait_for(lambda: api.tickets_for(fqdn, "disk"), 30,
                 "the ticket once the window is over", tail=collector.log_tail)
        ticket = only(api.tickets_for(fqdn, "disk"), "ticket after the window")
        assert parse_time(ticket["created_at"]) >= now + 600
    finally:
        collector.stop()


def test_a_priority_change_restarts_the_sla_clocks_and_is_audited(tmp_path: Path) -> None:
    clock = ClockFile(tmp_path / "clock-offset")
    collector = _collector(tmp_path, clock, None)
    fqdn = "bill1.acme.example"
    host = Host(collector.url, fqdn, collector.enroll(CUSTOMER, fqdn))
    api = Api(collector.url, collector.user_token("tse1", "tse"))
    collector.start()
    try:
        for _ in range(2):
            host.push([disk_result(host, 2, clock.now())])
            time.sleep(0.2)
        wait_for(lambda: api.tickets_for(fqdn, "disk"), 30, "the disk ticket",
                 tail=collector.log_tail)
        ticket = only(api.tickets_for(fqdn, "disk"), "disk ticket")
        ticket_id = int(ticket["id"])
        assert ticket["priority"] == "P2"
        created = parse_time(ticket["created_at"])
        assert parse_time(ticket["first_response_due"]) == pytest.approx(created + 2 * HOUR,
                                                                          abs=1.0)

        # Half an hour later the customer asks for P1: the clocks restart from the change.
        clock.set(30 * 60)
        reason = "customer reports billing halted on this host"
        before = clock.now()
        answer = api.post(f"/api/v1/tickets/{ticket_id}/priority",
                          {"priority": "P1", "reason": reason})
        after = clock.now()
        assert answer.status_code == 200, answer.text
        changed = api.ticket(ticket_id)
        assert (changed["priority"], changed["rt_priority"]) == ("P1", 80), changed
        due = parse_time(changed["first_response_due"])
        assert before + HOUR - 1 <= due <= after + HOUR + 1, (before, changed)

        # A bad priority is refused, naming what is wrong.
        bad = api.post(f"/api/v1/tickets/{ticket_id}/priority", {"priority": "P9",
                                                                  "reason": "typo"})
        assert bad.status_code == 422 and "priority" in bad.json()["detail"].lower(), bad.text

        # Who, when, why: in the ticket's history and in the audit log.
        changes = [e for e in api.audit(ticket=ticket_id)
                   if e.get("ticket_id", ticket_id) == ticket_id and "priority" in e["kind"]
                   and e["actor"] == "tse1"]
        change = only(changes, "audited priority change by tse1")
        assert reason in change["text"] or reason == change["data"].get("reason"), change
        assert before - 1 <= parse_time(change["at"]) <= after + 1
    finally:
        collector.stop()
