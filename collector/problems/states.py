"""Soft and hard problem states (Nagios semantics) and flapping, as a pure state machine.

``advance`` folds one result's status into a key's ``ProblemState`` and says what happened
as ``ProblemEvent`` values, each with the reason a person reads in a ticket or the audit log.
A non-OK result starts a SOFT state; ``hard_after`` non-OK results in a row make it HARD,
and only a hard problem (or a flapping one) is reported to the ticket engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from checks.result import Status, worst
from collector.problems.config import ProblemRules
from collector.problems.flapping import flapping_after, percent_state_change
from collector.problems.keys import ProblemKey
from collector.timefmt import as_utc

STATE_VERSION = 1


class StateType(StrEnum):
    """Nagios' state type of a key: all OK, failing but not yet trusted, or a problem."""

    OK = "ok"
    SOFT = "soft"
    HARD = "hard"


class EventKind(StrEnum):
    """What one result changed for its key."""

    SOFT_FAILURE = "soft_failure"  # non-OK, not yet hard: no ticket
    SOFT_RECOVERED = "soft_recovered"  # OK again before it became hard: no ticket
    BECAME_HARD = "became_hard"  # the problem is real: a ticket opens
    WORSENED = "worsened"  # a more severe status while reported: the priority may rise
    IMPROVED = "improved"  # a less severe non-OK status while hard
    STILL_FAILING = "still_failing"  # the same status while hard (the engine rate-limits)
    RECOVERED = "recovered"  # a reported problem is OK again
    FLAPPING_STARTED = "flapping_started"  # one ticket marked flapping, not one per change
    STILL_FLAPPING = "still_flapping"  # a result while flapping: changes are not reported
    FLAPPING_STOPPED = "flapping_stopped"  # the current status decides from here on


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemEvent:
    """One thing that happened to a key, with the reason in words."""

    kind: EventKind
    key: ProblemKey
    at: datetime
    # The status the event reports: the result's, or for FLAPPING_STARTED the worst
    # status among the results it is flapping between.
    status: Status
    previous_status: Status
    state_type: StateType
    attempt: int
    hard_after: int
    percent_state_change: float
    reason: str
    # True when this event makes the key a reported problem (a ticket to open or reopen).
    opens: bool = False
    # While flapping: the event the result would have caused otherwise (for the audit log).
    suppressed: EventKind | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form, e.g. for the audit log."""
        return {
            "kind": str(self.kind), "key": self.key.to_json(), "at": _iso(self.at),
            "status": int(self.status), "previous_status": int(self.previous_status),
            "state_type": str(self.state_type), "attempt": self.attempt,
            "hard_after": self.hard_after,
            "percent_state_change": round(self.percent_state_change, 2),
            "reason": self.reason, "opens": self.opens,
            "suppressed": None if self.suppressed is None else str(self.suppressed),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemState:
    """Everything the rules remember about one key between results (stored as JSON)."""

    key: ProblemKey
    status: Status = Status.OK  # the last result's
    state_type: StateType = StateType.OK
    attempt: int = 0  # non-OK results in a row
    failing_since: datetime | None = None  # the first of them
    hard_since: datetime | None = None
    last_result_at: datetime | None = None
    history: tuple[Status, ...] = ()  # the last results' statuses, oldest first
    percent_state_change: float = 0.0
    flapping: bool = False
    flapping_since: datetime | None = None
    flapping_worst: Status = Status.OK  # the worst status seen while flapping

    @property
    def reported(self) -> bool:
        """The ticket engine was told of this problem and not yet of its recovery."""
        return self.flapping or self.state_type is StateType.HARD

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for storage; ``from_json`` reads it back."""
        return {
            "version": STATE_VERSION, "key": self.key.to_json(), "status": int(self.status),
            "state_type": str(self.state_type), "attempt": self.attempt,
            "failing_since": _iso_or_none(self.failing_since),
            "hard_since": _iso_or_none(self.hard_since),
            "last_result_at": _iso_or_none(self.last_result_at),
            "history": [int(s) for s in self.history],
            "percent_state_change": self.percent_state_change,
            "flapping": self.flapping, "flapping_since": _iso_or_none(self.flapping_since),
            "flapping_worst": int(self.flapping_worst),
        }

    @classmethod
    def from_json(cls, data: Any) -> ProblemState:
        """A state back from ``to_json``; ValueError naming the field when malformed."""
        if not isinstance(data, dict):
            raise ValueError("a problem state must be an object")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported problem state version {data.get('version')!r}")
        try:
            history = data["history"]
            if not isinstance(history, list):
                raise ValueError("history: must be a list")
            return cls(
                key=ProblemKey.from_json(data["key"]),
                status=_status(data["status"], "status"),
                state_type=StateType(data["state_type"]),
                attempt=_count(data["attempt"], "attempt"),
                failing_since=_time_or_none(data["failing_since"], "failing_since"),
                hard_since=_time_or_none(data["hard_since"], "hard_since"),
                last_result_at=_time_or_none(data["last_result_at"], "last_result_at"),
                history=tuple(_status(s, "history") for s in history),
                percent_state_change=float(data["percent_state_change"]),
                flapping=bool(data["flapping"]),
                flapping_since=_time_or_none(data["flapping_since"], "flapping_since"),
                flapping_worst=_status(data["flapping_worst"], "flapping_worst"),
            )
        except KeyError as exc:
            raise ValueError(f"a problem state lacks {exc.args[0]!r}") from None


