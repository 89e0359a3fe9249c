"""The ``disk`` check: space, inodes and time-to-full of every real filesystem, once.

Collect, then judge. ``DiskCheck.run`` reads the mount table, picks one mount point per
filesystem, calls ``statvfs`` on each under a timeout and keeps a short history of used
bytes; ``evaluate`` turns those facts into one ``CheckResult`` per filesystem without any
I/O. The reference of every key and the reasoning behind time-to-full is docs/checks/disk.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from checks.config import Bytes, ConfigError, Percent, Seconds
from checks.growth import (
    Growth,
    Sample,
    estimate_growth,
    format_duration,
    load_history,
    record_sample,
    save_history,
    time_to_full,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown, worst

# Pseudo, volatile and read-only image filesystems: they are either not storage at all,
# vanish with a reboot, or are always 100% full by design (squashfs, erofs, iso9660).
DEFAULT_EXCLUDED_TYPES: tuple[str, ...] = (
    "aufs", "autofs", "binder", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs",
    "debugfs", "devpts", "devtmpfs", "efivarfs", "erofs", "fusectl", "fuse.gvfsd-fuse",
    "fuse.lxcfs", "fuse.portal", "fuse.snapfuse", "fuse.xdg-document-portal", "hugetlbfs",
    "iso9660", "mqueue", "nfsd", "nsfs", "overlay", "proc", "pstore", "ramfs", "rootfs",
    "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
)


@dataclass(frozen=True)
class DiskConfig:
    """``[checks.<name>]`` of type ``disk``; every key and its default in docs/checks/disk.md."""

    include_mounts: tuple[str, ...] = ()
    exclude_mounts: tuple[str, ...] = ()
    include_types: tuple[str, ...] = ()
    exclude_types: tuple[str, ...] = ()
    space_warn_pct: Percent = Percent(85)
    space_crit_pct: Percent = Percent(95)
    space_warn_free: Bytes | None = None
    space_crit_free: Bytes | None = None
    inode_warn_pct: Percent = Percent(85)
    inode_crit_pct: Percent = Percent(95)
    full_horizon: Seconds = Seconds(24 * 3600)
    growth_window: Seconds = Seconds(6 * 3600)
    growth_min_span: Seconds = Seconds(30 * 60)
    growth_min_samples: int = 4
    growth_max_samples: int = 72
    statvfs_timeout: Seconds = Seconds(5)

    def __post_init__(self) -> None:
        if self.space_warn_pct > self.space_crit_pct:
            raise ConfigError("space_warn_pct", "must not be above space_crit_pct")
        if self.inode_warn_pct > self.inode_crit_pct:
            raise ConfigError("inode_warn_pct", "must not be above inode_crit_pct")
        if (
            self.space_warn_free is not None
            and self.space_crit_free is not None
            and self.space_warn_free < self.space_crit_free
        ):
            raise ConfigError("space_warn_free", "must not be below space_crit_free")
        if self.growth_min_samples < 3:
            raise ConfigError("growth_min_samples", "must be at least 3 (two intervals)")
        if self.growth_max_samples < self.growth_min_samples:
            raise ConfigError("growth_max_samples", "must not be below growth_min_samples")
        if self.growth_min_span > self.growth_window:
            raise ConfigError("growth_min_span", "must not be longer than growth_window")
        if self.statvfs_timeout <= 0:
            raise ConfigError("statvfs_timeout", "must be more than 0 seconds")


class Condition(StrEnum):
    """The worst reason of a disk result; the collector maps it to a priority."""

    FULL = "full"
    SPACE = "space"
    INODES = "inodes"
    TIME_TO_FULL = "time_to_full"
    OK = "ok"


# ---------------------------------------------------------------------------- mount table


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo, unescaped."""

    device: str
    """``major:minor`` of the filesystem (the same for every mount of it)."""
    root: str
    """The directory of the filesystem mounted here: ``/`` unless a bind of a subtree."""
    mount_point: str
    fstype: str
    source: str


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape(field_text: str) -> str:
    r"""Undo the kernel's octal escapes in mountinfo (``\040`` space, ``\011`` tab, ...)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The entries of a mountinfo text, in mount order; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)  # optional fields end at a lone "-"
        except ValueError:
            continue
        if len(fields) < separator + 3:
            continue
        entries.append(
            MountEntry(
                device=fields[2],
                root=unescape(fields[3]),
                mount_point=unescape(fields[4]),
                fstype=fields[separator + 1],
                source=unescape(fields[separator + 2]),
            )
        )
    return entries


@dataclass(frozen=True, slots=True)
class Filesystem:
    """A filesystem to check, named by the one mount point it is reported under."""

    device: str
    mount_point: str
    fstype: str
    source: str
    root: str = "/"
    other_mount_points: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MissingMount:
    """An ``include_mounts`` path (no wildcard) that names no checked filesystem."""

    mount_point: str
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    """What ``select_filesystems`` chose."""

    filesystems: tuple[Filesystem, ...]
    missing: tuple[MissingMount, ...] = ()


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def type_is_checked(fstype: str, config: DiskConfig) -> bool:
    """Type filter: exclude_types beats include_types, which beats the default exclusions."""
    if _matches(fstype, config.exclude_types):
        return False
    if _matches(fstype, config.include_types):
        return True
    return not _matches(fstype, DEFAULT_EXCLUDED_TYPES)


def mount_is_checked(mount_point: str, config: DiskConfig) -> bool:
    """Mount filter: exclude_mounts beats include_mounts; no include_mounts means all."""
    if _matches(mount_point, config.exclude_mounts):
        return False
    return not config.include_mounts or _matches(mount_point, config.include_mounts)


def select_filesystems(entries: Sequence[MountEntry], config: DiskConfig) -> Selection:
    """Each checked filesystem once, under its best mount point, with its other ones."""
    # A later mount on the same point hides the earlier one; statvfs on the path would
    # measure the visible filesystem, so the hidden entry must not be reported.
    visible: dict[str, MountEntry] = {}
    for entry in entries:
        visible.pop(entry.mount_point, None)
        visible[entry.mount_point] = entry
    by_device: dict[str, list[MountEntry]] = {}
    for entry in visible.values():
        by_device.setdefault(entry.device, []).append(entry)

    chosen: list[Filesystem] = []
    for mounts in by_device.values():
        if not type_is_checked(mounts[0].fstype, config):
            continue
        candidates = [m for m in mounts if mount_is_checked(m.mount_point, config)]
        if not candidates:
            continue
        # Prefer a mount of the whole filesystem over a bind of a subtree, then the
        # shortest path. A filesystem seen only through subtrees (a btrfs subvolume
        # mounted as /) is still reported: leaving it out would hide a real disk.
        order = {id(m): i for i, m in enumerate(mounts)}
        best = min(candidates, key=lambda m: (m.root != "/", len(m.mount_point), order[id(m)]))
        others = tuple(m.mount_point for m in mounts if m is not best)
        chosen.append(
            Filesystem(best.device, best.mount_point, best.fstype, best.source, best.root, others)
        )

    reported = {fs.mount_point for fs in chosen} | {
        mp for fs in chosen for mp in fs.other_mount_points
    }
    missing = []
    for wanted in config.include_mounts:
        if any(c in wanted for c in "*?[") or wanted in reported:
            continue
        if _matches(wanted, config.exclude_mounts):
            continue  # excluded on purpose as well: the user's exclude wins
        shown = visible.get(wanted)
        if shown is None:
            missing.append(MissingMount(wanted, f"{wanted} is not a mount point"))
        else:
            missing.append(
                MissingMount(
                    wanted,
                    f"{wanted} is a {shown.fstype} filesystem, not checked "
                    "(add its type to include_types)",
                )
            )
    return Selection(tuple(chosen), tuple(missing))


# ---------------------------------------------------------------------------- statvfs


@dataclass(frozen=True, slots=True)
class Usage:
    """The statvfs figures of one filesystem, in blocks of ``block_size`` bytes."""

    block_size: int
    blocks: int
    blocks_free: int
    blocks_available: int
    files: int
    files_free: int

    @classmethod
    def from_statvfs(cls, st: os.statvfs_result) -> Usage:
        """From ``os.statvfs``; ``f_frsize`` is the unit of the block counts."""
        return cls(
            block_size=st.f_frsize or st.f_bsize,
            blocks=st.f_blocks,
            blocks_free=st.f_bfree,
            blocks_available=st.f_bavail,
            files=st.f_files,
            files_free=st.f_ffree,
        )

    @property
    def size_bytes(self) -> int:
        """Total size, as ``df`` shows it."""
        return self.blocks * self.block_size

    @property
    def used_bytes(self) -> int:
        """Used space: blocks minus free blocks (reserved blocks count as free here)."""
        return max(0, self.blocks - self.blocks_free) * self.block_size

    @property
    def available_bytes(self) -> int:
        """Space an unprivileged writer can still use (root-reserved blocks excluded)."""
        return max(0, self.blocks_available) * self.block_size

    @property
    def used_pct(self) -> float:
        """Like df: used / (used + available), so the root reserve counts as used up."""
        denominator = self.used_bytes + self.available_bytes
        return 100.0 * self.used_bytes / denominator if denominator else 0.0

    @property
    def inodes_used_pct(self) -> float:
        """Like ``df -i``: inodes in use out of all inodes."""
        if self.files <= 0:
            return 0.0
        return 100.0 * max(0, self.files - self.files_free) / self.files


StatvfsFunction = Callable[[str], os.statvfs_result]


@dataclass
class _Probe:
    mount_point: str
    started_at: float
    done: threading.Event = field(default_factory=threading.Event)
    result: os.statvfs_result | None = None
    error: str = ""


class StatvfsProbes:
    """Runs statvfs calls in daemon threads and remembers those that never returned.

    A statvfs on a dead NFS server blocks in the kernel and cannot be interrupted; the
    thread is left behind (daemon, so it does not hold up exit) and recorded here, so the
    next run reports "still hung" instead of piling another stuck thread on the mount.
    One instance is shared by all disk checks of the process (``SHARED_PROBES``).
    """

    def __init__(self) -> None:
        self._hung: dict[str, _Probe] = {}
        self._lock = threading.Lock()

    def hung_mount_points(self) -> list[str]:
        """Mount points whose statvfs has not returned yet."""
        with self._lock:
            return [mp for mp, probe in self._hung.items() if not probe.done.is_set()]

    def measure(
        self,
        mount_points: Sequence[str],
        statvfs: StatvfsFunction,
        *,
        timeout: float,
        clock: Callable[[], float],
    ) -> dict[str, Usage | str]:
        """Usage per mount point, or the reason there is none; returns within ``timeout``."""
        deadline = time.monotonic() + timeout
        outcome: dict[str, Usage | str] = {}
        started: list[_Probe] = []
        with self._lock:
            for mount_point in mount_points:
                previous = self._hung.get(mount_point)
                if previous is not None and not previous.done.is_set():
                    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(previous.started_at))
                    age = format_duration(clock() - previous.started_at)
                    outcome[mount_point] = (
                        f"statvfs on {mount_point} still hung since {since} ({age} ago)"
                    )
                    continue
                self._hung.pop(mount_point, None)
                probe = _Probe(mount_point, clock())
                threading.Thread(
                    target=_run_probe,
                    args=(probe, statvfs),
                    name=f"statvfs {mount_point}",
                    daemon=True,
                ).start()
                started.append(probe)
        for probe in started:
            probe.done.wait(max(0.0, deadline - time.monotonic()))
            if not probe.done.is_set():
                with self._lock:
                    self._hung[probe.mount_point] = probe
                outcome[probe.mount_point] = (
                    f"statvfs on {probe.mount_point} did not answer within {timeout:g}s"
                )
            elif probe.result is None:
                outcome[probe.mount_point] = f"statvfs on {probe.mount_point} failed: {probe.error}"
            else:
                outcome[probe.mount_point] = Usage.from_statvfs(probe.result)
        return outcome


def _run_probe(probe: _Probe, statvfs: StatvfsFunction) -> None:
    try:
        probe.result = statvfs(probe.mount_point)
    except OSError as err:
        probe.error = f"{err.strerror or err} (errno {err.errno})" if err.errno else str(err)
    except Exception as err:  # reported as UNKNOWN by the caller, never lost
        probe.error = f"{type(err).__name__}: {err}"
    finally:
        probe.done.set()


SHARED_PROBES = StatvfsProbes()


# ---------------------------------------------------------------------------- judgement


@dataclass(frozen=True, slots=True)
class FilesystemFacts:
    """Everything gathered about one filesystem; ``usage`` is None when statvfs failed."""

    filesystem: Filesystem
    usage: Usage | None
    error: str = ""
    growth: Growth | None = None


def evaluate(
    facts: Sequence[FilesystemFacts],
    config: DiskConfig,
    *,
    check: str,
    missing: Sequence[MissingMount] = (),
    details: Mapping[str, Any] | None = None,
) -> list[CheckResult]:
    """One result per filesystem (and per missing mount); pure, no I/O."""
    extra = dict(details or {})
    results = [evaluate_filesystem(f, config, check=check, details=extra) for f in facts]
    results.extend(unknown(check, m.mount_point, m.reason, **extra) for m in missing)
    return results


def evaluate_filesystem(
    facts: FilesystemFacts,
    config: DiskConfig,
    *,
    check: str,
    details: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Judge one filesystem: full, then space and inode thresholds, then time-to-full."""
    fs = facts.filesystem
    info: dict[str, Any] = {
        "device": fs.device,
        "fstype": fs.fstype,
        "source": fs.source,
        "other_mount_points": list(fs.other_mount_points),
    }
    if fs.root != "/":
        info["subtree"] = fs.root
    info.update(details or {})
    usage = facts.usage
    if usage is None:
        return unknown(check, fs.mount_point, facts.error or "no figures", **info)
    if usage.blocks <= 0:
        info["condition"] = Condition.OK
        summary = f"{_short_path(fs.mount_point)} reports no size, nothing to judge"
        return CheckResult(check, fs.mount_point, Status.OK, summary, (), info)

    growth = facts.growth
    rate = growth.rate if growth else None
    seconds_to_full = time_to_full(usage.available_bytes, rate)
    info["growth_bytes_per_second"] = rate
    if growth is not None:
        info["history_samples"] = growth.samples
        info["history_span_seconds"] = round(growth.span, 1)
        if growth.note:
            info["growth_note"] = growth.note

    has_inodes = usage.files > 0
    no_space = usage.available_bytes <= 0
    no_inodes = has_inodes and usage.files_free <= 0
    reasons: list[tuple[Status, Condition]] = [
        (_level(usage.used_pct, config.space_warn_pct, config.space_crit_pct), Condition.SPACE),
        (_below(usage.available_bytes, config.space_warn_free, config.space_crit_free),
         Condition.SPACE),
    ]
    if has_inodes:
        level = _level(usage.inodes_used_pct, config.inode_warn_pct, config.inode_crit_pct)
        reasons.append((level, Condition.INODES))
    if seconds_to_full is not None and seconds_to_full <= config.full_horizon:
        reasons.append((Status.WARNING, Condition.TIME_TO_FULL))

    if no_space or no_inodes:
        status, condition = Status.CRITICAL, Condition.FULL
    else:
        status = worst(s for s, _ in reasons)
        condition = next((c for s, c in reasons if s is status and s is not Status.OK),
                         Condition.OK)
    info["condition"] = condition

    metrics = _metrics(usage, config, seconds_to_full)
    summary = _summary(fs.mount_point, usage, condition, no_inodes, seconds_to_full)
    return CheckResult(check, fs.mount_point, status, summary, metrics, info)


