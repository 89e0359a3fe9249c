"""LogrotateCheck against the real logrotate binary, run by the tests in a temp directory.

Each scenario (``logrotate_scenarios.py``) runs ``logrotate -s STATE CONF`` with its own
configuration and state file and moves times back with ``os.utime`` where time must have
passed; the check's clock is the same ``now``. A missing logrotate fails, never skips.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest

from checks.config import build as build_config
from checks.logrotate import LogrotateCheck, LogrotateConfig
from checks.logrotate_conf import parse_state_date
from checks.registry import CheckContext
from checks.result import CheckResult, Status, worst
from tests.checks.logrotate_scenarios import (
    DAY,
    SCENARIOS,
    build,
    read_state_dates,
    run_logrotate,
    write_config,
    write_lines,
    write_state,
)

pytestmark = pytest.mark.integration


def run_check(toml: str, workdir: Path, now: float, name: str = "logrotate") -> list[CheckResult]:
    table = tomllib.loads(toml)["checks"][name]
    assert table.pop("type") == "logrotate"
    config = build_config(LogrotateConfig, table)
    context = CheckContext(name=name, state_dir=workdir / "agent-state", clock=lambda: now)
    return LogrotateCheck(config, context).run()


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_reports_expected_status_per_target(name: str, tmp_path: Path) -> None:
    now = time.time()
    scenario = build(name, tmp_path / name, now)
    results = run_check(scenario.toml, tmp_path, now)
    by_target = {r.target: r.status for r in results}
    assert by_target == scenario.expected_targets, [r.plugin_line() for r in results]
    assert worst(r.status for r in results) is scenario.expected
    assert all(r.check == "logrotate" for r in results)


def test_failed_rotation_is_caught_although_state_file_claims_success(tmp_path: Path) -> None:
    now = time.time()
    scenario = build("failed_rotation", tmp_path, now)
    failing = scenario.runs[-1]
    # logrotate itself failed ...
    assert failing.returncode != 0
    assert "error running" in failing.stderr and "prerotate" in failing.stderr
    # ... yet its state file says the log was rotated just now.
    claimed = parse_state_date(read_state_dates(scenario.state_file)[str(scenario.log)])
    assert abs(claimed - now) < 120
    # The log was not rotated: logrotate shifted the old .1.gz to .2.gz before the script
    # failed, and no new rotated file exists; the live log still holds its old lines.
    assert not list(scenario.watch_dir.glob("app.log.1*"))
    assert (scenario.watch_dir / "app.log.2.gz").exists()
    assert "after 499" in scenario.log.read_text()

    results = run_check(scenario.toml, tmp_path, now)
    log_result = next(r for r in results if r.target == str(scenario.log))
    assert log_result.status is Status.CRITICAL
    assert log_result.details["condition"] == "failed_rotation"
    assert "rotation failing" in log_result.summary
    state_result = next(r for r in results if r.target == str(scenario.state_file))
    assert state_result.status is Status.OK  # the state file alone would hide the failure


def test_stale_scenario_recovers_when_logrotate_runs_again(tmp_path: Path) -> None:
    now = time.time()
    scenario = build("stale", tmp_path, now)
    assert worst(r.status for r in run_check(scenario.toml, tmp_path, now)) is Status.CRITICAL
    rerun = run_logrotate(scenario.config_file, scenario.state_file)
    assert rerun.returncode == 0, rerun.stderr
    write_lines(scenario.log, 10, "fresh")
    results = run_check(scenario.toml, tmp_path, now + 60)
    assert [r.status for r in results] == [Status.OK] * len(results), [
        r.plugin_line() for r in results]
    assert (scenario.watch_dir / "app.log.2.gz").exists()


def test_dateext_olddir_and_include_directory(tmp_path: Path) -> None:
    now = time.time()
    logs, archive, confd = tmp_path / "logs", tmp_path / "archive", tmp_path / "conf.d"
    for d in (logs, archive, confd):
        d.mkdir()
    main = tmp_path / "logrotate.conf"
    main.write_text(f"weekly\nrotate 4\ncompress\ninclude {confd}\n")
    main.chmod(0o644)
    first, second = logs / "a.log", logs / "b.log"
    for log in (first, second):
        write_lines(log, 100)
    write_config(confd / "app", first, "daily", "dateext", f"olddir {archive}",
                 "su root root")
    (confd / "app").write_text((confd / "app").read_text().replace(
        f"{first} {{", f"{first} {second} {{"))
    (confd / "app").chmod(0o644)
    (confd / "app.dpkg-old").write_text("this is not read { by logrotate\n")
    state = tmp_path / "status"
    write_state(state, {first: now - 30 * DAY, second: now - 30 * DAY})
    run = run_logrotate(main, state)
    assert run.returncode == 0, run.stderr
    rotated = sorted(p.name for p in archive.iterdir())
    assert len(rotated) == 2 and all(".log-" in n and n.endswith(".gz") for n in rotated)

    toml = (f'[checks.logrotate]\ntype = "logrotate"\nconfig_file = "{main}"\n'
            f'state_file = "{state}"\nwatch_dirs = ["{logs}"]\n')
    for log in (first, second):
        write_lines(log, 5, "after")
    results = run_check(toml, tmp_path, now)
    by_target = {r.target: r for r in results}
    assert by_target[str(first)].status is Status.OK, by_target[str(first)].summary
    assert by_target[str(first)].details["newest_rotated"].startswith(str(archive))
    assert by_target[str(second)].status is Status.OK
    assert by_target[str(first)].details["criterion"] == "daily"  # block beats global weekly
    # Two days later without a run: the daily logs are overdue.
    later = run_check(toml, tmp_path, now + 2 * DAY)
    assert {r.target: r.status for r in later}[str(first)] is Status.WARNING


def test_big_glob_is_capped_and_summarised(tmp_path: Path) -> None:
    now = time.time()
    logs = tmp_path / "many"
    logs.mkdir()
    for i in range(120):
        (logs / f"svc{i:03d}.log").write_text("x\n")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{logs}/*.log {{\n    daily\n    rotate 2\n    nomissingok\n}}\n")
    conf.chmod(0o644)
    state = tmp_path / "status"
    write_state(state, {})
    toml = (f'[checks.logrotate]\ntype = "logrotate"\nconfig_file = "{conf}"\n'
            f'state_file = "{state}"\nwatch_dirs = ["{logs}"]\nmax_logs_per_pattern = 10\n')
    results = run_check(toml, tmp_path, now)
    per_pattern = [r for r in results if r.details.get("pattern") == f"{logs}/*.log"]
    assert len(per_pattern) == 10
    summary = per_pattern[-1]
    assert summary.target == f"{logs}/*.log"
    assert summary.details["matched"] == 120 and summary.details["counts"] == {"ok": 111}


def test_missing_config_and_state_are_unknown(tmp_path: Path) -> None:
    toml = (f'[checks.logrotate]\ntype = "logrotate"\nconfig_file = "{tmp_path}/nope.conf"\n'
            f'state_file = "{tmp_path}/nope.status"\nwatch_dirs = ["{tmp_path}"]\n')
    results = run_check(toml, tmp_path, time.time())
    assert [r.status for r in results] == [Status.UNKNOWN]
    assert "not found" in results[0].summary
    conf = tmp_path / "lr.conf"
    conf.write_text(f"{tmp_path}/x.log {{\n  daily\n  missingok\n}}\n")
    results = run_check(toml.replace(f"{tmp_path}/nope.conf", str(conf)), tmp_path, time.time())
    state_result = next(r for r in results if r.target == f"{tmp_path}/nope.status")
    assert state_result.status is Status.UNKNOWN
    assert "logrotate never ran" in state_result.summary
