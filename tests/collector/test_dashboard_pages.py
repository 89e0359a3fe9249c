"""The dashboard's overview, problem list, host list and host pages, on both stores, as a
browser gets them: logged in through /login, results pushed by agents, tickets opened."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select

from collector.db import create_db_engine, write_transaction
from collector.hosts.models import Customer, Host
from collector.policy import build_policy
from collector.problems.keys import ProblemKey
from collector.settings import Settings
from collector.state.service import detect_silence
from collector.tickets import service
from collector.tickets.priority import Priority
from tests.collector.conftest import AppClient, FakeClock, add_user, bearer, make_result

PASSWORD = "correct horse"
HOUR = 3600.0
LONG_INTERVAL = 86400.0  # hosts that pushed stay within their silence threshold
SCRIPT = "<script>alert('x')</script>"


@dataclass
class World:
    client: AppClient
    clock: FakeClock
    settings: Settings
    tickets: dict[str, int]

    def browser(self, name: str = "nina") -> AppClient:
        return self.client.browser(name, PASSWORD)


def push(client: AppClient, token: str, host: str, results: list[dict[str, Any]]) -> None:
    batch = {"batch_id": f"b-{host}-{time.monotonic_ns()}", "host": host,
             "agent": {"version": "0.1.0", "started_at": time.time() - 100,
                       "interval": LONG_INTERVAL},
             "sent_at": time.time(), "results": results}
    answer = client.post("/api/v1/results", json=batch, headers=bearer(token))
    assert answer.status_code == 202, answer.text


def open_ticket(settings: Settings, *, customer: str, host: str, check: str, target: str,
                priority: str, at: float) -> int:
    engine = create_db_engine(settings)
    try:
        with write_transaction(engine) as conn:
            customer_id = conn.execute(
                select(Customer.id).where(Customer.name == customer)).scalar_one()
            host_id = conn.execute(select(Host.id).where(Host.fqdn == host)).scalar_one()
            return service.open_ticket(conn, new=service.NewTicket(
                key=ProblemKey(customer, host, check, target), customer_id=customer_id,
                host_id=host_id, check_type=check, subject=f"{host}: {check} {target} CRITICAL",
                priority=Priority(priority), priority_reason="set by the test", status=2,
            ), policy=build_policy(settings), settings=settings, now=at)
    finally:
        engine.dispose()


def silence(settings: Settings, now: float) -> list[str]:
    engine = create_db_engine(settings)
    try:
        return detect_silence(engine=engine, settings=settings.silence, now=now, started_at=0)
    finally:
        engine.dispose()


@pytest.fixture
def world(settings, enroll_host, start_collector) -> World:
    """acme: db1 CRITICAL (a P1 ticket) and WARNING, web1 WARNING, quiet never pushed
    (SILENT); globex: app1 OK, app2 UNKNOWN. An hour passes after the pushes."""
    clock = FakeClock()
    start = clock.now
    client = start_collector(settings, clock, role=None)
    tokens = {fqdn: enroll_host(settings, fqdn, customer) for fqdn, customer in (
        ("db1.acme.example", "acme"), ("web1.acme.example", "acme"),
        ("quiet.acme.example", "acme"), ("app1.globex.example", "globex"),
        ("app2.globex.example", "globex"))}
    add_user(settings, "nina", "noc", password=PASSWORD)
    add_user(settings, "acme-ops", "viewer", customer="acme", password=PASSWORD)
    push(client, tokens["db1.acme.example"], "db1.acme.example", [
        make_result("disk", "/", 0, "/ 40% used", produced_at=start - 9000),
        make_result("disk", "/var", 0, "/var 80% used", produced_at=start - 9000),
        make_result("disk", "/var", 2, "/var 97% used", produced_at=start - 3000,
                    metrics=[{"name": "used_pct", "value": 97.0, "unit": "%", "warn": 85,
                              "crit": 95}],
                    details={"device": "/dev/vda2", "mount": "/var"}),
        make_result("mysql", "replica", 1, "replica 120 s behind", produced_at=start - 5000,
                    type="mysql_replication",
                    metrics=[{"name": "lag", "value": 120.25, "unit": "s"},
                             {"name": "relay_log", "value": 1234567890.0, "unit": "B"}],
                    details={"state": "lagging", "seconds_behind": 120}),
    ])
    push(client, tokens["web1.acme.example"], "web1.acme.example", [
        make_result("ntp", "offset", 1, f"offset 0.4 s {SCRIPT}", produced_at=start - 100,
                    type="ntp", metrics=[], details={}),
    ])
    push(client, tokens["app1.globex.example"], "app1.globex.example", [
        make_result("disk", "/", 0, "/ 10% used", produced_at=start - 50),
    ])
    push(client, tokens["app2.globex.example"], "app2.globex.example", [
        make_result("backup", "nightly", 3, "backup status unreadable",
                    produced_at=start - 2000, type="backup", metrics=[], details={}),
    ])
    tickets = {"db1-var": open_ticket(settings, customer="acme", host="db1.acme.example",
                                      check="disk", target="/var", priority="P1",
                                      at=start - 2900)}
    clock.advance(HOUR)
    assert silence(settings, clock.now) == ["quiet.acme.example"]
    return World(client, clock, settings, tickets)


def rows(html: str, marker: str) -> list[dict[str, str]]:
    """The data-* attributes of each <tr> that carries ``marker``."""
    found = []
    for tag in re.findall(r"<tr\b[^>]*>", html):
        if re.search(rf"\s{marker}[\s=>]", tag):
            found.append({k: unescape(v) for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', tag)})
    return found


def card(html: str, customer: str) -> dict[str, int]:
    """The host counts of one customer card: {state: number}."""
    match = re.search(rf'data-customer-card="{re.escape(customer)}"(.*?)</article>', html, re.S)
    assert match, f"no card of {customer}"
    body = match.group(1)
    counts = {s: int(n) for s, n in re.findall(r'data-count="(\w+)">(\d+)<', body)}
    counts.update({f"tickets {p}": int(n)
                   for p, n in re.findall(r'data-tickets="(P\d)">(\d+)<', body)})
    breached = re.search(r"data-breached>(\d+)<", body)
    assert breached
    counts["breached"] = int(breached.group(1))
    return counts


EXPECTED_ORDER = [
    ("P1", "CRITICAL", "db1.acme.example", "disk", "/var"),
    ("P2", "SILENT", "quiet.acme.example", "collector", "silence"),
    ("P3", "WARNING", "db1.acme.example", "mysql", "replica"),  # older than the ntp one
    ("P3", "WARNING", "web1.acme.example", "ntp", "offset"),
    ("P4", "UNKNOWN", "app2.globex.example", "backup", "nightly"),
]


def order(html: str) -> list[tuple[str, str, str, str, str]]:
    return [(r["priority"], r["status"], r["host"], r["check"], r["target"])
            for r in rows(html, "data-problem")]


def test_the_overview_counts_hosts_by_their_worst_state_and_silence(world):
    page = world.browser().get("/")
    assert page.status_code == 200
    assert card(page.text, "acme") == {
        "CRITICAL": 1, "WARNING": 1, "UNKNOWN": 0, "SILENT": 1, "OK": 0,
        "tickets P1": 1, "tickets P2": 0, "tickets P3": 0, "tickets P4": 0,
        # opened 2 h ago: the P1 first response is overdue
        "breached": 1}
    assert card(page.text, "globex") == {
        "CRITICAL": 0, "WARNING": 0, "UNKNOWN": 1, "SILENT": 0, "OK": 1,
        "tickets P1": 0, "tickets P2": 0, "tickets P3": 0, "tickets P4": 0, "breached": 0}
    assert order(page.text) == EXPECTED_ORDER
    assert "all 5 problems" in page.text
    (ticket,) = rows(page.text, "data-ticket")
    assert ticket["ticket"] == str(world.tickets["db1-var"])
    assert 'data-clock="first-response"' in page.text and 'data-state="breached"' in page.text


def test_the_overview_lists_the_tickets_whose_sla_is_due_soonest_first(world):
    later = open_ticket(world.settings, customer="globex", host="app2.globex.example",
                        check="backup", target="nightly", priority="P4", at=world.clock.now)
    sooner = open_ticket(world.settings, customer="acme", host="web1.acme.example",
                         check="ntp", target="offset", priority="P2", at=world.clock.now)
    page = world.browser().get("/")
    listed = [int(r["ticket"]) for r in rows(page.text, "data-ticket")]
    # overdue first, then P2's first response (hours) before P4's (business days)
    assert listed == [world.tickets["db1-var"], sooner, later]
    assert "all 3 active tickets" in page.text


def test_the_overview_filters_by_customer(world):
    page = world.browser().get("/?customer=globex")
    assert 'data-customer-card="globex"' in page.text
    assert 'data-customer-card="acme"' not in page.text
    assert order(page.text) == [EXPECTED_ORDER[-1]]
    assert 'value="globex" selected' in page.text


def test_problems_are_ordered_by_priority_then_age_with_their_tickets(world):
    page = world.browser().get("/problems")
    assert page.status_code == 200
    assert order(page.text) == EXPECTED_ORDER
    first = rows(page.text, "data-problem")[0]
    assert first["customer"] == "acme"
    assert f'<a href="/tickets/{world.tickets["db1-var"]}">#{world.tickets["db1-var"]}</a>' in (
        page.text)
    assert '<a href="/hosts/db1.acme.example">db1.acme.example</a>' in page.text


@pytest.mark.parametrize(("query", "expected"), [
    ("customer=globex", [EXPECTED_ORDER[4]]),
    ("priority=P3", EXPECTED_ORDER[2:4]),
    ("priority=P1", EXPECTED_ORDER[:1]),
    ("status=SILENT", EXPECTED_ORDER[1:2]),
    ("status=CRITICAL", EXPECTED_ORDER[:1]),  # a silent host is SILENT, not CRITICAL
    ("status=WARNING&customer=acme", EXPECTED_ORDER[2:4]),
    ("status=UNKNOWN&customer=acme", []),
])
def test_each_problem_filter(world, query, expected):
    assert order(world.browser().get(f"/problems?{query}").text) == expected


@pytest.mark.parametrize(("path", "named"), [
    ("/problems?priority=P9", "priority"), ("/problems?status=OK", "status"),
    ("/problems?page=0", "page"), ("/problems?page=two", "page"),
    ("/problems?customer=nobody", "customer"), ("/hosts?status=BAD", "status"),
    ("/hosts?page=-1", "page"), ("/?customer=nobody", "customer"),
])
def test_a_bad_filter_or_page_is_a_page_that_names_the_parameter(world, path, named):
    answer = world.browser().get(path, headers={"Accept": "text/html"})
    assert answer.status_code == 422
    assert "<html" in answer.text and re.search(rf'role="alert">{named}\b', answer.text)


def test_the_host_list_is_worst_first_with_counts(world):
    page = world.browser().get("/hosts")
    listed = [(r["host-row"], r["status"]) for r in rows(page.text, "data-host-row")]
    assert listed == [
        ("quiet.acme.example", "SILENT"), ("db1.acme.example", "CRITICAL"),
        ("app2.globex.example", "UNKNOWN"), ("web1.acme.example", "WARNING"),
        ("app1.globex.example", "OK")]
    db1 = re.search(r'data-host-row="db1.acme.example".*?</tr>', page.text, re.S)
    assert db1
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', db1.group(0)))
    assert counts == {"CRITICAL": "1", "WARNING": "1", "UNKNOWN": "0", "SILENT": "0",
                      "OK": "1"}
    assert "0.1.0" in db1.group(0) and "1h 00m ago" in db1.group(0)


@pytest.mark.parametrize(("query", "expected"), [
    ("customer=globex", ["app2.globex.example", "app1.globex.example"]),
    ("status=SILENT", ["quiet.acme.example"]),
    ("status=OK", ["app1.globex.example"]),
    ("q=ACME&status=WARNING", ["web1.acme.example"]),
    ("q=db1", ["db1.acme.example"]),
    ("q=%25", []),  # a % in the name filter is a character, not a wildcard
])
def test_each_host_filter(world, query, expected):
    page = world.browser().get(f"/hosts?{query}")
    assert [r["host-row"] for r in rows(page.text, "data-host-row")] == expected


def test_page_two_shows_the_next_rows(settings, enroll_host, start_collector):
    settings = settings.model_copy(update={
        "dashboard": settings.dashboard.model_copy(update={"page_size": 10})})
    clock = FakeClock()
    client = start_collector(settings, clock, role=None)
    add_user(settings, "nina", "noc", password=PASSWORD)
    for n in range(12):
        fqdn = f"h{n:02d}.initech.example"
        token = enroll_host(settings, fqdn, "initech")
        push(client, token, fqdn, [make_result(
            "ntp", "offset", 1, f"offset {n}", produced_at=clock.now - 1000 + n, type="ntp",
            metrics=[], details={})])
    browser = client.browser("nina", PASSWORD)
    first, second = browser.get("/problems"), browser.get("/problems?page=2")
    hosts = [f"h{n:02d}.initech.example" for n in range(12)]  # the oldest first
    assert [r["host"] for r in rows(first.text, "data-problem")] == hosts[:10]
    assert [r["host"] for r in rows(second.text, "data-problem")] == hosts[10:]
    assert "rows 11–12 of 12" in second.text and 'rel="prev"' in second.text
    assert 'href="/problems?page=2"' in first.text
    named = browser.get("/hosts?q=initech&page=2")
    assert [r["host-row"] for r in rows(named.text, "data-host-row")] == hosts[10:]
    assert 'href="/hosts?page=1&amp;q=initech"' in named.text
    # past the end (the list shrank while the page was open): the last page
    beyond = browser.get("/problems?page=7")
    assert [r["host"] for r in rows(beyond.text, "data-problem")] == hosts[10:]
    assert "page 2 of 2" in beyond.text
    assert [r["host-row"] for r in rows(browser.get("/hosts?page=3").text, "data-host-row")
            ] == hosts[10:]


def test_a_viewer_sees_only_its_customer_on_every_page(world):
    viewer = world.browser("acme-ops")
    overview = viewer.get("/")
    assert 'data-customer-card="acme"' in overview.text
    for path in ("/", "/problems", "/hosts"):
        page = viewer.get(path)
        assert page.status_code == 200
        assert "globex" not in page.text, path
    assert {r["customer"] for r in rows(viewer.get("/problems").text, "data-problem")} == {
        "acme"}
    assert len(rows(viewer.get("/hosts").text, "data-host-row")) == 3
    hidden = viewer.get("/hosts/app1.globex.example", headers={"Accept": "text/html"})
    missing = viewer.get("/hosts/nothing.example", headers={"Accept": "text/html"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("app1.globex.example", "X") == missing.text.replace(
        "nothing.example", "X")
    assert viewer.get("/problems?customer=globex").status_code == 422
    assert viewer.get("/hosts/db1.acme.example").status_code == 200


def test_summaries_are_escaped(world):
    browser = world.browser()
    for path in ("/", "/problems", "/hosts/web1.acme.example"):
        page = browser.get(path)
        assert SCRIPT not in page.text, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text, path


def test_the_host_page_shows_checks_evidence_history_and_tickets(world):
    closed = open_ticket(world.settings, customer="acme", host="db1.acme.example",
                         check="mysql", target="replica", priority="P3",
                         at=world.clock.now - 600)
    engine = create_db_engine(world.settings)
    try:
        with write_transaction(engine) as conn:
            service.set_state(conn, closed, state="resolved", actor="tess", reason="fixed",
                              policy=build_policy(world.settings), settings=world.settings,
                              now=world.clock.now - 60)
    finally:
        engine.dispose()
    page = world.browser().get("/hosts/db1.acme.example")
    assert page.status_code == 200
    checks = [(r["check"], r["target"], r["status"]) for r in rows(page.text, "data-check-row")]
    assert checks == [("disk", "/var", "CRITICAL"), ("mysql", "replica", "WARNING"),
                      ("disk", "/", "OK")]
    assert "/var 97% used" in page.text and "used_pct 97 %" in page.text
    assert "lag 120.25 s" in page.text and "relay_log 1,234,567,890 B" in page.text
    assert re.search(r"<details[^>]*><summary>evidence</summary>.*?/dev/vda2", page.text,
                     re.S)
    assert "seconds_behind" in page.text
    history = [(r["check"], r["target"]) for r in rows(page.text, "data-change")]
    assert history == [("disk", "/var"), ("mysql", "replica"), ("disk", "/var"),
                       ("disk", "/")]  # newest first
    tickets = {r["ticket"]: r for r in rows(page.text, "data-ticket")}
    assert list(tickets) == [str(closed), str(world.tickets["db1-var"])]
    assert re.search(rf'data-ticket="{closed}".*?<td data-state>resolved</td>', page.text,
                     re.S)
    assert f'<a href="/tickets/{closed}">' in page.text
    assert "0.1.0" in page.text and "not silent" in page.text

    quiet = world.browser().get("/hosts/quiet.acme.example")
    assert [(r["check"], r["target"], r["status"]) for r in rows(quiet.text, "data-check-row")
            ] == [("collector", "silence", "SILENT")]
    assert "not silent" not in quiet.text and "never" in quiet.text


@pytest.mark.parametrize("path", ["/", "/problems", "/hosts", "/hosts/db1.acme.example"])
def test_the_live_fragment_of_each_page_is_the_changing_part_only(world, path):
    browser = world.browser()
    fragment = browser.get(path, headers={"X-Live": "1"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<form" not in fragment.text
    assert "data-problem" in fragment.text or "data-host-row" in fragment.text or (
        "data-check-row" in fragment.text)
    assert fragment.headers["X-Server-Time"]
    whole = browser.get(path).text
    for marker in ("data-problem", "data-host-row", "data-check-row", "data-ticket"):
        assert fragment.text.count(marker) == whole.count(marker), marker
    if path.startswith("/hosts/"):
        assert "used_pct 97 %" in fragment.text