def _level(value: float, warn: float, crit: float) -> Status:
    if value >= crit:
        return Status.CRITICAL
    if value >= warn:
        return Status.WARNING
    return Status.OK


def _below(value: int, warn: int | None, crit: int | None) -> Status:
    if crit is not None and value < crit:
        return Status.CRITICAL
    if warn is not None and value < warn:
        return Status.WARNING
    return Status.OK


def _metrics(usage: Usage, config: DiskConfig, seconds_to_full: float | None) -> tuple[Metric, ...]:
    size = float(usage.size_bytes)
    metrics = [
        Metric("used_pct", round(usage.used_pct, 2), "%",
               config.space_warn_pct, config.space_crit_pct, 0, 100),
        Metric("used_bytes", usage.used_bytes, "B", min=0, max=size),
        # Thresholds on free_bytes are lower bounds: alarm when free drops below them.
        Metric("free_bytes", usage.available_bytes, "B",
               config.space_warn_free, config.space_crit_free, 0, size),
        Metric("size_bytes", usage.size_bytes, "B", min=0),
    ]
    if usage.files > 0:
        metrics += [
            Metric("inodes_used_pct", round(usage.inodes_used_pct, 2), "%",
                   config.inode_warn_pct, config.inode_crit_pct, 0, 100),
            Metric("inodes_free", usage.files_free, min=0, max=usage.files),
        ]
    if seconds_to_full is not None:
        metrics.append(
            Metric("time_to_full_seconds", round(seconds_to_full), "s", config.full_horizon, min=0)
        )
    return tuple(metrics)


