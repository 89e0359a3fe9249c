"""DnsCheck.run with a scripted query function: defaults, budgets, concurrency, hangs.

The real exchange with a real resolver is in test_dns_real.py; these cases need timing a
real resolver does not give on demand (an answer that takes exactly 300 ms, a query that
never returns).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from checks import dnswire
from checks.config import build
from checks.dns import DnsCheck, DnsConfig
from checks.registry import CheckContext, load
from checks.result import CheckResult, Status

A, AAAA, PTR = dnswire.TYPE_A, dnswire.TYPE_AAAA, dnswire.TYPE_PTR


@dataclass
class ScriptedResolvers:
    """Answers by (resolver, name, type); a delay per resolver; records every question."""

    records: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    asked: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int, qname: str, qtype: int, *, deadline: float,
                 resend_after: float | None = None) -> dnswire.Answer:
        self.asked.append((host, qname, qtype))
        if host in self.hang:
            self.release.wait(10)  # ignores its deadline, like a stuck system call
        if host in self.silent:
            time.sleep(max(0.0, deadline - time.monotonic()))
            raise dnswire.QueryTimeout("no answer")
        pause = self.delay.get(host, 0.0)
        if time.monotonic() + pause > deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            raise dnswire.QueryTimeout("no answer")
        time.sleep(pause)
        values = self.records.get((dnswire.normalise(qname), qtype))
        if values is None:
            return dnswire.Answer(dnswire.Rcode.NXDOMAIN, (), elapsed=pause)
        return dnswire.Answer(dnswire.Rcode.NOERROR, values, elapsed=pause)


WEB1 = {
    ("web1.example.net", A): ("192.0.2.10",),
    ("web1.example.net", AAAA): (),
    ("10.2.0.192.in-addr.arpa", PTR): ("web1.example.net",),
}


@pytest.fixture
def resolvers() -> Iterator[ScriptedResolvers]:
    scripted = ScriptedResolvers(records=dict(WEB1))
    yield scripted
    scripted.release.set()


def make_check(tmp_path: Path, scripted: ScriptedResolvers, table: Mapping[str, Any], *,
               timeout: float = 5.0, fqdn: str = "web1.example.net",
               resolv_conf: str | None = None, route: str | None = None) -> DnsCheck:
    conf = tmp_path / "resolv.conf"
    if resolv_conf is not None:
        conf.write_text(resolv_conf)
    return DnsCheck(
        build(DnsConfig, table),
        CheckContext("dns", tmp_path, timeout=timeout),
        resolv_conf=conf,
        fqdn=lambda: fqdn,
        query=scripted,
        route_source=lambda host, port: route,
    )


def by_target(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.target: r for r in results}


def test_registered_under_dns() -> None:
    assert load("dns") is DnsCheck


def test_default_is_the_host_fqdn_through_resolv_conf(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    check = make_check(tmp_path, resolvers, {}, resolv_conf="nameserver 10.0.0.53\n",
                       route="192.0.2.10")
    [result] = check.run()
    assert result.target == "web1.example.net@10.0.0.53"
    assert result.status is Status.OK, result.summary
    assert result.details["route_address"] == "192.0.2.10"
    assert ("10.0.0.53", "10.2.0.192.in-addr.arpa", PTR) in resolvers.asked


def test_default_flags_a_name_that_misses_the_host_address(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    resolvers.records[("99.2.0.192.in-addr.arpa", PTR)] = ("web1.example.net",)
    check = make_check(tmp_path, resolvers, {}, resolv_conf="nameserver 10.0.0.53\n",
                       route="192.0.2.99")
    [result] = check.run()
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "mismatch")
    assert "not the host's 192.0.2.99" in result.summary
    assert set(result.details["reverse"]) == {"192.0.2.10", "192.0.2.99"}


def test_configured_names_do_not_use_the_route_address(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    check = make_check(tmp_path, resolvers, {"names": [{"name": "web1.example.net"}]},
                       resolv_conf="nameserver 10.0.0.53\n", route="192.0.2.99")
    [result] = check.run()
    assert result.status is Status.OK
    assert "route_address" not in result.details


@pytest.mark.parametrize("fqdn", ["vm", "localhost", "localhost.localdomain"])
def test_an_unqualified_host_name_is_unknown(
    tmp_path: Path, resolvers: ScriptedResolvers, fqdn: str
) -> None:
    check = make_check(tmp_path, resolvers, {}, resolv_conf="nameserver 10.0.0.53\n", fqdn=fqdn)
    [result] = check.run()
    assert result.status is Status.UNKNOWN
    assert "not fully qualified; set names" in result.summary
    assert resolvers.asked == []


@pytest.mark.parametrize(
    ("resolv_conf", "reason"),
    [
        (None, "cannot read"),
        ("search example.net\n", "no usable nameserver line"),
        ("nameserver resolver.example.net\n", "no usable nameserver line"),
    ],
)
def test_no_resolver_is_unknown(
    tmp_path: Path, resolvers: ScriptedResolvers, resolv_conf: str | None, reason: str
) -> None:
    [result] = make_check(tmp_path, resolvers, {}, resolv_conf=resolv_conf).run()
    assert result.status is Status.UNKNOWN
    assert reason in result.summary


def test_resolvers_are_asked_at_the_same_time(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    resolvers.delay = {"10.0.0.53": 0.3, "10.0.0.54": 0.3, "10.0.0.55": 0.3}
    table = {"resolvers": list(resolvers.delay), "record_types": ["A"]}
    started = time.monotonic()
    results = make_check(tmp_path, resolvers, table).run()
    elapsed = time.monotonic() - started
    assert [r.status for r in results] == [Status.OK] * 3
    # A then PTR, 0.3 s each: 0.6 s per resolver; one after the other would be 1.8 s.
    assert 0.55 < elapsed < 1.2


def test_a_silent_resolver_costs_one_query_timeout(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    resolvers.silent = {"10.0.0.53"}
    table = {
        "resolvers": ["10.0.0.53", "10.0.0.54"],
        "query_timeout": 0.4,
        "names": [{"name": "web1.example.net"}, {"name": "web2.example.net"}],
    }
    started = time.monotonic()
    results = by_target(make_check(tmp_path, resolvers, table).run())
    assert time.monotonic() - started < 0.8
    dead = results["web1.example.net@10.0.0.53"]
    assert (dead.status, dead.details["condition"]) == (Status.CRITICAL, "timeout")
    assert dead.summary == "10.0.0.53 did not answer web1.example.net A within 0.4s"
    later = results["web2.example.net@10.0.0.53"]
    assert later.summary == "10.0.0.53 did not answer earlier queries; web2.example.net A not asked"
    assert results["web1.example.net@10.0.0.54"].status is Status.OK
    assert results["web2.example.net@10.0.0.54"].details["condition"] == "nxdomain"
    assert [q for q in resolvers.asked if q[0] == "10.0.0.53"] == [
        ("10.0.0.53", "web1.example.net", A)
    ]


def test_the_run_budget_bounds_a_slow_resolver(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    # Each answer takes 0.3 s; the run may spend 0.8 * 1 s: the later questions are not
    # asked, and that is UNKNOWN (could not check), not a failure of the resolver.
    resolvers.delay = {"10.0.0.53": 0.3}
    table = {"resolvers": ["10.0.0.53"], "names": [{"name": "web1.example.net"}]}
    started = time.monotonic()
    [result] = make_check(tmp_path, resolvers, table, timeout=1.0).run()
    assert time.monotonic() - started < 1.0
    assert (result.status, result.details["condition"]) == (Status.UNKNOWN, "not_asked")
    assert "budget of 0.8s" in result.summary


def test_a_query_that_never_returns_is_unknown_within_the_timeout(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    resolvers.hang = {"10.0.0.53"}
    table = {"resolvers": ["10.0.0.53", "10.0.0.54"], "query_timeout": 0.2}
    started = time.monotonic()
    results = by_target(make_check(tmp_path, resolvers, table, timeout=1.0).run())
    assert 0.85 < time.monotonic() - started < 1.0  # 0.8 budget + 0.1 grace, inside 1 s
    stuck = results["web1.example.net@10.0.0.53"]
    assert stuck.status is Status.UNKNOWN
    assert "still being asked" in stuck.summary
    assert results["web1.example.net@10.0.0.54"].status is Status.OK


def test_an_unexpected_error_is_unknown_for_the_names_left(
    tmp_path: Path, resolvers: ScriptedResolvers
) -> None:
    def broken(host: str, port: int, qname: str, qtype: int, *, deadline: float,
               resend_after: float | None = None) -> dnswire.Answer:
        if qname == "web2.example.net":
            raise RuntimeError("bug in a query function")
        return resolvers(host, port, qname, qtype, deadline=deadline)

    table = {"resolvers": ["10.0.0.53"], "names": [{"name": "web1.example.net"},
                                                   {"name": "web2.example.net"}]}
    check = make_check(tmp_path, resolvers, table)
    check.query = broken
    results = by_target(check.run())
    assert results["web1.example.net@10.0.0.53"].status is Status.OK
    left = results["web2.example.net@10.0.0.53"]
    assert left.status is Status.UNKNOWN
    assert left.summary == "10.0.0.53: RuntimeError: bug in a query function"
