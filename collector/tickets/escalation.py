"""The escalation matrix and SLA breach notices, as pure functions of the clock.

The matrix counts clock hours since the request was opened, for as long as it is not
resolved; at each point of the ticket's priority column the named role is told, once per
ticket and role. A missed first response or update is told to the Technical Support
Manager. Nothing here sends anything: the functions say what is due and not yet sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from checks.config import ConfigError, parse_duration
from collector.tickets.priority import Priority, PriorityError
from collector.timefmt import as_utc


class Role(StrEnum):
    """A role that escalations and breach notices go to."""

    TECHNICAL_SUPPORT_MANAGER = "technical_support_manager"
    CUSTOMER_RELATIONS_MANAGER = "customer_relations_manager"
    CTO = "cto"

    @property
    def display_name(self) -> str:
        """The role's name as people write it."""
        return _TITLES[self]

    @property
    def key(self) -> str:
        """The short name recipients are configured under: ``tsm``, ``crm``, ``cto``."""
        return _KEYS[self]


_KEYS = {
    Role.TECHNICAL_SUPPORT_MANAGER: "tsm",
    Role.CUSTOMER_RELATIONS_MANAGER: "crm",
    Role.CTO: "cto",
}
_TITLES = {
    Role.TECHNICAL_SUPPORT_MANAGER: "Technical Support Manager",
    Role.CUSTOMER_RELATIONS_MANAGER: "Customer Relations Manager",
    Role.CTO: "CTO",
}


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One cell of the matrix: ``role`` is told ``after`` the request was opened."""

    role: Role
    after: timedelta

    @property
    def label(self) -> str:
        """The point of the matrix, e.g. ``"immediately"``, ``"1h"``, ``"90m"``."""
        return format_after(self.after)


def format_after(after: timedelta) -> str:
    """``0`` as "immediately", whole hours as ``"4h"``, else minutes or seconds."""
    seconds = int(after.total_seconds())
    if seconds == 0:
        return "immediately"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _hours(n: int) -> timedelta:
    return timedelta(hours=n)


def default_columns() -> dict[Priority, tuple[EscalationStep, ...]]:
    """The support policy's matrix: clock hours since the request was opened."""
    tsm, crm, cto = Role.TECHNICAL_SUPPORT_MANAGER, Role.CUSTOMER_RELATIONS_MANAGER, Role.CTO
    return {
        Priority.P1: (EscalationStep(tsm, _hours(0)), EscalationStep(crm, _hours(1)),
                      EscalationStep(cto, _hours(4))),
        Priority.P2: (EscalationStep(tsm, _hours(1)), EscalationStep(crm, _hours(4)),
                      EscalationStep(cto, _hours(8))),
        Priority.P3: (EscalationStep(tsm, _hours(48)), EscalationStep(crm, _hours(96))),
        Priority.P4: (EscalationStep(tsm, _hours(96)),),
    }


@dataclass(frozen=True)
class EscalationMatrix:
    """The ``[escalation]`` section: one column of steps per priority, and the breach role."""

    columns: Mapping[Priority, tuple[EscalationStep, ...]] = field(
        default_factory=default_columns)
    breach_role: Role = Role.TECHNICAL_SUPPORT_MANAGER

    def steps(self, priority: Priority) -> tuple[EscalationStep, ...]:
        """The column of ``priority``, earliest first."""
        return tuple(sorted(self.columns.get(priority, ()), key=lambda s: s.after))

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, key: str = "escalation") -> EscalationMatrix:
        """The matrix from ``[escalation]``; a priority left out keeps the policy's column."""
        if not isinstance(table, Mapping):
            raise ConfigError(key, "expected a table")
        columns = default_columns()
        breach_role = Role.TECHNICAL_SUPPORT_MANAGER
        seen: dict[Priority, str] = {}
        for name, value in table.items():
            path = f"{key}.{name}"
            if name == "breach_role":
                breach_role = _role(value, path)
                continue
            try:
                priority = Priority.parse(name)
            except PriorityError:
                raise ConfigError(path, "unknown key (allowed here: breach_role, P1, P2, P3, "
                                  "P4)") from None
            if priority in seen:
                raise ConfigError(path, f"the same priority as {key}.{seen[priority]}")
            seen[priority] = name
            columns[priority] = _column(value, path)
        return cls(columns=columns, breach_role=breach_role)


