"""The rules of a ticket's life: opening, notes, priority, replies, states, breaches.

Every function works on a connection inside a write transaction (``write_transaction``),
takes the time as ``now`` and records what it did in the audit log (``ticket_events``),
so that the decision and its record commit together or not at all. Notices to people go
into the notification outbox in the same transaction (collector.notify).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, Table, select, update

from collector.db import upsert_insert
from collector.errors import CollectorError, NotFound
from collector.hosts.models import Customer
from collector.notify.service import notify
from collector.policy import Policy
from collector.problems.keys import ProblemKey
from collector.rt.models import enqueue as rt_enqueue
from collector.settings import Settings
from collector.sla.clock import ClockKind
from collector.tickets import clocks
from collector.tickets.models import (
    ACTIVE_STATES,
    NEW,
    OPEN,
    RESOLVED,
    STALLED,
    SYSTEM_ACTOR,
    Ticket,
    TicketBreach,
    TicketEvent,
)
from collector.tickets.priority import Priority, PriorityError
from collector.timefmt import human_duration, human_time, iso

TICKETS = cast(Table, Ticket.__table__)
EVENTS = cast(Table, TicketEvent.__table__)
BREACHES = cast(Table, TicketBreach.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
CUSTOMER_ROLE = "customer"


class TicketNotFound(NotFound):
    """No ticket with that number."""


class TicketError(CollectorError):
    """An action that the ticket's state or the input does not allow; the detail says why."""

    status_code = 409
    code = "ticket_conflict"


class TicketInputError(TicketError):
    """A missing or malformed value in a ticket action (a reason, a priority, a state)."""

    status_code = 422
    code = "invalid_request"


@dataclass(frozen=True, kw_only=True)
class NewTicket:
    """What the engine knows when a problem opens a ticket."""

    key: ProblemKey
    customer_id: int
    host_id: int | None
    check_type: str
    subject: str
    priority: Priority
    priority_reason: str
    status: int
    flapping: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- reading


def ticket_row(conn: Connection, ticket_id: int) -> RowMapping:
    """The ticket's row and its customer's name (``customer``); TicketNotFound if none."""
    row = conn.execute(
        select(TICKETS, CUSTOMERS.c.name.label("customer"))
        .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id)
        .where(TICKETS.c.id == ticket_id)
    ).mappings().first()
    if row is None:
        raise TicketNotFound(f"no ticket #{ticket_id}")
    return row


def live_ticket(conn: Connection, key: ProblemKey) -> int | None:
    """The key's active ticket (new, open or stalled), if any."""
    found = conn.execute(select(TICKETS.c.id).where(TICKETS.c.live_key == str(key))).first()
    return None if found is None else int(found[0])


def recent_ticket(conn: Connection, key: ProblemKey, *, since: float) -> int | None:
    """The key's latest ticket resolved at or after ``since`` (a recurrence reopens it)."""
    found = conn.execute(
        select(TICKETS.c.id)
        .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id)
        .where(CUSTOMERS.c.name == key.customer, TICKETS.c.host == key.host,
               TICKETS.c.check == key.check, TICKETS.c.target == key.target,
               TICKETS.c.state == RESOLVED, TICKETS.c.resolved_at >= since)
        .order_by(TICKETS.c.resolved_at.desc())
        .limit(1)
    ).first()
    return None if found is None else int(found[0])


def _key_of(ticket: RowMapping) -> ProblemKey:
    return ProblemKey(ticket["customer"], ticket["host"], ticket["check"], ticket["target"])


# ---------------------------------------------------------------------------- recording


def record_event(
    conn: Connection, *, ticket_id: int | None, customer_id: int | None,
    problem_key: str | None, at: float, kind: str, actor: str, text: str,
    public: bool = False, data: dict[str, Any] | None = None,
) -> int:
    """Append one entry to the audit log; returns its id.

    An entry about a ticket is queued for Request Tracker in the same transaction when
    the connector is on (collector.rt.models.enqueue).
    """
    event_id = int(conn.execute(
        EVENTS.insert().values(
            ticket_id=ticket_id, customer_id=customer_id, problem_key=problem_key, at=at,
            kind=kind, actor=actor, public=public, text=text, data=data or {},
        ).returning(EVENTS.c.id)
    ).scalar_one())
    if ticket_id is not None:
        rt_enqueue(conn, ticket_id=ticket_id, event_id=event_id, actor=actor, now=at)
    return event_id


def _event(conn: Connection, ticket: RowMapping, *, kind: str, actor: str, text: str,
           now: float, public: bool = False, data: dict[str, Any] | None = None) -> int:
    return record_event(conn, ticket_id=ticket["id"], customer_id=ticket["customer_id"],
                        problem_key=str(_key_of(ticket)), at=now, kind=kind, actor=actor,
                        text=text, public=public, data=data)


