"""The ``os_updates`` check: pending security updates, reboot needed, stale package lists.

Collect, then judge. ``OsUpdatesCheck.run`` asks the package manager what it would do, by
simulation only (``apt-get -s`` on Debian and Ubuntu; ``dnf``/``yum`` with ``-C``, from the
cache, on the RHEL family), reads the reboot markers and the installed kernels, and the age
of the package metadata. ``evaluate`` judges those facts without I/O: one result for
pending updates (target ``security``), one for the reboot (``reboot``), one for the age of
the package metadata (``metadata``). Keys, statuses and the reasoning behind the defaults:
docs/checks/os_updates.md.

The package manager's answer is slow (seconds), so it is kept in the state directory and
asked again only when older than ``cache_for`` or when the package database or the package
lists changed. The first time each pending security update was seen is kept there too:
that is what "pending for 30 days" is measured from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks.commands import CommandRunner, find_program, first_line, run_command
from checks.config import ConfigError, Seconds
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown
from checks.statefile import write_json

SECURITY_TARGET = "security"
REBOOT_TARGET = "reboot"
METADATA_TARGET = "metadata"
DAY = 86400.0
STATE_VERSION = 1

Family = Literal["debian", "rhel"]

# ---------------------------------------------------------------------------- config


@dataclass(frozen=True)
class OsUpdatesConfig:
    """``[checks.<name>]`` of type ``os_updates``; keys and defaults: docs/checks/os_updates.md."""

    family: Literal["auto", "debian", "rhel"] = "auto"
    root: str = "/"
    refresh: bool = False
    cache_for: Seconds = Seconds(6 * 3600)
    command_timeout: Seconds = Seconds(120)
    security_warn: int = 1
    security_crit: int = 0
    security_age_crit: Seconds = Seconds(30 * DAY)
    updates_warn: int = 0
    metadata_age_warn: Seconds = Seconds(7 * DAY)
    check_reboot: bool = True
    reboot_status: Literal["warning", "critical"] = "warning"
    apt_get: str = "apt-get"
    dnf: str = "dnf"
    yum: str = "yum"
    needs_restarting: str = "needs-restarting"
    rpm: str = "rpm"

    def __post_init__(self) -> None:
        if not self.root.startswith("/"):
            raise ConfigError("root", f"must be an absolute path, got {self.root!r}")
        if self.security_warn < 1:
            raise ConfigError("security_warn", "must be at least 1")
        if self.security_crit < 0:
            raise ConfigError("security_crit", "must be 0 (off) or more")
        if self.security_crit and self.security_crit < self.security_warn:
            raise ConfigError("security_crit", "must not be below security_warn")
        if self.updates_warn < 0:
            raise ConfigError("updates_warn", "must be 0 (off) or more")
        if self.command_timeout <= 0:
            raise ConfigError("command_timeout", "must be more than 0 seconds")
        for key in ("apt_get", "dnf", "yum", "needs_restarting", "rpm"):
            if not str(getattr(self, key)).strip():
                raise ConfigError(key, "must name a program")

    def path(self, relative: str) -> Path:
        """A file of the host, under ``root``."""
        return Path(self.root) / relative.lstrip("/")


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """One package the package manager would upgrade."""

    name: str
    new_version: str
    old_version: str = ""
    security: bool = False
    origin: str = ""
    """Where the new version comes from: apt archives (``Debian-Security:12/...``) or an
    advisory id (``RHSA-2024:1234``)."""


@dataclass(frozen=True, slots=True)
class UpdateList:
    """What an upgrade would do now, from a simulation (nothing is changed)."""

    updates: tuple[PendingUpdate, ...]
    held_back: tuple[str, ...] = ()
    """Upgradable packages the upgrade would not touch (apt: "kept back")."""
    source: str = ""
    """The command the answer came from."""

    @property
    def security(self) -> tuple[PendingUpdate, ...]:
        """The pending updates that fix security problems."""
        return tuple(u for u in self.updates if u.security)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form, for the cache in the state directory."""
        return {
            "updates": [[u.name, u.new_version, u.old_version, u.security, u.origin]
                        for u in self.updates],
            "held_back": list(self.held_back),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UpdateList:
        """Inverse of ``to_json``; KeyError, TypeError or ValueError when malformed."""
        updates = tuple(
            PendingUpdate(str(n), str(new), str(old), bool(sec), str(origin))
            for n, new, old, sec, origin in data["updates"]
        )
        return cls(updates, tuple(str(h) for h in data["held_back"]), str(data["source"]))


@dataclass(frozen=True, slots=True)
class RebootFacts:
    """Why a reboot is needed, as far as the host tells."""

    required: bool | None
    """True when a marker says so; None when nothing could tell."""
    since: float | None = None
    """Epoch seconds of the marker (Debian's /run/reboot-required)."""
    packages: tuple[str, ...] = ()
    """The packages that asked for it (Debian's reboot-required.pkgs)."""
    reason: str = ""
    running_kernel: str = ""
    newest_kernel: str = ""
    """The newest installed kernel, when it could be found."""
    notes: tuple[str, ...] = ()

    @property
    def kernel_outdated(self) -> bool:
        """The running kernel is older than the newest installed one."""
        return bool(self.running_kernel and self.newest_kernel
                    and self.running_kernel != self.newest_kernel
                    and version_key(self.newest_kernel) > version_key(self.running_kernel))


@dataclass(frozen=True, slots=True)
class OsUpdatesFacts:
    """Everything collected in one run."""

    family: str
    updates: UpdateList | None
    update_error: str = ""
    first_seen: Mapping[str, float] = field(default_factory=dict)
    """Package name -> epoch seconds when its security update was first seen pending."""
    state_error: str = ""
    """Why the first-seen times could not be read or kept (ages are then unreliable)."""
    reboot: RebootFacts | None = None
    metadata_time: float | None = None
    """Epoch seconds of the newest evidence that the package lists were refreshed."""
    metadata_error: str = ""
    cached_at: float | None = None
    """When the update list was computed, if it came from the cache."""
    state_file: str = ""


# ---------------------------------------------------------------------------- parsing

_APT_INST = re.compile(
    r"^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]*)\] )?\((?P<new>\S+)(?: (?P<origins>.*?))? "
    r"\[[^\]]+\]\)"
)
_APT_SUMMARY = re.compile(r"^(\d+) upgraded, (\d+) newly installed, (\d+) to remove and "
                          r"(\d+) not upgraded")


def apt_origin_is_security(origins: str) -> bool:
    """True when one of the archives (``Label:version/suite``) is a ``-security`` suite."""
    for origin in origins.split(","):
        suite = origin.strip().rpartition("/")[2]
        if suite.endswith("-security") or suite == "security":
            return True
    return False


def parse_apt_simulation(text: str) -> UpdateList:
    """``apt-get -s dist-upgrade`` output; ValueError when it is not one."""
    updates: list[PendingUpdate] = []
    held_back: list[str] = []
    in_kept = False
    summary_seen = False
    for line in text.splitlines():
        if line.startswith("The following packages have been kept back"):
            in_kept = True
            continue
        if in_kept:
            if line.startswith("  "):
                held_back.extend(line.split())
                continue
            in_kept = False
        if _APT_SUMMARY.match(line):
            summary_seen = True
            continue
        match = _APT_INST.match(line)
        if match is None or match.group("old") is None:
            continue  # a new dependency, a removal or a configure step: not an upgrade
        origins = match.group("origins") or ""
        updates.append(PendingUpdate(
            match.group("name"), match.group("new"), match.group("old"),
            apt_origin_is_security(origins), origins,
        ))
    if not summary_seen:
        first = text.strip().splitlines()[:1]
        raise ValueError(f"no upgrade summary line in apt-get output: {first!r}")
    return UpdateList(tuple(updates), tuple(held_back))


_NEVRA_ARCHES = ("x86_64", "noarch", "aarch64", "i686", "ppc64le", "s390x", "src", "armv7hl")


def rpm_name(nevra: str) -> str:
    """``openssl-libs-1:3.0.7-27.el9.x86_64`` -> ``openssl-libs``."""
    base = nevra
    head, dot, arch = base.rpartition(".")
    if dot and arch in _NEVRA_ARCHES:
        base = head
    parts = base.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else base


def rpm_version(nevra: str) -> str:
    """``openssl-libs-1:3.0.7-27.el9.x86_64`` -> ``1:3.0.7-27.el9``."""
    head, dot, arch = nevra.rpartition(".")
    base = head if dot and arch in _NEVRA_ARCHES else nevra
    parts = base.rsplit("-", 2)
    return "-".join(parts[1:]) if len(parts) == 3 else ""


def parse_updateinfo(text: str) -> dict[str, tuple[str, str]]:
    """``dnf updateinfo list --security`` / ``yum updateinfo list security`` lines.

    Package name -> (advisory, new version). Both tools print ``ADVISORY SEVERITY/Sec.
    NEVRA`` (yum 3 and dnf 4; yum adds "Loaded plugins" and "updateinfo list done" lines
    around it, dnf with ``-q`` nothing).
    """
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        advisory, kind, nevra = fields
        if not (kind.endswith("/Sec.") or kind.lower() == "security"):
            continue
        if not re.search(r"-\d", nevra) or "." not in nevra:
            continue
        found.setdefault(rpm_name(nevra), (advisory, rpm_version(nevra)))
    return found


def parse_check_update(text: str) -> dict[str, str]:
    """``dnf/yum check-update`` lines (``name.arch  version  repo``): name -> version."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("Obsoleting", "Security:", "Last metadata")):
            if line.startswith("Obsoleting"):
                break
            continue
        fields = line.split()
        if len(fields) != 3 or line.startswith(" "):
            continue
        name_arch, version, _repo = fields
        name, dot, arch = name_arch.rpartition(".")
        if not dot or arch not in _NEVRA_ARCHES or not version[:1].isdigit():
            continue
        found.setdefault(name, version)
    return found


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """An ordering of kernel releases: numbers compare as numbers (``6.1.0-28`` > ``6.1.0-9``)."""
    return tuple((int(p), "") if p.isdigit() else (-1, p)
                 for p in re.split(r"[.\-+~_:]", version) if p)


def kernel_flavour(release: str) -> str:
    """What follows the version in a kernel release: ``6.1.0-28-rt-amd64`` -> ``rt-amd64``."""
    segments = release.split("-")
    numbered = [i for i, segment in enumerate(segments) if segment[:1].isdigit()]
    return "-".join(segments[numbered[-1] + 1:]) if numbered else release


def newest_kernel(running: str, installed: Iterable[str]) -> str:
    """The newest installed kernel of the running one's flavour (``amd64`` vs ``rt-amd64``)."""
    flavour = kernel_flavour(running)
    same = [k for k in installed if kernel_flavour(k) == flavour]
    return max(same, key=version_key) if same else ""


def family_from_os_release(text: str) -> Family | None:
    """``debian`` or ``rhel`` from /etc/os-release ``ID`` and ``ID_LIKE``; None otherwise."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip().strip("\"'")
    ids = [values.get("ID", ""), *values.get("ID_LIKE", "").split()]
    for ident in ids:
        if ident in ("debian", "ubuntu", "raspbian", "linuxmint"):
            return "debian"
        if ident in ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"):
            return "rhel"
    return None


# ---------------------------------------------------------------------------- judgement


def format_age(seconds: float) -> str:
    """``3 hours``, ``9 days``."""
    if seconds < 2 * 3600:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if seconds < 2 * DAY:
        return f"{int(seconds // 3600)} hours"
    return f"{int(seconds // DAY)} days"


def _for(seconds: float) -> str:
    return f" for {format_age(seconds)}" if seconds >= 3600 else ""


def _names(updates: Iterable[PendingUpdate], limit: int = 3) -> str:
    names = sorted({u.name for u in updates})
    text = ", ".join(names[:limit])
    return f"{text} +{len(names) - limit} more" if len(names) > limit else text


def evaluate(
    config: OsUpdatesConfig, facts: OsUpdatesFacts, now: float, *, check: str
) -> list[CheckResult]:
    """One result each for pending updates, the reboot (if checked) and the metadata age."""
    results = [evaluate_updates(config, facts, now, check=check)]
    if config.check_reboot:
        results.append(evaluate_reboot(config, facts.reboot, now, check=check))
    results.append(evaluate_metadata(config, facts, now, check=check))
    return results


def evaluate_updates(
    config: OsUpdatesConfig, facts: OsUpdatesFacts, now: float, *, check: str
) -> CheckResult:
    """Security updates pending: WARNING at ``security_warn``, CRITICAL by count or age."""
    if facts.updates is None:
        return unknown(check, SECURITY_TARGET,
                       f"cannot list pending updates: {facts.update_error}",
                       family=facts.family)
    listing = facts.updates
    security = listing.security
    count = len({u.name for u in security})
    total = len({u.name for u in listing.updates})
    seen = [facts.first_seen.get(u.name, now) for u in security]
    pending_for = max(0.0, now - min(seen)) if seen else 0.0
    age_crit = float(config.security_age_crit)
    info: dict[str, Any] = {
        "family": facts.family,
        "source": listing.source,
        "security_updates": sorted({u.name for u in security}),
        "updates": total,
        "held_back": list(listing.held_back),
        "oldest_pending_seconds": round(pending_for),
        "origins": {u.name: u.origin for u in security},
    }
    if facts.cached_at is not None:
        info["computed_at"] = facts.cached_at
    metrics = (
        Metric("security_updates", count, "", config.security_warn,
               config.security_crit or None, min=0),
        Metric("updates", total, "", config.updates_warn or None, None, min=0),
        Metric("security_pending_age", round(pending_for), "s", None,
               age_crit or None, min=0),
        Metric("held_back", len(listing.held_back), "", min=0),
    )
    if facts.state_error:
        info["error"] = facts.state_error
        if facts.state_file:
            info["state_file"] = facts.state_file
        return CheckResult(check, SECURITY_TARGET, Status.UNKNOWN,
                           f"{count} security updates pending; {facts.state_error}"[:200],
                           metrics, info)
    if count and age_crit and pending_for >= age_crit:
        return CheckResult(
            check, SECURITY_TARGET, Status.CRITICAL,
            f"{count} security updates pending for {format_age(pending_for)}: "
            f"{_names(security)}", metrics, {**info, "reason": "age"})
    if config.security_crit and count >= config.security_crit:
        return CheckResult(
            check, SECURITY_TARGET, Status.CRITICAL,
            f"{count} security updates pending: {_names(security)}", metrics,
            {**info, "reason": "count"})
    if count >= config.security_warn:
        return CheckResult(
            check, SECURITY_TARGET, Status.WARNING,
            f"{count} security updates pending{_for(pending_for)}: {_names(security)}",
            metrics, {**info, "reason": "count"})
    if config.updates_warn and total >= config.updates_warn:
        return CheckResult(check, SECURITY_TARGET, Status.WARNING,
                           f"{total} updates pending (none for security): "
                           f"{_names(listing.updates)}", metrics, {**info, "reason": "updates"})
    summary = (f"no security updates pending ({total} other updates)" if total
               else "no updates pending")
    return CheckResult(check, SECURITY_TARGET, Status.OK, summary, metrics, info)


def evaluate_reboot(
    config: OsUpdatesConfig, reboot: RebootFacts | None, now: float, *, check: str
) -> CheckResult:
    """A reboot marker or a running kernel older than the installed one: ``reboot_status``."""
    if reboot is None:
        return unknown(check, REBOOT_TARGET, "reboot state not read")
    status = Status.CRITICAL if config.reboot_status == "critical" else Status.WARNING
    info: dict[str, Any] = {
        "running_kernel": reboot.running_kernel,
        "newest_kernel": reboot.newest_kernel,
        "packages": list(reboot.packages),
        "notes": list(reboot.notes),
    }
    metrics: tuple[Metric, ...] = ()
    since = ""
    if reboot.since is not None:
        age = max(0.0, now - reboot.since)
        info["required_since"] = reboot.since
        metrics = (Metric("reboot_pending_age", round(age), "s", min=0),)
        since = f" for {format_age(age)}"
    if reboot.kernel_outdated:
        return CheckResult(
            check, REBOOT_TARGET, status,
            f"reboot required: running kernel {reboot.running_kernel}, installed "
            f"{reboot.newest_kernel}"[:200], metrics, {**info, "reason": "kernel"})
    if reboot.required:
        by = f" by {', '.join(reboot.packages[:4])}" if reboot.packages else ""
        more = f" +{len(reboot.packages) - 4} more" if len(reboot.packages) > 4 else ""
        why = f" ({reboot.reason})" if reboot.reason and not by else ""
        return CheckResult(check, REBOOT_TARGET, status,
                           f"reboot required{since}{by}{more}{why}"[:200], metrics,
                           {**info, "reason": reboot.reason or "marker"})
    if reboot.required is None:
        reason = "; ".join(reboot.notes) or "nothing tells whether a reboot is needed"
        return unknown(check, REBOOT_TARGET, f"cannot tell whether a reboot is needed: {reason}",
                       **info)
    kernel = f" (kernel {reboot.running_kernel})" if reboot.running_kernel else ""
    return CheckResult(check, REBOOT_TARGET, Status.OK, f"no reboot required{kernel}", metrics,
                       info)


def evaluate_metadata(
    config: OsUpdatesConfig, facts: OsUpdatesFacts, now: float, *, check: str
) -> CheckResult:
    """Package lists older than ``metadata_age_warn``: WARNING (updates may be unseen)."""
    if facts.metadata_time is None:
        return unknown(check, METADATA_TARGET,
                       f"age of the package lists unknown: {facts.metadata_error}")
    age = max(0.0, now - facts.metadata_time)
    warn = float(config.metadata_age_warn)
    metrics = (Metric("metadata_age", round(age), "s", warn or None, min=0),)
    info = {"refreshed_at": facts.metadata_time, "age_seconds": round(age)}
    if warn and age >= warn:
        return CheckResult(
            check, METADATA_TARGET, Status.WARNING,
            f"package lists last refreshed {format_age(age)} ago: pending updates may be "
            "unseen", metrics, info)
    return CheckResult(check, METADATA_TARGET, Status.OK,
                       f"package lists refreshed {format_age(age)} ago", metrics, info)


# ---------------------------------------------------------------------------- I/O


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _newest(paths: Iterable[Path]) -> float | None:
    times = [t for t in map(_mtime, paths) if t is not None]
    return max(times) if times else None


def metadata_time(config: OsUpdatesConfig, family: Family) -> tuple[float | None, str]:
    """The newest sign that the package lists were refreshed, or None and why not."""
    if family == "debian":
        lists = config.path("var/lib/apt/lists")
        candidates = [config.path("var/lib/apt/periodic/update-success-stamp"), lists,
                      *lists.glob("*_InRelease"), *lists.glob("*_Release")]
        found = _newest(candidates)
        return found, "" if found is not None else f"no {lists}"
    candidates = [config.path("var/cache/dnf/last_makecache"),
                  *config.path("var/cache/dnf").glob("*/repodata/repomd.xml"),
                  *config.path("var/cache/libdnf5").glob("*/repodata/repomd.xml"),
                  *config.path("var/cache/yum").glob("*/*/*/repomd.xml")]
    found = _newest(candidates)
    return found, "" if found is not None else "no dnf or yum metadata cache found"


def database_mtime(config: OsUpdatesConfig, family: Family) -> float | None:
    """When the installed-package database last changed (dpkg status, the rpm database)."""
    if family == "debian":
        return _mtime(config.path("var/lib/dpkg/status"))
    rpmdb = config.path("var/lib/rpm")
    return _newest([rpmdb, *rpmdb.glob("*")])


def running_kernel(config: OsUpdatesConfig) -> str:
    """The running kernel release: ``<root>/proc/sys/kernel/osrelease``, else ``uname -r``."""
    try:
        return config.path("proc/sys/kernel/osrelease").read_text().strip()
    except OSError:
        return os.uname().release


def debian_reboot(config: OsUpdatesConfig) -> RebootFacts:
    """/run/reboot-required (and its .pkgs), and the kernels in /boot."""
    notes: list[str] = []
    marker = None
    for candidate in ("run/reboot-required", "var/run/reboot-required"):
        if _mtime(config.path(candidate)) is not None:
            marker = config.path(candidate)
            break
    packages: tuple[str, ...] = ()
    since = None
    if marker is not None:
        since = _mtime(marker)
        try:
            text = marker.with_name("reboot-required.pkgs").read_text(errors="replace")
            packages = tuple(dict.fromkeys(line.strip() for line in text.splitlines()
                                           if line.strip()))
        except OSError:
            pass  # the .pkgs file is optional
    running = running_kernel(config)
    kernels = [p.name.removeprefix("vmlinuz-")
               for p in config.path("boot").glob("vmlinuz-*")]
    newest = newest_kernel(running, kernels)
    if not newest:
        notes.append(f"no {kernel_flavour(running) or 'matching'} kernels in "
                     f"{config.path('boot')} to compare with")
    return RebootFacts(marker is not None, since, packages,
                       "reboot-required" if marker else "", running, newest, tuple(notes))


def rhel_reboot(config: OsUpdatesConfig, run: CommandRunner, timeout: float) -> RebootFacts:
    """``needs-restarting -r`` (exit 1: reboot needed), and ``rpm -q --last kernel``."""
    notes: list[str] = []
    required: bool | None = None
    reason = ""
    program = find_program(config.needs_restarting)
    if program is None:
        notes.append(f"{config.needs_restarting} not installed (dnf-utils / yum-utils)")
    else:
        output = run([program, "-r"], timeout)
        if output.returncode in (0, 1):
            required = output.returncode == 1
            if required:
                reason = "needs-restarting -r"
        else:
            notes.append(f"needs-restarting -r failed: {first_line(output, last=True)}")
    running = running_kernel(config)
    newest = ""
    rpm = find_program(config.rpm)
    if rpm is None:
        notes.append(f"{config.rpm} not found")
    else:
        output = run([rpm, "-q", "--last", "kernel"], timeout)
        kernels = [line.split()[0].removeprefix("kernel-")
                   for line in output.stdout.splitlines()
                   if line.startswith("kernel-") and output.returncode == 0]
        newest = newest_kernel(running, kernels)
        if not newest:
            notes.append(f"rpm -q --last kernel: {first_line(output, last=True)}")
    if required is None and newest:
        required = False  # the kernel comparison alone still answers the question
    return RebootFacts(required, None, (), reason, running, newest, tuple(notes))


def apt_updates(config: OsUpdatesConfig, run: CommandRunner, timeout: float) -> UpdateList:
    """Simulate ``apt-get dist-upgrade`` (nothing is installed, no lock is taken)."""
    program = find_program(config.apt_get)
    if program is None:
        raise OSError(f"{config.apt_get} not found")
    if config.refresh:
        output = run([program, "-q", "update"], timeout)
        if output.returncode != 0:
            raise OSError(f"apt-get update failed: {first_line(output, last=True)}")
    argv = [program, "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"]
    output = run(argv, timeout)
    if output.returncode != 0:
        raise OSError(f"apt-get -s dist-upgrade failed: {first_line(output, last=True)}")
    try:
        listing = parse_apt_simulation(output.stdout)
    except ValueError as err:
        raise OSError(str(err)) from err
    return UpdateList(listing.updates, listing.held_back, " ".join(argv[1:]))


def rhel_updates(config: OsUpdatesConfig, run: CommandRunner, timeout: float) -> UpdateList:
    """``dnf`` (or ``yum``) from its cache: all pending updates, then the security ones."""
    program = find_program(config.dnf)
    tool = "dnf"
    if program is None:
        program, tool = find_program(config.yum), "yum"
    if program is None:
        raise OSError(f"neither {config.dnf} nor {config.yum} found")
    cache = [] if config.refresh else ["-C"]
    output = run([program, *cache, "-q", "check-update"], timeout)
    if output.returncode not in (0, 100):  # 100: updates available
        raise OSError(f"{tool} check-update failed: {first_line(output, last=True)}")
    pending = parse_check_update(output.stdout)
    security_args = (["updateinfo", "list", "--security"] if tool == "dnf"
                     else ["updateinfo", "list", "security"])
    output = run([program, *cache, "-q", *security_args], timeout)
    if output.returncode != 0:
        raise OSError(f"{tool} updateinfo failed: {first_line(output, last=True)}")
    advisories = parse_updateinfo(output.stdout)
    updates = [PendingUpdate(name, version, "", name in advisories,
                             advisories.get(name, ("", ""))[0])
               for name, version in sorted(pending.items())]
    for name, (advisory, version) in sorted(advisories.items()):
        if name not in pending:  # updateinfo may name a package check-update left out
            updates.append(PendingUpdate(name, version, "", True, advisory))
    return UpdateList(tuple(updates), (), f"{tool} {' '.join(security_args)}")


# ---------------------------------------------------------------------------- the check


class OsUpdatesCheck:
    """Pending security updates, reboot needed, and the age of the package lists."""

    type_name: ClassVar[str] = "os_updates"
    Config: ClassVar[type[OsUpdatesConfig]] = OsUpdatesConfig

    def __init__(
        self,
        config: OsUpdatesConfig,
        context: CheckContext,
        *,
        runner: CommandRunner = run_command,
        family: Family | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self.runner = runner
        self.family_override = family
        safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", context.name)
        self.state_path = context.state_dir / f"os_updates-{safe_name}.json"

    @property
    def command_timeout(self) -> float:
        """Per-command timeout: the configured one, at most 45% of the run's timeout."""
        return min(float(self.config.command_timeout), 0.45 * self.context.timeout)

    def detect_family(self) -> Family | None:
        """The configured family, else from ``<root>/etc/os-release``."""
        if self.family_override is not None:
            return self.family_override
        if self.config.family != "auto":
            return self.config.family
        for candidate in ("etc/os-release", "usr/lib/os-release"):
            try:
                return family_from_os_release(self.config.path(candidate).read_text())
            except OSError:
                continue
        return None

    def run(self) -> list[CheckResult]:
        """Collect (from the cache when still valid), keep first-seen times, then judge."""
        name = self.context.name
        family = self.detect_family()
        if family is None:
            reason = (f"not a Debian or RHEL family system (no usable "
                      f"{self.config.path('etc/os-release')}); set family")
            return [unknown(name, t, reason) for t in
                    (SECURITY_TARGET, REBOOT_TARGET, METADATA_TARGET)
                    if t != REBOOT_TARGET or self.config.check_reboot]
        now = self.context.clock()
        state, state_error = self.load_state()
        meta_time, meta_error = metadata_time(self.config, family)
        db_time = database_mtime(self.config, family)
        key = [family, db_time, meta_time]
        updates: UpdateList | None = None
        update_error = ""
        cached_at: float | None = None
        cached = state.get("cache")
        if (isinstance(cached, dict) and cached.get("key") == key
                and isinstance(cached.get("at"), int | float)
                and 0 <= now - cached["at"] < float(self.config.cache_for)):
            try:
                updates = UpdateList.from_json(cached["updates"])
                cached_at = float(cached["at"])
            except (KeyError, TypeError, ValueError):
                updates = None
        if updates is None:
            try:
                collect = apt_updates if family == "debian" else rhel_updates
                updates = collect(self.config, self.runner, self.command_timeout)
                if not self.config.refresh:
                    state["cache"] = {"key": key, "at": now, "updates": updates.to_json()}
            except OSError as err:
                update_error = str(err)
                state.pop("cache", None)
        first_seen = self.first_seen(state, updates, now)
        reboot = None
        if self.config.check_reboot:
            reboot = (debian_reboot(self.config) if family == "debian"
                      else rhel_reboot(self.config, self.runner, self.command_timeout))
        write_error = self.save_state(state)
        facts = OsUpdatesFacts(
            family, updates, update_error, first_seen, state_error or write_error, reboot,
            meta_time, meta_error, cached_at, str(self.state_path),
        )
        return evaluate(self.config, facts, now, check=name)

    @staticmethod
    def first_seen(state: dict[str, Any], updates: UpdateList | None,
                   now: float) -> dict[str, float]:
        """First-seen times of the pending security updates; forgets the installed ones."""
        previous = state.get("first_seen")
        known = previous if isinstance(previous, dict) else {}
        if updates is None:
            return {k: float(v) for k, v in known.items() if isinstance(v, int | float)}
        seen: dict[str, float] = {}
        for update in updates.security:
            value = known.get(update.name)
            seen[update.name] = float(value) if isinstance(value, int | float) else now
        state["first_seen"] = seen
        return seen

    def load_state(self) -> tuple[dict[str, Any], str]:
        """The saved state, or an empty one and why it could not be read."""
        try:
            data = json.loads(self.state_path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return {"version": STATE_VERSION}, ""
        except OSError as err:
            return ({"version": STATE_VERSION},
                    f"state file unreadable ({err.strerror or err}); first-seen times lost")
        except ValueError:
            return {"version": STATE_VERSION}, "state file corrupt; first-seen times lost"
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return {"version": STATE_VERSION}, "state file not understood; first-seen times lost"
        return data, ""

    def save_state(self, state: dict[str, Any]) -> str:
        """Write the state atomically; the reason when it cannot be kept."""
        try:
            write_json(self.state_path, state)
        except OSError as err:
            return f"cannot keep first-seen times: {err.strerror or err}"
        return ""
