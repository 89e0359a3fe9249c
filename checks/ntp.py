"""The ``ntp`` check: how far the clock is from NTP servers, and whether it is disciplined.

Collect, then judge. ``NtpCheck.run`` queries the configured servers concurrently (one
thread each, every query under a timeout), and meanwhile reads the local synchronisation
state from the kernel (``adjtimex``), chronyd (``chronyc -c tracking``), ntpd/ntpsec
(``ntpq -c rv``) and systemd-timesyncd (the file it touches on each synchronisation).
``evaluate`` turns those facts into one result per server, one for the
clock offset (median of the servers, false tickers rejected) and one for the local state,
without any I/O. Keys, statuses and the reasoning behind the defaults: docs/checks/ntp.md.

Offsets follow the NTP convention throughout: server time minus local time, so a positive
offset means the local clock is behind.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks.commands import CommandRunner, find_program, first_line, run_command
from checks.config import ConfigError, Seconds
from checks.net import lookup_name
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown

OFFSET_TARGET = "offset"
LOCAL_TARGET = "local"

# ---------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class Server:
    """One NTP server to ask: host name or address and UDP port."""

    host: str
    port: int

    @property
    def label(self) -> str:
        """``host:port`` (``[addr]:port`` for IPv6), as results name the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_server(text: str, default_port: int, key: str = "servers") -> Server:
    """``host``, ``host:port``, ``[v6addr]``, ``[v6addr]:port`` or a bare IPv6 address."""
    value = text.strip()
    port_text = ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(key, f"{text!r}: expected [address] or [address]:port")
        port_text = rest[1:]
        if rest and not port_text:
            raise ConfigError(key, f"{text!r}: empty port")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        if not port_text:
            raise ConfigError(key, f"{text!r}: empty port")
    else:
        host = value  # a name, an IPv4 address, or a bare IPv6 address (several colons)
    if not host or any(c.isspace() for c in host):
        raise ConfigError(key, f"{text!r}: expected a host name or address")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(key, f"{text!r}: port must be a number from 1 to 65535")
        port = int(port_text)
    return Server(host, port)


@dataclass(frozen=True)
class NtpConfig:
    """``[checks.<name>]`` of type ``ntp``; every key and its default in docs/checks/ntp.md."""

    servers: tuple[str, ...] = ()
    port: int = 123
    query_timeout: Seconds = Seconds(2)
    offset_warn: Seconds = Seconds(0.1)
    offset_crit: Seconds = Seconds(0.5)
    falseticker_min: Seconds = Seconds(0.05)
    falseticker_mad_factor: float = 5.0
    check_local: bool = True
    unsynchronised_status: Literal["warning", "critical"] = "critical"
    chronyc: str = "chronyc"
    chronyc_socket: str = ""
    ntpq: str = "ntpq"
    command_timeout: Seconds = Seconds(3)

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError("port", "must be from 1 to 65535")
        parsed = [parse_server(s, self.port, f"servers[{i}]") for i, s in enumerate(self.servers)]
        labels = [s.label for s in parsed]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise ConfigError(f"servers[{i}]", f"{label} is listed twice")
        if not self.servers and not self.check_local:
            raise ConfigError("check_local", "is false and no servers are given: nothing to check")
        if self.offset_warn > self.offset_crit:
            raise ConfigError("offset_warn", "must not be above offset_crit")
        if self.offset_warn <= 0:
            raise ConfigError("offset_warn", "must be more than 0 seconds")
        if self.query_timeout <= 0:
            raise ConfigError("query_timeout", "must be more than 0 seconds")
        if self.command_timeout <= 0:
            raise ConfigError("command_timeout", "must be more than 0 seconds")
        if self.falseticker_mad_factor < 1:
            # Below 1, more than half of the answers could be rejected as false tickers.
            raise ConfigError("falseticker_mad_factor", "must be at least 1")
        if not self.chronyc.strip():
            raise ConfigError("chronyc", "must name a program")
        if not self.ntpq.strip():
            raise ConfigError("ntpq", "must name a program")

    @property
    def parsed_servers(self) -> tuple[Server, ...]:
        """The servers as host and port, in the configured order."""
        return tuple(parse_server(s, self.port) for s in self.servers)


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class ServerReply:
    """What one server said; ``offset`` is None when there is no usable answer."""

    server: str
    """The server's ``host:port`` label."""
    offset: float | None = None
    """Seconds, server minus local clock (positive: the local clock is behind)."""
    delay: float | None = None
    """Round-trip delay in seconds."""
    stratum: int | None = None
    error: str = ""
    """Why there is no usable answer (no reply, unsynchronised server, kiss-o'-death)."""


