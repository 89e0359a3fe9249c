"""IntrusionCheck against real files and real sockets.

The auth logs are written by the test in the exact formats sshd's lines take on disk:
Debian 12's rsyslog (RFC3339 timestamps with microseconds and offset, the
RSYSLOG_FileFormat default of bookworm, /var/log/auth.log), and the classic syslog form
``Nov 26 01:02:03 host sshd[pid]:`` of the RHEL family's /var/log/secure (and of Debian
11 and Ubuntu). Rotations are done as logrotate does them: rename and create, and
copytruncate. The listeners are real sockets the test opens on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from checks.commands import CommandOutput
from checks.config import build
from checks.intrusion import (
    LISTENERS_TARGET,
    LOGINS_TARGET,
    IntrusionCheck,
    IntrusionConfig,
    baseline_path,
    record_baseline,
    state_path,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Status, worst
from tests.checks import intrusion_scenarios

pytestmark = pytest.mark.integration

NOW = time.time()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def debian(at: float, message: str, pid: int = 4242) -> str:
    """Debian 12 rsyslog: ``2026-11-26T01:02:03.123456+00:00 web1 sshd[4242]: ...``."""
    return intrusion_scenarios.debian_line(at, message, pid)


def rhel(at: float, message: str, pid: int = 4242) -> str:
    """RHEL /var/log/secure (rsyslog's traditional format): ``Nov 26 01:02:03 db1 sshd[..]``."""
    t = time.localtime(at)
    return (f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d} db1 sshd[{pid}]: {message}\n")


def fail(at: float, n: int, address: str = "203.0.113.5") -> str:
    return debian(at, f"Failed password for invalid user u{n} from {address} port {n} ssh2",
                  10_000 + n)


def check(tmp_path: Path, log: Path, clock: float = NOW, **table: object) -> IntrusionCheck:
    config = build(IntrusionConfig, {"auth_log": str(log), "check_listeners": False,
                                     "user_warn": 1000, "user_crit": 2000, **table})
    context = CheckContext(name="intrusion", state_dir=tmp_path / "state", clock=lambda: clock)
    return IntrusionCheck(config, context)


def by_target(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.target: r for r in results}


def failures(results: list[CheckResult], log: Path) -> int:
    return int(by_target(results)[str(log)].metrics[3].value)


def append(path: Path, text: str) -> None:
    with open(path, "a") as out:
        out.write(text)


# ---------------------------------------------------------------------------- formats


def test_debian_12_auth_log_counts_each_attempt_once(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    # One bot connection as Debian 12's sshd 9.2 logs it: Invalid user, then two failed
    # passwords, then the preauth close. Two attempts; the other lines are the same ones.
    log.write_text(
        debian(NOW - 50, "Invalid user admin from 203.0.113.5 port 52344", 900)
        + debian(NOW - 49, "pam_unix(sshd:auth): check pass; user unknown", 900)
        + debian(NOW - 49, "pam_unix(sshd:auth): authentication failure; logname= uid=0 "
                 "euid=0 tty=ssh ruser= rhost=203.0.113.5 ", 900)
        + debian(NOW - 48, "Failed password for invalid user admin from 203.0.113.5 port "
                 "52344 ssh2", 900)
        + debian(NOW - 46, "Failed password for invalid user admin from 203.0.113.5 port "
                 "52344 ssh2", 900)
        + debian(NOW - 45, "Connection closed by invalid user admin 203.0.113.5 port 52344 "
                 "[preauth]", 900)
        + debian(NOW - 40, "Connection closed by 198.51.100.3 port 40000 [preauth]", 901)
        + debian(NOW - 30, "Accepted publickey for alice from 198.51.100.7 port 50022 ssh2: "
                 "ED25519 SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s", 902)
        + debian(NOW - 30, "pam_unix(sshd:session): session opened for user alice(uid=1000) "
                 "by (uid=0)", 902)
    )
    results = by_target(check(tmp_path, log).run())
    rates = results[str(log)]
    assert rates.status is Status.OK
    assert rates.details["top_sources"] == [{"address": "203.0.113.5", "failures": 2}]
    assert rates.details["lines_read"] == 9
    assert results[LOGINS_TARGET].status is Status.OK


def test_rhel_secure_log_with_pam_lines_counts_each_attempt_once(tmp_path: Path) -> None:
    log = tmp_path / "secure"
    text = ""
    for i in range(10):  # ten connections, each: PAM failure, Failed password, close
        pid = 3000 + i
        at = NOW - 100 + i
        text += rhel(at, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
                     "tty=ssh ruser= rhost=192.0.2.44  user=root", pid)
        text += rhel(at, f"Failed password for root from 192.0.2.44 port {50000 + i} ssh2", pid)
        text += rhel(at, f"Connection closed by authenticating user root 192.0.2.44 port "
                     f"{50000 + i} [preauth]", pid)
    log.write_text(text)
    rates = by_target(check(tmp_path, log).run())[str(log)]
    assert rates.status is Status.WARNING, rates.summary
    assert rates.summary == "10 failed SSH logins in 10 min from 192.0.2.44"


# ---------------------------------------------------------------------------- incremental


def test_lines_are_read_once_across_runs_and_a_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(fail(NOW - 60, n) for n in range(3)))
    intrusion = check(tmp_path, log)
    assert failures(intrusion.run(), log) == 3
    assert failures(intrusion.run(), log) == 3  # nothing new: still 3 in the window
    whole = fail(NOW - 30, 3)
    append(log, whole[:40])  # sshd's line half written
    assert failures(intrusion.run(), log) == 3
    append(log, whole[40:])
    assert failures(intrusion.run(), log) == 4


def test_rename_rotation_in_the_middle_of_reading(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(fail(NOW - 60, n) for n in range(5)))
    intrusion = check(tmp_path, log)
    assert failures(intrusion.run(), log) == 5
    append(log, "".join(fail(NOW - 50, n) for n in range(5, 8)))  # written before rotation
    log.rename(tmp_path / "auth.log.1")                            # logrotate: rename...
    log.write_text("".join(fail(NOW - 40, n) for n in range(8, 12)))  # ...create, sshd writes
    results = intrusion.run()
    assert failures(results, log) == 12
    assert any("auth.log.1" in n for n in by_target(results)[str(log)].details["notes"])
    append(log, fail(NOW - 30, 12))
    assert failures(intrusion.run(), log) == 13


def test_rhel_dateext_rotation_is_found_by_inode(tmp_path: Path) -> None:
    log = tmp_path / "secure"
    log.write_text(rhel(NOW - 60, "Failed password for root from 192.0.2.1 port 1 ssh2", 1))
    intrusion = check(tmp_path, log)
    assert failures(intrusion.run(), log) == 1
    append(log, rhel(NOW - 50, "Failed password for root from 192.0.2.1 port 2 ssh2", 2))
    log.rename(tmp_path / "secure-20261126")
    log.write_text(rhel(NOW - 40, "Failed password for root from 192.0.2.1 port 3 ssh2", 3))
    assert failures(intrusion.run(), log) == 3


@pytest.mark.parametrize("grown_past_offset", [False, True])
def test_copytruncate_rotation(tmp_path: Path, grown_past_offset: bool) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(fail(NOW - 60, n) for n in range(5)))
    intrusion = check(tmp_path, log)
    assert failures(intrusion.run(), log) == 5
    append(log, "".join(fail(NOW - 50, n) for n in range(5, 7)))
    shutil.copyfile(log, tmp_path / "auth.log.1")  # logrotate copytruncate: copy...
    with open(log, "r+") as handle:                 # ...then truncate in place
        handle.truncate(0)
    # After the truncation sshd goes on writing; enough lines may already be there to make
    # the file longer than where the last run stopped: only its content tells.
    count = 9 if grown_past_offset else 1
    append(log, "".join(fail(NOW - 40, n) for n in range(7, 7 + count)))
    assert failures(intrusion.run(), log) == 7 + count
    assert failures(intrusion.run(), log) == 7 + count


