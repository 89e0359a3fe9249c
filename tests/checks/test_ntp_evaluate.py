"""The pure judgement of the ntp check: offsets, false tickers, dead servers, local state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from checks.config import ConfigError, Seconds, build
from checks.ntp import (
    LOCAL_TARGET,
    OFFSET_TARGET,
    STA_UNSYNC,
    TIME_ERROR,
    DaemonState,
    KernelClock,
    LocalFacts,
    NtpConfig,
    NtpFacts,
    ServerReply,
    evaluate,
    evaluate_local,
    format_offset,
    median,
    parse_chronyc_tracking,
    parse_ntpq_rv,
    parse_server,
    select_offset,
)
from checks.result import CheckResult, Status

NOW = 1_800_000_000.0
CONFIG = NtpConfig(servers=("a", "b", "c"))


def reply(name: str, offset: float | None, delay: float = 0.001, error: str = "") -> ServerReply:
    if offset is None:
        return ServerReply(name, error=error or "no answer within 2s")
    return ServerReply(name, offset, delay, 2)


def by_target(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.target: r for r in results}


def judge(replies: list[ServerReply], config: NtpConfig = CONFIG) -> dict[str, CheckResult]:
    return by_target(evaluate(config, NtpFacts(tuple(replies), None), NOW, check="ntp"))


# ---------------------------------------------------------------------------- offset


@dataclass(frozen=True)
class OffsetCase:
    name: str
    offsets: list[float | None]
    status: Status
    config: NtpConfig = CONFIG


OFFSET_CASES = [
    OffsetCase("near zero", [0.0003, -0.0002, 0.0001], Status.OK),
    OffsetCase("just below warn", [0.0999] * 3, Status.OK),
    OffsetCase("at warn", [0.1] * 3, Status.WARNING),
    OffsetCase("just above warn", [0.1001] * 3, Status.WARNING),
    OffsetCase("just below crit", [0.4999] * 3, Status.WARNING),
    OffsetCase("at crit", [0.5] * 3, Status.CRITICAL),
    OffsetCase("above crit", [2.0] * 3, Status.CRITICAL),
    OffsetCase("negative offset judged by size", [-0.3] * 3, Status.WARNING),
    OffsetCase("negative beyond crit", [-0.6] * 3, Status.CRITICAL),
    OffsetCase("median, not mean, of three", [0.0, 0.01, 0.3], Status.OK),  # 0.3 rejected
    OffsetCase("one server only", [0.2], Status.WARNING),
    OffsetCase("custom thresholds", [0.03] * 3, Status.CRITICAL,
               NtpConfig(servers=("a", "b", "c"), offset_warn=Seconds(0.01),
                         offset_crit=Seconds(0.02))),
]


@pytest.mark.parametrize("case", OFFSET_CASES, ids=lambda c: c.name)
def test_offset_status(case: OffsetCase) -> None:
    names = [f"s{i}:123" for i in range(len(case.offsets))]
    results = judge([reply(n, o) for n, o in zip(names, case.offsets, strict=True)],
                    case.config)
    assert results[OFFSET_TARGET].status is case.status


def test_offset_metric_carries_thresholds_and_sign() -> None:
    result = judge([reply("a:123", 0.25)])[OFFSET_TARGET]
    offset = next(m for m in result.metrics if m.name == "offset")
    assert (offset.value, offset.unit, offset.warn, offset.crit) == (0.25, "s", 0.1, 0.5)
    assert result.summary.startswith("clock 250 ms behind (median of 1 of 1 servers)")


# ---------------------------------------------------------------------------- false tickers


def test_one_false_ticker_among_three_is_rejected_and_named() -> None:
    results = judge([reply("a:123", 0.001), reply("b:123", 0.002), reply("c:123", 0.9)])
    offset = results[OFFSET_TARGET]
    assert offset.status is Status.OK  # not CRITICAL: the liar is outvoted
    assert offset.details["used"] == ["a:123", "b:123"]
    assert offset.details["falsetickers"] == {"c:123": pytest.approx(0.898)}
    assert "rejected c:123" in offset.summary
    liar = results["c:123"]
    assert liar.status is Status.WARNING
    assert "false ticker" in liar.summary and "+898.0 ms" in liar.summary
    assert results["a:123"].status is Status.OK


@dataclass(frozen=True)
class TickerCase:
    name: str
    offsets: list[float]
    delays: list[float]
    rejected: set[str]


# Floor 50 ms, factor 5 x MAD, plus each server's delay / 2.
TICKER_CASES = [
    TickerCase("just inside the floor", [0.0, 0.0, 0.0499], [0, 0, 0], set()),
    TickerCase("at the floor is kept", [0.0, 0.0, 0.05], [0, 0, 0], set()),
    TickerCase("just beyond the floor", [0.0, 0.0, 0.0501], [0, 0, 0], {"s2"}),
    TickerCase("a long path widens the tolerance", [0.0, 0.0, 0.09], [0, 0, 0.1], set()),
    TickerCase("beyond floor plus delay/2", [0.0, 0.0, 0.101], [0, 0, 0.1], {"s2"}),
    # Widely spread honest servers: MAD 30 ms -> tolerance 150 ms; 140 ms away is kept.
    TickerCase("wide spread uses k x MAD", [0.0, 0.03, 0.06, -0.08, 0.17],
               [0] * 5, set()),
    TickerCase("two false tickers out of five", [0.0, 0.001, 0.002, 0.7, -0.9],
               [0] * 5, {"s3", "s4"}),
    TickerCase("three agreeing, none rejected", [0.001, 0.002, 0.003], [0] * 3, set()),
]


@pytest.mark.parametrize("case", TICKER_CASES, ids=lambda c: c.name)
def test_falseticker_rule(case: TickerCase) -> None:
    answers = [ServerReply(f"s{i}", o, d, 2)
               for i, (o, d) in enumerate(zip(case.offsets, case.delays, strict=True))]
    selection = select_offset(answers, CONFIG)
    assert set(selection.falsetickers) == case.rejected
    assert set(selection.used) == {a.server for a in answers} - case.rejected


def test_two_servers_that_disagree_warn_and_trust_the_nearer() -> None:
    results = judge([reply("a:123", 0.002), reply("b:123", 0.9)])
    offset = results[OFFSET_TARGET]
    assert offset.status is Status.WARNING  # not CRITICAL: no majority says the clock is off
    assert offset.details["disagreement"] == ["a:123", "b:123"]
    assert offset.details["offset"] == 0.002
    assert "servers disagree" in offset.summary
    assert results["b:123"].details["disagrees"] is True


def test_two_servers_that_disagree_and_both_say_crit_stay_critical() -> None:
    offset = judge([reply("a:123", 0.6), reply("b:123", 1.9)])[OFFSET_TARGET]
    assert offset.status is Status.CRITICAL
    assert offset.details["offset"] == 0.6


def test_two_servers_within_tolerance_take_the_mean() -> None:
    offset = judge([reply("a:123", 0.1), reply("b:123", 0.14)])[OFFSET_TARGET]
    assert offset.details["offset"] == pytest.approx(0.12)
    assert offset.status is Status.WARNING
    assert "disagreement" not in offset.details


# ---------------------------------------------------------------------------- dead servers


def test_one_dead_server_is_a_warning_about_it_and_the_offset_stands() -> None:
    results = judge([reply("a:123", 0.001), reply("b:123", 0.002), reply("dead:123", None)])
    dead = results["dead:123"]
    assert dead.status is Status.WARNING
    assert dead.summary == "NTP server dead:123: no answer within 2s"
    offset = results[OFFSET_TARGET]
    assert offset.status is Status.OK
    assert offset.details["unusable"] == ["dead:123"]
    assert offset.details["used"] == ["a:123", "b:123"]


def test_all_servers_dead_is_unknown_offset() -> None:
    results = judge([reply("a:123", None), reply("b:123", None)])
    assert results[OFFSET_TARGET].status is Status.UNKNOWN
    assert results[OFFSET_TARGET].summary == "no NTP server gave a usable answer (2 tried)"
    assert results["a:123"].status is Status.WARNING


def test_the_only_server_dead_names_it() -> None:
    results = judge([reply("a:123", None, error="cannot resolve a: Name or service not known")])
    assert results[OFFSET_TARGET].status is Status.UNKNOWN
    assert "cannot resolve a" in results[OFFSET_TARGET].summary


def test_all_dead_keeps_the_local_result() -> None:
    local = LocalFacts(KernelClock(0, 0, 1000, 100))
    facts = NtpFacts((reply("a:123", None),), local)
    results = by_target(evaluate(CONFIG, facts, NOW, check="ntp"))
    assert results[OFFSET_TARGET].status is Status.UNKNOWN
    assert results[LOCAL_TARGET].status is Status.OK


def test_no_servers_means_only_the_local_result() -> None:
    local = LocalFacts(KernelClock(0, 0, 1000, 100))
    results = evaluate(NtpConfig(), NtpFacts((), local), NOW, check="ntp")
    assert [r.target for r in results] == [LOCAL_TARGET]


# ---------------------------------------------------------------------------- local state

SYNCED_KERNEL = KernelClock(0, 0x2001, 12_000, 500)
UNSYNC_KERNEL = KernelClock(TIME_ERROR, STA_UNSYNC, 16_000_000, 16_000_000)


def chrony(offset: float = 0.0001, synchronised: bool = True, reason: str = "") -> DaemonState:
    return DaemonState("chronyd", synchronised, 3, "C0A80001 (ntp1)", offset, reason,
                       NOW - 64)


@dataclass(frozen=True)
class LocalCase:
    name: str
    facts: LocalFacts
    status: Status
    summary_part: str
    config: NtpConfig = field(default_factory=NtpConfig)


LOCAL_CASES = [
    LocalCase("kernel synchronised, no daemon", LocalFacts(SYNCED_KERNEL), Status.OK,
              "kernel clock synchronised"),
    LocalCase("kernel STA_UNSYNC, no daemon", LocalFacts(KernelClock(0, STA_UNSYNC, 1, 1)),
              Status.CRITICAL, "kernel STA_UNSYNC"),
    LocalCase("kernel TIME_ERROR, no daemon", LocalFacts(KernelClock(TIME_ERROR, 0, 1, 1)),
              Status.CRITICAL, "kernel TIME_ERROR"),
    LocalCase("unsynchronised as warning", LocalFacts(UNSYNC_KERNEL), Status.WARNING,
              "not synchronised", NtpConfig(unsynchronised_status="warning")),
    LocalCase("chronyd synchronised, small offset", LocalFacts(SYNCED_KERNEL, (chrony(),)),
              Status.OK, "chronyd synchronised to C0A80001 (ntp1)"),
    LocalCase("chronyd just below warn", LocalFacts(SYNCED_KERNEL, (chrony(0.0999),)),
              Status.OK, "100 ms behind"),
    LocalCase("chronyd at warn", LocalFacts(SYNCED_KERNEL, (chrony(-0.1),)),
              Status.WARNING, "100 ms ahead"),
    LocalCase("chronyd just below crit", LocalFacts(SYNCED_KERNEL, (chrony(0.4999),)),
              Status.WARNING, "500 ms behind"),
    LocalCase("chronyd at crit", LocalFacts(SYNCED_KERNEL, (chrony(0.5),)),
              Status.CRITICAL, "500 ms behind"),
    # chronyd run with -x leaves the kernel flag set; the daemon knows its sources.
    LocalCase("chronyd synchronised beats the kernel flag", LocalFacts(UNSYNC_KERNEL, (chrony(),)),
              Status.OK, "chronyd synchronised"),
    LocalCase("chronyd not synchronised",
              LocalFacts(SYNCED_KERNEL, (chrony(synchronised=False,
                                                reason="chronyd is not synchronised"),)),
              Status.CRITICAL, "not synchronised: chronyd is not synchronised"),
    LocalCase("no kernel, chronyd answers", LocalFacts(None, (chrony(),), ("adjtimex: no",)),
              Status.OK, "chronyd synchronised"),
    LocalCase("nothing readable", LocalFacts(None, (), ("kernel clock state unreadable: x",
                                                       "chronyc not installed")),
              Status.UNKNOWN, "no clock state readable: kernel clock state unreadable"),
]


@pytest.mark.parametrize("case", LOCAL_CASES, ids=lambda c: c.name)
def test_local_state(case: LocalCase) -> None:
    result = evaluate_local(case.facts, case.config, NOW, check="ntp")
    assert result.status is case.status, result.summary
    assert case.summary_part in result.summary
    assert result.target == LOCAL_TARGET


def test_local_details_carry_kernel_and_daemon_evidence() -> None:
    facts = LocalFacts(UNSYNC_KERNEL, (chrony(0.002),), ("ntpq not installed",))
    result = evaluate_local(facts, NtpConfig(), NOW, check="ntp")
    details: dict[str, Any] = dict(result.details)
    assert details["kernel"]["state"] == "TIME_ERROR"
    assert details["kernel"]["unsync_flag"] is True
    assert details["daemons"][0]["reference_age_seconds"] == 64.0
    assert details["notes"] == ["ntpq not installed"]
    names = {m.name for m in result.metrics}
    assert {"offset", "stratum", "kernel_maxerror", "kernel_esterror"} <= names


# ---------------------------------------------------------------------------- parsing

TRACKING_SYNCED = (
    "C0A80001,ntp1.example.net,3,1795656240.548015251,-0.000123456,0.000010,0.000020,"
    "-12.345,0.001,0.010,0.012345,0.001234,64.2,Normal\n"
)


@dataclass(frozen=True)
class TrackingCase:
    name: str
    text: str
    synchronised: bool
    offset: float
    stratum: int
    reason: str = ""


TRACKING_CASES = [
    TrackingCase("synchronised", TRACKING_SYNCED, True, -0.000123456, 3),
    TrackingCase("slow clock is a positive offset",
                 TRACKING_SYNCED.replace("-0.000123456", "0.250000000"), True, 0.25, 3),
    TrackingCase("not synchronised",
                 "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,"
                 "0.000,1.000000000,1.000000000,0.0,Not synchronised\n",
                 False, 0.0, 0, "not synchronised to any source"),
    TrackingCase("local reference (local stratum)",
                 "7F7F0101,,8,1795656240.548015251,0.000000000,0.000000000,0.000000000,"
                 "0.000,0.000,0.000,0.000000000,0.000000000,0.0,Normal\n",
                 False, 0.0, 8, "own local clock"),
    TrackingCase("leap second pending is still synchronised",
                 TRACKING_SYNCED.replace("Normal", "Insert second"), True, -0.000123456, 3),
]


@pytest.mark.parametrize("case", TRACKING_CASES, ids=lambda c: c.name)
def test_parse_chronyc_tracking(case: TrackingCase) -> None:
    state = parse_chronyc_tracking(case.text)
    assert (state.synchronised, state.offset, state.stratum) == (
        case.synchronised, case.offset, case.stratum)
    assert case.reason in state.reason


@pytest.mark.parametrize("text", ["", "506 Cannot talk to daemon", "a,b,c",
                                  TRACKING_SYNCED.replace(",3,", ",x,")])
def test_parse_chronyc_tracking_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_chronyc_tracking(text)


NTPQ_SYNCED = (
    'associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,\n'
    'version="ntpd 4.2.8p15@1.3728-o", processor="x86_64",\n'
    'system="Linux/6.1.0", leap=00, stratum=3, precision=-23, rootdelay=12.3,\n'
    'rootdisp=30.1, refid=192.0.2.1, reftime=e9b1..., clock=e9b1...,\n'
    'peer=1234, tc=6, mintc=3, offset=-0.412, frequency=-12.3, sys_jitter=0.2,\n'
)


@pytest.mark.parametrize(
    ("text", "synchronised", "offset", "reason"),
    [
        (NTPQ_SYNCED, True, -0.000412, ""),
        (NTPQ_SYNCED.replace("offset=-0.412", "offset=250.0"), True, 0.25, ""),
        (NTPQ_SYNCED.replace("leap=00", "leap=11").replace("stratum=3", "stratum=16"),
         False, -0.000412, "not synchronised"),
        (NTPQ_SYNCED.replace("refid=192.0.2.1", "refid=LOCAL(0)"), False, -0.000412,
         "own local clock"),
    ],
)
def test_parse_ntpq_rv(text: str, synchronised: bool, offset: float, reason: str) -> None:
    state = parse_ntpq_rv(text)
    assert state.synchronised is synchronised
    assert state.offset == pytest.approx(offset)
    assert reason in state.reason


def test_parse_ntpq_refuses_an_error_message() -> None:
    with pytest.raises(ValueError):
        parse_ntpq_rv("ntpq: read: Connection refused")


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("ntp1.example.net", "ntp1.example.net", 123), ("192.0.2.1:1123", "192.0.2.1", 1123),
     ("[2001:db8::1]:124", "2001:db8::1", 124), ("[::1]", "::1", 123), ("::1", "::1", 123)],
)
def test_parse_server(text: str, host: str, port: int) -> None:
    server = parse_server(text, 123)
    assert (server.host, server.port) == (host, port)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"servers": ["a:0"]}, "servers[0]"),
        ({"servers": ["a:x"]}, "servers[0]"),
        ({"servers": ["a:"]}, "servers[0]"),
        ({"servers": ["ok", "[::1"]}, "servers[1]"),
        ({"servers": ["a", "a:123"]}, "servers[1]"),
        ({"servers": [""]}, "servers[0]"),
        ({"port": 70000}, "port"),
        ({"offset_warn": "600ms"}, "offset_warn"),
        ({"offset_warn": 0}, "offset_warn"),
        ({"query_timeout": 0}, "query_timeout"),
        ({"command_timeout": 0}, "command_timeout"),
        ({"falseticker_mad_factor": 0.9}, "falseticker_mad_factor"),
        ({"check_local": False}, "check_local"),
        ({"unsynchronised_status": "unknown"}, "unsynchronised_status"),
        ({"servers": ["a"], "sever": 1}, "sever"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(NtpConfig, table)
    assert caught.value.key == key


def test_config_defaults_and_durations() -> None:
    config = build(NtpConfig, {"servers": ["a"], "offset_warn": "50ms", "offset_crit": "1s"})
    assert (config.offset_warn, config.offset_crit) == (0.05, 1.0)
    assert NtpConfig().offset_warn == 0.1 and NtpConfig().offset_crit == 0.5
    assert NtpConfig().falseticker_min == 0.05


# ---------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.8123, "812 ms behind"), (-0.0003, "0.3 ms ahead"), (2.414, "2.41 s behind"),
     (0.0, "0 ms off")],
)
def test_format_offset(seconds: float, text: str) -> None:
    assert format_offset(seconds) == text


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        median([])
