"""The rules of maintenance windows: creating them, their occurrences, what they cover.

A window belongs to a customer and covers every host of it, or one host (every check of
that host), or one check of one host. Its first occurrence is ``starts_at``..``ends_at``;
a daily or weekly window repeats at the same local wall-clock times in its time zone (a
02:00-04:00 Europe/Kyiv window stays at 02:00 local across DST changes), for as long as
an occurrence starts at or before ``until``. An occurrence covers ``starts_at <= at <
ends_at``: the start is inclusive, the end exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, and_, delete, insert, or_, select

from collector.errors import CollectorError, NotFound
from collector.hosts.models import Customer, Host
from collector.maintenance.models import DAILY, ONCE, RECURRENCES, WEEKLY, MaintenanceWindow
from collector.tickets.service import record_event

PERIODS = {DAILY: timedelta(days=1), WEEKLY: timedelta(days=7)}
# The longest an occurrence can last (a week, plus an hour given back by a DST change):
# a recurring window whose ``until`` is further back than this covers nothing any more.
_LONGEST = (PERIODS[WEEKLY] + timedelta(hours=1)).total_seconds()
MAX_CHECK = 128
MAX_ACTOR = 128


class WindowError(CollectorError):
    """A window that cannot be created as asked; ``field`` names the input that is wrong."""

    status_code = 422
    code = "invalid_window"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class WindowMatch:
    """The occurrence of a window that covers an instant."""

    id: int
    reason: str
    starts_at: float
    ends_at: float


@dataclass(frozen=True, kw_only=True)
class Window:
    """A stored maintenance window, with its customer's name."""

    id: int
    customer_id: int
    customer: str
    host: str | None
    check: str | None
    starts_at: float
    ends_at: float
    recurrence: str
    timezone: str
    until: float | None
    reason: str
    created_by: str
    created_at: float

    @property
    def scope(self) -> str:
        """``customer``, ``host`` or ``check``: how much of the customer it covers."""
        if self.host is None:
            return "customer"
        return "host" if self.check is None else "check"

    def applies_to(self, host: str, check: str) -> bool:
        """True when the window's scope includes this check of this host."""
        return (self.host is None or self.host == host) and (
            self.check is None or self.check == check)

    def occurrence_at(self, at: float) -> tuple[float, float] | None:
        """The occurrence (start, end) covering ``at``, if one does."""
        if self.recurrence == ONCE:
            return (self.starts_at, self.ends_at) if self.starts_at <= at < self.ends_at else None
        first = self._nearest(at)
        for k in (first + 1, first, first - 1):
            span = self._occurrence(k)
            if span is not None and span[0] <= at < span[1]:
                return span
        return None

    def upcoming(self, at: float) -> tuple[float, float] | None:
        """The occurrence covering ``at``, else the next one to start; None when none is left."""
        current = self.occurrence_at(at)
        if current is not None:
            return current
        if self.recurrence == ONCE:
            return (self.starts_at, self.ends_at) if at < self.starts_at else None
        for k in range(max(0, self._nearest(at)), max(0, self._nearest(at)) + 3):
            span = self._occurrence(k)
            if span is None:
                return None
            if span[0] > at:
                return span
        return None  # pragma: no cover - one of three consecutive occurrences starts later

    def _nearest(self, at: float) -> int:
        """The number of the occurrence whose local start is the last at or before ``at``."""
        zone = ZoneInfo(self.timezone)
        first = _wall(self.starts_at, zone)
        elapsed = _wall(at, zone) - first
        return math.floor(elapsed / PERIODS[self.recurrence])

    def _occurrence(self, k: int) -> tuple[float, float] | None:
        """Occurrence number ``k`` (0 is the first), or None before the first or after until."""
        if k < 0:
            return None
        if k == 0:
            return self.starts_at, self.ends_at
        zone = ZoneInfo(self.timezone)
        step = PERIODS[self.recurrence] * k
        start = _instant(_wall(self.starts_at, zone) + step, zone)
        if self.until is not None and start > self.until:
            return None
        return start, _instant(_wall(self.ends_at, zone) + step, zone)


