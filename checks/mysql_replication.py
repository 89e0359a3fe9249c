"""The ``mysql_replication`` check: is a MySQL/MariaDB replica applying changes, and how late.

Collect, then judge. ``MysqlReplicationCheck.run`` connects once (``checks.mysqlwire``, a
small client for the protocol's few messages: text queries, no TLS), reads the replication
status of every connection (``SHOW ALL SLAVES STATUS`` on MariaDB, else ``SHOW REPLICA
STATUS``, else ``SHOW SLAVE STATUS``; either column naming), optionally the heartbeat
table, and on a primary the connected replicas. The received position of each connection
is kept in the state directory between runs, so a frozen IO thread can be told from an
idle primary. ``evaluate`` judges those facts without any I/O: one result per replication
connection (or one for the primary, or one for the connection failure). Keys, statuses and
the reasoning behind the defaults: docs/checks/mysql_replication.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks import mysqlwire
from checks.config import ConfigError, Seconds
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status
from checks.statefile import write_json

PRIMARY_TARGET = "primary"
DEFAULT_CONNECTION_TARGET = "default"
STATE_FILE = "mysql_replication.json"

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_$]+\.[A-Za-z0-9_$]+$")

# Short words for the replication errors support engineers meet most; the server's own
# error text follows in the summary and in details.
ERROR_NAMES: Mapping[int, str] = {
    1007: "database exists",
    1008: "database does not exist",
    1032: "row not found",
    1045: "access denied",
    1050: "table exists",
    1051: "unknown table",
    1062: "duplicate key",
    1146: "table does not exist",
    1205: "lock wait timeout",
    1213: "deadlock",
    1236: "primary binlog read error",
    1451: "foreign key (parent row)",
    1452: "foreign key (child row)",
    1593: "fatal replication error",
    1594: "relay log read failure",
    1595: "relay log write failure",
    2003: "cannot connect to primary",
    2005: "unknown primary host",
    2013: "lost connection to primary",
}


_ROW_EVENT_ERROR = re.compile(r"on table (?P<table>[^;\s]+); (?P<message>.*?)(?:, Error_code:|$)")


def short_error(text: str) -> str:
    """The part of a replication error a person acts on, for the summary.

    ``Could not execute Write_rows_v1 event on table app.t; Duplicate entry '2' for key
    'PRIMARY', Error_code: 1062; handler error ...; the event's master log ...`` becomes
    ``on app.t: Duplicate entry '2' for key 'PRIMARY'``; the whole text stays in details.
    """
    match = _ROW_EVENT_ERROR.search(text)
    if match:
        return f"on {match['table']}: {match['message'].strip()}"
    return text.split("; ", 1)[0].strip()


def error_name(errno: int) -> str:
    """A short name for a server error number (``"error 1234"`` when not known)."""
    return ERROR_NAMES.get(errno, f"error {errno}")


# ---------------------------------------------------------------------------- config


@dataclass(frozen=True)
class MysqlReplicationConfig:
    """``[checks.<name>]`` of type ``mysql_replication``; keys in its docs page."""

    host: str = "127.0.0.1"
    port: int = 3306
    socket: str = ""
    user: str = "watchkeeper"
    password: str = ""
    password_file: str = ""
    connect_timeout: Seconds = Seconds(5)
    role: Literal["replica", "primary"] = "replica"
    lag_warn: Seconds = Seconds(60)
    lag_crit: Seconds = Seconds(300)
    unknown_lag_status: Literal["warning", "unknown"] = "unknown"
    heartbeat_table: str = ""
    io_stall_after: Seconds = Seconds(120)
    connections: tuple[str, ...] = ()
    stopped_on_purpose: tuple[str, ...] = ()
    stopped_on_purpose_status: Literal["ok", "warning"] = "warning"
    recovery: bool = False
    expected_replicas: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError("port", "must be from 1 to 65535")
        if not self.socket and not self.host.strip():
            raise ConfigError("host", "must name a host when no socket is given")
        if self.socket and not self.socket.startswith("/"):
            raise ConfigError("socket", "must be an absolute path")
        if not self.user:
            raise ConfigError("user", "must not be empty")
        if self.password and self.password_file:
            raise ConfigError("password_file", "give either password or password_file, not both")
        if self.password_file and not self.password_file.startswith("/"):
            raise ConfigError("password_file", "must be an absolute path")
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout", "must be more than 0 seconds")
        if self.lag_warn <= 0:
            raise ConfigError("lag_warn", "must be more than 0 seconds")
        if self.lag_warn > self.lag_crit:
            raise ConfigError("lag_warn", "must not be above lag_crit")
        if self.io_stall_after <= 0:
            raise ConfigError("io_stall_after", "must be more than 0 seconds")
        if self.heartbeat_table and not _TABLE_NAME.match(self.heartbeat_table):
            raise ConfigError("heartbeat_table", "must be database.table (letters, digits, _, $)")
        if self.expected_replicas < 0:
            raise ConfigError("expected_replicas", "must not be negative")
        for i, name in enumerate(self.connections):
            if name in self.connections[:i]:
                raise ConfigError(f"connections[{i}]", f"{name!r} is listed twice")
        if self.role == "primary" and (self.recovery or self.stopped_on_purpose
                                       or self.connections):
            key = ("recovery" if self.recovery else
                   "stopped_on_purpose" if self.stopped_on_purpose else "connections")
            raise ConfigError(key, "applies to role = \"replica\" only")


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class ReplicaConnection:
    """One replication connection (MariaDB) or channel (MySQL) as the replica reports it."""

    name: str
    """Connection name; "" for the default connection."""
    io_running: str
    """``Yes``, ``No``, ``Connecting`` or ``Preparing``."""
    sql_running: str
    seconds_behind: int | None
    """Seconds_Behind_Master/Source; None when the server says NULL."""
    last_io_errno: int = 0
    last_io_error: str = ""
    last_sql_errno: int = 0
    last_sql_error: str = ""
    source: str = ""
    """``host:port`` of the primary."""
    received_position: str = ""
    """Where the IO thread is: binlog file:position and the GTID received."""
    sql_delay: int = 0
    """MASTER_DELAY in seconds (delayed replication on purpose)."""
    heartbeats_received: int | None = None
    heartbeat_period: float | None = None
    received_since: float | None = None
    """Epoch seconds since which the received position has not moved (from the state)."""
    heartbeats_since: float | None = None
    """Epoch seconds since which the heartbeat counter has not moved (None: no heartbeats)."""
    recovery_action: str = ""
    """What recovery did (e.g. ``START SLAVE 'x'``); empty when it did nothing."""
    recovery_error: str = ""

    @property
    def target(self) -> str:
        """The result target: the connection name, ``default`` for the unnamed one."""
        return self.name or DEFAULT_CONNECTION_TARGET


@dataclass(frozen=True, slots=True)
class ReplicationFacts:
    """Everything read from the server; ``error`` is set when it could not be read."""

    error_kind: Literal["", "unreachable", "credentials", "privilege", "query", "config"] = ""
    error: str = ""
    connections: tuple[ReplicaConnection, ...] = ()
    heartbeat_ts: float | None = None
    """Epoch seconds of the newest heartbeat ``ts`` (UTC); None when not configured/read."""
    heartbeat_error: str = ""
    connected_replicas: int | None = None
    replica_hosts: tuple[str, ...] = ()
    status_query: str = ""
    notes: tuple[str, ...] = ()
    """What could not be read on the way (e.g. the processlist without PROCESS)."""


# ---------------------------------------------------------------------------- evaluate


def evaluate(
    config: MysqlReplicationConfig, facts: ReplicationFacts, now: float, check: str,
    address: str = "",
) -> list[CheckResult]:
    """Judge the facts at ``now``: one result per connection (replica), or one for the primary."""
    where = address or "the database"
    if facts.error_kind:
        target = PRIMARY_TARGET if config.role == "primary" else "server"
        if facts.error_kind == "unreachable":
            return [CheckResult(check, target, Status.CRITICAL,
                                f"database not reachable at {where}: {facts.error}"[:200],
                                (), {"error": facts.error, "address": address})]
        if facts.error_kind == "credentials":
            return [CheckResult(check, target, Status.UNKNOWN,
                                f"monitoring credentials rejected by {where}",
                                (), {"error": facts.error, "address": address})]
        if facts.error_kind == "privilege":
            return [CheckResult(check, target, Status.UNKNOWN,
                                f"monitoring user lacks a privilege: {facts.error}"[:200],
                                (), {"error": facts.error, "address": address})]
        return [CheckResult(check, target, Status.UNKNOWN,
                            f"could not read replication status: {facts.error}"[:200],
                            (), {"error": facts.error, "address": address})]
    if config.role == "primary":
        return [_evaluate_primary(config, facts, check)]
    if config.connections:
        found = {c.target: c for c in facts.connections}
        results = []
        for wanted in config.connections:
            conn = found.get(wanted) or found.get(wanted or DEFAULT_CONNECTION_TARGET)
            if conn is None:
                results.append(CheckResult(
                    check, wanted or DEFAULT_CONNECTION_TARGET, Status.CRITICAL,
                    f"replication {wanted or DEFAULT_CONNECTION_TARGET} is not configured "
                    f"on {where}", (), {"configured": sorted(found), "state": "missing"}))
            else:
                results.append(_evaluate_connection(config, facts, conn, now, check))
        return results
    if not facts.connections:
        return [CheckResult(check, "server", Status.CRITICAL,
                            f"{where} is not a replica: no replication configured",
                            (), {"address": address, "query": facts.status_query})]
    return [_evaluate_connection(config, facts, c, now, check) for c in facts.connections]


def _evaluate_primary(
    config: MysqlReplicationConfig, facts: ReplicationFacts, check: str
) -> CheckResult:
    count = facts.connected_replicas
    details: dict[str, Any] = {"connected_replicas": count, "expected_replicas":
                               config.expected_replicas, "replica_hosts": list(facts.replica_hosts)}
    if facts.notes:
        details["notes"] = list(facts.notes)
    if count is None:
        return CheckResult(check, PRIMARY_TARGET, Status.UNKNOWN,
                           "could not count the connected replicas", (), details)
    metric = Metric("connected_replicas", count, "", min=0)
    if count < config.expected_replicas:
        status = Status.CRITICAL if count == 0 else Status.WARNING
        summary = f"{count} of {config.expected_replicas} expected replicas connected"
    else:
        status = Status.OK
        summary = f"{count} replicas connected (expected {config.expected_replicas})"
    return CheckResult(check, PRIMARY_TARGET, status, summary, (metric,), details)


def _thread_text(conn: ReplicaConnection) -> str:
    return f"IO {conn.io_running or '?'}, SQL {conn.sql_running or '?'}"


def _since(now: float, since: float | None) -> float | None:
    return None if since is None else max(0.0, now - since)


def _evaluate_connection(
    config: MysqlReplicationConfig, facts: ReplicationFacts, conn: ReplicaConnection,
    now: float, check: str,
) -> CheckResult:
    label = f"replication {conn.target}"
    details: dict[str, Any] = {
        "connection": conn.name, "io_running": conn.io_running, "sql_running": conn.sql_running,
        "seconds_behind_master": conn.seconds_behind, "source": conn.source,
        "received_position": conn.received_position,
    }
    for key in ("last_io_errno", "last_io_error", "last_sql_errno", "last_sql_error",
                "sql_delay", "recovery_action", "recovery_error"):
        value = getattr(conn, key)
        if value not in (0, "", None):
            details[key] = value
    # Lag and stall are measured against ``now`` here, not at collection, so that the
    # judgement is a function of the facts and the clock only.
    heartbeat_lag = _since(now, facts.heartbeat_ts)
    frozen = _since(now, conn.received_since)
    heartbeats_frozen = _since(now, conn.heartbeats_since)
    for key, value in (("received_unchanged_for", frozen),
                       ("heartbeats_unchanged_for", heartbeats_frozen)):
        if value is not None:
            details[key] = round(value, 3)
    if config.heartbeat_table:
        details["heartbeat_lag"] = heartbeat_lag
        if facts.heartbeat_error:
            details["heartbeat_error"] = facts.heartbeat_error

    def result(status: Status, summary: str, state: str,
               metrics: tuple[Metric, ...] = ()) -> CheckResult:
        details["state"] = state
        return CheckResult(check, conn.target, status, summary[:200], metrics, details)

    io_ok = conn.io_running == "Yes"
    sql_ok = conn.sql_running == "Yes"
    # An error always wins: it is never "on purpose" and recovery never touches it.
    if not sql_ok and conn.last_sql_errno:
        return result(Status.CRITICAL,
                      f"{label}: SQL thread stopped, {conn.last_sql_errno} "
                      f"({error_name(conn.last_sql_errno)}) {short_error(conn.last_sql_error)}",
                      "sql_error")
    if not io_ok and conn.io_running != "Connecting" and conn.last_io_errno:
        return result(Status.CRITICAL,
                      f"{label}: IO thread stopped, {conn.last_io_errno} "
                      f"({error_name(conn.last_io_errno)}): {short_error(conn.last_io_error)}",
                      "io_error")
    if not (io_ok and sql_ok) and conn.io_running != "Connecting":
        stopped = "both threads" if not io_ok and not sql_ok else (
            "SQL thread" if not sql_ok else "IO thread")
        if conn.name in config.stopped_on_purpose or (
                not conn.name and DEFAULT_CONNECTION_TARGET in config.stopped_on_purpose):
            status = Status.OK if config.stopped_on_purpose_status == "ok" else Status.WARNING
            return result(status, f"{label}: {stopped} stopped on purpose ({_thread_text(conn)})",
                          "stopped_on_purpose")
        if conn.recovery_action and not conn.recovery_error:
            return result(Status.WARNING,
                          f"{label}: {stopped} had stopped without error; "
                          f"recovery ran {conn.recovery_action}", "recovered")
        why = f"; recovery failed: {conn.recovery_error}" if conn.recovery_error else ""
        return result(Status.CRITICAL,
                      f"{label}: {stopped} stopped without error ({_thread_text(conn)}){why}",
                      "stopped")
    if conn.io_running == "Connecting":
        reason = (f": {conn.last_io_errno} ({error_name(conn.last_io_errno)}) {conn.last_io_error}"
                  if conn.last_io_errno else "")
        return result(Status.CRITICAL,
                      f"{label}: IO thread connecting to primary {conn.source}{reason}",
                      "io_connecting")
    if not sql_ok:  # IO connecting and SQL stopped without error is covered above
        return result(Status.CRITICAL, f"{label}: SQL thread not running ({_thread_text(conn)})",
                      "stopped")
    # Both threads run. Is the IO thread really receiving?
    stall = config.io_stall_after
    if frozen is not None and frozen >= stall:
        evidence = ""
        if heartbeat_lag is not None and heartbeat_lag >= stall:
            evidence = f"heartbeat table {heartbeat_lag:.0f} s old"
        elif heartbeats_frozen is not None and heartbeats_frozen >= stall:
            evidence = f"no replication heartbeat for {heartbeats_frozen:.0f} s"
        if evidence:
            return result(Status.CRITICAL,
                          f"{label}: IO thread stalled, received position frozen for "
                          f"{frozen:.0f} s ({evidence})", "io_stalled")
    if config.heartbeat_table and heartbeat_lag is not None:
        lag: float | None = heartbeat_lag
        lag_source = "heartbeat"
    else:
        lag = None if conn.seconds_behind is None else float(conn.seconds_behind)
        lag_source = "seconds_behind_master"
    details["lag_source"] = lag_source
    if lag is None:
        status = Status.WARNING if config.unknown_lag_status == "warning" else Status.UNKNOWN
        why = (f"; heartbeat: {facts.heartbeat_error}" if facts.heartbeat_error else "")
        return result(status, f"{label}: lag unknown (Seconds_Behind_Master is NULL){why}",
                      "lag_unknown")
    details["lag"] = lag
    metric = Metric("lag", round(lag, 3), "s", config.lag_warn, config.lag_crit, 0)
    delay = f" (configured delay {conn.sql_delay} s)" if conn.sql_delay else ""
    if lag >= config.lag_crit:
        return result(Status.CRITICAL,
                      f"{label}: {lag:.0f} s behind the primary (critical at "
                      f"{config.lag_crit:g} s){delay}", "lagging", (metric,))
    if lag >= config.lag_warn:
        return result(Status.WARNING,
                      f"{label}: {lag:.0f} s behind the primary (warning at "
                      f"{config.lag_warn:g} s){delay}", "lagging", (metric,))
    return result(Status.OK, f"{label}: healthy, lag {lag:.0f} s", "healthy", (metric,))


# ---------------------------------------------------------------------------- parsing


def _col(row: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in row:
            return row[name]
    return default


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_status_row(row: Mapping[str, Any]) -> ReplicaConnection:
    """One row of SHOW [ALL] SLAVE/REPLICA STATUS, MySQL or MariaDB, old or new names."""
    host = _text(_col(row, "Source_Host", "Master_Host"))
    port = _text(_col(row, "Source_Port", "Master_Port"))
    log_file = _text(_col(row, "Source_Log_File", "Master_Log_File"))
    read_pos = _text(_col(row, "Read_Source_Log_Pos", "Read_Master_Log_Pos"))
    gtid = _text(_col(row, "Gtid_IO_Pos", "Retrieved_Gtid_Set"))
    position = f"{log_file}:{read_pos}" + (f" gtid {gtid}" if gtid else "")
    heartbeats = _int_or_none(_col(row, "Slave_received_heartbeats", "Replica_received_heartbeats"))
    period_raw = _col(row, "Slave_heartbeat_period", "Replica_heartbeat_period")
    try:
        period = float(period_raw) if period_raw not in (None, "") else None
    except (TypeError, ValueError):
        period = None
    return ReplicaConnection(
        name=_text(_col(row, "Connection_name", "Channel_Name", "Channel_name", default="")),
        io_running=_text(_col(row, "Replica_IO_Running", "Slave_IO_Running")),
        sql_running=_text(_col(row, "Replica_SQL_Running", "Slave_SQL_Running")),
        seconds_behind=_int_or_none(_col(row, "Seconds_Behind_Source", "Seconds_Behind_Master")),
        last_io_errno=_int_or_none(_col(row, "Last_IO_Errno")) or 0,
        last_io_error=_text(_col(row, "Last_IO_Error")),
        last_sql_errno=_int_or_none(_col(row, "Last_SQL_Errno")) or 0,
        last_sql_error=_text(_col(row, "Last_SQL_Error")),
        source=f"{host}:{port}" if host else "",
        received_position=position,
        sql_delay=_int_or_none(_col(row, "SQL_Delay")) or 0,
        heartbeats_received=heartbeats,
        heartbeat_period=period,
    )


def parse_heartbeat_ts(value: Any) -> dt.datetime:
    """A pt-heartbeat ``ts`` as UTC: its own text (2026-11-26T01:58:07.123456), or a DATETIME
    or TIMESTAMP column as the server sends it in text (2026-11-26 01:58:07[.123])."""
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        stamp = dt.datetime.fromisoformat(_text(value).strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp


# ---------------------------------------------------------------------------- state


def _track(previous: Any, value: Any, now: float) -> dict[str, Any]:
    """Remember since when ``value`` has been seen unchanged (``now`` when it is new)."""
    if isinstance(previous, Mapping) and previous.get("value") == value:
        since = previous.get("since")
        if isinstance(since, int | float) and not isinstance(since, bool) and since <= now:
            return {"value": value, "since": float(since)}
    return {"value": value, "since": now}


def apply_state(
    connections: Sequence[ReplicaConnection], state: Mapping[str, Any], now: float
) -> tuple[list[ReplicaConnection], dict[str, Any]]:
    """Fill in since when positions and heartbeat counters stood still; the new state."""
    new_state: dict[str, Any] = {}
    out = []
    for conn in connections:
        old = state.get(conn.target)
        old = old if isinstance(old, Mapping) else {}
        received = _track(old.get("received"), conn.received_position, now)
        entry: dict[str, Any] = {"received": received}
        heartbeats_since = None
        if conn.heartbeats_received is not None and (conn.heartbeat_period or 0) > 0:
            heartbeats = _track(old.get("heartbeats"), conn.heartbeats_received, now)
            entry["heartbeats"] = heartbeats
            heartbeats_since = heartbeats["since"]
        new_state[conn.target] = entry
        out.append(replace(conn, received_since=received["since"],
                           heartbeats_since=heartbeats_since))
    return out, new_state


# ---------------------------------------------------------------------------- I/O


@dataclass
class _Server:
    """A connection to the database and what kind of status statement it answers."""

    conn: mysqlwire.Connection
    mariadb_multi: bool = False
    status_query: str = ""
    notes: list[str] = field(default_factory=list)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of one statement as dicts (none for a statement without a result set)."""
        return self.conn.query(sql)


