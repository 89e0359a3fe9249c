"""The response and update commitments, and the due times of a ticket's SLA clocks.

P1 and P2 run on the clock, around the clock (an hour is 3,600 elapsed seconds, also
across a DST change); P3 and P4 run in the customer's business time. Priorities are keyed
"P1".."P4"; ``priority_key`` also takes 1..4 or any enum whose value or name is one of them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from checks.config import ConfigError
from collector.sla.business import (
    add_business_days,
    add_business_seconds,
    business_seconds_between,
)
from collector.sla.calendar import BusinessCalendar
from collector.timefmt import as_utc

PRIORITIES = ("P1", "P2", "P3", "P4")
SAME_TIME_NEXT_BUSINESS_DAY = "same-time-next-business-day"
_AMOUNT = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|bh|bd|business hours?|business days?)\s*$", re.IGNORECASE
)
_CLOCK_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Timing(enum.StrEnum):
    """How a commitment's time is counted."""

    CLOCK = "clock"  # elapsed seconds, around the clock
    BUSINESS_HOURS = "business_hours"  # business seconds in the customer's calendar
    BUSINESS_DAYS = "business_days"  # whole business days, see SlaPolicy.business_day


class ClockKind(enum.StrEnum):
    """Which commitment a ticket's running SLA clock measures."""

    FIRST_RESPONSE = "first_response"
    UPDATE = "update"


class SlaState(enum.StrEnum):
    """Where a commitment stands."""

    PENDING = "pending"  # not answered, not yet due
    MET = "met"  # answered by the due time
    BREACHED = "breached"  # answered late, or due and still not answered


@dataclass(frozen=True)
class Commitment:
    """An amount of time: seconds (clock or business) or whole business days."""

    amount: float
    timing: Timing

    @classmethod
    def parse(cls, value: Any, key: str) -> Commitment:
        """``"1h"``, ``"90m"``, ``"4bh"`` (business hours), ``"1bd"`` or ``"2 business days"``."""
        match = _AMOUNT.match(value) if isinstance(value, str) else None
        if match is None:
            raise ConfigError(key, f'expected e.g. "1h", "2h", "4bh", "1bd", got {value!r}')
        number, unit = float(match.group(1)), match.group(2).lower()
        if number <= 0:
            raise ConfigError(key, f"must be more than zero, got {value!r}")
        if unit.startswith("business d") or unit == "bd":
            if not number.is_integer():
                raise ConfigError(key, f"business days are whole days, got {value!r}")
            return cls(number, Timing.BUSINESS_DAYS)
        if unit.startswith("business h") or unit == "bh":
            return cls(number * 3600, Timing.BUSINESS_HOURS)
        return cls(number * _CLOCK_UNITS[unit], Timing.CLOCK)


@dataclass(frozen=True)
class SlaPolicy:
    """The commitments table: first response and update interval per priority."""

    first_response: Mapping[str, Commitment]
    updates: Mapping[str, Commitment]
    # Seconds of business time in one business day, or None for "same time next business day".
    business_day_seconds: float | None = 9 * 3600

    @classmethod
    def default(cls) -> SlaPolicy:
        """The support policy as written."""
        return sla_policy_from_table({})

    def commitment(self, kind: ClockKind, priority: object) -> Commitment:
        """The commitment of one kind for a priority."""
        table = self.first_response if kind is ClockKind.FIRST_RESPONSE else self.updates
        return table[priority_key(priority)]


DEFAULT_FIRST_RESPONSE = {"P1": "1h", "P2": "2h", "P3": "1bd", "P4": "2bd"}
DEFAULT_UPDATES = {"P1": "1h", "P2": "2h", "P3": "1bd", "P4": "2bd"}


def sla_policy_from_table(table: Mapping[str, Any]) -> SlaPolicy:
    """The ``[sla]`` section; ConfigError names the dotted key that is wrong."""
    if not isinstance(table, Mapping):
        raise ConfigError("sla", "must be a table")
    allowed = ("business_day", "first_response", "updates")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"sla.{key}", f"unknown key (allowed here: {', '.join(allowed)})")
    business_day = table.get("business_day", "9h")
    if business_day == SAME_TIME_NEXT_BUSINESS_DAY:
        seconds: float | None = None
    else:
        length = Commitment.parse(business_day, "sla.business_day") \
            if isinstance(business_day, str) else None
        if length is None or length.timing is Timing.BUSINESS_DAYS:
            raise ConfigError("sla.business_day",
                              f'expected hours like "9h" or "{SAME_TIME_NEXT_BUSINESS_DAY}", '
                              f"got {business_day!r}")
        seconds = length.amount
    return SlaPolicy(
        first_response=MappingProxyType(_table(table, "first_response", DEFAULT_FIRST_RESPONSE)),
        updates=MappingProxyType(_table(table, "updates", DEFAULT_UPDATES)),
        business_day_seconds=seconds,
    )


def _table(
    table: Mapping[str, Any], name: str, defaults: Mapping[str, str]
) -> dict[str, Commitment]:
    sub = table.get(name, {})
    if not isinstance(sub, Mapping):
        raise ConfigError(f"sla.{name}", "must be a table of P1..P4")
    for key in sub:
        if key not in PRIORITIES:
            raise ConfigError(f"sla.{name}.{key}", "unknown priority (allowed here: P1..P4)")
    return {p: Commitment.parse(sub.get(p, defaults[p]), f"sla.{name}.{p}") for p in PRIORITIES}


