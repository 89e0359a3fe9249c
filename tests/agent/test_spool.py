from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agent.spool import Spool, peek_stats
from checks.result import CheckResult, Status

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def result(target: str = "/", status: Status = Status.OK, summary: str = "fine") -> CheckResult:
    return CheckResult("disk", target, status, summary)


def test_a_result_is_stored_with_its_identity_and_status_change(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    first = spool.add(result(), type_name="disk", duration=0.25)
    again = spool.add(result(), type_name="disk")
    worse = spool.add(result(status=Status.WARNING), type_name="disk")
    assert (first.seq, again.seq, worse.seq) == (1, 2, 3)
    assert (first.status_changed, again.status_changed, worse.status_changed) == (
        True, False, True)
    batch = spool.take_batch(10)
    assert batch is not None
    wire = batch.results[0]
    assert wire["id"] == first.id and wire["seq"] == 1 and wire["type"] == "disk"
    assert wire["check"] == "disk" and wire["target"] == "/" and wire["status"] == 0
    assert wire["produced_at"] == 1_800_000_000.0 and wire["duration"] == 0.25
    assert wire["status_changed"] is True
    assert [r["status_changed"] for r in batch.results] == [True, False, True]
    assert spool.status_changed.is_set()


def test_unacknowledged_rows_and_their_batch_id_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.add(result(f"/m{i}"), type_name="disk")
    batch = spool.take_batch(3)
    assert batch is not None and batch.seqs == (1, 2, 3)
    spool.close()

    spool = Spool(tmp_path)
    assert len(spool) == 5
    again = spool.take_batch(3)
    assert again == batch  # same id, same content: the collector dedups the resend
    assert spool.ack(batch.batch_id) == 3
    rest = spool.take_batch(10)
    assert rest is not None and rest.seqs == (4, 5) and rest.batch_id != batch.batch_id
    spool.ack(rest.batch_id)
    assert spool.take_batch(10) is None
    assert len(spool) == 0


def test_seq_keeps_increasing_across_reopen_even_when_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    seqs = [spool.add(result(), type_name="disk").seq for _ in range(3)]
    batch = spool.take_batch(10)
    assert batch is not None
    spool.ack(batch.batch_id)
    spool.close()
    spool = Spool(tmp_path)
    seqs += [spool.add(result(), type_name="disk").seq for _ in range(3)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert spool.stats().produced_total == 6


def test_last_status_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.add(result(status=Status.CRITICAL), type_name="disk")
    spool.close()
    spool = Spool(tmp_path)
    assert not spool.add(result(status=Status.CRITICAL), type_name="disk").status_changed
    assert spool.add(result(status=Status.OK), type_name="disk").status_changed


def test_expired_results_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path, max_age=3600, clock=clock)
    spool.add(result("/a"), type_name="disk")
    spool.add(result("/b"), type_name="disk")
    clock.now += 1800
    spool.add(result("/c"), type_name="disk")
    assert spool.stats().oldest_age == 1800
    clock.now += 1801
    spool.add(result("/d"), type_name="disk")
    stats = spool.stats()
    assert (stats.depth, stats.dropped_age, stats.dropped_size) == (2, 2, 0)
    assert stats.dropped_total == 2 and stats.produced_total == 4
    batch = spool.take_batch(10)
    assert batch is not None and [r["target"] for r in batch.results] == ["/c", "/d"]


def test_a_batch_in_flight_is_kept_until_all_of_it_is_expired(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path, max_age=3600, clock=clock)
    spool.add(result("/a"), type_name="disk")
    clock.now += 1000
    spool.add(result("/b"), type_name="disk")
    batch = spool.take_batch(10)
    clock.now += 3000  # /a expired, /b not yet: the batch stays whole
    spool.add(result("/c"), type_name="disk")
    assert spool.take_batch(10) == batch
    clock.now += 1000
    spool.add(result("/d"), type_name="disk")
    assert spool.stats().dropped_age == 2
    rest = spool.take_batch(10)
    assert rest is not None and [r["target"] for r in rest.results] == ["/c", "/d"]


def _size_of_one(tmp_path: Path) -> int:
    probe = Spool(tmp_path / "probe")
    probe.add(result("/x", summary="s" * 500), type_name="disk")
    size = probe.stats().bytes
    probe.close()
    return size


def test_when_full_routine_results_go_first_and_status_changes_last(tmp_path: Path) -> None:
    one = _size_of_one(tmp_path)
    spool = Spool(tmp_path / "spool", max_bytes=10 * one + one // 2)
    # Ten results: targets /0../9, each the first of its target, hence status changes.
    for i in range(4):
        spool.add(result(f"/{i}", summary="s" * 500), type_name="disk")
    # Routine repeats of /0 and /1 (same status: not a change).
    for _ in range(6):
        spool.add(result("/0", summary="s" * 500), type_name="disk")
    assert spool.stats().dropped_size == 0
    # Over the bound: the oldest routine results go, the status changes stay.
    for _ in range(3):
        spool.add(result("/1", summary="s" * 500), type_name="disk")
    stats = spool.stats()
    assert stats.depth == 10 and stats.dropped_size == 3 and stats.bytes <= spool.max_bytes
    batch = spool.take_batch(100)
    assert batch is not None
    kept = [(r["target"], r["status_changed"]) for r in batch.results]
    assert kept[:4] == [("/0", True), ("/1", True), ("/2", True), ("/3", True)]
    assert len([k for k in kept if not k[1]]) == 6
    spool.ack(batch.batch_id)

    # Only status changes left to drop: the oldest of them go.
    for i in range(12):
        spool.add(result(f"/new{i}", summary="s" * 500), type_name="disk")
    batch = spool.take_batch(100)
    assert batch is not None
    assert [r["target"] for r in batch.results] == [f"/new{i}" for i in range(2, 12)]
    assert spool.stats().dropped_size == 5


def test_a_batch_in_flight_is_dropped_only_as_a_whole_and_last(tmp_path: Path) -> None:
    one = _size_of_one(tmp_path)
    spool = Spool(tmp_path / "spool", max_bytes=4 * one + one // 2)
    for i in range(3):
        spool.add(result(f"/f{i}", summary="s" * 500), type_name="disk")
    in_flight = spool.take_batch(3)
    assert in_flight is not None
    spool.add(result("/a", summary="s" * 500), type_name="disk")
    spool.add(result("/b", summary="s" * 500), type_name="disk")  # over: /a goes, not /f*
    assert spool.take_batch(10) == in_flight
    assert spool.stats().dropped_size == 1
    for i in range(3):
        spool.add(result(f"/c{i}", summary="s" * 500), type_name="disk")
    assert spool.take_batch(10) == in_flight  # newer rows went instead
    assert spool.stats().dropped_size == 4
    spool.close()

    # Restarted with a smaller bound that the batch alone exceeds: it goes, as a whole.
    spool = Spool(tmp_path / "spool", max_bytes=2 * one + one // 2)
    spool.add(result("/d", summary="s" * 500), type_name="disk")
    stats = spool.stats()
    assert stats.in_flight == 0 and stats.bytes <= spool.max_bytes
    assert stats.dropped_size == 4 + 2 + 3  # /c2 and /d first, then the batch of three
    batch = spool.take_batch(10)
    assert batch is None or all(not r["target"].startswith("/f") for r in batch.results)


def test_split_and_reject_lose_nothing_silently(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(5):
        spool.add(result(f"/{i}"), type_name="disk")
    batch = spool.take_batch(10)
    assert batch is not None
    assert spool.split(batch.batch_id)
    first = spool.take_batch(10)
    assert first is not None and first.seqs == (1, 2) and first.batch_id != batch.batch_id
    assert spool.split(first.batch_id)
    single = spool.take_batch(10)
    assert single is not None and single.seqs == (1,)
    assert not spool.split(single.batch_id)
    assert spool.reject(single.batch_id, http_status=422, reason="results[0].status: bad") == 1
    assert spool.stats().rejected_total == 1 and len(spool) == 4
    rejected = spool.rejected()
    assert rejected[0]["result"]["seq"] == 1 and rejected[0]["http_status"] == 422
    rest = spool.take_batch(10)
    assert rest is not None and rest.seqs == (2, 3, 4, 5)  # released halves, oldest first


def test_concurrent_writers_get_unique_increasing_seqs(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    seqs: list[int] = []
    lock = threading.Lock()

    def write() -> None:
        for _ in range(50):
            seq = spool.add(result(), type_name="disk").seq
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 201))


def test_peek_stats_reads_a_spool_without_owning_it(tmp_path: Path) -> None:
    assert peek_stats(tmp_path) is None
    spool = Spool(tmp_path)
    spool.add(result(), type_name="disk")
    stats = peek_stats(tmp_path)
    assert stats is not None and stats.depth == 1 and stats.produced_total == 1
    spool.close()


WRITER = textwrap.dedent("""
    import sys
    from agent.spool import Spool
    from checks.result import CheckResult, Status
    spool = Spool(sys.argv[1])
    i = 0
    while True:
        i += 1
        done = spool.add(CheckResult("disk", f"/{i % 7}", Status(i % 4), "x" * 200),
                         type_name="disk")
        print(done.seq, done.id, flush=True)
""")


@pytest.mark.timeout(60)
def test_kill_9_loses_no_result_reported_as_produced(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert writer.stdout is not None
    reported: dict[int, str] = {}
    try:
        while len(reported) < 300:
            line = writer.stdout.readline()
            assert line, "the writer died"
            seq, result_id = line.split()
            reported[int(seq)] = result_id
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        writer.stdout.close()
    spool = Spool(tmp_path)
    batch = spool.take_batch(100_000)
    assert batch is not None
    stored = {r["seq"]: r["id"] for r in batch.results}
    assert {s: stored.get(s) for s in reported} == reported
    assert spool.stats().produced_total >= len(reported)
    assert batch.seqs == tuple(sorted(batch.seqs))
