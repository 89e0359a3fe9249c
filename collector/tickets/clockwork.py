"""The SLA and escalation clockwork: run every ``tickets.engine_every`` seconds.

For every active ticket (new, open, stalled) it decides

- the escalations of the support policy's matrix that are due (clock hours since the
  ticket was opened, in the column of its current priority): each role is told once per
  ticket. The decision is a row in ``ticket_escalations`` (primary key ticket and role),
  inserted with ON CONFLICT DO NOTHING; only the transaction that inserted it writes the
  audit entry and the notice, in the same transaction;
- the SLA breaches: a first response not given by its due time, an update not given by
  its due time. ``tickets.service.record_breach`` records each once per due time and
  tells the breach role.

Because every decision rests on a unique key in the same transaction as its effects, two
collectors on one database, a job that runs again, or a restart decide each notice once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, RowMapping, Table, select

from collector.db import upsert_insert, write_transaction
from collector.hosts.models import Customer
from collector.notify.service import notify
from collector.policy import Policy
from collector.problems.keys import ProblemKey
from collector.runtime import Runtime
from collector.scheduling import run_every
from collector.settings import Settings
from collector.tickets import service
from collector.tickets.escalation import Escalation, Role, due_escalations
from collector.tickets.models import (
    ACTIVE_STATES,
    SYSTEM_ACTOR,
    Ticket,
    TicketBreach,
    TicketEscalation,
)
from collector.tickets.priority import Priority
from collector.timefmt import human_duration, human_time, iso

log = logging.getLogger(__name__)

TICKETS = cast(Table, Ticket.__table__)
ESCALATIONS = cast(Table, TicketEscalation.__table__)
BREACHES = cast(Table, TicketBreach.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
_ROLE_BY_KEY = {role.key: role for role in Role}
FIRST_RESPONSE, UPDATE = "first_response", "update"


@dataclass
class ClockworkReport:
    """What one pass decided: (ticket, role) escalations and (ticket, kind, due) breaches."""

    escalations: list[tuple[int, str]] = field(default_factory=list)
    breaches: list[tuple[int, str, float]] = field(default_factory=list)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _sent(rows: list[RowMapping]) -> set[tuple[str, str]]:
    """(full role name, step) pairs of the escalations decided, as due_escalations wants."""
    sent = set()
    for row in rows:
        role = _ROLE_BY_KEY.get(row["role"])
        sent.add((role.value if role is not None else row["role"], row["step"]))
    return sent


def escalations_due(ticket: RowMapping, decided: list[RowMapping], policy: Policy,
                    now: float) -> tuple[Escalation, ...]:
    """The ticket's escalations due by ``now`` and not decided yet."""
    return due_escalations(
        matrix=policy.escalation, priority=Priority.parse(ticket["priority"]),
        opened_at=_at(ticket["created_at"]), now=_at(now), sent=_sent(decided))


def breaches_due(ticket: RowMapping, recorded: set[tuple[str, float]],
                 now: float) -> list[tuple[str, float]]:
    """(kind, due time) of the commitments missed by ``now`` and not recorded yet."""
    missed = []
    due = ticket["first_response_due"]
    if ticket["first_response_at"] is None and due is not None and due < now:
        missed.append((FIRST_RESPONSE, float(due)))
    due = ticket["next_update_due"]
    if due is not None and due < now:
        missed.append((UPDATE, float(due)))
    return [m for m in missed if m not in recorded]


def run_clocks(engine: Engine, policy: Policy, settings: Settings, now: float) -> ClockworkReport:
    """One pass over the active tickets at ``now``; what it decided.

    The tickets are read first without a write lock; a ticket with something due is
    read again inside its own short write transaction, where the decision is made.
    """
    report = ClockworkReport()
    with engine.connect() as conn:
        tickets = conn.execute(_active_tickets()).mappings().all()
        decided = _by_ticket(conn.execute(select(ESCALATIONS).join(
            TICKETS, TICKETS.c.id == ESCALATIONS.c.ticket_id).where(
            TICKETS.c.state.in_(ACTIVE_STATES))).mappings().all())
        recorded: dict[int, set[tuple[str, float]]] = {}
        for row in conn.execute(select(BREACHES.c.ticket_id, BREACHES.c.kind,
                                       BREACHES.c.due_at).join(
                TICKETS, TICKETS.c.id == BREACHES.c.ticket_id).where(
                TICKETS.c.state.in_(ACTIVE_STATES))):
            recorded.setdefault(row.ticket_id, set()).add((row.kind, float(row.due_at)))
    for ticket in tickets:
        tid = ticket["id"]
        if not (escalations_due(ticket, decided.get(tid, []), policy, now)
                or breaches_due(ticket, recorded.get(tid, set()), now)):
            continue
        with write_transaction(engine) as conn:
            _decide(conn, tid, policy=policy, settings=settings, now=now, report=report)
    return report


def _active_tickets() -> Any:
    return (select(TICKETS, CUSTOMERS.c.name.label("customer"))
            .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id)
            .where(TICKETS.c.state.in_(ACTIVE_STATES))
            .order_by(TICKETS.c.id))


