"""The pure judgement of the mysql_replication check: every state and every lag boundary."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from checks.config import ConfigError, Seconds, build
from checks.mysql_replication import (
    MysqlReplicationConfig,
    ReplicaConnection,
    ReplicationFacts,
    apply_state,
    error_name,
    evaluate,
    parse_heartbeat_ts,
    parse_status_row,
    short_error,
)
from checks.result import CheckResult, Status

NOW = 1_800_000_000.0
CONFIG = MysqlReplicationConfig(lag_warn=Seconds(60), lag_crit=Seconds(300))
HEALTHY = ReplicaConnection("", "Yes", "Yes", 0, source="10.0.0.1:3306",
                            received_position="mysql-bin.000001:900")


def judge(conn: ReplicaConnection, config: MysqlReplicationConfig = CONFIG,
          **facts: Any) -> CheckResult:
    results = evaluate(config, ReplicationFacts(connections=(conn,), **facts), NOW, "repl",
                       "127.0.0.1:3306")
    assert len(results) == 1
    return results[0]


def config(**kwargs: Any) -> MysqlReplicationConfig:
    return build(MysqlReplicationConfig, kwargs)


@pytest.mark.parametrize(
    ("lag", "expected"),
    [
        (0, Status.OK),
        (59, Status.OK),
        (60, Status.WARNING),
        (61, Status.WARNING),
        (299, Status.WARNING),
        (300, Status.CRITICAL),
        (301, Status.CRITICAL),
    ],
)
def test_seconds_behind_master_boundaries(lag: int, expected: Status) -> None:
    result = judge(replace(HEALTHY, seconds_behind=lag))
    assert result.status is expected
    assert result.metrics[0].name == "lag" and result.metrics[0].value == lag
    assert result.metrics[0].warn == 60 and result.metrics[0].crit == 300
    assert result.details["lag_source"] == "seconds_behind_master"
    if expected is Status.OK:
        assert "healthy" in result.summary
    else:
        assert f"{lag} s behind" in result.summary


@pytest.mark.parametrize(
    ("lag", "expected"),
    [(59.9, Status.OK), (60.0, Status.WARNING), (299.9, Status.WARNING), (300.0, Status.CRITICAL)],
)
def test_heartbeat_lag_wins_over_seconds_behind_master(lag: float, expected: Status) -> None:
    cfg = config(heartbeat_table="percona.heartbeat")
    result = judge(replace(HEALTHY, seconds_behind=0), cfg, heartbeat_ts=NOW - lag)
    assert result.status is expected
    assert result.details["lag_source"] == "heartbeat"
    assert result.details["lag"] == pytest.approx(lag)


def test_heartbeat_unreadable_falls_back_to_seconds_behind_master() -> None:
    cfg = config(heartbeat_table="percona.heartbeat")
    result = judge(replace(HEALTHY, seconds_behind=400), cfg, heartbeat_error="no such table")
    assert result.status is Status.CRITICAL
    assert result.details["lag_source"] == "seconds_behind_master"
    assert result.details["heartbeat_error"] == "no such table"


def test_null_lag_is_never_zero() -> None:
    result = judge(replace(HEALTHY, seconds_behind=None))
    assert result.status is Status.UNKNOWN
    assert "lag unknown" in result.summary
    assert result.metrics == ()
    warning = judge(replace(HEALTHY, seconds_behind=None), config(unknown_lag_status="warning"))
    assert warning.status is Status.WARNING


def test_duplicate_key_error_is_critical_with_errno_and_text() -> None:
    conn = replace(HEALTHY, sql_running="No", seconds_behind=None, last_sql_errno=1062,
                   last_sql_error="Duplicate entry '2' for key 'PRIMARY'")
    result = judge(conn)
    assert result.status is Status.CRITICAL
    assert "1062" in result.summary and "duplicate key" in result.summary
    assert "Duplicate entry '2'" in result.summary
    assert result.details["state"] == "sql_error"


def test_an_error_is_never_stopped_on_purpose() -> None:
    conn = replace(HEALTHY, sql_running="No", last_sql_errno=1032, last_sql_error="gone")
    result = judge(conn, config(stopped_on_purpose=["default"], stopped_on_purpose_status="ok"))
    assert result.status is Status.CRITICAL
    assert "row not found" in result.summary


def test_io_thread_error() -> None:
    conn = replace(HEALTHY, io_running="No", last_io_errno=1236, last_io_error="binlog purged")
    result = judge(conn)
    assert result.status is Status.CRITICAL
    assert "IO thread stopped" in result.summary and "1236" in result.summary


@pytest.mark.parametrize(
    ("io", "sql", "words"),
    [("Yes", "No", "SQL thread stopped"), ("No", "Yes", "IO thread stopped"),
     ("No", "No", "both threads stopped")],
)
def test_stopped_without_error_is_critical(io: str, sql: str, words: str) -> None:
    result = judge(replace(HEALTHY, io_running=io, sql_running=sql, seconds_behind=None))
    assert result.status is Status.CRITICAL
    assert words in result.summary and "without error" in result.summary


@pytest.mark.parametrize(("setting", "expected"), [("ok", Status.OK),
                                                   ("warning", Status.WARNING)])
def test_stopped_on_purpose(setting: str, expected: Status) -> None:
    cfg = config(stopped_on_purpose=["reporting"], stopped_on_purpose_status=setting)
    conn = replace(HEALTHY, name="reporting", io_running="No", sql_running="No",
                   seconds_behind=None)
    result = judge(conn, cfg)
    assert result.status is expected
    assert result.target == "reporting"
    assert "stopped on purpose" in result.summary
    # another connection that stopped is still critical
    other = judge(replace(conn, name="billing"), cfg)
    assert other.status is Status.CRITICAL


def test_recovery_reported_as_warning() -> None:
    conn = replace(HEALTHY, sql_running="No", seconds_behind=None, recovery_action="START SLAVE")
    result = judge(conn)
    assert result.status is Status.WARNING
    assert "recovery ran START SLAVE" in result.summary
    failed = judge(replace(conn, recovery_error="1198: denied"))
    assert failed.status is Status.CRITICAL and "recovery failed" in failed.summary


def test_io_connecting() -> None:
    conn = replace(HEALTHY, io_running="Connecting", seconds_behind=None, last_io_errno=2003,
                   last_io_error="error connecting to master")
    result = judge(conn)
    assert result.status is Status.CRITICAL
    assert "connecting to primary 10.0.0.1:3306" in result.summary
    assert "cannot connect to primary" in result.summary
    both = judge(replace(conn, sql_running="No"))
    assert both.status is Status.CRITICAL


@pytest.mark.parametrize(
    ("frozen", "hb_frozen", "hb_lag", "expected_state"),
    [
        (119.0, 119.0, None, "healthy"),      # just below io_stall_after
        (120.0, 120.0, None, "io_stalled"),   # at: position and heartbeats frozen
        (121.0, None, 121.0, "io_stalled"),   # heartbeat table ageing
        (500.0, 5.0, None, "healthy"),        # idle primary: heartbeats still arrive
        (500.0, None, None, "healthy"),       # no evidence the primary is alive: not a stall
        (None, None, None, "healthy"),        # first run
        (500.0, None, 119.0, "healthy"),      # heartbeat table fresh enough
    ],
)
def test_io_stall(frozen: float | None, hb_frozen: float | None, hb_lag: float | None,
                  expected_state: str) -> None:
    cfg = config(heartbeat_table="percona.heartbeat", lag_warn=600, lag_crit=900)
    conn = replace(HEALTHY, received_since=None if frozen is None else NOW - frozen,
                   heartbeats_since=None if hb_frozen is None else NOW - hb_frozen)
    result = judge(conn, cfg, heartbeat_ts=NOW - (hb_lag if hb_lag is not None else 1.0))
    assert result.details["state"] == expected_state
    if expected_state == "io_stalled":
        assert result.status is Status.CRITICAL and "IO thread stalled" in result.summary
    else:
        assert result.status is Status.OK


def test_connection_errors() -> None:
    def one(kind: str) -> CheckResult:
        facts = ReplicationFacts(error_kind=kind, error="x")  # type: ignore[arg-type]
        return evaluate(CONFIG, facts, NOW, "repl", "127.0.0.1:3306")[0]

    assert one("unreachable").status is Status.CRITICAL
    assert "database not reachable" in one("unreachable").summary
    assert one("credentials").status is Status.UNKNOWN
    assert one("credentials").summary == "monitoring credentials rejected by 127.0.0.1:3306"
    assert one("privilege").status is Status.UNKNOWN
    assert one("query").status is Status.UNKNOWN
    assert one("config").status is Status.UNKNOWN


def test_not_a_replica_is_critical() -> None:
    result = evaluate(CONFIG, ReplicationFacts(), NOW, "repl")[0]
    assert result.status is Status.CRITICAL and "not a replica" in result.summary


def test_multi_source_one_result_per_connection() -> None:
    conns = (replace(HEALTHY, name="billing", seconds_behind=5),
             replace(HEALTHY, name="cdr", sql_running="No", last_sql_errno=1062,
                     last_sql_error="dup"),
             HEALTHY)
    results = evaluate(CONFIG, ReplicationFacts(connections=conns), NOW, "repl")
    assert [(r.target, r.status) for r in results] == [
        ("billing", Status.OK), ("cdr", Status.CRITICAL), ("default", Status.OK)]


def test_connections_filter_and_missing_connection() -> None:
    conns = (replace(HEALTHY, name="billing"), replace(HEALTHY, name="cdr", seconds_behind=900))
    cfg = config(connections=["billing", "mediation"])
    results = evaluate(cfg, ReplicationFacts(connections=conns), NOW, "repl", "db:3306")
    assert [(r.target, r.status) for r in results] == [
        ("billing", Status.OK), ("mediation", Status.CRITICAL)]
    assert results[1].summary == "replication mediation is not configured on db:3306"
    default = evaluate(config(connections=["default"]), ReplicationFacts(connections=(HEALTHY,)),
                       NOW, "repl")
    assert [(r.target, r.status) for r in default] == [("default", Status.OK)]


@pytest.mark.parametrize(
    ("connected", "expected"),
    [(0, Status.CRITICAL), (1, Status.WARNING), (2, Status.OK), (3, Status.OK),
     (None, Status.UNKNOWN)],
)
def test_primary_replica_count(connected: int | None, expected: Status) -> None:
    cfg = config(role="primary", expected_replicas=2)
    result = evaluate(cfg, ReplicationFacts(connected_replicas=connected), NOW, "repl")[0]
    assert result.status is expected
    assert result.target == "primary"


def test_primary_count_unreadable_names_why() -> None:
    cfg = config(role="primary")
    facts = ReplicationFacts(connected_replicas=None, notes=("processlist: 1227 denied",))
    result = evaluate(cfg, facts, NOW, "repl")[0]
    assert result.status is Status.UNKNOWN
    assert result.details["notes"] == ["processlist: 1227 denied"]


def test_primary_expecting_none() -> None:
    cfg = config(role="primary", expected_replicas=0)
    assert evaluate(cfg, ReplicationFacts(connected_replicas=0), NOW, "r")[0].status is Status.OK


def test_parse_both_column_namings() -> None:
    old = parse_status_row({
        "Connection_name": "", "Slave_IO_Running": "Yes", "Slave_SQL_Running": "No",
        "Seconds_Behind_Master": None, "Master_Host": "db1", "Master_Port": 3306,
        "Master_Log_File": "b.000002", "Read_Master_Log_Pos": 77, "Gtid_IO_Pos": "0-1-5",
        "Last_SQL_Errno": 1062, "Last_SQL_Error": "dup", "Last_IO_Errno": 0,
        "Slave_received_heartbeats": 12, "Slave_heartbeat_period": "30.000", "SQL_Delay": 5,
    })
    assert (old.io_running, old.sql_running, old.seconds_behind) == ("Yes", "No", None)
    assert old.source == "db1:3306" and old.received_position == "b.000002:77 gtid 0-1-5"
    assert old.last_sql_errno == 1062 and old.heartbeats_received == 12 and old.sql_delay == 5
    new = parse_status_row({
        "Channel_Name": "cdr", "Replica_IO_Running": "Connecting", "Replica_SQL_Running": "Yes",
        "Seconds_Behind_Source": 7, "Source_Host": "db2", "Source_Port": 3307,
        "Source_Log_File": "b.1", "Read_Source_Log_Pos": 4, "Retrieved_Gtid_Set": "",
    })
    assert (new.name, new.target, new.io_running, new.seconds_behind) == (
        "cdr", "cdr", "Connecting", 7)
    assert new.source == "db2:3307" and new.received_position == "b.1:4"
    assert parse_status_row({"Slave_IO_Running": "Yes"}).target == "default"


def test_apply_state_tracks_frozen_positions() -> None:
    conn = replace(HEALTHY, heartbeats_received=3, heartbeat_period=30.0)
    first, state = apply_state([conn], {}, 1000.0)
    assert (first[0].received_since, first[0].heartbeats_since) == (1000.0, 1000.0)
    second, state = apply_state([conn], state, 1130.0)
    assert (second[0].received_since, second[0].heartbeats_since) == (1000.0, 1000.0)
    moved = replace(conn, received_position="mysql-bin.000001:950", heartbeats_received=4)
    third, state = apply_state([moved], state, 1200.0)
    assert (third[0].received_since, third[0].heartbeats_since) == (1200.0, 1200.0)
    no_heartbeats, _ = apply_state([replace(conn, heartbeat_period=0.0)], state, 1300.0)
    assert no_heartbeats[0].heartbeats_since is None
    # broken or future state starts afresh instead of failing or inventing a stall
    broken, _ = apply_state([conn], {"default": "garbage"}, 5.0)
    assert broken[0].received_since == 5.0
    future, _ = apply_state([conn], {"default": {"received": {
        "value": conn.received_position, "since": 9e9}}}, 5.0)
    assert future[0].received_since == 5.0


def test_first_run_is_never_a_stall() -> None:
    (conn,), _ = apply_state([HEALTHY], {}, NOW)
    result = judge(conn, config(io_stall_after=1))
    assert result.details["state"] == "healthy"
    assert result.details["received_unchanged_for"] == 0


def test_parse_heartbeat_ts() -> None:
    assert parse_heartbeat_ts("2026-11-26T01:58:07.500000").timestamp() == pytest.approx(
        dt.datetime(2026, 11, 26, 1, 58, 7, 500000, tzinfo=dt.UTC).timestamp())
    assert parse_heartbeat_ts(dt.datetime(2026, 1, 1)).tzinfo is dt.UTC


MARIADB_1062 = (
    "Could not execute Write_rows_v1 event on table app.t; Duplicate entry '2' for key "
    "'PRIMARY', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's master "
    "log mysql-bin.000001, end_log_pos 1363"
)


def test_summary_carries_the_actionable_part_of_the_error() -> None:
    assert short_error(MARIADB_1062) == "on app.t: Duplicate entry '2' for key 'PRIMARY'"
    assert short_error("Error 'Table 'x.y' doesn't exist' on query. Default database: 'x'; q") \
        == "Error 'Table 'x.y' doesn't exist' on query. Default database: 'x'"
    conn = replace(HEALTHY, sql_running="No", last_sql_errno=1062, last_sql_error=MARIADB_1062)
    result = judge(conn)
    assert result.summary == ("replication default: SQL thread stopped, 1062 (duplicate key) "
                              "on app.t: Duplicate entry '2' for key 'PRIMARY'")
    assert result.details["last_sql_error"] == MARIADB_1062


def test_error_names() -> None:
    assert error_name(1062) == "duplicate key"
    assert error_name(9999) == "error 9999"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"port": 0}, "port"),
        ({"lag_warn": 400, "lag_crit": 300}, "lag_warn"),
        ({"lag_warn": 0}, "lag_warn"),
        ({"password": "a", "password_file": "/x"}, "password_file"),
        ({"password_file": "relative"}, "password_file"),
        ({"socket": "rel.sock"}, "socket"),
        ({"heartbeat_table": "no_dot"}, "heartbeat_table"),
        ({"heartbeat_table": "a.b; DROP"}, "heartbeat_table"),
        ({"role": "leader"}, "role"),
        ({"role": "primary", "recovery": True}, "recovery"),
        ({"expected_replicas": -1}, "expected_replicas"),
        ({"connections": ["a", "a"]}, "connections[1]"),
        ({"role": "primary", "connections": ["a"]}, "connections"),
        ({"role": "primary", "stopped_on_purpose": ["a"]}, "stopped_on_purpose"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"io_stall_after": 0}, "io_stall_after"),
        ({"user": ""}, "user"),
        ({"pasword": "x"}, "pasword"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(MysqlReplicationConfig, table)
    assert err.value.key == key


def test_config_defaults() -> None:
    cfg = build(MysqlReplicationConfig, {})
    assert (float(cfg.lag_warn), float(cfg.lag_crit)) == (60.0, 300.0)
    assert (cfg.role, cfg.recovery, cfg.unknown_lag_status) == ("replica", False, "unknown")
    assert float(cfg.io_stall_after) == 120.0
