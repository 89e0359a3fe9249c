"""The ``intrusion`` check: failed and suspicious SSH logins, and new listening sockets.

Collect, then judge. ``IntrusionCheck.run`` reads the auth log incrementally (inode and
offset kept in the state directory, rotation and truncation followed), folds the new sshd
events into a small bounded state with ``ingest`` (pure), reads the listening sockets from
``/proc/net`` and the recorded baseline; ``evaluate`` (pure) turns those facts into three
results: the failure rates (target: the log's path), the logins (target ``logins``) and the
listeners (target ``listeners``). The file and journal reading lives in
``checks.intrusion_files``, the socket tables in ``checks.intrusion_sockets``.
Reference: docs/checks/intrusion.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks.commands import CommandRunner, run_command
from checks.config import Bytes, ConfigError, Seconds
from checks.intrusion_files import (
    JOURNAL_TARGET,
    LogPosition,
    LogReader,
    journal_argv,
    split_journal_output,
)
from checks.intrusion_sockets import (
    Listener,
    OwnerCache,
    name_listeners,
    parse_listener_rule,
    parse_port_range,
    read_listeners,
    rule_matches,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown
from checks.statefile import write_json

DEFAULT_LOGS = ("/var/log/auth.log", "/var/log/secure")  # Debian family, RHEL family
LOGINS_TARGET = "logins"
LISTENERS_TARGET = "listeners"
STATE_FORMAT = 1


@dataclass(frozen=True)
class IntrusionConfig:
    """``[checks.<name>]`` of type ``intrusion``; keys and defaults in docs/checks/intrusion.md."""

    auth_log: str = ""
    source: Literal["file", "journal"] = "file"
    journalctl: str = "journalctl"
    journal_units: tuple[str, ...] = ("ssh", "sshd")
    command_timeout: Seconds = Seconds(10)
    check_auth_log: bool = True
    window: Seconds = Seconds(600)
    source_warn: int = 10
    source_crit: int = 50
    user_warn: int = 20
    user_crit: int = 100
    success_after_failures: int = 5
    root_login_status: Literal["ok", "warning", "critical"] = "warning"
    alert_hold: Seconds = Seconds(3600)
    max_read: Bytes = Bytes(32 * 1024 * 1024)
    max_sources: int = 200
    top: int = 5
    check_listeners: bool = True
    allowed_listeners: tuple[str, ...] = ()
    listener_ports: tuple[str, ...] = ()
    new_listener_status: Literal["warning", "critical"] = "warning"
    record_baseline_if_missing: bool = True
    include_ephemeral_udp: bool = False

    def __post_init__(self) -> None:
        if self.auth_log and not self.auth_log.startswith("/"):
            raise ConfigError("auth_log", "must be an absolute path")
        if not self.check_auth_log and not self.check_listeners:
            raise ConfigError("check_listeners", "and check_auth_log are both false: "
                              "nothing to check")
        if self.window <= 0:
            raise ConfigError("window", "must be more than 0 seconds")
        if self.source == "journal" and self.auth_log:
            raise ConfigError("auth_log", "is a file: it cannot be read with source = "
                              "\"journal\"")
        if self.source == "journal" and not self.journal_units:
            raise ConfigError("journal_units", "must name at least one unit")
        if self.command_timeout <= 0:
            raise ConfigError("command_timeout", "must be more than 0 seconds")
        for low, high in (("source_warn", "source_crit"), ("user_warn", "user_crit")):
            if getattr(self, low) < 1:
                raise ConfigError(low, "must be at least 1")
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(low, f"must not be above {high}")
        if self.success_after_failures < 1:
            raise ConfigError("success_after_failures", "must be at least 1")
        if self.max_read < 4096:
            raise ConfigError("max_read", "must be at least 4KiB")
        if not 1 <= self.max_sources <= 100_000:
            raise ConfigError("max_sources", "must be from 1 to 100000")
        if not 1 <= self.top <= 50:
            raise ConfigError("top", "must be from 1 to 50")
        for i, rule in enumerate(self.allowed_listeners):
            parse_listener_rule(rule, f"allowed_listeners[{i}]")
        for i, text in enumerate(self.listener_ports):
            parse_port_range(text, f"listener_ports[{i}]")

    @property
    def source_cap(self) -> int:
        """Failure times kept per address: enough to reach its thresholds."""
        return max(self.source_crit, self.success_after_failures) + 1

    @property
    def user_cap(self) -> int:
        """Failure times kept per user name."""
        return self.user_crit + 1


# ---------------------------------------------------------------------------- auth log lines


class Kind(StrEnum):
    """Kinds of sshd events."""

    FAILED = "failed"
    """``Failed <method> for [invalid user] X from IP``: one attempt, the strong evidence."""
    PROBE = "probe"
    """``Invalid user``, ``Connection closed by authenticating user``, a pam_unix failure:
    evidence of a failed connection, counted once per connection without a ``Failed``."""
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One sshd event of the auth log."""

    at: float
    kind: Kind
    address: str
    user: str
    connection: str = ""
    """``host/pid`` of the sshd process: ties the lines of one connection together."""
    method: str = ""
    repeat: int = 1