def _set(conn: Connection, ticket_id: int, now: float, **values: Any) -> None:
    conn.execute(update(TICKETS).where(TICKETS.c.id == ticket_id)
                 .values(updated_at=now, **values))


def _tell(
    conn: Connection, ticket: RowMapping, *, key: str, kind: str, roles: Sequence[str],
    subject: str, body: str, settings: Settings, now: float,
    data: dict[str, Any] | None = None,
) -> int:
    payload = {"ticket": ticket["id"], "priority": ticket["priority"],
               "rt_priority": Priority(ticket["priority"]).rt_code, "state": ticket["state"],
               "problem": _key_of(ticket).to_json(), **(data or {})}
    return notify(conn, key=key, kind=kind, roles=roles, customer=ticket["customer"],
                  ticket_id=ticket["id"], subject=subject,
                  body=body, data=payload, settings=settings, now=now)


# ---------------------------------------------------------------------------- opening


def open_ticket(
    conn: Connection, *, new: NewTicket, policy: Policy, settings: Settings, now: float
) -> int:
    """Open a ticket for a problem (state new) and tell the customer its number.

    The first-response clock starts now. If the key has an active ticket already, that
    ticket's number is returned and the audit log says why no second one was opened.
    """
    key = str(new.key)
    priority = new.priority
    calendar = policy.calendar_for(new.key.customer)
    first_due = clocks.due(kind=ClockKind.FIRST_RESPONSE, start=now, priority=priority,
                           calendar=calendar, sla=policy.sla)
    inserted = conn.execute(
        upsert_insert(conn, TICKETS).values(
            live_key=key, customer_id=new.customer_id, host_id=new.host_id, host=new.key.host,
            check=new.key.check, target=new.key.target, check_type=new.check_type,
            subject=new.subject, priority=str(priority), priority_reason=new.priority_reason,
            state=NEW, status=new.status, flapping=new.flapping, created_at=now,
            updated_at=now, clock_started_at=now, first_response_due=first_due, worked=False,
        ).on_conflict_do_nothing(index_elements=[TICKETS.c.live_key]).returning(TICKETS.c.id)
    ).first()
    if inserted is None:
        existing = live_ticket(conn, new.key)
        assert existing is not None  # the conflict was on live_key, in this transaction
        record_event(conn, ticket_id=None, customer_id=new.customer_id, problem_key=key,
                     at=now, kind="not_opened", actor=SYSTEM_ACTOR,
                     text=f"not opened: ticket #{existing} is already open for this problem",
                     data={"reason": "duplicate", "ticket": existing})
        return existing
    ticket = ticket_row(conn, int(inserted[0]))
    flapping = " (flapping)" if new.flapping else ""
    _event(conn, ticket, kind="opened", actor=SYSTEM_ACTOR, now=now,
           text=f"opened as {priority} (RT {priority.rt_code}){flapping}: "
                f"{new.priority_reason}",
           data={"priority": str(priority), "rt_priority": priority.rt_code,
                 "rule": new.priority_reason, "flapping": new.flapping,
                 "first_response_due": iso(first_due), "evidence": new.evidence})
    _tell(conn, ticket, key=f"opened/{ticket['id']}", kind="opened", roles=[CUSTOMER_ROLE],
          subject=new.subject, settings=settings, now=now,
          body=(f"Monitoring found a problem and opened request #{ticket['id']} "
                f"({priority}, {priority.severity}).\n\n{new.subject}\n\n"
                f"Customer: {new.key.customer}\nHost: {new.key.host}\n"
                f"Check: {new.key.check} {new.key.target}\n"
                f"First response due: {human_time(first_due)}\n\n"
                f"Quote the request number #{ticket['id']} in any message about it.\n"),
          data={"first_response_due": iso(first_due), "evidence": new.evidence})
    return int(ticket["id"])


