from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.config import CheckSpec
from agent.scheduler import ListSink, Scheduler, run_once
from checks.result import Status
from tests.agent import fakes
from tests.agent.fakes import FakeCheck, FakeConfig


def spec(name: str, *, interval: float = 0.2, timeout: float = 5.0, **config: object) -> CheckSpec:
    return CheckSpec(name, "fake", FakeCheck, FakeConfig(**config),  # type: ignore[arg-type]
                     interval=interval, timeout=timeout, jitter=0.0)


def run_for(seconds: float, scheduler: Scheduler) -> None:
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    scheduler.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_a_hung_check_does_not_delay_the_others(tmp_path: Path) -> None:
    sink = ListSink()
    scheduler = Scheduler(
        [spec("fast", interval=0.2), spec("hung", interval=0.2, timeout=0.5, sleep=60)],
        state_dir=tmp_path, sink=sink,
    )
    run_for(2.1, scheduler)
    starts = fakes.STARTS["fast"]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) >= 10
    assert max(gaps) < 0.3, gaps  # cadence kept while "hung" blocks its own thread
    assert sum(gaps) / len(gaps) == pytest.approx(0.2, abs=0.03)
    fast = [r for r in sink.results if r.check == "fast"]
    assert len(fast) >= 10 and all(r.status is Status.OK for r in fast)


def test_a_check_over_its_timeout_is_unknown_and_never_started_twice(tmp_path: Path) -> None:
    sink = ListSink()
    scheduler = Scheduler([spec("hung", interval=0.2, timeout=0.5, sleep=60)],
                          state_dir=tmp_path, sink=sink)
    run_for(1.3, scheduler)
    assert scheduler.runners[0].runs_started == 1
    assert len(fakes.STARTS["hung"]) == 1
    results = sink.results
    assert all(r.status is Status.UNKNOWN and r.check == "hung" for r in results)
    assert results[0].summary == "timed out after 0.5s"
    assert results[0].target == ""
    assert results[0].details["timeout"] == 0.5
    still = [r.summary for r in results[1:]]
    assert still and all(s.startswith("previous run still going after") for s in still)
    # One result per due time (0.6, 0.8, 1.0, 1.2 s), not a flood.
    assert 2 <= len(still) <= 5


def test_a_check_that_raises_is_unknown_with_the_error(tmp_path: Path) -> None:
    produced = run_once([spec("broken", fail="statvfs blew up")], state_dir=tmp_path)
    assert len(produced) == 1
    failure = produced[0].result
    assert failure.status is Status.UNKNOWN
    assert failure.summary == "RuntimeError: statvfs blew up"
    assert failure.details["error_class"] == "RuntimeError"
    assert "statvfs blew up" in failure.details["error"]


def test_failures_after_a_good_run_are_reported_per_known_target(tmp_path: Path) -> None:
    sink = ListSink()
    scheduler = Scheduler([spec("disk", targets=("/", "/var"), fail="mount gone", good_runs=1)],
                          state_dir=tmp_path, sink=sink)
    runner = scheduler.runners[0]
    runner.start()
    assert runner.wait(5)
    runner.start()
    assert runner.wait(5)
    time.sleep(0.05)
    assert [(r.target, r.status.name) for r in sink.results] == [
        ("/", "OK"), ("/var", "OK"), ("/", "UNKNOWN"), ("/var", "UNKNOWN")]


def test_run_once_runs_in_parallel_under_timeouts(tmp_path: Path) -> None:
    started = time.monotonic()
    produced = run_once(
        [spec("slow", timeout=0.5, sleep=60), spec("warn", status="warning"),
         spec("crit", status="critical", targets=("/a", "/b"))],
        state_dir=tmp_path,
    )
    assert time.monotonic() - started < 2.0
    assert [(p.result.check, p.result.target, p.result.status.name) for p in produced] == [
        ("slow", "", "UNKNOWN"), ("warn", "/", "WARNING"),
        ("crit", "/a", "CRITICAL"), ("crit", "/b", "CRITICAL")]


def test_jitter_delays_each_start_within_its_bound(tmp_path: Path) -> None:
    sink = ListSink()
    delays: list[float] = []

    def jitter(bound: float) -> float:
        delays.append(bound)
        return bound

    jittered = CheckSpec("j", "fake", FakeCheck, FakeConfig(), interval=0.3, timeout=1.0,
                         jitter=0.1)
    scheduler = Scheduler([jittered], state_dir=tmp_path, sink=sink, jitter=jitter)
    t0 = time.monotonic()
    run_for(1.0, scheduler)
    starts = [s - t0 for s in fakes.STARTS["j"]]
    assert delays and set(delays) == {0.1}
    assert starts[0] == pytest.approx(0.1, abs=0.05)
    assert [round(b - a, 1) for a, b in zip(starts, starts[1:], strict=False)] == [0.3] * (
        len(starts) - 1)
