"""What the ticket engine works with: a problem's subject and record, a pass's context.

The types that ``collector.problems.service`` decides on and ``collector.problems.engine``
and ``records`` read and write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping

from checks.result import Status
from collector.policy import Policy
from collector.problems.config import ProblemRules
from collector.problems.keys import ProblemKey
from collector.problems.mass_silence import HostVerdict
from collector.problems.states import ProblemEvent, ProblemState, advance
from collector.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """What the engine knows about a problem's key when it decides: where, what, how bad."""

    key: ProblemKey
    customer_id: int
    host_id: int | None
    check_type: str
    host_tags: tuple[str, ...] = ()
    host_critical: bool = False
    status: int = 0
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    metrics: list[Any] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Record:
    """A key's stored problem state (problem_states), changed in place by the decisions."""

    key: ProblemKey
    check_type: str
    state: ProblemState
    folded: int = 0
    ticket_id: int | None = None
    pending_since: float | None = None
    pending_reason: str | None = None


@dataclass(slots=True)
class EngineReport:
    """What one engine pass did, for the log and the tests."""

    results: int = 0
    events: int = 0
    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    not_opened: int = 0
    notes: int = 0
    held: int = 0
    versions_changed: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Context:
    """One transaction of the engine: the connection, the rules, the time, the tallies."""

    conn: Connection
    policy: Policy
    settings: Settings
    now: float
    report: EngineReport
    # Host-silence keys of customers with silent hosts: this pass's mass-silence verdict.
    verdicts: dict[ProblemKey, HostVerdict] = field(default_factory=dict)
    # The live tickets' rows of the keys being folded, read in one query (None: no live
    # ticket). A key's entry is dropped as soon as its ticket is written; absent keys are
    # looked up in the store.
    live: dict[ProblemKey, RowMapping | None] | None = None
    # Tickets whose "still failing" update was found not due (until one is written).
    not_due: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Hold:
    """Something that keeps a reported problem from opening its ticket now."""

    reason: str  # HELD_MAINTENANCE or HELD_SITE
    code: str  # stored in pending_reason: the reason and what holds it
    text: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class StillFailingRun:
    """``count`` more results of one status on a hard problem that neither changes nor flaps.

    Each of them is a STILL_FAILING event that differs from the one before only in its
    attempt; acting on one only matters when the ticket's update is due, so the events
    are made (by ``advance`` itself) only then.
    """

    after: ProblemState  # the state the run starts from
    status: Status
    at: datetime
    rules: ProblemRules
    check_type: str
    count: int

    def events(self) -> Iterator[ProblemEvent]:
        """The run's events, in order, exactly as ``advance`` gives them one by one."""
        state = self.after
        for _ in range(self.count):
            step = advance(state=state, status=self.status, at=self.at, rules=self.rules,
                           check_type=self.check_type)
            state = step.state
            yield from step.events
