"""Maintenance windows: what they cover, when (across DST), and what is refused; both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from collector.db import create_db_engine, write_transaction
from collector.errors import NotFound
from collector.hosts.models import Customer
from collector.maintenance.service import (
    WindowError,
    covering_window,
    create_window,
    delete_window,
    get_window,
    list_windows,
)
from collector.tickets.models import TicketEvent

NOW = datetime.fromisoformat("2027-01-10T12:00Z").timestamp()


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def store(settings: Any, enroll_host: Any) -> Iterator[Engine]:
    """A migrated store with customers acme (db1, db2) and globex (gx1)."""
    enroll_host(settings, "db1.acme.example", "acme")
    enroll_host(settings, "db2.acme.example", "acme")
    enroll_host(settings, "gx1.globex.example", "globex")
    engine = create_db_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()


def customer_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        found: int = conn.execute(
            select(Customer.id).where(Customer.name == name)).scalar_one()
        return found


def add(engine: Engine, **fields: Any) -> int:
    window: dict[str, Any] = {
        "customer": "acme", "host": None, "check": None, "recurrence": "once",
        "timezone": "UTC", "until": None, "reason": "kernel upgrade",
        "created_by": "alice", "now": NOW,
    }
    window.update(fields)
    with write_transaction(engine) as conn:
        return create_window(conn, **window)


def covering(engine: Engine, at: float, host: str = "db1.acme.example", check: str = "disk",
             customer: str = "acme") -> Any:
    with engine.connect() as conn:
        return covering_window(conn, customer_id=customer_id(engine, customer), host=host,
                               check=check, at=at)


def refused(engine: Engine, **fields: Any) -> WindowError:
    with pytest.raises(WindowError) as caught:
        add(engine, **fields)
    return caught.value


def test_a_customer_window_covers_every_host_and_check_of_that_customer_only(store):
    wid = add(store, starts_at=ts("2027-02-01T10:00Z"), ends_at=ts("2027-02-01T12:00Z"))
    at = ts("2027-02-01T11:00Z")
    match = covering(store, at)
    assert (match.id, match.reason) == (wid, "kernel upgrade")
    assert (match.starts_at, match.ends_at) == (ts("2027-02-01T10:00Z"), ts("2027-02-01T12:00Z"))
    assert covering(store, at, host="db2.acme.example", check="mysql_replication").id == wid
    assert covering(store, at, host="gx1.globex.example", customer="globex") is None


def test_a_host_window_covers_every_check_of_that_host_and_no_other_host(store):
    wid = add(store, host="db1.acme.example", starts_at=ts("2027-02-01T10:00Z"),
              ends_at=ts("2027-02-01T12:00Z"))
    at = ts("2027-02-01T11:00Z")
    assert covering(store, at, check="disk").id == wid
    assert covering(store, at, check="ntp").id == wid
    assert covering(store, at, host="db2.acme.example") is None


def test_a_check_window_covers_only_that_check_of_that_host(store):
    wid = add(store, host="db1.acme.example", check="mysql_replication",
              starts_at=ts("2027-02-01T10:00Z"), ends_at=ts("2027-02-01T12:00Z"))
    at = ts("2027-02-01T11:00Z")
    assert covering(store, at, check="mysql_replication").id == wid
    assert covering(store, at, check="disk") is None
    assert covering(store, at, host="db2.acme.example", check="mysql_replication") is None


def test_a_one_off_window_includes_its_start_and_excludes_its_end(store):
    start, end = ts("2027-02-01T10:00Z"), ts("2027-02-01T12:00Z")
    add(store, starts_at=start, ends_at=end)
    assert covering(store, start - 0.001) is None
    assert covering(store, start) is not None
    assert covering(store, end - 0.001) is not None
    assert covering(store, end) is None
    assert covering(store, ts("2027-02-02T11:00Z")) is None  # once means once


def test_when_windows_overlap_the_one_ending_last_is_reported(store):
    add(store, starts_at=ts("2027-02-01T10:00Z"), ends_at=ts("2027-02-01T12:00Z"))
    longer = add(store, host="db1.acme.example", starts_at=ts("2027-02-01T09:00Z"),
                 ends_at=ts("2027-02-01T15:00Z"), reason="disk swap")
    match = covering(store, ts("2027-02-01T11:00Z"))
    assert (match.id, match.reason, match.ends_at) == (longer, "disk swap",
                                                       ts("2027-02-01T15:00Z"))


def test_a_daily_window_keeps_its_local_time_across_the_spring_dst_change(store):
    # 02:00-04:00 in Kyiv: 00:00-02:00 UTC in winter (EET), 23:00-01:00 UTC in summer
    # (EEST, from 28 March 2027). A window repeated every 86400 s would drift an hour.
    wid = add(store, recurrence="daily", timezone="Europe/Kyiv",
              starts_at=ts("2027-03-25T02:00+02:00"), ends_at=ts("2027-03-25T04:00+02:00"))
    assert covering(store, ts("2027-03-26T00:30Z")).id == wid  # 02:30 EET
    assert covering(store, ts("2027-03-26T02:00Z")) is None  # 04:00 EET
    # On the night of the change 03:00-04:00 does not exist: the window is 00:00-01:00 UTC.
    night = covering(store, ts("2027-03-28T00:30Z"))
    assert (night.starts_at, night.ends_at) == (ts("2027-03-28T00:00Z"),
                                                ts("2027-03-28T01:00Z"))
    summer = covering(store, ts("2027-03-29T23:30Z"))  # 02:30 EEST on 30 March
    assert summer is not None
    assert (summer.starts_at, summer.ends_at) == (ts("2027-03-30T02:00+03:00"),
                                                  ts("2027-03-30T04:00+03:00"))
    assert covering(store, ts("2027-03-30T01:30Z")) is None  # 04:30 EEST: over
    assert covering(store, ts("2027-03-29T22:30Z")) is None  # 01:30 EEST: not yet


def test_a_weekly_window_keeps_its_local_time_across_the_autumn_dst_change(store):
    # Wednesdays 22:00-23:00 in Kyiv; summer time ends on Sunday 31 October 2027.
    wid = add(store, recurrence="weekly", timezone="Europe/Kyiv",
              starts_at=ts("2027-10-20T22:00+03:00"), ends_at=ts("2027-10-20T23:00+03:00"))
    assert covering(store, ts("2027-10-27T19:30Z")).id == wid  # 22:30 EEST
    assert covering(store, ts("2027-11-03T19:30Z")) is None  # 21:30 EET
    winter = covering(store, ts("2027-11-03T20:30Z"))  # 22:30 EET
    assert winter.id == wid
    assert (winter.starts_at, winter.ends_at) == (ts("2027-11-03T20:00Z"),
                                                  ts("2027-11-03T21:00Z"))
    assert covering(store, ts("2027-10-28T19:30Z")) is None  # a Thursday
    assert covering(store, ts("2028-06-07T19:30Z")).id == wid  # no until: repeats on


def test_until_ends_the_repetition_with_the_last_occurrence_starting_by_then(store):
    add(store, recurrence="daily", starts_at=ts("2027-02-01T01:00Z"),
        ends_at=ts("2027-02-01T03:00Z"), until=ts("2027-02-03T01:00Z"))
    assert covering(store, ts("2027-02-02T02:00Z")) is not None
    assert covering(store, ts("2027-02-03T02:59Z")) is not None  # starts at until: included
    assert covering(store, ts("2027-02-04T02:00Z")) is None
    add(store, customer="globex", recurrence="daily", starts_at=ts("2027-02-01T01:00Z"),
        ends_at=ts("2027-02-01T03:00Z"), until=ts("2027-02-03T00:59Z"))
    assert covering(store, ts("2027-02-02T02:00Z"), host="gx1", customer="globex") is not None
    assert covering(store, ts("2027-02-03T02:00Z"), host="gx1", customer="globex") is None


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"ends_at": ts("2027-02-01T09:00Z")}, "ends_at", "end after it starts"),
    ({"ends_at": ts("2027-02-01T10:00Z")}, "ends_at", "end after it starts"),
    ({"host": "gx1.globex.example"}, "host", "does not belong to customer 'acme'"),
    ({"host": "nowhere.example"}, "host", "no enrolled host 'nowhere.example'"),
    ({"check": "disk"}, "check", "needs the host"),
    ({"timezone": "Europe/Kiev-ish"}, "timezone", "unknown time zone 'Europe/Kiev-ish'"),
    ({"timezone": "../etc/passwd"}, "timezone", "unknown time zone"),
    ({"recurrence": "daily", "until": ts("2027-02-01T09:00Z")}, "until", "after the window"),
    ({"until": ts("2027-03-01T00:00Z")}, "until", "only a daily or weekly window"),
    ({"recurrence": "daily", "ends_at": ts("2027-02-02T11:00Z")}, "ends_at",
     "cannot last longer than its period (25h > 24h)"),
    ({"recurrence": "weekly", "ends_at": ts("2027-02-08T11:00Z")}, "ends_at",
     "cannot last longer than its period (169h > 168h)"),
    ({"recurrence": "hourly"}, "recurrence", "'hourly' is not one of once, daily, weekly"),
    ({"customer": "initech"}, "customer", "no customer 'initech'"),
    ({"reason": "  "}, "reason", "a reason is required"),
    ({"starts_at": ts("2027-01-01T10:00Z"), "ends_at": ts("2027-01-01T12:00Z")}, "ends_at",
     "over already"),
    ({"recurrence": "daily", "until": ts("2027-01-05T00:00Z"),
      "starts_at": ts("2027-01-01T10:00Z"), "ends_at": ts("2027-01-01T12:00Z")}, "until",
     "over already"),
])
def test_a_window_that_cannot_work_is_refused_naming_the_input(store, fields, field, words):
    window = {"starts_at": ts("2027-02-01T10:00Z"), "ends_at": ts("2027-02-01T12:00Z"),
              **fields}
    error = refused(store, **window)
    assert error.field == field
    assert words in error.detail and error.detail.startswith(f"{field}: ")
    assert error.status_code == 422
    with store.connect() as conn:
        assert list_windows(conn) == []


def test_a_week_long_weekly_window_is_allowed(store):
    add(store, recurrence="weekly", starts_at=ts("2027-02-01T10:00Z"),
        ends_at=ts("2027-02-08T10:00Z"))
    assert covering(store, ts("2027-02-20T00:00Z")) is not None


def test_list_by_customer_and_by_what_is_active(store):
    daily = add(store, recurrence="daily", starts_at=ts("2027-02-01T01:00Z"),
                ends_at=ts("2027-02-01T03:00Z"))
    later = add(store, host="db1.acme.example", starts_at=ts("2027-05-01T00:00Z"),
                ends_at=ts("2027-05-02T00:00Z"))
    other = add(store, customer="globex", starts_at=ts("2027-02-01T00:00Z"),
                ends_at=ts("2027-02-09T00:00Z"))
    with store.connect() as conn:
        assert [w.id for w in list_windows(conn)] == [daily, later, other]
        acme = list_windows(conn, customer_id=customer_id(store, "acme"))
        assert [(w.id, w.customer, w.scope) for w in acme] == [
            (daily, "acme", "customer"), (later, "acme", "host")]
        active = list_windows(conn, active_at=ts("2027-02-05T02:00Z"))
        assert [w.id for w in active] == [daily, other]
        assert [w.id for w in list_windows(conn, active_at=ts("2027-02-05T04:00Z"))] == [other]
        window = get_window(conn, daily)
    assert window.upcoming(ts("2027-02-05T04:00Z")) == (ts("2027-02-06T01:00Z"),
                                                         ts("2027-02-06T03:00Z"))
    assert (window.created_by, window.created_at, window.timezone) == ("alice", NOW, "UTC")


def test_deleting_a_window_ends_its_cover_and_the_audit_log_says_who(store):
    wid = add(store, starts_at=ts("2027-02-01T10:00Z"), ends_at=ts("2027-02-01T12:00Z"))
    assert covering(store, ts("2027-02-01T11:00Z")) is not None
    with write_transaction(store) as conn:
        deleted = delete_window(conn, wid, actor="bob", now=NOW + 60)
    assert deleted.reason == "kernel upgrade"
    assert covering(store, ts("2027-02-01T11:00Z")) is None
    with store.connect() as conn:
        events = conn.execute(select(
            TicketEvent.kind, TicketEvent.actor, TicketEvent.at, TicketEvent.ticket_id,
            TicketEvent.customer_id, TicketEvent.data,
        ).order_by(TicketEvent.id)).all()
        with pytest.raises(NotFound, match=f"no maintenance window {wid}"):
            get_window(conn, wid)
    acme = customer_id(store, "acme")
    assert [(e.kind, e.actor, e.at, e.ticket_id, e.customer_id) for e in events] == [
        ("maintenance_created", "alice", NOW, None, acme),
        ("maintenance_deleted", "bob", NOW + 60, None, acme),
    ]
    assert events[1].data["window_id"] == wid
    with write_transaction(store) as conn, pytest.raises(NotFound):
        delete_window(conn, wid, actor="bob", now=NOW + 120)


def test_a_configured_customer_without_hosts_yet_can_have_a_window(store):
    fields = {"starts_at": ts("2027-02-01T10:00Z"), "ends_at": ts("2027-02-01T12:00Z")}
    assert refused(store, customer="initech", **fields).field == "customer"
    wid = add(store, customer="initech", known_customers={"initech"}, **fields)
    with store.connect() as conn:
        assert get_window(conn, wid).customer == "initech"
    assert covering(store, ts("2027-02-01T11:00Z"), host="new.initech.example",
                    customer="initech").id == wid


def test_a_local_end_skipped_by_dst_is_read_with_the_offset_before_the_change(store):
    # 02:00-03:30 daily in Kyiv; on 28 March 2027 03:00-04:00 does not exist, so that
    # night's 03:30 is 04:30 summer time: the occurrence still lasts an hour and a half.
    add(store, recurrence="daily", timezone="Europe/Kyiv",
        starts_at=ts("2027-03-26T02:00+02:00"), ends_at=ts("2027-03-26T03:30+02:00"))
    night = covering(store, ts("2027-03-28T01:29Z"))
    assert (night.starts_at, night.ends_at) == (ts("2027-03-28T00:00Z"),
                                                ts("2027-03-28T01:30Z"))
    assert covering(store, ts("2027-03-28T01:30Z")) is None
