"""FirewallCheck against the real nft and iptables, inside namespaces the tests create.

Every ruleset is loaded into a network namespace made for the test (``ip netns add``)
and deleted in a finalizer; the check reaches it through its ``netns`` key. An autouse
fixture proves that the host's own rulesets are the same after each test as before it.
Needs root (CAP_NET_ADMIN). A missing program fails the test naming its Debian package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from checks.config import build
from checks.firewall import (
    DRIFT_TARGET,
    INPUT_TARGET,
    PORTS_TARGET,
    FirewallCheck,
    FirewallConfig,
    baseline_path,
    record_baseline,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Status, worst
from tests.checks import firewall_scenarios
from tests.checks.firewall_scenarios import GOOD, Namespace, ToolMissing, tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def host_rulesets() -> tuple[str, ...]:
    """The host's nft ruleset and iptables rules, nft and legacy (dated comments left out)."""
    try:
        nft = subprocess.run([tool("nft"), "list", "ruleset"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
        saved = []
        for program in ("iptables-save", "ip6tables-save", "iptables-legacy-save",
                        "ip6tables-legacy-save"):
            text = subprocess.run([tool(program)], capture_output=True, text=True, check=True,
                                  timeout=10).stdout
            saved.append("\n".join(x for x in text.splitlines() if not x.startswith("#")))
    except ToolMissing as err:
        pytest.fail(str(err))
    return (nft, *saved)


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    before = host_rulesets()
    yield
    assert host_rulesets() == before, "the host's own ruleset changed"


@pytest.fixture
def ns() -> Iterator[Namespace]:
    try:
        namespace = Namespace()
    except ToolMissing as err:
        pytest.fail(str(err))
    yield namespace
    namespace.delete()
    listed = subprocess.run([namespace.ip, "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert namespace.name not in listed.split()


def check(ns: Namespace, state_dir: Path, **table: Any) -> dict[str, CheckResult]:
    config = build(FirewallConfig, {"netns": ns.name, **table})
    context = CheckContext(name="fw", state_dir=state_dir, timeout=10.0)
    return {r.target: r for r in FirewallCheck(config, context).run()}


def context(state_dir: Path) -> CheckContext:
    return CheckContext(name="fw", state_dir=state_dir, timeout=10.0)


def test_empty_namespace_is_critical(ns: Namespace, tmp_path: Path) -> None:
    results = check(ns, tmp_path)
    assert results[INPUT_TARGET].status is Status.CRITICAL
    assert results[INPUT_TARGET].summary == "no firewall ruleset loaded (nft)"
    assert results[DRIFT_TARGET].summary.startswith("no baseline recorded")


def test_accept_all_is_critical(ns: Namespace, tmp_path: Path) -> None:
    ns.load(firewall_scenarios.ACCEPT_ALL)
    result = check(ns, tmp_path)[INPUT_TARGET]
    assert result.status is Status.CRITICAL
    assert result.summary == ("ipv4, ipv6: input accepts everything (inet filter input "
                              "policy accept and no rule drops or rejects)")
    assert result.details["backend"] == "nft"


def test_good_default_deny_is_ok(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    results = check(ns, tmp_path)
    assert {t: r.status for t, r in results.items()} == {
        INPUT_TARGET: Status.OK, PORTS_TARGET: Status.OK, DRIFT_TARGET: Status.OK}
    assert results[INPUT_TARGET].summary == (
        "input denies by default: ipv4, ipv6: inet filter input policy drop")
    assert results[PORTS_TARGET].summary == "only allowed ports open to any address: 22/tcp"


def test_policy_accept_with_one_drop_is_a_warning(ns: Namespace, tmp_path: Path) -> None:
    ns.load(firewall_scenarios.ACCEPT_ALL)
    ns.exec("nft", "add", "rule", "inet", "filter", "input", "ip", "saddr", "192.0.2.0/24",
            "drop")
    result = check(ns, tmp_path)[INPUT_TARGET]
    assert result.status is Status.WARNING
    assert "no default deny" in result.summary
    assert check(ns, tmp_path, require_default_deny=False)[INPUT_TARGET].status is Status.OK


def test_port_open_to_any_address_is_named(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    ns.exec("nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "{ 8080, 22 }",
            "accept")
    result = check(ns, tmp_path)[PORTS_TARGET]
    assert result.status is Status.WARNING
    assert result.summary == "8080/tcp open to any address (not in allowed_open_ports)"


def test_drift_shows_the_added_and_removed_rule(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    config = build(FirewallConfig, {"netns": ns.name})
    path = record_baseline(config, context(tmp_path))
    assert path == tmp_path / "firewall-fw.baseline.json"
    assert check(ns, tmp_path)[DRIFT_TARGET].status is Status.OK
    ns.exec("nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "8443", "accept",
            "comment", '"web"')
    ns.exec("nft", "delete", "rule", "inet", "filter", "input", "handle",
            str(ns.rule_handle("icmp")))
    result = check(ns, tmp_path)[DRIFT_TARGET]
    assert result.status is Status.WARNING
    assert result.summary == "ruleset drifted from the baseline: 1 rule added, 1 removed"
    assert result.details["added"] == [
        'rule inet filter input: tcp dport 8443 accept comment "web"']
    assert result.details["removed"] == [
        'rule inet filter input: meta l4proto icmp accept comment "icmp"']


def test_counters_moving_is_not_drift(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    record_baseline(build(FirewallConfig, {"netns": ns.name}), context(tmp_path))

    def lo_packets() -> int:
        for item in ns.nft_json():
            rule = item.get("rule", {})
            if any(e.get("match", {}).get("right") == "lo" for e in rule.get("expr", [])):
                return int(next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e))
        raise LookupError("no lo rule")

    before = lo_packets()
    ns.send_loopback_traffic(7)
    assert lo_packets() >= before + 7  # the counters really moved
    ns.exec("nft", "reset", "counters")
    result = check(ns, tmp_path)[DRIFT_TARGET]
    assert result.status is Status.OK, result.details
    assert result.metrics[0].value == 0 and result.metrics[1].value == 0


def test_reloading_the_same_rules_is_not_drift(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    record_baseline(build(FirewallConfig, {"netns": ns.name}), context(tmp_path))
    ns.load(GOOD)  # "flush ruleset" and load again: new handles
    assert check(ns, tmp_path)[DRIFT_TARGET].status is Status.OK


def test_iptables_in_the_namespace(ns: Namespace, tmp_path: Path) -> None:
    assert check(ns, tmp_path, backend="iptables")[INPUT_TARGET].status is Status.CRITICAL
    ns.exec("iptables", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
    ns.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    ns.exec("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "ACCEPT")
    ns.exec("iptables", "-P", "INPUT", "DROP")
    ns.exec("ip6tables", "-P", "INPUT", "DROP")
    results = check(ns, tmp_path, backend="iptables")
    assert results[INPUT_TARGET].status is Status.OK, results[INPUT_TARGET].summary
    assert results[PORTS_TARGET].summary == (
        "3306/tcp open to any address (not in allowed_open_ports)")
    # iptables-nft rules are also nftables tables: auto reads them through nft.
    auto = check(ns, tmp_path)
    assert auto[INPUT_TARGET].details["backend"] == "nft"
    assert auto[INPUT_TARGET].status is Status.OK


def test_ip6tables_accepting_everything_is_critical(ns: Namespace, tmp_path: Path) -> None:
    ns.exec("iptables", "-P", "INPUT", "DROP")
    ns.exec("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    result = check(ns, tmp_path, backend="iptables")[INPUT_TARGET]
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("ipv6: input accepts everything")
    assert check(ns, tmp_path, backend="iptables",
                 families=["ipv4"])[INPUT_TARGET].status is Status.OK


def test_legacy_iptables_found_when_nftables_is_empty(ns: Namespace, tmp_path: Path) -> None:
    ns.exec("iptables-legacy", "-A", "INPUT", "-s", "192.0.2.0/24", "-j", "DROP")
    ns.exec("iptables-legacy", "-P", "INPUT", "DROP")
    table = {"iptables_save": "iptables-legacy-save",
             "ip6tables_save": "ip6tables-legacy-save", "families": ["ipv4"]}
    results = check(ns, tmp_path, **table)
    assert results[INPUT_TARGET].details["backend"] == "iptables"
    assert results[INPUT_TARGET].status is Status.OK
    record_baseline(build(FirewallConfig, {"netns": ns.name, **table}), context(tmp_path))
    ns.exec("iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    drift = check(ns, tmp_path, **table)[DRIFT_TARGET]
    assert drift.summary == "ruleset drifted from the baseline: 1 rule added, 0 removed"
    assert drift.details["added"] == [
        "ip filter -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]


def test_a_missing_namespace_is_unknown(tmp_path: Path) -> None:
    config = build(FirewallConfig, {"netns": "wk-fw-no-such-namespace"})
    results = FirewallCheck(config, context(tmp_path)).run()
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert "nft failed" in results[0].summary


def test_record_baseline_command(ns: Namespace, tmp_path: Path) -> None:
    ns.load(GOOD)
    state_dir = tmp_path / "state" / "checks"
    argv = [sys.executable, "-m", "checks.firewall", "record-baseline", "--state-dir",
            str(state_dir), "--name", "fw", "--config-json", json.dumps({"netns": ns.name})]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 0, done.stderr
    path = baseline_path(CheckContext(name="fw", state_dir=state_dir))
    assert str(path) in done.stdout
    assert json.loads(path.read_text())["backend"] == "nft"
    assert check(ns, state_dir)[DRIFT_TARGET].status is Status.OK
    bad = subprocess.run([*argv[:-1], '{"netns": "a b"}'], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)
    assert bad.returncode == 2 and "netns" in bad.stderr


@pytest.mark.parametrize("kind", firewall_scenarios.KINDS)
def test_scenario_builders(tmp_path: Path, kind: str) -> None:
    agent_state = tmp_path / "agent-state"
    state_dir = firewall_scenarios.check_state_dir(agent_state)
    try:
        scenario = firewall_scenarios.build(kind, tmp_path / kind, check_name="fw",
                                            state_dir=state_dir)
    except ToolMissing as err:
        pytest.fail(str(err))
    try:
        # Through the agent's own config loader, as the end-to-end test will use it.
        path = tmp_path / "agent.toml"
        path.write_text(f'[agent]\nstate_dir = "{agent_state}"\n\n{scenario.toml}')
        config = load_config(path)
        (spec,) = [c for c in config.checks if c.name == "fw"]
        ctx = CheckContext(name=spec.name, state_dir=config.state_dir / "checks",
                           timeout=spec.timeout)
        results = spec.check_class(spec.config, ctx).run()
        assert worst(r.status for r in results) is scenario.expected, [
            r.plugin_line() for r in results]
        drift = next(r for r in results if r.target == DRIFT_TARGET)
        if kind == "drifted":
            assert drift.summary == "ruleset drifted from the baseline: 1 rule added, 1 removed"
        elif kind == "counters_only":
            assert drift.summary.startswith("ruleset matches the baseline")
        else:
            assert drift.summary.startswith("no baseline recorded")
    finally:
        scenario.stop()
        scenario.stop()


def test_verdict_map_is_read(ns: Namespace, tmp_path: Path) -> None:
    ns.load("table inet filter {\n chain input {\n  type filter hook input priority 0; "
            "policy accept;\n  tcp dport vmap { 22 : accept, 3306 : accept, 23 : drop }\n"
            " }\n}\n")
    results = check(ns, tmp_path)
    assert results[INPUT_TARGET].status is Status.WARNING  # denies 23 only
    assert results[PORTS_TARGET].summary == (
        "3306/tcp open to any address (not in allowed_open_ports)")
    record_baseline(build(FirewallConfig, {"netns": ns.name}), context(tmp_path))
    lines = json.loads(baseline_path(context(tmp_path)).read_text())["lines"]
    assert lines[-1] == (
        "rule inet filter input: tcp dport vmap { 22 : accept, 23 : drop, 3306 : accept }")
