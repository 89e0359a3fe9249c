"""The agent version window: current major, prior major for 18 months, minors promptly."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta

import pytest

from checks.config import ConfigError
from collector.tickets.versions import (
    Release,
    Version,
    VersionWindow,
    add_months,
    version_supported,
)

RELEASES = """
[agent_versions]
prior_major_months = 18
minor_grace_days = 30
[agent_versions.releases]
"0.9.0" = 2025-01-10
"1.0.0" = 2025-06-01
"1.1.0" = 2025-09-01
"1.1.1" = 2025-10-01
"2.0.0" = 2026-03-15
"2.1.0" = 2026-11-01
"3.0.0" = 2027-06-01
"""


def window() -> VersionWindow:
    return VersionWindow.from_table(tomllib.loads(RELEASES)["agent_versions"])


def at(y: int, m: int, d: int, hh: int = 12) -> datetime:
    return datetime(y, m, d, hh, tzinfo=UTC)


@pytest.mark.parametrize(("version", "now", "supported", "reason"), [
    pytest.param("2.1.0", at(2026, 11, 26), True, "newest release of the current major",
                 id="2.1.0, the current release, is supported"),
    pytest.param("2.0.0", at(2026, 11, 26), True, "install it by 2026-12-01",
                 id="2.0.0 superseded by 2.1.0 on 1 Nov is supported until 1 Dec"),
    pytest.param("2.0.0", at(2026, 12, 1, 0), False, "superseded by 2.1.0 on 2026-11-01",
                 id="2.0.0 is no longer supported from 1 Dec 00:00 UTC, 30 days after 2.1.0"),
    pytest.param("1.1.1", at(2026, 11, 26), True, "supported until 2027-09-15",
                 id="1.1.1, newest of the prior major, is supported within 18 months of 2.0"),
    pytest.param("1.1.1", at(2027, 5, 31), True, "prior major release 1",
                 id="1.1.1 still supported the day before 3.0.0 comes out"),
    pytest.param("1.1.1", at(2027, 6, 1, 0), False, "older than the prior major release",
                 id="1.1.1 falls out when 3.0.0 comes out: 2 becomes the prior major"),
    pytest.param("1.1.0", at(2025, 10, 30), True, "1.1.1 is out, install it by 2025-10-31",
                 id="1.1.0 within 30 days of 1.1.1 is supported"),
    pytest.param("1.1.0", at(2026, 11, 26), False, "superseded by 1.1.1",
                 id="1.1.0 of the prior major, superseded long ago, is not supported"),
    pytest.param("1.0.0", at(2025, 9, 15), True, "1.1.0 is out, install it by 2025-10-01",
                 id="1.0.0 within 30 days of 1.1.0 is supported (1.1.1 not out yet)"),
    pytest.param("0.9.0", at(2026, 3, 14), True, "prior major release 0",
                 id="0.9.0 is the prior major the day before 2.0.0 comes out"),
    pytest.param("0.9.0", at(2026, 3, 15, 0), False, "older than the prior major release",
                 id="0.9.0 two majors behind once 2.0.0 is out"),
    pytest.param("2.2.0", at(2026, 11, 26), True, "newer than the newest release 2.1.0",
                 id="a build newer than every release out is supported"),
    pytest.param("3.0.0", at(2026, 11, 26), True, "newer than the newest release",
                 id="a release dated in the future is not out yet"),
    pytest.param("0.1.0-dev", at(2026, 11, 26), False, "not a release version number",
                 id="a version string that is no version is not supported"),
    pytest.param("v2.1", at(2026, 11, 26), True, "2.1.0 is the newest",
                 id="v2.1 reads as 2.1.0"),
])
def test_version_window(version, now, supported, reason):
    verdict = version_supported(version=version, window=window(), now=now)
    assert verdict.supported is supported, verdict.reason
    assert reason in verdict.reason


def test_prior_major_for_exactly_18_months():
    releases = (Release(Version(1), date(2026, 1, 1)), Release(Version(2), date(2026, 1, 31)))
    w = VersionWindow(releases=releases)
    # 31 January + 18 months is 31 July 2027.
    assert version_supported(version="1.0.0", window=w, now=at(2027, 7, 30, 23)).supported
    assert not version_supported(version="1.0.0", window=w,
                                 now=datetime(2027, 7, 31, tzinfo=UTC)).supported


def test_window_lengths_are_configurable():
    w = VersionWindow.from_table({"prior_major_months": 6, "minor_grace_days": 0,
                                  "releases": {"1.0.0": "2026-01-01", "1.0.1": "2026-02-01",
                                               "2.0.0": "2026-03-01"}})
    assert version_supported(version="1.0.1", window=w, now=at(2026, 8, 31)).supported
    assert not version_supported(version="1.0.1", window=w, now=at(2026, 9, 1, 0)).supported
    assert not version_supported(version="1.0.0", window=w, now=at(2026, 2, 1, 0)).supported


def test_no_releases_listed_flags_nothing():
    verdict = version_supported(version="0.1.0", window=VersionWindow(), now=at(2026, 11, 26))
    assert verdict.supported


def test_the_agents_own_version_with_its_first_release():
    w = VersionWindow.from_table({"releases": {"0.1.0": date(2026, 11, 1)}})
    assert version_supported(version="0.1.0", window=w, now=at(2026, 11, 26)).supported


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="aware"):
        version_supported(version="1.0.0", window=window(), now=datetime(2026, 1, 1))


@pytest.mark.parametrize(("day", "months", "expected"), [
    pytest.param(date(2026, 3, 15), 18, date(2027, 9, 15), id="15 March + 18 months"),
    pytest.param(date(2025, 8, 31), 6, date(2026, 2, 28), id="31 Aug + 6 months is 28 Feb"),
    pytest.param(date(2026, 8, 31), 18, date(2028, 2, 29), id="31 Aug + 18 months, leap year"),
    pytest.param(date(2026, 12, 1), 1, date(2027, 1, 1), id="over the year end"),
])
def test_add_months(day, months, expected):
    assert add_months(day, months) == expected


def test_dates_as_toml_dates_strings_or_datetimes():
    w = VersionWindow.from_table({"releases": {
        "1.0.0": date(2026, 1, 1), "1.1.0": "2026-02-01",
        "1.2.0": datetime(2026, 3, 1, 23, 30, tzinfo=UTC) + timedelta(hours=1)}})
    assert [r.released_on for r in w.releases] == [
        date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 2)]


@pytest.mark.parametrize(("table", "key", "message"), [
    pytest.param({"release": {}}, "agent_versions.release", "unknown key",
                 id="a misspelt key is named"),
    pytest.param({"prior_major_months": "18"}, "agent_versions.prior_major_months",
                 "whole number", id="months as text"),
    pytest.param({"prior_major_months": -1}, "agent_versions.prior_major_months",
                 "whole number", id="negative months"),
    pytest.param({"minor_grace_days": True}, "agent_versions.minor_grace_days", "days",
                 id="grace as a boolean"),
    pytest.param({"releases": ["1.0.0"]}, "agent_versions.releases", "table",
                 id="releases as an array"),
    pytest.param({"releases": {"one": "2026-01-01"}}, "agent_versions.releases.one",
                 "not a version", id="a release that is no version"),
    pytest.param({"releases": {"1.0.0": "January"}}, 'agent_versions.releases."1.0.0"',
                 "not a date", id="a release date that is no date"),
    pytest.param({"releases": {"1.0": "2026-01-01", "1.0.0": "2026-01-02"}},
                 'agent_versions.releases."1.0.0"', "same version",
                 id="1.0 and 1.0.0 are the same release"),
])
def test_config_errors_name_the_key(table, key, message):
    with pytest.raises(ConfigError) as err:
        VersionWindow.from_table(table)
    assert err.value.key == key
    assert message in err.value.message


def test_without_a_releases_table_the_collector_judges_by_the_releases_it_ships_with():
    from agent import __version__
    from collector.tickets.versions import SHIPPED_RELEASES

    window = VersionWindow.from_table({})
    assert __version__ in SHIPPED_RELEASES  # every release lists itself
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert version_supported(version=__version__, window=window, now=now).supported
    assert not version_supported(version="0.0.9", window=window, now=now).supported
    assert not version_supported(version="0.1.0-dev", window=window, now=now).supported
    empty = VersionWindow.from_table({"releases": {}})
    assert version_supported(version="0.0.9", window=empty, now=now).supported
