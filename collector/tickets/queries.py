"""The read side of tickets: the list with its filters, one ticket with its history, the audit log.

Every query takes ``scope``: the one customer a viewer may see (None for every customer).
A ticket outside the scope is TicketNotFound, exactly as a ticket that does not exist.
A viewer sees only the public entries of a ticket's history and of the audit log (what the
customer was told); internal comments and the engine's internal decisions are for staff.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Connection, Select, Table, func, select

from checks.result import Status
from collector.errors import InvalidRequest, NotFound
from collector.hosts.models import Customer
from collector.notify.models import PENDING, Notification
from collector.tickets.models import (
    ACTIVE_STATES,
    STATES,
    BreachView,
    EscalationView,
    NoticeView,
    Ticket,
    TicketBreach,
    TicketDetail,
    TicketEscalation,
    TicketEvent,
    TicketEventView,
    TicketView,
)
from collector.tickets.priority import Priority, PriorityError
from collector.timefmt import iso, iso_or_none

TICKETS = cast(Table, Ticket.__table__)
EVENTS = cast(Table, TicketEvent.__table__)
ESCALATIONS = cast(Table, TicketEscalation.__table__)
BREACHES = cast(Table, TicketBreach.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
NOTICES = cast(Table, Notification.__table__)

ALL_STATES = "all"
MAX_LIMIT = 1000


class QueryError(InvalidRequest):
    """A filter or paging value the API does not understand; the detail names it."""


class TicketHidden(NotFound):
    """No such ticket, or one of a customer the user may not see (the same answer)."""


class AuditEntry(BaseModel):
    """One entry of ``GET /api/v1/audit``: a decision or action, on a ticket or not."""

    id: int
    at: str
    ticket_id: int | None
    customer: str | None
    problem_key: str | None
    kind: str
    actor: str
    public: bool
    text: str
    data: dict[str, Any]


def parse_states(values: Sequence[str]) -> tuple[str, ...]:
    """The states a list asks for: none means the active ones, ``all`` every one."""
    if not values:
        return ACTIVE_STATES
    wanted: list[str] = []
    for value in values:
        for state in (s.strip().lower() for s in value.split(",")):
            if state == ALL_STATES:
                return STATES
            if state not in STATES:
                raise QueryError(f"state: must be one of {', '.join(STATES)} or all, "
                                 f"got {state!r}")
            wanted.append(state)
    return tuple(dict.fromkeys(wanted))


def parse_priority(value: str | None) -> Priority | None:
    """A priority filter ("P1".."P4", "S1".."S4", 80/60/40/20), or QueryError naming it."""
    if value is None or value == "":
        return None
    try:
        return Priority.parse(value)
    except PriorityError as exc:
        raise QueryError(f"priority: {exc}") from None


def check_paging(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit: must be between 1 and {MAX_LIMIT}, got {limit}")
    if offset < 0:
        raise QueryError(f"offset: must not be negative, got {offset}")


def _base() -> Select[Any]:
    return (select(TICKETS, CUSTOMERS.c.name.label("customer"))
            .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id))


def list_tickets(
    conn: Connection, *, scope: int | None, customer: str | None = None,
    states: Sequence[str] = (), priority: str | None = None, host: str | None = None,
    host_contains: str | None = None, limit: int = 100, offset: int = 0,
) -> list[TicketView]:
    """Tickets, most urgent priority first, then the oldest first.

    Filters: ``customer`` (name), ``states`` (repeatable or comma-separated; default the
    active ones, ``all`` every state), ``priority``, ``host`` (FQDN, ``*`` for a site),
    ``host_contains`` (a part of the FQDN, any case).
    """
    query = _filtered(_base(), scope=scope, customer=customer, states=states,
                      priority=priority, host=host, host_contains=host_contains)
    check_paging(limit, offset)
    # "P1" < "P2" < ...: the stored text sorts most urgent first.
    query = query.order_by(TICKETS.c.priority, TICKETS.c.created_at, TICKETS.c.id)
    rows = list(conn.execute(query.limit(limit).offset(offset)).mappings())
    escalations, breaches = _clock_records(conn, [r["id"] for r in rows])
    return [_view(r, escalations.get(r["id"], []), breaches.get(r["id"], [])) for r in rows]


def count_tickets(
    conn: Connection, *, scope: int | None, customer: str | None = None,
    states: Sequence[str] = (), priority: str | None = None, host: str | None = None,
    host_contains: str | None = None,
) -> int:
    """How many tickets ``list_tickets`` finds with the same filters, counted in SQL."""
    query = _filtered(select(func.count()).select_from(TICKETS).join(
        CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id), scope=scope, customer=customer,
        states=states, priority=priority, host=host, host_contains=host_contains)
    return int(conn.execute(query).scalar_one())


def _filtered(
    query: Select[Any], *, scope: int | None, customer: str | None, states: Sequence[str],
    priority: str | None, host: str | None, host_contains: str | None,
) -> Select[Any]:
    wanted_states = parse_states(states)
    wanted_priority = parse_priority(priority)
    query = query.where(TICKETS.c.state.in_(wanted_states))
    if scope is not None:
        query = query.where(TICKETS.c.customer_id == scope)
    if customer:
        query = query.where(CUSTOMERS.c.name == customer)
    if wanted_priority is not None:
        query = query.where(TICKETS.c.priority == str(wanted_priority))
    if host:
        query = query.where(TICKETS.c.host == host)
    if host_contains:
        query = query.where(func.lower(TICKETS.c.host).contains(host_contains.lower(),
                                                                autoescape=True))
    return query


def ticket_detail(
    conn: Connection, ticket_id: int, *, scope: int | None, internal: bool = True
) -> TicketDetail:
    """One ticket with its history, oldest first (only public entries unless ``internal``)."""
    row = conn.execute(_base().where(TICKETS.c.id == ticket_id)).mappings().first()
    if row is None or (scope is not None and row["customer_id"] != scope):
        raise TicketHidden(f"no ticket #{ticket_id}")
    escalations, breaches = _clock_records(conn, [ticket_id])
    events_query = select(EVENTS).where(EVENTS.c.ticket_id == ticket_id).order_by(EVENTS.c.id)
    if not internal:
        events_query = events_query.where(EVENTS.c.public.is_(True))
    events = [
        TicketEventView(id=e["id"], at=iso(e["at"]), kind=e["kind"], actor=e["actor"],
                        public=bool(e["public"]), text=e["text"], data=e["data"] or {})
        for e in conn.execute(events_query).mappings()
    ]
    view = _view(row, escalations.get(ticket_id, []), breaches.get(ticket_id, []))
    return TicketDetail(**view.model_dump(), priority_reason=row["priority_reason"],
                        events=events,
                        notices=_notices(conn, ticket_id) if internal else [])


def _notices(conn: Connection, ticket_id: int) -> list[NoticeView]:
    """The ticket's notices in the outbox, oldest first (staff only: they name recipients)."""
    rows = conn.execute(select(NOTICES).where(NOTICES.c.ticket_id == ticket_id)
                        .order_by(NOTICES.c.id)).mappings()
    return [
        NoticeView(id=n["id"], kind=n["kind"], channel=n["channel"], recipient=n["recipient"],
                   state=n["state"], attempts=n["attempts"], created_at=iso(n["created_at"]),
                   sent_at=iso_or_none(n["sent_at"]),
                   next_attempt_at=None if n["state"] != PENDING else iso(n["next_attempt_at"]),
                   last_error=n["last_error"])
        for n in rows
    ]


