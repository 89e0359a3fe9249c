"""Drive DiskCheck against a real tmpfs; run inside ``unshare -m --propagation private``.

Usage: python tmpfs_scenario.py {fill|growth|burst} WORKDIR

The mounts live in a private mount namespace, so they vanish when this process exits,
even if it fails half-way. One JSON object per step goes to stdout.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

from checks.config import build
from checks.disk import DiskCheck, DiskConfig, StatvfsProbes
from checks.registry import CheckContext

MiB = 1024 * 1024


class SteppedClock:
    """A clock the scenario moves forward by hand, so hours pass in milliseconds."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "wk-test", str(target)],
                   check=True)


def make_check(workdir: Path, mounts: list[Path], clock: SteppedClock) -> DiskCheck:
    config = build(
        DiskConfig,
        {"include_types": ["tmpfs"], "include_mounts": [str(m) for m in mounts]},
    )
    context = CheckContext(name="disk", state_dir=workdir / "state", clock=clock)
    return DiskCheck(config, context, probes=StatvfsProbes())


def report(step: int, check: DiskCheck, **extra: object) -> None:
    results = [r.to_wire() for r in check.run()]
    print(json.dumps({"step": step, **extra, "results": results}), flush=True)


def write_until_full(directory: Path, name: str, chunk: int) -> bool:
    """Write one file of ``chunk`` bytes; False when the filesystem refused (full)."""
    try:
        with open(directory / name, "wb") as out:
            out.write(b"\0" * chunk)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        return False
    return True


def fill(workdir: Path) -> None:
    first, second = workdir / "a", workdir / "b"
    mount_tmpfs(first, "8m")
    second.mkdir()
    subprocess.run(["mount", "--bind", str(first), str(second)], check=True)
    clock = SteppedClock(1_700_000_000.0)
    check = make_check(workdir, [first, second], clock)
    report(0, check, mount_points=[str(first), str(second)])
    step = 0
    while True:
        step += 1
        clock.now += 60
        ok = write_until_full(first, f"chunk-{step}", 256 * 1024)
        if not ok:
            # The last big write failed part-way; top up with single pages until truly full.
            n = 0
            while write_until_full(first, f"page-{step}-{n}", 4096):
                n += 1
        report(step, check)
        if not ok:
            break


def growth(workdir: Path, burst: bool) -> None:
    target = workdir / "g"
    mount_tmpfs(target, "64m")
    clock = SteppedClock(1_700_000_000.0)
    check = make_check(workdir, [target], clock)
    report(0, check)
    for step in range(1, 13):
        clock.now += 300
        if burst and step == 1:
            write_until_full(target, "burst", 40 * MiB)
        elif not burst:
            write_until_full(target, f"grow-{step}", 1 * MiB)
        report(step, check)


if __name__ == "__main__":
    scenario, workdir = sys.argv[1], Path(sys.argv[2])
    if scenario == "fill":
        fill(workdir)
    elif scenario in ("growth", "burst"):
        growth(workdir, burst=scenario == "burst")
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
