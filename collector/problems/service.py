"""What the ticket engine does with each problem event: open, reopen, add to, hold or audit.

Every decision is written to the audit log (``ticket_events``) with its reason, including
every ticket that is NOT opened and why (soft state, maintenance, the site's silence,
flapping, a ticket already open). The functions here work on one connection inside the
engine's write transaction; ``collector.problems.engine`` drives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping

from checks.result import Status
from collector.maintenance.service import covering_window
from collector.problems.context import (
    Context,
    Hold,
    Record,
    StillFailingRun,
    Subject,
)
from collector.problems.keys import HOST_SILENCE_CHECK, HOST_SILENCE_TARGET, ProblemKey
from collector.problems.mass_silence import SilenceVerdict
from collector.problems.states import EventKind, ProblemEvent
from collector.sla.clock import ClockKind
from collector.tickets import clocks
from collector.tickets import service as tickets
from collector.tickets.models import SYSTEM_ACTOR
from collector.tickets.policy import Decision, priority_for
from collector.tickets.priority import Priority
from collector.timefmt import human_duration, iso

# Why a reported problem has no ticket yet (problem_states.pending_reason starts so).
HELD_MAINTENANCE = "maintenance"
HELD_SITE = "site_silence"


# ---------------------------------------------------------------------------- events


def handle_events(ctx: Context, record: Record, subject: Subject,
                  events: Sequence[ProblemEvent | StillFailingRun]) -> None:
    """Act on the events one key's new results caused, in order."""
    suppressed: list[ProblemEvent] = []
    for event in events:
        if isinstance(event, StillFailingRun):
            _on_run(ctx, record, subject, event)
            continue
        ctx.report.events += 1
        if event.kind is EventKind.STILL_FLAPPING:
            if event.suppressed is not None:
                suppressed.append(event)
            continue
        _on_event(ctx, record, subject, event)
    if suppressed:
        _audit_flapping(ctx, record, subject, suppressed)


def _on_event(ctx: Context, record: Record, subject: Subject, event: ProblemEvent) -> None:
    kind = event.kind
    if kind is EventKind.SOFT_RECOVERED:
        _recovered_again(ctx, record, subject, event)
        return
    if kind is EventKind.BECAME_HARD or (kind is EventKind.FLAPPING_STARTED and event.opens):
        open_problem(ctx, record, subject, status=event.status, why=event.reason,
                     flapping=kind is EventKind.FLAPPING_STARTED, event=event)
        return
    if kind is EventKind.RECOVERED and record.pending_since is not None:
        clear_pending(ctx, record, subject, why=f"recovered before its ticket opened: "
                      f"{event.reason}")
    live = live_ticket(ctx, record.key)
    if live is None:
        if kind is EventKind.SOFT_FAILURE and event.attempt == 1:
            audit(ctx, subject, ticket_id=None, kind="not_opened",
                  text=f"ticket NOT opened: {event.reason}",
                  data={"reason": "soft_state", "event": event.to_json()})
            ctx.report.not_opened += 1
        return
    record.ticket_id = live
    status = int(event.status)
    if kind is EventKind.SOFT_FAILURE:
        if ticket_row(ctx, record.key, live)["recovered_at"] is not None:
            _note(ctx, live, "failing_again", status, f"failing again: {event.reason}",
                  subject)
        return
    if kind is EventKind.FLAPPING_STARTED:
        _note(ctx, live, "flapping", status, event.reason, subject, flapping=True)
        _raise(ctx, live, subject, event.status, event.reason)
    elif kind is EventKind.WORSENED:
        _note(ctx, live, "worsened", status, event.reason, subject)
        _raise(ctx, live, subject, event.status, event.reason)
    elif kind is EventKind.IMPROVED:
        _note(ctx, live, "improved", status,
              f"{event.reason} (the priority stays: only a person lowers it)", subject)
    elif kind is EventKind.STILL_FAILING:
        if _update_due(ctx, record.key, live):
            _note(ctx, live, "still_failing", status, event.reason, subject)
    elif kind is EventKind.RECOVERED:
        hold = human_duration(ctx.settings.tickets.recovery_hold)
        _note(ctx, live, "recovered", status,
              f"{event.reason}; resolved by itself after {hold} OK unless an engineer "
              f"worked on it", subject)
    elif kind is EventKind.FLAPPING_STOPPED:
        _note(ctx, live, "flapping_stopped", status, event.reason, subject, flapping=False)