class Step(NamedTuple):
    """The key's new state and what happened, in order."""

    state: ProblemState
    events: tuple[ProblemEvent, ...]


def new_state(key: ProblemKey) -> ProblemState:
    """The state of a key never seen before: OK, no history."""
    return ProblemState(key=key)


def advance(
    *, state: ProblemState, status: Status, at: datetime, rules: ProblemRules,
    check_type: str | None = None,
) -> Step:
    """Fold one result into the key's state; return the new state and its events.

    A result older than the last one folded in changes nothing (no events).
    """
    at = as_utc(at)
    status = Status(status)
    if state.last_result_at is not None and at < state.last_result_at:
        return Step(state, ())
    hard_after = rules.hard_after_for(state.key, check_type=check_type)
    history = (*state.history, status)[-rules.flapping.window:]
    percent = percent_state_change(history, rules=rules.flapping)
    flaps = not state.key.is_silence and flapping_after(
        was_flapping=state.flapping, percent=percent, rules=rules.flapping)
    new = _hard_or_soft(state, status, at, hard_after)
    new = replace(new, history=history, percent_state_change=percent, last_result_at=at)
    would_be = _change(state, new)

    base = ProblemEvent(
        kind=would_be or EventKind.STILL_FAILING, key=state.key, at=at, status=status,
        previous_status=state.status, state_type=new.state_type, attempt=new.attempt,
        hard_after=hard_after, percent_state_change=percent, reason="")
    if not state.flapping and not flaps:
        if would_be is None:
            return Step(new, ())
        reason = _describe(would_be, state, new, hard_after)
        return Step(new, (replace(base, reason=reason,
                                  opens=would_be is EventKind.BECAME_HARD),))
    if not state.flapping:
        worst_seen = worst(history)
        new = replace(new, flapping=True, flapping_since=at, flapping_worst=worst_seen)
        reason = (f"flapping: {percent:.1f} % state change over the last {len(history)} "
                  f"results >= {rules.flapping.start_threshold:g} %, between OK and up to "
                  f"{worst_seen.name}: one ticket marked flapping, not one per change")
        return Step(new, (replace(base, kind=EventKind.FLAPPING_STARTED, status=worst_seen,
                                  reason=reason, opens=not state.reported,
                                  suppressed=would_be),))
    if flaps:
        if status.severity > state.flapping_worst.severity:
            new = replace(new, flapping_worst=status)
            reason = (f"flapping, now also {status.name} (worse than "
                      f"{state.flapping_worst.name})")
            return Step(new, (replace(base, kind=EventKind.WORSENED, reason=reason,
                                      suppressed=would_be),))
        what = "no change" if would_be is None else _describe(would_be, state, new, hard_after)
        reason = f"not reported while flapping ({percent:.1f} % state change): {what}"
        return Step(new, (replace(base, kind=EventKind.STILL_FLAPPING, reason=reason,
                                  suppressed=would_be),))
    return _stop_flapping(new, base, rules)