def audit_log(
    conn: Connection, *, scope: int | None, internal: bool = True,
    ticket_id: int | None = None, customer: str | None = None, kinds: Sequence[str] = (),
    since: float | None = None, limit: int = 100, offset: int = 0,
) -> list[AuditEntry]:
    """The audit log, newest first; decisions that opened no ticket ("not_opened") included."""
    check_paging(limit, offset)
    query = (select(EVENTS, CUSTOMERS.c.name.label("customer"))
             .outerjoin(CUSTOMERS, CUSTOMERS.c.id == EVENTS.c.customer_id))
    if scope is not None:
        query = query.where(EVENTS.c.customer_id == scope)
    if not internal:
        query = query.where(EVENTS.c.public.is_(True))
    if ticket_id is not None:
        query = query.where(EVENTS.c.ticket_id == ticket_id)
    if customer:
        query = query.where(CUSTOMERS.c.name == customer)
    if kinds:
        query = query.where(EVENTS.c.kind.in_(list(kinds)))
    if since is not None:
        query = query.where(EVENTS.c.at >= since)
    query = query.order_by(EVENTS.c.at.desc(), EVENTS.c.id.desc()).limit(limit).offset(offset)
    return [
        AuditEntry(id=e["id"], at=iso(e["at"]), ticket_id=e["ticket_id"],
                   customer=e["customer"], problem_key=e["problem_key"], kind=e["kind"],
                   actor=e["actor"], public=bool(e["public"]), text=e["text"],
                   data=e["data"] or {})
        for e in conn.execute(query).mappings()
    ]


def _clock_records(
    conn: Connection, ids: Iterable[int]
) -> tuple[dict[int, list[EscalationView]], dict[int, list[BreachView]]]:
    ids = list(ids)
    escalations: dict[int, list[EscalationView]] = {}
    breaches: dict[int, list[BreachView]] = {}
    if not ids:
        return escalations, breaches
    for e in conn.execute(
        select(ESCALATIONS).where(ESCALATIONS.c.ticket_id.in_(ids))
        .order_by(ESCALATIONS.c.decided_at, ESCALATIONS.c.role)
    ).mappings():
        escalations.setdefault(e["ticket_id"], []).append(
            EscalationView(role=e["role"], step=e["step"], at=iso(e["decided_at"])))
    for b in conn.execute(
        select(BREACHES).where(BREACHES.c.ticket_id.in_(ids))
        .order_by(BREACHES.c.noticed_at, BREACHES.c.kind)
    ).mappings():
        breaches.setdefault(b["ticket_id"], []).append(
            BreachView(kind=b["kind"], due_at=iso(b["due_at"]), noticed_at=iso(b["noticed_at"])))
    return escalations, breaches


def _view(r: Any, escalations: list[EscalationView], breaches: list[BreachView]) -> TicketView:
    return TicketView(
        id=r["id"], customer=r["customer"], host=r["host"], check=r["check"],
        target=r["target"], check_type=r["check_type"], subject=r["subject"],
        priority=r["priority"], rt_priority=Priority(r["priority"]).rt_code, state=r["state"],
        status=r["status"], status_name=Status(r["status"]).name, flapping=bool(r["flapping"]),
        assignee=r["assignee"], created_at=iso(r["created_at"]), updated_at=iso(r["updated_at"]),
        first_response_due=iso_or_none(r["first_response_due"]),
        first_response_at=iso_or_none(r["first_response_at"]),
        next_update_due=iso_or_none(r["next_update_due"]),
        last_update_at=iso_or_none(r["last_update_at"]),
        resolved_at=iso_or_none(r["resolved_at"]), escalations=escalations,
        breaches=breaches, external_ref=r["external_ref"],
    )