def _on_run(ctx: Context, record: Record, subject: Subject, run: StillFailingRun) -> None:
    """As ``_on_event`` for each STILL_FAILING event of the run: only a due update acts."""
    live = live_ticket(ctx, record.key)
    if live is not None:
        record.ticket_id = live
        if _update_due(ctx, record.key, live):
            for event in run.events():
                ctx.report.events += 1
                _on_event(ctx, record, subject, event)
            return
    ctx.report.events += run.count


def _recovered_again(ctx: Context, record: Record, subject: Subject,
                     event: ProblemEvent) -> None:
    """A failure that ended a ticket's recovery was a blip: the recovery starts again."""
    live = live_ticket(ctx, record.key)
    if live is None:
        return
    row = ticket_row(ctx, record.key, live)
    if row["status"] != Status.OK and row["recovered_at"] is None:
        _note(ctx, live, "recovered", int(Status.OK),
              f"{event.reason}; the recovery hold starts again", subject)


def _audit_flapping(ctx: Context, record: Record, subject: Subject,
                    events: list[ProblemEvent]) -> None:
    """One audit entry per pass for the changes a flapping key did not report."""
    live = live_ticket(ctx, record.key)
    opened = [e for e in events if e.suppressed is EventKind.BECAME_HARD]
    last = events[-1]
    data = {"suppressed": [str(e.suppressed) for e in events], "event": last.to_json()}
    if opened:
        text = (f"ticket NOT opened: flapping, covered by "
                f"{'ticket #' + str(live) if live else 'the flapping problem'}: "
                f"{opened[-1].reason}")
        audit(ctx, subject, ticket_id=None, kind="not_opened", text=text,
              data={"reason": "flapping", "ticket": live, **data})
        ctx.report.not_opened += 1
    else:
        audit(ctx, subject, ticket_id=live, kind="not_reported",
              text=f"{len(events)} change(s) not reported while flapping: {last.reason}",
              data=data)


# ---------------------------------------------------------------------------- opening


def open_problem(
    ctx: Context, record: Record, subject: Subject, *, status: Status, why: str,
    flapping: bool, event: ProblemEvent | None = None, late: str | None = None,
) -> int | None:
    """The key became a reported problem: open its ticket, unless something holds it.

    In order: a maintenance window or the site's silence holds it (pending, audited);
    an active ticket of the key gets the failure added; a ticket of the key resolved
    within ``reopen_window`` is reopened; else a new ticket opens. Returns the ticket.
    """
    hold = find_hold(ctx, subject)
    if hold is not None:
        _set_pending(ctx, record, subject, hold, event)
        return None
    record.pending_since = record.pending_reason = None
    priority = decide_priority(ctx, subject, status)
    prefix = f"{late}; " if late else ""
    live = live_ticket(ctx, record.key)
    if live is not None:
        record.ticket_id = live
        row = ticket_row(ctx, record.key, live)
        if row["recovered_at"] is not None or row["status"] == Status.OK:
            _note(ctx, live, "failing_again", int(status), f"{prefix}failing again: {why}",
                  subject, flapping=True if flapping else None)
        else:
            audit(ctx, subject, ticket_id=None, kind="not_opened",
                  text=f"not opened: ticket #{live} is already open for this problem ({why})",
                  data={"reason": "duplicate", "ticket": live})
            ctx.report.not_opened += 1
            if flapping:
                _note(ctx, live, "flapping", int(status), why, subject, flapping=True)
        _raise(ctx, live, subject, status, why)
        return live
    recent = tickets.recent_ticket(
        ctx.conn, record.key, since=ctx.now - ctx.settings.tickets.reopen_window)
    if recent is not None:
        window = human_duration(ctx.settings.tickets.reopen_window)
        forget(ctx, record.key)
        tickets.reopen(ctx.conn, recent, actor=SYSTEM_ACTOR,
                       reason=f"{prefix}the problem came back within {window} of its "
                              f"resolution: {why}",
                       policy=ctx.policy, settings=ctx.settings, now=ctx.now)
        _note(ctx, recent, "failing_again", int(status), f"{prefix}failing again: {why}",
              subject, flapping=flapping)
        _raise(ctx, recent, subject, status, why)
        record.ticket_id = recent
        ctx.report.reopened.append(recent)
        return recent
    evidence = {"summary": subject.summary, "details": subject.details,
                "metrics": subject.metrics, "status": int(status), "why": f"{prefix}{why}"}
    if event is not None:
        evidence["event"] = event.to_json()
    forget(ctx, record.key)
    ticket_id = tickets.open_ticket(ctx.conn, new=tickets.NewTicket(
        key=record.key, customer_id=subject.customer_id, host_id=subject.host_id,
        check_type=subject.check_type, subject=subject_line(subject, status),
        priority=priority.priority, priority_reason=priority.rule, status=int(status),
        flapping=flapping, evidence=evidence,
    ), policy=ctx.policy, settings=ctx.settings, now=ctx.now)
    record.ticket_id = ticket_id
    ctx.report.opened.append(ticket_id)
    return ticket_id


