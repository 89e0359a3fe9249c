"""Start a private MariaDB primary and replica for tests, each with its own data directory.

Two ``mariadbd`` run from the installed binaries with ``--no-defaults`` (so the machine's
own ``/etc/mysql`` configuration and its server on 3306 are never involved), listening on
free loopback ports and on unix sockets inside the working directory. The primary gets a
``repl`` user; the replica is pointed at it with ``CHANGE MASTER TO`` (GTID, slave_pos) and
started. Every server and client call passes ``--no-defaults``.

A missing binary is an error (``MariadbUnavailable``) naming the Debian package
``mariadb-server``, never a reason to skip.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymysql.converters import escape_string

from tests.support.ports import free_port

REPL_USER = "repl"
REPL_PASSWORD = "replpw"
MONITOR_USER = "watchkeeper"
MONITOR_PASSWORD = "monitor-secret"


class MariadbUnavailable(RuntimeError):
    """mariadbd is not installed, or a server would not start."""


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not path:
        raise MariadbUnavailable(f"{name} not found; install the Debian package 'mariadb-server'")
    return path


@dataclass
class MariadbServer:
    """One running ``mariadbd``: its port, socket and process."""

    name: str
    server_id: int
    datadir: Path
    port: int
    socket: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def connect(self, **kwargs: Any) -> Any:
        """A pymysql connection as root over the unix socket (autocommit)."""
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True,
                               connect_timeout=5, read_timeout=30, **kwargs)

    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements as root; the rows of the last one."""
        conn = self.connect()
        try:
            rows: list[tuple[Any, ...]] = []
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()

    def slave_status(self, connection: str = "") -> dict[str, Any]:
        """``SHOW SLAVE STATUS`` of one connection as a dict (empty when none)."""
        import pymysql.cursors

        conn = self.connect(cursorclass=pymysql.cursors.DictCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW SLAVE '{escape_string(connection)}' STATUS" if connection
                            else "SHOW SLAVE STATUS")
                row = cur.fetchone()
                return dict(row) if row else {}
        finally:
            conn.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (clean shutdown) and wait; SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _start_server(workdir: Path, name: str, server_id: int) -> MariadbServer:
    install_db = _binary("mariadb-install-db")
    mariadbd = _binary("mariadbd")
    datadir = workdir / f"{name}-data"
    log = workdir / f"{name}-install.log"
    # Its own temporary directory: with the default /tmp, bootstraps running side by side
    # removed each other's temporary tables ("Unknown table 'mysql.tmp_proxies_priv'").
    tmpdir = workdir / f"{name}-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    # One retry in a clean directory, keeping the first error.
    for _attempt in range(2):
        shutil.rmtree(datadir, ignore_errors=True)
        with log.open("wb") as out:
            proc = subprocess.run(
                [install_db, "--no-defaults", f"--datadir={datadir}", "--user=root",
                 f"--tmpdir={tmpdir}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
            )
        if proc.returncode == 0:
            break
        text = log.read_text(errors="replace")
        errors = [line for line in text.splitlines() if "ERROR" in line or "rror" in line]
        failures.append("\n".join(errors[:20]) or text[-1500:])
    else:
        raise MariadbUnavailable("mariadb-install-db failed twice:\n" + "\n--\n".join(failures))
    server = MariadbServer(name, server_id, datadir, free_port(), workdir / f"{name}.sock")
    server.process = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={datadir}", "--user=root",
         f"--tmpdir={tmpdir}",
         "--bind-address=127.0.0.1", f"--port={server.port}", f"--socket={server.socket}",
         f"--pid-file={workdir / f'{name}.pid'}", f"--server-id={server_id}",
         "--log-bin=mysql-bin", "--binlog-format=ROW", f"--log-error={workdir / f'{name}.err'}",
         "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            err = workdir / f"{name}.err"
            raise MariadbUnavailable(
                f"mariadbd {name} exited: {err.read_text()[-2000:] if err.exists() else ''}")
        # Wait for the server's own word: a client connecting earlier can be accepted and
        # then dropped mid-handshake.
        err_log = workdir / f"{name}.err"
        if err_log.exists() and "ready for connections" in err_log.read_text(errors="replace"):
            server.sql("SELECT 1")
            return server
        time.sleep(0.05)
    server.stop()
    raise MariadbUnavailable(f"mariadbd {name} did not answer within 60 s")


@dataclass
class ReplicationPair:
    """A primary and a replica replicating from it; ``stop()`` ends both (or the replica only
    when the primary is shared, ``owns_primary=False``)."""

    workdir: Path
    primary: MariadbServer
    replica: MariadbServer
    owns_primary: bool = True

    def change_master(self, connection: str = "", *, delay: int = 0) -> None:
        """Point ``connection`` of the replica at the primary's current position; start it."""
        file, pos = self.primary_position()
        conn_sql = f"'{escape_string(connection)}'" if connection else ""
        self.replica.sql(
            f"CHANGE MASTER {conn_sql} TO MASTER_HOST='127.0.0.1', "
            f"MASTER_PORT={self.primary.port}, MASTER_USER='{REPL_USER}', "
            f"MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=no, "
            f"MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, "
            f"MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1, MASTER_DELAY={delay}",
            f"START SLAVE {conn_sql}",
        )

    def primary_position(self) -> tuple[str, int]:
        """The primary's current binlog file and position."""
        rows = self.primary.sql("SHOW MASTER STATUS")
        return str(rows[0][0]), int(rows[0][1])

    def wait_running(self, connection: str = "", timeout: float = 30) -> dict[str, Any]:
        """Wait until both threads of ``connection`` run; its status row."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.replica.slave_status(connection)
            if status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes":
                return status
            time.sleep(0.05)
        raise MariadbUnavailable(f"replication {connection or 'default'} not running: {status}")

    def wait_status(self, key: str, value: Any, connection: str = "",
                    timeout: float = 30) -> dict[str, Any]:
        """Wait until the replica's status column ``key`` equals ``value``."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.replica.slave_status(connection)
            if status.get(key) == value:
                return status
            time.sleep(0.05)
        raise MariadbUnavailable(f"{key} never became {value!r}: {status}")

    def sync(self, connection: str = "", timeout: float = 30) -> None:
        """Wait until the replica has applied everything the primary has written."""
        file, pos = self.primary_position()
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.replica.slave_status(connection)
            if (status.get("Relay_Master_Log_File") == file
                    and int(status.get("Exec_Master_Log_Pos") or 0) >= pos):
                return
            time.sleep(0.05)
        raise MariadbUnavailable(f"replica did not catch up with {file}:{pos}: {status}")

    def stop(self) -> None:
        """Stop the replica, then the primary if this pair owns it."""
        try:
            self.replica.stop()
        finally:
            if self.owns_primary:
                self.primary.stop()


def _grants() -> list[str]:
    return [
        f"CREATE USER '{MONITOR_USER}'@'%' IDENTIFIED BY '{MONITOR_PASSWORD}'",
        "GRANT REPLICATION CLIENT, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, "
        f"SLAVE MONITOR, PROCESS, SELECT ON *.* TO '{MONITOR_USER}'@'%'",
    ]


def start_primary(workdir: Path, name: str = "primary") -> MariadbServer:
    """A primary with the ``repl`` and ``watchkeeper`` users and a table ``app.t``.

    The users are created outside the binary log, so replicas never receive them (each
    replica creates its own monitoring user).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    primary = _start_server(workdir, name, 1)
    try:
        primary.sql(
            "SET sql_log_bin = 0", *_grants(),
            f"CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}'",
            f"GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1'",
            "SET sql_log_bin = 1",
        )
    except BaseException:
        primary.stop()
        raise
    return primary


def start_replica(primary: MariadbServer, workdir: Path, name: str = "replica",
                  server_id: int = 2, *, delay: int = 0,
                  owns_primary: bool = False) -> ReplicationPair:
    """Start a replica of ``primary`` that replicates from the primary's current position.

    Only what the primary writes from now on reaches it: create the schemas a test needs
    after attaching the replicas.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    replica = _start_server(workdir, name, server_id)
    pair = ReplicationPair(workdir, primary, replica, owns_primary)
    try:
        replica.sql("SET sql_log_bin = 0", *_grants())
        pair.change_master(delay=delay)
        pair.wait_running()
    except BaseException:
        replica.stop()
        raise
    return pair


def start_pair(workdir: Path) -> ReplicationPair:
    """Start a primary and a replica under ``workdir``; replication of ``app.t`` runs.

    Both have a monitoring user ``watchkeeper`` (password ``monitor-secret``) with the
    privileges the check needs; ``stop()`` ends both servers.
    """
    primary = start_primary(workdir)
    try:
        pair = start_replica(primary, workdir, owns_primary=True)
        primary.sql("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))",
                    "INSERT INTO app.t VALUES (1, 'a')")
        pair.sync()
    except BaseException:
        primary.stop()
        raise
    return pair