def _role(value: Any, key: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ConfigError(key, f"not a role: {value!r} (use "
                          f"{', '.join(r.value for r in Role)})") from None


def _column(table: Any, key: str) -> tuple[EscalationStep, ...]:
    if not isinstance(table, Mapping):
        raise ConfigError(key, "expected a table of role = time since opened, "
                          "e.g. customer_relations_manager = \"1h\"")
    steps = []
    for name, value in table.items():
        role = _role(name, f"{key}.{name}")
        steps.append(EscalationStep(role, parse_after(value, f"{key}.{name}")))
    return tuple(sorted(steps, key=lambda s: s.after))


def parse_after(value: Any, key: str) -> timedelta:
    """A time since opening: seconds as a number, or ``"90s"``, ``"15m"``, ``"4h"``, ``"2d"``
    (``checks.config.parse_duration``, the syntax of every other duration)."""
    try:
        return timedelta(seconds=parse_duration(value, key))
    except ConfigError:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise  # a negative number: parse_duration says so
        raise ConfigError(key, f"not a duration: {value!r} (use e.g. 0, \"1h\", \"90m\")"
                          ) from None


# ---------------------------------------------------------------------------- escalations


@dataclass(frozen=True, slots=True)
class Escalation:
    """A notice that is due: ``role`` is told; ``step`` names the cell, for the record."""

    role: Role
    step: str
    due_at: datetime


def step_name(priority: Priority, step: EscalationStep) -> str:
    """How a sent escalation is recorded, e.g. ``"P2 1h"``."""
    return f"{priority} {step.label}"


def due_escalations(
    *,
    matrix: EscalationMatrix,
    priority: Priority,
    opened_at: datetime,
    now: datetime,
    sent: Collection[tuple[str, str]],
) -> tuple[Escalation, ...]:
    """The escalations due by ``now`` and not yet sent, earliest first.

    ``sent`` holds the (role, step) pairs already sent for this ticket. The policy tells
    each role once per ticket, so a role in ``sent`` under any step is not told again:
    after a priority change the current priority's column applies, counted from the
    opening, and only roles not yet told are due.
    """
    opened_at, now = as_utc(opened_at), as_utc(now)
    told = {str(role) for role, _ in sent}
    due = []
    for step in matrix.steps(priority):
        due_at = opened_at + step.after
        if due_at <= now and step.role.value not in told:
            told.add(step.role.value)
            due.append(Escalation(step.role, step_name(priority, step), due_at))
    return tuple(due)


# ---------------------------------------------------------------------------- breaches


class BreachKind(StrEnum):
    """Which commitment was missed."""

    FIRST_RESPONSE = "first_response"
    UPDATE = "update"


@dataclass(frozen=True, slots=True)
class Deadline:
    """One commitment of a ticket: due at ``due_at``, met at ``met_at`` (None: not yet)."""

    kind: BreachKind
    due_at: datetime
    met_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BreachNotice:
    """A missed commitment, to be told to ``role`` once; ``key`` identifies it."""

    kind: BreachKind
    due_at: datetime
    role: Role

    @property
    def key(self) -> str:
        """``"first_response 2026-11-26T09:00:00+00:00"``: one notice per missed deadline."""
        return f"{self.kind} {self.due_at.isoformat()}"


def due_breach_notices(
    *,
    matrix: EscalationMatrix,
    deadlines: Iterable[Deadline],
    now: datetime,
    sent: Collection[str],
) -> tuple[BreachNotice, ...]:
    """Breach notices for deadlines missed by ``now`` whose key is not in ``sent``.

    A deadline is missed when it passed unmet (``now`` after ``due_at``), or was met late
    (``met_at`` after ``due_at``); met exactly at ``due_at`` is in time.
    """
    now = as_utc(now)
    notices: list[BreachNotice] = []
    for deadline in deadlines:
        due_at = as_utc(deadline.due_at)  # in UTC, so one instant gives one notice key
        missed = (deadline.met_at > due_at if deadline.met_at is not None else now > due_at)
        if not missed:
            continue
        notice = BreachNotice(deadline.kind, due_at, matrix.breach_role)
        if notice.key not in sent and notice not in notices:
            notices.append(notice)
    return tuple(sorted(notices, key=lambda n: n.due_at))
