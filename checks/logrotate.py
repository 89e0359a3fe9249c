"""The ``logrotate`` check: proves on disk that every configured log really rotates.

Collect, then judge. ``LogrotateCheck.run`` reads logrotate's configuration (with its
includes) and its state file, expands each block's paths, and gathers for every log the
live file's size and the rotated files beside it (or in ``olddir``), newest first; it
also walks the watched directories for big files no block covers. ``evaluate`` turns
those facts into results without any I/O. The state file alone is not trusted: logrotate
writes the date of a rotation even when the rotation then failed, so a rotation counts
only when a rotated file on disk backs it. Reference and reasoning: docs/checks/logrotate.md.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from checks.config import Bytes, ConfigError, Seconds
from checks.logrotate_conf import (
    COMPRESSION_EXTENSIONS,
    DAY,
    Block,
    ConfigProblem,
    LogSettings,
    parse_config,
    parse_state,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown, worst
from checks.statefile import write_json

MiB = 1024 * 1024
DEFAULT_STATE_FILES = ("/var/lib/logrotate/status", "/var/lib/logrotate/logrotate.status")
MAX_SLACK = 12 * 3600.0
MAX_PROBLEMS = 10


@dataclass(frozen=True)
class LogrotateConfig:
    """``[checks.<name>]`` of type ``logrotate``; keys and defaults in docs/checks/logrotate.md."""

    config_file: str = "/etc/logrotate.conf"
    state_file: str | None = None
    slack: Seconds | None = None
    critical_periods: float = 3.0
    state_max_age: Seconds | None = None
    watch_dirs: tuple[str, ...] = ("/var/log",)
    watch_depth: int = 3
    uncovered_min_size: Bytes = Bytes(100 * MiB)
    uncovered_exclude: tuple[str, ...] = ("*/journal/*", "*/lastlog", "*/faillog", "*.journal")
    max_logs_per_pattern: int = 50
    max_walk_entries: int = 20_000

    def __post_init__(self) -> None:
        if not self.config_file:
            raise ConfigError("config_file", "must name logrotate's main configuration file")
        if not os.path.isabs(self.config_file):
            raise ConfigError("config_file", f"must be an absolute path, got {self.config_file!r}")
        if self.state_file == "":
            raise ConfigError("state_file", "must be a path, or left out to find it")
        if self.state_file is not None and not os.path.isabs(self.state_file):
            raise ConfigError("state_file", f"must be an absolute path, got {self.state_file!r}")
        if self.critical_periods < 1:
            raise ConfigError("critical_periods", "must be at least 1 (one missed period)")
        if self.state_max_age is not None and self.state_max_age <= 0:
            raise ConfigError("state_max_age", "must be more than 0 seconds")
        if self.watch_depth < 0:
            raise ConfigError("watch_depth", "must not be negative")
        if self.max_logs_per_pattern < 1:
            raise ConfigError("max_logs_per_pattern", "must be at least 1")
        if self.max_walk_entries < 1:
            raise ConfigError("max_walk_entries", "must be at least 1")
        if any(not os.path.isabs(d) for d in self.watch_dirs):
            raise ConfigError("watch_dirs", "every directory must be an absolute path")


class Condition(StrEnum):
    """The worst reason of a log's result; the collector maps it to a priority."""

    OK = "ok"
    FAILED = "failed_rotation"
    OVERDUE = "not_rotated"
    UNCOMPRESSED = "uncompressed"
    OVERSIZE = "oversize"
    MISSING = "missing"
    ABSENT_OK = "absent_missingok"


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class RotatedFile:
    """One rotated version of a log (``app.log.1``, ``app.log.2.gz``, ``app.log-20261120``)."""

    path: str
    mtime: float
    size: int
    compressed: bool
    inode: int = 0


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What is on disk for one configured log, and what the state file says of it."""

    path: str
    pattern: str
    settings: LogSettings
    exists: bool
    size: int = 0
    mtime: float | None = None
    rotated: tuple[RotatedFile, ...] = ()
    """Newest first (by mtime, then by rotation number)."""
    state_time: float | None = None
    error: str = ""
    previous: Seen | None = None
    """What the previous run of this check saw of the log (from its small history)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """The newest rotated file of a log at one run of the check."""

    at: float
    inode: int


