"""Prometheus metrics of the support process, read from the store at scrape time.

Bounded label sets only: priorities, ticket states, roles, commitments, outbox states.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from collector.notify.models import DEAD, PENDING, SENT
from collector.notify.service import outbox_summary
from collector.tickets.models import (
    ACTIVE_STATES,
    STATES,
    Ticket,
    TicketBreach,
    TicketEscalation,
)
from collector.tickets.priority import Priority
from collector.timefmt import Clock

PRIORITIES = tuple(str(p) for p in Priority)
BREACH_KINDS = ("first_response", "update")
ROLES = ("tsm", "crm", "cto")


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    return {row[0]: row[1] for row in rows}


class SupportCollector(Collector):
    """Tickets by priority and state, SLA breaches, escalations, the notification outbox."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def describe(self) -> Iterable[Any]:
        return []  # no query at registration time

    def collect(self) -> Iterator[Any]:
        now = self._clock()
        tickets = GaugeMetricFamily(
            "watchkeeper_tickets", "Tickets by priority and state.",
            labels=["priority", "state"])
        overdue = GaugeMetricFamily(
            "watchkeeper_tickets_overdue",
            "Active tickets whose first response or next update is past due, by priority.",
            labels=["priority", "commitment"])
        breaches = CounterMetricFamily(
            "watchkeeper_sla_breaches", "SLA breaches recorded (a missed first response or "
            "update), by the priority at the time and the commitment.",
            labels=["priority", "commitment"])
        escalations = CounterMetricFamily(
            "watchkeeper_escalations", "Escalation notices decided, by role.", labels=["role"])
        outbox = GaugeMetricFamily(
            "watchkeeper_notifications", "Notices in the outbox by state (pending, sent, dead).",
            labels=["state"])
        oldest = GaugeMetricFamily(
            "watchkeeper_notifications_oldest_due_seconds",
            "Age of the oldest notice that is due and not yet sent; 0 when none.")
        with self._engine.connect() as conn:
            by_state = {(p, s): n for p, s, n in conn.execute(
                select(Ticket.priority, Ticket.state, func.count())
                .group_by(Ticket.priority, Ticket.state))}
            late_first = _pairs(conn.execute(
                select(Ticket.priority, func.count())
                .where(Ticket.state.in_(ACTIVE_STATES), Ticket.first_response_at.is_(None),
                       Ticket.first_response_due < now)
                .group_by(Ticket.priority)))
            late_update = _pairs(conn.execute(
                select(Ticket.priority, func.count())
                .where(Ticket.state.in_(ACTIVE_STATES), Ticket.next_update_due < now)
                .group_by(Ticket.priority)))
            breached = {(p, k): n for p, k, n in conn.execute(
                select(TicketBreach.priority, TicketBreach.kind, func.count())
                .group_by(TicketBreach.priority, TicketBreach.kind))}
            escalated = _pairs(conn.execute(
                select(TicketEscalation.role, func.count())
                .group_by(TicketEscalation.role)))
            summary = outbox_summary(conn, now=now)
        for priority in PRIORITIES:
            for state in STATES:
                tickets.add_metric([priority, state], float(by_state.get((priority, state), 0)))
            overdue.add_metric([priority, "first_response"], float(late_first.get(priority, 0)))
            overdue.add_metric([priority, "update"], float(late_update.get(priority, 0)))
            for kind in BREACH_KINDS:
                breaches.add_metric([priority, kind], float(breached.get((priority, kind), 0)))
        for role in ROLES:
            escalations.add_metric([role], float(escalated.get(role, 0)))
        for state, count in ((PENDING, summary.pending), (SENT, summary.sent),
                             (DEAD, summary.dead)):
            outbox.add_metric([state], float(count))
        oldest.add_metric([], summary.oldest_due_seconds)
        yield from (tickets, overdue, breaches, escalations, outbox, oldest)
