"""The agent's own Prometheus endpoint: ``GET /metrics`` when ``[metrics] listen`` is set.

Imported by ``run`` only when the endpoint is configured, so an agent without it carries
none of this. No client library: the text exposition format (version 0.0.4) is written
here, and a small socket loop in one daemon thread serves it (``agent.metrics_server``).

What it shows:

- the latest result of every check and target (status, each metric with its unit in a
  label), the duration and time of each check's last run, kept by ``LatestResults``, the
  result sink the scheduler writes to (it passes every result on to the spool first);
- the agent's own figures: spool depth, bytes and oldest age, results produced, sent,
  dropped and refused, failed pushes, start time and version.

A scrape takes no lock that a check or the sender waits on: the latest results are
immutable snapshots swapped in whole, the spool figures come from a read-only connection
of their own (the spool is in WAL mode, so readers and the writer do not block each other),
and the sender's counters are plain integers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent import __version__
from agent.metrics_server import MetricsServer
from agent.scheduler import ResultSink
from agent.spool import SpoolStats, peek_stats
from checks.result import CheckResult

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- the latest results ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latest:
    """The last result of one check and target."""

    result: CheckResult
    type_name: str
    produced_at: float
    run: int


@dataclass(frozen=True, slots=True)
class CheckRuns:
    """What one check reported in its latest runs; replaced whole, never changed."""

    type_name: str
    run: int
    last_run_at: float
    duration: float
    targets: Mapping[str, Latest]


class LatestResults:
    """A result sink that keeps the latest result of each check and target.

    Every result goes to ``inner`` (the spool) first; only a result the spool took is kept
    here. A target the check no longer reports (an unmounted disk) is forgotten once it
    was in neither of the check's last two runs. Readers get immutable snapshots and
    never wait: the lock here is only between the check threads that write.
    """

    def __init__(self, inner: ResultSink, clock: Callable[[], float] = time.time) -> None:
        self._inner = inner
        self._clock = clock
        self._write_lock = threading.Lock()
        self._checks: dict[str, CheckRuns] = {}

    def add(
        self,
        result: CheckResult,
        *,
        type_name: str,
        duration: float = 0.0,
        produced_at: float | None = None,
    ) -> object:
        """Pass ``result`` on to the inner sink, then remember it."""
        done = self._inner.add(result, type_name=type_name, duration=duration,
                               produced_at=produced_at)
        when = self._clock() if produced_at is None else produced_at
        with self._write_lock:
            runs = self._checks.get(result.check)
            # The results of one run share their production time; another time is a new run
            # (compared for equality: the wall clock may be stepped back).
            if runs is None or when != runs.last_run_at:
                run = 1 if runs is None else runs.run + 1
                # Keep the targets of the run before until this run has reported them.
                kept = {} if runs is None else {
                    t: item for t, item in runs.targets.items() if item.run >= runs.run
                }
                kept[result.target] = Latest(result, type_name, when, run)
                runs = CheckRuns(type_name, run, when, duration, kept)
            else:
                targets = dict(runs.targets)
                targets[result.target] = Latest(result, type_name, when, runs.run)
                runs = CheckRuns(type_name, runs.run, when, runs.duration, targets)
            self._checks[result.check] = runs
        return done

    def snapshot(self) -> dict[str, CheckRuns]:
        """The checks' latest runs, by check name; safe to read while checks write."""
        return self._checks.copy()


# -- the exposition --------------------------------------------------------------------------


class SenderFigures(Protocol):
    """The sender's counters (``agent.sender.SenderStats``)."""

    send_failures_total: int
    pushes_ok_total: int
    results_sent_total: int
    last_push_ok_at: float | None


@dataclass(frozen=True)
class Sources:
    """Where a scrape reads its figures from."""

    latest: LatestResults
    spool_stats: Callable[[], SpoolStats | None]
    sender_stats: Callable[[], SenderFigures | None]
    started_at: float
    version: str = __version__


