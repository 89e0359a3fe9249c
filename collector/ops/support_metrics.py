"""Prometheus metrics of the support process, read from the store at scrape time.

Bounded label sets only: priorities, ticket states, problem states, roles, commitments,
outbox states. Nothing is labelled by ticket: the SLA clock is given as the soonest due
commitment per priority. The Request Tracker backlog is always exported (0 when nothing
waits, or when the connector is not configured), so an alert on it never sees a series
appear or vanish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from collector.notify.models import DEAD, PENDING, SENT
from collector.notify.service import outbox_summary
from collector.problems.models import ProblemRecord
from collector.rt.models import Backlog, backlog
from collector.tickets.models import (
    ACTIVE_STATES,
    STATES,
    Ticket,
    TicketBreach,
    TicketEscalation,
)
from collector.tickets.priority import Priority
from collector.timefmt import Clock

log = logging.getLogger(__name__)

PRIORITIES = tuple(str(p) for p in Priority)
NO_TICKET = "none"  # a problem without a ticket yet: soft, or held back (maintenance, say)
PROBLEM_STATES = ("soft", "hard", "flapping")
BREACH_KINDS = ("first_response", "update")
ROLES = ("tsm", "crm", "cto")


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    return {row[0]: row[1] for row in rows}


class SupportCollector(Collector):
    """Tickets by priority and state, SLA breaches, escalations, the notification outbox,
    the Request Tracker backlog."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def describe(self) -> Iterable[Any]:
        return []  # no query at registration time

    def collect(self) -> Iterator[Any]:
        try:
            families = list(self._read(self._clock()))
        except Exception as exc:  # the scrape still answers; watchkeeper_store_up says why
            log.warning("metrics: the store did not answer the support queries: %s", exc)
            return
        yield from families

    def _read(self, now: float) -> Iterator[Any]:
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
        problems = GaugeMetricFamily(
            "watchkeeper_problems", "Current problems (non-OK check states the problem rules "
            "track) by the priority of their ticket (none: no ticket yet) and state (soft: "
            "not yet trusted, hard: a real problem, flapping).", labels=["priority", "state"])
        next_due = GaugeMetricFamily(
            "watchkeeper_sla_next_due_seconds",
            "Seconds until the soonest first response or next update of an active ticket is "
            "due, by priority; negative when past due; absent when none is pending.",
            labels=["priority", "commitment"])
        dead = CounterMetricFamily(
            "watchkeeper_notifications_dead",
            "Notices given up after their last failed attempt (dead in the outbox).")
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
            state_type = ProblemRecord.state["state_type"].as_string()
            is_flapping = ProblemRecord.state["flapping"].as_boolean()
            by_problem = conn.execute(
                select(Ticket.priority, state_type, is_flapping, func.count())
                .select_from(ProblemRecord)
                .outerjoin(Ticket, Ticket.id == ProblemRecord.ticket_id)
                .group_by(Ticket.priority, state_type, is_flapping)).all()
            first_due = _pairs(conn.execute(
                select(Ticket.priority, func.min(Ticket.first_response_due))
                .where(Ticket.state.in_(ACTIVE_STATES), Ticket.first_response_at.is_(None),
                       Ticket.first_response_due.is_not(None))
                .group_by(Ticket.priority)))
            rt = backlog(conn, now=now)
            update_due = _pairs(conn.execute(
                select(Ticket.priority, func.min(Ticket.next_update_due))
                .where(Ticket.state.in_(ACTIVE_STATES), Ticket.next_update_due.is_not(None))
                .group_by(Ticket.priority)))
        counted: dict[tuple[str, str], int] = {}
        for priority, kind, flapping, n in by_problem:
            state = "flapping" if flapping else kind
            if state in PROBLEM_STATES:
                key = (priority if priority in PRIORITIES else NO_TICKET, state)
                counted[key] = counted.get(key, 0) + int(n)
        for priority in (*PRIORITIES, NO_TICKET):
            for state in PROBLEM_STATES:
                problems.add_metric([priority, state], float(counted.get((priority, state), 0)))
        for priority in PRIORITIES:
            for commitment, due in (("first_response", first_due), ("update", update_due)):
                if due.get(priority) is not None:
                    next_due.add_metric([priority, commitment], float(due[priority]) - now)
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
        dead.add_metric([], float(summary.dead))
        yield from (tickets, overdue, next_due, breaches, escalations, problems, outbox, dead,
                    oldest)
        yield from rt_families(rt)


def rt_families(rt: Backlog) -> Iterator[GaugeMetricFamily]:
    """The Request Tracker backlog: what waits to be brought into RT, and what was given up."""
    for name, help_text, value in (
        ("watchkeeper_rt_backlog",
         "Ticket changes waiting to be brought into Request Tracker (due or retried later).",
         rt.pending),
        ("watchkeeper_rt_backlog_tickets",
         "Tickets with changes waiting to be brought into Request Tracker.", rt.tickets),
        ("watchkeeper_rt_failing",
         "Waiting Request Tracker changes whose last try failed.", rt.failing),
        ("watchkeeper_rt_dead",
         "Ticket changes given up after their last try (never in Request Tracker).", rt.dead),
        ("watchkeeper_rt_oldest_pending_seconds",
         "Age of the oldest change waiting for Request Tracker; 0 when none.",
         rt.oldest_seconds),
    ):
        family = GaugeMetricFamily(name, help_text)
        family.add_metric([], float(value))
        yield family
