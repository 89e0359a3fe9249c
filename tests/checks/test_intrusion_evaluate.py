"""The pure half of the intrusion check: line parsing, folding events, judging, listener rules."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from checks.config import ConfigError, Seconds, build
from checks.intrusion import (
    LISTENERS_TARGET,
    LOGINS_TARGET,
    AuthEvent,
    AuthState,
    IntrusionConfig,
    IntrusionFacts,
    Kind,
    ListenerFacts,
    LogFacts,
    classic_time,
    evaluate,
    ingest,
    parse_line,
    window_counts,
)
from checks.intrusion_sockets import (
    Listener,
    decode_address,
    parse_listener_rule,
    parse_port_range,
    parse_proc_net,
)
from checks.result import CheckResult, Status

NOW = 1_795_000_000.0  # 2026-11-18
CONFIG = IntrusionConfig()
LOG = "/var/log/auth.log"


def failed(at: float, address: str = "203.0.113.5", user: str = "root",
           connection: str = "") -> AuthEvent:
    return AuthEvent(at, Kind.FAILED, address, user, connection, "password")


def accepted(at: float, address: str = "203.0.113.5", user: str = "alice") -> AuthEvent:
    return AuthEvent(at, Kind.ACCEPTED, address, user, "", "password")


def judge(events: list[AuthEvent], config: IntrusionConfig = CONFIG, now: float = NOW,
          state: AuthState | None = None) -> dict[str, CheckResult]:
    folded = ingest(state or AuthState(), events, config, now)
    facts = IntrusionFacts(LogFacts(LOG, folded), None)
    return {r.target: r for r in evaluate(config, facts, now, check="intrusion")}


# ---------------------------------------------------------------------------- parsing

# Formats: Debian 12 rsyslog (RFC3339, RSYSLOG_FileFormat), Debian 11/Ubuntu and the RHEL
# family's /var/log/secure (classic "Nov 18 01:02:03"), OpenSSH 9.8's sshd-session.
PARSE_CASES = [
    ("2026-11-18T01:02:03.123456+00:00 web1 sshd[4242]: Failed password for root from "
     "203.0.113.5 port 52344 ssh2", Kind.FAILED, "203.0.113.5", "root", "password"),
    ("2026-11-18T01:02:03.123456+00:00 web1 sshd[4242]: Failed password for invalid user "
     "admin from 203.0.113.5 port 52344 ssh2", Kind.FAILED, "203.0.113.5", "admin", "password"),
    ("Nov 18 01:02:03 db1 sshd[4242]: Failed publickey for oracle from 2001:db8::7 port 22 "
     "ssh2: RSA SHA256:Zx1", Kind.FAILED, "2001:db8::7", "oracle", "publickey"),
    ("Nov  8 01:02:03 db1 sshd[4242]: Invalid user test from 198.51.100.9 port 40000",
     Kind.PROBE, "198.51.100.9", "test", "invalid"),
    ("Nov 18 01:02:03 db1 sshd[4242]: Invalid user test from 198.51.100.9",
     Kind.PROBE, "198.51.100.9", "test", "invalid"),
    ("Nov 18 01:02:03 db1 sshd[4242]: Connection closed by authenticating user root "
     "203.0.113.5 port 52344 [preauth]", Kind.PROBE, "203.0.113.5", "root", "closed"),
    ("Nov 18 01:02:03 db1 sshd[4242]: pam_unix(sshd:auth): authentication failure; logname= "
     "uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
     Kind.PROBE, "203.0.113.5", "root", "pam"),
    ("Nov 18 01:02:03 db1 sshd[4242]: pam_unix(sshd:auth): authentication failure; logname= "
     "uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5", Kind.PROBE, "203.0.113.5", "?", "pam"),
    ("2026-11-18T01:02:03+01:00 web1 sshd-session[77]: Accepted publickey for root from "
     "198.51.100.7 port 50022 ssh2: ED25519 SHA256:abc", Kind.ACCEPTED, "198.51.100.7", "root",
     "publickey"),
    ("Nov 18 01:02:03 db1 sshd[4242]: Accepted keyboard-interactive/pam for bob from "
     "198.51.100.7 port 50022 ssh2", Kind.ACCEPTED, "198.51.100.7", "bob",
     "keyboard-interactive/pam"),
]


@pytest.mark.parametrize("line,kind,address,user,method", PARSE_CASES)
def test_sshd_lines_of_both_families_are_understood(
    line: str, kind: str, address: str, user: str, method: str
) -> None:
    event = parse_line(line, NOW)
    assert event is not None
    assert (event.kind, event.address, event.user, event.method) == (kind, address, user, method)
    assert event.connection.endswith("/4242") or event.connection.endswith("/77")


@pytest.mark.parametrize("line", [
    "Nov 18 01:02:03 db1 sshd[4242]: Connection closed by 203.0.113.5 port 52344 [preauth]",
    "Nov 18 01:02:03 db1 sshd[4242]: Server listening on 0.0.0.0 port 22.",
    "Nov 18 01:02:03 db1 CRON[1]: pam_unix(cron:session): session opened for user root",
    "Nov 18 01:02:03 db1 su[9]: FAILED SU (to root) alice on pts/0",
    "Foo 18 01:02:03 db1 sshd[4242]: Failed password for root from 1.2.3.4 port 1 ssh2",
    "not a syslog line mentioning sshd",
    "",
])
def test_other_lines_are_not_events(line: str) -> None:
    assert parse_line(line, NOW) is None


def test_repeated_message_counts_each_repeat() -> None:
    line = ("Nov 18 01:02:03 db1 sshd[4242]: message repeated 3 times: [ Failed password for "
            "root from 203.0.113.5 port 52344 ssh2]")
    event = parse_line(line, NOW)
    assert event is not None and event.repeat == 3 and event.kind == Kind.FAILED


def test_rfc3339_offsets_are_honoured() -> None:
    a = parse_line("2026-11-18T02:00:00+01:00 h sshd[1]: Invalid user x from 1.2.3.4", NOW)
    b = parse_line("2026-11-18T01:00:00Z h sshd[1]: Invalid user x from 1.2.3.4", NOW)
    assert a is not None and b is not None and a.at == b.at


@pytest.mark.parametrize("now_text,line_month,line_day,expected_year", [
    ((2026, 11, 18), 11, 18, 2026),  # today
    ((2026, 11, 18), 11, 19, 2026),  # a day ahead (clock skew): still this year
    ((2026, 11, 18), 11, 20, 2025),  # two days ahead: last year's line
    ((2027, 1, 1), 12, 31, 2026),    # New Year: December lines belong to last year
    ((2028, 3, 1), 2, 29, 2028),     # leap day of a leap year
    ((2027, 3, 1), 2, 29, 2024),     # leap day seen in a common year: the last leap year
])
def test_classic_timestamps_get_the_latest_year_not_ahead(
    now_text: tuple[int, int, int], line_month: int, line_day: int, expected_year: int
) -> None:
    now = time.mktime((*now_text, 12, 0, 0, 0, 0, -1))
    at = classic_time(line_month, line_day, (12, 0, 0), now)
    assert time.localtime(at).tm_year == expected_year


# ---------------------------------------------------------------------------- failure counts


@dataclass(frozen=True)
class RateCase:
    name: str
    count: int
    status: Status
    age: float = 0.0
    config: IntrusionConfig = CONFIG


RATE_CASES = [
    RateCase("none", 0, Status.OK),
    RateCase("just below warn", 9, Status.OK),
    RateCase("at warn", 10, Status.WARNING),
    RateCase("just above warn", 11, Status.WARNING),
    RateCase("just below crit", 49, Status.WARNING),
    RateCase("at crit", 50, Status.CRITICAL),
    RateCase("above crit", 51, Status.CRITICAL),
    RateCase("at the window's far edge still counts", 10, Status.WARNING, age=600),
    RateCase("just past the window's edge", 10, Status.OK, age=600.001),
    RateCase("custom thresholds", 3, Status.CRITICAL,
             config=IntrusionConfig(source_warn=2, source_crit=3, user_warn=50, user_crit=60)),
]


@pytest.mark.parametrize("case", RATE_CASES, ids=lambda c: c.name)
def test_failures_per_address_at_every_threshold(case: RateCase) -> None:
    # One user per failure, so only the per-address count can trip.
    events = [failed(NOW - case.age, user=f"u{i}") for i in range(case.count)]
    result = judge(events, case.config)[LOG]
    assert result.status is case.status, result.summary
    assert result.metrics[0].value == (case.count if case.status is not Status.OK
                                       or case.age <= 600 else 0)


@pytest.mark.parametrize("count,status", [(19, Status.OK), (20, Status.WARNING),
                                          (99, Status.WARNING), (100, Status.CRITICAL)])
def test_failures_per_user_from_many_addresses(count: int, status: Status) -> None:
    events = [failed(NOW - 1, address=f"198.51.100.{i % 250}", user="oracle")
              if i < 250 else failed(NOW - 1, address=f"203.0.113.{i % 250}", user="oracle")
              for i in range(count)]
    result = judge(events)[LOG]
    assert result.status is status, result.summary
    if status is not Status.OK:
        assert "for user 'oracle'" in result.summary


def test_summary_names_the_worst_address_and_counts_the_rest() -> None:
    events = [failed(NOW - 5, "203.0.113.5", f"u{i}") for i in range(12)]
    events += [failed(NOW - 5, f"198.51.100.{i}", "x") for i in range(8)]
    result = judge(events, IntrusionConfig(user_warn=50, user_crit=60, top=3))[LOG]
    assert result.summary == ("12 failed SSH logins in 10 min from 203.0.113.5 "
                              "(+8 more addresses)")
    assert [s["address"] for s in result.details["top_sources"]][0] == "203.0.113.5"
    assert len(result.details["top_sources"]) == 3
    assert result.details["other_sources"] == 6
    assert result.details["other_source_failures"] == 6


def test_a_saturated_count_is_shown_as_at_least() -> None:
    events = [failed(NOW - 1, user=f"u{i}") for i in range(500)]
    result = judge(events)[LOG]
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("51+ failed")  # the cap: source_crit + 1


def test_one_connection_is_one_failure_however_many_lines_say_so() -> None:
    # RHEL: pam_unix failure, then Failed password, then the preauth close: one attempt.
    conn = "db1/4242"
    events = [
        AuthEvent(NOW - 3, Kind.PROBE, "203.0.113.5", "root", conn, "pam"),
        AuthEvent(NOW - 3, Kind.FAILED, "203.0.113.5", "root", conn, "password"),
        AuthEvent(NOW - 2, Kind.FAILED, "203.0.113.5", "root", conn, "password"),
        AuthEvent(NOW - 1, Kind.PROBE, "203.0.113.5", "root", conn, "closed"),
        AuthEvent(NOW - 1, Kind.PROBE, "203.0.113.9", "admin", "db1/5", "invalid"),
    ]
    state = ingest(AuthState(), events, CONFIG, NOW)
    assert window_counts(state.failures, NOW, 600) == [("203.0.113.5", 2), ("203.0.113.9", 1)]


def test_state_stays_bounded() -> None:
    config = IntrusionConfig(max_sources=10)
    events = [failed(NOW - 2, "203.0.113.5", "root")] * 1000
    events += [failed(NOW - 1, f"10.0.{i // 250}.{i % 250}", "root") for i in range(100)]
    state = ingest(AuthState(), events, config, NOW)
    assert len(state.failures) == 10
    assert "203.0.113.5" in state.failures  # the most failures stays, though not the latest
    assert len(state.failures["203.0.113.5"]) == config.source_cap == 51
    assert len(state.user_failures["root"]) == config.user_cap == 101
    assert state.dropped_sources == 91


def test_old_failures_are_forgotten() -> None:
    state = ingest(AuthState(), [failed(NOW - 601)], CONFIG, NOW)
    assert state.failures == {}


# ---------------------------------------------------------------------------- logins


@pytest.mark.parametrize("failures,status", [(0, Status.OK), (4, Status.OK),
                                             (5, Status.CRITICAL), (6, Status.CRITICAL)])
def test_login_after_failures_from_the_same_address(failures: int, status: Status) -> None:
    events = [failed(NOW - 60 + i) for i in range(failures)] + [accepted(NOW - 10)]
    result = judge(events)[LOGINS_TARGET]
    assert result.status is status, result.summary
    if status is Status.CRITICAL:
        assert result.summary.startswith(
            f"login of 'alice' from 203.0.113.5 after {failures} failures")


def test_failures_from_another_address_do_not_count() -> None:
    events = [failed(NOW - 60, "198.51.100.1") for _ in range(9)] + [accepted(NOW - 10)]
    assert judge(events)[LOGINS_TARGET].status is Status.OK


@pytest.mark.parametrize("gap,status", [(600, Status.CRITICAL), (600.5, Status.OK)])
def test_failures_count_within_the_window_before_the_login(gap: float, status: Status) -> None:
    login_at = NOW - 5
    events = [failed(login_at - gap) for _ in range(5)] + [accepted(login_at)]
    # The failures are judged at the time of the login, so ingest them as they came.
    state = ingest(AuthState(), events, CONFIG, login_at)
    assert judge([], state=state)[LOGINS_TARGET].status is status


@pytest.mark.parametrize("age,status", [(3600, Status.CRITICAL), (3600.5, Status.OK)])
def test_a_login_incident_is_held_for_alert_hold(age: float, status: Status) -> None:
    at = NOW - age
    state = ingest(AuthState(), [failed(at - 1)] * 5 + [accepted(at)], CONFIG, at)
    assert judge([], state=state)[LOGINS_TARGET].status is status


@pytest.mark.parametrize("setting,status", [("warning", Status.WARNING),
                                            ("critical", Status.CRITICAL), ("ok", Status.OK)])
def test_root_login_from_a_new_address(setting: str, status: Status) -> None:
    config = build(IntrusionConfig, {"root_login_status": setting})
    result = judge([accepted(NOW - 10, "198.51.100.7", "root")], config)[LOGINS_TARGET]
    assert result.status is status
    assert result.details["incidents_total"] == 1
    if status is not Status.OK:
        assert result.summary.startswith("root login from new address 198.51.100.7")


def test_root_login_from_a_known_address_is_not_new() -> None:
    first = ingest(AuthState(), [accepted(NOW - 7200, "198.51.100.7", "root")], CONFIG,
                   NOW - 7200)
    result = judge([accepted(NOW - 10, "198.51.100.7", "root")], state=first)[LOGINS_TARGET]
    assert result.status is Status.OK
    assert result.details["known_root_sources"] == 1


def test_the_worst_login_is_named_and_the_rest_counted() -> None:
    events = [accepted(NOW - 20, "198.51.100.7", "root")]
    events += [failed(NOW - 15)] * 5 + [accepted(NOW - 10)]
    result = judge(events)[LOGINS_TARGET]
    assert result.status is Status.CRITICAL
    assert result.summary.endswith("(+1 more)")


def test_state_round_trips_through_json() -> None:
    state = ingest(AuthState(), [failed(NOW - 5, connection="h/1")] * 5 + [accepted(NOW)],
                   CONFIG, NOW)
    again = AuthState.from_json(state.to_json())
    assert again == state


def test_an_unreadable_log_is_unknown_for_both_log_results() -> None:
    facts = IntrusionFacts(LogFacts(LOG, None, "/var/log/auth.log does not exist"), None)
    results = evaluate(CONFIG, facts, NOW, check="intrusion")
    assert [(r.target, r.status) for r in results] == [
        (LOG, Status.UNKNOWN), (LOGINS_TARGET, Status.UNKNOWN)]
    assert "does not exist" in results[0].summary


# ---------------------------------------------------------------------------- listeners


def listener(port: int, proto: str = "tcp", address: str = "0.0.0.0",
             process: str = "") -> Listener:
    return Listener(proto, address, port, 1, process)


def judge_listeners(listeners: list[Listener], baseline: set[str] | None,
                    config: IntrusionConfig = CONFIG, error: str = "") -> CheckResult:
    facts = ListenerFacts(tuple(listeners), None if baseline is None else frozenset(baseline),
                          NOW - 86400, error)
    (result,) = evaluate(config, IntrusionFacts(None, facts), NOW, check="intrusion")
    assert result.target == LISTENERS_TARGET
    return result


def test_no_new_listener_is_ok() -> None:
    result = judge_listeners([listener(22)], {"tcp 0.0.0.0:22", "udp 0.0.0.0:123"})
    assert result.status is Status.OK
    assert result.details["gone"] == ["udp 0.0.0.0:123"]


def test_a_new_listener_names_its_process() -> None:
    result = judge_listeners([listener(22), listener(4444, process="nc (pid 99)")],
                             {"tcp 0.0.0.0:22"})
    assert result.status is Status.WARNING
    assert result.summary == "new listener tcp 0.0.0.0:4444 (nc (pid 99))"


def test_new_listener_status_critical() -> None:
    config = IntrusionConfig(new_listener_status="critical")
    assert judge_listeners([listener(4444)], set(), config).status is Status.CRITICAL


@pytest.mark.parametrize("rule,allowed", [
    ("4444", True), ("tcp:4444", True), ("udp:4444", False), ("tcp:0.0.0.0:4444", True),
    ("tcp:127.0.0.1:4444", False), ("process:nc", True), ("process:sshd", False),
])
def test_allowed_listeners(rule: str, allowed: bool) -> None:
    config = IntrusionConfig(allowed_listeners=(rule,))
    result = judge_listeners([listener(4444, process="nc (pid 1)")], set(), config)
    assert (result.status is Status.OK) is allowed


def test_tcp_rule_covers_tcp6_and_brackets_name_v6_addresses() -> None:
    config = IntrusionConfig(allowed_listeners=("tcp:22", "tcp6:[::1]:631"))
    listeners = [listener(22, "tcp6", "::"), listener(631, "tcp6", "::1")]
    assert judge_listeners(listeners, set(), config).status is Status.OK


def test_no_baseline_and_no_allowed_list_is_unknown() -> None:
    result = judge_listeners([listener(22)], None)
    assert result.status is Status.UNKNOWN and "record-baseline" in result.summary


def test_unreadable_sockets_are_unknown() -> None:
    assert judge_listeners([], set(), error="no /proc/net").status is Status.UNKNOWN


def test_more_new_listeners_are_counted() -> None:
    result = judge_listeners([listener(p) for p in (5000, 5001, 5002)], set())
    assert result.summary.endswith("(+2 more)") and result.details["new_total"] == 3


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 2222 1
   1: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3333 1
"""
PROC_NET_UDP6 = """\
  sl  local_address                         remote_address                        st tx_queue \
rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:\
00000000 00:00000000 00000000   0        0 4444 2 0000000000000000 0
  2: 00000000000000000000000001000000:0036 00000000000000000000000001000000:1F90 01 00000000:\
00000000 00:00000000 00000000   0        0 5555 2 0000000000000000 0
"""