def _summary(
    mount_point: str,
    usage: Usage,
    condition: Condition,
    no_inodes: bool,
    seconds_to_full: float | None,
) -> str:
    where = _short_path(mount_point)
    space = (
        f"{usage.used_pct:.1f}% used ({format_bytes(usage.available_bytes)} free "
        f"of {format_bytes(usage.size_bytes)})"
    )
    if condition is Condition.FULL and no_inodes:
        return f"{where} FULL: no inodes left ({usage.files} in use), space {usage.used_pct:.1f}%"
    if condition is Condition.FULL:
        return f"{where} FULL: 0 B free of {format_bytes(usage.size_bytes)}"
    if condition is Condition.INODES:
        return (
            f"{where} inodes {usage.inodes_used_pct:.1f}% used "
            f"({format_count(usage.files_free)} free), space {usage.used_pct:.1f}%"
        )
    if seconds_to_full is not None:
        return f"{where} {space}, full in ~{format_duration(seconds_to_full, coarse=True)}"
    return f"{where} {space}"


def _short_path(path: str, limit: int = 40) -> str:
    # A ticket subject is one line of ~80 characters: keep the distinctive end of the path
    # and show the (legal, rare) tabs and newlines of a mount point as escapes.
    path = path.translate({9: "\\t", 10: "\\n", 13: "\\r"})
    return path if len(path) <= limit else "..." + path[-(limit - 3):]


