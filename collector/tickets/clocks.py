"""A ticket's SLA clocks in stored form (epoch seconds), on top of collector.sla.

P1/P2 commitments run on the clock, P3/P4 in the customer's business time (the policy's
``[sla]`` table says which). While a ticket is stalled its update clock stands still: the
time it had left is kept (clock seconds, or business seconds for business time) and runs
on from the moment the ticket leaves stalled.
"""

from __future__ import annotations

from datetime import UTC, datetime

from collector.sla.business import add_business_seconds, business_seconds_between
from collector.sla.calendar import BusinessCalendar
from collector.sla.clock import ClockKind, SlaPolicy, Timing, add_commitment


def at(ts: float) -> datetime:
    """An aware UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(ts, UTC)


def due(
    *, kind: ClockKind, start: float, priority: str, calendar: BusinessCalendar,
    sla: SlaPolicy,
) -> float:
    """When a ``kind`` clock started at ``start`` under ``priority`` falls due."""
    commitment = sla.commitment(kind, priority)
    return add_commitment(start=at(start), commitment=commitment, calendar=calendar,
                          policy=sla).timestamp()


def _business(kind: ClockKind, priority: str, sla: SlaPolicy) -> bool:
    return sla.commitment(kind, priority).timing is not Timing.CLOCK


def time_left(
    *, now: float, due_at: float, priority: str, calendar: BusinessCalendar, sla: SlaPolicy,
) -> float:
    """What an update clock due at ``due_at`` has left at ``now`` (never below zero)."""
    if _business(ClockKind.UPDATE, priority, sla):
        left = business_seconds_between(start=at(now), end=at(due_at), calendar=calendar)
    else:
        left = due_at - now
    return max(left, 0.0)


def resume(
    *, now: float, left: float, priority: str, calendar: BusinessCalendar, sla: SlaPolicy,
) -> float:
    """The update clock's due time when it runs on at ``now`` with ``left`` to go."""
    if _business(ClockKind.UPDATE, priority, sla):
        return add_business_seconds(start=at(now), seconds=left, calendar=calendar).timestamp()
    return now + left


def period(
    *, kind: ClockKind, priority: str, calendar: BusinessCalendar, sla: SlaPolicy, now: float,
) -> float:
    """The length of a ``kind`` commitment, counted as its clock counts it, from ``now``."""
    end = due(kind=kind, start=now, priority=priority, calendar=calendar, sla=sla)
    if _business(kind, priority, sla):
        return business_seconds_between(start=at(now), end=at(end), calendar=calendar)
    return end - now