def test_proc_net_tables_give_listening_and_unconnected_sockets() -> None:
    assert parse_proc_net(PROC_NET_TCP, "tcp") == [Listener("tcp", "127.0.0.1", 3306, 2222)]
    assert parse_proc_net(PROC_NET_UDP6, "udp6") == [Listener("udp6", "::1", 53, 4444)]
    assert decode_address("00000000") == "0.0.0.0"


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize("table,key", [
    ({"auth_log": "var/log/auth.log"}, "auth_log"),
    ({"source_warn": 60}, "source_warn"),
    ({"user_warn": 0}, "user_warn"),
    ({"success_after_failures": 0}, "success_after_failures"),
    ({"window": 0}, "window"),
    ({"check_auth_log": False, "check_listeners": False}, "check_listeners"),
    ({"allowed_listeners": ["ssh"]}, "allowed_listeners[0]"),
    ({"allowed_listeners": ["tcp:[::1]631"]}, "allowed_listeners[0]"),
    ({"listener_ports": ["9-2"]}, "listener_ports[0]"),
    ({"listener_ports": ["http"]}, "listener_ports[0]"),
    ({"top": 0}, "top"),
    ({"max_read": "1KiB"}, "max_read"),
    ({"root_login_status": "loud"}, "root_login_status"),
    ({"thresholds": 1}, "thresholds"),
    ({"source": "journal", "auth_log": "/var/log/auth.log"}, "auth_log"),
    ({"source": "journal", "journal_units": []}, "journal_units"),
    ({"source": "syslog"}, "source"),
    ({"command_timeout": 0}, "command_timeout"),
])
def test_bad_config_names_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(IntrusionConfig, table)
    assert caught.value.key == key