class Exposition:
    """Builds the text format: each family once, with its HELP and TYPE lines."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        """One metric family; written only when it has samples."""
        rows = [f"{name}{_labels(labels)} {_value(value)}" for labels, value in samples]
        if not rows:
            return
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        self._lines.extend(rows)

    def text(self) -> str:
        """The whole exposition, newline-terminated."""
        return "\n".join(self._lines) + "\n"


def render(sources: Sources) -> str:
    """The exposition of one scrape."""
    out = Exposition()
    _render_checks(out, sources.latest.snapshot())
    _render_agent(out, sources)
    return out.text()


def _render_checks(out: Exposition, checks: Mapping[str, CheckRuns]) -> None:
    status: list[tuple[Mapping[str, str], float]] = []
    values: dict[tuple[str, str, str, str], float] = {}
    durations: list[tuple[Mapping[str, str], float]] = []
    last_run: list[tuple[Mapping[str, str], float]] = []
    for check in sorted(checks):
        runs = checks[check]
        durations.append(({"check": check}, runs.duration))
        last_run.append(({"check": check}, runs.last_run_at))
        for target in sorted(runs.targets):
            item = runs.targets[target]
            status.append(({"check": check, "target": target, "type": item.type_name},
                           float(int(item.result.status))))
            for metric in item.result.metrics:
                # A name reported twice in one result would be a duplicate series: last wins.
                values[(check, target, metric.name, metric.unit)] = metric.value
    out.family("watchkeeper_agent_check_status", "gauge",
               "Latest status of a check and target: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
               status)
    out.family("watchkeeper_agent_check_metric", "gauge",
               "Latest value of a metric a check reported, in the unit of the unit label.",
               (({"check": c, "target": t, "metric": m, "unit": u}, v)
                for (c, t, m, u), v in values.items()))
    out.family("watchkeeper_agent_check_duration_seconds", "gauge",
               "How long the latest run of a check took.", durations)
    out.family("watchkeeper_agent_check_last_run_timestamp_seconds", "gauge",
               "When the latest run of a check produced its results (Unix time).", last_run)


_SPOOL_FAMILIES = (
    ("watchkeeper_agent_spool_results", "gauge",
     "Results in the spool, not yet stored by the collector.", "depth"),
    ("watchkeeper_agent_spool_bytes", "gauge",
     "Size of the results in the spool (their JSON).", "bytes"),
    ("watchkeeper_agent_spool_oldest_age_seconds", "gauge",
     "Age of the oldest result in the spool; 0 when the spool is empty.", "oldest_age"),
    ("watchkeeper_agent_results_produced_total", "counter",
     "Results the checks produced and the spool stored.", "produced_total"),
    ("watchkeeper_agent_results_rejected_total", "counter",
     "Results the collector refused for good (kept in the spool's rejected table).",
     "rejected_total"),
)
_SENDER_FAMILIES = (
    ("watchkeeper_agent_results_sent_total", "counter",
     "Results the collector stored (answered 202) since the agent started.",
     "results_sent_total"),
    ("watchkeeper_agent_pushes_total", "counter",
     "Pushes the collector stored since the agent started.", "pushes_ok_total"),
    ("watchkeeper_agent_send_failures_total", "counter",
     "Pushes that failed (connection error, timeout or an answer other than 202) since the "
     "agent started.", "send_failures_total"),
    ("watchkeeper_agent_last_push_success_timestamp_seconds", "gauge",
     "When the collector last stored a push (Unix time).", "last_push_ok_at"),
)


def _render_agent(out: Exposition, sources: Sources) -> None:
    out.family("watchkeeper_agent_info", "gauge", "The agent's version; always 1.",
               [({"version": sources.version}, 1.0)])
    out.family("watchkeeper_agent_start_time_seconds", "gauge",
               "When the agent started (Unix time).", [({}, sources.started_at)])
    spool = _quietly(sources.spool_stats, "the spool figures")
    if spool is not None:
        for name, kind, help_text, field in _SPOOL_FAMILIES:
            out.family(name, kind, help_text, [({}, getattr(spool, field) or 0)])
        out.family("watchkeeper_agent_results_dropped_total", "counter",
                   "Results the spool dropped unsent, by reason (age: older than max_age; "
                   "size: over max_bytes).",
                   [({"reason": "age"}, spool.dropped_age),
                    ({"reason": "size"}, spool.dropped_size)])
    sender = _quietly(sources.sender_stats, "the sender figures")
    if sender is not None:
        for name, kind, help_text, field in _SENDER_FAMILIES:
            value = getattr(sender, field)
            # No push stored yet: no timestamp rather than 1970.
            out.family(name, kind, help_text, [] if value is None else [({}, value)])


def _quietly(source: Callable[[], Any], what: str) -> Any:
    try:
        return source()
    except Exception as err:  # a scrape shows what it can; the rest is logged
        log.warning("metrics: cannot read %s: %s: %s", what, type(err).__name__, err)
        return None


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


# -- wiring ----------------------------------------------------------------------------------


def start_endpoint(
    address: tuple[str, int],
    *,
    spool: ResultSink,
    spool_dir: Path,
    sender_stats: Callable[[], SenderFigures | None],
    started_at: float,
) -> tuple[LatestResults, MetricsServer]:
    """Listen on ``address`` and serve; returns the sink the scheduler is to write to.

    Raises ``OSError`` when the address cannot be listened on (in use, not local).
    """
    latest = LatestResults(spool)
    sources = Sources(latest=latest, spool_stats=lambda: peek_stats(spool_dir),
                      sender_stats=sender_stats, started_at=started_at)
    server = MetricsServer(address, lambda: render(sources), content_type=CONTENT_TYPE)
    server.start()
    bound = server.address
    log.info("metrics endpoint listening on http://%s/metrics",
             f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}")
    return latest, server
