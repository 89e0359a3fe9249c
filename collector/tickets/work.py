"""A person's action on a ticket, run the same way for the API and the dashboard's forms.

Each function checks the input the way the API always has (an empty text or reason is
named), runs the service's rule in one write transaction, and answers with the ticket as
the actor sees it now. A ticket the actor may not see is TicketHidden (404) before
anything changes. Who may act at all (admin, tse) is decided by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from collector.db import write_transaction
from collector.people.service import Principal
from collector.runtime import Runtime
from collector.tickets import service
from collector.tickets.models import TicketDetail
from collector.tickets.queries import QueryError, ticket_detail


def internal(principal: Principal) -> bool:
    """True when ``principal`` sees internal notes and notices (staff, not a viewer)."""
    return principal.scope is None


def required(value: str | None, name: str) -> str:
    """``value`` without surrounding blanks; QueryError naming ``name`` when empty."""
    text = (value or "").strip()
    if not text:
        raise QueryError(f"{name}: must not be empty")
    return text


def act(
    runtime: Runtime, principal: Principal, ticket_id: int,
    action: Callable[[Connection, float], Any],
) -> TicketDetail:
    """Run one action in a write transaction and answer with the ticket as it is now."""
    with write_transaction(runtime.engine) as conn:
        ticket_detail(conn, ticket_id, scope=principal.scope)  # 404 before any change
        action(conn, runtime.clock())
        return ticket_detail(conn, ticket_id, scope=principal.scope,
                             internal=internal(principal))


def reply(runtime: Runtime, principal: Principal, ticket_id: int, *,
          text: str | None) -> TicketDetail:
    """A public answer to the customer; the first one is the first response."""
    body = required(text, "text")
    return act(runtime, principal, ticket_id, lambda conn, now: service.reply(
        conn, ticket_id, text=body, actor=principal.name, policy=runtime.policy,
        settings=runtime.settings, now=now))


def comment(runtime: Runtime, principal: Principal, ticket_id: int, *,
            text: str | None) -> TicketDetail:
    """An internal note: not shown to viewers, not sent to the customer."""
    body = required(text, "text")
    return act(runtime, principal, ticket_id, lambda conn, now: service.comment(
        conn, ticket_id, text=body, actor=principal.name, now=now))


def change_priority(runtime: Runtime, principal: Principal, ticket_id: int, *,
                    priority: str | None, reason: str | None) -> TicketDetail:
    """A new priority with a reason; the SLA clocks start again from now."""
    why = required(reason, "reason")
    return act(runtime, principal, ticket_id, lambda conn, now: service.change_priority(
        conn, ticket_id, priority=priority, reason=why, actor=principal.name,
        policy=runtime.policy, now=now))


def set_state(runtime: Runtime, principal: Principal, ticket_id: int, *,
              state: str, reason: str | None) -> TicketDetail:
    """Move the ticket: open, stalled, resolved, rejected, or reopen."""
    why = (reason or "").strip()
    return act(runtime, principal, ticket_id, lambda conn, now: service.set_state(
        conn, ticket_id, state=state.strip().lower(), actor=principal.name, reason=why,
        policy=runtime.policy, settings=runtime.settings, now=now))


def assign(runtime: Runtime, principal: Principal, ticket_id: int, *,
           assignee: str | None) -> TicketDetail:
    """Give the ticket to someone (None or blank: to nobody)."""
    name = (assignee or "").strip() or None
    return act(runtime, principal, ticket_id, lambda conn, now: service.assign(
        conn, ticket_id, assignee=name, actor=principal.name, now=now))