_MONTHS = {m: i + 1 for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (\S+) (.*)")
_CLASSIC = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\S+) (.*)")
_TAG = re.compile(r"(sshd(?:-session)?)(?:\[(\d+)\])?: (.*)")
_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?) ?\]$")
_FAILED = re.compile(
    r"Failed (\S+) for (invalid user )?(.*?) from (\S+) port \d+")
_ACCEPTED = re.compile(r"Accepted (\S+) for (\S+) from (\S+) port \d+")
_INVALID = re.compile(r"Invalid user (.*?) from (\S+)(?: port \d+)?\s*$")
_CLOSED = re.compile(
    r"(?:Connection closed|Disconnected) by (?:authenticating|invalid) user (.*?) (\S+) "
    r"port \d+ \[preauth\]")
_PAM = re.compile(
    r"pam_unix\(sshd:auth\): authentication failure;.*\brhost=(\S+)(?:\s+user=(\S+))?")


def classic_time(month: int, day: int, hms: tuple[int, int, int], now: float) -> float:
    """Epoch of a year-less local syslog time: the latest year not more than a day ahead."""
    year = time.localtime(now).tm_year + 1
    for _ in range(10):
        if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 or year % 400 == 0)):
            year -= 1
            continue
        at = time.mktime((year, month, day, *hms, 0, 0, -1))
        if at <= now + 86400:
            return at
        year -= 1
    raise ValueError("no year fits")


def parse_line(line: str, now: float) -> AuthEvent | None:
    """The sshd event of one auth log line (RFC3339 or classic syslog time), or None."""
    if "sshd" not in line:
        return None
    line = line.rstrip("\r\n")
    if m := _RFC3339.match(line):
        try:
            from datetime import datetime  # C module, already loaded by most hosts

            stamp = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        except ValueError:
            return None
        at = stamp.timestamp()  # naive (no offset) is taken as local time, as rsyslog means
        host, rest = m.group(2), m.group(3)
    elif m := _CLASSIC.match(line):
        month = _MONTHS.get(m.group(1))
        if month is None:
            return None
        try:
            at = classic_time(month, int(m.group(2)),
                              (int(m.group(3)), int(m.group(4)), int(m.group(5))), now)
        except (ValueError, OverflowError):
            return None
        host, rest = m.group(6), m.group(7)
    else:
        return None
    tag = _TAG.match(rest)
    if tag is None:
        return None
    connection = f"{host}/{tag.group(2)}" if tag.group(2) else ""
    return parse_message(tag.group(3), at, connection)


