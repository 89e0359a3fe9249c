"""NtpCheck's wiring with its seams replaced: concurrency, deadlines, command handling."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from checks.commands import CommandOutput
from checks.config import Seconds
from checks.ntp import (
    LOCAL_TARGET,
    OFFSET_TARGET,
    KernelClock,
    NtpCheck,
    NtpConfig,
    QueryFunction,
    Server,
    ServerReply,
)
from checks.registry import CheckContext
from checks.result import Status

SYNCED = KernelClock(0, 0x2001, 5000, 100)
TRACKING = ("C0A80001,ntp1,3,1795656240.5,0.000200000,0.0,0.0,0.0,0.0,0.0,0.01,0.001,64.0,"
            "Normal\n")


class FakeCommands:
    """Answers chronyc and ntpq like the real ones would, and records the calls."""

    def __init__(self, chronyc: CommandOutput, ntpq: CommandOutput | None = None) -> None:
        self.chronyc = chronyc
        self.ntpq = ntpq or CommandOutput(1, "", "ntpq: read: Connection refused")
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandOutput:
        self.calls.append((list(argv), timeout))
        return self.chronyc if argv[-1] == "tracking" else self.ntpq


def make_check(tmp_path: Path, config: NtpConfig, *, timeout: float = 30.0,
               query: QueryFunction | None = None, commands: FakeCommands | None = None
               ) -> NtpCheck:
    context = CheckContext("ntp", tmp_path, timeout=timeout)
    commands = commands or FakeCommands(CommandOutput(0, TRACKING, ""))

    def default_query(server: Server, timeout: float) -> ServerReply:
        return ServerReply(server.label, 0.001, 0.002, 2)

    return NtpCheck(config, context, query=query or default_query, kernel=lambda: SYNCED,
                    run=commands, timesync_dir=tmp_path / "no-timesyncd")


def test_servers_are_asked_at_once(tmp_path: Path) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def query(server: Server, timeout: float) -> ServerReply:
        barrier.wait()  # only passes when all three queries run together
        return ServerReply(server.label, 0.001, 0.002, 2)

    config = NtpConfig(servers=("a", "b", "c"), chronyc="/bin/true", ntpq="/bin/true")
    results = make_check(tmp_path, config, query=query).run()
    assert [r.status for r in results] == [Status.OK] * 5


def test_a_hung_query_costs_one_timeout_and_is_reported(tmp_path: Path) -> None:
    release = threading.Event()

    def query(server: Server, timeout: float) -> ServerReply:
        if server.host == "hung":
            release.wait(10)  # a name lookup that never returns
        return ServerReply(server.label, 0.001, 0.002, 2)

    config = NtpConfig(servers=("hung", "b"), check_local=False)
    started = time.monotonic()
    results = {r.target: r for r in make_check(tmp_path, config, timeout=2, query=query).run()}
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 1.8  # 0.4 x 2 s query timeout + 0.5 s grace
    assert results["hung:123"].status is Status.WARNING
    assert results["hung:123"].summary == "NTP server hung:123: no answer within 0.8s"
    assert results[OFFSET_TARGET].status is Status.OK


def test_a_query_that_raises_is_that_server_s_warning(tmp_path: Path) -> None:
    def query(server: Server, timeout: float) -> ServerReply:
        raise RuntimeError("boom")

    results = {r.target: r for r in make_check(
        tmp_path, NtpConfig(servers=("a",), check_local=False), query=query).run()}
    assert results["a:123"].status is Status.WARNING
    assert "RuntimeError: boom" in results["a:123"].summary
    assert results[OFFSET_TARGET].status is Status.UNKNOWN


def test_chronyc_is_called_with_socket_numeric_csv_and_a_bounded_timeout(tmp_path: Path) -> None:
    commands = FakeCommands(CommandOutput(0, TRACKING, ""))
    config = NtpConfig(chronyc="/bin/true", chronyc_socket="/tmp/x.sock", ntpq="/bin/true",
                       command_timeout=Seconds(10))
    results = make_check(tmp_path, config, timeout=10, commands=commands).run()
    argv, timeout = commands.calls[0]
    assert argv == ["/bin/true", "-h", "/tmp/x.sock", "-n", "-c", "tracking"]
    assert timeout == 2.0  # 20% of the run's 10 s
    assert commands.calls[1][0] == ["/bin/true", "-n", "-c", "rv"]
    local = results[0]
    assert local.target == LOCAL_TARGET
    assert local.status is Status.OK
    assert local.summary == ("chronyd synchronised to C0A80001 (ntp1), stratum 3: "
                             "clock 0.2 ms behind")
    assert local.details["notes"] == ["ntpd not answering (ntpq: read: Connection refused)"]


def test_a_chronyc_timeout_is_a_note_and_the_kernel_decides(tmp_path: Path) -> None:
    commands = FakeCommands(CommandOutput(None, "", "no answer within 3s"))
    config = NtpConfig(chronyc="/bin/true", ntpq="/nonexistent/ntpq")
    local = make_check(tmp_path, config, commands=commands).run()[0]
    assert local.status is Status.OK
    assert local.details["source"] == "kernel"
    assert local.details["notes"] == ["chronyc tracking failed: no answer within 3s",
                                      "/nonexistent/ntpq not installed"]


def test_garbled_chronyc_output_is_a_note(tmp_path: Path) -> None:
    commands = FakeCommands(CommandOutput(0, "garbage\n", ""))
    config = NtpConfig(chronyc="/bin/true", ntpq="/nonexistent/ntpq")
    local = make_check(tmp_path, config, commands=commands).run()[0]
    assert local.details["source"] == "kernel"
    assert local.details["notes"][0].startswith("chronyc tracking output not understood")


def test_unreadable_kernel_and_no_daemon_is_unknown(tmp_path: Path) -> None:
    def kernel() -> KernelClock:
        raise OSError("adjtimex is not available")

    context = CheckContext("ntp", tmp_path)
    check = NtpCheck(NtpConfig(chronyc="/nonexistent/c", ntpq="/nonexistent/n"), context,
                     kernel=kernel, timesync_dir=tmp_path / "no-timesyncd")
    (local,) = check.run()
    assert local.status is Status.UNKNOWN
    assert local.summary.startswith("no clock state readable: kernel clock state unreadable")


def _timesyncd_check(tmp_path: Path, synced_ago: float | None) -> NtpCheck:
    """A host keeping time with systemd-timesyncd, the kernel refused (the agent's unit)."""
    def kernel() -> KernelClock:
        raise OSError(1, "adjtimex failed: Operation not permitted")

    state = tmp_path / "timesync"
    state.mkdir()
    if synced_ago is not None:
        marker = state / "synchronized"
        marker.touch()
        at = time.time() - synced_ago
        os.utime(marker, (at, at))
    return NtpCheck(NtpConfig(chronyc="/nonexistent/c", ntpq="/nonexistent/n"),
                    CheckContext("ntp", tmp_path), kernel=kernel, timesync_dir=state)


def test_timesyncd_synchronised_lately_is_ok_without_the_kernel(tmp_path: Path) -> None:
    (local,) = _timesyncd_check(tmp_path, synced_ago=600).run()
    assert local.status is Status.OK
    assert local.summary == "synchronised (systemd-timesyncd, its NTP server)"
    assert local.details["source"] == "systemd-timesyncd"
    assert "stratum" not in {m.name for m in local.metrics}


def test_timesyncd_silent_for_hours_is_not_synchronised(tmp_path: Path) -> None:
    (local,) = _timesyncd_check(tmp_path, synced_ago=3 * 3600).run()
    assert local.status is Status.CRITICAL  # unsynchronised_status, critical by default
    assert local.summary == ("clock not synchronised: systemd-timesyncd last synchronised "
                             "180 min ago")


def test_timesyncd_that_never_synchronised_says_so(tmp_path: Path) -> None:
    (local,) = _timesyncd_check(tmp_path, synced_ago=None).run()
    assert local.status is Status.CRITICAL
    assert "has not synchronised since it started" in local.summary
