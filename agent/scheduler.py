"""Runs the configured checks on their intervals, each in a worker thread of its own.

The runner owns failure. A check that raises yields UNKNOWN with the error class and
message in ``details``; one that exceeds its timeout yields UNKNOWN "timed out after Ns"
(its late results, should it ever finish, are discarded); one still running when its
next run is due is not started again and, once past its timeout, yields UNKNOWN
"previous run still going after Ns" for that due time. A failure result is reported for
each target the check reported on its last good run (so the collector sees the same
rows turn UNKNOWN), or for target ``""`` before any good run.

Threads, not asyncio: a check may block in a system call (``statvfs`` on a dead NFS
mount) and only a thread can be left behind while the others carry on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.config import CheckSpec
from checks.registry import CheckContext, CheckType
from checks.result import CheckResult, Status, unknown, worst

log = logging.getLogger(__name__)

AgentInfo = Callable[[], Mapping[str, Any]]


class ResultSink(Protocol):
    """Where finished results go (the spool in the daemon, a list for ``check``)."""

    def add(
        self,
        result: CheckResult,
        *,
        type_name: str,
        duration: float = 0.0,
        produced_at: float | None = None,
    ) -> object: ...


@dataclass
class Produced:
    """A result with what the runner knows about its run."""

    result: CheckResult
    type_name: str
    duration: float
    produced_at: float


@dataclass
class ListSink:
    """Collects results in memory, in the order they finished."""

    items: list[Produced] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        result: CheckResult,
        *,
        type_name: str,
        duration: float = 0.0,
        produced_at: float | None = None,
    ) -> object:
        """Keep one result."""
        with self._lock:
            self.items.append(Produced(result, type_name, duration, produced_at or time.time()))
        return None

    @property
    def results(self) -> list[CheckResult]:
        """The results alone."""
        with self._lock:
            return [p.result for p in self.items]


class CheckRunner:
    """One check instance: built on first run, run in a worker thread under its timeout."""

    def __init__(
        self,
        spec: CheckSpec,
        *,
        state_dir: Path,
        sink: ResultSink,
        agent_info: AgentInfo = lambda: {},
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._state_dir = state_dir
        self._sink = sink
        self._agent_info = agent_info
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._check: CheckType | None = None
        self._targets: tuple[str, ...] = ("",)
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._run_id = 0
        self._timed_out = False
        self.runs_started = 0
        self.on_finish: Callable[[], None] = lambda: None

    @property
    def running(self) -> bool:
        """Whether the last run's thread is still alive (even after its timeout)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def deadline(self) -> float | None:
        """When the current run times out, unless it already has or there is none."""
        with self._lock:
            if self._thread is None or self._timed_out or not self._thread.is_alive():
                return None
            return self._started_at + self.spec.timeout

    def start(self) -> bool:
        """Start a run in a new thread; False (and nothing started) if one is still going."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._run_id += 1
            self._started_at = self._clock()
            self._timed_out = False
            self.runs_started += 1
            self._thread = threading.Thread(
                target=self._work, args=(self._run_id,), daemon=True,
                name=f"check-{self.spec.name}",
            )
            self._thread.start()
            return True

    def check_deadline(self) -> None:
        """Report the current run as timed out if its deadline has passed."""
        now = self._clock()
        with self._lock:
            thread = self._thread
            if (thread is None or not thread.is_alive() or self._timed_out
                    or now < self._started_at + self.spec.timeout):
                return
            self._timed_out = True
            elapsed = now - self._started_at
        log.warning("check %s timed out after %.0fs", self.spec.name, elapsed)
        self._report_failure(f"timed out after {self.spec.timeout:g}s", elapsed,
                             timeout=self.spec.timeout)

    def report_still_running(self) -> None:
        """A run was due while the previous one is still going past its timeout."""
        elapsed = self._clock() - self._started_at
        if elapsed < self.spec.timeout:
            return
        log.warning("check %s: previous run still going after %.0fs, not started again",
                    self.spec.name, elapsed)
        self._report_failure(f"previous run still going after {elapsed:.0f}s", elapsed,
                             timeout=self.spec.timeout)

    def wait(self, timeout: float | None) -> bool:
        """Wait for the current run to end; True if it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _work(self, run_id: int) -> None:
        started = self._clock()
        failure: Exception | None = None
        results: list[CheckResult] = []
        try:
            results = self._run_check()
        except Exception as err:  # the runner owns failure: any error becomes UNKNOWN
            failure = err
        duration = self._clock() - started
        with self._lock:
            late = self._timed_out or run_id != self._run_id
        if late:
            log.warning("check %s finished after its timeout (%.1fs); its results are "
                        "discarded", self.spec.name, duration)
        elif failure is not None:
            log.warning("check %s failed: %s: %s", self.spec.name,
                        type(failure).__name__, failure)
            self._report_failure(
                f"{type(failure).__name__}: {failure}", duration,
                error_class=type(failure).__name__,
            )
        else:
            produced_at = self._wall_clock()
            for result in results:
                self._sink.add(result, type_name=self.spec.type_name, duration=duration,
                               produced_at=produced_at)
            if results:
                self._targets = tuple(dict.fromkeys(r.target for r in results))
        self.on_finish()

    def _run_check(self) -> list[CheckResult]:
        if self._check is None:
            context = CheckContext(
                name=self.spec.name,
                state_dir=self._state_dir,
                timeout=self.spec.timeout,
                clock=self._wall_clock,
                agent_info=self._agent_info,
            )
            self._check = self.spec.check_class(self.spec.config, context)
        results = self._check.run()
        if not isinstance(results, Iterable) or isinstance(results, str | bytes):
            raise TypeError(f"run() returned {type(results).__name__}, not a list of results")
        results = list(results)
        for r in results:
            if not isinstance(r, CheckResult):
                raise TypeError(f"run() returned a {type(r).__name__} among its results")
        return results

    def _report_failure(self, reason: str, duration: float, **details: Any) -> None:
        produced_at = self._wall_clock()
        for target in self._targets:
            self._sink.add(unknown(self.spec.name, target, reason, **details),
                           type_name=self.spec.type_name, duration=duration,
                           produced_at=produced_at)


