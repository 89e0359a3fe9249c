"""NtpCheck against a real chronyd serving NTP on loopback, and the one fake: a responder.

chronyd is started by the test (tests/services/chrony.py) on a free loopback port with
its own command socket, so ``chronyc -h <socket>`` talks to it and to nothing else. The
warning and critical offsets come from tests/services/ntp_responder.py: chronyd cannot be
made to serve a wrong time without changing the clock of the machine running the tests.
A dead server is a loopback UDP port nothing listens on. No test skips: a missing chronyd
fails, naming the Debian package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from checks.commands import run_command
from checks.config import build
from checks.ntp import (
    LOCAL_TARGET,
    OFFSET_TARGET,
    KernelClock,
    NtpCheck,
    NtpConfig,
    read_chronyd,
    read_kernel_clock,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Status, worst
from tests.checks import ntp_scenarios
from tests.services.chrony import ChronyServer, ChronyUnavailable, start_chronyd
from tests.services.ntp_responder import NtpResponder, dead_server_address, start_responder

pytestmark = pytest.mark.integration


@pytest.fixture
def chronyd(tmp_path: Path) -> Iterator[ChronyServer]:
    try:
        server = start_chronyd(tmp_path / "chrony")
    except ChronyUnavailable as err:
        pytest.fail(str(err))
    yield server
    server.stop()
    assert server.process.poll() is not None


@pytest.fixture
def responder() -> Iterator[Callable[..., NtpResponder]]:
    started: list[NtpResponder] = []

    def start(offset: float, **kwargs: int) -> NtpResponder:
        r = start_responder(offset, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def run_check(tmp_path: Path, table: dict[str, object], timeout: float = 8.0
              ) -> dict[str, CheckResult]:
    config = build(NtpConfig, {"query_timeout": "1s", **table})
    context = CheckContext(name="ntp", state_dir=tmp_path, timeout=timeout)
    return {r.target: r for r in NtpCheck(config, context).run()}


def test_real_chronyd_offset_near_zero_is_ok(tmp_path: Path, chronyd: ChronyServer) -> None:
    results = run_check(tmp_path, {"servers": [chronyd.address], "check_local": False})
    assert set(results) == {chronyd.address, OFFSET_TARGET}
    server = results[chronyd.address]
    assert server.status is Status.OK
    assert server.details["stratum"] == 8  # "local stratum 8" in its config
    offset = results[OFFSET_TARGET]
    assert offset.status is Status.OK, offset.summary
    assert abs(offset.details["offset"]) < 0.01  # same host, same clock


@pytest.mark.parametrize(
    ("served", "status"),
    [(0.05, Status.OK), (0.2, Status.WARNING), (-0.2, Status.WARNING), (0.7, Status.CRITICAL),
     (-3.0, Status.CRITICAL)],
)
def test_responder_offsets_are_judged(
    tmp_path: Path, responder: Callable[..., NtpResponder], served: float, status: Status
) -> None:
    # Three servers serving the same wrong time: the clock really is off by that much.
    servers = [responder(served).address for _ in range(3)]
    results = run_check(tmp_path, {"servers": servers, "check_local": False})
    offset = results[OFFSET_TARGET]
    assert offset.status is status, offset.summary
    assert offset.details["offset"] == pytest.approx(served, abs=0.01)
    assert "behind" in offset.summary if served > 0 else "ahead" in offset.summary


def test_a_lying_server_is_a_named_false_ticker(
    tmp_path: Path, chronyd: ChronyServer, responder: Callable[..., NtpResponder]
) -> None:
    honest = responder(0.0)
    liar = responder(3.0)
    servers = [chronyd.address, honest.address, liar.address]
    results = run_check(tmp_path, {"servers": servers, "check_local": False})
    assert results[OFFSET_TARGET].status is Status.OK
    assert list(results[OFFSET_TARGET].details["falsetickers"]) == [liar.address]
    assert results[liar.address].status is Status.WARNING
    assert "false ticker" in results[liar.address].summary


def test_one_of_three_dead_warns_about_it_and_the_offset_stands(
    tmp_path: Path, chronyd: ChronyServer, responder: Callable[..., NtpResponder]
) -> None:
    dead = dead_server_address()
    servers = [chronyd.address, responder(0.0).address, dead]
    started = time.monotonic()
    results = run_check(tmp_path, {"servers": servers, "check_local": False})
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # one query timeout (1 s), not one per server
    assert results[dead].status is Status.WARNING
    assert results[dead].summary == f"NTP server {dead}: no answer within 1s"
    offset = results[OFFSET_TARGET]
    assert offset.status is Status.OK
    assert offset.details["used"] == [chronyd.address, servers[1]]
    assert offset.details["unusable"] == [dead]


def test_all_dead_is_unknown_offset_and_the_local_state_is_still_judged(
    tmp_path: Path, chronyd: ChronyServer
) -> None:
    dead = [dead_server_address(), dead_server_address(), dead_server_address()]
    started = time.monotonic()
    results = run_check(tmp_path, {"servers": dead, "chronyc_socket": str(chronyd.socket_path)})
    assert time.monotonic() - started < 2.5
    assert results[OFFSET_TARGET].status is Status.UNKNOWN
    assert results[OFFSET_TARGET].summary == "no NTP server gave a usable answer (3 tried)"
    assert all(results[d].status is Status.WARNING for d in dead)
    local = results[LOCAL_TARGET]
    # The test's chronyd serves its own clock ("local stratum"): that is not a discipline.
    assert local.status is Status.CRITICAL
    assert local.summary == ("clock not synchronised: chronyd follows its own local clock "
                             "(no reachable source)")
    assert local.details["source"] == "chronyd"
    assert "kernel" in local.details


def test_an_unsynchronised_server_is_not_used(
    tmp_path: Path, chronyd: ChronyServer, responder: Callable[..., NtpResponder]
) -> None:
    unsynced = responder(5.0, leap=3, stratum=16)
    results = run_check(tmp_path, {"servers": [chronyd.address, unsynced.address],
                                   "check_local": False})
    assert results[unsynced.address].status is Status.WARNING
    assert "not synchronised" in results[unsynced.address].summary
    assert results[OFFSET_TARGET].status is Status.OK
    assert results[OFFSET_TARGET].details["used"] == [chronyd.address]


def test_chronyc_tracking_through_the_test_socket(chronyd: ChronyServer) -> None:
    config = NtpConfig(chronyc_socket=str(chronyd.socket_path))
    state, note = read_chronyd(config, run_command, 5.0)
    assert note == ""
    assert state is not None
    assert state.daemon == "chronyd"
    assert state.stratum == 8
    assert state.reference.startswith("7F7F0101")
    assert state.synchronised is False
    assert state.offset is not None and abs(state.offset) < 0.001


def test_chronyc_without_a_daemon_or_binary_is_a_note_not_an_error(tmp_path: Path) -> None:
    absent = tmp_path / "run" / "nothing.sock"
    state, note = read_chronyd(NtpConfig(chronyc_socket=str(absent)), run_command, 5.0)
    assert state is None and note.startswith("chronyd not running")
    state, note = read_chronyd(NtpConfig(chronyc="/nonexistent/chronyc"), run_command, 5.0)
    assert state is None and note == "/nonexistent/chronyc not installed"


def test_local_state_without_any_daemon_falls_back_to_the_kernel(tmp_path: Path) -> None:
    absent = str(tmp_path / "nothing.sock")
    results = run_check(tmp_path, {"chronyc_socket": absent, "ntpq": "/nonexistent/ntpq"})
    local = results[LOCAL_TARGET]
    kernel = read_kernel_clock()
    assert local.details["source"] == "kernel"
    expected = Status.OK if kernel.synchronised else Status.CRITICAL
    assert local.status is expected, local.summary
    assert "/nonexistent/ntpq not installed" in local.details["notes"]


def test_the_real_kernel_answers_adjtimex() -> None:
    kernel = read_kernel_clock()
    assert isinstance(kernel, KernelClock)
    assert 0 <= kernel.state <= 5
    assert 0 <= kernel.maxerror_us <= 16_000_000
    assert kernel.esterror_us >= 0


@pytest.mark.parametrize("kind", ntp_scenarios.KINDS)
def test_scenario_builders(tmp_path: Path, kind: str) -> None:
    try:
        scenario = ntp_scenarios.build(kind, tmp_path / kind)
    except ChronyUnavailable as err:
        pytest.fail(str(err))
    try:
        # Through the agent's own config loader, as the end-to-end test will use it.
        path = tmp_path / "agent.toml"
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n{scenario.toml}')
        (spec,) = [c for c in load_config(path).checks if c.name == "ntp"]
        context = CheckContext(name=spec.name, state_dir=tmp_path, timeout=spec.timeout)
        results = spec.check_class(spec.config, context).run()
        assert worst(r.status for r in results) is scenario.expected, [
            r.plugin_line() for r in results
        ]
        assert LOCAL_TARGET not in {r.target for r in results}
        assert {r.target for r in results} == {*scenario.servers, OFFSET_TARGET}
    finally:
        scenario.stop()