@dataclass(frozen=True, slots=True)
class StateFacts:
    """The state file: where it is, when logrotate last wrote it, how many logs it lists."""

    path: str
    mtime: float | None
    entries: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class UncoveredLog:
    """A big file in a watched directory that no logrotate block covers."""

    path: str
    size: int


@dataclass(frozen=True)
class Facts:
    """Everything one run gathered."""

    logs: Sequence[LogFacts]
    state: StateFacts
    uncovered: Sequence[UncoveredLog] = ()
    problems: Sequence[ConfigProblem] = ()
    walk_note: str = ""
    config_error: str = ""


# ---------------------------------------------------------------------------- judgement


def slack_for(config: LogrotateConfig, period: float | None) -> float:
    """Allowed lateness: the configured slack, else half the period capped at 12 hours."""
    if config.slack is not None:
        return float(config.slack)
    if period is None:
        return MAX_SLACK
    return min(period / 2, MAX_SLACK)


def state_limits(config: LogrotateConfig, logs: Sequence[LogFacts]) -> tuple[float, float]:
    """(warn, crit) age of the state file: logrotate runs at least daily, hourly if needed."""
    periods = [lg.settings.period for lg in logs if lg.settings.period is not None]
    run_every = min([DAY, *periods])
    slack = slack_for(config, run_every)
    warn = float(config.state_max_age) if config.state_max_age is not None else run_every + slack
    crit = max(warn, config.critical_periods * run_every + slack)
    return warn, crit


def evaluate(
    config: LogrotateConfig, facts: Facts, now: float, *, check: str
) -> list[CheckResult]:
    """Results for the state file, each log (capped per pattern) and the uncovered logs."""
    if facts.config_error:
        return [unknown(check, config.config_file, facts.config_error)]
    results = [evaluate_state(config, facts.state, facts.logs, now, check=check)]
    shown = facts.problems[:MAX_PROBLEMS]
    results.extend(
        unknown(check, p.source, f"logrotate config: {p.message}", source=p.source)
        for p in shown
    )
    if len(facts.problems) > len(shown):
        rest = facts.problems[len(shown):]
        results.append(unknown(
            check, config.config_file,
            f"logrotate config: {len(rest)} more problems, first at {rest[0].source}",
            problems=[f"{p.source}: {p.message}" for p in rest[:20]],
        ))
    by_pattern: dict[str, list[CheckResult]] = {}
    for log in facts.logs:
        by_pattern.setdefault(log.pattern, []).append(evaluate_log(config, log, now, check=check))
    for pattern, found in by_pattern.items():
        results.extend(_capped(pattern, found, config.max_logs_per_pattern, check))
    results.append(evaluate_uncovered(config, facts.uncovered, facts.walk_note, check=check))
    return results