def _wall(at: float, zone: ZoneInfo) -> datetime:
    """The local wall-clock time of an instant, naive."""
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> float:
    """The instant of a local wall-clock time.

    A time skipped by a spring-forward change is read with the offset in force before it
    (02:30 on a night that skips 02:00-03:00 is 03:30 local); a time repeated by a
    fall-back change is its first instance.
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC).timestamp()


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; WindowError on ``timezone`` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError("timezone", f"unknown time zone {name!r} "
                          "(an IANA name such as 'Europe/Kyiv' or 'UTC')") from None


def create_window(
    conn: Connection, *, customer: str, host: str | None, check: str | None,
    starts_at: float, ends_at: float, recurrence: str, timezone: str, until: float | None,
    reason: str, created_by: str, now: float, known_customers: Collection[str] = (),
) -> int:
    """Store a new window and audit it; WindowError names the input that is wrong.

    The customer is an enrolled one, or one named in ``known_customers`` (the configured
    ``[customers.*]``), which is then created.
    """
    if recurrence not in RECURRENCES:
        raise WindowError("recurrence", f"{recurrence!r} is not one of {', '.join(RECURRENCES)}")
    zone = zone_named(timezone)
    reason = reason.strip()
    if not reason:
        raise WindowError("reason", "a reason is required (it is shown on the problems held)")
    if not created_by.strip() or len(created_by) > MAX_ACTOR:
        raise WindowError("created_by", f"must be 1 to {MAX_ACTOR} characters")
    if not (math.isfinite(starts_at) and math.isfinite(ends_at)):
        raise WindowError("starts_at", "start and end must be finite times")
    if ends_at <= starts_at:
        raise WindowError("ends_at", "the window must end after it starts")
    if check is not None and host is None:
        raise WindowError("check", "a window for one check needs the host it runs on")
    if check is not None and not 0 < len(check) <= MAX_CHECK:
        raise WindowError("check", f"must be 1 to {MAX_CHECK} characters")
    if recurrence == ONCE:
        if until is not None:
            raise WindowError("until", "only a daily or weekly window repeats until a time")
    else:
        period = PERIODS[recurrence]
        length = _wall(ends_at, zone) - _wall(starts_at, zone)
        if length <= timedelta(0):
            raise WindowError("ends_at", f"the window ends before it starts in local time "
                              f"({timezone}), so it cannot repeat")
        if length > period:
            raise WindowError("ends_at", f"a {recurrence} window cannot last longer than "
                              f"its period ({_hours(length)} > {_hours(period)})")
        if until is not None and until <= starts_at:
            raise WindowError("until", "must be after the window's first start")
    customer_id = conn.scalar(select(Customer.id).where(Customer.name == customer))
    if customer_id is None and customer in known_customers:
        customer_id = conn.execute(insert(Customer).values(name=customer, created_at=now)
                                   .returning(Customer.id)).scalar_one()
    if customer_id is None:
        raise WindowError("customer", f"no customer {customer!r} (neither enrolled nor "
                          "configured)")
    if host is not None:
        owner = conn.scalar(select(Host.customer_id).where(Host.fqdn == host))
        if owner is None:
            raise WindowError("host", f"no enrolled host {host!r}")
        if owner != customer_id:
            raise WindowError("host", f"host {host!r} does not belong to customer {customer!r}")
    draft = Window(id=0, customer_id=customer_id, customer=customer, host=host, check=check,
                   starts_at=starts_at, ends_at=ends_at, recurrence=recurrence,
                   timezone=timezone, until=until, reason=reason, created_by=created_by,
                   created_at=now)
    if draft.upcoming(now) is None:
        raise WindowError("ends_at" if until is None else "until",
                          "the window is over already: it would never cover anything")
    window_id: int = conn.execute(insert(MaintenanceWindow).values(
        customer_id=customer_id, host=host, check=check, starts_at=starts_at, ends_at=ends_at,
        recurrence=recurrence, timezone=timezone, until=until, reason=reason,
        created_by=created_by, created_at=now,
    ).returning(MaintenanceWindow.id)).scalar_one()
    _audit(conn, customer_id=customer_id, at=now, kind="maintenance_created",
           actor=created_by, text=f"maintenance window {window_id} created: {reason}",
           data=_audit_data(draft, window_id))
    return window_id


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g}h"


_COLUMNS = (
    MaintenanceWindow.id, MaintenanceWindow.customer_id, Customer.name,
    MaintenanceWindow.host, MaintenanceWindow.check, MaintenanceWindow.starts_at,
    MaintenanceWindow.ends_at, MaintenanceWindow.recurrence, MaintenanceWindow.timezone,
    MaintenanceWindow.until, MaintenanceWindow.reason, MaintenanceWindow.created_by,
    MaintenanceWindow.created_at,
)


def _window(row: Sequence[Any]) -> Window:
    (id_, customer_id, customer, host, check, starts_at, ends_at, recurrence, timezone,
     until, reason, created_by, created_at) = row
    return Window(id=id_, customer_id=customer_id, customer=customer, host=host, check=check,
                  starts_at=starts_at, ends_at=ends_at, recurrence=recurrence,
                  timezone=timezone, until=until, reason=reason, created_by=created_by,
                  created_at=created_at)


def _select() -> Any:
    return select(*_COLUMNS).join(Customer, Customer.id == MaintenanceWindow.customer_id)


def list_windows(
    conn: Connection, *, customer_id: int | None = None, active_at: float | None = None,
) -> list[Window]:
    """Windows by customer and start; only one customer's, or only those covering an instant."""
    query = _select()
    if customer_id is not None:
        query = query.where(MaintenanceWindow.customer_id == customer_id)
    if active_at is not None:
        query = query.where(*_may_cover(active_at))
    query = query.order_by(Customer.name, MaintenanceWindow.starts_at, MaintenanceWindow.id)
    windows = [_window(row) for row in conn.execute(query)]
    if active_at is not None:
        windows = [w for w in windows if w.occurrence_at(active_at) is not None]
    return windows