_PRIVILEGE_ERRORS = {1142, 1227, 1044}
_CREDENTIAL_ERRORS = {1045, 1698, 1251}


def read_status(server: _Server) -> list[ReplicaConnection]:
    """The replication connections, trying the MariaDB, new and old statements in turn."""
    last: mysqlwire.MysqlError | None = None
    for query in ("SHOW ALL SLAVES STATUS", "SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        try:
            rows = server.rows(query)
        except mysqlwire.MysqlError as err:
            if not err.is_dialect_error:
                raise
            last = err
            continue
        server.status_query = query
        return [parse_status_row(r) for r in rows]
    assert last is not None
    raise last


def read_heartbeat(server: _Server, table: str) -> float:
    """Epoch seconds of the newest heartbeat ``ts`` (written in UTC by the primary)."""
    database, name = table.split(".")
    rows = server.rows(f"SELECT MAX(`ts`) AS ts FROM `{database}`.`{name}`")
    if not rows or rows[0].get("ts") is None:
        raise ValueError(f"{table} has no heartbeat rows")
    stamp = parse_heartbeat_ts(rows[0]["ts"])
    return stamp.timestamp()


_OWN_GLOBAL_PRIVILEGES = (
    "SELECT PRIVILEGE_TYPE AS privilege FROM information_schema.USER_PRIVILEGES "
    "WHERE GRANTEE = CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
)


def count_replicas(server: _Server) -> tuple[int | None, tuple[str, ...]]:
    """Replicas connected to this primary: SHOW REPLICAS / SHOW SLAVE HOSTS, else the
    Binlog Dump threads of the processlist.

    ``None`` when neither can be trusted. Without the PROCESS privilege the processlist
    shows only the monitoring user's own threads, which would read as "no replica
    connected": that is refused rather than reported as CRITICAL.
    """
    for query in ("SHOW REPLICAS", "SHOW SLAVE HOSTS"):
        try:
            rows = server.rows(query)
        except mysqlwire.MysqlError as err:
            if err.is_dialect_error:
                continue
            server.notes.append(f"{query}: {err}")
            break
        hosts = tuple(sorted(_text(_col(r, "Host", default="")) for r in rows))
        return len(rows), hosts
    try:
        privileges = {_text(r["privilege"]).upper() for r in server.rows(_OWN_GLOBAL_PRIVILEGES)}
        if not privileges & {"PROCESS", "SUPER"}:
            server.notes.append("processlist: no PROCESS privilege, it shows only own threads")
            return None, ()
        rows = server.rows(
            "SELECT HOST AS host FROM information_schema.PROCESSLIST "
            "WHERE COMMAND LIKE 'Binlog Dump%'")
    except mysqlwire.MysqlError as err:
        server.notes.append(f"processlist: {err}")
        return None, ()
    return len(rows), tuple(sorted(_text(r["host"]).rsplit(":", 1)[0] for r in rows))


def start_connection(server: _Server, conn: ReplicaConnection) -> str:
    """START SLAVE/REPLICA for one connection; the statement it ran. Never skips an error."""
    escaped = server.conn.escape(conn.name) if conn.name else ""
    if server.mariadb_multi or server.status_query == "SHOW SLAVE STATUS":
        sql = f"START SLAVE {escaped}".strip()
    else:
        sql = "START REPLICA" + (f" FOR CHANNEL {escaped}" if conn.name else "")
    server.rows(sql)
    return sql


class MysqlReplicationCheck:
    """Replication health of a MySQL/MariaDB replica, or the replicas of a primary."""

    type_name: ClassVar[str] = "mysql_replication"
    Config: ClassVar[type[MysqlReplicationConfig]] = MysqlReplicationConfig

    def __init__(self, config: MysqlReplicationConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context

    @property
    def address(self) -> str:
        """Where the check connects, for summaries (never with the password)."""
        return self.config.socket or f"{self.config.host}:{self.config.port}"

    @property
    def state_path(self) -> Path:
        """The file that keeps received positions between runs."""
        return self.context.state_dir / f"{self.context.name}.{STATE_FILE}"

    def run(self) -> list[CheckResult]:
        """Connect, collect, remember positions, evaluate."""
        facts = self.collect()
        return evaluate(self.config, facts, self.context.clock(), self.context.name,
                        self.address)

    def _password(self) -> str:
        if self.config.password_file:
            with open(self.config.password_file, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        return self.config.password

    def _connect(self, password: str) -> mysqlwire.Connection:
        cfg = self.config
        # Each statement may take the whole timeout and a run makes a handful of them:
        # keep them all inside the runner's timeout for this check.
        timeout = max(1, round(min(cfg.connect_timeout, self.context.timeout / 5)))
        return mysqlwire.connect(host=cfg.host, port=cfg.port, unix_socket=cfg.socket,
                                 user=cfg.user, password=password,
                                 connect_timeout=timeout, timeout=timeout)

    def collect(self) -> ReplicationFacts:
        """Read every fact from the server; connection problems become facts, not raises."""
        try:
            password = self._password()
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            return ReplicationFacts(error_kind="config", error=f"password_file: {why}")
        try:
            conn = self._connect(password)
        except mysqlwire.MysqlError as err:
            return _error_facts(err)
        with conn:
            try:
                return self._collect(_Server(conn))
            except mysqlwire.MysqlError as err:
                return _error_facts(err)

    def _collect(self, server: _Server) -> ReplicationFacts:
        cfg = self.config
        now = self.context.clock()
        if cfg.role == "primary":
            count, hosts = count_replicas(server)
            return ReplicationFacts(connected_replicas=count, replica_hosts=hosts,
                                    notes=tuple(n[:200] for n in server.notes))
        connections = read_status(server)
        if cfg.connections:
            wanted = set(cfg.connections)
            connections = [c for c in connections if c.name in wanted or c.target in wanted]
        server.mariadb_multi = server.status_query == "SHOW ALL SLAVES STATUS"
        if cfg.recovery:
            connections = self._recover(server, connections)
        heartbeat_ts = None
        heartbeat_error = ""
        if cfg.heartbeat_table:
            try:
                heartbeat_ts = read_heartbeat(server, cfg.heartbeat_table)
            except (mysqlwire.MysqlError, ValueError) as err:
                heartbeat_error = str(err)[:200]
        state = self._load_state()
        connections, new_state = apply_state(connections, state, now)
        self._save_state(new_state)
        return ReplicationFacts(
            connections=tuple(connections), heartbeat_ts=heartbeat_ts,
            heartbeat_error=heartbeat_error, status_query=server.status_query,
        )

    def _recover(
        self, server: _Server, connections: list[ReplicaConnection]
    ) -> list[ReplicaConnection]:
        """START the connections whose threads stopped without any error."""
        out = []
        for conn in connections:
            stopped = conn.io_running == "No" or conn.sql_running == "No"
            on_purpose = conn.target in self.config.stopped_on_purpose or (
                conn.name in self.config.stopped_on_purpose)
            if not stopped or on_purpose or conn.last_sql_errno or conn.last_io_errno:
                out.append(conn)
                continue
            try:
                action = start_connection(server, conn)
            except mysqlwire.MysqlError as err:
                out.append(replace(conn, recovery_action="START", recovery_error=str(err)[:200]))
                continue
            out.append(replace(conn, recovery_action=action))
        return out

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self, state: Mapping[str, Any]) -> None:
        try:
            write_json(self.state_path, state)
        except OSError:
            pass  # losing the stall memory delays stall detection by one run; not worth UNKNOWN


def _error_facts(err: mysqlwire.MysqlError) -> ReplicationFacts:
    code = err.code
    error = str(err)[:300]  # "1045: Access denied for user ..."
    if code in _CREDENTIAL_ERRORS:
        return ReplicationFacts(error_kind="credentials", error=error)
    if code in _PRIVILEGE_ERRORS:
        return ReplicationFacts(error_kind="privilege", error=error)
    if code in mysqlwire.AUTH_PLUGIN_ERRORS:
        # The monitoring user's login needs a plugin or TLS this client lacks: a setup
        # problem to fix on the database, not the database being down.
        return ReplicationFacts(error_kind="config", error=error)
    if 2000 <= code < 2100:  # client errors: socket, host, lost or gone connection
        return ReplicationFacts(error_kind="unreachable", error=error)
    return ReplicationFacts(error_kind="query", error=error)
