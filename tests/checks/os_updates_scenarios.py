"""Named situations for the os_updates check, ready for an agent config.

The check never changes the host, and the host's own pending updates are not under the
test's control, so every scenario points the check at a small fake Debian tree through
two documented keys: ``root`` (the prefix of every file the check reads: os-release,
dpkg status, apt lists, the reboot marker, /boot, /proc/sys/kernel/osrelease) and
``apt_get`` (the program run for the simulation: here a two-line shell script the builder
writes, which prints an ``apt-get -s dist-upgrade`` output recorded on a real host, see
tests/checks/data/os_updates/README.md).

``build(kind, workdir, now, check_name=...)`` writes the tree under ``workdir`` with file
times relative to ``now`` and returns a ``Scenario``: the whole ``[checks.<name>]`` TOML
table, the worst status the check must report, a sentence, and ``stop`` (nothing runs, so
it does nothing; kept for the same shape as the other builders). Kinds:

- ``none``: nothing pending, lists refreshed an hour ago, no reboot marker: OK.
- ``security_pending``: 119 upgrades, 65 of them from the security archive: WARNING.
- ``security_critical``: the same with ``security_crit = 50``: CRITICAL.
- ``reboot_required``: nothing pending, /run/reboot-required names libc6 and
  linux-image-amd64: WARNING.
- ``kernel_outdated``: nothing pending, the running kernel (``proc/sys/kernel/osrelease``
  of the tree) is older than the newest ``boot/vmlinuz-*``: WARNING.
- ``stale_metadata``: nothing pending, the apt lists last refreshed 10 days ago: WARNING.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks.result import Status

DATA = Path(__file__).with_name("data") / "os_updates"
KINDS = ("none", "security_pending", "security_critical", "reboot_required",
         "kernel_outdated", "stale_metadata")
RUN_TIMEOUT = 30.0
DAY = 86400.0

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


@dataclass(frozen=True)
class Scenario:
    """One situation: agent TOML, the worst status expected, a sentence, a no-op stop."""

    toml: str
    expected: Status
    describe: str
    stop: Callable[[], None] = lambda: None
    root: Path | None = None
    """The fake tree the check reads (``root`` in the TOML)."""


def _touch(path: Path, when: float, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (when, when))


def fake_apt_get(path: Path, recorded: Path) -> Path:
    """A program that prints ``recorded`` whatever its arguments, as apt-get -s would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexec cat {json.dumps(str(recorded))}\n")
    path.chmod(0o755)
    return path


def debian_tree(root: Path, now: float, *, lists_age: float = 3600.0) -> Path:
    """A minimal Debian tree: os-release, dpkg status, apt lists refreshed ``lists_age`` ago."""
    _touch(root / "etc/os-release", now - 30 * DAY, OS_RELEASE)
    _touch(root / "var/lib/dpkg/status", now - 2 * DAY, "Package: base-files\n")
    lists = root / "var/lib/apt/lists"
    _touch(lists / "deb.debian.org_debian_dists_bookworm_InRelease", now - lists_age - 40 * DAY)
    _touch(lists / "deb.debian.org_debian-security_dists_bookworm-security_InRelease",
           now - lists_age)
    os.utime(lists, (now - lists_age, now - lists_age))
    _touch(root / "proc/sys/kernel/osrelease", now, "6.1.0-28-amd64\n")
    (root / "boot").mkdir(exist_ok=True)
    _touch(root / "boot/vmlinuz-6.1.0-28-amd64", now - 10 * DAY)
    return root


def toml_table(check_name: str, root: Path, apt_get: Path, extra: str = "") -> str:
    """``[checks.<name>]`` with the runner keys and the check's seams."""
    return (
        f"[checks.{check_name}]\n"
        'type = "os_updates"\n'
        'interval = "6h"\n'
        f'timeout = "{RUN_TIMEOUT:g}s"\n'
        f"root = {json.dumps(str(root))}\n"
        f"apt_get = {json.dumps(str(apt_get))}\n"
        'command_timeout = "10s"\n'
        f"{extra}"
    )


def build(kind: str, workdir: Path, now: float, *, check_name: str = "os_updates") -> Scenario:
    """Write scenario ``kind`` (one of ``KINDS``) under ``workdir``; times relative to ``now``."""
    if kind not in KINDS:
        raise ValueError(f"unknown os_updates scenario {kind!r} (known: {', '.join(KINDS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    lists_age = 10 * DAY if kind == "stale_metadata" else 3600.0
    root = debian_tree(workdir / "root", now, lists_age=lists_age)
    pending = kind in ("security_pending", "security_critical")
    recorded = DATA / ("apt-debian12-pending.txt" if pending else "apt-none.txt")
    apt_get = fake_apt_get(workdir / "bin" / "apt-get", recorded)
    extra = "security_crit = 50\n" if kind == "security_critical" else ""
    if kind == "reboot_required":
        _touch(root / "var/run/reboot-required", now - 2 * DAY, "*** System restart required ***\n")
        _touch(root / "var/run/reboot-required.pkgs", now - 2 * DAY,
               "libc6\nlinux-image-amd64\n")
    if kind == "kernel_outdated":
        _touch(root / "boot/vmlinuz-6.1.0-31-amd64", now - DAY)
    expected, describe = _EXPECTED[kind]
    return Scenario(toml_table(check_name, root, apt_get, extra), expected, describe, root=root)


_EXPECTED: dict[str, tuple[Status, str]] = {
    "none": (Status.OK, "nothing pending, lists an hour old, no reboot marker"),
    "security_pending": (Status.WARNING, "65 of 119 pending upgrades from the security archive"),
    "security_critical": (Status.CRITICAL, "65 security upgrades pending, security_crit = 50"),
    "reboot_required": (Status.WARNING, "reboot-required marker two days old (libc6, kernel)"),
    "kernel_outdated": (Status.WARNING, "running 6.1.0-28-amd64, 6.1.0-31-amd64 installed"),
    "stale_metadata": (Status.WARNING, "apt lists last refreshed 10 days ago"),
}