# adjtimex(2): the return value and the status bit that say "not synchronised".
TIME_ERROR = 5
STA_UNSYNC = 0x0040
KERNEL_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT",
                 5: "TIME_ERROR"}


@dataclass(frozen=True, slots=True)
class KernelClock:
    """The kernel's own view of its clock discipline, from ``adjtimex`` (read only)."""

    state: int
    """The return value: TIME_OK (0) ... TIME_ERROR (5)."""
    status: int
    """The STA_* bits."""
    maxerror_us: int
    esterror_us: int

    @property
    def synchronised(self) -> bool:
        """False when STA_UNSYNC is set or the kernel returns TIME_ERROR."""
        return not (self.status & STA_UNSYNC) and self.state != TIME_ERROR


@dataclass(frozen=True, slots=True)
class DaemonState:
    """What chronyd or ntpd says about its synchronisation."""

    daemon: str
    """``chronyd``, ``ntpd`` or ``systemd-timesyncd``."""
    synchronised: bool
    stratum: int | None
    """None when the daemon does not say (systemd-timesyncd)."""
    reference: str
    offset: float | None = None
    """Seconds, true time minus local clock, as the daemon estimates it."""
    reason: str = ""
    """Why it is not synchronised, for the summary."""
    reference_time: float | None = None
    """Epoch seconds of the last update from the reference (chronyd)."""


