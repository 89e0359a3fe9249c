"""Tickets mirrored into a real Request Tracker 5, exactly once and in order, and read back.

One RT for the session (tests/services/rt.py: Debian's request-tracker5 on loopback with
its own SQLite database, set up with deploy/rt/watchkeeper.initialdata). The collector
side is the real ticket service on a real store; the connector's passes are driven by
the test (``Syncer.sync``, ``poll``) at a fake clock, so backoff needs no waiting.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select, update

from collector.db import create_db_engine, migrate, write_transaction
from collector.notify.models import Notification
from collector.policy import build_policy
from collector.problems.keys import ProblemKey
from collector.rt.client import RtClient
from collector.rt.models import DONE, PENDING, RtChange, RtLink, backlog, set_enabled
from collector.rt.poll import poll
from collector.rt.sync import Syncer
from collector.settings import Settings
from collector.tickets import service
from collector.tickets.models import Ticket, TicketEvent
from collector.tickets.priority import Priority
from tests.collector.conftest import FakeClock, settings_for
from tests.services.rt import (
    CONNECTOR_USER,
    STAFF_PASSWORD,
    STAFF_USER,
    FaultProxy,
    RtServer,
    rt_client,
)


def rt_settings(db_url: str, url: str, token: str, **extra: Any) -> Settings:
    return settings_for(
        db_url,
        customers={"acme": {"contacts": ["noc@acme.example"]}},
        notifications={"smtp": {"host": "127.0.0.1", "port": 2525, "security": "none"},
                       "public_url": "https://watchkeeper.example"},
        request_tracker={"url": url, "user": CONNECTOR_USER, "token": token,
                         "timeout": 5, "retry_first": 10, "retry_max": 300, **extra},
    )


class Side:
    """The collector's side of a test: store, policy, clock, connector."""

    def __init__(self, settings: Settings, enroll_host: Any) -> None:
        self.settings = settings
        self.policy = build_policy(settings)
        self.engine = create_db_engine(settings)
        migrate(self.engine)
        enroll_host(settings, "db1.acme.example", customer="acme")
        self.clock = FakeClock()  # now: RT stamps its transactions with the real time
        set_enabled(self.engine, True, now=self.clock())
        self.syncer = Syncer(self.engine, settings, clock=self.clock)
        assert settings.request_tracker is not None
        self.rt = RtClient(settings.request_tracker)

    def close(self) -> None:
        self.syncer.close()
        self.rt.close()
        self.engine.dispose()

    def open(self, check: str = "replication", priority: str = "P1") -> int:
        with write_transaction(self.engine) as conn:
            customer_id, host_id = conn.exec_driver_sql(
                "SELECT customer_id, id FROM hosts WHERE fqdn = 'db1.acme.example'").one()
            new = service.NewTicket(
                key=ProblemKey("acme", "db1.acme.example", check, "replica"),
                customer_id=customer_id, host_id=host_id, check_type="mysql_replication",
                subject=f"db1.acme.example: {check} CRITICAL", priority=Priority(priority),
                priority_reason="default: replication stopped, CRITICAL", status=2,
                evidence={"summary": "SQL thread stopped", "seconds_behind": None})
            return service.open_ticket(conn, new=new, policy=self.policy,
                                       settings=self.settings, now=self.clock())

    def act(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Run a ticket action in a write transaction at the fake clock, 1 s later."""
        self.clock.advance(1)
        with write_transaction(self.engine) as conn:
            fn(conn, *args, now=self.clock(), **kwargs)

    def sync_until_done(self, passes: int = 10) -> None:
        for _ in range(passes):
            self.syncer.sync()
            if self.backlog().pending == 0:
                return
            self.clock.advance(400)  # past any backoff
        raise AssertionError(f"changes still waiting for RT: {self.backlog()}")

    def backlog(self) -> Any:
        with self.engine.connect() as conn:
            return backlog(conn, now=self.clock())

    def rt_id(self, ticket_id: int) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(RtLink.rt_id).where(
                RtLink.ticket_id == ticket_id)).scalar_one())

    def ticket(self, ticket_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(Ticket).where(Ticket.id == ticket_id)).mappings().one()

    def events(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                .order_by(TicketEvent.id)).mappings()]

    def marks(self, ticket_id: int) -> list[str]:
        """The watchkeeper notes of the ticket's RT history, in RT's order."""
        return [t.subject.split("]")[0] + "]" for t in self.rt.history(self.rt_id(ticket_id))
                if t.type in ("Comment", "Correspond") and t.subject.startswith("[watchkeeper #")]


@pytest.fixture
def side(db_url: str, rt_server: RtServer, rt_token: str, enroll_host: Any):
    """On both stores: the claims differ (SKIP LOCKED on PostgreSQL)."""
    s = Side(rt_settings(db_url, rt_server.url, rt_token), enroll_host)
    yield s
    s.close()


def _rt_ticket(client: RtClient, rt_id: int) -> dict[str, Any]:
    data: dict[str, Any] = client._call("GET", f"/ticket/{rt_id}")  # RT's own record
    return data


def test_a_p1_opens_an_rt_ticket_with_priority_80_and_every_change_follows_in_order(side):
    ticket_id = side.open(priority="P1")
    report = side.syncer.sync()
    assert len(report.created) == 1 and report.done
    rt_id = side.rt_id(ticket_id)
    assert side.ticket(ticket_id)["external_ref"] == f"RT #{rt_id}"  # in the API too
    record = _rt_ticket(side.rt, rt_id)
    assert record["Priority"] == "80"
    assert record["Queue"]["id"] in ("1", 1) or record["Queue"].get("Name") == "General"
    assert record["Subject"] == "db1.acme.example: replication CRITICAL"
    assert [r["id"] for r in record["Requestor"]] == ["noc@acme.example"]
    key = f"acme/db1.acme.example/replication/replica #{ticket_id}@"
    assert side.rt.find_by_key(next(v for f in record["CustomFields"]
                                    if f["name"] == "Watchkeeper Key"
                                    for v in f["values"])) == rt_id
    assert any(key in v for f in record["CustomFields"] for v in f["values"])
    create = side.rt.history(rt_id)[0]
    assert create.type == "Create"
    assert "SQL thread stopped" in side.rt.content(create.id)  # the evidence

    # Activity on the ticket: monitoring notes, a reply, a priority change, resolve.
    side.act(service.note_status, ticket_id, kind="worsened", status=2,
             text="replication: lag 900 s")
    side.act(service.reply, ticket_id, text="We are on it.", actor="tse.olena",
             policy=side.policy, settings=side.settings)
    side.act(service.change_priority, ticket_id, priority="P2", reason="a replica only",
             actor="tse.olena", policy=side.policy)
    side.act(service.set_state, ticket_id, state="resolved", actor="tse.olena",
             reason="replica resynced", policy=side.policy, settings=side.settings)
    side.sync_until_done()

    events = [e for e in side.events(ticket_id) if e["kind"] != "opened"]
    assert side.marks(ticket_id) == [f"[watchkeeper #{ticket_id}/{e['id']}]" for e in events]
    history = side.rt.history(rt_id)
    kinds = [(t.type, t.field or "") for t in history
             if t.type in ("Comment", "Correspond", "Set", "Status")]
    # In the collector's order: note, reply (RT opens the ticket on it), priority (the
    # field, then its note), resolved (its note, then the status).
    assert kinds == [("Comment", ""), ("Correspond", ""), ("Status", "Status"),
                     ("Set", "Priority"), ("Comment", ""), ("Comment", ""),
                     ("Status", "Status")]
    priority_set = next(t for t in history if t.field == "Priority")
    assert (priority_set.old, priority_set.new) == ("80", "60")
    record = _rt_ticket(side.rt, rt_id)
    assert (record["Status"], record["Priority"]) == ("resolved", "60")
    assert side.backlog().pending == 0


def test_a_reply_made_in_rt_by_staff_is_the_collector_tickets_first_response(
        side, rt_server, rt_token):
    ticket_id = side.open(priority="P2")
    side.sync_until_done()
    rt_id = side.rt_id(ticket_id)
    assert side.ticket(ticket_id)["first_response_at"] is None
    staff = staff_client(rt_server)
    staff.correspond(rt_id, subject="Re: replication", content="Looking at the replica now.")
    replied_at = staff.history(rt_id)[-1].created
    side.clock.now = replied_at + 120  # read back two minutes later
    report = poll(side.engine, side.settings, side.policy, side.rt, clock=side.clock)
    assert [what for _, what in report.applied] == ["reply"]
    t = side.ticket(ticket_id)
    assert t["first_response_at"] == pytest.approx(replied_at, abs=1)  # RT's time, not ours
    assert t["state"] == "open" and t["next_update_due"] is not None
    reply = side.events(ticket_id)[-1]
    assert (reply["kind"], reply["actor"]) == ("reply", f"rt:{STAFF_USER}")
    assert "Looking at the replica now." in reply["text"]
    # Not sent back to RT, and the customer is not mailed a second time (RT did).
    with side.engine.connect() as conn:
        assert conn.execute(select(RtChange).where(
            RtChange.event_id == reply["id"])).first() is None
        kinds = list(conn.execute(select(Notification.kind)).scalars())
    assert "reply" not in kinds

    # Staff comment and resolve in RT; a second poll applies nothing twice.
    staff.comment(rt_id, subject="note", content="resynced from the primary")
    staff.update(rt_id, {"Status": "resolved"})
    side.clock.advance(60)
    report = poll(side.engine, side.settings, side.policy, side.rt, clock=side.clock)
    assert [what for _, what in report.applied] == ["comment", "resolved"]
    assert side.ticket(ticket_id)["state"] == "resolved"
    again = poll(side.engine, side.settings, side.policy, side.rt, clock=side.clock)
    assert again.applied == []
    assert [e["kind"] for e in side.events(ticket_id)].count("reply") == 1
    staff.close()


def staff_client(rt_server: RtServer) -> RtClient:
    return rt_client(rt_server.url, STAFF_USER, password=STAFF_PASSWORD)


def test_rt_stopped_during_activity_every_change_lands_once_and_in_order(side, rt_server):
    first = side.open(check="replication", priority="P1")
    side.sync_until_done()
    rt_server.stop()
    try:
        second = side.open(check="backup", priority="P3")
        side.act(service.note_status, first, kind="improved", status=1, text="lag 30 s")
        side.act(service.comment, first, text="checking the relay log", actor="tse.olena")
        side.act(service.change_priority, first, priority="P2", reason="degraded only",
                 actor="tse.olena", policy=side.policy)
        side.act(service.reply, second, text="Backup is being rerun.", actor="tse.olena",
                 policy=side.policy, settings=side.settings)
        for _ in range(3):
            report = side.syncer.sync()
            assert report.done == [] and len(report.retried) == 1  # one try, then it waits
            side.clock.advance(400)
        waiting = side.backlog()
        assert (waiting.pending, waiting.tickets) == (5, 2)
        assert waiting.failing >= 1 and "127.0.0.1" in (waiting.last_error or "")
        assert waiting.oldest_seconds > 1000
    finally:
        rt_server.restart()
    side.sync_until_done()
    for ticket_id in (first, second):
        events = [e for e in side.events(ticket_id) if e["kind"] != "opened"]
        assert side.marks(ticket_id) == [f"[watchkeeper #{ticket_id}/{e['id']}]"
                                         for e in events]
    record = _rt_ticket(side.rt, side.rt_id(first))
    assert record["Priority"] == "60"
    with side.engine.connect() as conn:
        states = Counter(conn.execute(select(RtChange.state)).scalars())
    assert states == Counter({DONE: 6})  # two creates, three changes, one reply


def test_a_create_whose_answer_was_lost_makes_no_second_rt_ticket(
        tmp_path, rt_server, rt_token, enroll_host):
    with FaultProxy(rt_server.port) as proxy:
        side = Side(rt_settings(f"sqlite:///{tmp_path / 'c.db'}", proxy.url, rt_token),
                    enroll_host)
        try:
            proxy.drop_response_of("POST", "/REST/2.0/ticket")
            ticket_id = side.open()
            report = side.syncer.sync()
            assert report.created == [] and len(report.retried) == 1
            with side.engine.connect() as conn:
                change = conn.execute(select(RtChange)).mappings().one()
            assert change["state"] == PENDING and change["last_error"]
            side.clock.advance(400)
            report = side.syncer.sync()
            assert report.created == [] and len(report.found) == 1  # found by the key field
            assert proxy.requests[("POST", "/REST/2.0/ticket")] == 1
            rt_id = side.rt_id(ticket_id)
            key = next(v for f in _rt_ticket(side.rt, rt_id)["CustomFields"]
                       if f["name"] == "Watchkeeper Key" for v in f["values"])
            found = side.rt._search(f"'CF.{{Watchkeeper Key}}' = '{key}'")
            assert [int(item["id"]) for item in found] == [rt_id]
        finally:
            side.close()


def test_a_note_whose_answer_was_lost_is_not_added_twice(tmp_path, rt_server, rt_token,
                                                         enroll_host):
    with FaultProxy(rt_server.port) as proxy:
        side = Side(rt_settings(f"sqlite:///{tmp_path / 'c.db'}", proxy.url, rt_token),
                    enroll_host)
        try:
            ticket_id = side.open()
            side.sync_until_done()
            rt_id = side.rt_id(ticket_id)
            proxy.drop_response_of("POST", f"/REST/2.0/ticket/{rt_id}/comment")
            side.act(service.comment, ticket_id, text="one note only", actor="tse.olena")
            assert len(side.syncer.sync().retried) == 1
            side.sync_until_done()
            assert proxy.requests[("POST", f"/REST/2.0/ticket/{rt_id}/comment")] == 1
            notes = [t for t in side.rt.history(rt_id) if t.type == "Comment"]
            assert len(notes) == 1
        finally:
            side.close()


def test_a_queue_rt_refuses_keeps_the_create_waiting_until_the_setup_is_fixed(
        tmp_path, rt_server, rt_token, enroll_host):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    side = Side(rt_settings(url, rt_server.url, rt_token, queue="No Such Queue"), enroll_host)
    try:
        ticket_id = side.open()
        side.act(service.comment, ticket_id, text="after the create", actor="tse.olena")
        for _ in range(3):
            report = side.syncer.sync()
            assert report.created == [] and report.dead == []
            side.clock.advance(400)
        waiting = side.backlog()
        assert waiting.pending == 2 and waiting.dead == 0
        assert "No Such Queue" in (waiting.last_error or "")
    finally:
        side.syncer.close()
    # The operator fixes the queue: the create and then the comment go, in order.
    fixed = Syncer(side.engine, rt_settings(url, rt_server.url, rt_token), clock=side.clock)
    side.syncer = fixed
    side.sync_until_done()
    assert side.marks(ticket_id) == [f"[watchkeeper #{ticket_id}/"
                                     f"{side.events(ticket_id)[-1]['id']}]"]
    side.close()


def test_two_collectors_sending_together_bring_each_change_once(pg_url, rt_server, rt_token,
                                                               enroll_host):
    side = Side(rt_settings(pg_url, rt_server.url, rt_token), enroll_host)
    other = Syncer(side.engine, side.settings, clock=side.clock)
    try:
        tickets = [side.open(check=f"disk{i}", priority="P3") for i in range(4)]
        for ticket_id in tickets:
            side.act(service.comment, ticket_id, text="first", actor="tse.olena")
            side.act(service.comment, ticket_id, text="second", actor="tse.olena")
        with ThreadPoolExecutor(2) as pool:
            reports = list(pool.map(lambda s: s.sync(), [side.syncer, other]))
        assert all(r.retried == [] and r.dead == [] for r in reports)
        assert sorted(reports[0].done + reports[1].done) == list(range(1, 13))
        assert len(reports[0].created) + len(reports[1].created) == 4
        for ticket_id in tickets:
            events = [e for e in side.events(ticket_id) if e["kind"] != "opened"]
            assert side.marks(ticket_id) == [f"[watchkeeper #{ticket_id}/{e['id']}]"
                                             for e in events]
    finally:
        other.close()
        side.close()


def test_reopened_on_either_side_is_reopened_on_the_other(side, rt_server):
    ticket_id = side.open(priority="P3")
    side.act(service.set_state, ticket_id, state="resolved", actor="tse.olena",
             reason="fixed", policy=side.policy, settings=side.settings)
    side.sync_until_done()
    rt_id = side.rt_id(ticket_id)
    assert _rt_ticket(side.rt, rt_id)["Status"] == "resolved"
    # Staff open it again in RT: the collector's ticket is active again.
    staff = staff_client(rt_server)
    staff.update(rt_id, {"Status": "open"})
    side.clock.advance(60)
    report = poll(side.engine, side.settings, side.policy, side.rt, clock=side.clock)
    assert [what for _, what in report.applied] == ["reopen"]
    assert side.ticket(ticket_id)["state"] in ("new", "open")
    # Resolved and reopened in watchkeeper: RT follows.
    side.act(service.set_state, ticket_id, state="resolved", actor="tse.olena",
             reason="fixed again", policy=side.policy, settings=side.settings)
    side.act(service.set_state, ticket_id, state="reopen", actor="tse.olena",
             reason="it came back", policy=side.policy, settings=side.settings)
    side.sync_until_done()
    statuses = [(t.old, t.new) for t in side.rt.history(rt_id) if t.type == "Status"]
    assert statuses[-3:] == [("resolved", "open"), ("open", "resolved"), ("resolved", "open")]
    staff.close()


def test_a_key_field_rt_drops_still_links_the_ticket_once(tmp_path, rt_server, rt_token,
                                                          enroll_host, caplog):
    settings = rt_settings(f"sqlite:///{tmp_path / 'c.db'}", rt_server.url, rt_token,
                           key_field="No Such Field")
    side = Side(settings, enroll_host)
    try:
        ticket_id = side.open()
        side.act(service.comment, ticket_id, text="after the create", actor="tse.olena")
        report = side.syncer.sync()
        assert len(report.created) == 1 and report.retried == [] and len(report.done) == 2
        assert side.rt_id(ticket_id) == report.created[0]
        assert "without its custom field 'No Such Field'" in caplog.text
        side.act(service.comment, ticket_id, text="later", actor="tse.olena")
        again = side.syncer.sync()
        assert again.created == [] and len(again.done) == 1  # no second RT ticket
    finally:
        side.close()


def test_a_change_rt_refuses_for_good_is_given_up_after_max_attempts_and_audited(
        tmp_path, rt_server, rt_token, enroll_host):
    side = Side(rt_settings(f"sqlite:///{tmp_path / 'c.db'}", rt_server.url, rt_token,
                            max_attempts=2), enroll_host)
    try:
        ticket_id = side.open()
        side.sync_until_done()
        # The link points at a ticket RT does not have: RT refuses every note for good.
        with write_transaction(side.engine) as conn:
            conn.execute(update(RtLink).where(RtLink.ticket_id == ticket_id)
                         .values(rt_id=10_000_000))
        side.act(service.comment, ticket_id, text="refused", actor="tse.olena")
        side.act(service.comment, ticket_id, text="refused too", actor="tse.olena")
        dead: list[int] = []
        for _ in range(5):
            dead += side.syncer.sync().dead
            side.clock.advance(400)  # past retry_max
        assert len(dead) == 2  # the first given up, then the one behind it went on
        waiting = side.backlog()
        assert (waiting.pending, waiting.dead) == (0, 2)
        failed = [e for e in side.events(ticket_id) if e["kind"] == "rt_failed"]
        assert len(failed) == 2 and all(e["actor"] == "rt:watchkeeper" for e in failed)
        assert "after 2 tries" in failed[0]["text"]
        with side.engine.connect() as conn:  # the audit of a failure is not sent to RT
            assert conn.execute(select(RtChange).where(
                RtChange.event_id.in_([e["id"] for e in failed]))).first() is None
    finally:
        side.close()
