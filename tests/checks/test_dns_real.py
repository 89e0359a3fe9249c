"""DnsCheck against a real dnsmasq on a loopback port, started by the test.

dnsmasq (Debian package ``dnsmasq-base``) answers only from the records the test gives it;
a missing binary fails these tests, it never skips them. Every scenario of
``dns_scenarios.py`` runs here, so the end-to-end test can rely on them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from checks.config import build
from checks.dns import DnsCheck, DnsConfig
from checks.registry import CheckContext
from checks.result import CheckResult, Status
from tests.checks import dns_scenarios
from tests.checks.dns_scenarios import RUN_TIMEOUT, Scenario
from tests.services.dnsmasq import (
    DnsmasqUnavailable,
    closed_port,
    find_dnsmasq,
    start_dnsmasq,
)

pytestmark = pytest.mark.integration


def run_check(table: Mapping[str, Any] | Scenario, tmp_path: Path,
              timeout: float = RUN_TIMEOUT) -> tuple[list[CheckResult], float]:
    """Build the check from the table as the agent would, run it once, time it."""
    raw = dict(table.table) if isinstance(table, Scenario) else table
    config = build(DnsConfig, raw)
    check = DnsCheck(config, CheckContext("dns", tmp_path / "state", timeout=timeout))
    started = time.monotonic()
    results = check.run()
    return results, time.monotonic() - started


def scenario_results(kind: str, tmp_path: Path) -> tuple[Scenario, list[CheckResult], float]:
    scenario = dns_scenarios.build(kind, tmp_path)
    try:
        results, elapsed = run_check(scenario, tmp_path)
    finally:
        scenario.stop()
    return scenario, results, elapsed


@pytest.mark.parametrize("kind", dns_scenarios.KINDS)
def test_every_scenario_gives_its_expected_status(kind: str, tmp_path: Path) -> None:
    scenario, results, elapsed = scenario_results(kind, tmp_path)
    worst = max(results, key=lambda r: r.status.severity)
    assert worst.status is scenario.expected, [r.plugin_line() for r in results]
    assert elapsed < RUN_TIMEOUT
    # The TOML the end-to-end test gets is the same table, with the runner keys.
    parsed = tomllib.loads(scenario.toml)["checks"]["dns"]
    assert parsed.pop("type") == "dns"
    assert parsed.pop("timeout") == f"{RUN_TIMEOUT:g}s"
    assert parsed == dict(scenario.table)


def test_matching_forward_and_ptr_is_ok(tmp_path: Path) -> None:
    scenario, [result], _ = scenario_results("ok", tmp_path)
    resolver = scenario.resolvers[0]
    assert result.status is Status.OK, result.summary
    assert result.target == f"web1.ci.test@{resolver}"
    expected_start = f"web1.ci.test -> 192.0.2.10,2001:db8::10, PTR ok at {resolver}"
    assert result.summary.startswith(expected_start)
    assert result.details["forward"]["A"]["values"] == ["192.0.2.10"]
    assert result.details["forward"]["AAAA"]["values"] == ["2001:db8::10"]
    assert result.details["reverse"]["192.0.2.10"]["values"] == ["web1.ci.test"]
    assert result.details["reverse"]["2001:db8::10"]["values"] == ["web1.ci.test"]
    [metric] = result.metrics
    assert metric.name == "response_time" and metric.unit == "s" and 0 < metric.value < 1


def test_mismatched_ptr_is_a_warning_naming_the_other_host(tmp_path: Path) -> None:
    scenario, [result], _ = scenario_results("mismatch", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.WARNING, "ptr_mismatch")
    assert result.summary == (
        f"PTR of 192.0.2.20 is wrong-host.ci.test, not db1.ci.test at {scenario.resolvers[0]}"
    )
    assert result.details["question"] == "reverse"


def test_missing_ptr_is_a_warning(tmp_path: Path) -> None:
    scenario, [result], _ = scenario_results("missing_ptr", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.WARNING, "ptr_missing")
    assert result.summary == f"192.0.2.30 has no PTR (NXDOMAIN) at {scenario.resolvers[0]}"
    assert result.details["question"] == "reverse"


def test_unknown_name_is_nxdomain_critical(tmp_path: Path) -> None:
    scenario, [result], _ = scenario_results("nxdomain", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "nxdomain")
    assert result.summary == f"nosuch.ci.test does not exist (NXDOMAIN) at {scenario.resolvers[0]}"
    assert result.details["forward"]["A"]["rcode"] == "NXDOMAIN"
    assert result.details["question"] == "forward"


def test_wrong_address_is_critical(tmp_path: Path) -> None:
    _, [result], _ = scenario_results("address_mismatch", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "mismatch")
    assert "resolves to 192.0.2.20, expected 192.0.2.21" in result.summary
    assert result.details["question"] == "forward"


def test_closed_port_ends_at_once(tmp_path: Path) -> None:
    scenario, [result], elapsed = scenario_results("dead_resolver", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL,
                                                           "connection_refused")
    assert result.summary.startswith(f"{scenario.resolvers[0]} port closed (connection refused)")
    # Not one question failed but the resolver: the host cannot resolve names through it.
    assert result.details["question"] == "forward"
    assert [p["question"] for p in result.details["problems"]] == ["forward"]
    assert elapsed < 0.5  # ICMP port unreachable is seen at once on a connected socket


def test_silent_resolver_costs_one_query_timeout(tmp_path: Path) -> None:
    scenario, [result], elapsed = scenario_results("silent_resolver", tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "timeout")
    assert result.summary == f"{scenario.resolvers[0]} did not answer web1.ci.test A within 1s"
    assert result.details["question"] == "forward"
    # One query timeout (1 s), not one per question, and well inside the run's 5 s.
    assert 0.9 < elapsed < 1.5


def test_one_dead_and_one_good_resolver_say_which(tmp_path: Path) -> None:
    scenario, results, elapsed = scenario_results("one_dead_resolver", tmp_path)
    dead, good = scenario.resolvers
    by_resolver = {r.details["resolver"]: r for r in results}
    assert set(by_resolver) == {dead, good}
    assert by_resolver[dead].status is Status.CRITICAL
    assert by_resolver[dead].target == f"web1.ci.test@{dead}"
    assert dead in by_resolver[dead].summary
    assert by_resolver[good].status is Status.OK
    assert by_resolver[good].target == f"web1.ci.test@{good}"
    assert elapsed < 1.0


def test_silent_resolver_beside_a_good_one_within_the_timeout(tmp_path: Path) -> None:
    address, close = dns_scenarios.silent_resolver()
    server = dns_scenarios.start_records(tmp_path / "dnsmasq")
    try:
        names = [{"name": "web1.ci.test"}, {"name": "db1.ci.test"}, {"name": "nop.ci.test"}]
        table = {"resolvers": [address, server.address], "query_timeout": 3, "names": names}
        results, elapsed = run_check(table, tmp_path, timeout=2.0)
    finally:
        close()
        server.stop()
    # The budget (80% of the 2 s run timeout) cuts the 3 s query timeout short.
    assert elapsed < 2.0
    silent = [r for r in results if r.details["resolver"] == address]
    assert [r.status for r in silent] == [Status.UNKNOWN] * 3
    assert all(r.details["condition"] == "not_asked" for r in silent)
    good = {r.details["name"]: r.status for r in results if r.details["resolver"] != address}
    assert good == {"web1.ci.test": Status.OK, "db1.ci.test": Status.WARNING,
                    "nop.ci.test": Status.WARNING}


def test_cname_chain_is_followed(tmp_path: Path) -> None:
    server = start_dnsmasq(tmp_path / "dnsmasq", host_records=[("web1.ci.test", "192.0.2.10")],
                           extra=["cname=www.ci.test,web1.ci.test"])
    try:
        table = {"resolvers": [server.address], "record_types": ["A"],
                 "names": [{"name": "www.ci.test", "addresses": ["192.0.2.10"]}]}
        [result], _ = run_check(table, tmp_path)
    finally:
        server.stop()
    assert result.details["forward"]["A"]["cnames"] == ["web1.ci.test"]
    assert result.details["forward"]["A"]["values"] == ["192.0.2.10"]
    # The address's PTR names the canonical host, not the alias: said, as a warning.
    assert (result.status, result.details["condition"]) == (Status.WARNING, "ptr_mismatch")


def test_truncated_answer_is_fetched_over_tcp(tmp_path: Path) -> None:
    many = [("big.ci.test", f"192.0.2.{n}") for n in range(100, 160)]
    server = start_dnsmasq(tmp_path / "dnsmasq", host_records=many)
    try:
        table = {"resolvers": [server.address], "record_types": ["A"],
                 "names": [{"name": "big.ci.test", "reverse": False}]}
        [result], _ = run_check(table, tmp_path)
    finally:
        server.stop()
    assert result.status is Status.OK, result.summary
    assert result.details["forward"]["A"].get("tcp") is True
    assert len(result.details["forward"]["A"]["values"]) == 60


def test_answers_agree_with_dig(tmp_path: Path) -> None:
    dig = shutil.which("dig")
    assert dig, "dig is required to cross-check; install the Debian package 'dnsutils'"
    server = dns_scenarios.start_records(tmp_path / "dnsmasq")
    try:
        table = {"resolvers": [server.address], "names": [{"name": "web1.ci.test"}]}
        [result], _ = run_check(table, tmp_path)
        seen = {}
        for qtype in ("A", "AAAA"):
            out = subprocess.run([dig, "@127.0.0.1", "-p", str(server.port), "+short",
                                  "+time=1", "+tries=1", "web1.ci.test", qtype],
                                 capture_output=True, text=True, timeout=10, check=True)
            seen[qtype] = out.stdout.split()
        ptr = subprocess.run([dig, "@127.0.0.1", "-p", str(server.port), "+short", "+time=1",
                              "+tries=1", "-x", "192.0.2.10"],
                             capture_output=True, text=True, timeout=10, check=True)
    finally:
        server.stop()
    assert result.details["forward"]["A"]["values"] == seen["A"]
    assert result.details["forward"]["AAAA"]["values"] == seen["AAAA"]
    assert [f"{n}." for n in result.details["reverse"]["192.0.2.10"]["values"]] == (
        ptr.stdout.split()
    )


def test_missing_dnsmasq_is_a_failure_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(DnsmasqUnavailable, match="install the Debian package 'dnsmasq-base'"):
        find_dnsmasq(which=lambda name: None, fallback=tmp_path / "nowhere")


def test_closed_port_helper_really_is_closed() -> None:
    port = closed_port()
    results, _ = run_check({"resolvers": [f"127.0.0.1:{port}"],
                            "names": [{"name": "web1.ci.test"}]}, Path("/nonexistent"))
    assert results[0].details["condition"] == "connection_refused"


def test_name_outside_the_served_zones_is_refused(tmp_path: Path) -> None:
    # dnsmasq has no upstream: a name outside its local zones gets REFUSED.
    server = dns_scenarios.start_records(tmp_path / "dnsmasq")
    try:
        table = {"resolvers": [server.address], "names": [{"name": "web1.other.test"}]}
        [result], _ = run_check(table, tmp_path)
    finally:
        server.stop()
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "refused")
    assert result.summary.startswith(f"{server.address} REFUSED web1.other.test A")
    assert result.details["question"] == "forward"


# Reverse questions the resolver fails while it answers the name: reverse problems, at the
# reverse level (WARNING by default), whatever the kind of failure.

ROOT_TRUST_ANCHOR = (  # the root zone's key-signing key (KSK-2017), as IANA publishes it
    "trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
)


def reverse_failure_result(tmp_path: Path, address: str, extra: list[str]) -> CheckResult:
    server = start_dnsmasq(tmp_path / "dnsmasq", addresses=[("svc.ci.test", address)],
                           extra=extra)
    try:
        table = {"resolvers": [server.address], "record_types": ["A"], "query_timeout": 1,
                 "names": [{"name": "svc.ci.test", "addresses": [address]}]}
        [result], _ = run_check(table, tmp_path)
    finally:
        server.stop()
    assert result.details["forward"]["A"]["values"] == [address], server.log()
    return result


def test_reverse_question_refused_is_a_reverse_warning(tmp_path: Path) -> None:
    # dnsmasq has no upstream: a reverse name outside its local zones gets REFUSED.
    result = reverse_failure_result(tmp_path, "198.51.100.7", [])
    assert (result.status, result.details["condition"]) == (Status.WARNING, "refused")
    assert result.details["reverse"]["198.51.100.7"]["rcode"] == "REFUSED"
    assert result.details["question"] == "reverse"
    assert [p["question"] for p in result.details["problems"]] == ["reverse"]


def test_reverse_question_servfail_is_a_reverse_warning(tmp_path: Path) -> None:
    # A validating resolver whose upstream cannot prove the reverse zone unsigned answers
    # SERVFAIL for it (a broken DNSSEC chain); the forward name is local, not validated.
    upstream = start_dnsmasq(tmp_path / "upstream", zones=("113.0.203.in-addr.arpa",),
                             ptr_records=[("203.0.113.9", "svc.ci.test")])
    try:
        result = reverse_failure_result(
            tmp_path, "203.0.113.9",
            [f"server=127.0.0.1#{upstream.port}", "dnssec", ROOT_TRUST_ANCHOR],
        )
    finally:
        upstream.stop()
    assert (result.status, result.details["condition"]) == (Status.WARNING, "servfail")
    assert result.details["reverse"]["203.0.113.9"]["rcode"] == "SERVFAIL"
    assert result.summary == "PTR of 203.0.113.9 SERVFAIL at " + result.details["resolver"]
    assert result.details["question"] == "reverse"


def test_reverse_question_unanswered_is_about_the_reverse_zone(tmp_path: Path) -> None:
    # The reverse zone is forwarded to a closed port: the resolver answers the name at once
    # but never the PTR. It is not a dead resolver: the problem is the reverse zone's.
    result = reverse_failure_result(
        tmp_path, "203.0.113.9", [f"server=/113.0.203.in-addr.arpa/127.0.0.1#{closed_port()}"],
    )
    assert (result.status, result.details["condition"]) == (Status.WARNING, "timeout")
    assert result.details["reverse"]["203.0.113.9"]["error"] == "timeout"
    assert result.details["question"] == "reverse"


def test_resolver_on_ipv6_loopback(tmp_path: Path) -> None:
    server = start_dnsmasq(tmp_path / "dnsmasq", host_records=[("web1.ci.test", "192.0.2.10")],
                           extra=["listen-address=::1"])
    try:
        table = {"resolvers": [f"[::1]:{server.port}"], "record_types": ["A"],
                 "names": [{"name": "web1.ci.test", "addresses": ["192.0.2.10"]}]}
        [result], _ = run_check(table, tmp_path)
    finally:
        server.stop()
    assert result.status is Status.OK, result.summary
    assert result.target == f"web1.ci.test@[::1]:{server.port}"


@pytest.mark.parametrize(
    ("host_address", "status", "condition"),
    [("192.0.2.10", Status.OK, "ok"), ("192.0.2.99", Status.CRITICAL, "mismatch")],
)
def test_default_mode_checks_the_host_name_and_its_own_address(
    tmp_path: Path, host_address: str, status: Status, condition: str
) -> None:
    # No names configured: the FQDN (given here) must resolve to this host's address toward
    # the resolver (given here: on loopback it would be the machine's default-route address).
    server = dns_scenarios.start_records(tmp_path / "dnsmasq")
    try:
        check = DnsCheck(
            build(DnsConfig, {"resolvers": [server.address]}),
            CheckContext("dns", tmp_path / "state", timeout=RUN_TIMEOUT),
            fqdn=lambda: "web1.ci.test",
            route_source=lambda host, port: host_address,
        )
        [result] = check.run()
    finally:
        server.stop()
    assert (result.status, result.details["condition"]) == (status, condition), result.summary
    assert result.details["route_address"] == host_address
    assert host_address in result.details["reverse"]