def parse_message(message: str, at: float, connection: str = "") -> AuthEvent | None:
    """The event of one sshd message (the text after ``sshd[pid]: ``), or None."""
    repeat = 1
    if m := _REPEATED.match(message):
        repeat, message = int(m.group(1)), m.group(2)
    if m := _FAILED.match(message):
        user = m.group(3) if m.group(3) else "?"
        return AuthEvent(at, Kind.FAILED, m.group(4), user, connection, m.group(1), repeat)
    if m := _ACCEPTED.match(message):
        return AuthEvent(at, Kind.ACCEPTED, m.group(3), m.group(2), connection, m.group(1))
    if m := _INVALID.match(message):
        return AuthEvent(at, Kind.PROBE, m.group(2), m.group(1) or "?", connection, "invalid")
    if m := _CLOSED.match(message):
        return AuthEvent(at, Kind.PROBE, m.group(2), m.group(1) or "?", connection, "closed")
    if m := _PAM.match(message):
        return AuthEvent(at, Kind.PROBE, m.group(1), m.group(2) or "?", connection, "pam")
    return None


# ---------------------------------------------------------------------------- state (pure)


@dataclass
class AuthState:
    """What is remembered between runs, all bounded (see ``ingest``)."""

    failures: dict[str, list[float]] = field(default_factory=dict)
    """Address -> times of its recent failures (oldest first, at most ``source_cap``)."""
    user_failures: dict[str, list[float]] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    """Successful logins worth reporting: ``kind`` success_after_failures or root_login."""
    root_sources: dict[str, float] = field(default_factory=dict)
    """Address -> last root login from it."""
    connections: dict[str, int] = field(default_factory=dict)
    """``host/pid`` -> 1 (a probe counted), 2 (a Failed line seen): one count per probe."""
    dropped_sources: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {"failures": self.failures, "user_failures": self.user_failures,
                "incidents": self.incidents, "root_sources": self.root_sources,
                "connections": self.connections, "dropped_sources": self.dropped_sources}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthState:
        """Inverse of ``to_json``; ValueError or TypeError on a damaged state."""
        def series(raw: Any) -> dict[str, list[float]]:
            return {str(k): [float(t) for t in v] for k, v in dict(raw).items()}
        return cls(
            failures=series(data.get("failures", {})),
            user_failures=series(data.get("user_failures", {})),
            incidents=[dict(i) for i in data.get("incidents", [])],
            root_sources={str(k): float(v) for k, v in dict(data.get("root_sources", {})).items()},
            connections={str(k): int(v) for k, v in dict(data.get("connections", {})).items()},
            dropped_sources=int(data.get("dropped_sources", 0)),
        )


MAX_INCIDENTS = 50
MAX_ROOT_SOURCES = 256
MAX_CONNECTIONS = 512
INGEST_BATCH = 2000


def _add(series: dict[str, list[float]], key: str, at: float, count: int, cap: int) -> None:
    times = series.setdefault(key, [])
    times.extend([round(at, 3)] * min(count, cap))
    if len(times) > 2 * cap:  # trimmed now and then, not on every event
        times.sort()
        del times[:-cap]


def ingest(state: AuthState, events: Iterable[AuthEvent], config: IntrusionConfig,
           now: float) -> AuthState:
    """Fold events (in log order) into the state, then prune it to its bounds; pure.

    Pruned every ``INGEST_BATCH`` events against the latest event time, so that a large
    backlog never holds more than a batch beyond the bounds.
    """
    latest = float("-inf")
    for number, event in enumerate(events, 1):
        latest = max(latest, event.at)
        if number % INGEST_BATCH == 0:
            prune(state, config, min(latest, now))
        if event.kind == Kind.ACCEPTED:
            _accepted(state, event, config)
            continue
        count = event.repeat
        seen = state.connections.pop(event.connection, 0) if event.connection else 0
        if event.kind == Kind.PROBE:
            if seen:
                count = 0  # this connection already counted
            mark = max(seen, 1)
        else:
            if seen == 1:
                count -= 1  # its probe line was this attempt
            mark = 2
        if event.connection:
            state.connections[event.connection] = mark
        if count > 0:
            _add(state.failures, event.address, event.at, count, config.source_cap)
            if event.user != "?":
                _add(state.user_failures, event.user, event.at, count, config.user_cap)
    return prune(state, config, now)


