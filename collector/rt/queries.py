"""Read-only views of the connector's tables for people: the dashboard and the command line.

The counts (``collector.rt.sync.backlog``) say how much waits; these say which changes
wait and which RT ticket mirrors a collector ticket.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, case, select

from collector.rt.models import CHANGES, DEAD, LINKS, PENDING
from collector.tickets.models import TicketEvent

EVENTS = cast(Table, TicketEvent.__table__)


@dataclass(frozen=True, slots=True)
class WaitingChange:
    """A ticket event not in RT: waiting (``pending``) or given up (``dead``)."""

    id: int
    ticket_id: int
    event_kind: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float | None  # None once given up
    last_error: str | None


def waiting_changes(conn: Connection, *, ticket_id: int | None = None,
                    limit: int | None = None) -> list[WaitingChange]:
    """Changes not done: waiting ones first, in the order they are sent, then given-up ones."""
    query = (
        select(CHANGES.c.id, CHANGES.c.ticket_id, EVENTS.c.kind, CHANGES.c.state,
               CHANGES.c.attempts, CHANGES.c.created_at, CHANGES.c.next_attempt_at,
               CHANGES.c.last_error)
        .join(EVENTS, EVENTS.c.id == CHANGES.c.event_id)
        .where(CHANGES.c.state.in_((PENDING, DEAD)))
        .order_by(case((CHANGES.c.state == PENDING, 0), else_=1), CHANGES.c.id)
    )
    if ticket_id is not None:
        query = query.where(CHANGES.c.ticket_id == ticket_id)
    if limit is not None:
        query = query.limit(limit)
    return [
        WaitingChange(id=int(row.id), ticket_id=int(row.ticket_id), event_kind=row.kind,
                      state=row.state, attempts=int(row.attempts),
                      created_at=float(row.created_at),
                      next_attempt_at=(float(row.next_attempt_at) if row.state == PENDING
                                       else None),
                      last_error=row.last_error)
        for row in conn.execute(query)
    ]


def rt_numbers(conn: Connection, ticket_ids: Iterable[int]) -> dict[int, int]:
    """The RT ticket number of each of these collector tickets that has one."""
    wanted = list(ticket_ids)
    if not wanted:
        return {}
    rows = conn.execute(select(LINKS.c.ticket_id, LINKS.c.rt_id)
                        .where(LINKS.c.ticket_id.in_(wanted)))
    return {int(ticket): int(rt) for ticket, rt in rows}


def ticket_url(rt_url: str, rt_id: int) -> str:
    """The RT ticket's page in RT's web interface."""
    return f"{rt_url.rstrip('/')}/Ticket/Display.html?id={rt_id}"