def _stop_flapping(new: ProblemState, base: ProblemEvent, rules: ProblemRules) -> Step:
    new = replace(new, flapping=False, flapping_since=None, flapping_worst=Status.OK)
    why = (f"{base.percent_state_change:.1f} % state change <= "
           f"{rules.flapping.stop_threshold:g} %"
           if rules.flapping.enabled else "flap detection is off")
    if new.status is Status.OK:
        return Step(new, (
            replace(base, kind=EventKind.FLAPPING_STOPPED,
                    reason=f"stopped flapping ({why}); now OK"),
            replace(base, kind=EventKind.RECOVERED, reason="OK when it stopped flapping"),
        ))
    # The problem is already reported: the soft phase, a guard against opening a
    # ticket for a blip, no longer applies.
    new = replace(new, state_type=StateType.HARD,
                  hard_since=new.hard_since or new.last_result_at)
    reason = f"stopped flapping ({why}); still {new.status.name}: a problem as any other"
    return Step(new, (replace(base, kind=EventKind.FLAPPING_STOPPED,
                              state_type=StateType.HARD, reason=reason),))


def _hard_or_soft(state: ProblemState, status: Status, at: datetime,
                  hard_after: int) -> ProblemState:
    if status is Status.OK:
        return replace(state, status=status, state_type=StateType.OK, attempt=0,
                       failing_since=None, hard_since=None)
    attempt = state.attempt + 1
    failing_since = state.failing_since or at
    if state.state_type is StateType.HARD or attempt >= hard_after:
        return replace(state, status=status, state_type=StateType.HARD, attempt=attempt,
                       failing_since=failing_since, hard_since=state.hard_since or at)
    return replace(state, status=status, state_type=StateType.SOFT, attempt=attempt,
                   failing_since=failing_since, hard_since=None)


def _change(old: ProblemState, new: ProblemState) -> EventKind | None:
    """What the result means for soft and hard states alone, flapping aside."""
    if new.status is Status.OK:
        return {StateType.HARD: EventKind.RECOVERED,
                StateType.SOFT: EventKind.SOFT_RECOVERED}.get(old.state_type)
    if new.state_type is StateType.SOFT:
        return EventKind.SOFT_FAILURE
    if old.state_type is not StateType.HARD:
        return EventKind.BECAME_HARD
    if new.status.severity > old.status.severity:
        return EventKind.WORSENED
    if new.status.severity < old.status.severity:
        return EventKind.IMPROVED
    return EventKind.STILL_FAILING


def _describe(kind: EventKind, old: ProblemState, new: ProblemState, hard_after: int) -> str:
    results = "result" if new.attempt == 1 else "results"
    if kind is EventKind.SOFT_FAILURE:
        return (f"soft state {new.attempt}/{hard_after}: {new.status.name}; a ticket opens "
                f"after {hard_after} non-OK results in a row")
    if kind is EventKind.SOFT_RECOVERED:
        return (f"OK again at soft state {old.attempt}/{hard_after}: no ticket")
    if kind is EventKind.BECAME_HARD:
        if hard_after == 1:
            return f"{new.status.name}: hard at once"
        return (f"{new.status.name}: {new.attempt} non-OK {results} in a row "
                f"(hard after {hard_after})")
    if kind is EventKind.WORSENED:
        return f"worse: {old.status.name} -> {new.status.name}"
    if kind is EventKind.IMPROVED:
        return f"better but still failing: {old.status.name} -> {new.status.name}"
    if kind is EventKind.STILL_FAILING:
        return f"still {new.status.name}: {new.attempt} non-OK {results} in a row"
    since = "" if old.failing_since is None else f" since {_iso(old.failing_since)}"
    failed = "result" if old.attempt == 1 else "results"
    return f"OK again after {old.attempt} non-OK {failed}{since}"



def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _iso_or_none(at: datetime | None) -> str | None:
    return None if at is None else _iso(at)


def _time_or_none(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field_name}: not an aware ISO time: {value!r} ({exc})") from None


def _status(value: Any, field_name: str) -> Status:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field_name}: a status must be 0..3, got {value!r}")
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"{field_name}: a status must be 0..3, got {value!r}") from None


def _count(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field_name}: must be a whole number >= 0, got {value!r}")
    return value