def reopen(
    conn: Connection, ticket_id: int, *, actor: str, reason: str, policy: Policy,
    settings: Settings, now: float, tell: bool = True,
) -> None:
    """Make a resolved or rejected ticket active again; its clocks start again now.

    ``tell=False``: no notice to the customer (the ticket was reopened in Request Tracker).
    """
    ticket = ticket_row(conn, ticket_id)
    old_state = ticket["state"]
    if old_state in ACTIVE_STATES:
        raise TicketError(f"ticket #{ticket_id} is {old_state}, not resolved or rejected")
    key = _key_of(ticket)
    other = live_ticket(conn, key)
    if other is not None:
        raise TicketError(f"ticket #{other} is already open for this problem")
    calendar = policy.calendar_for(key.customer)
    values: dict[str, Any] = {"live_key": str(key), "resolved_at": None, "recovered_at": None,
                              "stalled_since": None, "update_left": None,
                              "clock_started_at": now}
    if ticket["first_response_at"] is None:
        values.update(state=NEW, first_response_due=clocks.due(
            kind=ClockKind.FIRST_RESPONSE, start=now, priority=ticket["priority"],
            calendar=calendar, sla=policy.sla))
    else:
        values.update(state=OPEN, next_update_due=clocks.due(
            kind=ClockKind.UPDATE, start=now, priority=ticket["priority"], calendar=calendar,
            sla=policy.sla))
    if actor != SYSTEM_ACTOR:
        values["worked"] = True
    _set(conn, ticket_id, now, **values)
    ticket = ticket_row(conn, ticket_id)
    _event(conn, ticket, kind="reopened", actor=actor, now=now, text=f"reopened: {reason}",
           data={"from": old_state, "to": ticket["state"], "reason": reason})
    if not tell:
        return
    _tell(conn, ticket, key=f"reopened/{ticket_id}/{now:.3f}", kind="reopened",
          roles=[CUSTOMER_ROLE], subject=f"reopened: {ticket['subject']}", settings=settings,
          now=now, body=f"Request #{ticket_id} is open again: {reason}\n")


# ---------------------------------------------------------------------------- monitoring notes

_NON_OK_NOTES = {"worsened", "improved", "still_failing", "failing_again", "flapping",
                 "flapping_stopped"}


def note_status(
    conn: Connection, ticket_id: int, *, kind: str, status: int, text: str, now: float,
    flapping: bool | None = None,
) -> None:
    """Add what monitoring saw to the ticket (internal: it is no reply to the customer).

    ``recovered`` starts the recovery hold; any failing status ends it.
    """
    ticket = ticket_row(conn, ticket_id)
    values: dict[str, Any] = {"status": status}
    if kind == "recovered":
        if ticket["recovered_at"] is None:
            values["recovered_at"] = now
    elif kind in _NON_OK_NOTES:
        if status != 0:
            values["recovered_at"] = None
    else:
        raise ValueError(f"unknown monitoring note {kind!r}")
    if kind == "still_failing":
        values["last_notice_at"] = now
    if flapping is not None:
        values["flapping"] = flapping
    _set(conn, ticket_id, now, **values)
    _event(conn, ticket, kind=kind, actor=SYSTEM_ACTOR, text=text, now=now,
           data={"status": status})


def resolve_recovered(conn: Connection, ticket_id: int, *, now: float, hold: float) -> bool:
    """Resolve a recovered ticket that no person worked on, once OK for ``hold`` seconds."""
    ticket = ticket_row(conn, ticket_id)
    recovered_at = ticket["recovered_at"]
    if (ticket["state"] not in ACTIVE_STATES or ticket["worked"] or recovered_at is None
            or now - recovered_at < hold):
        return False
    _set(conn, ticket_id, now, state=RESOLVED, resolved_at=now, live_key=None,
         next_update_due=None, stalled_since=None, update_left=None)
    _event(conn, ticket, kind="resolved", actor=SYSTEM_ACTOR, now=now, public=True,
           text=f"resolved: OK for {human_duration(now - recovered_at)} since "
                f"{human_time(recovered_at)} and no engineer worked on it",
           data={"from": ticket["state"], "recovered_at": iso(recovered_at), "hold": hold})
    return True


# ---------------------------------------------------------------------------- priority


def raise_priority(
    conn: Connection, ticket_id: int, *, priority: Priority | str, reason: str,
    policy: Policy, now: float,
) -> bool:
    """Raise the priority for a worse status (never lowers it); False when not higher."""
    ticket = ticket_row(conn, ticket_id)
    new = Priority.parse(priority)
    if ticket["state"] not in ACTIVE_STATES or not new.is_worse_than(
            Priority(ticket["priority"])):
        return False
    _apply_priority(conn, ticket, new, reason=reason, actor=SYSTEM_ACTOR,
                    kind="priority_raised", policy=policy, now=now)
    return True


def change_priority(
    conn: Connection, ticket_id: int, *, priority: Any, reason: str, actor: str,
    policy: Policy, now: float,
) -> None:
    """A person sets the priority, up or down, with a reason; the clocks restart now."""
    ticket = ticket_row(conn, ticket_id)
    if not (reason or "").strip():
        raise TicketInputError("reason: a priority change needs a reason")
    try:
        new = Priority.parse(priority)
    except PriorityError as exc:
        raise TicketInputError(f"priority: {exc}") from None
    if ticket["state"] not in ACTIVE_STATES:
        raise TicketError(f"ticket #{ticket_id} is {ticket['state']}: reopen it first")
    if new == Priority(ticket["priority"]):
        raise TicketError(f"ticket #{ticket_id} is {new} already")
    _apply_priority(conn, ticket, new, reason=reason.strip(), actor=actor,
                    kind="priority_changed", policy=policy, now=now)


