"""The tickets API as its users see it, on both stores: the NOC's list, a TSE's actions,
a customer's viewer that sees its own tickets only, and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from collector.db import create_db_engine, write_transaction
from collector.hosts.models import Customer, Host
from collector.policy import build_policy
from collector.problems.keys import ProblemKey
from collector.sla.clock import ClockKind
from collector.tickets import clocks, service
from collector.tickets.models import TicketBreach, TicketEscalation
from collector.tickets.priority import Priority
from tests.collector.conftest import AppClient, FakeClock, add_user, bearer

# A Wednesday morning, inside every business calendar's hours.
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).timestamp()


@dataclass
class Desk:
    client: AppClient
    clock: FakeClock
    settings: Any
    tokens: dict[str, dict[str, str]]
    tickets: dict[str, int]

    def get(self, path: str, who: str = "noc", **params: Any) -> Any:
        answer = self.client.get(path, headers=self.tokens[who], params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def act(self, ticket: str, action: str, body: dict[str, Any], who: str = "tse") -> Any:
        return self.client.post(f"/api/v1/tickets/{self.tickets[ticket]}/{action}",
                                headers=self.tokens[who], json=body)

    def ids(self, answer: list[dict[str, Any]]) -> list[str]:
        names = {number: name for name, number in self.tickets.items()}
        return [names[t["id"]] for t in answer]


def _open(conn: Any, settings: Any, *, customer: str, host: str, check: str,
          priority: str, at: float) -> int:
    customer_id = conn.execute(select(Customer.id).where(Customer.name == customer)).scalar()
    host_id = conn.execute(select(Host.id).where(Host.fqdn == host)).scalar()
    return service.open_ticket(conn, new=service.NewTicket(
        key=ProblemKey(customer, host, check, "/var"), customer_id=customer_id,
        host_id=host_id, check_type=check, subject=f"{host} {check} CRITICAL",
        priority=Priority(priority), priority_reason="test table", status=2,
        evidence={"summary": "/var 97% used"},
    ), policy=build_policy(settings), settings=settings, now=at)


@pytest.fixture
def desk(settings, enroll_host, start_collector) -> Desk:
    clock = FakeClock(START)
    client = start_collector(settings, clock, role=None)
    enroll_host(settings, "db1.acme.example", "acme")
    enroll_host(settings, "db2.globex.example", "globex")
    tokens = {
        "admin": bearer(add_user(settings, "root", "admin")),
        "tse": bearer(add_user(settings, "tess", "tse")),
        "noc": bearer(add_user(settings, "nick", "noc")),
        "acme": bearer(add_user(settings, "acme-ops", "viewer", customer="acme")),
        "globex": bearer(add_user(settings, "globex-ops", "viewer", customer="globex")),
    }
    engine = create_db_engine(settings)
    tickets = {}
    try:
        with write_transaction(engine) as conn:
            for name, customer, host, check, priority, age in (
                ("acme-disk", "acme", "db1.acme.example", "disk", "P3", 3000),
                ("acme-mysql", "acme", "db1.acme.example", "mysql", "P3", 2000),
                ("acme-load", "acme", "db1.acme.example", "load", "P1", 1000),
                ("globex-disk", "globex", "db2.globex.example", "disk", "P2", 500),
                ("acme-old", "acme", "db1.acme.example", "ntp", "P4", 9000),
            ):
                tickets[name] = _open(conn, settings, customer=customer, host=host,
                                      check=check, priority=priority, at=START - age)
            service.set_state(conn, tickets["acme-old"], state="resolved", actor="tess",
                              reason="fixed", policy=build_policy(settings), settings=settings,
                              now=START - 8000)
    finally:
        engine.dispose()
    return Desk(client, clock, settings, tokens, tickets)


def test_the_list_is_most_urgent_first_then_oldest(desk):
    listed = desk.get("/api/v1/tickets")
    assert desk.ids(listed) == ["acme-load", "globex-disk", "acme-disk", "acme-mysql"]
    load = listed[0]
    assert (load["priority"], load["rt_priority"], load["state"]) == ("P1", 80, "new")
    assert (load["customer"], load["host"], load["check"], load["target"]) == (
        "acme", "db1.acme.example", "load", "/var")
    assert load["created_at"] == "2026-11-25T08:43:20.000Z"
    assert load["first_response_due"].endswith("Z")
    assert load["next_update_due"] is None and load["external_ref"] is None
    assert load["escalations"] == [] and load["breaches"] == []
    assert load["status_name"] == "CRITICAL"


@pytest.mark.parametrize(("params", "expected"), [
    ({"customer": "globex"}, ["globex-disk"]),
    ({"priority": "P3"}, ["acme-disk", "acme-mysql"]),
    ({"priority": "S1"}, ["acme-load"]),
    ({"priority": "60"}, ["globex-disk"]),
    ({"host": "db2.globex.example"}, ["globex-disk"]),
    ({"state": "resolved"}, ["acme-old"]),
    ({"state": ["new", "resolved"], "customer": "acme"},
     ["acme-load", "acme-disk", "acme-mysql", "acme-old"]),
    ({"state": "all", "priority": "P4"}, ["acme-old"]),
    ({"limit": 2, "offset": 1}, ["globex-disk", "acme-disk"]),
])
def test_the_list_filters(desk, params, expected):
    assert desk.ids(desk.get("/api/v1/tickets", **params)) == expected


@pytest.mark.parametrize(("params", "named"), [
    ({"state": "closed"}, "state"), ({"priority": "P9"}, "priority"),
    ({"limit": 0}, "limit"), ({"offset": -1}, "offset"),
])
def test_a_bad_filter_is_named(desk, params, named):
    answer = desk.client.get("/api/v1/tickets", headers=desk.tokens["noc"], params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"{named}:")


def test_escalations_and_breaches_are_on_the_ticket(desk):
    engine = create_db_engine(desk.settings)
    number = desk.tickets["acme-load"]
    try:
        with write_transaction(engine) as conn:
            conn.execute(TicketEscalation.__table__.insert().values(
                ticket_id=number, role="tsm", step="P1/1h", due_at=START, decided_at=START))
            conn.execute(TicketBreach.__table__.insert().values(
                ticket_id=number, kind="first_response", due_at=START - 100, priority="P1",
                noticed_at=START - 50))
    finally:
        engine.dispose()
    ticket = desk.get(f"/api/v1/tickets/{number}")
    assert ticket["escalations"] == [{"role": "tsm", "step": "P1/1h",
                                      "at": "2026-11-25T09:00:00.000Z"}]
    assert ticket["breaches"] == [{"kind": "first_response", "due_at": "2026-11-25T08:58:20.000Z",
                                   "noticed_at": "2026-11-25T08:59:10.000Z"}]
    assert desk.get("/api/v1/tickets")[0]["escalations"][0]["role"] == "tsm"


def test_a_viewer_sees_its_customer_s_tickets_only(desk):
    assert desk.ids(desk.get("/api/v1/tickets", "acme", state="all")) == [
        "acme-load", "acme-disk", "acme-mysql", "acme-old"]
    assert desk.ids(desk.get("/api/v1/tickets", "globex")) == ["globex-disk"]
    assert desk.get("/api/v1/tickets", "acme", customer="globex") == []
    other = desk.client.get(f"/api/v1/tickets/{desk.tickets['globex-disk']}",
                            headers=desk.tokens["acme"])
    missing = desk.client.get("/api/v1/tickets/999999", headers=desk.tokens["acme"])
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == f"no ticket #{desk.tickets['globex-disk']}"
    assert desk.act("globex-disk", "reply", {"text": "Disk ordered."}).status_code == 200
    assert desk.act("acme-disk", "reply", {"text": "Cleaning up."}).status_code == 200
    audit = desk.get("/api/v1/audit", "globex")
    assert [(e["customer"], e["text"]) for e in audit] == [("globex", "Disk ordered.")]


def test_a_viewer_does_not_see_internal_comments(desk):
    assert desk.act("acme-disk", "comment", {"text": "customer's RAID is old"}).status_code == 200
    assert desk.act("acme-disk", "reply", {"text": "We are on it."}).status_code == 200
    number = desk.tickets["acme-disk"]
    staff = [e["kind"] for e in desk.get(f"/api/v1/tickets/{number}")["events"]]
    assert staff == ["opened", "comment", "reply"]
    seen = desk.get(f"/api/v1/tickets/{number}", "acme")["events"]
    assert [(e["kind"], e["text"]) for e in seen] == [("reply", "We are on it.")]
    audit = desk.get("/api/v1/audit", "acme")
    assert "customer's RAID is old" not in str(audit)


ACTIONS = [("reply", {"text": "looking"}), ("comment", {"text": "note"}),
           ("priority", {"priority": "P1", "reason": "whole billing down"}),
           ("state", {"state": "stalled"}), ("assign", {"assignee": "tess"})]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_only_admin_and_tse_act(desk, action, body):
    number = desk.tickets["acme-disk"]
    before = desk.get(f"/api/v1/tickets/{number}")
    anonymous = desk.client.post(f"/api/v1/tickets/{number}/{action}", json=body)
    assert anonymous.status_code == 401
    for who in ("noc", "acme"):
        answer = desk.act("acme-disk", action, body, who=who)
        assert answer.status_code == 403, who
        assert "admin or tse" in answer.json()["detail"]
    assert desk.get(f"/api/v1/tickets/{number}") == before
    assert desk.act("acme-disk", action, body, who="admin").status_code == 200


def test_a_tse_works_a_ticket(desk):
    desk.clock.advance(600)
    replied = desk.act("acme-disk", "reply", {"text": "We are looking at /var."})
    assert replied.status_code == 200, replied.text
    ticket = replied.json()
    assert ticket["state"] == "open"
    assert ticket["first_response_at"] == "2026-11-25T09:10:00.000Z"
    assert ticket["next_update_due"] is not None
    assert ticket["events"][-1]["kind"] == "reply" and ticket["events"][-1]["actor"] == "tess"

    assigned = desk.act("acme-disk", "assign", {"assignee": "tess"}).json()
    assert assigned["assignee"] == "tess"
    stalled = desk.act("acme-disk", "state", {"state": "stalled", "reason": "waiting for "
                                              "the customer's maintenance slot"}).json()
    assert stalled["state"] == "stalled" and stalled["next_update_due"] is None
    reopened = desk.act("acme-disk", "state", {"state": "open"}).json()
    assert reopened["state"] == "open" and reopened["next_update_due"] is not None
    resolved = desk.act("acme-disk", "state", {"state": "resolved", "reason": "cleaned up"})
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_at"]
    late = desk.act("acme-disk", "reply", {"text": "one more thing"})
    assert late.status_code == 409 and "resolved" in late.json()["detail"]
    kinds = [e["kind"] for e in desk.get("/api/v1/audit", ticket=desk.tickets["acme-disk"])]
    assert kinds == ["state_changed", "state_changed", "state_changed", "assigned", "reply",
                     "opened"]


def test_a_priority_change_needs_a_reason_and_restarts_the_clock(desk):
    policy = build_policy(desk.settings)
    desk.clock.advance(900)
    changed = desk.act("acme-mysql", "priority", {"priority": "P1",
                                                  "reason": "all billing stopped"})
    assert changed.status_code == 200, changed.text
    ticket = changed.json()
    assert (ticket["priority"], ticket["rt_priority"]) == ("P1", 80)
    expected = clocks.due(kind=ClockKind.FIRST_RESPONSE, start=desk.clock.now, priority="P1",
                          calendar=policy.calendar_for("acme"), sla=policy.sla)
    assert ticket["first_response_due"] == datetime.fromtimestamp(expected, UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    assert ticket["priority_reason"] == "tess: all billing stopped"
    entry = desk.get("/api/v1/audit", kind="priority_changed")[0]
    assert (entry["ticket_id"], entry["actor"]) == (desk.tickets["acme-mysql"], "tess")
    assert entry["data"]["reason"] == "all billing stopped" and entry["data"]["to"] == "P1"
    assert desk.get("/api/v1/tickets")[0]["id"] == desk.tickets["acme-mysql"]

    for body, named in (({"priority": "P2"}, "reason"),
                        ({"priority": "P2", "reason": "   "}, "reason"),
                        ({"priority": "P9", "reason": "why not"}, "priority")):
        bad = desk.act("acme-mysql", "priority", body)
        assert bad.status_code == 422, body
        assert named in bad.json()["detail"], bad.text
    assert desk.get(f"/api/v1/tickets/{desk.tickets['acme-mysql']}")["priority"] == "P1"


def test_actions_on_unknown_tickets_and_bad_states(desk):
    answer = desk.client.post("/api/v1/tickets/999999/reply", headers=desk.tokens["tse"],
                              json={"text": "hello"})
    assert answer.status_code == 404
    bad = desk.act("acme-disk", "state", {"state": "closed"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("state:")
    empty = desk.act("acme-disk", "reply", {"text": "  "})
    assert empty.status_code == 422 and empty.json()["detail"].startswith("text:")


def test_the_audit_log_shows_decisions_without_a_ticket(desk):
    engine = create_db_engine(desk.settings)
    try:
        with write_transaction(engine) as conn:  # the same problem again: no second ticket
            _open(conn, desk.settings, customer="acme", host="db1.acme.example", check="disk",
                  priority="P3", at=START + 5)
    finally:
        engine.dispose()
    newest = desk.get("/api/v1/audit")
    assert newest[0]["kind"] == "not_opened" and newest[0]["ticket_id"] is None
    assert newest[0]["problem_key"] == "acme/db1.acme.example/disk//var"
    assert newest[0]["data"]["reason"] == "duplicate"
    times = [e["at"] for e in newest]
    assert times == sorted(times, reverse=True)
    assert [e["kind"] for e in desk.get("/api/v1/audit", kind="not_opened")] == ["not_opened"]
    recent = desk.get("/api/v1/audit", since="2026-11-25T08:50:00Z")
    assert {e["ticket_id"] for e in recent} == {None, desk.tickets["globex-disk"]}
    assert desk.get("/api/v1/audit", since=str(START + 1))[0]["kind"] == "not_opened"
    assert {e["customer"] for e in desk.get("/api/v1/audit", customer="globex")} == {"globex"}
    bad = desk.client.get("/api/v1/audit", headers=desk.tokens["noc"],
                          params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("since:")