class Scheduler:
    """Starts each check on its interval (plus jitter) until stopped."""

    def __init__(
        self,
        specs: Sequence[CheckSpec],
        *,
        state_dir: Path,
        sink: ResultSink,
        agent_info: AgentInfo = lambda: {},
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[float], float] = lambda bound: random.uniform(0.0, bound),
    ) -> None:
        self._clock = clock
        self._jitter = jitter
        self._wake = threading.Event()
        self._stopping = False
        self.runners = [
            CheckRunner(spec, state_dir=state_dir, sink=sink, agent_info=agent_info,
                        clock=clock, wall_clock=wall_clock)
            for spec in specs if spec.enabled
        ]
        for runner in self.runners:
            runner.on_finish = self._wake.set

    def run(self) -> None:
        """Schedule until ``stop()``; each check's first run starts within its jitter."""
        now = self._clock()
        base = {id(r): now for r in self.runners}
        due = {id(r): now + self._jitter(r.spec.jitter) for r in self.runners}
        while not self._stopping:
            now = self._clock()
            for runner in self.runners:
                runner.check_deadline()
                key = id(runner)
                if now >= due[key]:
                    if not runner.start():
                        runner.report_still_running()
                    interval = runner.spec.interval
                    # Keep the cadence: skip due times already missed instead of bunching.
                    while base[key] <= now:
                        base[key] += interval
                    due[key] = base[key] + self._jitter(runner.spec.jitter)
            wakeups = [*due.values()]
            wakeups += [d for r in self.runners if (d := r.deadline) is not None]
            delay = min(wakeups, default=now + 60.0) - self._clock()
            self._wake.wait(max(0.0, min(delay, 60.0)))
            self._wake.clear()

    def stop(self) -> None:
        """Stop starting checks; runs in progress finish (or are left behind) on their own."""
        self._stopping = True
        self._wake.set()


def run_once(
    specs: Iterable[CheckSpec],
    *,
    state_dir: Path,
    agent_info: AgentInfo = lambda: {},
    clock: Callable[[], float] = time.monotonic,
) -> list[Produced]:
    """Run each check once, all in parallel, each under its timeout; results in spec order."""
    sinks: list[ListSink] = []
    runners: list[CheckRunner] = []
    for spec in specs:
        sink = ListSink()
        runner = CheckRunner(spec, state_dir=state_dir, sink=sink, agent_info=agent_info,
                             clock=clock)
        sinks.append(sink)
        runners.append(runner)
        runner.start()
    for runner in runners:
        deadline = runner.deadline
        if deadline is not None:
            runner.wait(max(0.0, deadline - clock()))
        runner.check_deadline()
    return [item for sink in sinks for item in sink.items]


def exit_status(produced: Iterable[Produced]) -> Status:
    """The worst status, as a Nagios plugin exits (see ``checks.result.worst``)."""
    return worst(p.result.status for p in produced)