def _apply_priority(
    conn: Connection, ticket: RowMapping, new: Priority, *, reason: str, actor: str,
    kind: str, policy: Policy, now: float,
) -> None:
    """Set the priority and restart the running clock from now under it (the policy's rule)."""
    old = Priority(ticket["priority"])
    calendar = policy.calendar_for(ticket["customer"])
    values: dict[str, Any] = {"priority": str(new), "clock_started_at": now,
                              "priority_reason": f"{actor}: {reason}"}
    dues: dict[str, str | None] = {}
    if ticket["first_response_at"] is None:
        values["first_response_due"] = clocks.due(
            kind=ClockKind.FIRST_RESPONSE, start=now, priority=new, calendar=calendar,
            sla=policy.sla)
        dues["first_response_due"] = iso(values["first_response_due"])
    elif ticket["state"] == STALLED:
        values["update_left"] = clocks.period(kind=ClockKind.UPDATE, priority=new,
                                              calendar=calendar, sla=policy.sla, now=now)
        dues["next_update_due"] = None
    else:
        values["next_update_due"] = clocks.due(
            kind=ClockKind.UPDATE, start=now, priority=new, calendar=calendar, sla=policy.sla)
        dues["next_update_due"] = iso(values["next_update_due"])
    if actor != SYSTEM_ACTOR:
        values["worked"] = True
    _set(conn, ticket["id"], now, **values)
    direction = "raised" if new.is_worse_than(old) else "lowered"
    _event(conn, ticket, kind=kind, actor=actor, now=now,
           text=f"priority {direction} {old} -> {new} (RT {old.rt_code} -> {new.rt_code}): "
                f"{reason}",
           data={"from": str(old), "to": str(new), "rt_priority": new.rt_code,
                 "reason": reason, **dues})


# ---------------------------------------------------------------------------- breaches


def record_breach(
    conn: Connection, ticket_id: int, *, kind: str, due_at: float, now: float,
    policy: Policy, settings: Settings, answered_at: float | None = None,
) -> bool:
    """Record a missed commitment once (per ticket, kind and due time) and tell the TSM."""
    if kind not in ("first_response", "update"):
        raise ValueError(f"unknown commitment {kind!r}")
    ticket = ticket_row(conn, ticket_id)
    moment = now if answered_at is None else answered_at
    late = max(moment - due_at, 0.0)
    inserted = conn.execute(
        upsert_insert(conn, BREACHES).values(
            ticket_id=ticket_id, kind=kind, due_at=due_at, priority=ticket["priority"],
            noticed_at=now, answered_at=answered_at, late_seconds=int(late),
        ).on_conflict_do_nothing(
            index_elements=[BREACHES.c.ticket_id, BREACHES.c.kind, BREACHES.c.due_at]
        ).returning(BREACHES.c.ticket_id)
    ).first()
    if inserted is None:
        return False
    what = "first response" if kind == "first_response" else "update"
    how = (f"given {human_duration(late)} late" if answered_at is not None
           else f"not given, {human_duration(late)} overdue")
    text = f"SLA breach: {what} due {human_time(due_at)} ({ticket['priority']}) {how}"
    role = policy.escalation.breach_role
    _event(conn, ticket, kind="sla_breach", actor=SYSTEM_ACTOR, now=now, text=text,
           data={"commitment": kind, "due_at": iso(due_at), "late_seconds": int(late),
                 "answered_at": None if answered_at is None else iso(answered_at),
                 "notified": role.key})
    _tell(conn, ticket, key=f"breach/{ticket_id}/{kind}/{due_at:.3f}", kind="breach",
          roles=[role.key], subject=f"SLA breach ({what}): {ticket['subject']}",
          settings=settings, now=now,
          body=(f"{text}.\n\nRequest #{ticket_id} for {ticket['customer']}: "
                f"{ticket['subject']}\nState: {ticket['state']}\n"
                f"Assignee: {ticket['assignee'] or 'nobody'}\n"),
          data={"commitment": kind, "due_at": iso(due_at), "role": role.key})
    return True


# The actions of people (reply, comment, state, assignment) live in their own module and
# are part of this service's interface.
from collector.tickets.actions import (  # noqa: E402  (they use the functions above)
    assign,
    comment,
    reply,
    set_state,
)

__all__ = ["NewTicket", "TicketError", "TicketInputError", "TicketNotFound", "assign",
           "change_priority", "comment", "live_ticket", "note_status", "open_ticket",
           "raise_priority", "recent_ticket", "record_breach", "record_event", "reopen",
           "reply", "resolve_recovered", "set_state", "ticket_row"]
