"""The commitments table, due times, priority changes, stalled pauses and breaches."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from checks.config import ConfigError
from collector.sla import (
    BusinessCalendar,
    ClockKind,
    Pause,
    SlaPolicy,
    SlaState,
    as_utc,
    calendar_from_table,
    first_response_due,
    judge,
    next_update_due,
    priority_key,
    restart_clock,
    sla_policy_from_table,
)

KYIV_TZ = ZoneInfo("Europe/Kyiv")
NY_TZ = ZoneInfo("America/New_York")
KYIV = calendar_from_table("kyiv", {
    "timezone": "Europe/Kyiv", "extra_holidays": ["2026-12-31", "2027-01-01"],
})
NEW_YORK = calendar_from_table("new-york", {
    "timezone": "America/New_York", "country": "US", "subdivision": "NY",
})
UTC_CAL = BusinessCalendar()
DEFAULT = SlaPolicy.default()
SAME_TIME = sla_policy_from_table({"business_day": "same-time-next-business-day"})


def kyiv(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=KYIV_TZ, fold=fold)  # type: ignore[misc]


def new_york(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NY_TZ, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# 2026-11-27 is a Friday, 2026-11-28 a Saturday.
@pytest.mark.parametrize(("priority", "opened", "due"), [
    pytest.param("P1", kyiv(2026, 11, 28, 23, 30), kyiv(2026, 11, 29, 0, 30),
                 id="first response P1 opened Saturday 23:30 is due Sunday 00:30, on the clock"),
    pytest.param("P2", kyiv(2026, 11, 28, 23, 30), kyiv(2026, 11, 29, 1, 30),
                 id="first response P2 opened Saturday 23:30 is due Sunday 01:30, on the clock"),
    pytest.param("P3", kyiv(2026, 11, 27, 10), kyiv(2026, 11, 30, 10),
                 id="first response P3 opened Friday 10:00 is due Monday 10:00 (1 business day)"),
    pytest.param("P4", kyiv(2026, 11, 27, 10), kyiv(2026, 12, 1, 10),
                 id="first response P4 opened Friday 10:00 is due Tuesday 10:00 (2 business days)"),
])
def test_first_response_table(priority, opened, due):
    got = first_response_due(opened_at=opened, priority=priority, calendar=KYIV, policy=DEFAULT)
    assert got == as_utc(due)


@pytest.mark.parametrize(("priority", "last_update", "due"), [
    pytest.param("P1", kyiv(2026, 11, 29, 3), kyiv(2026, 11, 29, 4),
                 id="updates P1 hourly: last Sunday 03:00, next due Sunday 04:00"),
    pytest.param("P2", kyiv(2026, 11, 29, 3), kyiv(2026, 11, 29, 5),
                 id="updates P2 every two hours: last Sunday 03:00, next due Sunday 05:00"),
    pytest.param("P3", kyiv(2026, 11, 26, 15), kyiv(2026, 11, 27, 15),
                 id="updates P3 once per business day: last Thursday 15:00, next Friday 15:00"),
    pytest.param("P3", kyiv(2026, 11, 27, 15), kyiv(2026, 11, 30, 15),
                 id="updates P3 once per business day: last Friday 15:00, next Monday 15:00"),
    pytest.param("P4", kyiv(2026, 11, 26, 15), kyiv(2026, 11, 30, 15),
                 id="updates P4 every other business day: last Thursday 15:00, next Monday 15:00"),
])
def test_update_table(priority, last_update, due):
    got = next_update_due(last_update_at=last_update, priority=priority, calendar=KYIV,
                          policy=DEFAULT)
    assert got == as_utc(due)


@pytest.mark.parametrize(("opened", "due_local"), [
    pytest.param(kyiv(2026, 3, 29, 2, 30), kyiv(2026, 3, 29, 4, 30),
                 id="P1 opened 02:30 Kyiv on the spring DST night is due 04:30 local"),
    pytest.param(kyiv(2026, 10, 25, 3, 30), kyiv(2026, 10, 25, 3, 30, fold=1),
                 id="P1 opened 03:30 Kyiv on the autumn DST night is due 03:30 again"),
    pytest.param(new_york(2026, 3, 8, 1, 30), new_york(2026, 3, 8, 3, 30),
                 id="P1 opened 01:30 New York on the spring DST night is due 03:30 local"),
    pytest.param(new_york(2026, 11, 1, 1, 30), new_york(2026, 11, 1, 1, 30, fold=1),
                 id="P1 opened 01:30 New York on the autumn DST night is due 01:30 again"),
])
def test_p1_is_3600_elapsed_seconds_across_dst(opened, due_local):
    calendar = KYIV if opened.tzinfo is KYIV_TZ else NEW_YORK
    got = first_response_due(opened_at=opened, priority="P1", calendar=calendar, policy=DEFAULT)
    assert (got - as_utc(opened)).total_seconds() == 3600
    assert got == as_utc(due_local)


# A calendar whose day is longer than 9 hours tells the two business-day modes apart.
LONG_DAY = calendar_from_table("long", {
    "timezone": "Europe/Kyiv", "working_hours": "08:00-20:00",
    "extra_holidays": ["2026-12-31", "2027-01-01"],
})


@pytest.mark.parametrize(("policy", "priority", "opened", "due"), [
    pytest.param(DEFAULT, "P3", kyiv(2026, 12, 1, 10), kyiv(2026, 12, 1, 19),
                 id="9-hour mode, 08:00-20:00: P3 opened Tuesday 10:00 is due Tuesday 19:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 12, 1, 10), kyiv(2026, 12, 2, 10),
                 id="same-time mode: P3 opened Tuesday 10:00 is due Wednesday 10:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 11, 27, 10), kyiv(2026, 11, 30, 10),
                 id="same-time mode: P3 opened Friday 10:00 is due Monday 10:00"),
    pytest.param(SAME_TIME, "P4", kyiv(2026, 11, 27, 10), kyiv(2026, 12, 1, 10),
                 id="same-time mode: P4 opened Friday 10:00 is due Tuesday 10:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 12, 1, 21), kyiv(2026, 12, 2, 20),
                 id="same-time mode: P3 opened Tuesday 21:00 counts from Wednesday's opening, "
                    "due Wednesday 20:00 at closing"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 12, 1, 7), kyiv(2026, 12, 1, 20),
                 id="same-time mode: P3 opened Tuesday 07:00 is due Tuesday 20:00 at closing"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 12, 1, 8), kyiv(2026, 12, 1, 20),
                 id="same-time mode: P3 opened Tuesday 08:00 at opening is due Tuesday 20:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 11, 28, 12), kyiv(2026, 11, 30, 20),
                 id="same-time mode: P3 opened Saturday is due Monday 20:00"),
    pytest.param(SAME_TIME, "P4", kyiv(2026, 11, 28, 12), kyiv(2026, 12, 1, 20),
                 id="same-time mode: P4 opened Saturday is due Tuesday 20:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 12, 30, 10), kyiv(2027, 1, 4, 10),
                 id="same-time mode: P3 opened Wednesday 30 Dec 10:00 skips the days off, "
                    "due Monday 4 Jan 10:00"),
    pytest.param(SAME_TIME, "P3", kyiv(2026, 3, 27, 10), kyiv(2026, 3, 30, 10),
                 id="same-time mode: P3 opened Friday 10:00 before spring DST is due Monday "
                    "10:00 local"),
    pytest.param(SAME_TIME, "P1", kyiv(2026, 12, 1, 10), kyiv(2026, 12, 1, 11),
                 id="same-time mode leaves P1 on the clock"),
])
def test_business_day_modes(policy, priority, opened, due):
    got = first_response_due(opened_at=opened, priority=priority, calendar=LONG_DAY,
                             policy=policy)
    assert got == as_utc(due)


def test_configured_commitments_replace_the_defaults():
    policy = sla_policy_from_table({
        "business_day": "8h",
        "first_response": {"P1": "30m", "P3": "4bh"},
        "updates": {"P4": "3 business days"},
    })
    opened = kyiv(2026, 11, 27, 16)  # Friday

    def due(priority: str) -> datetime:
        return first_response_due(opened_at=opened, priority=priority, calendar=KYIV,
                                  policy=policy)
    assert due("P1") == as_utc(kyiv(2026, 11, 27, 16, 30))
    assert due("P2") == as_utc(kyiv(2026, 11, 27, 18))  # untouched default
    assert due("P3") == as_utc(kyiv(2026, 11, 30, 11))  # 1 h Friday + 3 h Monday
    assert due("P4") == as_utc(kyiv(2026, 12, 1, 14))  # 2 days of 8 h: 1 + 9 + 6
    update = next_update_due(last_update_at=opened, priority="P4", calendar=KYIV, policy=policy)
    assert update == as_utc(kyiv(2026, 12, 2, 13))  # 3 x 8 h: 1 + 9 + 9 + 5


class IntPriority(enum.IntEnum):
    P1 = 80
    P2 = 60


class StrPriority(enum.StrEnum):
    P3 = "P3"


@pytest.mark.parametrize(("given", "key"), [
    pytest.param("P2", "P2", id="the string P2"),
    pytest.param(" p4 ", "P4", id="lower case with spaces"),
    pytest.param(1, "P1", id="the number 1"),
    pytest.param(StrPriority.P3, "P3", id="a StrEnum valued P3"),
    pytest.param(IntPriority.P1, "P1", id="an IntEnum named P1 valued 80 (RT code)"),
])
def test_priorities_accepted(given, key):
    assert priority_key(given) == key


@pytest.mark.parametrize("given", [
    pytest.param(0, id="0"), pytest.param(5, id="5"), pytest.param("P5", id="P5"),
    pytest.param(True, id="True"), pytest.param(None, id="None"), pytest.param(80, id="80"),
])
def test_anything_else_is_not_a_priority(given):
    with pytest.raises(ValueError):
        priority_key(given)


def test_a_priority_change_restarts_the_first_response_clock_from_the_change():
    opened = kyiv(2026, 11, 23, 9)  # Monday, P4: due Wednesday 09:00
    assert first_response_due(opened_at=opened, priority="P4", calendar=KYIV,
                              policy=DEFAULT) == as_utc(kyiv(2026, 11, 25, 9))
    clock = restart_clock(changed_at=kyiv(2026, 11, 24, 11), priority="P2",
                          first_response_given=False, calendar=KYIV, policy=DEFAULT)
    assert clock.kind is ClockKind.FIRST_RESPONSE
    # From the change (Tuesday 11:00 + 2 h), not from the creation (Monday 11:00, long past).
    assert clock.due == as_utc(kyiv(2026, 11, 24, 13))
    assert clock.started_at == as_utc(kyiv(2026, 11, 24, 11))


def test_a_priority_lowered_after_the_first_response_restarts_the_update_clock():
    clock = restart_clock(changed_at=kyiv(2026, 11, 27, 15), priority="P3",
                          first_response_given=True, calendar=KYIV, policy=DEFAULT)
    assert clock.kind is ClockKind.UPDATE
    assert clock.due == as_utc(kyiv(2026, 11, 30, 15))  # Friday 15:00 -> Monday 15:00


def test_a_priority_raised_on_saturday_runs_on_the_clock_at_once():
    clock = restart_clock(changed_at=kyiv(2026, 11, 28, 12), priority=1,
                          first_response_given=False, calendar=KYIV, policy=DEFAULT)
    assert clock.due == as_utc(kyiv(2026, 11, 28, 13))


@pytest.mark.parametrize(("priority", "calendar", "last", "paused", "due"), [
    pytest.param("P2", UTC_CAL, utc(2026, 11, 30, 10),
                 [Pause(utc(2026, 11, 30, 10, 30), utc(2026, 11, 30, 13, 30))],
                 utc(2026, 11, 30, 15),
                 id="P2 stalled three hours after an update at 10:00 is due 15:00, not 12:00"),
    pytest.param("P2", UTC_CAL, utc(2026, 11, 30, 10),
                 [Pause(utc(2026, 11, 30, 10, 30), utc(2026, 11, 30, 11)),
                  Pause(utc(2026, 11, 30, 11, 30), utc(2026, 11, 30, 12))],
                 utc(2026, 11, 30, 13), id="two half-hour stalls move a P2 update by an hour"),
    pytest.param("P2", UTC_CAL, utc(2026, 11, 30, 10),
                 [Pause(utc(2026, 11, 30, 12, 30), utc(2026, 11, 30, 14))],
                 utc(2026, 11, 30, 12), id="stalled after the update was due changes nothing"),
    pytest.param("P2", UTC_CAL, utc(2026, 11, 30, 10),
                 [Pause(utc(2026, 11, 30, 7), utc(2026, 11, 30, 9))],
                 utc(2026, 11, 30, 12), id="a stall before the last update changes nothing"),
    pytest.param("P2", UTC_CAL, utc(2026, 11, 30, 10),
                 [Pause(utc(2026, 11, 30, 9), utc(2026, 11, 30, 10, 30))],
                 utc(2026, 11, 30, 12, 30),
                 id="a stall that began before the last update counts from the update"),
    pytest.param("P3", KYIV, kyiv(2026, 11, 26, 15),
                 [Pause(kyiv(2026, 11, 27, 9), kyiv(2026, 11, 30, 12))],
                 kyiv(2026, 12, 1, 9),
                 id="P3 update Thursday 15:00, stalled Friday 09:00 to Monday 12:00: "
                    "6 business hours left, due Tuesday 09:00"),
    pytest.param("P3", KYIV, kyiv(2026, 11, 26, 15),
                 [Pause(kyiv(2026, 11, 26, 18), kyiv(2026, 11, 27, 7))],
                 kyiv(2026, 11, 27, 15),
                 id="P3 stalled overnight outside business hours is still due Friday 15:00"),
])
def test_stalled_time_does_not_count(priority, calendar, last, paused, due):
    got = next_update_due(last_update_at=last, priority=priority, calendar=calendar,
                          policy=DEFAULT, paused=paused)
    assert got == as_utc(due)


def test_no_update_is_due_while_the_ticket_is_stalled():
    got = next_update_due(last_update_at=utc(2026, 11, 30, 10), priority="P1",
                          calendar=UTC_CAL, policy=DEFAULT,
                          paused=[Pause(utc(2026, 11, 30, 10, 30))])
    assert got is None


DUE = utc(2026, 11, 30, 12)


@pytest.mark.parametrize(("answered", "now", "state", "late"), [
    pytest.param(utc(2026, 11, 30, 11, 59), utc(2026, 11, 30, 15), SlaState.MET, 0,
                 id="answered a minute early is met"),
    pytest.param(DUE, utc(2026, 11, 30, 15), SlaState.MET, 0,
                 id="answered exactly at the due time is met"),
    pytest.param(utc(2026, 11, 30, 12, 0, 1), utc(2026, 11, 30, 15), SlaState.BREACHED, 1,
                 id="answered a second late is breached by a second"),
    pytest.param(None, utc(2026, 11, 30, 11), SlaState.PENDING, 0,
                 id="not answered and not yet due is pending"),
    pytest.param(None, DUE, SlaState.PENDING, 0,
                 id="not answered at the due time itself is still pending"),
    pytest.param(None, utc(2026, 11, 30, 13, 30), SlaState.BREACHED, 5400,
                 id="not answered 90 minutes after due is breached by 90 minutes"),
])
def test_breach_detection(answered, now, state, late):
    verdict = judge(due=DUE, answered_at=answered, now=now)
    assert (verdict.state, verdict.late_by) == (state, timedelta(seconds=late))


@pytest.mark.parametrize(("table", "key"), [
    pytest.param({"business_day": "nine hours"}, "sla.business_day", id="business day in words"),
    pytest.param({"business_day": "1bd"}, "sla.business_day",
                 id="business day measured in business days"),
    pytest.param({"business_day": 9}, "sla.business_day", id="business day as a bare number"),
    pytest.param({"first_response": {"P5": "1h"}}, "sla.first_response.P5",
                 id="a priority P5"),
    pytest.param({"first_response": {"P1": "0h"}}, "sla.first_response.P1",
                 id="a zero commitment"),
    pytest.param({"first_response": {"P3": "1.5bd"}}, "sla.first_response.P3",
                 id="half a business day"),
    pytest.param({"first_response": {"P2": "soon"}}, "sla.first_response.P2",
                 id="a commitment in words"),
    pytest.param({"updates": {"P1": 3600}}, "sla.updates.P1", id="an update as a bare number"),
    pytest.param({"updates": "hourly"}, "sla.updates", id="updates not a table"),
    pytest.param({"update": {}}, "sla.update", id="misspelt section"),
])
def test_a_wrong_sla_value_names_its_key(table, key):
    with pytest.raises(ConfigError) as caught:
        sla_policy_from_table(table)
    assert caught.value.key == key
