"""The ticket's life on a real store: opening, clocks, replies, priority, stall, breaches."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from checks.config import ConfigError
from collector.db import create_db_engine, migrate, write_transaction
from collector.notify.models import Notification
from collector.policy import build_policy
from collector.problems.keys import ProblemKey
from collector.tickets import service
from collector.tickets.models import Ticket, TicketBreach, TicketEvent
from collector.tickets.priority import Priority
from tests.collector.conftest import settings_for

KYIV = ZoneInfo("Europe/Kyiv")
# Friday 2026-11-20 10:00 in Kyiv (UTC+2 in November)
FRIDAY_10 = datetime(2026, 11, 20, 10, 0, tzinfo=KYIV).timestamp()
HOUR = 3600.0


@pytest.fixture
def store(db_url, enroll_host):
    settings = settings_for(
        db_url,
        calendars={"kyiv": {"timezone": "Europe/Kyiv", "country": "UA"}},
        customers={"acme": {"calendar": "kyiv", "contacts": ["noc@acme.example"]}},
        notifications={"smtp": {"host": "127.0.0.1", "port": 2525, "security": "none"},
                       "recipients": {"tsm": ["tsm@support.example"]}},
    )
    engine = create_db_engine(settings)
    migrate(engine)
    enroll_host(settings, "db1.acme.example", customer="acme")
    yield settings, build_policy(settings), engine
    engine.dispose()


def _open(store, *, priority="P2", now=FRIDAY_10, check="replication"):
    settings, policy, engine = store
    with write_transaction(engine) as conn:
        customer_id, host_id = conn.exec_driver_sql(
            "SELECT customer_id, id FROM hosts WHERE fqdn = 'db1.acme.example'").one()
        new = service.NewTicket(
            key=ProblemKey("acme", "db1.acme.example", check, "replica"),
            customer_id=customer_id, host_id=host_id, check_type="mysql_replication",
            subject="db1.acme.example: replication CRITICAL", priority=Priority(priority),
            priority_reason="default: replication stopped or failing, CRITICAL", status=2,
            evidence={"summary": "SQL thread stopped"})
        return service.open_ticket(conn, new=new, policy=policy, settings=settings, now=now)


def _ticket(engine, ticket_id):
    with engine.connect() as conn:
        return conn.execute(select(Ticket).where(Ticket.id == ticket_id)).mappings().one()


def _events(engine, ticket_id=None):
    with engine.connect() as conn:
        stmt = select(TicketEvent).order_by(TicketEvent.id)
        if ticket_id is not None:
            stmt = stmt.where(TicketEvent.ticket_id == ticket_id)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def _mails(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(Notification).order_by(Notification.id)).mappings()]


def test_a_ticket_opens_new_with_its_first_response_due_and_the_customer_is_told(store):
    _, _, engine = store
    ticket_id = _open(store, priority="P2")
    t = _ticket(engine, ticket_id)
    assert (t["state"], t["priority"]) == ("new", "P2")
    assert t["first_response_due"] == FRIDAY_10 + 2 * HOUR  # P2: 2 clock hours
    assert t["live_key"] == "acme/db1.acme.example/replication/replica"
    opened = [e for e in _events(engine, ticket_id) if e["kind"] == "opened"]
    assert len(opened) == 1 and "P2 (RT 60)" in opened[0]["text"]
    mails = _mails(engine)
    assert [(m["recipient"], m["kind"]) for m in mails] == [("noc@acme.example", "opened")]
    assert f"#{ticket_id}" in mails[0]["subject"]


def test_a_second_ticket_for_the_same_problem_is_not_opened_and_the_audit_says_why(store):
    _, _, engine = store
    first = _open(store)
    assert _open(store, now=FRIDAY_10 + 60) == first
    not_opened = [e for e in _events(engine) if e["kind"] == "not_opened"]
    assert len(not_opened) == 1
    assert not_opened[0]["data"]["reason"] == "duplicate"
    assert f"#{first}" in not_opened[0]["text"]


def test_a_p3_opened_friday_16_in_kyiv_is_due_monday_16(store):
    _, _, engine = store
    friday_16 = datetime(2026, 11, 20, 16, 0, tzinfo=KYIV).timestamp()
    t = _ticket(engine, _open(store, priority="P3", now=friday_16))
    assert t["first_response_due"] == datetime(2026, 11, 23, 16, 0, tzinfo=KYIV).timestamp()


def test_first_reply_is_the_first_response_and_starts_the_update_clock(store):
    settings, policy, engine = store
    ticket_id = _open(store)
    with write_transaction(engine) as conn:
        service.reply(conn, ticket_id, text="Looking at it.", actor="alice", policy=policy,
                      settings=settings, now=FRIDAY_10 + 30 * 60)
    t = _ticket(engine, ticket_id)
    assert t["state"] == "open"
    assert t["first_response_at"] == FRIDAY_10 + 30 * 60
    assert t["next_update_due"] == FRIDAY_10 + 30 * 60 + 2 * HOUR
    with write_transaction(engine) as conn:
        service.reply(conn, ticket_id, text="Replica restarted.", actor="alice",
                      policy=policy, settings=settings, now=FRIDAY_10 + HOUR)
    t = _ticket(engine, ticket_id)
    assert t["first_response_at"] == FRIDAY_10 + 30 * 60  # an update, not a new response
    assert t["next_update_due"] == FRIDAY_10 + 3 * HOUR
    replies = [m for m in _mails(engine) if m["kind"] == "reply"]
    assert len(replies) == 2


def test_a_late_first_response_records_one_breach_and_tells_the_tsm(store):
    settings, policy, engine = store
    ticket_id = _open(store)
    with write_transaction(engine) as conn:
        service.reply(conn, ticket_id, text="Sorry for the wait.", actor="bob",
                      policy=policy, settings=settings, now=FRIDAY_10 + 3 * HOUR)
        assert not service.record_breach(conn, ticket_id, kind="first_response",
                                         due_at=FRIDAY_10 + 2 * HOUR, now=FRIDAY_10 + 4 * HOUR,
                                         policy=policy, settings=settings)
    with engine.connect() as conn:
        breaches = conn.execute(select(TicketBreach)).mappings().all()
    assert [(b["kind"], b["late_seconds"]) for b in breaches] == [("first_response", 3600)]
    tsm = [m for m in _mails(engine) if m["recipient"] == "tsm@support.example"]
    assert [m["kind"] for m in tsm] == ["breach"]


def test_a_priority_change_needs_a_reason_and_restarts_the_clock_from_the_change(store):
    settings, policy, engine = store
    ticket_id = _open(store, priority="P2")
    with write_transaction(engine) as conn, pytest.raises(service.TicketInputError):
        service.change_priority(conn, ticket_id, priority="P1", reason=" ", actor="carol",
                                policy=policy, now=FRIDAY_10 + HOUR)
    with write_transaction(engine) as conn:
        service.change_priority(conn, ticket_id, priority="S1", reason="customer: outage",
                                actor="carol", policy=policy, now=FRIDAY_10 + HOUR)
    t = _ticket(engine, ticket_id)
    assert t["priority"] == "P1"
    assert t["first_response_due"] == FRIDAY_10 + 2 * HOUR  # 1 h from the change, not 1 h
    assert t["clock_started_at"] == FRIDAY_10 + HOUR
    changed = [e for e in _events(engine, ticket_id) if e["kind"] == "priority_changed"]
    assert len(changed) == 1
    assert changed[0]["actor"] == "carol"
    assert changed[0]["data"]["reason"] == "customer: outage"
    assert changed[0]["data"]["from"] == "P2" and changed[0]["data"]["to"] == "P1"


def test_the_system_only_raises_a_priority(store):
    _, policy, engine = store
    ticket_id = _open(store, priority="P2")
    with write_transaction(engine) as conn:
        assert not service.raise_priority(conn, ticket_id, priority="P3", reason="better",
                                          policy=policy, now=FRIDAY_10 + 60)
        assert service.raise_priority(conn, ticket_id, priority="P1", reason="worse",
                                      policy=policy, now=FRIDAY_10 + 60)
    assert _ticket(engine, ticket_id)["priority"] == "P1"
    kinds = [e["kind"] for e in _events(engine, ticket_id)]
    assert kinds.count("priority_raised") == 1


def test_stalled_stops_the_update_clock_and_it_runs_on_with_the_time_left(store):
    settings, policy, engine = store
    ticket_id = _open(store, priority="P2")
    with write_transaction(engine) as conn:
        service.reply(conn, ticket_id, text="Need your logs.", actor="alice", policy=policy,
                      settings=settings, now=FRIDAY_10)
        service.set_state(conn, ticket_id, state="stalled", actor="alice",
                          reason="waiting on the customer", policy=policy, settings=settings,
                          now=FRIDAY_10 + 30 * 60)
    t = _ticket(engine, ticket_id)
    assert t["next_update_due"] is None and t["update_left"] == 90 * 60
    with write_transaction(engine) as conn:
        service.set_state(conn, ticket_id, state="open", actor="alice", reason="logs arrived",
                          policy=policy, settings=settings, now=FRIDAY_10 + 5 * HOUR)
    assert _ticket(engine, ticket_id)["next_update_due"] == FRIDAY_10 + 5 * HOUR + 90 * 60


def test_recovered_untouched_ticket_resolves_after_the_hold_and_a_worked_one_waits(store):
    _, _, engine = store
    untouched = _open(store, check="replication")
    worked = _open(store, check="replication_lag")
    with write_transaction(engine) as conn:
        service.comment(conn, worked, text="watching", actor="alice", now=FRIDAY_10)
        for ticket_id in (untouched, worked):
            service.note_status(conn, ticket_id, kind="recovered", status=0,
                                text="OK again", now=FRIDAY_10 + 60)
        assert not service.resolve_recovered(conn, untouched, now=FRIDAY_10 + 60 + 899,
                                             hold=900)
        assert service.resolve_recovered(conn, untouched, now=FRIDAY_10 + 60 + 900, hold=900)
        assert not service.resolve_recovered(conn, worked, now=FRIDAY_10 + 2 * HOUR, hold=900)
    assert _ticket(engine, untouched)["state"] == "resolved"
    assert _ticket(engine, untouched)["live_key"] is None
    assert _ticket(engine, worked)["state"] == "new"


def test_a_failing_status_ends_the_recovery_hold(store):
    _, _, engine = store
    ticket_id = _open(store)
    with write_transaction(engine) as conn:
        service.note_status(conn, ticket_id, kind="recovered", status=0, text="OK",
                            now=FRIDAY_10 + 60)
        service.note_status(conn, ticket_id, kind="failing_again", status=2,
                            text="CRITICAL again", now=FRIDAY_10 + 120)
        assert not service.resolve_recovered(conn, ticket_id, now=FRIDAY_10 + 2 * HOUR,
                                             hold=900)


def test_reopen_makes_the_same_ticket_active_and_a_new_one_cannot_exist_beside_it(store):
    settings, policy, engine = store
    ticket_id = _open(store)
    with write_transaction(engine) as conn:
        service.set_state(conn, ticket_id, state="resolved", actor="alice", reason="fixed",
                          policy=policy, settings=settings, now=FRIDAY_10 + HOUR)
        assert service.recent_ticket(conn, ProblemKey(
            "acme", "db1.acme.example", "replication", "replica"),
            since=FRIDAY_10) == ticket_id
        service.reopen(conn, ticket_id, actor="watchkeeper", reason="failing again",
                       policy=policy, settings=settings, now=FRIDAY_10 + 2 * HOUR)
    t = _ticket(engine, ticket_id)
    assert t["state"] == "new" and t["resolved_at"] is None
    assert t["first_response_due"] == FRIDAY_10 + 4 * HOUR
    assert _open(store, now=FRIDAY_10 + 3 * HOUR) == ticket_id


def test_actions_refuse_bad_input_with_the_reason(store):
    settings, policy, engine = store
    ticket_id = _open(store)
    with write_transaction(engine) as conn:
        with pytest.raises(service.TicketInputError, match="state: must be one of"):
            service.set_state(conn, ticket_id, state="closed", actor="a", reason=None,
                              policy=policy, settings=settings, now=FRIDAY_10)
        with pytest.raises(service.TicketInputError, match="priority"):
            service.change_priority(conn, ticket_id, priority="P9", reason="x", actor="a",
                                    policy=policy, now=FRIDAY_10)
        with pytest.raises(service.TicketInputError, match="text"):
            service.reply(conn, ticket_id, text="", actor="a", policy=policy,
                          settings=settings, now=FRIDAY_10)
    with write_transaction(engine) as conn, pytest.raises(service.TicketNotFound):
        service.comment(conn, 999999, text="x", actor="a", now=FRIDAY_10)


def test_a_customer_naming_an_unknown_calendar_is_a_config_error():
    with pytest.raises(ConfigError, match="customers.acme.calendar"):
        build_policy(settings_for("sqlite://", customers={"acme": {"calendar": "mars"}}))


def test_staff_see_the_ticket_s_notices_and_a_viewer_does_not(store):
    from collector.tickets.queries import ticket_detail

    _, _, engine = store
    ticket_id = _open(store)
    with engine.connect() as conn:
        staff = ticket_detail(conn, ticket_id, scope=None, internal=True)
        viewer = ticket_detail(conn, ticket_id, scope=staff_customer(conn), internal=False)
    assert [(n.kind, n.channel, n.recipient, n.state, n.attempts) for n in staff.notices] == [
        ("opened", "email", "noc@acme.example", "pending", 0)]
    assert staff.notices[0].next_attempt_at is not None
    assert viewer.notices == []


def staff_customer(conn):
    return conn.exec_driver_sql("SELECT id FROM customers WHERE name = 'acme'").scalar()