def find_hold(ctx: Context, subject: Subject) -> Hold | None:
    """A maintenance window covering the key now, or the site's silence covering a host's."""
    key = subject.key
    window = covering_window(ctx.conn, customer_id=subject.customer_id, host=key.host,
                             check=key.check, at=ctx.now)
    if window is not None:
        return Hold(HELD_MAINTENANCE, f"{HELD_MAINTENANCE}:{window.id}",
                    f"maintenance window {window.id} until {iso(window.ends_at)}: "
                    f"{window.reason}",
                    {"window": window.id, "window_ends_at": window.ends_at,
                     "window_reason": window.reason})
    if (key.check, key.target) != (HOST_SILENCE_CHECK, HOST_SILENCE_TARGET):
        return None
    verdict = ctx.verdicts.get(key)
    if verdict is None:
        return Hold(HELD_SITE, f"{HELD_SITE}:undecided",
                    "silent since the last mass-silence decision: decided on the next pass",
                    {"verdict": None})
    if verdict.verdict is SilenceVerdict.OWN:
        return None
    site = str(ProblemKey.site_silence(customer=key.customer))
    return Hold(HELD_SITE, f"{HELD_SITE}:{verdict.verdict}", verdict.reason,
                {"verdict": str(verdict.verdict), "site": site,
                 "held_until": None if verdict.held_until is None
                 else verdict.held_until.timestamp()})


def _set_pending(ctx: Context, record: Record, subject: Subject, hold: Hold,
                 event: ProblemEvent | None) -> None:
    if record.pending_reason == hold.code:
        return
    if record.pending_since is None:
        record.pending_since = ctx.now
    record.pending_reason = hold.code
    data: dict[str, Any] = {"reason": hold.reason, **hold.data}
    if event is not None:
        data["event"] = event.to_json()
    audit(ctx, subject, ticket_id=None, kind="not_opened",
          text=f"ticket NOT opened: {hold.text}", data=data)
    ctx.report.not_opened += 1
    ctx.report.held += 1


def clear_pending(ctx: Context, record: Record, subject: Subject, *, why: str) -> None:
    """The problem held back went away: no ticket, and the audit log says so."""
    audit(ctx, subject, ticket_id=None, kind="pending_cleared",
          text=f"no ticket: {why}",
          data={"pending_since": record.pending_since, "held_by": record.pending_reason})
    record.pending_since = record.pending_reason = None


def retry_pending(ctx: Context, record: Record, subject: Subject) -> None:
    """A held problem: open its ticket now if nothing holds it any more (audited)."""
    state = record.state
    if not state.reported:
        clear_pending(ctx, record, subject, why="recovered before its ticket opened")
        return
    since, held_by = record.pending_since or ctx.now, record.pending_reason or "?"
    status = state.flapping_worst if state.flapping else state.status
    late = (f"opened late: held since {iso(since)} ({held_by.replace(':', ' ')}), "
            f"nothing holds it any more")
    opened = open_problem(ctx, record, subject, status=status, flapping=state.flapping,
                          why=f"{status.name}: {subject.summary}", late=late)
    if opened is not None:
        audit(ctx, subject, ticket_id=opened, kind="opened_late", text=late,
              data={"pending_since": since, "held_by": held_by})