def _accepted(state: AuthState, event: AuthEvent, config: IntrusionConfig) -> None:
    earlier = [t for t in state.failures.get(event.address, [])
               if event.at - config.window <= t <= event.at]
    base = {"at": event.at, "address": event.address, "user": event.user,
            "method": event.method}
    if len(earlier) >= config.success_after_failures:
        state.incidents.append({"kind": "success_after_failures", "failures": len(earlier),
                                **base})
    if event.user == "root":
        if event.address not in state.root_sources:
            state.incidents.append({"kind": "root_login", **base})
        state.root_sources.pop(event.address, None)
        state.root_sources[event.address] = event.at


def _evict(series: dict[str, list[float]], keep: int) -> int:
    """Forget the keys with the fewest failures (then the least recent) beyond ``keep``.

    Fewest first, not least recent first: a flood of one-off scanners must not push a
    patient brute-forcer (or the failures before its login) out of the state.
    """
    excess = len(series) - keep
    if excess <= 0:
        return 0
    for key in sorted(series, key=lambda k: (len(series[k]), series[k][-1]))[:excess]:
        del series[key]
    return excess


def prune(state: AuthState, config: IntrusionConfig, now: float) -> AuthState:
    """Forget failures older than the window, incidents past the hold; apply the caps."""
    oldest = now - config.window
    for series, cap in ((state.failures, config.source_cap),
                        (state.user_failures, config.user_cap)):
        for key in list(series):
            kept = sorted(t for t in series[key] if t >= oldest)[-cap:]
            if kept:
                series[key] = kept
            else:
                del series[key]
    state.dropped_sources += _evict(state.failures, config.max_sources)
    _evict(state.user_failures, config.max_sources)
    state.incidents = [i for i in state.incidents
                       if float(i["at"]) >= now - config.alert_hold][-MAX_INCIDENTS:]
    while len(state.connections) > MAX_CONNECTIONS:
        del state.connections[next(iter(state.connections))]
    while len(state.root_sources) > MAX_ROOT_SOURCES:
        del state.root_sources[next(iter(state.root_sources))]
    return state


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What the auth log gave: the state after this run's lines, and how the read went."""

    path: str
    state: AuthState | None
    error: str = ""
    lines_read: int = 0
    bytes_read: int = 0
    backlog_bytes: int = 0
    """Bytes left for the next run (more than ``max_read`` arrived)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListenerFacts:
    """The listeners now, the baseline (None when there is none) and when it was taken."""

    listeners: tuple[Listener, ...]
    baseline: frozenset[str] | None
    baseline_at: float | None = None
    error: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IntrusionFacts:
    """Everything gathered in one run; a part is None when it is not checked."""

    log: LogFacts | None
    listeners: ListenerFacts | None


# ---------------------------------------------------------------------------- judgement


def level(value: int, warn: int, crit: int) -> Status:
    """CRITICAL at or above crit, WARNING at or above warn, else OK."""
    if value >= crit:
        return Status.CRITICAL
    if value >= warn:
        return Status.WARNING
    return Status.OK


def window_counts(series: Mapping[str, Sequence[float]], now: float,
                  window: float) -> list[tuple[str, int]]:
    """(key, failures in ``[now - window, now]``), most first, then by key."""
    counts = [(key, sum(1 for t in times if now - window <= t <= now))
              for key, times in series.items()]
    return sorted(((k, n) for k, n in counts if n), key=lambda kn: (-kn[1], kn[0]))


def _count_text(count: int, cap: int) -> str:
    return f"{count}+" if count >= cap else str(count)


def evaluate(config: IntrusionConfig, facts: IntrusionFacts, now: float, *,
             check: str) -> list[CheckResult]:
    """One result for the failures, one for the logins, one for the listeners; pure."""
    results: list[CheckResult] = []
    if facts.log is not None:
        results.extend(evaluate_log(config, facts.log, now, check=check))
    if facts.listeners is not None:
        results.append(evaluate_listeners(config, facts.listeners, check=check))
    return results


def evaluate_log(config: IntrusionConfig, log: LogFacts, now: float, *,
                 check: str) -> list[CheckResult]:
    """The failure rates per address and user, and the logins worth a look."""
    if log.state is None:
        reason = log.error or "auth log not read"
        return [unknown(check, log.path, reason), unknown(check, LOGINS_TARGET, reason)]
    state = log.state
    sources = window_counts(state.failures, now, config.window)
    users = window_counts(state.user_failures, now, config.window)
    source_status = level(sources[0][1], config.source_warn, config.source_crit) \
        if sources else Status.OK
    user_status = level(users[0][1], config.user_warn, config.user_crit) if users else Status.OK
    status = max(source_status, user_status, key=lambda s: s.severity)
    total = sum(n for _, n in sources)
    minutes = f"{config.window / 60:g} min"
    info: dict[str, Any] = {
        "window_seconds": float(config.window),
        "top_sources": [{"address": a, "failures": n} for a, n in sources[:config.top]],
        "other_sources": len(sources[config.top:]),
        "other_source_failures": sum(n for _, n in sources[config.top:]),
        "top_users": [{"user": u, "failures": n} for u, n in users[:config.top]],
        "other_users": len(users[config.top:]),
        "sources_dropped_total": state.dropped_sources,
        "lines_read": log.lines_read,
        "bytes_read": log.bytes_read,
        "backlog_bytes": log.backlog_bytes,
        "notes": list(log.notes),
    }
    if status is Status.OK:
        places = f"{len(sources)} address" + ("es" if len(sources) > 1 else "")
        summary = (f"{total} failed SSH logins in {minutes} from {places}"
                   if total else f"no failed SSH logins in {minutes}")
    elif source_status.severity >= user_status.severity:
        address, count = sources[0]
        summary = (f"{_count_text(count, config.source_cap)} failed SSH logins in {minutes} "
                   f"from {address}")
        if len(sources) > 1:
            summary += f" (+{len(sources) - 1} more addresses)"
    else:
        user, count = users[0]
        summary = (f"{_count_text(count, config.user_cap)} failed SSH logins in {minutes} "
                   f"for user {user!r}")
    metrics = (
        Metric("failures_top_source", sources[0][1] if sources else 0, "",
               config.source_warn, config.source_crit, 0),
        Metric("failures_top_user", users[0][1] if users else 0, "",
               config.user_warn, config.user_crit, 0),
        Metric("failure_sources", len(sources), "", min=0),
        Metric("failures", total, "", min=0),
    )
    rates = CheckResult(check, log.path, status, summary[:120], metrics, info)
    return [rates, evaluate_logins(config, state, now, check=check)]


_ROOT_STATUS = {"ok": Status.OK, "warning": Status.WARNING, "critical": Status.CRITICAL}


def evaluate_logins(config: IntrusionConfig, state: AuthState, now: float, *,
                    check: str) -> CheckResult:
    """CRITICAL for a login after failures, ``root_login_status`` for a root login from a
    new address, within ``alert_hold`` of the login."""
    recent = [i for i in state.incidents if now - config.alert_hold <= float(i["at"]) <= now]
    judged: list[tuple[Status, dict[str, Any]]] = []
    for incident in recent:
        if incident["kind"] == "success_after_failures":
            judged.append((Status.CRITICAL, incident))
        else:
            judged.append((_ROOT_STATUS[config.root_login_status], incident))
    flagged = [(s, i) for s, i in judged if s is not Status.OK]
    info: dict[str, Any] = {
        "incidents": [{**i, "status": s.name} for s, i in judged][-config.top:],
        "incidents_total": len(judged),
        "hold_seconds": float(config.alert_hold),
        "known_root_sources": len(state.root_sources),
    }
    metrics = (
        Metric("logins_after_failures",
               sum(1 for i in recent if i["kind"] == "success_after_failures"), "", min=0),
        Metric("new_root_logins", sum(1 for i in recent if i["kind"] == "root_login"), "",
               min=0),
    )
    if not flagged:
        summary = "no SSH login after failures, no root login from a new address"
        return CheckResult(check, LOGINS_TARGET, Status.OK, summary, metrics, info)
    status = max((s for s, _ in flagged), key=lambda s: s.severity)
    worst_one = [i for s, i in flagged if s is status][-1]
    clock = time.strftime("%H:%M", time.gmtime(float(worst_one["at"])))
    if worst_one["kind"] == "success_after_failures":
        summary = (f"login of {worst_one['user']!r} from {worst_one['address']} after "
                   f"{worst_one['failures']} failures ({clock}Z, {worst_one['method']})")
    else:
        summary = (f"root login from new address {worst_one['address']} ({clock}Z, "
                   f"{worst_one['method']})")
    if len(flagged) > 1:
        summary += f" (+{len(flagged) - 1} more)"
    return CheckResult(check, LOGINS_TARGET, status, summary[:120], metrics, info)


def evaluate_listeners(config: IntrusionConfig, facts: ListenerFacts, *,
                       check: str) -> CheckResult:
    """New listeners against the allowed list and the baseline."""
    if facts.error:
        return unknown(check, LISTENERS_TARGET, facts.error)
    rules = [parse_listener_rule(r) for r in config.allowed_listeners]
    allowed = [lst for lst in facts.listeners if any(rule_matches(r, lst) for r in rules)]
    checked = [lst for lst in facts.listeners if lst not in allowed]
    info: dict[str, Any] = {"listeners": len(facts.listeners), "allowed": len(allowed),
                            "notes": list(facts.notes)}
    if facts.baseline is None and not config.allowed_listeners:
        return unknown(check, LISTENERS_TARGET,
                       "no listener baseline recorded and no allowed_listeners: "
                       "run watchkeeper-agent record-baseline", **info)
    baseline = facts.baseline or frozenset()
    if facts.baseline_at is not None:
        info["baseline_at"] = facts.baseline_at
        info["baseline_size"] = len(baseline)
    new = sorted((lst for lst in checked if lst.key not in baseline), key=lambda x: x.key)
    current = {lst.key for lst in facts.listeners}
    info["gone"] = sorted(baseline - current)[:config.top]
    info["new"] = [{"listener": n.key, "process": n.process} for n in new[:config.top]]
    info["new_total"] = len(new)
    metrics = (Metric("listeners", len(facts.listeners), "", min=0),
               Metric("new_listeners", len(new), "", 1, min=0))
    if not new:
        summary = f"{len(facts.listeners)} listeners, none new"
        return CheckResult(check, LISTENERS_TARGET, Status.OK, summary, metrics, info)
    first = new[0]
    summary = f"new listener {first.key} ({first.process or 'process unknown'})"
    if len(new) > 1:
        summary += f" (+{len(new) - 1} more)"
    status = Status.CRITICAL if config.new_listener_status == "critical" else Status.WARNING
    return CheckResult(check, LISTENERS_TARGET, status, summary[:120], metrics, info)


# ---------------------------------------------------------------------------- state files


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def state_path(state_dir: Path, name: str) -> Path:
    """The auth log reading state of check instance ``name``."""
    return state_dir / f"intrusion-{_safe(name)}.state.json"


def baseline_path(state_dir: Path, name: str) -> Path:
    """The recorded listener baseline of check instance ``name``."""
    return state_dir / f"intrusion-{_safe(name)}.listeners.json"


def record_baseline(config: IntrusionConfig, context: CheckContext, *,
                    proc: Path = Path("/proc")) -> list[str]:
    """Record the host's current listeners as the baseline; returns their keys."""
    listeners, _ = read_listeners(proc, config.listener_ports, config.include_ephemeral_udp)
    named = name_listeners(proc, listeners)
    owners = {x.key: x.process.split(" (pid")[0] for x in named}
    payload = {"format": STATE_FORMAT, "recorded_at": context.clock(), "listeners": owners}
    write_json(baseline_path(context.state_dir, context.name), payload)
    return sorted(owners)