def test_rotation_to_a_compressed_file_is_said(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(fail(NOW - 60, 0))
    intrusion = check(tmp_path, log)
    intrusion.run()
    append(log, fail(NOW - 55, 1))
    subprocess.run(["gzip", "-S", ".1.gz", str(log)], check=True)
    log.write_text(fail(NOW - 50, 2))
    rates = by_target(intrusion.run())[str(log)]
    assert rates.metrics[3].value == 2
    assert any("may be missed" in n for n in rates.details["notes"])


def test_first_run_reads_only_the_tail_of_a_huge_log(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    filler = debian(NOW - 5000, "Server listening on 0.0.0.0 port 22.", 1) * 2000
    log.write_text(filler + "".join(fail(NOW - 60, n) for n in range(3)))
    rates = by_target(check(tmp_path, log, max_read="16KiB").run())[str(log)]
    assert rates.metrics[3].value == 3
    assert rates.details["bytes_read"] <= 16 * 1024


def test_a_backlog_is_read_over_several_runs(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(fail(NOW - 60, 0))
    intrusion = check(tmp_path, log, max_read="4KiB")
    intrusion.run()
    append(log, "".join(fail(NOW - 50, n, f"198.51.100.{n}") for n in range(1, 101)))
    first = by_target(intrusion.run())[str(log)]
    assert first.details["backlog_bytes"] > 0
    for _ in range(10):
        intrusion.run()
    assert failures(intrusion.run(), log) == 101


# ---------------------------------------------------------------------------- logins


def test_success_after_failures_is_critical_and_stays_for_the_hold(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("".join(
        debian(NOW - 120 + i, f"Failed password for oracle from 203.0.113.5 port {i} ssh2", 77)
        for i in range(5)
    ) + debian(NOW - 60, "Accepted password for oracle from 203.0.113.5 port 99 ssh2", 78))
    logins = by_target(check(tmp_path, log).run())[LOGINS_TARGET]
    assert logins.status is Status.CRITICAL
    assert logins.summary.startswith("login of 'oracle' from 203.0.113.5 after 5 failures")
    assert by_target(check(tmp_path, log).run())[LOGINS_TARGET].status is Status.CRITICAL
    later = by_target(check(tmp_path, log, clock=NOW + 3600).run())[LOGINS_TARGET]
    assert later.status is Status.OK


def test_new_root_login_is_a_warning_and_a_known_address_is_not(tmp_path: Path) -> None:
    log = tmp_path / "secure"
    log.write_text(rhel(NOW - 86400, "Accepted publickey for root from 192.0.2.10 port 1 ssh2: "
                        "RSA SHA256:abc", 1))
    assert by_target(check(tmp_path, log).run())[LOGINS_TARGET].status is Status.OK
    append(log, rhel(NOW - 30, "Accepted publickey for root from 192.0.2.10 port 2 ssh2: "
                     "RSA SHA256:abc", 2))
    assert by_target(check(tmp_path, log).run())[LOGINS_TARGET].status is Status.OK
    append(log, rhel(NOW - 20, "Accepted password for root from 198.51.100.66 port 3 ssh2", 3))
    logins = by_target(check(tmp_path, log).run())[LOGINS_TARGET]
    assert logins.status is Status.WARNING
    assert logins.summary.startswith("root login from new address 198.51.100.66")


# ---------------------------------------------------------------------------- broken things


def test_a_missing_log_is_unknown(tmp_path: Path) -> None:
    results = check(tmp_path, tmp_path / "nope.log").run()
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert "does not exist" in results[0].summary


def test_default_log_is_the_first_that_exists(tmp_path: Path) -> None:
    secure = tmp_path / "secure"
    secure.write_text("")
    config = IntrusionConfig(check_listeners=False)
    context = CheckContext(name="i", state_dir=tmp_path)
    found = IntrusionCheck(config, context, default_logs=(str(tmp_path / "auth.log"),
                                                          str(secure)))
    assert found.log_path() == secure


def test_a_damaged_state_starts_over_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(fail(NOW - 60, 0))
    intrusion = check(tmp_path, log)
    intrusion.run()
    state_path(tmp_path / "state", "intrusion").write_text("{not json")
    rates = by_target(intrusion.run())[str(log)]
    assert rates.status is Status.OK and rates.metrics[3].value == 1
    assert "started over" in rates.details["notes"][0]


# ---------------------------------------------------------------------------- listeners


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server
    server.close()


def listener_check(tmp_path: Path, **table: object) -> IntrusionCheck:
    config = build(IntrusionConfig, {"check_auth_log": False, **table})
    return IntrusionCheck(config, CheckContext(name="intrusion", state_dir=tmp_path))


def own_name() -> str:
    return Path("/proc/self/comm").read_text().strip()


def test_a_new_listener_names_the_process_and_port_and_closing_clears_it(
    tmp_path: Path
) -> None:
    port = intrusion_scenarios.free_port()
    intrusion = listener_check(tmp_path, listener_ports=[str(port)])
    first = by_target(intrusion.run())[LISTENERS_TARGET]  # records the (empty) baseline
    assert first.status is Status.OK and "recorded" in first.details["notes"][0]
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(1)
    try:
        result = by_target(intrusion.run())[LISTENERS_TARGET]
        assert result.status is Status.WARNING
        assert result.summary == f"new listener tcp 127.0.0.1:{port} ({own_name()} (pid " \
            f"{os.getpid()}))"
    finally:
        server.close()
    assert by_target(intrusion.run())[LISTENERS_TARGET].status is Status.OK


def test_a_known_listener_is_not_searched_for_again_in_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The /proc/*/fd walk is the check's largest cost on a busy host: a listener that stays
    unexplained run after run is named from the previous run, not searched for again."""
    from checks import intrusion_sockets

    walks: list[set[int]] = []
    real_walk = intrusion_sockets.socket_owners

    def counting(proc: Path, inodes: set[int]) -> dict[int, str]:
        walks.append(set(inodes))
        return real_walk(proc, inodes)

    monkeypatch.setattr(intrusion_sockets, "socket_owners", counting)
    port = intrusion_scenarios.free_port()
    intrusion = listener_check(tmp_path, listener_ports=[str(port)])
    intrusion.run()  # records the (empty) baseline
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(1)
    expected = f"new listener tcp 127.0.0.1:{port} ({own_name()} (pid {os.getpid()}))"
    try:
        for _ in range(3):
            assert by_target(intrusion.run())[LISTENERS_TARGET].summary == expected
    finally:
        server.close()
    assert len([w for w in walks if w]) == 1


def test_a_listener_handed_to_another_process_is_named_after_the_new_owner(
    tmp_path: Path
) -> None:
    """A daemon that binds and then forks: the cached owner is checked each run, and when that
    process is gone the socket's new holder is named."""
    port = intrusion_scenarios.free_port()
    intrusion = listener_check(tmp_path, listener_ports=[str(port)])
    intrusion.run()  # records the (empty) baseline
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(1)
    holders = [subprocess.Popen(argv, pass_fds=[server.fileno()])
               for argv in (["sleep", "60"], ["tail", "-f", "/dev/null"])]
    server.close()
    try:
        first = by_target(intrusion.run())[LISTENERS_TARGET].summary
        named = next(p for p in holders if f"(pid {p.pid}))" in first)
        named.kill()
        named.wait()
        other = next(p for p in holders if p is not named)
        second = by_target(intrusion.run())[LISTENERS_TARGET].summary
        assert second == (f"new listener tcp 127.0.0.1:{port} "
                          f"({'sleep' if other is holders[0] else 'tail'} (pid {other.pid}))")
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_the_whole_host_against_a_baseline(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    intrusion = listener_check(tmp_path)
    record_baseline(intrusion.config, intrusion.context)
    later = socket.socket()
    later.bind(("127.0.0.1", 0))
    later.listen(1)
    try:
        result = by_target(intrusion.run())[LISTENERS_TARGET]
        new = [n["listener"] for n in result.details["new"]]
        assert f"tcp 127.0.0.1:{later.getsockname()[1]}" in new
        assert f"tcp 127.0.0.1:{port}" not in new  # in the baseline
        assert result.status is Status.WARNING
    finally:
        later.close()


def test_udp_and_ipv6_listeners(tmp_path: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    v6 = socket.socket(socket.AF_INET6)
    v6.bind(("::1", 0))
    v6.listen(1)
    ports = [udp.getsockname()[1], v6.getsockname()[1]]
    try:
        intrusion = listener_check(tmp_path, listener_ports=[str(p) for p in ports],
                                   include_ephemeral_udp=True,
                                   record_baseline_if_missing=False,
                                   allowed_listeners=["tcp:22"])
        result = by_target(intrusion.run())[LISTENERS_TARGET]
        new = {n["listener"] for n in result.details["new"]}
        assert new == {f"udp 127.0.0.1:{ports[0]}", f"tcp6 [::1]:{ports[1]}"}
        # An unconnected UDP socket on an ephemeral port is a client's, by default.
        default = listener_check(tmp_path / "d", listener_ports=[str(ports[0])])
        assert by_target(default.run())[LISTENERS_TARGET].details["listeners"] == 0
    finally:
        udp.close()
        v6.close()


def test_allowed_by_process_name(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    intrusion = listener_check(tmp_path, listener_ports=[str(port)],
                               record_baseline_if_missing=False,
                               allowed_listeners=[f"process:{own_name()}"])
    result = by_target(intrusion.run())[LISTENERS_TARGET]
    assert result.status is Status.OK and result.details["allowed"] == 1


def test_record_listeners_command(tmp_path: Path, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "checks.intrusion", "record-listeners", "--state-dir",
         str(tmp_path), "--name", "sec", "--ports", str(port)],
        capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert f"tcp 127.0.0.1:{port}" in done.stdout
    assert baseline_path(tmp_path, "sec").exists()
    intrusion = IntrusionCheck(
        IntrusionConfig(check_auth_log=False, listener_ports=(str(port),)),
        CheckContext(name="sec", state_dir=tmp_path))
    assert by_target(intrusion.run())[LISTENERS_TARGET].status is Status.OK


def test_a_damaged_baseline_is_unknown(tmp_path: Path) -> None:
    baseline_path(tmp_path, "intrusion").write_text("[]")
    result = by_target(listener_check(tmp_path).run())[LISTENERS_TARGET]
    assert result.status is Status.UNKNOWN and "unreadable" in result.summary


# ---------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize("kind", intrusion_scenarios.KINDS)
def test_scenarios_give_their_expected_status(tmp_path: Path, kind: str) -> None:
    import tomllib

    now = time.time()
    state_dir = tmp_path / "state"
    scenario = intrusion_scenarios.build(kind, tmp_path / kind, now, check_name="sec",
                                         state_dir=state_dir)
    try:
        table = tomllib.loads(scenario.toml)["checks"]["sec"]
        for runner_key in ("type", "interval", "timeout"):
            table.pop(runner_key)
        config = build(IntrusionConfig, table)
        context = CheckContext(name="sec", state_dir=state_dir, clock=lambda: now)
        results = IntrusionCheck(config, context).run()
        assert worst(r.status for r in results) is scenario.expected, [
            r.plugin_line() for r in results]
    finally:
        scenario.stop()
    if kind == "new_listener":
        results = IntrusionCheck(config, context).run()
        assert by_target(results)[LISTENERS_TARGET].status is Status.OK


@pytest.mark.parametrize("kind", intrusion_scenarios.KINDS)
def test_scenarios_hold_for_an_agent_with_another_state_dir(tmp_path: Path, kind: str) -> None:
    import tomllib

    now = time.time()
    scenario = intrusion_scenarios.build(kind, tmp_path / kind, now, check_name="sec",
                                         state_dir=tmp_path / "builder-state")
    try:
        table = tomllib.loads(scenario.toml)["checks"]["sec"]
        for runner_key in ("type", "interval", "timeout"):
            table.pop(runner_key)
        context = CheckContext(name="sec", state_dir=tmp_path / "agent-state", clock=lambda: now)
        results = IntrusionCheck(build(IntrusionConfig, table), context).run()
        assert worst(r.status for r in results) is scenario.expected
    finally:
        scenario.stop()


# ---------------------------------------------------------------------------- journal


def test_the_real_journalctl_accepts_the_query_and_no_journal_is_unknown(
    tmp_path: Path
) -> None:
    if shutil.which("journalctl") is None:
        pytest.fail("journalctl is not installed: apt-get install systemd")
    empty = tmp_path / "journal"
    empty.mkdir()
    config = IntrusionConfig(source="journal", check_listeners=False)
    context = CheckContext(name="intrusion", state_dir=tmp_path / "state", clock=lambda: NOW)
    results = IntrusionCheck(config, context, journal_args=["--directory", str(empty)]).run()
    assert [r.target for r in results] == ["journal", LOGINS_TARGET]
    assert {r.status for r in results} == {Status.UNKNOWN}
    # The query itself was understood: journalctl only found no journal files.
    assert "No journal files were found" in results[0].summary, results[0].summary


def test_journal_lines_are_read_after_the_saved_cursor(tmp_path: Path) -> None:
    # No journald runs on the test machine and none can be started without systemd, so
    # journalctl's answers are played back here, in its exact `-o short-iso` form.
    def iso(at: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(at))

    answers = [
        "".join(f"{iso(NOW - 60 + i)} web1 sshd[{700 + i}]: Failed password for root from "
                f"192.0.2.8 port {i} ssh2\n" for i in range(6))
        + "-- cursor: s=abc;i=6\n",
        f"{iso(NOW - 10)} web1 sshd[800]: Accepted password for root from 192.0.2.8 port 9 "
        "ssh2\n-- cursor: s=abc;i=7\n",
        "-- No entries --\n",
    ]
    calls: list[list[str]] = []

    def run(argv: Sequence[str], timeout: float) -> CommandOutput:
        calls.append(list(argv))
        return CommandOutput(0 if len(calls) < 3 else 1, answers[len(calls) - 1], "")

    config = IntrusionConfig(source="journal", check_listeners=False)
    context = CheckContext(name="intrusion", state_dir=tmp_path, clock=lambda: NOW)
    first = by_target(IntrusionCheck(config, context, run=run).run())
    assert first["journal"].status is Status.OK and first["journal"].metrics[3].value == 6
    assert calls[0][:5] == ["journalctl", "-u", "ssh", "-u", "sshd"]
    assert "--since" in calls[0] and "--after-cursor" not in calls[0]
    second = by_target(IntrusionCheck(config, context, run=run).run())
    assert calls[1][-2:] == ["--after-cursor", "s=abc;i=6"]
    assert second[LOGINS_TARGET].status is Status.CRITICAL  # after 6 failures, and as root
    third = by_target(IntrusionCheck(config, context, run=run).run())
    assert calls[2][-2:] == ["--after-cursor", "s=abc;i=7"]
    assert third[LOGINS_TARGET].status is Status.CRITICAL


def test_a_line_without_end_does_not_stall_the_reader(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"x" * 200_000 + b"\n" + fail(NOW - 60, 0).encode())
    rates = by_target(check(tmp_path, log).run())[str(log)]
    assert rates.metrics[3].value == 1
    assert rates.details["bytes_read"] == log.stat().st_size