def get_window(conn: Connection, window_id: int) -> Window:
    """One window; NotFound when there is no such window."""
    row = conn.execute(_select().where(MaintenanceWindow.id == window_id)).one_or_none()
    if row is None:
        raise NotFound(f"no maintenance window {window_id}")
    return _window(row)


def delete_window(conn: Connection, window_id: int, *, actor: str, now: float) -> Window:
    """Delete a window and audit who did; the deleted window is returned."""
    window = get_window(conn, window_id)
    conn.execute(delete(MaintenanceWindow).where(MaintenanceWindow.id == window_id))
    _audit(conn, customer_id=window.customer_id, at=now, kind="maintenance_deleted",
           actor=actor, text=f"maintenance window {window_id} deleted: {window.reason}",
           data=_audit_data(window, window_id))
    return window


def _may_cover(at: float) -> tuple[Any, ...]:
    """SQL conditions every window covering ``at`` meets (the rest is decided in Python)."""
    return (
        MaintenanceWindow.starts_at <= at,
        or_(
            and_(MaintenanceWindow.recurrence == ONCE, MaintenanceWindow.ends_at > at),
            and_(MaintenanceWindow.recurrence != ONCE,
                 or_(MaintenanceWindow.until.is_(None),
                     MaintenanceWindow.until > at - _LONGEST)),
        ),
    )


def covering_window(
    conn: Connection, *, customer_id: int, host: str, check: str, at: float,
) -> WindowMatch | None:
    """The occurrence of a window covering this check of this host at ``at``, if any.

    One indexed query for the customer's windows that can cover ``at``; when several do,
    the one ending last is returned, so a caller holding a problem knows the longest hold.
    """
    query = _select().where(
        MaintenanceWindow.customer_id == customer_id,
        or_(MaintenanceWindow.host.is_(None), MaintenanceWindow.host == host),
        or_(MaintenanceWindow.check.is_(None), MaintenanceWindow.check == check),
        *_may_cover(at),
    ).order_by(MaintenanceWindow.id)
    best: WindowMatch | None = None
    for row in conn.execute(query):
        window = _window(row)
        span = window.occurrence_at(at)
        if span is not None and (best is None or span[1] > best.ends_at):
            best = WindowMatch(id=window.id, reason=window.reason, starts_at=span[0],
                               ends_at=span[1])
    return best


def _audit_data(window: Window, window_id: int) -> dict[str, Any]:
    return {
        "window_id": window_id, "host": window.host, "check": window.check,
        "starts_at": window.starts_at, "ends_at": window.ends_at,
        "recurrence": window.recurrence, "timezone": window.timezone, "until": window.until,
        "reason": window.reason,
    }


def _audit(conn: Connection, *, customer_id: int, at: float, kind: str, actor: str,
           text: str, data: dict[str, Any]) -> None:
    """One entry of the audit log, about no ticket."""
    record_event(conn, ticket_id=None, customer_id=customer_id, problem_key=None, at=at,
                 kind=kind, actor=actor, text=text, data=data)
