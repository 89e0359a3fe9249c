"""What engineers do on a ticket: reply, comment, change its state, assign it.

Part of collector.tickets.service's interface (imported there). The first public reply
is the first response; every later one is an update and restarts the update clock. A
reply after its due time records the breach (once) as it is given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping

from collector.policy import Policy
from collector.settings import Settings
from collector.sla.clock import ClockKind
from collector.tickets import clocks
from collector.tickets.models import (
    ACTIVE_STATES,
    NEW,
    OPEN,
    REJECTED,
    RESOLVED,
    STALLED,
)
from collector.tickets.service import (
    CUSTOMER_ROLE,
    TicketError,
    TicketInputError,
    _event,
    _set,
    _tell,
    record_breach,
    reopen,
    ticket_row,
)
from collector.timefmt import iso

STATE_ACTIONS = (OPEN, STALLED, RESOLVED, REJECTED, "reopen")


def _active(ticket: RowMapping, what: str) -> None:
    if ticket["state"] not in ACTIVE_STATES:
        raise TicketError(f"ticket #{ticket['id']} is {ticket['state']}: reopen it to {what}")


def _text(text: str | None, name: str = "text") -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise TicketInputError(f"{name}: must not be empty")
    return cleaned


def reply(
    conn: Connection, ticket_id: int, *, text: str, actor: str, policy: Policy,
    settings: Settings, now: float, tell: bool = True,
) -> None:
    """A public reply to the customer: the first response, or an update.

    ``tell=False``: the customer got it another way (a reply made in Request Tracker,
    which mails the requestors itself), so no notice is queued.
    """
    body = _text(text)
    ticket = ticket_row(conn, ticket_id)
    _active(ticket, "reply")
    calendar = policy.calendar_for(ticket["customer"])
    values: dict[str, Any] = {"last_update_at": now, "worked": True}
    first = ticket["first_response_at"] is None
    if first:
        values["first_response_at"] = now
        due = ticket["first_response_due"]
        if due is not None and now > due:
            record_breach(conn, ticket_id, kind="first_response", due_at=due, now=now,
                          policy=policy, settings=settings, answered_at=now)
        if ticket["state"] == NEW:
            values["state"] = OPEN
    else:
        due = ticket["next_update_due"]
        if due is not None and now > due:
            record_breach(conn, ticket_id, kind="update", due_at=due, now=now,
                          policy=policy, settings=settings, answered_at=now)
    period_start = now
    if ticket["state"] == STALLED:
        values["update_left"] = clocks.period(kind=ClockKind.UPDATE,
                                              priority=ticket["priority"], calendar=calendar,
                                              sla=policy.sla, now=period_start)
        values["next_update_due"] = None
    else:
        values["next_update_due"] = clocks.due(kind=ClockKind.UPDATE, start=period_start,
                                               priority=ticket["priority"],
                                               calendar=calendar, sla=policy.sla)
    _set(conn, ticket_id, now, **values)
    kind = "first_response" if first else "update"
    event_id = _event(conn, ticket, kind="reply", actor=actor, now=now, public=True, text=body,
                      data={"counts_as": kind,
                            "next_update_due": None if values["next_update_due"] is None
                            else iso(values["next_update_due"])})
    if not tell:
        return
    _tell(conn, ticket, key=f"reply/{event_id}", kind="reply", roles=[CUSTOMER_ROLE],
          subject=ticket["subject"], body=f"{body}\n\n-- {actor}\n", settings=settings,
          now=now, data={"counts_as": kind})


def comment(conn: Connection, ticket_id: int, *, text: str, actor: str, now: float) -> None:
    """An internal comment: recorded, not sent to the customer, no SLA effect."""
    body = _text(text)
    ticket = ticket_row(conn, ticket_id)
    _set(conn, ticket_id, now, worked=True)
    _event(conn, ticket, kind="comment", actor=actor, now=now, text=body)


def set_state(
    conn: Connection, ticket_id: int, *, state: str, actor: str, reason: str | None,
    policy: Policy, settings: Settings, now: float, tell: bool = True,
) -> None:
    """Move a ticket to open, stalled, resolved or rejected, or reopen it.

    ``tell=False``: no notice to the customer (the change was made in Request Tracker).
    """
    if state not in STATE_ACTIONS:
        raise TicketInputError(f"state: must be one of {', '.join(STATE_ACTIONS)}, "
                               f"got {state!r}")
    if state == "reopen":
        reopen(conn, ticket_id, actor=actor, reason=reason or "reopened", policy=policy,
               settings=settings, now=now, tell=tell)
        return
    ticket = ticket_row(conn, ticket_id)
    old = ticket["state"]
    _active(ticket, f"set it {state}")
    if old == state:
        raise TicketError(f"ticket #{ticket_id} is {state} already")
    calendar = policy.calendar_for(ticket["customer"])
    values: dict[str, Any] = {"state": state, "worked": True}
    if state == STALLED:
        values["stalled_since"] = now
        due = ticket["next_update_due"]
        values["update_left"] = None if due is None else clocks.time_left(
            now=now, due_at=due, priority=ticket["priority"], calendar=calendar,
            sla=policy.sla)
        values["next_update_due"] = None
    elif state == OPEN:
        values.update(_leave_stall(ticket, policy, now))
    else:  # resolved or rejected
        values.update(resolved_at=now, live_key=None, next_update_due=None,
                      stalled_since=None, update_left=None)
    _set(conn, ticket_id, now, **values)
    why = f": {reason.strip()}" if reason and reason.strip() else ""
    data: dict[str, Any] = {"from": old, "to": state, "reason": reason}
    if "next_update_due" in values and values["next_update_due"] is not None:
        data["next_update_due"] = iso(values["next_update_due"])
    _event(conn, ticket, kind="state_changed", actor=actor, now=now,
           text=f"{old} -> {state}{why}", data=data, public=state in (RESOLVED, REJECTED))
    if tell and state in (RESOLVED, REJECTED):
        _tell(conn, ticket, key=f"{state}/{ticket_id}/{now:.3f}", kind=state,
              roles=[CUSTOMER_ROLE], subject=f"{state}: {ticket['subject']}",
              settings=settings, now=now,
              body=f"Request #{ticket_id} is {state}{why}\n")


def _leave_stall(ticket: RowMapping, policy: Policy, now: float) -> dict[str, Any]:
    """Leaving stalled: the update clock runs on with the time it had left."""
    if ticket["state"] != STALLED:
        return {}
    values: dict[str, Any] = {"stalled_since": None, "update_left": None}
    left = ticket["update_left"]
    if left is not None and ticket["first_response_at"] is not None:
        values["next_update_due"] = clocks.resume(
            now=now, left=left, priority=ticket["priority"],
            calendar=policy.calendar_for(ticket["customer"]), sla=policy.sla)
    return values


def assign(
    conn: Connection, ticket_id: int, *, assignee: str | None, actor: str, now: float
) -> None:
    """Give the ticket to an engineer (None: to nobody)."""
    ticket = ticket_row(conn, ticket_id)
    name = (assignee or "").strip() or None
    if name == ticket["assignee"]:
        raise TicketError(f"ticket #{ticket_id} is assigned to {name or 'nobody'} already")
    _set(conn, ticket_id, now, assignee=name, worked=True)
    _event(conn, ticket, kind="assigned", actor=actor, now=now,
           text=f"assigned to {name or 'nobody'} (was {ticket['assignee'] or 'nobody'})",
           data={"from": ticket["assignee"], "to": name})