def load_baseline(path: Path) -> tuple[frozenset[str] | None, float | None]:
    """The baseline's keys and time, (None, None) when none is recorded; ValueError if bad."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError("unexpected format")
    return frozenset(data["listeners"]), float(data["recorded_at"])


# ---------------------------------------------------------------------------- the check


class IntrusionCheck:
    """Failed and suspicious SSH logins from the auth log; new listening sockets."""

    type_name: ClassVar[str] = "intrusion"
    Config: ClassVar[type[IntrusionConfig]] = IntrusionConfig

    def __init__(self, config: IntrusionConfig, context: CheckContext, *,
                 proc: Path = Path("/proc"),
                 default_logs: Sequence[str] = DEFAULT_LOGS,
                 run: CommandRunner = run_command,
                 journal_args: Sequence[str] = ()) -> None:
        self.config = config
        self.context = context
        self.proc = proc
        self.default_logs = default_logs
        self.run_command = run
        self.journal_args = tuple(journal_args)
        """Extra journalctl arguments (``--directory DIR`` in tests)."""
        self.owners = OwnerCache()

    def log_path(self) -> Path:
        """The configured log, or the first of the distribution defaults that exists."""
        if self.config.auth_log:
            return Path(self.config.auth_log)
        for candidate in self.default_logs:
            if os.path.exists(candidate):
                return Path(candidate)
        return Path(self.default_logs[0])

    def run(self) -> list[CheckResult]:
        """Read the new auth log lines and the listeners, then judge."""
        log = self.read_log() if self.config.check_auth_log else None
        listeners = self.read_listeners() if self.config.check_listeners else None
        now = self.context.clock()
        return evaluate(self.config, IntrusionFacts(log, listeners), now,
                        check=self.context.name)

    def read_log(self) -> LogFacts:
        """Fold the auth log's new lines into the saved state and save it again."""
        journal = self.config.source == "journal"
        path = self.log_path()
        target = JOURNAL_TARGET if journal else str(path)
        store = state_path(self.context.state_dir, self.context.name)
        notes: list[str] = []
        state = AuthState()
        position: LogPosition | None = None
        try:
            saved = json.loads(store.read_text(encoding="utf-8"))
            if saved.get("format") != STATE_FORMAT or saved.get("path") != target:
                raise ValueError("written for another format or log")
            state = AuthState.from_json(saved["auth"])
            if saved.get("position") and not journal:
                position = LogPosition(**saved["position"])
            cursor = str(saved.get("cursor", "")) if journal else ""
        except FileNotFoundError:
            cursor = ""
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            cursor = ""
            notes.append(f"state unreadable ({type(err).__name__}: {err}), started over")
        now = self.context.clock()
        counted = {"lines": 0, "bytes": 0}

        def parsed(texts: Iterable[str]) -> Iterator[AuthEvent]:
            for text in texts:
                counted["lines"] += 1
                event = parse_line(text, now)
                if event is not None:
                    yield event

        backlog = 0
        saved_position: dict[str, Any] | None = None
        if journal:
            texts, cursor, error = self.read_journal(cursor, now, notes)
            if error:
                return LogFacts(target, None, error)
            state = ingest(state, parsed(texts), self.config, now)
            counted["bytes"] = sum(len(t) + 1 for t in texts)
        else:
            reader = LogReader(path, position, int(self.config.max_read))
            try:
                state = ingest(state, parsed(raw.decode("utf-8", "replace")
                                             for raw in reader.lines() if raw),
                               self.config, now)
            except FileNotFoundError:
                return LogFacts(target, None, f"{target} does not exist")
            except OSError as err:
                return LogFacts(target, None, f"cannot read {target}: {err.strerror or err}")
            assert reader.position is not None  # set once the lines are all read
            notes.extend(reader.notes)
            saved_position = vars(reader.position)
            backlog = reader.backlog
            counted["bytes"] = reader.bytes_read
        lines, size = counted["lines"], counted["bytes"]
        try:
            write_json(store, {"format": STATE_FORMAT, "path": target, "cursor": cursor,
                               "position": saved_position, "auth": state.to_json()})
        except OSError as err:
            # Without saved state the next run reads the same lines again: say so loudly.
            return LogFacts(target, None, f"cannot save state {store}: {err.strerror or err}")
        return LogFacts(target, state, "", lines, size, backlog, tuple(notes))

    def journal_query(self, cursor: str, since: float) -> list[str]:
        """The journalctl command line for entries after ``cursor`` (or since ``since``)."""
        return journal_argv(self.config.journalctl, self.config.journal_units, cursor, since,
                            self.journal_args)

    def read_journal(self, cursor: str, now: float, notes: list[str]
                     ) -> tuple[list[str], str, str]:
        """New sshd lines of the journal: (lines, the new cursor, an error or "")."""
        timeout = min(float(self.config.command_timeout), 0.8 * self.context.timeout)
        since = now - max(float(self.config.window), float(self.config.alert_hold))
        output = self.run_command(self.journal_query(cursor, since), timeout)
        if output.returncode not in (0, None) and cursor and "cursor" in output.stderr:
            notes.append("journal cursor no longer valid (journal rotated or vacuumed); "
                         "read again from the window's start")
            output = self.run_command(self.journal_query("", since), timeout)
        lines, new_cursor = split_journal_output(output.stdout)
        # journalctl says "-- No entries --" also when it found no journal at all.
        empty = "-- No entries --" in output.stdout and "No journal files" not in output.stderr
        if output.returncode is None or (output.returncode != 0 and not lines and not empty):
            first = (output.stderr.strip().splitlines() or [f"exit status {output.returncode}"])
            return [], cursor, f"journalctl failed: {first[0][:160]}"
        return lines, new_cursor or cursor, ""

    def read_listeners(self) -> ListenerFacts:
        """The listeners, the baseline (recorded now on a first run if configured)."""
        try:
            listeners, notes = read_listeners(self.proc, self.config.listener_ports,
                                              self.config.include_ephemeral_udp)
        except OSError as err:
            return ListenerFacts((), None, error=str(err))
        where = baseline_path(self.context.state_dir, self.context.name)
        try:
            baseline, recorded_at = load_baseline(where)
        except (OSError, ValueError, TypeError, KeyError) as err:
            return ListenerFacts((), None, error=f"listener baseline {where} unreadable "
                                 f"({type(err).__name__}: {err})")
        if baseline is None and self.config.record_baseline_if_missing:
            try:
                keys = record_baseline(self.config, self.context, proc=self.proc)
            except OSError as err:
                notes.append(f"baseline not recorded: {err.strerror or err}")
            else:
                baseline, recorded_at = frozenset(keys), self.context.clock()
                notes.append(f"no baseline: recorded the {len(keys)} current listeners")
        if baseline is not None:
            unexplained = [x for x in listeners if x.key not in baseline]
        else:
            unexplained = list(listeners)
        if unexplained:
            named = {x.key: x for x in name_listeners(self.proc, unexplained, self.owners)}
            listeners = [named.get(x.key, x) for x in listeners]
        return ListenerFacts(tuple(listeners), baseline, recorded_at, notes=tuple(notes))


# ---------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m checks.intrusion record-listeners --state-dir DIR [--name NAME]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m checks.intrusion")
    commands = parser.add_subparsers(dest="command", required=True)
    record = commands.add_parser("record-listeners",
                                 help="record this host's listeners as the baseline")
    record.add_argument("--state-dir", required=True, type=Path,
                        help="the agent's check state directory (<agent.state_dir>/checks)")
    record.add_argument("--name", default="intrusion", help="the check instance name")
    record.add_argument("--ports", action="append", default=[],
                        help="restrict to a port or range (as listener_ports)")
    args = parser.parse_args(argv)
    try:
        config = IntrusionConfig(listener_ports=tuple(args.ports))
    except ConfigError as err:
        parser.error(str(err))
    context = CheckContext(name=args.name, state_dir=args.state_dir)
    try:
        keys = record_baseline(config, context)
    except OSError as err:
        print(f"cannot record the baseline: {err}")
        return 1
    print(f"recorded {len(keys)} listeners in {baseline_path(args.state_dir, args.name)}")
    for key in keys:
        print(f"  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