def priority_key(priority: object) -> str:
    """``"P1"``..``"P4"`` from that string, from 1..4, or from an enum named or valued so."""
    if isinstance(priority, enum.Enum) and priority.name.upper() in PRIORITIES:
        return priority.name.upper()
    if isinstance(priority, int) and not isinstance(priority, bool) and 1 <= priority <= 4:
        return f"P{priority}"
    if isinstance(priority, str) and priority.strip().upper() in PRIORITIES:
        return priority.strip().upper()
    raise ValueError(f"not a priority P1..P4: {priority!r}")


def add_commitment(
    *, start: datetime, commitment: Commitment, calendar: BusinessCalendar, policy: SlaPolicy
) -> datetime:
    """The instant a commitment started at ``start`` falls due (UTC)."""
    start = as_utc(start)
    if commitment.timing is Timing.CLOCK:
        return start + timedelta(seconds=commitment.amount)
    if commitment.timing is Timing.BUSINESS_HOURS:
        return add_business_seconds(start=start, seconds=commitment.amount, calendar=calendar)
    if policy.business_day_seconds is None:
        return add_business_days(start=start, days=int(commitment.amount), calendar=calendar)
    return add_business_seconds(
        start=start, seconds=commitment.amount * policy.business_day_seconds, calendar=calendar
    )


def first_response_due(
    *, opened_at: datetime, priority: object, calendar: BusinessCalendar, policy: SlaPolicy
) -> datetime:
    """When the first public reply is due for a request opened at ``opened_at``."""
    commitment = policy.commitment(ClockKind.FIRST_RESPONSE, priority)
    return add_commitment(start=opened_at, commitment=commitment, calendar=calendar,
                          policy=policy)


@dataclass(frozen=True)
class Pause:
    """A time the ticket was stalled (waiting on the customer); ``end`` None while it still is."""

    start: datetime
    end: datetime | None = None


def next_update_due(
    *,
    last_update_at: datetime,
    priority: object,
    calendar: BusinessCalendar,
    policy: SlaPolicy,
    paused: Sequence[Pause] = (),
) -> datetime | None:
    """When the next update is due after the last public reply; None while stalled.

    Stalled time does not count: the clock stops when the ticket is stalled and goes on
    with the time it had left when the ticket leaves stalled (business time for P3/P4).
    """
    return due_at(kind=ClockKind.UPDATE, started_at=last_update_at, priority=priority,
                  calendar=calendar, policy=policy, paused=paused)


def due_at(
    *,
    kind: ClockKind,
    started_at: datetime,
    priority: object,
    calendar: BusinessCalendar,
    policy: SlaPolicy,
    paused: Sequence[Pause] = (),
) -> datetime | None:
    """The due time of a clock started at ``started_at``, excluding paused time.

    After a priority change, start the clock at the moment of the change with the new
    priority: the first-response clock if nobody has answered yet, else the update clock.
    """
    commitment = policy.commitment(kind, priority)
    start = as_utc(started_at)
    due = add_commitment(start=start, commitment=commitment, calendar=calendar, policy=policy)
    for pause in sorted(paused, key=lambda p: as_utc(p.start)):
        begin = max(as_utc(pause.start), start)
        end = None if pause.end is None else as_utc(pause.end)
        if end is not None and end <= begin:
            continue
        if begin >= due:
            break  # the clock ran out before this pause
        if end is None:
            return None
        if commitment.timing is Timing.CLOCK:
            due += end - begin
        else:
            # What was left at the pause is left after it, counted in business time.
            left = business_seconds_between(start=begin, end=due, calendar=calendar)
            due = add_business_seconds(start=end, seconds=left, calendar=calendar)
        start = end
    return due


@dataclass(frozen=True)
class RunningClock:
    """A ticket's running SLA clock: what it measures, when it started, when it is due."""

    kind: ClockKind
    started_at: datetime
    due: datetime


def restart_clock(
    *,
    changed_at: datetime,
    priority: object,
    first_response_given: bool,
    calendar: BusinessCalendar,
    policy: SlaPolicy,
) -> RunningClock:
    """The clock after a priority change: restarted at the change, under the new priority.

    Before the first response it is the first-response clock, after it the update clock;
    the time already spent under the old priority is not carried over.
    """
    kind = ClockKind.UPDATE if first_response_given else ClockKind.FIRST_RESPONSE
    start = as_utc(changed_at)
    commitment = policy.commitment(kind, priority)
    due = add_commitment(start=start, commitment=commitment, calendar=calendar, policy=policy)
    return RunningClock(kind, start, due)


@dataclass(frozen=True)
class Verdict:
    """A commitment judged: its state and how late it was (zero unless breached)."""

    state: SlaState
    late_by: timedelta


def judge(*, due: datetime, answered_at: datetime | None, now: datetime) -> Verdict:
    """Met when answered by ``due`` (exactly at due is in time), else pending or breached."""
    due = as_utc(due)
    moment = as_utc(answered_at) if answered_at is not None else as_utc(now)
    if moment <= due:
        state = SlaState.MET if answered_at is not None else SlaState.PENDING
        return Verdict(state, timedelta())
    return Verdict(SlaState.BREACHED, moment - due)