# ---------------------------------------------------------------------------- helpers


def decide_priority(ctx: Context, subject: Subject, status: Status) -> Decision:
    """The priority policy's answer for this key at ``status`` (non-OK)."""
    decision = priority_for(
        policy=ctx.policy.priority, check_type=subject.check_type, status=status,
        target=subject.key.target, customer=subject.key.customer,
        host_tags=subject.host_tags, host_critical=subject.host_critical,
        details=subject.details)
    assert decision is not None  # only non-OK statuses open or raise
    return decision


def subject_line(subject: Subject, status: Status) -> str:
    """The ticket's subject: ``db1.example.net: mysql_replication replica CRITICAL: ...``."""
    key = subject.key
    if key.host == "*":
        return f"{key.customer}: site not reporting: {subject.summary}"
    if key.is_silence:
        return f"{key.host}: agent not reporting: {subject.summary}"
    return f"{key.host}: {key.check} {key.target} {Status(status).name}: {subject.summary}"


def audit(ctx: Context, subject: Subject, *, ticket_id: int | None, kind: str, text: str,
          data: dict[str, Any]) -> None:
    """One entry of the audit log, by the system, about this key."""
    tickets.record_event(ctx.conn, ticket_id=ticket_id, customer_id=subject.customer_id,
                         problem_key=str(subject.key), at=ctx.now, kind=kind,
                         actor=SYSTEM_ACTOR, text=text, data=data)


def _note(ctx: Context, ticket_id: int, kind: str, status: int, text: str, subject: Subject,
          *, flapping: bool | None = None) -> None:
    summary = f" ({subject.summary})" if subject.summary and status else ""
    forget(ctx, subject.key)
    tickets.note_status(ctx.conn, ticket_id, kind=kind, status=status,
                        text=f"{text}{summary}", now=ctx.now, flapping=flapping)
    ctx.report.notes += 1


def _raise(ctx: Context, ticket_id: int, subject: Subject, status: Status, why: str) -> None:
    if Status(status) is Status.OK:
        return
    decision = decide_priority(ctx, subject, status)
    forget(ctx, subject.key)
    tickets.raise_priority(ctx.conn, ticket_id, priority=decision.priority,
                           reason=f"{why}; {decision.rule}", policy=ctx.policy, now=ctx.now)


def live_ticket(ctx: Context, key: ProblemKey) -> int | None:
    """The key's active ticket, from the rows read for this chunk when they have it."""
    if ctx.live is not None and key in ctx.live:
        row = ctx.live[key]
        return None if row is None else int(row["id"])
    return tickets.live_ticket(ctx.conn, key)


def ticket_row(ctx: Context, key: ProblemKey, ticket_id: int) -> RowMapping:
    """A ticket's row (as ``tickets.ticket_row``), from the chunk's rows when it is the
    key's live ticket and nothing wrote it since."""
    row = None if ctx.live is None else ctx.live.get(key)
    if row is not None and int(row["id"]) == ticket_id:
        return row
    return tickets.ticket_row(ctx.conn, ticket_id)


def forget(ctx: Context, key: ProblemKey) -> None:
    """The key's ticket is about to be written (or opened): read it from the store again."""
    ctx.not_due.clear()
    if ctx.live is not None:
        ctx.live.pop(key, None)


def _update_due(ctx: Context, key: ProblemKey, ticket_id: int) -> bool:
    """Whether a "still failing" note is due: one update period of the ticket's priority
    since the last one (or since the clock started), counted as the SLA counts it.

    The answer holds until the ticket is written: a ticket found not due is not read again.
    """
    if ticket_id in ctx.not_due:
        return False
    row = ticket_row(ctx, key, ticket_id)
    since = row["last_notice_at"] or row["clock_started_at"]
    due = clocks.due(kind=ClockKind.UPDATE, start=since, priority=str(Priority(row["priority"])),
                     calendar=ctx.policy.calendar_for(row["customer"]), sla=ctx.policy.sla)
    if ctx.now >= due:
        return True
    ctx.not_due.add(ticket_id)
    return False
