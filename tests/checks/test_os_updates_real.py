"""The os_updates check against the real apt of this Debian host, and through the real agent.

The check only simulates (``apt-get -s``): these tests assert that whatever this host has
pending is reported in a well-formed way, that the counts agree with an independent
``apt list --upgradable``, and that nothing on the host changed. The scenario tests run
the real ``watchkeeper-agent check`` process on configs whose ``root`` and ``apt_get``
keys point at fake trees (see os_updates_scenarios.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checks.os_updates import OsUpdatesCheck, OsUpdatesConfig
from checks.registry import CheckContext
from checks.result import Status
from tests.checks import os_updates_scenarios

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DPKG_STATUS = Path("/var/lib/dpkg/status")
APT_LISTS = Path("/var/lib/apt/lists")


def require(program: str, package: str) -> str:
    path = shutil.which(program)
    assert path, f"{program} not found: install the Debian package {package}"
    return path


def apt_list_upgradable() -> dict[str, list[str]]:
    """Name (``name:arch`` for foreign architectures) -> the suites of its candidate."""
    apt = require("apt", "apt")
    native = subprocess.run([require("dpkg", "dpkg"), "--print-architecture"],
                            capture_output=True, text=True, check=True).stdout.strip()
    proc = subprocess.run([apt, "list", "--upgradable"], capture_output=True, text=True,
                          check=True, timeout=120, env={**os.environ, "LC_ALL": "C"})
    found: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if "[upgradable from:" not in line:
            continue
        name_suites, _version, arch = line.split()[:3]
        name, _, suites = name_suites.partition("/")
        key = name if arch in (native, "all") else f"{name}:{arch}"
        found[key] = suites.split(",")
    return found


def snapshot() -> dict[str, float]:
    """Modification times of what an upgrade or a refresh would touch."""
    paths = [DPKG_STATUS, APT_LISTS, *APT_LISTS.glob("*")]
    return {str(p): p.stat().st_mtime for p in paths}


def test_real_apt_simulation_matches_apt_list_and_changes_nothing(tmp_path: Path) -> None:
    require("apt-get", "apt")
    before = snapshot()
    context = CheckContext("os_updates", tmp_path, timeout=300)
    check = OsUpdatesCheck(OsUpdatesConfig(), context)
    assert check.detect_family() == "debian"
    started = time.monotonic()
    results = {r.target: r for r in check.run()}
    elapsed = time.monotonic() - started
    independent = apt_list_upgradable()
    assert snapshot() == before, "the check changed the package database or the lists"

    assert set(results) == {"security", "reboot", "metadata"}
    security = results["security"]
    assert security.status in (Status.OK, Status.WARNING), security.summary
    details = security.details
    metrics = {m.name: m.value for m in security.metrics}
    simulated = set(details["security_updates"])
    # Every upgradable package is either upgraded by the simulation or kept back.
    assert metrics["updates"] + len(details["held_back"]) == len(independent)
    expected_security = {n for n, suites in independent.items()
                         if any(s.endswith("-security") for s in suites)}
    assert simulated == expected_security - set(details["held_back"])
    assert metrics["security_updates"] == len(simulated)
    if simulated:
        assert security.status == Status.WARNING
        assert security.summary.startswith(f"{len(simulated)} security updates pending")
    for result in results.values():
        json.dumps(result.to_wire())  # the wire form is plain JSON
        assert result.status != Status.UNKNOWN, result.summary
    assert results["metadata"].details["refreshed_at"] <= time.time()
    assert elapsed < 60

    # The second run answers from the cache: same figures, no new simulation.
    started = time.monotonic()
    again = {r.target: r for r in check.run()}
    assert time.monotonic() - started < 1.0
    assert again["security"].details["computed_at"] == pytest.approx(context.clock(), abs=120)
    counts = ("security_updates", "updates", "held_back")
    assert ({m.name: m.value for m in again["security"].metrics if m.name in counts}
            == {name: metrics[name] for name in counts})
    assert snapshot() == before


def test_real_reboot_state_of_this_host(tmp_path: Path) -> None:
    result = next(r for r in OsUpdatesCheck(OsUpdatesConfig(),
                                            CheckContext("u", tmp_path, timeout=300)).run()
                  if r.target == "reboot")
    marker = Path("/run/reboot-required").exists() or Path("/var/run/reboot-required").exists()
    assert result.details["running_kernel"] == os.uname().release
    if marker:
        assert result.status == Status.WARNING
    elif result.details["newest_kernel"] in ("", os.uname().release):
        assert result.status == Status.OK, result.summary


def agent_check(config: Path, *names: str) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--config", str(config), "--json", *names],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode in (0, 1, 2, 3), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("kind", os_updates_scenarios.KINDS)
def test_scenarios_through_the_real_agent(tmp_path: Path, kind: str) -> None:
    scenario = os_updates_scenarios.build(kind, tmp_path / "scenario", time.time(),
                                          check_name="updates")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n{scenario.toml}')
    try:
        code, results = agent_check(config, "updates")
    finally:
        scenario.stop()
    assert code == int(scenario.expected), results
    assert {r["target"] for r in results} == {"security", "reboot", "metadata"}
    assert max((Status(int(str(r["status"]))) for r in results),
               key=lambda s: s.severity) == scenario.expected
