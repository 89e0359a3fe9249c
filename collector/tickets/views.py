"""The tickets API: list, detail, the actions of a support engineer, and the audit log.

Reading: any user; a viewer sees its own customer's tickets only (another customer's
ticket answers 404, as a missing one) and only the public entries of their history.
Acting (reply, comment, priority, state, assign): admin and tse; others get 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from collector.people.auth import TSE, AuthRoute, Principal, PrincipalDep, require_role
from collector.runtime import Runtime, get_runtime
from collector.tickets import work
from collector.tickets.models import (
    AssignIn,
    PriorityIn,
    ReplyIn,
    StateIn,
    TicketDetail,
    TicketView,
)
from collector.tickets.queries import (
    AuditEntry,
    QueryError,
    audit_log,
    list_tickets,
    ticket_detail,
)
from collector.timefmt import as_utc

router = APIRouter(prefix="/api/v1", tags=["tickets"], route_class=AuthRoute)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
WorkerDep = Annotated[Principal, Depends(require_role(TSE))]


@router.get("/tickets", response_model=list[TicketView])
def tickets(
    runtime: RuntimeDep, principal: PrincipalDep,
    customer: Annotated[str | None, Query(description="a customer's name")] = None,
    state: Annotated[list[str] | None, Query(
        description="repeatable or comma-separated: new, open, stalled, resolved, rejected; "
                    "'all' for every state; default: the active ones (new, open, stalled)",
    )] = None,
    priority: Annotated[str | None, Query(description="P1..P4 (or S1..S4, 80/60/40/20)")] = None,
    host: Annotated[str | None, Query(description="the host's FQDN ('*' for a site)")] = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TicketView]:
    """Tickets, most urgent first, then the oldest first."""
    with runtime.engine.connect() as conn:
        return list_tickets(conn, scope=principal.scope, customer=customer, states=state or (),
                            priority=priority, host=host, limit=limit, offset=offset)


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
def ticket(ticket_id: int, runtime: RuntimeDep, principal: PrincipalDep) -> TicketDetail:
    """One ticket with its SLA clocks, escalations, breaches and history (oldest first)."""
    with runtime.engine.connect() as conn:
        return ticket_detail(conn, ticket_id, scope=principal.scope,
                             internal=work.internal(principal))


@router.post("/tickets/{ticket_id}/reply", response_model=TicketDetail)
def reply(ticket_id: int, body: ReplyIn, runtime: RuntimeDep,
          principal: WorkerDep) -> TicketDetail:
    """A public answer to the customer; the first one is the first response."""
    return work.reply(runtime, principal, ticket_id, text=body.text)


@router.post("/tickets/{ticket_id}/comment", response_model=TicketDetail)
def comment(ticket_id: int, body: ReplyIn, runtime: RuntimeDep,
            principal: WorkerDep) -> TicketDetail:
    """An internal note: not shown to viewers, not sent to the customer."""
    return work.comment(runtime, principal, ticket_id, text=body.text)


@router.post("/tickets/{ticket_id}/priority", response_model=TicketDetail)
def priority(ticket_id: int, body: PriorityIn, runtime: RuntimeDep,
             principal: WorkerDep) -> TicketDetail:
    """Change the priority with a reason; the SLA clocks start again from now."""
    return work.change_priority(runtime, principal, ticket_id, priority=body.priority,
                                reason=body.reason)


@router.post("/tickets/{ticket_id}/state", response_model=TicketDetail)
def state(ticket_id: int, body: StateIn, runtime: RuntimeDep,
          principal: WorkerDep) -> TicketDetail:
    """Move the ticket: open, stalled, resolved, rejected, or reopen."""
    return work.set_state(runtime, principal, ticket_id, state=body.state, reason=body.reason)


@router.post("/tickets/{ticket_id}/assign", response_model=TicketDetail)
def assign(ticket_id: int, body: AssignIn, runtime: RuntimeDep,
           principal: WorkerDep) -> TicketDetail:
    """Give the ticket to someone (null: to nobody)."""
    return work.assign(runtime, principal, ticket_id, assignee=body.assignee)


@router.get("/audit", response_model=list[AuditEntry])
def audit(
    runtime: RuntimeDep, principal: PrincipalDep,
    ticket: Annotated[int | None, Query(description="one ticket's entries")] = None,
    customer: Annotated[str | None, Query(description="a customer's name")] = None,
    kind: Annotated[list[str] | None, Query(
        description="repeatable: opened, not_opened, reply, comment, priority, ...")] = None,
    since: Annotated[str | None, Query(
        description="ISO 8601 time with an offset (2026-11-26T06:00:00Z) or epoch seconds",
    )] = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    """The audit log, newest first: every decision and action, with or without a ticket."""
    with runtime.engine.connect() as conn:
        return audit_log(conn, scope=principal.scope, internal=work.internal(principal),
                         ticket_id=ticket, customer=customer, kinds=kind or (),
                         since=_since(since), limit=limit, offset=offset)


def _since(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        raise QueryError(f"since: expected an ISO 8601 time with an offset or epoch seconds, "
                         f"got {value!r}") from None