def _capped(
    pattern: str, found: list[CheckResult], limit: int, check: str
) -> list[CheckResult]:
    if len(found) <= limit:
        return found
    ordered = sorted(found, key=lambda r: (-r.status.severity, r.target))
    shown, rest = ordered[: limit - 1], ordered[limit - 1:]
    counts: dict[str, int] = {}
    for r in rest:
        counts[r.status.name.lower()] = counts.get(r.status.name.lower(), 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    summary = f"{len(rest)} more logs of {_short(pattern)}: {tally}"
    details = {
        "pattern": pattern,
        "counts": counts,
        "examples": [r.target for r in rest[:10]],
        "matched": len(found),
    }
    status = worst(r.status for r in rest)
    return [*shown, CheckResult(check, pattern, status, summary[:200], (), details)]


def evaluate_state(
    config: LogrotateConfig,
    state: StateFacts,
    logs: Sequence[LogFacts],
    now: float,
    *,
    check: str,
) -> CheckResult:
    """Does logrotate run at all: the state file is rewritten on every run."""
    if state.error or state.mtime is None:
        return unknown(check, state.path or "state file", state.error or "state file not found")
    warn, crit = state_limits(config, logs)
    age = max(0.0, now - state.mtime)
    metric = Metric("state_age_seconds", round(age), "s", warn, crit, 0)
    details = {"entries": state.entries, "state_mtime": state.mtime}
    if age > crit:
        status = Status.CRITICAL
    elif age > warn:
        status = Status.WARNING
    else:
        status = Status.OK
    if status is Status.OK:
        summary = f"logrotate ran {format_age(age)} ago ({state.entries} logs in state)"
    else:
        summary = f"logrotate has not run for {format_age(age)} (state file {_short(state.path)})"
    return CheckResult(check, state.path, status, summary, (metric,), details)


def evaluate_log(
    config: LogrotateConfig, log: LogFacts, now: float, *, check: str
) -> CheckResult:
    """Judge one log: failed rotation, overdue, uncompressed, oversize, missing."""
    s = log.settings
    period = s.period
    slack = slack_for(config, period)
    warn_age = (period or 0.0) + slack
    crit_age = config.critical_periods * (period or 0.0) + slack
    details: dict[str, Any] = {
        "pattern": log.pattern,
        "criterion": s.period_name,
        "rotate": s.rotate,
        "rotated_files": len(log.rotated),
    }
    if log.error:
        return unknown(check, log.path, log.error, **details)
    if not log.exists:
        if s.missingok:
            details["condition"] = Condition.ABSENT_OK
            return CheckResult(check, log.path, Status.OK,
                               f"{_short(log.path)} absent (missingok)", (), details)
        details["condition"] = Condition.MISSING
        return CheckResult(check, log.path, Status.WARNING,
                           f"{_short(log.path)} missing and not missingok", (), details)

    newest = log.rotated[0] if log.rotated else None
    evidence = newest.mtime if newest else None
    state = log.state_time
    if newest is not None:
        details["newest_rotated"] = newest.path
        details["newest_rotated_mtime"] = newest.mtime
    if state is not None:
        details["state_says_rotated"] = state

    reasons: list[tuple[Status, Condition, str]] = []
    metrics: list[Metric] = [Metric("size_bytes", log.size, "B", s.maxsize, min=0)]
    empty = log.size == 0
    below_minsize = s.minsize is not None and log.size < s.minsize
    verifiable = s.rotate != 0

    # The state file claims a rotation at `state`; a real one leaves a rotated file whose
    # mtime (its last write as a live log) is at most one period before it.
    contradicted = (
        verifiable
        and state is not None
        and newest is not None
        and evidence is not None
        and state - evidence > warn_age
        and not _new_rotated_since(log.previous, newest, state)
    )
    if contradicted and state is not None and evidence is not None:
        reasons.append((
            Status.CRITICAL, Condition.FAILED,
            f"{_short(log.path)} rotation failing: state says {format_age(now - state)} ago, "
            f"newest rotated is {format_age(now - evidence)} old",
        ))

    last_rotation: float | None = evidence
    if state is not None and evidence is not None and not contradicted:
        last_rotation = max(evidence, state)
    if verifiable and period is not None and last_rotation is not None:
        age = max(0.0, now - last_rotation)
        metrics.append(Metric("rotation_age_seconds", round(age), "s", warn_age, crit_age, 0))
        details["rotation_age_seconds"] = round(age)
        if age > warn_age and not empty and not below_minsize and not contradicted:
            status = Status.CRITICAL if age > crit_age else Status.WARNING
            reasons.append((status, Condition.OVERDUE,
                            f"{_short(log.path)} not rotated for {format_age(age)} "
                            f"({s.period_name})"))
    elif verifiable and period is not None and state is not None and newest is None:
        # Known to logrotate but never rotated: fine while logrotate could not have yet.
        age = max(0.0, now - state)
        if age > warn_age and not empty and not below_minsize:
            status = Status.CRITICAL if age > crit_age else Status.WARNING
            reasons.append((status, Condition.OVERDUE,
                            f"{_short(log.path)} never rotated, known to logrotate for "
                            f"{format_age(age)} ({s.period_name})"))

    if s.compress:
        candidates = list(log.rotated)
        if s.delaycompress and candidates:
            candidates = candidates[1:]
        plain = [r for r in candidates if not r.compressed]
        metrics.append(Metric("uncompressed_rotated", len(plain), "", min=0))
        if plain:
            details["uncompressed"] = [r.path for r in plain[:5]]
            reasons.append((Status.WARNING, Condition.UNCOMPRESSED,
                            f"{_short(log.path)}: {len(plain)} rotated file(s) not compressed, "
                            f"e.g. {os.path.basename(plain[0].path)}"))

    limit, limit_name = (s.maxsize, "maxsize") if s.maxsize is not None else (None, "")
    if limit is None and period is None and s.size is not None:
        limit, limit_name = s.size, "size"
    if limit is not None and log.size > limit:
        details["size_limit"] = limit
        reasons.append((Status.WARNING, Condition.OVERSIZE,
                        f"{_short(log.path)} is {format_bytes(log.size)}, over {limit_name} "
                        f"{format_bytes(limit)}"))

    metrics.append(Metric("rotated_files", len(log.rotated), "", min=0))
    if not reasons:
        details["condition"] = Condition.OK
        return CheckResult(check, log.path, Status.OK, _ok_summary(log, now, last_rotation),
                           tuple(metrics), details)
    status = worst(r[0] for r in reasons)
    first = next(r for r in reasons if r[0] is status)
    details["condition"] = first[1]
    details["problems"] = [r[2] for r in reasons]
    summary = first[2] if len(reasons) == 1 else f"{first[2]} (+{len(reasons) - 1} more)"
    return CheckResult(check, log.path, status, summary[:200], tuple(metrics), details)


def _new_rotated_since(previous: Seen | None, newest: RotatedFile, state: float) -> bool:
    """A rotated file appeared after the previous run and before the claimed rotation.

    A quiet log rotated after logrotate was down keeps its old mtime in the rotated file;
    a new inode since the previous look is the proof that the rotation did happen.
    """
    # The state file has whole seconds: a look in the same second still came before.
    return (previous is not None and previous.at < state + 1.0
            and previous.inode != newest.inode)


def _ok_summary(log: LogFacts, now: float, last_rotation: float | None) -> str:
    s = log.settings
    where = _short(log.path)
    if s.rotate == 0:
        return f"{where} {format_bytes(log.size)}, rotate 0 keeps no rotated file to check"
    if last_rotation is None:
        return f"{where} {format_bytes(log.size)}, not rotated yet ({s.period_name})"
    return (f"{where} rotated {format_age(max(0.0, now - last_rotation))} ago "
            f"({s.period_name}), {format_bytes(log.size)}")


def evaluate_uncovered(
    config: LogrotateConfig, uncovered: Sequence[UncoveredLog], walk_note: str, *, check: str
) -> CheckResult:
    """One result for every big file in the watched directories that no block covers."""
    target = "uncovered:" + ",".join(config.watch_dirs)
    threshold = int(config.uncovered_min_size)
    ordered = sorted(uncovered, key=lambda u: (-u.size, u.path))
    details: dict[str, Any] = {
        "watch_dirs": list(config.watch_dirs),
        "min_size": threshold,
        "uncovered": [{"path": u.path, "size": u.size} for u in ordered[:20]],
        "count": len(ordered),
    }
    if walk_note:
        details["walk_note"] = walk_note
    metric = Metric("uncovered_logs", len(ordered), "", 0.5, min=0)
    if not ordered:
        summary = f"no log over {format_bytes(threshold)} outside logrotate's care"
        return CheckResult(check, target, Status.OK, summary, (metric,), details)
    top = ordered[0]
    more = f" (+{len(ordered) - 1} more)" if len(ordered) > 1 else ""
    summary = f"{_short(top.path)} ({format_bytes(top.size)}) not covered by logrotate{more}"
    return CheckResult(check, target, Status.WARNING, summary[:200], (metric,), details)


def format_age(seconds: float) -> str:
    """A coarse age for summaries: 45s, 12m, 5.5h, 9 days."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.0f} days" if seconds >= 10 * DAY else f"{seconds / DAY:.1f} days"


def format_bytes(value: float) -> str:
    """Binary units: 512 B, 8.1 MiB, 120 MiB."""
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(number) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{number:.0f} B"
            return f"{number:.1f} {unit}" if abs(number) < 10 else f"{number:.0f} {unit}"
        number /= 1024
    raise AssertionError("unreachable")


def _short(path: str, limit: int = 48) -> str:
    path = path.translate({9: "\\t", 10: "\\n", 13: "\\r"})
    return path if len(path) <= limit else "..." + path[-(limit - 3):]


# ---------------------------------------------------------------------------- collection

# What follows a log's name in a rotated file: ".1" or a dateext suffix ("-20261126",
# "-2026-11-26", "-20261126-1732582000", "_2026112614").
_ROTATION_SUFFIX = re.compile(r"^(?P<base>.+?)(?:\.(?P<number>\d{1,6})|[-_.]\d{4}[\d\-_.:]*)$")


def split_rotated(name: str, extra_extensions: Iterable[str] = ()) -> tuple[str, int, bool] | None:
    """(log name, rotation number or 0, compressed) of a rotated file name, else None."""
    compressed = False
    for ext in (*extra_extensions, *COMPRESSION_EXTENSIONS):
        if ext and name.endswith(ext) and len(name) > len(ext):
            name, compressed = name[: -len(ext)], True
            break
    m = _ROTATION_SUFFIX.match(name)
    if not m:
        return None
    number = int(m.group("number")) if m.group("number") else 0
    return m.group("base"), number, compressed


class _DirectoryIndex:
    """Rotated files per (directory, log name), one listing per directory and run."""

    def __init__(self, extra_extensions: Sequence[str]) -> None:
        self.extra = tuple(extra_extensions)
        self.listings: dict[str, dict[str, list[tuple[str, int, bool]]]] = {}

    def rotated(self, directory: str, base: str) -> list[tuple[str, int, bool]]:
        listing = self.listings.get(directory)
        if listing is None:
            listing = {}
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            for name in names:
                parts = split_rotated(name, self.extra)
                if parts is not None:
                    listing.setdefault(parts[0], []).append((name, parts[1], parts[2]))
            self.listings[directory] = listing
        return listing.get(base, [])


def expand_pattern(pattern: str) -> list[str]:
    """The files a block's path names: itself when literal, the glob's matches otherwise."""
    if not glob.has_magic(pattern):
        return [pattern]
    matches = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    names = {os.path.basename(p) for p in matches}
    kept = []
    for path in matches:
        parts = split_rotated(os.path.basename(path))
        if parts is not None and parts[0] in names:
            continue  # a rotated sibling the glob also caught (logrotate would re-rotate it)
        kept.append(path)
    return kept


def olddir_of(log_path: str, settings: LogSettings) -> str:
    """Where the rotated files of ``log_path`` live."""
    directory = os.path.dirname(log_path)
    if settings.olddir is None:
        return directory
    return settings.olddir if os.path.isabs(settings.olddir) else os.path.join(
        directory, settings.olddir)


def collect_log(
    path: str,
    pattern: str,
    settings: LogSettings,
    state: dict[str, float],
    index: _DirectoryIndex,
) -> LogFacts:
    """Stat the live log and find its rotated siblings."""
    state_time = state.get(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return LogFacts(path, pattern, settings, exists=False, state_time=state_time)
    except OSError as err:
        return LogFacts(path, pattern, settings, exists=False, state_time=state_time,
                        error=f"cannot stat {path}: {err.strerror or err}")
    directory = olddir_of(path, settings)
    compressed_ext = settings.compressed_extension
    rotated: list[tuple[float, int, RotatedFile]] = []
    for name, number, compressed in index.rotated(directory, os.path.basename(path)):
        full = os.path.join(directory, name)
        try:
            rst = os.stat(full)
        except OSError:
            continue
        is_compressed = compressed or name.endswith(compressed_ext)
        rotated.append((-rst.st_mtime, number, RotatedFile(
            full, rst.st_mtime, rst.st_size, is_compressed, rst.st_ino)))
    rotated.sort(key=lambda item: (item[0], item[1]))
    return LogFacts(
        path, pattern, settings, exists=True, size=st.st_size, mtime=st.st_mtime,
        rotated=tuple(r for _, _, r in rotated), state_time=state_time,
    )


def read_state(path: str | None) -> tuple[StateFacts, dict[str, float]]:
    """The state file's facts and entries; the first default that exists when not given."""
    candidates = [path] if path else list(DEFAULT_STATE_FILES)
    chosen = next((c for c in candidates if os.path.exists(c)), None)
    if chosen is None:
        shown = " or ".join(candidates)
        return StateFacts(candidates[0], None, error=(
            f"state file {shown} not found: logrotate never ran, or state_file is wrong")), {}
    try:
        with open(chosen, encoding="utf-8", errors="replace") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            text = handle.read()
    except OSError as err:
        return StateFacts(chosen, None, error=f"cannot read {chosen}: {err.strerror or err}"), {}
    entries = parse_state(text)
    if not entries and text.strip() and not text.startswith("logrotate state"):
        return StateFacts(chosen, None, error=f"{chosen} is not a logrotate state file"), {}
    return StateFacts(chosen, mtime, len(entries)), entries


def walk_uncovered(
    config: LogrotateConfig, covered: set[str], covered_bases: set[tuple[str, str]]
) -> tuple[list[UncoveredLog], str]:
    """Big files under the watched directories that no block covers (bounded walk)."""
    threshold = int(config.uncovered_min_size)
    found: list[UncoveredLog] = []
    seen = 0
    note = ""
    stack = [(d, 0) for d in config.watch_dirs]
    while stack:
        directory, depth = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > config.max_walk_entries:
                return found, f"walk stopped after {config.max_walk_entries} entries"
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < config.watch_depth:
                        stack.append((entry.path, depth + 1))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            # Allocated bytes, not the apparent size: sparse files (lastlog) are not big.
            size = min(st.st_size, st.st_blocks * 512)
            if size < threshold:
                continue
            path = entry.path
            if path in covered or any(_fnmatch(path, p) for p in config.uncovered_exclude):
                continue
            parts = split_rotated(entry.name)
            if parts is not None and (directory, parts[0]) in covered_bases:
                continue
            found.append(UncoveredLog(path, size))
    return found, note


def _fnmatch(path: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(path, pattern)


def collect(config: LogrotateConfig, history: dict[str, Seen] | None = None) -> Facts:
    """Read the configuration, the state file and the disk; no judgement."""
    if not os.path.exists(config.config_file):
        state, _ = read_state(config.state_file)
        return Facts((), state, config_error=(
            f"logrotate configuration {config.config_file} not found"))
    parsed = parse_config(config.config_file)
    if not parsed.files:
        reason = parsed.problems[0].message if parsed.problems else "unreadable"
        state, _ = read_state(config.state_file)
        return Facts((), state, config_error=reason)
    state, entries = read_state(config.state_file)
    extra = sorted({b.settings.compressed_extension for b in parsed.blocks})
    index = _DirectoryIndex(extra)
    logs: list[LogFacts] = []
    taken: set[str] = set()
    covered_bases: set[tuple[str, str]] = set()
    for block in parsed.blocks:
        logs.extend(_collect_block(block, entries, index, taken, covered_bases))
    if history:
        logs = [replace(lg, previous=history.get(lg.path)) for lg in logs]
    uncovered, note = walk_uncovered(config, taken, covered_bases)
    return Facts(logs, state, uncovered, parsed.problems, note)


def _collect_block(
    block: Block,
    entries: dict[str, float],
    index: _DirectoryIndex,
    taken: set[str],
    covered_bases: set[tuple[str, str]],
) -> list[LogFacts]:
    found = []
    for pattern in block.patterns:
        matches = expand_pattern(pattern)
        for path in matches:
            path = os.path.abspath(path)
            if path in taken:
                continue  # logrotate refuses a log named by two blocks; the first counts
            taken.add(path)
            base = os.path.basename(path)
            covered_bases.add((os.path.dirname(path), base))
            covered_bases.add((olddir_of(path, block.settings), base))
            found.append(collect_log(path, pattern, block.settings, entries, index))
        if not matches:
            # A glob matching nothing is a missing log to logrotate, judged like one.
            found.append(LogFacts(pattern, pattern, block.settings, exists=False))
    return found


class LogrotateCheck:
    """Every configured log rotates on disk; logrotate runs; no big log is forgotten."""

    type_name: ClassVar[str] = "logrotate"
    Config: ClassVar[type[LogrotateConfig]] = LogrotateConfig

    def __init__(self, config: LogrotateConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", context.name)
        self.history_path = context.state_dir / f"logrotate-{safe_name}.json"

    def run(self) -> list[CheckResult]:
        """Gather the facts and judge them at the context's clock."""
        now = self.context.clock()
        facts = collect(self.config, load_seen(self.history_path))
        save_seen(self.history_path, facts.logs, now)
        return evaluate(self.config, facts, now, check=self.context.name)


def load_seen(path: Path) -> dict[str, Seen]:
    """The previous run's newest rotated file per log; empty when absent or unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {log: Seen(float(at), int(inode)) for log, (at, inode) in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def save_seen(path: Path, logs: Sequence[LogFacts], now: float) -> None:
    """Remember this run's newest rotated file per log (best effort: it only helps)."""
    seen = {lg.path: [now, lg.rotated[0].inode] for lg in logs if lg.rotated}
    try:
        write_json(path, seen)
    except OSError:
        pass
