"""Business-time arithmetic and P3/P4 due dates: weekends, holidays, two time zones, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from collector.sla import (
    SlaPolicy,
    add_business_seconds,
    as_utc,
    business_seconds_between,
    calendar_from_table,
    first_response_due,
    is_business_time,
)

KYIV_TZ = ZoneInfo("Europe/Kyiv")
NY_TZ = ZoneInfo("America/New_York")
KYIV = calendar_from_table("kyiv", {
    "timezone": "Europe/Kyiv", "country": "UA", "extra_holidays": ["2026-12-31", "2027-01-01"],
})
NEW_YORK = calendar_from_table("new-york", {
    "timezone": "America/New_York", "country": "US", "subdivision": "NY",
    "extra_holidays": ["2026-12-24"],
})
CALENDARS = {"kyiv": KYIV, "new-york": NEW_YORK}
ZONES = {"kyiv": KYIV_TZ, "new-york": NY_TZ}
HOUR = 3600


def kyiv(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=KYIV_TZ, fold=fold)  # type: ignore[misc]


def new_york(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=NY_TZ, fold=fold)  # type: ignore[misc]


P3_CASES = [
    # The policy's own examples.
    pytest.param("kyiv", "P3", kyiv(2026, 11, 27, 16), kyiv(2026, 11, 30, 16),
                 id="P3 opened Friday 16:00 Kyiv is due Monday 16:00"),
    pytest.param("kyiv", "P3", kyiv(2026, 11, 28, 12), kyiv(2026, 11, 30, 17),
                 id="P3 opened Saturday Kyiv is due Monday 17:00, not Tuesday 08:00"),
    pytest.param("kyiv", "P3", kyiv(2026, 11, 29, 23, 59), kyiv(2026, 11, 30, 17),
                 id="P3 opened Sunday 23:59 Kyiv is due Monday 17:00"),
    pytest.param("kyiv", "P3", kyiv(2026, 11, 30, 7), kyiv(2026, 11, 30, 17),
                 id="P3 opened Monday 07:00 Kyiv, before opening, is due Monday 17:00"),
    pytest.param("kyiv", "P3", kyiv(2026, 12, 1, 17), kyiv(2026, 12, 2, 17),
                 id="P3 opened Tuesday at closing Kyiv is due Wednesday 17:00"),
    pytest.param("kyiv", "P3", kyiv(2026, 12, 1, 10, 15), kyiv(2026, 12, 2, 10, 15),
                 id="P3 opened Tuesday 10:15 Kyiv is due Wednesday 10:15"),
    pytest.param("kyiv", "P4", kyiv(2026, 11, 26, 16), kyiv(2026, 11, 30, 16),
                 id="P4 opened Thursday 16:00 Kyiv is due Monday 16:00"),
    # Holidays: an extra date, and the library's (Ukraine suspends public holidays under
    # martial law since 2022, so the library's Ukrainian holidays are checked in 2021).
    pytest.param("kyiv", "P3", kyiv(2026, 12, 30, 19), kyiv(2027, 1, 4, 17),
                 id="P3 opened the evening before the extra days off 31 Dec and 1 Jan "
                    "Kyiv is due Monday 4 Jan 17:00"),
    pytest.param("kyiv", "P3", kyiv(2021, 8, 20, 16), kyiv(2021, 8, 25, 16),
                 id="P3 opened Friday before Independence Day 2021 Kyiv skips the weekend, "
                    "the bridge day and the holiday: due Wednesday 16:00"),
    pytest.param("kyiv", "P4", kyiv(2026, 12, 29, 12), kyiv(2027, 1, 4, 12),
                 id="P4 opened Tuesday 29 Dec 12:00 Kyiv is due Monday 4 Jan 12:00"),
    # DST in Kyiv: 29 March 2026 (UTC+2 -> +3) and 25 October 2026 (UTC+3 -> +2).
    pytest.param("kyiv", "P3", kyiv(2026, 3, 27, 16), kyiv(2026, 3, 30, 16),
                 id="P3 opened Friday 16:00 before spring DST Kyiv is due Monday 16:00 local"),
    pytest.param("kyiv", "P3", kyiv(2026, 10, 23, 16), kyiv(2026, 10, 26, 16),
                 id="P3 opened Friday 16:00 before autumn DST Kyiv is due Monday 16:00 local"),
    pytest.param("kyiv", "P3", kyiv(2026, 3, 29, 3, 30), kyiv(2026, 3, 30, 17),
                 id="P3 opened in the skipped hour of spring DST Kyiv is due Monday 17:00"),
    # New York: the weekend, library holidays, an extra date, DST.
    pytest.param("new-york", "P3", new_york(2026, 11, 20, 16), new_york(2026, 11, 23, 16),
                 id="P3 opened Friday 16:00 New York is due Monday 16:00"),
    pytest.param("new-york", "P3", new_york(2026, 11, 25, 16), new_york(2026, 11, 27, 16),
                 id="P3 opened Wednesday 16:00 before Thanksgiving New York is due Friday 16:00"),
    pytest.param("new-york", "P3", new_york(2026, 11, 25, 18), new_york(2026, 11, 27, 17),
                 id="P3 opened the evening before Thanksgiving New York is due Friday 17:00"),
    pytest.param("new-york", "P3", new_york(2026, 12, 23, 16), new_york(2026, 12, 28, 16),
                 id="P3 opened Wednesday 23 Dec 16:00 New York skips the extra 24 Dec, "
                    "Christmas and the weekend: due Monday 16:00"),
    pytest.param("new-york", "P4", new_york(2026, 10, 30, 10), new_york(2026, 11, 4, 10),
                 id="P4 opened Friday 30 Oct New York skips the weekend, autumn DST and "
                    "Election Day: due Wednesday 10:00"),
    pytest.param("new-york", "P3", new_york(2026, 3, 6, 16), new_york(2026, 3, 9, 16),
                 id="P3 opened Friday 16:00 before spring DST New York is due Monday 16:00 local"),
    pytest.param("new-york", "P3", new_york(2026, 10, 30, 16), new_york(2026, 11, 2, 16),
                 id="P3 opened Friday 16:00 before autumn DST New York is due Monday 16:00 local"),
]


@pytest.mark.parametrize(("calendar", "priority", "opened", "due"), P3_CASES)
def test_business_time_first_response_due(calendar, priority, opened, due):
    got = first_response_due(opened_at=opened, priority=priority,
                             calendar=CALENDARS[calendar], policy=SlaPolicy.default())
    assert got.tzinfo is UTC
    assert got.astimezone(ZONES[calendar]) == due
    assert got == as_utc(due)


@pytest.mark.parametrize(("opened", "due", "elapsed_hours"), [
    pytest.param(kyiv(2026, 3, 27, 16), kyiv(2026, 3, 30, 16), 71,
                 id="Kyiv spring: Friday 16:00 to Monday 16:00 is 71 elapsed hours"),
    pytest.param(kyiv(2026, 10, 23, 16), kyiv(2026, 10, 26, 16), 73,
                 id="Kyiv autumn: Friday 16:00 to Monday 16:00 is 73 elapsed hours"),
    pytest.param(new_york(2026, 3, 6, 16), new_york(2026, 3, 9, 16), 71,
                 id="New York spring: Friday 16:00 to Monday 16:00 is 71 elapsed hours"),
    pytest.param(new_york(2026, 10, 30, 16), new_york(2026, 11, 2, 16), 73,
                 id="New York autumn: Friday 16:00 to Monday 16:00 is 73 elapsed hours"),
])
def test_business_time_follows_the_wall_clock_across_dst(opened, due, elapsed_hours):
    calendar = KYIV if opened.tzinfo is KYIV_TZ else NEW_YORK
    got = first_response_due(opened_at=opened, priority="P3", calendar=calendar,
                             policy=SlaPolicy.default())
    assert got - as_utc(opened) == timedelta(hours=elapsed_hours)
    assert business_seconds_between(start=opened, end=got, calendar=calendar) == 9 * HOUR


@pytest.mark.parametrize(("start", "seconds", "due"), [
    pytest.param(kyiv(2026, 11, 30, 8), 9 * HOUR, kyiv(2026, 11, 30, 17),
                 id="Monday 08:00 plus 9 business hours is Monday 17:00, not Tuesday 08:00"),
    pytest.param(kyiv(2026, 11, 30, 16), HOUR, kyiv(2026, 11, 30, 17),
                 id="Monday 16:00 plus 1 business hour is Monday 17:00"),
    pytest.param(kyiv(2026, 11, 30, 16), HOUR + 1, kyiv(2026, 12, 1, 8, 0, 1),
                 id="Monday 16:00 plus 1 business hour and 1 second is Tuesday 08:00:01"),
    pytest.param(kyiv(2026, 11, 27, 17), HOUR, kyiv(2026, 11, 30, 9),
                 id="Friday at closing plus 1 business hour is Monday 09:00"),
    pytest.param(kyiv(2026, 11, 28, 12), 0, kyiv(2026, 11, 28, 12),
                 id="Saturday plus no business time is Saturday itself"),
    pytest.param(kyiv(2026, 11, 30, 10), 43 * HOUR, kyiv(2026, 12, 4, 17),
                 id="Monday 10:00 plus 43 business hours is Friday 17:00"),
    pytest.param(kyiv(2026, 11, 30, 10), 45 * HOUR, kyiv(2026, 12, 7, 10),
                 id="Monday 10:00 plus 45 business hours is next Monday 10:00"),
])
def test_adding_business_seconds(start, seconds, due):
    assert add_business_seconds(start=start, seconds=seconds, calendar=KYIV) == as_utc(due)


@pytest.mark.parametrize(("start", "end", "hours"), [
    pytest.param(kyiv(2026, 11, 30, 8), kyiv(2026, 11, 30, 17), 9,
                 id="a Kyiv business day holds 9 business hours"),
    pytest.param(kyiv(2026, 11, 27, 16), kyiv(2026, 11, 30, 16), 9,
                 id="Friday 16:00 to Monday 16:00 Kyiv is 9 business hours"),
    pytest.param(kyiv(2026, 11, 28, 0), kyiv(2026, 11, 30, 0), 0,
                 id="a weekend holds no business time"),
    pytest.param(kyiv(2026, 12, 30, 12), kyiv(2027, 1, 4, 12), 9,
                 id="Wednesday 12:00 to Monday 12:00 over the extra days off is 9 hours"),
    pytest.param(kyiv(2026, 11, 30, 17), kyiv(2026, 11, 30, 8), -9,
                 id="backwards over a business day is minus 9 hours"),
    pytest.param(new_york(2026, 11, 25, 12), new_york(2026, 11, 27, 12), 9,
                 id="Wednesday 12:00 to Friday 12:00 over Thanksgiving New York is 9 hours"),
])
def test_business_seconds_between(start, end, hours):
    calendar = KYIV if start.tzinfo is KYIV_TZ else NEW_YORK
    assert business_seconds_between(start=start, end=end, calendar=calendar) == hours * HOUR


@pytest.mark.parametrize(("instant", "inside"), [
    pytest.param(kyiv(2026, 11, 30, 8), True, id="Monday 08:00 at opening is business time"),
    pytest.param(kyiv(2026, 11, 30, 16, 59, 59), True, id="Monday 16:59:59 is business time"),
    pytest.param(kyiv(2026, 11, 30, 17), False, id="Monday 17:00 at closing is not"),
    pytest.param(kyiv(2026, 11, 30, 7, 59), False, id="Monday 07:59 is not"),
    pytest.param(kyiv(2026, 11, 28, 12), False, id="Saturday noon is not"),
    pytest.param(kyiv(2026, 12, 31, 12), False, id="noon on an extra day off is not"),
    pytest.param(datetime(2026, 11, 30, 6, 30, tzinfo=UTC), True,
                 id="06:30 UTC is 08:30 in Kyiv, business time"),
])
def test_is_business_time(instant, inside):
    assert is_business_time(instant=instant, calendar=KYIV) is inside


def test_inside_working_hours_business_time_is_elapsed_time_even_on_a_dst_day():
    round_the_clock = calendar_from_table("noc", {
        "timezone": "Europe/Kyiv", "working_hours": "00:00-24:00",
        "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    })
    day = business_seconds_between(start=kyiv(2026, 3, 29), end=kyiv(2026, 3, 30),
                                   calendar=round_the_clock)
    assert day == 23 * HOUR


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive"):
        add_business_seconds(start=datetime(2026, 11, 30, 8), seconds=60, calendar=KYIV)