@dataclass(frozen=True, slots=True)
class LocalFacts:
    """Everything read about the local clock; ``notes`` say what could not be read."""

    kernel: KernelClock | None
    daemons: tuple[DaemonState, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NtpFacts:
    """The replies of the servers (configured order) and the local state (if checked)."""

    replies: tuple[ServerReply, ...]
    local: LocalFacts | None


# ---------------------------------------------------------------------------- parsing

LOCAL_REFIDS = {"7F7F0101", "LOCL", "LOCAL(0)", ".LOCL.", "127.127.1.0", "127.127.1.1"}


def parse_chronyc_tracking(text: str) -> DaemonState:
    """The first line of ``chronyc -c tracking``; ValueError when it is not that."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    fields = line.split(",")
    if len(fields) < 14:
        raise ValueError(f"expected 14 comma-separated fields, got {len(fields)}: {line[:120]!r}")
    ref_id, name, stratum_text, ref_time_text, correction_text = fields[:5]
    root_delay_text, root_dispersion_text = fields[10:12]
    leap = fields[13].strip()
    stratum = int(stratum_text)
    ref_time = float(ref_time_text)
    offset = float(correction_text)  # > 0: the system clock is slow (behind)
    float(root_delay_text), float(root_dispersion_text)  # validate the shape
    reference = f"{ref_id} ({name})" if name else ref_id
    reason = ""
    if leap.lower().startswith("not sync") or ref_id == "00000000":
        reason = "chronyd is not synchronised to any source"
    elif ref_id.upper() in LOCAL_REFIDS:
        reason = "chronyd follows its own local clock (no reachable source)"
    elif stratum == 0 or stratum >= 16:
        reason = f"chronyd reports stratum {stratum}"
    return DaemonState(
        daemon="chronyd",
        synchronised=not reason,
        stratum=stratum,
        reference=reference,
        offset=offset,
        reason=reason,
        reference_time=ref_time or None,
    )


def parse_ntpq_rv(text: str) -> DaemonState:
    """``ntpq -c rv`` (ntpd or ntpsec); ValueError when it has no leap or stratum."""
    values: dict[str, str] = {}
    for part in text.replace("\n", ",").split(","):
        key, eq, value = part.strip().partition("=")
        if eq:
            values[key.strip()] = value.strip().strip('"')
    if "leap" not in values or "stratum" not in values:
        raise ValueError(f"no leap or stratum in ntpq output: {text.strip()[:120]!r}")
    leap = values["leap"]
    stratum = int(values["stratum"])
    refid = values.get("refid", "")
    offset = float(values["offset"]) / 1000 if "offset" in values else None  # ntpq says ms
    # ntpq's offset is the NTP offset too: positive when the local clock is behind.
    reason = ""
    if leap in ("11", "3", "leap_alarm") or stratum == 0 or stratum >= 16:
        reason = f"ntpd is not synchronised (leap={leap}, stratum {stratum})"
    elif refid.upper() in LOCAL_REFIDS:
        reason = "ntpd follows its own local clock (no reachable source)"
    return DaemonState("ntpd", not reason, stratum, refid, offset, reason)


# ---------------------------------------------------------------------------- judgement


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count); ValueError when empty."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of nothing")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True, slots=True)
class Selection:
    """Which answering servers count for the offset and what was decided about the rest."""

    offset: float
    used: tuple[str, ...]
    falsetickers: dict[str, float]
    """Server label -> distance in seconds from the median of all answers."""
    disagreement: tuple[str, ...] = ()
    """Two servers that disagree beyond tolerance (no majority to tell which is wrong)."""


def tolerance(config: NtpConfig, mad: float, delay: float | None) -> float:
    """How far an answer may lie from the median: max(floor, k x MAD) + delay / 2."""
    return max(config.falseticker_min, config.falseticker_mad_factor * mad) + (delay or 0) / 2


def select_offset(answers: Sequence[ServerReply], config: NtpConfig) -> Selection:
    """The clock offset from the usable answers, rejecting false tickers (see the docs)."""
    usable = [a for a in answers if a.offset is not None]
    offsets = [a.offset for a in usable if a.offset is not None]
    if len(usable) == 2:
        first, second = usable
        assert first.offset is not None and second.offset is not None
        allowed = config.falseticker_min + ((first.delay or 0) + (second.delay or 0)) / 2
        if abs(first.offset - second.offset) > allowed:
            # No majority: trust the answer nearer to the local clock, so that one wrong
            # server cannot raise a CRITICAL about a clock the other one finds fine.
            nearer = min(usable, key=lambda a: abs(a.offset or 0.0))
            assert nearer.offset is not None
            return Selection(nearer.offset, (nearer.server,), {},
                             (first.server, second.server))
    if len(usable) < 3:
        return Selection(median(offsets), tuple(a.server for a in usable), {})
    centre = median(offsets)
    mad = median([abs(o - centre) for o in offsets])
    kept: list[ServerReply] = []
    rejected: dict[str, float] = {}
    for answer in usable:
        assert answer.offset is not None
        distance = answer.offset - centre
        if abs(distance) > tolerance(config, mad, answer.delay):
            rejected[answer.server] = distance
        else:
            kept.append(answer)
    return Selection(
        median([a.offset for a in kept if a.offset is not None]),
        tuple(a.server for a in kept),
        rejected,
    )


def level(value: float, warn: float, crit: float) -> Status:
    """CRITICAL at or above crit, WARNING at or above warn, else OK."""
    if value >= crit:
        return Status.CRITICAL
    if value >= warn:
        return Status.WARNING
    return Status.OK


def format_offset(seconds: float) -> str:
    """``812 ms behind``, ``0.3 ms ahead``, ``2.41 s behind`` (NTP sign: > 0 is behind)."""
    size = abs(seconds)
    if size >= 1:
        amount = f"{size:.2f} s"
    elif size >= 0.01:
        amount = f"{size * 1000:.0f} ms"
    else:
        amount = f"{size * 1000:.1f} ms"
    if size == 0:
        return "0 ms off"
    return f"{amount} {'behind' if seconds > 0 else 'ahead'}"


def _signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+.1f} ms"


def evaluate(
    config: NtpConfig, facts: NtpFacts, now: float, *, check: str
) -> list[CheckResult]:
    """One result per server, one for the offset (with servers), one for the local state."""
    results: list[CheckResult] = []
    if facts.replies:
        selection = None
        if any(r.offset is not None for r in facts.replies):
            selection = select_offset(facts.replies, config)
        results.extend(_server_result(r, selection, config, check) for r in facts.replies)
        results.append(_offset_result(facts.replies, selection, config, check))
    if facts.local is not None:
        results.append(evaluate_local(facts.local, config, now, check=check))
    return results


def _offset_metrics(offset: float, config: NtpConfig) -> Metric:
    return Metric("offset", round(offset, 6), "s", config.offset_warn, config.offset_crit)


def _server_result(
    reply: ServerReply, selection: Selection | None, config: NtpConfig, check: str
) -> CheckResult:
    info: dict[str, Any] = {"server": reply.server}
    if reply.offset is None:
        info["error"] = reply.error
        return CheckResult(check, reply.server, Status.WARNING,
                           f"NTP server {reply.server}: {reply.error}"[:120], (), info)
    info.update(offset=reply.offset, delay=reply.delay, stratum=reply.stratum)
    metrics = [Metric("offset", round(reply.offset, 6), "s")]
    if reply.delay is not None:
        metrics.append(Metric("delay", round(reply.delay, 6), "s", min=0))
    if reply.stratum is not None:
        metrics.append(Metric("stratum", reply.stratum, min=0, max=16))
    metrics_tuple = tuple(metrics)
    if selection is not None and reply.server in selection.falsetickers:
        distance = selection.falsetickers[reply.server]
        info["falseticker"] = True
        info["distance_from_median"] = distance
        summary = (f"NTP server {reply.server} is a false ticker: {_signed_ms(distance)} "
                   f"from the other servers")
        return CheckResult(check, reply.server, Status.WARNING, summary, metrics_tuple, info)
    summary = f"NTP server {reply.server}: clock {format_offset(reply.offset)}"
    if reply.stratum is not None:
        summary += f", stratum {reply.stratum}"
    if selection is not None and reply.server in selection.disagreement:
        info["disagrees"] = True
    return CheckResult(check, reply.server, Status.OK, summary, metrics_tuple, info)


def _offset_result(
    replies: Sequence[ServerReply], selection: Selection | None, config: NtpConfig, check: str
) -> CheckResult:
    answered = [r for r in replies if r.offset is not None]
    silent = [r.server for r in replies if r.offset is None]
    info: dict[str, Any] = {
        "servers": [r.server for r in replies],
        "answered": [r.server for r in answered],
        "unusable": silent,
    }
    if selection is None:
        reason = (f"no NTP server gave a usable answer ({len(replies)} tried)"
                  if len(replies) > 1 else f"NTP server {replies[0].server}: {replies[0].error}")
        return unknown(check, OFFSET_TARGET, reason, **info)
    info.update(
        offset=selection.offset,
        used=list(selection.used),
        falsetickers={k: round(v, 6) for k, v in selection.falsetickers.items()},
        rule=(f"|offset - median| > max({config.falseticker_min * 1000:g} ms, "
              f"{config.falseticker_mad_factor:g} x MAD) + delay/2"),
    )
    status = level(abs(selection.offset), config.offset_warn, config.offset_crit)
    of = f"{len(selection.used)} of {len(replies)}"
    summary = f"clock {format_offset(selection.offset)} (median of {of} servers)"
    if selection.falsetickers:
        summary += f"; rejected {', '.join(selection.falsetickers)}"
    if selection.disagreement:
        info["disagreement"] = list(selection.disagreement)
        status = max(status, Status.WARNING, key=lambda s: s.severity)
        first, second = selection.disagreement
        summary = (f"servers disagree ({first} vs {second}); clock "
                   f"{format_offset(selection.offset)} by the nearer")
    metrics = (
        _offset_metrics(selection.offset, config),
        Metric("servers_used", len(selection.used), min=0, max=len(replies)),
        Metric("servers_answered", len(answered), min=0, max=len(replies)),
    )
    return CheckResult(check, OFFSET_TARGET, status, summary[:120], metrics, info)


def evaluate_local(
    local: LocalFacts, config: NtpConfig, now: float, *, check: str
) -> CheckResult:
    """Judge the local discipline: the daemon's word first, the kernel's without one."""
    info: dict[str, Any] = {"notes": list(local.notes)}
    metrics: list[Metric] = []
    kernel = local.kernel
    if kernel is not None:
        info["kernel"] = {
            "state": KERNEL_STATES.get(kernel.state, str(kernel.state)),
            "status": f"0x{kernel.status:04x}",
            "unsync_flag": bool(kernel.status & STA_UNSYNC),
            "synchronised": kernel.synchronised,
            "maxerror_us": kernel.maxerror_us,
            "esterror_us": kernel.esterror_us,
        }
        metrics += [
            Metric("kernel_maxerror", kernel.maxerror_us / 1e6, "s", min=0),
            Metric("kernel_esterror", kernel.esterror_us / 1e6, "s", min=0),
        ]
    info["daemons"] = [
        {"daemon": d.daemon, "synchronised": d.synchronised, "stratum": d.stratum,
         "reference": d.reference, "offset": d.offset, "reason": d.reason,
         "reference_age_seconds": round(now - d.reference_time, 1)
         if d.reference_time is not None else None}
        for d in local.daemons
    ]
    unsync_status = Status.CRITICAL if config.unsynchronised_status == "critical" else (
        Status.WARNING)
    synced = [d for d in local.daemons if d.synchronised]
    if synced:
        daemon = synced[0]
        stratum = ""
        if daemon.stratum is not None:
            metrics.append(Metric("stratum", daemon.stratum, min=0, max=16))
            stratum = f", stratum {daemon.stratum}"
        summary = f"synchronised ({daemon.daemon}{stratum}, {daemon.reference})"
        status = Status.OK
        if daemon.offset is not None:
            metrics.append(_offset_metrics(daemon.offset, config))
            status = level(abs(daemon.offset), config.offset_warn, config.offset_crit)
            summary = (f"{daemon.daemon} synchronised to {daemon.reference}{stratum}: "
                       f"clock {format_offset(daemon.offset)}")
        info["source"] = daemon.daemon
        return CheckResult(check, LOCAL_TARGET, status, summary[:120], tuple(metrics), info)
    if local.daemons:
        daemon = local.daemons[0]
        if daemon.stratum is not None:
            metrics.append(Metric("stratum", daemon.stratum, min=0, max=16))
        info["source"] = daemon.daemon
        summary = f"clock not synchronised: {daemon.reason}"
        return CheckResult(check, LOCAL_TARGET, unsync_status, summary[:120], tuple(metrics),
                           info)
    if kernel is None:
        reason = "no clock state readable: " + ("; ".join(local.notes) or "nothing answered")
        return unknown(check, LOCAL_TARGET, reason, **info)
    info["source"] = "kernel"
    if not kernel.synchronised:
        flag = "STA_UNSYNC" if kernel.status & STA_UNSYNC else "TIME_ERROR"
        summary = f"clock not synchronised (kernel {flag}; no chronyd or ntpd answered)"
        return CheckResult(check, LOCAL_TARGET, unsync_status, summary, tuple(metrics), info)
    summary = (f"kernel clock synchronised (max error {kernel.maxerror_us / 1000:.0f} ms, "
               f"no chronyd or ntpd answered)")
    return CheckResult(check, LOCAL_TARGET, Status.OK, summary, tuple(metrics), info)


# ---------------------------------------------------------------------------- I/O


def query_server(server: Server, timeout: float) -> ServerReply:
    """Ask one server once (NTPv4 client mode) and check that the answer is usable."""
    import ntplib  # only hosts with an ntp check pay for it (small, but not needed elsewhere)

    label = server.label
    try:
        stats = ntplib.NTPClient().request(lookup_name(server.host), version=4,
                                           port=server.port, timeout=timeout)
    except ntplib.NTPException:
        return ServerReply(label, error=f"no answer within {timeout:g}s")
    except socket.gaierror as err:
        return ServerReply(label, error=f"cannot resolve {server.host}: {err.strerror or err}")
    except OSError as err:
        return ServerReply(label, error=f"query failed: {err.strerror or err}")
    stratum = int(stats.stratum)
    if stats.mode not in (4, 5):
        return ServerReply(label, stratum=stratum, error=f"not a server answer (mode {stats.mode})")
    if stratum == 0:
        code = stats.ref_id.to_bytes(4, "big").decode("ascii", "replace").strip("\0")
        return ServerReply(label, stratum=0, error=f"refused the query (kiss code {code})")
    if stats.leap == 3 or stratum >= 16:
        return ServerReply(label, stratum=stratum,
                           error=f"server is not synchronised (leap {stats.leap}, stratum "
                           f"{stratum})")
    return ServerReply(label, float(stats.offset), float(stats.delay), stratum)


def read_kernel_clock() -> KernelClock:
    """``adjtimex`` with modes 0 (reads only; needs no privilege); OSError when unavailable."""
    import ctypes  # ~0.35 MB: paid only by hosts that run this check

    class Timex(ctypes.Structure):
        # struct timex of <sys/timex.h>; the trailing padding is part of the kernel ABI.
        _fields_ = [
            ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
            ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
            ("constant", ctypes.c_long), ("precision", ctypes.c_long),
            ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
            ("time_usec", ctypes.c_long), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
            ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
            ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
            ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("padding", ctypes.c_int * 11),
        ]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError) as err:
        raise OSError(f"adjtimex is not available: {err}") from err
    timex = Timex()
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"adjtimex failed: {os.strerror(errno)}")
    return KernelClock(state, timex.status, timex.maxerror, timex.esterror)


def read_chronyd(
    config: NtpConfig, run: CommandRunner, timeout: float
) -> tuple[DaemonState | None, str]:
    """chronyd's tracking state, or None and a note saying why not."""
    program = find_program(config.chronyc)
    if program is None:
        return None, f"{config.chronyc} not installed"
    argv = [program, "-n", "-c"]
    if config.chronyc_socket:
        argv[1:1] = ["-h", config.chronyc_socket]
    output = run([*argv, "tracking"], timeout)
    if output.returncode != 0:
        first = first_line(output)
        if output.returncode is not None and ("506" in first or "Could not open" in first
                                              or "Cannot talk" in first):
            return None, f"chronyd not running ({first})"
        return None, f"chronyc tracking failed: {first}"
    try:
        return parse_chronyc_tracking(output.stdout), ""
    except ValueError as err:
        return None, f"chronyc tracking output not understood: {err}"


def read_ntpd(
    config: NtpConfig, run: CommandRunner, timeout: float
) -> tuple[DaemonState | None, str]:
    """ntpd's (or ntpsec's) system variables, or None and a note saying why not."""
    program = find_program(config.ntpq)
    if program is None:
        return None, f"{config.ntpq} not installed"
    output = run([program, "-n", "-c", "rv"], timeout)
    if output.returncode != 0 or "leap=" not in output.stdout:
        return None, f"ntpd not answering ({first_line(output)})"
    try:
        return parse_ntpq_rv(output.stdout), ""
    except ValueError as err:
        return None, f"ntpq output not understood: {err}"


# systemd-timesyncd touches this file on each successful synchronisation
# (systemd-timesyncd.service(8)); it polls every 2048 s at most by default.
TIMESYNC_DIR = Path("/run/systemd/timesync")
TIMESYNC_STALE = 3 * 2048.0


def read_timesyncd(directory: Path, now: float) -> tuple[DaemonState | None, str]:
    """systemd-timesyncd's word, from the file it touches on every synchronisation.

    Debian's default time keeper: it has no query interface that needs no D-Bus, and
    under the agent's hardened unit the kernel's ``adjtimex`` is refused, so this file is
    what is left to read. None when timesyncd does not run (no directory).
    """
    if not directory.is_dir():
        return None, ""
    try:
        synced_at = (directory / "synchronized").stat().st_mtime
    except FileNotFoundError:
        return DaemonState("systemd-timesyncd", False, None, "",
                           reason="systemd-timesyncd has not synchronised since it "
                                  "started"), ""
    except OSError as err:
        return None, f"systemd-timesyncd state unreadable: {err}"
    age = now - synced_at
    if age > TIMESYNC_STALE:
        return DaemonState("systemd-timesyncd", False, None, "", reason=(
            f"systemd-timesyncd last synchronised {age / 60:.0f} min ago"),
            reference_time=synced_at), ""
    return DaemonState("systemd-timesyncd", True, None, "its NTP server",
                       reference_time=synced_at), ""


# ---------------------------------------------------------------------------- the check

QueryFunction = Callable[[Server, float], ServerReply]


class NtpCheck:
    """Clock offset against NTP servers and the local synchronisation state."""

    type_name: ClassVar[str] = "ntp"
    Config: ClassVar[type[NtpConfig]] = NtpConfig

    def __init__(
        self,
        config: NtpConfig,
        context: CheckContext,
        *,
        query: QueryFunction = query_server,
        kernel: Callable[[], KernelClock] = read_kernel_clock,
        run: CommandRunner = run_command,
        timesync_dir: Path = TIMESYNC_DIR,
    ) -> None:
        self.config = config
        self.context = context
        self.query = query
        self.kernel = kernel
        self.run_command = run
        self.timesync_dir = timesync_dir

    @property
    def query_timeout(self) -> float:
        """Per-server timeout: the configured one, at most 40% of the run's timeout."""
        return min(float(self.config.query_timeout), 0.4 * self.context.timeout)

    @property
    def command_timeout(self) -> float:
        """Per-command timeout (chronyc, ntpq run one after the other): at most 20% each."""
        return min(float(self.config.command_timeout), 0.2 * self.context.timeout)

    def run(self) -> list[CheckResult]:
        """Query every server at once, read the local state meanwhile, then judge."""
        servers = self.config.parsed_servers
        timeout = self.query_timeout
        replies: list[ServerReply | None] = [None] * len(servers)
        threads = []
        for index, server in enumerate(servers):
            thread = threading.Thread(target=self._ask, args=(index, server, timeout, replies),
                                      name=f"ntp {server.label}", daemon=True)
            thread.start()
            threads.append(thread)
        # A name lookup is not covered by the socket timeout: stop waiting at the deadline
        # and leave a stuck thread behind (daemon) rather than overrun the run's timeout.
        deadline = time.monotonic() + timeout + 0.5
        local = self.read_local() if self.config.check_local else None
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        final = tuple(
            reply or ServerReply(server.label, error=f"no answer within {timeout:g}s")
            for server, reply in zip(servers, replies, strict=True)
        )
        facts = NtpFacts(final, local)
        return evaluate(self.config, facts, self.context.clock(), check=self.context.name)

    def _ask(self, index: int, server: Server, timeout: float,
             replies: list[ServerReply | None]) -> None:
        try:
            replies[index] = self.query(server, timeout)
        except Exception as err:  # reported for that server, never lost
            replies[index] = ServerReply(server.label, error=f"{type(err).__name__}: {err}")

    def read_local(self) -> LocalFacts:
        """Kernel, chronyd and ntpd state; whatever cannot be read becomes a note."""
        notes: list[str] = []
        kernel: KernelClock | None = None
        try:
            kernel = self.kernel()
        except OSError as err:
            notes.append(f"kernel clock state unreadable: {err}")
        daemons: list[DaemonState] = []
        for reader in (read_chronyd, read_ntpd):
            state, note = reader(self.config, self.run_command, self.command_timeout)
            if state is not None:
                daemons.append(state)
            if note:
                notes.append(note)
        state, note = read_timesyncd(self.timesync_dir, time.time())
        if state is not None:
            daemons.append(state)
        if note:
            notes.append(note)
        return LocalFacts(kernel, tuple(daemons), tuple(notes))