def test_defaults_and_durations() -> None:
    config = build(IntrusionConfig, {"window": "5m", "alert_hold": "2h"})
    assert config.window == Seconds(300) and config.alert_hold == Seconds(7200)
    assert parse_port_range("20000-20100") == (20000, 20100)
    assert parse_listener_rule("udp:127.0.0.1:53").address == "127.0.0.1"


def test_a_long_backlog_keeps_a_login_after_failures_read_in_an_early_batch() -> None:
    # Read on a first run 50 minutes later: the stream is pruned every few thousand events
    # against the latest event time, not against now, so the failures before the login
    # are still there when the login is folded in.
    start = NOW - 3000
    events = [failed(start + i * 0.01, "203.0.113.5", "oracle") for i in range(5)]
    events += [failed(start + 1 + i * 0.01, f"10.1.{i // 250}.{i % 250}", "x")
               for i in range(5000)]
    events.append(accepted(start + 120, "203.0.113.5", "oracle"))
    events += [failed(start + 200 + i * 0.5, "198.51.100.1", f"y{i}") for i in range(5000)]
    state = ingest(AuthState(), events, CONFIG, NOW)
    kinds = [i["kind"] for i in state.incidents]
    assert kinds == ["success_after_failures"]
    assert len(state.failures) <= CONFIG.max_sources


@pytest.mark.parametrize("count", [1, 2, 5])
def test_failures_at_the_same_second_from_one_line_of_repeats(count: int) -> None:
    event = AuthEvent(NOW - 1, Kind.FAILED, "203.0.113.5", "root", "h/1", "password", count)
    state = ingest(AuthState(), [event], CONFIG, NOW)
    assert window_counts(state.failures, NOW, 600) == [("203.0.113.5", count)]
