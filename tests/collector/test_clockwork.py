"""The escalation and SLA clockwork on a real store, driven by ``now``.

Every cell of the support policy's escalation matrix is told once per ticket and role,
also when the job runs again and again and when two collectors run it at the same time;
a missed first response and a missed update each give one notice to the Technical
Support Manager; and the customer's "opened" mail and an escalation mail go out over a
real SMTP server with STARTTLS and AUTH.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from collector.app import create_app
from collector.db import create_db_engine, migrate, write_transaction
from collector.notify.models import Notification
from collector.notify.scheduled import send_due, send_job
from collector.policy import Policy, build_policy
from collector.problems.keys import ProblemKey
from collector.settings import Settings
from collector.tickets import service
from collector.tickets.clockwork import clockwork_job, run_clocks
from collector.tickets.models import TicketBreach, TicketEscalation, TicketEvent
from collector.tickets.priority import Priority
from tests.collector.conftest import FakeClock, settings_for
from tests.services.smtp import SmtpServer, start_smtp

T0 = 1_795_000_000.0  # 2026-11-17 (a Tuesday) 08:26:40 UTC
HOUR = 3600.0
ADDRESS = {"tsm": "tsm@support.example", "crm": "crm@support.example",
           "cto": "cto@support.example"}

# The support policy's escalation matrix: (priority, role, hours since opening).
CELLS = [
    ("P1", "tsm", 0), ("P1", "crm", 1), ("P1", "cto", 4),
    ("P2", "tsm", 1), ("P2", "crm", 4), ("P2", "cto", 8),
    ("P3", "tsm", 48), ("P3", "crm", 96),
    ("P4", "tsm", 96),
]
COLUMNS = {p: {r for q, r, _ in CELLS if q == p} for p in ("P1", "P2", "P3", "P4")}


def make_settings(url: str, smtp: SmtpServer | None = None, tmp_path: Path | None = None
                  ) -> Settings:
    if smtp is None:  # notices are decided into the outbox; nothing sends them
        mail: dict[str, Any] = {"host": "127.0.0.1", "port": 25, "security": "none"}
    else:
        assert tmp_path is not None
        secret = tmp_path / "smtp-password"
        secret.write_text("s3cret\n")
        mail = {"host": "127.0.0.1", "port": smtp.port, "security": "starttls",
                "username": "watchkeeper", "password_file": str(secret),
                "ca_file": str(smtp.ca_file), "sender": "watchkeeper@support.example",
                "timeout": 5}
    return settings_for(
        url,
        customers={"acme": {"contacts": ["noc@acme.example"]}},
        notifications={"smtp": mail, "recipients": {k: [v] for k, v in ADDRESS.items()}},
    )


@pytest.fixture
def store_for(enroll_host: Any) -> Iterator[Any]:
    engines: list[Engine] = []

    def _make(settings: Settings) -> tuple[Settings, Policy, Engine]:
        engine = create_db_engine(settings)
        migrate(engine)
        engines.append(engine)
        enroll_host(settings, "db1.acme.example", customer="acme")
        return settings, build_policy(settings), engine

    yield _make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def store(db_url: str, store_for: Any) -> tuple[Settings, Policy, Engine]:
    result: tuple[Settings, Policy, Engine] = store_for(make_settings(db_url))
    return result


def open_ticket(store: tuple[Settings, Policy, Engine], priority: str, *,
                check: str = "replication", now: float = T0) -> int:
    settings, policy, engine = store
    with write_transaction(engine) as conn:
        customer_id, host_id = conn.exec_driver_sql(
            "SELECT customer_id, id FROM hosts WHERE fqdn = 'db1.acme.example'").one()
        new = service.NewTicket(
            key=ProblemKey("acme", "db1.acme.example", check, "replica"),
            customer_id=customer_id, host_id=host_id, check_type="mysql_replication",
            subject=f"db1.acme.example: {check} CRITICAL", priority=Priority(priority),
            priority_reason="set by the test", status=2, evidence={"summary": "stopped"})
        return service.open_ticket(conn, new=new, policy=policy, settings=settings, now=now)


def escalations(engine: Engine, ticket_id: int | None = None) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        stmt = select(TicketEscalation).order_by(TicketEscalation.decided_at)
        if ticket_id is not None:
            stmt = stmt.where(TicketEscalation.ticket_id == ticket_id)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def notices(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Notification).where(
            Notification.kind == kind).order_by(Notification.id)).mappings()]


def events(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(TicketEvent).where(
            TicketEvent.kind == kind).order_by(TicketEvent.id)).mappings()]


def run(store: tuple[Settings, Policy, Engine], now: float) -> Any:
    settings, policy, engine = store
    return run_clocks(engine, policy, settings, now)


# ---------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("priority", "role", "hours"), CELLS,
                         ids=[f"{p}-{r}-{h}h" for p, r, h in CELLS])
def test_each_cell_of_the_matrix_is_told_once_at_its_hour(store, priority, role, hours):
    _, _, engine = store
    ticket = open_ticket(store, priority)
    due = T0 + hours * HOUR
    if hours:
        run(store, due - 1)
        assert role not in {e["role"] for e in escalations(engine, ticket)}
    report = run(store, due)
    assert (ticket, role) in report.escalations
    for later in (due, due + 1, due + 60, due + HOUR, due + 300 * HOUR):
        assert (ticket, role) not in run(store, later).escalations
    (row,) = [e for e in escalations(engine, ticket) if e["role"] == role]
    assert row["due_at"] == due and row["decided_at"] == due
    assert row["step"] == f"{priority} {f'{hours}h' if hours else 'immediately'}"
    # one mail to the role, with the request number in the subject
    (mail,) = [n for n in notices(engine, "escalation")
               if n["dedup_key"].startswith(f"escalation/{ticket}/{role}/")]
    assert mail["recipient"] == ADDRESS[role]
    assert mail["subject"].startswith(f"[watchkeeper #{ticket}] Escalation to ")
    assert f"Request #{ticket} for acme" in mail["body"]
    # the link opens the ticket's page on the dashboard; times are written for people
    assert f"/tickets/{ticket}\n" in mail["body"] and "/api/" not in mail["body"]
    assert re.search(r"Opened: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", mail["body"])
    # one audit entry
    (event,) = [e for e in events(engine, "escalation") if e["data"]["role"] == role]
    assert event["ticket_id"] == ticket and event["actor"] == "watchkeeper"
    # long after, the column's roles and no other were told, each once
    assert Counter(e["role"] for e in escalations(engine, ticket)) == Counter(
        COLUMNS[priority])


def test_a_resolved_ticket_is_not_escalated(store):
    settings, policy, engine = store
    ticket = open_ticket(store, "P2")
    with write_transaction(engine) as conn:
        service.set_state(conn, ticket, state="resolved", actor="tse1", reason="fixed",
                          policy=policy, settings=settings, now=T0 + 30 * 60)
    report = run(store, T0 + 100 * HOUR)
    assert report.escalations == [] and report.breaches == []
    assert escalations(engine) == [] and notices(engine, "escalation") == []


def test_after_a_priority_raise_only_roles_not_yet_told_are_due(store):
    settings, policy, engine = store
    ticket = open_ticket(store, "P3")
    assert run(store, T0 + 2 * HOUR).escalations == []
    with write_transaction(engine) as conn:
        service.change_priority(conn, ticket, priority="P1", reason="customer asked",
                                actor="tse1", policy=policy, now=T0 + 2 * HOUR)
    # the P1 column, counted from the opening: TSM (0 h) and CRM (1 h) are due at once
    report = run(store, T0 + 2 * HOUR + 1)
    assert sorted(r for _, r in report.escalations) == ["crm", "tsm"]
    assert [r for _, r in run(store, T0 + 4 * HOUR).escalations] == ["cto"]
    assert len(notices(engine, "escalation")) == 3


# ---------------------------------------------------------------------------- breaches


def test_a_missed_first_response_and_a_missed_update_each_tell_the_tsm_once(store):
    settings, policy, engine = store
    ticket = open_ticket(store, "P2")  # first response due in 2 h, updates every 2 h
    assert run(store, T0 + 2 * HOUR).breaches == []  # due at, not yet missed
    report = run(store, T0 + 2 * HOUR + 1)
    assert report.breaches == [(ticket, "first_response", T0 + 2 * HOUR)]
    for later in (T0 + 2 * HOUR + 2, T0 + 2.5 * HOUR):
        assert run(store, later).breaches == []
    # the late first response: the same breach, not a second one
    with write_transaction(engine) as conn:
        service.reply(conn, ticket, text="We are on it.", actor="tse1", policy=policy,
                      settings=settings, now=T0 + 3 * HOUR)
    assert run(store, T0 + 5 * HOUR).breaches == []  # the update is due at 5 h
    report = run(store, T0 + 5 * HOUR + 1)
    assert report.breaches == [(ticket, "update", T0 + 5 * HOUR)]
    assert run(store, T0 + 6 * HOUR).breaches == []
    breach_mails = notices(engine, "breach")
    assert [m["recipient"] for m in breach_mails] == [ADDRESS["tsm"], ADDRESS["tsm"]]
    assert "first response" in breach_mails[0]["subject"]
    assert "update" in breach_mails[1]["subject"]
    with engine.connect() as conn:
        kinds = sorted(r.kind for r in conn.execute(select(TicketBreach.kind)))
    assert kinds == ["first_response", "update"]


# ---------------------------------------------------------------------------- concurrency


def test_two_collectors_running_the_clocks_at_once_decide_each_notice_once(store, db_url):
    settings, policy, engine = store
    tickets = {p: open_ticket(store, p, check=f"check-{p}") for p in COLUMNS}
    engines = [create_db_engine(settings), create_db_engine(settings)]
    steps = [T0 + n * 0.5 * HOUR for n in range(0, 2 * 100 + 1)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def collector(eng: Engine) -> None:
        try:
            for now in steps:
                barrier.wait()
                run_clocks(eng, policy, settings, now)
                run_clocks(eng, policy, settings, now)  # and again at once
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    try:
        threads = [threading.Thread(target=collector, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for e in engines:
            e.dispose()
    assert errors == []
    decided = Counter((e["ticket_id"], e["role"]) for e in escalations(engine))
    assert decided == Counter((tickets[p], r) for p, r, _ in CELLS)
    keys = Counter(n["dedup_key"] for n in notices(engine, "escalation"))
    assert len(keys) == len(CELLS) and set(keys.values()) == {1}
    audit = Counter((e["ticket_id"], e["data"]["role"]) for e in events(engine, "escalation"))
    assert audit == decided
    # each ticket missed its first response once (nobody answered)
    assert Counter(m["ticket_id"] for m in notices(engine, "breach")) == Counter(
        tickets.values())


# ---------------------------------------------------------------------------- end to end


def test_the_customer_and_the_tsm_get_their_mails_over_starttls_and_auth(
        db_url, tmp_path, store_for):
    smtp = start_smtp(tmp_path, username="watchkeeper", password="s3cret")
    try:
        settings, policy, engine = store_for(make_settings(db_url, smtp, tmp_path))
        ticket = open_ticket((settings, policy, engine), "P1")
        clock = FakeClock(T0)
        app = create_app(settings, clock=clock, run_scheduled=False)
        runtime = app.state.runtime
        try:
            clock.now = T0 + 10
            report = clockwork_job(runtime)
            assert report.escalations == [(ticket, "tsm")]
            sent = send_job(runtime)
            assert len(sent.sent) == 2 and not sent.retried
        finally:
            runtime.engine.dispose()
        mails = {m.rcpt_tos[0]: m for m in smtp.wait_for(2)}
        opened, escalated = mails["noc@acme.example"], mails[ADDRESS["tsm"]]
        assert opened.tls and opened.login == "watchkeeper"
        assert opened.subject.startswith(f"[watchkeeper #{ticket}] ")
        assert f"opened request #{ticket}" in opened.body
        assert escalated.subject.startswith(
            f"[watchkeeper #{ticket}] Escalation to Technical Support Manager (P1 immediately)")
        assert escalated.message["X-Watchkeeper-Ticket"] == str(ticket)
        # nothing more to send, and the clocks decide nothing new
        assert send_due(engine, settings.notifications, clock=clock).claimed == 0
        assert run_clocks(engine, policy, settings, T0 + 20).escalations == []
    finally:
        smtp.stop()


def test_a_notice_given_up_is_said_in_the_tickets_audit_log(db_url, tmp_path, store_for):
    smtp = start_smtp(tmp_path, username="watchkeeper", password="s3cret")
    try:
        smtp.refuse("noc@acme.example")
        settings, policy, engine = store_for(make_settings(db_url, smtp, tmp_path))
        ticket = open_ticket((settings, policy, engine), "P3")
        report = send_due(engine, settings.notifications, clock=FakeClock(T0 + 1))
        assert len(report.dead) == 1
        (event,) = events(engine, "notice_failed")
        assert event["ticket_id"] == ticket and event["actor"] == "watchkeeper"
        assert "opened notice by email to noc@acme.example not delivered" in event["text"]
        assert "550" in event["text"]
        assert event["problem_key"] == "acme/db1.acme.example/replication/replica"
    finally:
        smtp.stop()
