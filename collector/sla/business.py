"""Business-time arithmetic on a customer's calendar: pure functions over aware instants.

Business time runs only inside a business day's working hours, which are local wall-clock
hours: 08:00-17:00 in Kyiv is nine hours of business time in winter and in summer. Inside
those hours business time runs as elapsed seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from collector.sla.calendar import BusinessCalendar
from collector.timefmt import as_utc


def is_business_time(*, instant: datetime, calendar: BusinessCalendar) -> bool:
    """True inside working hours on a business day (opening included, closing excluded)."""
    hours = calendar.hours_on(calendar.local_date(instant))
    return hours is not None and hours[0] <= instant < hours[1]


def add_business_seconds(
    *, start: datetime, seconds: float, calendar: BusinessCalendar
) -> datetime:
    """The instant ``seconds`` of business time after ``start``.

    When the business time runs out exactly at a closing time, the answer is that closing
    time (the customer reads it as "by end of Monday"), not the next opening, which is the
    same business instant. Adding nothing returns ``start`` itself.
    """
    start = as_utc(start)
    if seconds < 0:
        raise ValueError("business time only runs forward")
    if seconds == 0:
        return start
    remaining = timedelta(seconds=seconds)
    for opens, closes in _working_periods(start, calendar):
        begin = max(start, opens)
        available = closes - begin
        if remaining <= available:  # "<=": the closing-time rule
            return begin + remaining
        remaining -= available
    raise AssertionError("unreachable: _working_periods ends only by raising")


def business_seconds_between(
    *, start: datetime, end: datetime, calendar: BusinessCalendar
) -> float:
    """Business seconds from ``start`` to ``end`` (negative when ``end`` comes first)."""
    start = as_utc(start)
    end = as_utc(end)
    if end < start:
        return -business_seconds_between(start=end, end=start, calendar=calendar)
    total = timedelta()
    for opens, closes in _working_periods(start, calendar):
        if opens >= end:
            break
        total += min(closes, end) - max(start, opens)
    return total.total_seconds()


def next_business_instant(*, instant: datetime, calendar: BusinessCalendar) -> datetime:
    """``instant`` itself in business time, else the next opening."""
    instant = as_utc(instant)
    opens, _ = next(_working_periods(instant, calendar))
    return max(instant, opens)


def add_business_days(
    *, start: datetime, days: int, calendar: BusinessCalendar
) -> datetime:
    """The same local wall-clock time ``days`` business days later.

    A start outside business time counts from the next opening; a result that falls on an
    opening is given as the previous business day's closing time (the closing-time rule),
    so a request opened on Saturday with one business day is due on Monday at closing.
    """
    if days < 0:
        raise ValueError("business time only runs forward")
    begin = next_business_instant(instant=start, calendar=calendar)
    if days == 0:
        return begin
    first = calendar.local_date(begin)
    wall = calendar.local_time(begin)
    business_days = calendar.business_days_from(first)
    chosen = first
    for _ in range(days + 1):
        chosen = next(business_days)
    if wall == calendar.opens:
        # The opening of day N+1 is the same business instant as the closing of day N.
        previous = first
        business_days = calendar.business_days_from(first)
        for _ in range(days):
            previous = next(business_days)
        return calendar.closing_on(previous)
    return calendar.at(chosen, wall)


def _working_periods(
    start: datetime, calendar: BusinessCalendar
) -> Iterator[tuple[datetime, datetime]]:
    """Working periods (UTC opening, closing) that end after ``start``, in order."""
    day: date = calendar.local_date(start) - timedelta(days=1)  # hours may straddle UTC dates
    for business_day in calendar.business_days_from(day):
        opens = calendar.at(business_day, calendar.opens)
        closes = calendar.closing_on(business_day)
        if closes > start:
            yield opens, closes
