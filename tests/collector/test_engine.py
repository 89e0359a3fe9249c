"""The ticket engine: failing results become one ticket per problem, as the policy says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.db import write_transaction
from collector.problems.engine import run_once
from collector.settings import Settings
from collector.tickets import service as tickets
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


def fail_replication(world: World, status: int = CRITICAL) -> None:
    world.push(DB, "mysql_replication", "replica", status,
               summary="Slave_IO_Running: No", details={"state": "stopped"})


def test_soft_then_hard_opens_exactly_one_ticket_with_the_policy_priority(world):
    world.host(DB)
    fail_replication(world)
    report = world.run()
    assert report.opened == [] and world.tickets() == []
    (soft,) = world.events("not_opened")
    assert soft["data"]["reason"] == "soft_state"
    assert "soft state 1/2" in soft["text"] and soft["problem_key"].endswith(
        "/mysql_replication/replica")

    world.now += 60
    fail_replication(world)
    report = world.run()
    (ticket,) = world.tickets()
    assert report.opened == [ticket["id"]]
    assert ticket["priority"] == "P2" and ticket["state"] == "new"
    assert ticket["subject"] == (
        "db1.example.net: mysql_replication replica CRITICAL: Slave_IO_Running: No")
    assert ticket["first_response_due"] == pytest.approx(world.now + 7200)
    (opened,) = world.events("opened")
    assert opened["data"]["rt_priority"] == 60
    assert opened["data"]["evidence"]["summary"] == "Slave_IO_Running: No"
    assert opened["data"]["evidence"]["details"] == {"state": "stopped"}

    for _ in range(5):  # further failures join the ticket, never a second one
        world.now += 60
        fail_replication(world)
        world.run()
    assert len(world.tickets()) == 1
    # only one "not opened: soft state" for the streak
    assert len(world.events("not_opened")) == 1


def test_results_between_passes_are_all_folded(world):
    world.host(DB)
    fail_replication(world)
    world.now += 60
    fail_replication(world)  # two results before the engine looks
    world.run()
    (ticket,) = world.tickets()
    assert ticket["priority"] == "P2"
    world.run()  # nothing new: nothing happens
    assert len(world.tickets()) == 1 and len(world.events("opened")) == 1


def test_firewall_not_loaded_is_p1(world):
    world.host(DB)
    for _ in range(2):
        world.push(DB, "firewall", "input", CRITICAL, summary="no ruleset loaded")
        world.now += 60
    world.run()
    (ticket,) = world.tickets()
    assert ticket["priority"] == "P1"
    assert ticket["first_response_due"] == pytest.approx(world.now + 3600)


def test_silence_of_a_critical_host_is_p1_at_once(world):
    world.host(DB, critical=True)
    world.now += 1000
    assert world.silence() == [DB]
    world.run()
    (ticket,) = world.tickets()
    assert ticket["priority"] == "P1" and ticket["check"] == "collector"
    assert ticket["subject"].startswith("db1.example.net: agent not reporting: no push for")


def test_silence_of_an_ordinary_host_is_p2(world):
    world.host(DB)
    world.now += 1000
    world.silence()
    world.run()
    (ticket,) = world.tickets()
    assert ticket["priority"] == "P2"


def test_a_hundred_flaps_in_an_hour_make_one_flapping_ticket(world):
    world.host(DB)
    for i in range(100):
        world.push(DB, "disk", "/var", CRITICAL if i % 2 else OK, summary="/var 96 % used")
        world.run()
        world.now += 36
    (ticket,) = world.tickets()
    assert ticket["flapping"] is True
    assert ticket["priority"] == "P2"  # disk CRITICAL, the worst it flaps between
    assert ticket["state"] == "new"
    assert len(world.events("opened")) == 1
    assert world.events("not_reported", ticket_id=ticket["id"])  # changes are audited


def test_worse_status_raises_priority_and_better_does_not_lower_it(world):
    world.host(DB)
    for _ in range(2):
        world.push(DB, "disk", "/var", WARNING, summary="/var 86 % used")
        world.now += 60
    world.run()
    (ticket,) = world.tickets()
    assert ticket["priority"] == "P3"

    world.push(DB, "disk", "/var", CRITICAL, summary="/var 96 % used")
    world.run()
    ticket = world.ticket(ticket["id"])
    assert ticket["priority"] == "P2" and ticket["status"] == CRITICAL
    (raised,) = world.events("priority_raised")
    assert raised["data"]["from"] == "P3" and raised["data"]["to"] == "P2"
    assert "worse: WARNING -> CRITICAL" in raised["text"]
    assert world.events("worsened", ticket_id=ticket["id"])

    world.now += 60
    world.push(DB, "disk", "/var", WARNING, summary="/var 86 % used")
    world.run()
    ticket = world.ticket(ticket["id"])
    assert ticket["priority"] == "P2" and ticket["status"] == WARNING
    (improved,) = world.events("improved", ticket_id=ticket["id"])
    assert "only a person lowers it" in improved["text"]
    assert len(world.events("priority_raised")) == 1


def _open_disk_ticket(world: World) -> int:
    world.host(DB)
    for _ in range(2):
        world.push(DB, "disk", "/var", CRITICAL, summary="/var 96 % used")
        world.now += 60
    world.run()
    (ticket,) = world.tickets()
    return int(ticket["id"])


def test_recovery_resolves_an_untouched_ticket_after_15_minutes_ok_not_before(world):
    ticket_id = _open_disk_ticket(world)
    world.push(DB, "disk", "/var", OK, summary="/var 40 % used")
    world.run()
    recovered_at = world.now
    assert world.ticket(ticket_id)["recovered_at"] == pytest.approx(recovered_at)
    assert world.events("recovered", ticket_id=ticket_id)

    for minute in range(1, 15):
        world.now = recovered_at + minute * 60 - 1
        world.push(DB, "disk", "/var", OK, summary="/var 40 % used")
        assert world.run().resolved == []
    assert world.ticket(ticket_id)["state"] == "new"

    world.now = recovered_at + 900
    assert world.run().resolved == [ticket_id]
    ticket = world.ticket(ticket_id)
    assert ticket["state"] == "resolved" and ticket["live_key"] is None


def test_a_worked_ticket_gets_the_recovery_note_and_stays(world):
    ticket_id = _open_disk_ticket(world)
    with write_transaction(world.engine) as conn:  # an engineer acts on it
        tickets.change_priority(conn, ticket_id, priority="P1", reason="customer asked",
                                actor="alice", policy=world.policy, now=world.now)
    world.push(DB, "disk", "/var", OK)
    world.run()
    world.run(at=world.now + 3600)
    ticket = world.ticket(ticket_id)
    assert ticket["state"] == "new" and ticket["recovered_at"] is not None
    assert world.events("recovered", ticket_id=ticket_id)
    assert not world.events("resolved")


def test_failing_again_before_resolution_cancels_the_recovery(world):
    ticket_id = _open_disk_ticket(world)
    world.push(DB, "disk", "/var", OK)
    world.run()
    world.now += 300
    world.push(DB, "disk", "/var", CRITICAL)
    world.run()
    ticket = world.ticket(ticket_id)
    assert ticket["recovered_at"] is None and ticket["status"] == CRITICAL
    assert world.events("failing_again", ticket_id=ticket_id)
    world.run(at=world.now + 3600)
    assert world.ticket(ticket_id)["state"] == "new"
    assert len(world.tickets()) == 1


def _recover_and_resolve(world: World, ticket_id: int) -> None:
    world.push(DB, "disk", "/var", OK)
    world.run()
    world.run(at=world.now + 900)
    assert world.ticket(ticket_id)["state"] == "resolved"


def test_recurrence_within_a_day_reopens_the_same_ticket(world):
    ticket_id = _open_disk_ticket(world)
    _recover_and_resolve(world, ticket_id)
    world.now += 23 * 3600
    for _ in range(2):
        world.push(DB, "disk", "/var", CRITICAL)
        world.now += 60
    report = world.run()
    assert report.reopened == [ticket_id] and report.opened == []
    (ticket,) = world.tickets()
    assert ticket["state"] == "new" and ticket["status"] == CRITICAL
    (reopened,) = world.events("reopened", ticket_id=ticket_id)
    assert "came back within 24h" in reopened["text"]


def test_recurrence_after_a_day_opens_a_new_ticket(world):
    ticket_id = _open_disk_ticket(world)
    _recover_and_resolve(world, ticket_id)
    world.now += 24 * 3600 + 60
    for _ in range(2):
        world.push(DB, "disk", "/var", CRITICAL)
        world.now += 60
    report = world.run()
    old, new = world.tickets()
    assert report.opened == [new["id"]] and report.reopened == []
    assert old["state"] == "resolved" and new["state"] == "new"


def test_still_failing_is_noted_once_per_update_period(world):
    ticket_id = _open_disk_ticket(world)  # P2: an update every two hours
    for _ in range(7 * 60 // 5):  # seven hours, a result every five minutes
        world.push(DB, "disk", "/var", CRITICAL)
        world.run()
        world.now += 300
    notes = world.events("still_failing", ticket_id=ticket_id)
    assert len(notes) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(notes, notes[1:], strict=False)]
    assert all(gap >= 7200 for gap in gaps)


def test_agent_version_outside_the_window_opens_a_p4_ticket(settings):
    world = World(settings, agent_versions={"releases": {
        "1.0.0": "2024-01-10", "2.0.0": "2025-01-10", "2.1.0": "2025-02-10"}})
    try:
        world.host(DB)
        world.set_host(DB, agent_version="2.1.0")
        assert world.run().versions_changed == []
        assert world.tickets() == []

        world.set_host(DB, agent_version="1.0.0")  # major 1 ended 18 months after 2.0.0
        report = world.run()
        assert report.versions_changed == [DB]
        (ticket,) = world.tickets()
        assert ticket["priority"] == "P4" and ticket["target"] == "agent_version"
        assert "support ended on 2026-07-10" in ticket["subject"]
        world.run(at=world.now + 60)  # the verdict is written once, not every pass
        assert len(world.events("not_opened")) == 0 and len(world.tickets()) == 1

        world.set_host(DB, agent_version="2.1.0")
        assert world.run(at=world.now + 60).versions_changed == [DB]
        assert world.ticket(ticket["id"])["recovered_at"] is not None
    finally:
        world.close()


def test_many_hosts_are_folded_a_few_at_a_time(world):
    hosts = [f"app{i}.example.net" for i in range(5)]
    for fqdn in hosts:
        world.host(fqdn)
    for _ in range(2):
        for fqdn in hosts:
            world.push(fqdn, "disk", "/var", CRITICAL)
        world.now += 60
    report = run_once(engine=world.engine, policy=world.policy, settings=world.settings,
                      now=world.now, chunk=2)
    assert report.results == 10
    assert sorted(t["host"] for t in world.tickets()) == hosts


def test_a_blip_during_the_recovery_hold_restarts_it(world):
    ticket_id = _open_disk_ticket(world)
    world.push(DB, "disk", "/var", OK)
    world.run()
    world.now += 600
    world.push(DB, "disk", "/var", CRITICAL)  # one failing result: soft, not hard
    world.run()
    assert world.ticket(ticket_id)["recovered_at"] is None
    world.now += 60
    world.push(DB, "disk", "/var", OK)
    world.run()
    again = world.now
    assert world.ticket(ticket_id)["recovered_at"] == pytest.approx(again)
    assert world.run(at=again + 899).resolved == []
    assert world.run(at=again + 900).resolved == [ticket_id]


def test_a_flapping_ticket_loses_its_mark_and_resolves_once_the_check_settles(world):
    world.host(DB)
    for i in range(30):
        world.push(DB, "disk", "/var", CRITICAL if i % 2 else OK)
        world.run()
        world.now += 36
    (ticket,) = world.tickets()
    assert ticket["flapping"] is True
    for _ in range(21):  # OK from now on: the changes age out of the history
        world.push(DB, "disk", "/var", OK)
        world.run()
        world.now += 36
    ticket = world.ticket(ticket["id"])
    assert ticket["flapping"] is False and ticket["status"] == OK
    assert world.events("flapping_stopped", ticket_id=ticket["id"])
    assert ticket["recovered_at"] is not None
    assert world.run(at=ticket["recovered_at"] + 900).resolved == [ticket["id"]]


def test_priority_rules_see_the_host_tags(settings):
    world = World(settings, priority={"rules": [
        {"name": "billing hosts", "host_tags": ["billing"], "priority": "P1"}]})
    try:
        world.host(DB, tags=("billing",))
        world.host("db2.example.net")
        for _ in range(2):
            for fqdn in (DB, "db2.example.net"):
                world.push(fqdn, "ntp", "offset", WARNING)
            world.now += 60
        world.run()
        by_host = {t["host"]: t for t in world.tickets()}
        assert by_host[DB]["priority"] == "P1"
        assert "billing hosts" in by_host[DB]["priority_reason"]
        assert by_host["db2.example.net"]["priority"] == "P3"
    finally:
        world.close()
