"""A customer's business calendar: time zone, working hours and days, public holidays.

Holidays are local calendar days, taken from the ``holidays`` library for a country and
optional subdivision, plus extra dates, minus dates removed from the list. Working hours
are local wall-clock times, so a business day keeps its 08:00-17:00 across DST changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from checks.config import ConfigError
from collector.timefmt import as_utc

DEFAULT_CALENDAR = "default"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CALENDAR_KEYS = (
    "country", "extra_holidays", "removed_holidays", "subdivision", "timezone",
    "working_days", "working_hours",
)


@dataclass(frozen=True)
class BusinessCalendar:
    """Where and when a customer does business; every instant in and out is aware UTC."""

    name: str = DEFAULT_CALENDAR
    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    removed_holidays: frozenset[date] = frozenset()
    opens: time = time(8, 0)
    closes: time = time(17, 0)
    working_days: frozenset[int] = frozenset(range(5))  # date.weekday(): Monday is 0
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.opens >= self.closes:
            raise ValueError("working hours must open before they close, within one day")
        if not self.working_days:
            raise ValueError("at least one working day is needed")
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def is_holiday(self, day: date) -> bool:
        """A local calendar day off: a public holiday or an extra date, unless removed."""
        if day in self.removed_holidays:
            return False
        if day in self.extra_holidays:
            return True
        if self.country is None:
            return False
        return day in _public_holidays(self.country, self.subdivision, day.year)

    def is_business_day(self, day: date) -> bool:
        """A working weekday that is not a holiday."""
        return day.weekday() in self.working_days and not self.is_holiday(day)

    def hours_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC opening and closing instants of a local day, or None on a day off."""
        if not self.is_business_day(day):
            return None
        return self.at(day, self.opens), self.closing_on(day)

    def closing_on(self, day: date) -> datetime:
        """The UTC closing instant of a local day ("24:00" closes at the next midnight)."""
        if self.closes == time.max:
            return self.at(day + timedelta(days=1), time(0))
        return self.at(day, self.closes)

    def at(self, day: date, wall: time) -> datetime:
        """The UTC instant of a local wall-clock time (a time skipped by DST moves forward)."""
        local = datetime.combine(day, wall, tzinfo=self.zone)
        # A wall time inside a spring-forward gap does not exist; it is read with the offset
        # in force before the change, so 03:30 on the night Kyiv skips 03:00-04:00 is 04:30.
        return local.astimezone(UTC)

    def local_date(self, instant: datetime) -> date:
        """The customer's calendar day at an instant."""
        return as_utc(instant).astimezone(self.zone).date()

    def local_time(self, instant: datetime) -> time:
        """The customer's wall-clock time at an instant."""
        return as_utc(instant).astimezone(self.zone).time().replace(tzinfo=None)

    def business_days_from(self, day: date) -> Iterator[date]:
        """Business days from ``day`` on (``day`` included when it is one)."""
        for offset in range(_SEARCH_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_business_day(candidate):
                yield candidate
        raise ValueError(f"calendar {self.name!r}: no business day within {_SEARCH_DAYS} days")


_SEARCH_DAYS = 3 * 366


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))



def calendar_from_table(name: str, table: Mapping[str, Any]) -> BusinessCalendar:
    """One ``[calendars.<name>]`` table; ConfigError names the dotted key that is wrong."""
    prefix = f"calendars.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(prefix, "must be a table")
    unknown = sorted(set(table) - set(_CALENDAR_KEYS))
    if unknown:
        allowed = ", ".join(_CALENDAR_KEYS)
        raise ConfigError(f"{prefix}.{unknown[0]}", f"unknown key (allowed here: {allowed})")
    timezone = _text(table, "timezone", prefix, "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{prefix}.timezone", f"unknown IANA time zone {timezone!r}") from None
    country = _text(table, "country", prefix, None)
    country = country.upper() if country is not None else None
    subdivision = _text(table, "subdivision", prefix, None)
    if subdivision is not None and country is None:
        raise ConfigError(f"{prefix}.subdivision", "a subdivision needs a country")
    if country is not None:
        try:
            holidays.country_holidays(country, subdiv=subdivision, years=2026)
        except NotImplementedError as exc:
            key = "subdivision" if "subdivision" in str(exc) else "country"
            raise ConfigError(f"{prefix}.{key}", f"not known to the holidays library: {exc}") \
                from None
    opens, closes = _working_hours(table.get("working_hours", "08:00-17:00"), prefix)
    return BusinessCalendar(
        name=name,
        timezone=timezone,
        country=country,
        subdivision=subdivision,
        extra_holidays=_dates(table, "extra_holidays", prefix),
        removed_holidays=_dates(table, "removed_holidays", prefix),
        opens=opens,
        closes=closes,
        working_days=_weekdays(table.get("working_days", list(WEEKDAYS[:5])), prefix),
    )


