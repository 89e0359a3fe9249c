"""DiskCheck against real tmpfs mounts in a private mount namespace (needs root and unshare).

The mounts are made by ``tmpfs_scenario.py`` running under ``unshare -m --propagation
private``: they are invisible to the rest of the host and disappear with the process.
These tests do not skip: a host where they cannot run must fail them, not hide them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("tmpfs_scenario.py")


def run_scenario(name: str, workdir: Path) -> list[dict[str, Any]]:
    """The steps printed by the scenario, each with the wire results of one run."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is required for the real filesystem tests"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [unshare, "-m", "--propagation", "private", sys.executable, str(SCENARIO), name,
         str(workdir)],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, f"scenario {name} failed:\n{proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_filling_a_real_tmpfs_goes_ok_warning_critical_full(tmp_path: Path) -> None:
    steps = run_scenario("fill", tmp_path)
    first_mount, bind_mount = steps[0]["mount_points"]

    seen = []
    for step in steps:
        # The bind mount shares the device: one result per run, the other path in details.
        assert len(step["results"]) == 1
        result = step["results"][0]
        assert result["target"] == first_mount
        assert result["details"]["other_mount_points"] == [bind_mount]
        assert result["details"]["fstype"] == "tmpfs"
        used_pct = next(m["value"] for m in result["metrics"] if m["name"] == "used_pct")
        condition = result["details"]["condition"]
        seen.append((result["status"], condition))
        if condition == "full":
            assert result["status"] == 2
        elif used_pct >= 95:
            assert (result["status"], condition) == (2, "space")
        elif used_pct >= 85:
            assert (result["status"], condition) == (1, "space")
        else:
            assert result["status"] == 0, result

    assert seen[0] == (0, "ok")
    assert (1, "space") in seen
    assert (2, "space") in seen
    assert seen[-1] == (2, "full")
    final = steps[-1]["results"][0]
    assert "FULL" in final["summary"]
    free = next(m["value"] for m in final["metrics"] if m["name"] == "free_bytes")
    assert free == 0


def _time_to_full_seconds(result: dict[str, Any]) -> float | None:
    return next(
        (m["value"] for m in result["metrics"] if m["name"] == "time_to_full_seconds"), None
    )


def test_steady_growth_of_a_real_tmpfs_warns_time_to_full(tmp_path: Path) -> None:
    steps = run_scenario("growth", tmp_path)
    results = [step["results"][0] for step in steps]

    # 1 MiB every 5 minutes on 64 MiB: low percentage, but full within hours.
    early = [r for r in results if r["details"]["history_span_seconds"] < 1800]
    assert early and all(r["status"] == 0 for r in early)
    assert all("collecting history" in r["details"]["growth_note"] for r in early)
    last = results[-1]
    assert last["status"] == 1
    assert last["details"]["condition"] == "time_to_full"
    assert last["details"]["growth_bytes_per_second"] == (1024 * 1024) / 300
    ttf = _time_to_full_seconds(last)
    assert ttf is not None and 3 * 3600 < ttf < 5 * 3600
    assert "full in ~4h" in last["summary"]


def test_one_burst_on_a_real_tmpfs_then_flat_does_not_warn(tmp_path: Path) -> None:
    steps = run_scenario("burst", tmp_path)
    results = [step["results"][0] for step in steps]

    used = [next(m["value"] for m in r["metrics"] if m["name"] == "used_pct") for r in results]
    assert used[0] == 0 and used[-1] > 60  # the 40 MiB really landed
    assert all(r["status"] == 0 for r in results)
    assert all(_time_to_full_seconds(r) is None for r in results)
    assert results[-1]["details"]["growth_bytes_per_second"] == 0
