"""The checks end to end, against the real tools.

Every scenario of the checks' acceptance is set up for real (logrotate run on its own
configuration, real archives, a real chronyd and dnsmasq on loopback and the one NTP fake
that serves a chosen offset, nft and iptables rulesets in network namespaces, auth logs in
the real formats and real listening sockets, apt outputs recorded from real apt, a real
MariaDB primary with replicas broken in each way),
configured as one check instance each in one agent config, then:

- ``watchkeeper-agent check`` prints every instance with its status and exits with the
  worst Nagios code;
- ``watchkeeper-agent run`` pushes them to a real collector, where each instance shows the
  expected status.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from checks.result import Status
from tests.checks import (
    backup_scenarios,
    dns_scenarios,
    firewall_scenarios,
    intrusion_scenarios,
    logrotate_scenarios,
    mysql_replication_scenarios,
    ntp_scenarios,
    os_updates_scenarios,
)
from tests.support.processes import Collector, Proc, agent_command, wait_until

pytestmark = pytest.mark.e2e

HOST = "e2e-checks.example.net"


@dataclass(frozen=True)
class Case:
    name: str
    toml: str
    expected: Status


@pytest.fixture(scope="module")
def agent_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's state_dir; baselines recorded by the scenarios live under it."""
    return tmp_path_factory.mktemp("agent-state")


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory, agent_state: Path) -> Iterator[list[Case]]:
    """Every scenario of the checks, set up once for the module."""
    root = tmp_path_factory.mktemp("scenarios")
    check_state = agent_state / "checks"
    now = time.time()
    stops: list[Callable[[], None]] = []
    built: list[Case] = []
    # (name prefix, kinds, build(kind, workdir, instance name) -> scenario) per check type;
    # the builders' own signatures differ in what each needs (a clock, the state dir).
    builders: list[tuple[str, Sequence[str], Callable[[str, Path, str], Any]]] = [
        ("logrotate", logrotate_scenarios.SCENARIOS,
         lambda k, d, n: logrotate_scenarios.build(k, d, now, check_name=n)),
        ("backup", backup_scenarios.KINDS,
         lambda k, d, n: backup_scenarios.build(k, d, now, check_name=n)),
        ("ntp", ntp_scenarios.KINDS, lambda k, d, n: ntp_scenarios.build(k, d, name=n)),
        ("dns", dns_scenarios.KINDS, lambda k, d, n: dns_scenarios.build(k, d, check_name=n)),
        ("firewall", firewall_scenarios.KINDS,
         lambda k, d, n: firewall_scenarios.build(k, d, check_name=n, state_dir=check_state)),
        ("intrusion", intrusion_scenarios.KINDS,
         lambda k, d, n: intrusion_scenarios.build(k, d, now, check_name=n,
                                                   state_dir=check_state)),
        ("os_updates", os_updates_scenarios.KINDS,
         lambda k, d, n: os_updates_scenarios.build(k, d, now, check_name=n)),
        ("mysql", mysql_replication_scenarios.KINDS,
         lambda k, d, n: mysql_replication_scenarios.build(k, d, check_name=n)),
    ]
    try:
        for prefix, kinds, build in builders:
            for kind in kinds:
                name = f"{prefix}_{kind}"
                scenario = build(kind, root / name, name)
                if getattr(scenario, "stop", None) is not None:
                    stops.append(scenario.stop)
                built.append(Case(name, scenario.toml, scenario.expected))
        yield built
    finally:
        for stop in reversed(stops):  # the shared MariaDB primary stops with the last one
            stop()


def _agent_config(
    workdir: Path, cases: list[Case], collector_url: str, token: str, state_dir: Path
) -> Path:
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nhost = "{HOST}"\nstate_dir = "{state_dir}"\n\n'
        f'[collector]\nurl = "{collector_url}"\ntoken_file = "{token_file}"\n'
        'push_interval = "0.5s"\n\n' + "\n".join(case.toml for case in cases)
    )
    return config


def _worst_by_check(results: list[dict[str, object]]) -> dict[str, Status]:
    worst: dict[str, list[Status]] = {}
    for result in results:
        worst.setdefault(str(result["check"]), []).append(Status(int(result["status"])))  # type: ignore[call-overload]
    return {check: max(statuses, key=lambda s: s.severity) for check, statuses in worst.items()}


def test_agent_check_prints_every_scenario_with_its_status_and_exit_code(
    cases: list[Case], agent_state: Path, tmp_path: Path
) -> None:
    config = _agent_config(tmp_path, cases, "http://127.0.0.1:9", "unused", agent_state)
    names = [case.name for case in cases]
    done = subprocess.run(agent_command("check", "--config", str(config), "--json", *names),
                          capture_output=True, text=True, timeout=120)
    results = json.loads(done.stdout)
    got = _worst_by_check(results)
    want = {case.name: case.expected for case in cases}
    assert {n: s.name for n, s in got.items()} == {n: s.name for n, s in want.items()}
    worst = max(want.values(), key=lambda s: s.severity)
    assert done.returncode == int(worst) == 2, done.stderr

    # The human table: one line per result, naming the check and its status in words.
    table = subprocess.run(agent_command("check", "--config", str(config), *names),
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 2
    for case in cases:
        lines = [line for line in table.stdout.splitlines() if line.startswith(case.name + " ")]
        assert lines, f"{case.name} missing from:\n{table.stdout}"
        assert any(case.expected.name in line for line in lines), (case.name, lines)

    # Each check type on its own exits with its own worst code.
    for prefix in ("logrotate_", "backup_", "ntp_", "dns_", "firewall_", "intrusion_",
                   "os_updates_", "mysql_"):
        own = [c for c in cases if c.name.startswith(prefix)]
        alone = subprocess.run(
            agent_command("check", "--config", str(config), *(c.name for c in own)),
            capture_output=True, text=True, timeout=120)
        assert alone.returncode == int(max((c.expected for c in own),
                                           key=lambda s: s.severity)), prefix


def test_each_failing_scenario_reaches_the_collector_with_its_status(
    cases: list[Case], agent_state: Path, tmp_path: Path
) -> None:
    collector = Collector(tmp_path)
    token = collector.enroll("e2e", HOST)
    collector.start()
    read = collector.get
    config = _agent_config(tmp_path, cases, collector.url, token, agent_state)
    agent = Proc(agent_command("run", "--config", str(config)), tmp_path / "agent.log").start()
    want = {case.name: case.expected.name for case in cases}

    def seen() -> dict[str, str]:
        answer = read(f"/api/v1/hosts/{HOST}")
        if answer.status_code != 200:
            return {}
        worst: dict[str, Status] = {}
        for check in answer.json()["checks"]:
            status = Status(check["status"])
            if check["check"] in want and (
                check["check"] not in worst or status.severity > worst[check["check"]].severity
            ):
                worst[check["check"]] = status
        return {name: status.name for name, status in worst.items()}

    try:
        wait_until(lambda: set(seen()) == set(want), 90,
                   f"every check instance at the collector\n{agent.tail()}")
        assert seen() == want
        problems = read("/api/v1/problems").json()
        failing = {p["check"] for p in problems if p["host"] == HOST and p["check"] in want}
        assert failing == {name for name, status in want.items() if status != "OK"}
    finally:
        agent.stop()
        collector.stop()