class UnknownCalendarError(LookupError):
    """A customer refers to a calendar that is not configured."""


def calendar_named(
    calendars: Mapping[str, BusinessCalendar], name: str | None
) -> BusinessCalendar:
    """The calendar a customer refers to by name; no name means the ``default`` calendar."""
    key = DEFAULT_CALENDAR if name is None else name
    try:
        return calendars[key]
    except KeyError:
        known = ", ".join(sorted(calendars)) or "none"
        raise UnknownCalendarError(f"no calendar named {key!r} (configured: {known})") from None


def calendars_from_table(table: Mapping[str, Any]) -> dict[str, BusinessCalendar]:
    """The ``[calendars]`` section: name -> calendar, with a ``default`` (UTC, no holidays)."""
    if not isinstance(table, Mapping):
        raise ConfigError("calendars", "must be a table of calendars")
    found = {DEFAULT_CALENDAR: BusinessCalendar()}
    for name, sub in table.items():
        found[name] = calendar_from_table(name, sub)
    return found


def _text(table: Mapping[str, Any], key: str, prefix: str, default: str | None) -> Any:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{prefix}.{key}", f"expected a non-empty string, got {value!r}")
    return value.strip() if isinstance(value, str) else value


def _working_hours(value: Any, prefix: str) -> tuple[time, time]:
    key = f"{prefix}.working_hours"
    match = _HOURS.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(key, f'expected "HH:MM-HH:MM", got {value!r}')
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ConfigError(key, f"not a time of day in {value!r}")
    # time.max stands for 24:00, the next midnight (see BusinessCalendar.closing_on).
    closes = time.max if h2 == 24 else time(h2, m2)
    opens = time(h1, m1)
    if opens >= closes:
        raise ConfigError(key, f"must open before it closes within one day, got {value!r}")
    return opens, closes


def _weekdays(value: Any, prefix: str) -> frozenset[int]:
    key = f"{prefix}.working_days"
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(key, f"expected a non-empty list of day names, got {value!r}")
    days: set[int] = set()
    for item in value:
        name = item.strip().lower()[:3] if isinstance(item, str) else None
        if name not in WEEKDAYS:
            raise ConfigError(key, f"{item!r} is not one of {', '.join(WEEKDAYS)}")
        if WEEKDAYS.index(name) in days:
            raise ConfigError(key, f"{item!r} is listed twice")
        days.add(WEEKDAYS.index(name))
    return frozenset(days)


def _dates(table: Mapping[str, Any], key: str, prefix: str) -> frozenset[date]:
    dotted = f"{prefix}.{key}"
    value = table.get(key, [])
    if not isinstance(value, list | tuple):
        raise ConfigError(dotted, f'expected a list of dates ("2026-12-31"), got {value!r}')
    days: set[date] = set()
    for item in value:
        if isinstance(item, datetime):
            raise ConfigError(dotted, f"{item!r} is a date and time; give the day only")
        if isinstance(item, date):
            days.add(item)
            continue
        try:
            days.add(date.fromisoformat(item.strip()))
        except (AttributeError, ValueError):
            raise ConfigError(dotted, f'{item!r} is not a date like "2026-12-31"') from None
    return frozenset(days)
