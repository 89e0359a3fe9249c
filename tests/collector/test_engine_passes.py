"""What an engine pass costs the collector: many results at once, quiet passes, short holds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from collector.problems.engine import engine_transaction, run_once
from collector.settings import Settings
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


def _open_disk_ticket(world: World) -> int:
    world.host(DB)
    for _ in range(2):
        world.push(DB, "disk", "/var", CRITICAL)
        world.now += 60
    world.run()
    (ticket,) = world.tickets()
    return int(ticket["id"])


def _burst(world: World, results: int, status: int = CRITICAL) -> None:
    """``results`` results a few seconds apart, all before the engine's next pass."""
    for _ in range(results):
        world.push(DB, "disk", "/var", status)
        world.now += 5


def test_a_burst_of_one_failure_counts_every_result_and_notes_once_when_due(
        world: World) -> None:
    ticket_id = _open_disk_ticket(world)  # P2: an update every two hours; 2 results so far
    _burst(world, 20)
    world.run()  # not yet due: the twenty results are counted, nothing is noted
    assert world.events("still_failing", ticket_id=ticket_id) == []

    world.now += 2 * 3600
    _burst(world, 20)
    report = world.run()
    (note,) = world.events("still_failing", ticket_id=ticket_id)
    # the first result of the burst made the update due: 2 + 20 + 1 in a row
    assert "still CRITICAL: 23 non-OK results in a row" in note["text"]
    assert report.results == 20 and report.events == 20 and report.notes == 1

    world.now += 2 * 3600
    _burst(world, 5)
    world.run()
    first, second = world.events("still_failing", ticket_id=ticket_id)
    assert "still CRITICAL: 43 non-OK results in a row" in second["text"]
    assert second["at"] - first["at"] >= 7200


def test_a_burst_that_ends_in_recovery_notes_the_recovery(world: World) -> None:
    ticket_id = _open_disk_ticket(world)
    _burst(world, 10)
    _burst(world, 1, OK)
    world.run()
    ticket = world.ticket(ticket_id)
    assert ticket["status"] == OK and ticket["recovered_at"] is not None
    (recovered,) = world.events("recovered", ticket_id=ticket_id)
    assert "OK again after 12 non-OK results" in recovered["text"]


def test_a_worse_status_in_a_burst_raises_the_priority(world: World) -> None:
    world.host(DB)
    for _ in range(2):
        world.push(DB, "disk", "/var", WARNING)
        world.now += 60
    world.run()
    (ticket,) = world.tickets()
    _burst(world, 6, WARNING)
    _burst(world, 6, CRITICAL)
    world.run()
    raised = world.ticket(ticket["id"])
    assert raised["status"] == CRITICAL
    assert raised["priority"] < ticket["priority"]  # P2 is more urgent than P3
    (worse,) = world.events("worsened", ticket_id=ticket["id"])
    assert "WARNING -> CRITICAL" in worse["text"]


def test_a_quiet_pass_never_waits_for_the_store(world: World) -> None:
    # Ingest (or another collector's engine) holds the store: a pass with nothing to do
    # reads, finds nothing, and neither waits for the write lock nor takes it.
    _open_disk_ticket(world)
    finished = threading.Event()

    def quiet_pass() -> None:
        report = run_once(engine=world.engine, policy=world.policy, settings=world.settings,
                          now=world.now + 60)
        assert report.results == 0 and report.opened == []
        finished.set()

    with engine_transaction(world.engine):
        thread = threading.Thread(target=quiet_pass)
        thread.start()
        assert finished.wait(5), "a quiet engine pass waited for the store's write lock"
    thread.join(5)


def test_many_hosts_are_folded_a_few_check_states_at_a_time(world: World) -> None:
    hosts = [f"app{i}.example.net" for i in range(4)]
    for fqdn in hosts:
        world.host(fqdn)
    for _ in range(2):
        for fqdn in hosts:
            for target in ("/", "/var", "/srv"):
                world.push(fqdn, "disk", target, CRITICAL)
        world.now += 60
    report = run_once(engine=world.engine, policy=world.policy, settings=world.settings,
                      now=world.now, chunk=4)
    assert report.results == 24 and len(report.opened) == 12
    assert sorted({t["host"] for t in world.tickets()}) == hosts
    assert world.run().results == 0  # every state was folded and its flag cleared
