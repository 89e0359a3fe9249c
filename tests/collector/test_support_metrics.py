"""/metrics of the support process: tickets, overdue commitments, breaches, escalations, outbox."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.db import write_transaction
from collector.ops.support_metrics import SupportCollector
from collector.tickets import service
from tests.collector.test_tickets_service import FRIDAY_10, HOUR, _open, store  # noqa: F401


def _scrape(engine, now):
    registry = CollectorRegistry()
    registry.register(SupportCollector(engine, lambda: now))
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_tickets_breaches_and_the_outbox_are_counted_at_scrape_time(store):  # noqa: F811
    settings, policy, engine = store
    p2 = _open(store, priority="P2", check="replication")
    _open(store, priority="P1", check="firewall")
    with write_transaction(engine) as conn:
        service.set_state(conn, p2, state="resolved", actor="alice", reason="fixed",
                          policy=policy, settings=settings, now=FRIDAY_10 + 60)
    samples = _scrape(engine, FRIDAY_10 + 2 * HOUR)
    assert samples[("watchkeeper_tickets", (("priority", "P1"), ("state", "new")))] == 1
    assert samples[("watchkeeper_tickets", (("priority", "P2"), ("state", "resolved")))] == 1
    assert samples[("watchkeeper_tickets", (("priority", "P2"), ("state", "new")))] == 0
    # the P1's first response (1 h) is overdue; the resolved P2 is not counted
    overdue = ("watchkeeper_tickets_overdue", (("commitment", "first_response"),
                                               ("priority", "P1")))
    assert samples[overdue] == 1
    assert samples[("watchkeeper_tickets_overdue", (("commitment", "first_response"),
                                                    ("priority", "P2")))] == 0
    # both openings told the customer's contact; the P2's resolution too
    assert samples[("watchkeeper_notifications", (("state", "pending"),))] == 3
    assert samples[("watchkeeper_notifications_oldest_due_seconds", ())] >= HOUR
    with write_transaction(engine) as conn:
        p1 = service.live_ticket(conn, service.ProblemKey(
            "acme", "db1.acme.example", "firewall", "replica"))
        service.record_breach(conn, p1, kind="first_response", due_at=FRIDAY_10 + HOUR,
                              now=FRIDAY_10 + 2 * HOUR, policy=policy, settings=settings)
    samples = _scrape(engine, FRIDAY_10 + 2 * HOUR)
    assert samples[("watchkeeper_sla_breaches_total", (("commitment", "first_response"),
                                                       ("priority", "P1")))] == 1
    assert samples[("watchkeeper_sla_breaches_total", (("commitment", "update"),
                                                       ("priority", "P1")))] == 0
