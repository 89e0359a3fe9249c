"""Business calendars from the collector's TOML: defaults, holidays, errors naming the key."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time
from typing import Any

import pytest

from checks.config import ConfigError
from collector.sla import (
    DEFAULT_CALENDAR,
    UnknownCalendarError,
    calendar_from_table,
    calendar_named,
    calendars_from_table,
)

TOML = """
[calendars.kyiv]
timezone = "Europe/Kyiv"
country = "UA"
extra_holidays = ["2026-12-31", 2027-01-01]

[calendars.new-york]
timezone = "America/New_York"
country = "US"
subdivision = "NY"
working_hours = "09:00-18:00"
working_days = ["mon", "tue", "wed", "thu", "fri", "sat"]
removed_holidays = ["2026-11-11"]
"""


def test_a_calendar_with_nothing_set_is_utc_eight_to_five_monday_to_friday():
    cal = calendar_from_table("plain", {})
    assert (cal.timezone, cal.opens, cal.closes) == ("UTC", time(8), time(17))
    assert cal.working_days == frozenset({0, 1, 2, 3, 4})
    assert cal.is_business_day(date(2026, 12, 25))  # no country: Christmas is a working day
    assert not cal.is_business_day(date(2026, 11, 28))  # a Saturday


def test_the_default_calendar_exists_without_configuration_and_can_be_overridden():
    assert calendars_from_table({})[DEFAULT_CALENDAR].timezone == "UTC"
    found = calendars_from_table({"default": {"timezone": "Europe/Kyiv"}})
    assert found[DEFAULT_CALENDAR].timezone == "Europe/Kyiv"


def test_calendars_read_from_toml():
    found = calendars_from_table(tomllib.loads(TOML)["calendars"])
    assert set(found) == {"default", "kyiv", "new-york"}
    kyiv, new_york = found["kyiv"], found["new-york"]
    assert kyiv.extra_holidays == {date(2026, 12, 31), date(2027, 1, 1)}
    assert not kyiv.is_business_day(date(2026, 12, 31))
    assert (new_york.opens, new_york.closes) == (time(9), time(18))
    assert new_york.is_business_day(date(2026, 11, 28))  # Saturday is a working day here
    assert not new_york.is_business_day(date(2026, 11, 26))  # Thanksgiving, from the library
    assert new_york.is_business_day(date(2026, 11, 11))  # Veterans Day, removed
    assert not new_york.is_business_day(date(2026, 11, 29))  # Sunday


@pytest.mark.parametrize(("country", "subdivision", "day", "is_holiday"), [
    pytest.param("US", "NY", date(2026, 2, 12), True,
                 id="Lincoln's Birthday is a New York holiday"),
    pytest.param("US", None, date(2026, 2, 12), False,
                 id="Lincoln's Birthday is not a federal US holiday"),
    pytest.param("UA", None, date(2021, 8, 24), True,
                 id="Ukraine's Independence Day 2021 is a holiday"),
    pytest.param("DE", "BY", date(2026, 1, 6), True, id="Epiphany is a holiday in Bavaria"),
    pytest.param("DE", "BE", date(2026, 1, 6), False, id="Epiphany is a working day in Berlin"),
])
def test_public_holidays_come_from_the_country_and_subdivision(country, subdivision, day,
                                                               is_holiday):
    table: dict[str, Any] = {"country": country}
    if subdivision:
        table["subdivision"] = subdivision
    assert calendar_from_table("c", table).is_holiday(day) is is_holiday


def test_working_day_names_may_be_written_in_full_and_any_case():
    cal = calendar_from_table("c", {"working_days": ["Sunday", "MON", "tue"]})
    assert cal.working_days == frozenset({6, 0, 1})


def test_working_hours_may_close_at_midnight():
    cal = calendar_from_table("c", {"working_hours": "00:00-24:00"})
    assert cal.opens == time(0)
    assert cal.closes > time(23, 59, 59)


def test_local_day_and_time_of_an_instant():
    cal = calendar_from_table("c", {"timezone": "Europe/Kyiv"})
    instant = datetime.fromisoformat("2026-11-27T22:30:00+00:00")
    assert cal.local_date(instant) == date(2026, 11, 28)  # already Saturday in Kyiv
    assert cal.local_time(instant) == time(0, 30)


@pytest.mark.parametrize(("table", "key"), [
    pytest.param({"timezone": "Mars/Olympus"}, "calendars.acme.timezone", id="unknown time zone"),
    pytest.param({"timezone": ""}, "calendars.acme.timezone", id="empty time zone"),
    pytest.param({"timezone": 3}, "calendars.acme.timezone", id="time zone not a string"),
    pytest.param({"country": "XX"}, "calendars.acme.country", id="unknown country"),
    pytest.param({"country": "US", "subdivision": "ZZ"}, "calendars.acme.subdivision",
                 id="unknown subdivision"),
    pytest.param({"subdivision": "NY"}, "calendars.acme.subdivision",
                 id="subdivision without a country"),
    pytest.param({"working_hours": "17:00-08:00"}, "calendars.acme.working_hours",
                 id="working hours closing before they open"),
    pytest.param({"working_hours": "08:00-08:00"}, "calendars.acme.working_hours",
                 id="working hours of no length"),
    pytest.param({"working_hours": "8-17"}, "calendars.acme.working_hours",
                 id="working hours without minutes"),
    pytest.param({"working_hours": "08:00-25:00"}, "calendars.acme.working_hours",
                 id="working hours past midnight"),
    pytest.param({"working_hours": "08:61-17:00"}, "calendars.acme.working_hours",
                 id="working hours with minute 61"),
    pytest.param({"working_days": []}, "calendars.acme.working_days", id="no working days"),
    pytest.param({"working_days": "mon-fri"}, "calendars.acme.working_days",
                 id="working days as a string"),
    pytest.param({"working_days": ["mon", "funday"]}, "calendars.acme.working_days",
                 id="a working day that is no weekday"),
    pytest.param({"working_days": ["mon", "Monday"]}, "calendars.acme.working_days",
                 id="a working day listed twice"),
    pytest.param({"extra_holidays": "2026-12-31"}, "calendars.acme.extra_holidays",
                 id="extra holidays as a string"),
    pytest.param({"extra_holidays": ["2026-13-01"]}, "calendars.acme.extra_holidays",
                 id="extra holiday in month 13"),
    pytest.param({"extra_holidays": [datetime(2026, 12, 31, 12)]},
                 "calendars.acme.extra_holidays", id="extra holiday with a time of day"),
    pytest.param({"removed_holidays": [20261231]}, "calendars.acme.removed_holidays",
                 id="removed holiday as a number"),
    pytest.param({"timezon": "UTC"}, "calendars.acme.timezon", id="misspelt key"),
])
def test_a_wrong_calendar_value_names_its_key(table, key):
    with pytest.raises(ConfigError) as caught:
        calendars_from_table({"acme": table})
    assert caught.value.key == key


def test_a_calendar_that_is_not_a_table_names_its_key():
    with pytest.raises(ConfigError) as caught:
        calendars_from_table({"acme": "Europe/Kyiv"})
    assert caught.value.key == "calendars.acme"
    with pytest.raises(ConfigError) as caught:
        calendars_from_table(["acme"])  # type: ignore[arg-type]
    assert caught.value.key == "calendars"


def test_a_customer_refers_to_a_calendar_by_name_or_gets_the_default():
    found = calendars_from_table({"kyiv": {"timezone": "Europe/Kyiv"}})
    assert calendar_named(found, "kyiv").timezone == "Europe/Kyiv"
    assert calendar_named(found, None).name == DEFAULT_CALENDAR
    with pytest.raises(UnknownCalendarError, match="'lviv'"):
        calendar_named(found, "lviv")


def test_a_country_code_may_be_written_in_lower_case():
    assert calendar_from_table("c", {"country": "us"}).is_holiday(date(2026, 11, 26))


def test_a_removed_holiday_wins_over_the_library_and_the_extra_dates():
    cal = calendar_from_table("c", {
        "country": "US", "extra_holidays": ["2026-11-27"],
        "removed_holidays": ["2026-11-26", "2026-11-27"],
    })
    assert cal.is_business_day(date(2026, 11, 26))
    assert cal.is_business_day(date(2026, 11, 27))
