"""The ticket engine: maintenance windows and site silence hold tickets back; many collectors
act as one; results pushed through the app open tickets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from collector.db import create_db_engine, migrate, write_transaction
from collector.maintenance.service import create_window
from collector.problems.context import EngineReport
from collector.problems.scheduled import engine_job
from collector.settings import Settings
from tests.collector.conftest import settings_for
from tests.collector.test_engine_support import World

OK, WARNING, CRITICAL = 0, 1, 2
DB = "db1.example.net"


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    w = World(settings)
    try:
        yield w
    finally:
        w.close()


def fail_disk(world: World, host: str = DB, times: int = 2) -> None:
    for _ in range(times):
        world.push(host, "disk", "/var", CRITICAL, summary="/var 96 % used")
        world.now += 60


def window(world: World, *, host: str | None = DB, check: str | None = None,
           minutes: float = 60) -> int:
    with write_transaction(world.engine) as conn:
        return create_window(conn, customer="acme", host=host, check=check,
                             starts_at=world.now - 60, ends_at=world.now + minutes * 60,
                             recurrence="once", timezone="UTC", until=None,
                             reason="kernel upgrade", created_by="alice", now=world.now)


def test_maintenance_holds_the_ticket_and_it_opens_when_the_window_ends(world):
    world.host(DB)
    window_id = window(world, minutes=30)
    ends = world.now + 30 * 60
    fail_disk(world)
    report = world.run()
    assert report.opened == [] and world.tickets() == []
    held = [e for e in world.events("not_opened") if e["data"]["reason"] == "maintenance"]
    assert len(held) == 1
    assert held[0]["data"]["window"] == window_id
    assert held[0]["data"]["window_ends_at"] == pytest.approx(ends)
    assert "kernel upgrade" in held[0]["text"]

    for _ in range(5):  # still failing inside the window: still no ticket, audited once
        fail_disk(world, times=1)
        world.run()
    assert world.tickets() == []
    assert len([e for e in world.events("not_opened")
                if e["data"]["reason"] == "maintenance"]) == 1

    report = world.run(at=ends + 1)
    (ticket,) = world.tickets()
    assert report.opened == [ticket["id"]] and ticket["priority"] == "P2"
    (late,) = world.events("opened_late", ticket_id=ticket["id"])
    assert "held since" in late["text"] and "maintenance" in late["text"]


def test_a_problem_that_recovers_inside_the_window_never_opens(world):
    world.host(DB)
    window(world, host=None)  # customer-wide
    fail_disk(world)
    world.run()
    world.push(DB, "disk", "/var", OK)
    world.run()
    world.run(at=world.now + 7200)
    assert world.tickets() == []
    (cleared,) = world.events("pending_cleared")
    assert "recovered before its ticket opened" in cleared["text"]


def test_a_window_for_another_check_holds_nothing(world):
    world.host(DB)
    window(world, check="ntp")
    fail_disk(world)
    world.run()
    assert len(world.tickets()) == 1


HOSTS = [f"web{i}.example.net" for i in range(1, 5)]


def _silent_site(world: World, silent: list[str]) -> None:
    for fqdn in HOSTS:
        world.host(fqdn)
    world.now += 1000
    for fqdn in HOSTS:
        if fqdn not in silent:
            world.set_host(fqdn, last_seen_at=world.now)
    assert sorted(world.silence()) == sorted(silent)


def test_most_hosts_silent_at_once_make_one_site_ticket(world):
    _silent_site(world, HOSTS[:3])
    world.run()
    (site,) = world.tickets()
    assert site["host"] == "*" and site["check"] == "silence" and site["priority"] == "P2"
    assert site["subject"].startswith("acme: site not reporting: 3 of 4 hosts")
    held = [e for e in world.events("not_opened") if e["data"]["reason"] == "site_silence"]
    assert sorted(e["problem_key"].split("/")[1] for e in held) == sorted(HOSTS[:3])

    # two hosts push again: the site is back; the one still silent gets its own ticket
    world.now += 120
    for fqdn in HOSTS[:2]:
        world.push(fqdn, "disk", "/", OK)
    world.run()
    tickets = world.tickets()
    assert len(tickets) == 2
    own = tickets[1]
    assert own["host"] == HOSTS[2] and own["check"] == "collector"
    assert world.events("recovered", ticket_id=site["id"])
    assert world.events("opened_late", ticket_id=own["id"])
    world.run(at=world.now + 900)
    assert world.ticket(site["id"])["state"] == "resolved"


def test_held_silences_open_nothing_until_they_are_their_own(world):
    _silent_site(world, HOSTS[:2])  # two of four: a site outage may still be forming
    world.run()
    assert world.tickets() == []
    held = [e for e in world.events("not_opened") if e["data"]["reason"] == "site_silence"]
    assert {e["data"]["verdict"] for e in held} == {"held"}
    world.run(at=world.now + 301)  # nothing more fell silent: each its own problem
    tickets = world.tickets()
    assert sorted(t["host"] for t in tickets) == sorted(HOSTS[:2])


def test_a_silence_joining_the_site_opens_no_ticket_of_its_own(world):
    _silent_site(world, HOSTS[:3])
    world.run()
    world.now += 600
    assert world.silence() == [HOSTS[3]]
    world.run()
    world.run(at=world.now + 600)
    (site,) = world.tickets()
    assert world.events("site_joined", ticket_id=site["id"])


def test_two_collectors_never_open_two_tickets_for_one_problem(pg_url):
    settings = settings_for(pg_url)
    engine = create_db_engine(settings)
    migrate(engine)
    engine.dispose()
    first, second = World(settings), World(settings)
    try:
        hosts = [f"app{i}.example.net" for i in range(30)]
        for fqdn in hosts:
            first.host(fqdn)
        for fqdn in hosts:
            fail_disk(first, fqdn)
        second.now = first.now
        barrier = threading.Barrier(2)
        reports: list[EngineReport] = []
        errors: list[BaseException] = []

        def run(world: World) -> None:
            try:
                barrier.wait()
                reports.append(world.run())
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        tickets = first.tickets()
        assert len(tickets) == 30
        assert len({t["live_key"] for t in tickets}) == 30
        assert len(first.events("opened")) == 30
        assert sorted(len(r.opened) for r in reports) == [0, 30]
        assert [e for e in first.events("not_opened")
                if e["data"]["reason"] == "duplicate"] == []
    finally:
        first.close()
        second.close()


def test_results_pushed_through_the_app_open_a_ticket(
    settings, enroll_host, start_collector, make_batch, result, clock
):
    token = enroll_host(settings, DB)
    client = start_collector(settings, clock)
    runtime = client.app.state.runtime
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        batch = make_batch(DB, [result(check="mysql_replication", target="replica",
                                       status=CRITICAL, summary="Slave_SQL_Running: No",
                                       details={"state": "stopped"})])
        assert client.post("/api/v1/results", json=batch, headers=headers).status_code == 202
        report = engine_job(runtime)
    assert len(report.opened) == 1
    world = World(settings)
    try:
        (ticket,) = world.tickets()
        assert ticket["priority"] == "P2" and ticket["host"] == DB
    finally:
        world.close()


def test_engine_passes_beside_busy_ingest_neither_fails(
    settings, enroll_host, start_collector, make_batch, result
):
    hosts = [f"busy{i}.example.net" for i in range(8)]
    tokens = {fqdn: enroll_host(settings, fqdn) for fqdn in hosts}
    client = start_collector(settings)
    world = World(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def engine_loop() -> None:
        while not stop.is_set():
            try:
                world.run(at=time.time())
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                return

    runner = threading.Thread(target=engine_loop)
    runner.start()
    try:
        for _ in range(6):
            batches = [
                ("/api/v1/results",
                 make_batch(fqdn, [result(check=check, target=target, status=CRITICAL)
                                   for check, target in (("ntp", "offset"), ("disk", "/var"),
                                                         ("dns", "resolvers"))]),
                 {"Authorization": f"Bearer {tokens[fqdn]}"})
                for fqdn in hosts]
            assert {r.status_code for r in client.post_many(batches)} == {202}
    finally:
        stop.set()
        runner.join(60)
    try:
        assert errors == []
        world.run(at=time.time())
        tickets = world.tickets()
        assert len(tickets) == 3 * len(hosts)
        assert len({t["live_key"] for t in tickets}) == len(tickets)
    finally:
        world.close()


def test_a_site_with_a_critical_silent_host_is_p1(world):
    for fqdn in HOSTS:
        world.host(fqdn, critical=fqdn == HOSTS[0])
    world.now += 1000
    world.silence()
    world.run()
    (site,) = world.tickets()
    assert site["host"] == "*" and site["priority"] == "P1"
