"""MysqlReplicationCheck against a real MariaDB primary and replica started by the test.

Each test gets its own pair (tests/services/mariadb.py: two ``mariadbd`` with their own
data directories, free loopback ports and sockets under the test's directory, about 1.5 s
to start), breaks it the way production breaks, and runs the check. The machine's own
MariaDB is never touched (every server runs with ``--no-defaults``). No test skips: a
missing ``mariadbd`` fails, naming the Debian package ``mariadb-server``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.config import build
from checks.mysql_replication import MysqlReplicationCheck, MysqlReplicationConfig
from checks.registry import CheckContext
from checks.result import CheckResult, Status
from tests.services.mariadb import (
    MONITOR_PASSWORD,
    MONITOR_USER,
    MariadbUnavailable,
    ReplicationPair,
    _binary,
    start_pair,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[ReplicationPair]:
    try:
        started = start_pair(tmp_path / "mariadb")
    except MariadbUnavailable as err:
        pytest.fail(str(err))
    yield started
    started.stop()
    assert not started.replica.running and not started.primary.running


def run_check(port_or_socket: int | Path, tmp_path: Path, *, clock: Callable[[], float] = time.time,
              **keys: Any) -> list[CheckResult]:
    table: dict[str, Any] = {"user": MONITOR_USER, "password": MONITOR_PASSWORD,
                             "connect_timeout": 3}
    if isinstance(port_or_socket, Path):
        table["socket"] = str(port_or_socket)
    else:
        table["port"] = port_or_socket
    table.update(keys)
    if "password_file" in keys:
        del table["password"]
    config = build(MysqlReplicationConfig, table)
    context = CheckContext("repl", tmp_path / "state", timeout=10, clock=clock)
    return MysqlReplicationCheck(config, context).run()


def one(results: list[CheckResult]) -> CheckResult:
    assert len(results) == 1, results
    return results[0]


def applies_changes(pair: ReplicationPair, key: int) -> bool:
    """Write a new row on the primary; does it reach the replica within 3 s?"""
    pair.primary.sql("CREATE TABLE IF NOT EXISTS app.probe (id INT PRIMARY KEY)",
                     f"INSERT INTO app.probe VALUES ({key})")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            if pair.replica.sql(f"SELECT id FROM app.probe WHERE id = {key}"):
                return True
        except Exception:  # noqa: BLE001 - table not replicated yet
            pass
        time.sleep(0.1)
    return False


def test_a_missing_server_binary_names_the_debian_package() -> None:
    with pytest.raises(MariadbUnavailable, match="install the Debian package 'mariadb-server'"):
        _binary("mariadbd-not-installed")


def test_healthy_replica_is_ok_with_lag_zero(pair: ReplicationPair, tmp_path: Path) -> None:
    result = one(run_check(pair.replica.port, tmp_path))
    assert result.status is Status.OK, result.summary
    assert result.target == "default"
    assert result.summary == "replication default: healthy, lag 0 s"
    assert result.metrics[0].name == "lag" and result.metrics[0].value == 0
    assert result.details["source"] == f"127.0.0.1:{pair.primary.port}"
    # the same over the unix socket
    assert one(run_check(pair.replica.socket, tmp_path)).status is Status.OK


def test_sql_thread_stopped(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.replica.sql("STOP SLAVE SQL_THREAD")
    result = one(run_check(pair.replica.port, tmp_path))
    assert result.status is Status.CRITICAL
    assert "SQL thread stopped without error" in result.summary
    assert result.details["sql_running"] == "No" and result.details["io_running"] == "Yes"


def test_duplicate_key_break(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.replica.sql("INSERT INTO app.t VALUES (2, 'replica-only')")
    pair.primary.sql("INSERT INTO app.t VALUES (2, 'primary')")
    pair.wait_status("Slave_SQL_Running", "No")
    result = one(run_check(pair.replica.port, tmp_path))
    assert result.status is Status.CRITICAL
    assert "1062 (duplicate key)" in result.summary
    assert "Duplicate entry '2'" in result.summary
    assert result.details["last_sql_errno"] == 1062


def test_wrong_password_is_unknown_and_never_logged(pair: ReplicationPair, tmp_path: Path) -> None:
    result = one(run_check(pair.replica.port, tmp_path, password="not-the-password"))
    assert result.status is Status.UNKNOWN
    assert result.summary == f"monitoring credentials rejected by 127.0.0.1:{pair.replica.port}"
    assert "not-the-password" not in repr(result.to_wire())
    secret = tmp_path / "pw"
    secret.write_text("also-wrong\n")
    from_file = one(run_check(pair.replica.port, tmp_path, password_file=str(secret)))
    assert from_file.status is Status.UNKNOWN
    assert "also-wrong" not in repr(from_file.to_wire())
    secret.write_text(MONITOR_PASSWORD + "\n")
    assert one(run_check(pair.replica.port, tmp_path,
                         password_file=str(secret))).status is Status.OK
    missing = one(run_check(pair.replica.port, tmp_path, password_file=str(tmp_path / "no")))
    assert missing.status is Status.UNKNOWN and "password_file" in missing.summary


def test_primary_role_without_privileges_is_unknown(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.primary.sql("CREATE USER 'weak'@'%' IDENTIFIED BY 'weakpw'")
    result = one(run_check(pair.primary.port, tmp_path, role="primary", user="weak",
                           password="weakpw"))
    assert result.status is Status.UNKNOWN, result.summary
    assert "no PROCESS privilege" in " ".join(result.details["notes"])
    # with PROCESS alone, the Binlog Dump threads of the processlist are counted
    pair.primary.sql("GRANT PROCESS ON *.* TO 'weak'@'%'")
    counted = one(run_check(pair.primary.port, tmp_path, role="primary", user="weak",
                            password="weakpw"))
    assert counted.status is Status.OK and counted.metrics[0].value == 1
    assert counted.details["replica_hosts"] == ["127.0.0.1"]


def test_primary_stopped(pair: ReplicationPair, tmp_path: Path) -> None:
    primary_port = pair.primary.port
    pair.primary.stop()
    deadline = time.monotonic() + 15
    result = one(run_check(pair.replica.port, tmp_path))
    while result.status is Status.OK and time.monotonic() < deadline:
        time.sleep(0.2)
        result = one(run_check(pair.replica.port, tmp_path))
    assert result.status is Status.CRITICAL, result.summary
    assert f"IO thread connecting to primary 127.0.0.1:{primary_port}" in result.summary
    # and the check pointed at the stopped primary itself: refused
    down = one(run_check(primary_port, tmp_path, role="primary"))
    assert down.status is Status.CRITICAL
    assert down.summary.startswith(f"database not reachable at 127.0.0.1:{primary_port}")
    gone = one(run_check(pair.primary.socket, tmp_path, role="primary"))
    assert gone.status is Status.CRITICAL
    assert gone.summary.startswith(f"database not reachable at {pair.primary.socket}")


def test_lag_from_master_delay_crosses_warning_then_critical(
    pair: ReplicationPair, tmp_path: Path
) -> None:
    pair.replica.sql("STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY = 6", "START SLAVE")
    pair.wait_running()
    pair.primary.sql("INSERT INTO app.t VALUES (10, 'delayed')")
    seen: list[tuple[Status, float | None]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        result = one(run_check(pair.replica.port, tmp_path, lag_warn=1, lag_crit=3))
        seen.append((result.status, result.details.get("lag")))
        if result.status is Status.CRITICAL:
            assert "behind the primary (critical at 3 s) (configured delay 6 s)" in result.summary
            break
        time.sleep(0.3)
    statuses = [s for s, _ in seen]
    assert Status.WARNING in statuses and statuses[-1] is Status.CRITICAL, seen
    first_warning = statuses.index(Status.WARNING)
    assert all(s is Status.OK for s in statuses[:first_warning])
    pair.sync(timeout=20)
    assert one(run_check(pair.replica.port, tmp_path, lag_warn=1, lag_crit=3)).status is Status.OK


def test_heartbeat_table_gives_the_true_lag(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.primary.sql(
        "CREATE DATABASE percona",
        "CREATE TABLE percona.heartbeat (server_id INT PRIMARY KEY, ts VARCHAR(26) NOT NULL)",
        "INSERT INTO percona.heartbeat VALUES "
        "(1, DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%f'))",
    )
    pair.sync()
    keys: dict[str, Any] = {"heartbeat_table": "percona.heartbeat", "lag_warn": 60,
                            "lag_crit": 300}
    now = one(run_check(pair.replica.port, tmp_path, **keys))
    assert now.status is Status.OK and now.details["lag_source"] == "heartbeat"
    assert 0 <= now.details["lag"] < 5
    # Seconds_Behind_Master says 0, but the newest heartbeat the replica applied is what
    # counts: two minutes later with no new heartbeat, the lag is two minutes.
    later = one(run_check(pair.replica.port, tmp_path, clock=lambda: time.time() + 120,
                          io_stall_after=600, **keys))
    assert later.status is Status.WARNING
    assert 119 < later.details["lag"] < 126
    assert later.details["seconds_behind_master"] == 0
    missing = one(run_check(pair.replica.port, tmp_path, heartbeat_table="percona.nope"))
    assert missing.status is Status.OK
    assert "1146" in missing.details["heartbeat_error"]


def test_io_stall_when_the_primary_freezes(pair: ReplicationPair, tmp_path: Path) -> None:
    # SIGSTOP keeps the primary's TCP connections open but silent: the IO thread still says
    # Yes (until slave_net_timeout, 60 s), yet nothing and no heartbeat arrives any more.
    keys: dict[str, Any] = {"io_stall_after": 3}
    assert one(run_check(pair.replica.port, tmp_path, **keys)).status is Status.OK
    time.sleep(3.5)  # an idle primary: position frozen, but heartbeats (1 s) still arrive
    idle = one(run_check(pair.replica.port, tmp_path, **keys))
    assert idle.status is Status.OK, idle.summary
    assert pair.primary.process is not None
    pair.primary.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.5)
        one(run_check(pair.replica.port, tmp_path, **keys))  # remembers the heartbeat count
        time.sleep(3.5)
        stalled = one(run_check(pair.replica.port, tmp_path, **keys))
    finally:
        pair.primary.process.send_signal(signal.SIGCONT)
    assert stalled.status is Status.CRITICAL, stalled.summary
    assert "IO thread stalled" in stalled.summary and "no replication heartbeat" in stalled.summary
    assert stalled.details["io_running"] == "Yes"


def test_recovery_restarts_threads_stopped_without_error(
    pair: ReplicationPair, tmp_path: Path
) -> None:
    pair.replica.sql("STOP SLAVE")
    off = one(run_check(pair.replica.port, tmp_path))
    assert off.status is Status.CRITICAL
    assert pair.replica.slave_status()["Slave_SQL_Running"] == "No"  # recovery is opt-in
    on = one(run_check(pair.replica.port, tmp_path, recovery=True))
    assert on.status is Status.WARNING
    assert "recovery ran START SLAVE" in on.summary
    assert on.details["recovery_action"] == "START SLAVE"
    pair.wait_running()
    assert applies_changes(pair, 1)
    assert one(run_check(pair.replica.port, tmp_path, recovery=True)).status is Status.OK


def test_recovery_never_skips_an_error(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.replica.sql("INSERT INTO app.t VALUES (3, 'replica-only')")
    pair.primary.sql("INSERT INTO app.t VALUES (3, 'primary')")
    pair.wait_status("Slave_SQL_Running", "No")
    for _ in range(2):
        result = one(run_check(pair.replica.port, tmp_path, recovery=True))
        assert result.status is Status.CRITICAL and "1062" in result.summary
        assert "recovery_action" not in result.details
    status = pair.replica.slave_status()
    assert status["Slave_SQL_Running"] == "No" and status["Last_SQL_Errno"] == 1062
    assert pair.replica.sql("SELECT v FROM app.t WHERE id = 3") == [("replica-only",)]


def test_stopped_on_purpose(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.replica.sql("STOP SLAVE")
    result = one(run_check(pair.replica.port, tmp_path, stopped_on_purpose=["default"],
                           recovery=True))
    assert result.status is Status.WARNING
    assert "stopped on purpose" in result.summary
    assert pair.replica.slave_status()["Slave_SQL_Running"] == "No"  # recovery left it alone


def test_named_connection_is_its_own_target(pair: ReplicationPair, tmp_path: Path) -> None:
    pair.replica.sql("STOP SLAVE", "RESET SLAVE ALL")
    pair.change_master("billing")
    pair.wait_running("billing")
    result = one(run_check(pair.replica.port, tmp_path))
    assert result.target == "billing" and result.status is Status.OK
    pair.replica.sql("STOP SLAVE 'billing' SQL_THREAD")
    stopped = one(run_check(pair.replica.port, tmp_path))
    assert stopped.target == "billing" and stopped.status is Status.CRITICAL
    results = run_check(pair.replica.port, tmp_path, connections=["billing", "cdr"])
    assert [(r.target, r.status) for r in results] == [
        ("billing", Status.CRITICAL), ("cdr", Status.CRITICAL)]
    assert results[1].summary.startswith("replication cdr is not configured")


def test_primary_role_counts_connected_replicas(pair: ReplicationPair, tmp_path: Path) -> None:
    result = one(run_check(pair.primary.port, tmp_path, role="primary", expected_replicas=1))
    assert result.status is Status.OK and result.metrics[0].value == 1
    short = one(run_check(pair.primary.port, tmp_path, role="primary", expected_replicas=2))
    assert short.status is Status.WARNING
    assert short.summary == "1 of 2 expected replicas connected"
    pair.replica.sql("STOP SLAVE IO_THREAD")
    deadline = time.monotonic() + 10
    none = one(run_check(pair.primary.port, tmp_path, role="primary", expected_replicas=1))
    while none.status is not Status.CRITICAL and time.monotonic() < deadline:
        time.sleep(0.2)
        none = one(run_check(pair.primary.port, tmp_path, role="primary", expected_replicas=1))
    assert none.status is Status.CRITICAL and none.metrics[0].value == 0


def _duplicate_key(p: ReplicationPair) -> None:
    p.replica.sql("INSERT INTO app.t VALUES (7, 'r')")
    p.primary.sql("INSERT INTO app.t VALUES (7, 'p')")
    p.wait_status("Slave_SQL_Running", "No")


def _primary_down(p: ReplicationPair) -> None:
    p.primary.stop()
    p.wait_status("Slave_IO_Running", "Connecting")


BREAKS: dict[str, Callable[[ReplicationPair], object]] = {
    "sql_thread_stopped": lambda p: p.replica.sql("STOP SLAVE SQL_THREAD"),
    "io_thread_stopped": lambda p: p.replica.sql("STOP SLAVE IO_THREAD"),
    "both_stopped": lambda p: p.replica.sql("STOP SLAVE"),
    "duplicate_key": _duplicate_key,
    "primary_down": _primary_down,
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_never_ok_while_the_replica_does_not_apply_changes(
    pair: ReplicationPair, tmp_path: Path, kind: str
) -> None:
    assert applies_changes(pair, 100)
    BREAKS[kind](pair)
    result = one(run_check(pair.replica.port, tmp_path))
    assert result.status is not Status.OK, result.summary
    assert result.status is Status.CRITICAL, result.summary
    if pair.primary.running:
        assert not applies_changes(pair, 101), f"{kind}: the replica still applies changes"