def format_bytes(value: float) -> str:
    """Binary units as df -h shows them: 512 B, 8.1 GiB, 92 GiB."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    number = float(value)
    for unit in units:
        if abs(number) < 1024 or unit == units[-1]:
            if unit == "B":
                return f"{number:.0f} B"
            return f"{number:.1f} {unit}" if abs(number) < 10 else f"{number:.0f} {unit}"
        number /= 1024
    raise AssertionError("unreachable")


def format_count(value: int) -> str:
    """A count for summaries: 950, 31k, 6.1M."""
    if value < 1000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.0f}k" if value >= 10_000 else f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


# ---------------------------------------------------------------------------- the check


class DiskCheck:
    """Space, inodes and time-to-full of every real filesystem, one result each."""

    type_name: ClassVar[str] = "disk"
    Config: ClassVar[type[DiskConfig]] = DiskConfig

    def __init__(
        self,
        config: DiskConfig,
        context: CheckContext,
        *,
        mountinfo: Path = Path("/proc/self/mountinfo"),
        statvfs: StatvfsFunction = os.statvfs,
        probes: StatvfsProbes = SHARED_PROBES,
    ) -> None:
        self.config = config
        self.context = context
        self.mountinfo = mountinfo
        self.statvfs = statvfs
        self.probes = probes
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", context.name)
        self.history_path = context.state_dir / f"disk-{safe_name}.history.json"

    @property
    def statvfs_timeout(self) -> float:
        """The per-run statvfs budget: the configured one, kept inside the run's timeout."""
        return min(float(self.config.statvfs_timeout), 0.8 * self.context.timeout)

    def run(self) -> list[CheckResult]:
        """Gather the facts of every selected filesystem and judge them."""
        name = self.context.name
        try:
            text = self.mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as err:
            return [unknown(name, "", f"cannot read {self.mountinfo}: {err.strerror or err}")]
        selection = select_filesystems(parse_mountinfo(text), self.config)
        if not selection.filesystems and not selection.missing:
            return [unknown(name, "", "no filesystem matches include/exclude of this check")]

        measured = self.probes.measure(
            [fs.mount_point for fs in selection.filesystems],
            self.statvfs,
            timeout=self.statvfs_timeout,
            clock=self.context.clock,
        )
        now = self.context.clock()
        history, load_note = load_history(self.history_path)
        kept: dict[str, list[Sample]] = {}
        facts = []
        for fs in selection.filesystems:
            key = f"{fs.device} {fs.mount_point}"
            outcome = measured[fs.mount_point]
            if isinstance(outcome, str):
                kept[key] = history.get(key, [])  # a hang must not wipe the history
                facts.append(FilesystemFacts(fs, None, outcome))
                continue
            samples = record_sample(
                history.get(key, []),
                Sample(now, outcome.used_bytes),
                window=self.config.growth_window,
                max_samples=self.config.growth_max_samples,
            )
            kept[key] = samples
            growth = estimate_growth(
                samples,
                min_span=self.config.growth_min_span,
                min_samples=self.config.growth_min_samples,
            )
            facts.append(FilesystemFacts(fs, outcome, growth=growth))
        save_note = save_history(self.history_path, kept)
        notes = "; ".join(n for n in (load_note, save_note) if n)
        return evaluate(
            facts,
            self.config,
            check=name,
            missing=selection.missing,
            details={"history_note": notes} if notes else None,
        )