def _by_ticket(rows: Any) -> dict[int, list[RowMapping]]:
    out: dict[int, list[RowMapping]] = {}
    for row in rows:
        out.setdefault(row["ticket_id"], []).append(row)
    return out


def _decide(conn: Connection, ticket_id: int, *, policy: Policy, settings: Settings,
            now: float, report: ClockworkReport) -> None:
    """Decide one ticket's due escalations and breaches, inside a write transaction."""
    ticket = conn.execute(_active_tickets().where(TICKETS.c.id == ticket_id)).mappings().first()
    if ticket is None:  # resolved or rejected since it was read
        return
    decided = list(conn.execute(select(ESCALATIONS).where(
        ESCALATIONS.c.ticket_id == ticket_id)).mappings().all())
    for escalation in escalations_due(ticket, decided, policy, now):
        if _escalate(conn, ticket, escalation, settings=settings, now=now):
            report.escalations.append((ticket_id, escalation.role.key))
    recorded = {(r.kind, float(r.due_at)) for r in conn.execute(
        select(BREACHES.c.kind, BREACHES.c.due_at).where(BREACHES.c.ticket_id == ticket_id))}
    for kind, due_at in breaches_due(ticket, recorded, now):
        if service.record_breach(conn, ticket_id, kind=kind, due_at=due_at, now=now,
                                 policy=policy, settings=settings):
            report.breaches.append((ticket_id, kind, due_at))
            log.warning("ticket #%d: SLA breach, %s due %s", ticket_id, kind, iso(due_at))


def _escalate(conn: Connection, ticket: RowMapping, escalation: Escalation, *,
              settings: Settings, now: float) -> bool:
    """Record one escalation once; the audit entry and the notice only if it is new."""
    role = escalation.role
    due_at = escalation.due_at.timestamp()
    inserted = conn.execute(
        upsert_insert(conn, ESCALATIONS).values(
            ticket_id=ticket["id"], role=role.key, step=escalation.step, due_at=due_at,
            decided_at=now,
        ).on_conflict_do_nothing(index_elements=[ESCALATIONS.c.ticket_id, ESCALATIONS.c.role])
        .returning(ESCALATIONS.c.ticket_id)
    ).first()
    if inserted is None:
        return False
    tid = ticket["id"]
    priority = Priority.parse(ticket["priority"])
    age = human_duration(now - ticket["created_at"])
    text = (f"escalated to the {role.display_name} ({escalation.step}: "
            f"{ticket['priority']} unresolved for {age})")
    key = ProblemKey(ticket["customer"], ticket["host"], ticket["check"],
                             ticket["target"])
    notified = notify(
        conn, key=f"escalation/{tid}/{role.key}", kind="escalation", roles=[role.key],
        customer=ticket["customer"], ticket_id=tid,
        subject=f"Escalation to {role.display_name} ({escalation.step}): {ticket['subject']}",
        body=_body(ticket, escalation, age, settings),
        data={"ticket": tid, "priority": str(priority), "rt_priority": priority.rt_code,
              "state": ticket["state"], "problem": key.to_json(), "role": role.key,
              "step": escalation.step, "due_at": iso(due_at),
              "opened_at": iso(ticket["created_at"])},
        settings=settings, now=now)
    service.record_event(
        conn, ticket_id=tid, customer_id=ticket["customer_id"], problem_key=str(key),
        at=now, kind="escalation", actor=SYSTEM_ACTOR, text=text,
        data={"role": role.key, "step": escalation.step, "due_at": iso(due_at),
              "notices": notified})
    log.info("ticket #%d escalated to %s (%s)", tid, role.key, escalation.step)
    return True


def _body(ticket: RowMapping, escalation: Escalation, age: str, settings: Settings) -> str:
    tid = ticket["id"]
    first = (f"given {human_time(ticket['first_response_at'])}"
             if ticket["first_response_at"]
             else f"not given (due {human_time(ticket['first_response_due'])})"
             if ticket["first_response_due"] else "not given")
    link = f"{settings.notifications.public_url.rstrip('/')}/tickets/{tid}"
    return (
        f"Request #{tid} for {ticket['customer']} is unresolved {age} after it was "
        f"opened.\nThe support policy escalates it to the "
        f"{escalation.role.display_name} now ({escalation.step}).\n\n"
        f"Subject: {ticket['subject']}\n"
        f"Priority: {ticket['priority']} (RT {Priority.parse(ticket['priority']).rt_code})\n"
        f"State: {ticket['state']}\n"
        f"Host: {ticket['host']}\nCheck: {ticket['check']} {ticket['target']}\n"
        f"Opened: {human_time(ticket['created_at'])}\n"
        f"First response: {first}\n"
        f"Assignee: {ticket['assignee'] or 'nobody'}\n\n{link}\n"
    )


def clockwork_job(runtime: Runtime) -> ClockworkReport:
    """One pass at the runtime's clock."""
    return run_clocks(runtime.engine, runtime.policy, runtime.settings, runtime.clock())


async def run_clockwork(runtime: Runtime) -> None:
    """Run the clocks forever (cancelled by the app's lifespan)."""
    await run_every(runtime.settings.tickets.engine_every, lambda: clockwork_job(runtime),
                    name="clockwork")
