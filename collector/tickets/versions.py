"""Whether an agent version is inside the support window.

The policy: support covers the current release and the immediately prior major release
for 18 months after the current major release came out; minor releases are to be
installed promptly. Precisely (docs/priorities.md, "Agent versions"):

- only releases out by ``now`` count; the *current release* is the newest of them and
  its major number is the *current major*; the current major *came out* on the date of
  the first release with that major number;
- a version of the current major, or of the prior major (the highest major number below
  the current one that has releases) until ``prior_major_months`` after the current major
  came out, is supported when it is the newest release of its major, or for
  ``minor_grace`` after the first newer release of its major came out;
- every other version is not supported; a version newer than every release out is
  supported (a build the table does not list yet).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from checks.config import ConfigError
from collector.timefmt import as_utc

_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """``major.minor.patch``; missing parts are 0 (``"1"`` is ``1.0.0``)."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version in ``text`` (``"0.1.0"``, ``"v1.2"``); None when it is not one."""
        match = _VERSION.match(text)
        if not match:
            return None
        return cls(*(int(part or 0) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, slots=True)
class Release:
    """A published agent release and the day it came out (from 00:00 UTC)."""

    version: Version
    released_on: date

    @property
    def released_at(self) -> datetime:
        """The moment the release counts as out."""
        return datetime.combine(self.released_on, time(0), tzinfo=UTC)


# The agent releases this collector knows of (version = release date): the default of
# [agent_versions.releases], extended with every release. A site that lists its own
# releases replaces this table.
SHIPPED_RELEASES: Mapping[str, str] = {"0.1.0": "2026-11-26"}


@dataclass(frozen=True, slots=True)
class VersionWindow:
    """The ``[agent_versions]`` section: the releases and the window's two lengths."""

    releases: tuple[Release, ...] = ()
    prior_major_months: int = 18
    minor_grace: timedelta = timedelta(days=30)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, key: str = "agent_versions") -> VersionWindow:
        """The window from ``[agent_versions]``; ConfigError names a bad key."""
        if not isinstance(table, Mapping):
            raise ConfigError(key, "expected a table")
        allowed = {"releases", "prior_major_months", "minor_grace_days"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}",
                              f"unknown key (allowed here: {', '.join(sorted(allowed))})")
        months = table.get("prior_major_months", 18)
        if isinstance(months, bool) or not isinstance(months, int) or months < 0:
            raise ConfigError(f"{key}.prior_major_months", "expected a whole number >= 0")
        grace = table.get("minor_grace_days", 30)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise ConfigError(f"{key}.minor_grace_days", "expected a number of days >= 0")
        releases_table = table.get("releases", SHIPPED_RELEASES)
        if not isinstance(releases_table, Mapping):
            raise ConfigError(f"{key}.releases",
                              "expected a table of \"version\" = release date")
        releases = []
        seen: dict[Version, str] = {}
        for text, when in releases_table.items():
            path = f"{key}.releases.{_quoted(text)}"
            version = Version.parse(text)
            if version is None:
                raise ConfigError(path, f"not a version: {text!r} (use e.g. \"1.2.0\")")
            if version in seen:
                raise ConfigError(path, f"the same version as {seen[version]!r}")
            seen[version] = text
            releases.append(Release(version, _date(when, path)))
        return cls(tuple(sorted(releases, key=lambda r: r.version)), months,
                   timedelta(days=grace))


def _quoted(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{text}"'


def _date(value: Any, key: str) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).date()
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(key, f"not a date: {value!r} (use e.g. 2026-11-26)")


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, or the month's last day (31 Aug + 6 → 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class VersionVerdict:
    """Whether a version is supported, and why, in a sentence for the host page."""

    supported: bool
    reason: str


def version_supported(*, version: str, window: VersionWindow, now: datetime) -> VersionVerdict:
    """Judge the agent version ``version`` against the releases out by ``now``."""
    now = as_utc(now)
    out = [r for r in window.releases if r.released_at <= now]
    if not out:
        return VersionVerdict(True, "no release is listed yet: every version is supported")
    parsed = Version.parse(version)
    if parsed is None:
        return VersionVerdict(False, f"{version!r} is not a release version number")
    current = max(out, key=lambda r: r.version)
    if parsed > current.version:
        return VersionVerdict(True, f"{parsed} is newer than the newest release {current.version}")
    current_major = current.version.major
    came_out = min(r.released_on for r in out if r.version.major == current_major)
    prior_major = max((r.version.major for r in out if r.version.major < current_major),
                      default=None)
    if parsed.major == current_major:
        line = f"current major release {current_major}"
    elif parsed.major == prior_major:
        until = add_months(came_out, window.prior_major_months)
        if now >= datetime.combine(until, time(0), tzinfo=UTC):
            return VersionVerdict(False, f"{parsed}: major release {prior_major} support ended "
                                  f"on {until.isoformat()}, {window.prior_major_months} months "
                                  f"after {current_major} came out")
        line = f"prior major release {prior_major}, supported until {until.isoformat()}"
    else:
        return VersionVerdict(False, f"{parsed} is older than the prior major release "
                              f"(current {current.version})")
    newer = [r for r in out if r.version.major == parsed.major and r.version > parsed]
    if not newer:
        return VersionVerdict(True, f"{parsed} is the newest release of the {line}")
    successor = min(newer, key=lambda r: r.version)
    newest = max(newer, key=lambda r: r.version)
    grace_end = successor.released_at + window.minor_grace
    if now < grace_end:
        return VersionVerdict(True, f"{parsed} of the {line}; {newest.version} is out, install "
                              f"it by {grace_end.date().isoformat()}")
    return VersionVerdict(False, f"{parsed} was superseded by {successor.version} on "
                          f"{successor.released_on.isoformat()}; install {newest.version}")
