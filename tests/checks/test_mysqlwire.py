"""The stdlib MySQL/MariaDB client: login, text result sets, errors, and no leaked sockets.

Most tests talk to a real MariaDB started here (tests/services/mariadb.py, one server for
the module). MySQL 8's ``caching_sha2_password`` and an auth switch to
``mysql_native_password`` cannot be produced by MariaDB (and Debian has no MySQL server),
so those logins run against a small scripted server on loopback that checks the client's
scramble with hashlib, per the documented algorithm.
"""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from checks import mysqlwire
from checks.config import build
from checks.mysql_replication import (
    MysqlReplicationCheck,
    MysqlReplicationConfig,
    _Server,
    parse_heartbeat_ts,
    read_heartbeat,
)
from checks.mysqlwire import MysqlError
from checks.registry import CheckContext
from checks.result import Status
from tests.services.mariadb import (
    MONITOR_PASSWORD,
    MONITOR_USER,
    MariadbServer,
    MariadbUnavailable,
    start_primary,
)
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---------------------------------------------------------------------------- real MariaDB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariadbServer]:
    try:
        started = start_primary(tmp_path_factory.mktemp("mariadb"))
    except MariadbUnavailable as err:
        pytest.fail(str(err))
    yield started
    started.stop()


def monitor(server: MariadbServer, **kwargs: Any) -> mysqlwire.Connection:
    """The monitoring user over TCP."""
    return mysqlwire.connect(port=server.port, user=MONITOR_USER, password=MONITOR_PASSWORD,
                             **kwargs)


@pytest.mark.integration
def test_native_password_over_tcp_and_unix_socket(server: MariadbServer) -> None:
    with monitor(server) as conn:
        assert conn.query("SELECT CURRENT_USER() AS user") == [{"user": "watchkeeper@%"}]
        assert "MariaDB" in conn.server_version and not conn.server_version.startswith("5.5.5")
    assert conn.closed
    with mysqlwire.connect(unix_socket=str(server.socket), user=MONITOR_USER,
                           password=MONITOR_PASSWORD) as conn:
        assert conn.query("SELECT CURRENT_USER() AS user") == [{"user": "watchkeeper@%"}]
    # root has no password here: the empty scramble
    with mysqlwire.connect(unix_socket=str(server.socket), user="root") as conn:
        assert conn.query("SELECT CURRENT_USER() AS user") == [{"user": "root@localhost"}]


@pytest.mark.integration
def test_the_session_ends_with_com_quit(server: MariadbServer) -> None:
    before = server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1]
    for _ in range(3):
        monitor(server).close()
    # A client that closes without COM_QUIT counts as aborted.
    assert server.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1] == before


@pytest.mark.integration
def test_wrong_password_is_1045_and_leaks_nothing(server: MariadbServer) -> None:
    before = open_fds()
    for _ in range(5):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(port=server.port, user=MONITOR_USER, password="not-the-password")
    assert caught.value.code == 1045 and caught.value.sqlstate == "28000"
    assert str(caught.value).startswith("1045: Access denied for user 'watchkeeper'@")
    assert "not-the-password" not in str(caught.value)
    assert open_fds() == before


def test_refused_port_is_2003_and_leaks_nothing() -> None:
    port = free_port()
    before = open_fds()
    for _ in range(5):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(port=port, user="u", connect_timeout=2)
    assert caught.value.code == 2003
    assert str(caught.value) == (
        f"2003: Can't connect to MySQL server on '127.0.0.1:{port}' (Connection refused)")
    assert open_fds() == before


def test_unknown_host_is_2005() -> None:
    with pytest.raises(MysqlError) as caught:
        mysqlwire.connect(host="no-such-host.invalid", user="u", connect_timeout=2)
    assert caught.value.code == 2005 and "no-such-host.invalid" in caught.value.message


def test_missing_socket_is_2002_and_leaks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mysqld.sock"
    before = open_fds()
    for _ in range(5):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(unix_socket=str(path), user="u")
    assert str(caught.value) == (
        f"2002: Can't connect to local server through socket '{path}' (No such file or directory)")
    assert open_fds() == before


def test_the_check_on_a_missing_socket_is_critical_and_leaks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mysqld.sock"
    config = build(MysqlReplicationConfig, {"socket": str(path), "password": "x"})
    check = MysqlReplicationCheck(config, CheckContext("repl", tmp_path / "state"))
    before = open_fds()
    for _ in range(5):
        [result] = check.run()
        assert result.status is Status.CRITICAL
        assert result.summary.startswith(f"database not reachable at {path}: 2002: ")
    assert open_fds() == before


@pytest.mark.integration
def test_values_arrive_as_int_str_and_none(server: MariadbServer) -> None:
    with monitor(server) as conn:
        rows = conn.query(
            "SELECT NULL AS n, 42 AS i, -7 AS neg, CAST(18446744073709551615 AS UNSIGNED) AS big, "
            "'' AS empty, 'héllo ✓' AS s, 1.50 AS d, "
            "CAST('2026-11-26 01:58:07.5' AS DATETIME(6)) AS t "
            "UNION ALL SELECT 1, 2, 3, CAST(4 AS UNSIGNED), 'e', 's', 2.5, NULL")
    assert rows == [
        {"n": None, "i": 42, "neg": -7, "big": 18446744073709551615, "empty": "",
         "s": "héllo ✓", "d": "1.50", "t": "2026-11-26 01:58:07.500000"},
        {"n": 1, "i": 2, "neg": 3, "big": 4, "empty": "e", "s": "s", "d": "2.50", "t": None},
    ]


@pytest.mark.integration
def test_syntax_error_is_a_dialect_error_and_the_session_goes_on(server: MariadbServer) -> None:
    with monitor(server) as conn:
        with pytest.raises(MysqlError) as caught:
            conn.query("SHOW REPLICAS")  # MySQL 8.0.22+ only
        assert caught.value.code == 1064 and caught.value.sqlstate == "42000"
        assert caught.value.is_dialect_error
        with pytest.raises(MysqlError) as missing:
            conn.query("SELECT * FROM mysql.no_such_table")
        assert missing.value.code == 1146 and not missing.value.is_dialect_error
        assert conn.query("SELECT 1 AS one") == [{"one": 1}]


@pytest.mark.integration
def test_statements_without_a_result_set(server: MariadbServer) -> None:
    with mysqlwire.connect(unix_socket=str(server.socket), user="root") as conn:
        assert conn.query("CREATE DATABASE IF NOT EXISTS wire") == []
        assert conn.query("CREATE TABLE wire.ok (id INT PRIMARY KEY, v TEXT)") == []
        assert conn.query("INSERT INTO wire.ok VALUES (1, 'a'), (2, NULL)") == []
        assert conn.query("SELECT id, v FROM wire.ok ORDER BY id") == [
            {"id": 1, "v": "a"}, {"id": 2, "v": None}]
        assert conn.query("SELECT id FROM wire.ok WHERE id > 5") == []  # rows, but none


TRICKY = ["it's", 'say "hi"', "back\\slash", "nul\0byte", "new\nline\r", "ctrl-z\x1a",
          "\\'; DROP TABLE x; --", "ünïcødé ✓", ""]


@pytest.mark.integration
@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_escape_round_trip(server: MariadbServer, sql_mode: str) -> None:
    with monitor(server) as conn:
        conn.query(f"SET SESSION sql_mode = '{sql_mode}'")
        for value in TRICKY:
            assert conn.query(f"SELECT {conn.escape(value)} AS v") == [{"v": value}], value


@pytest.mark.integration
def test_a_slow_statement_is_lost_connection_after_the_timeout(server: MariadbServer) -> None:
    conn = monitor(server, timeout=1)
    started = time.monotonic()
    with pytest.raises(MysqlError) as caught:
        conn.query("SELECT SLEEP(5)")
    assert time.monotonic() - started < 2.5
    assert caught.value.code == 2013
    assert caught.value.message == "Lost connection to MySQL server during query (no answer " \
                                   "within 1 s)"
    assert conn.closed
    with pytest.raises(MysqlError) as again:
        conn.query("SELECT 1")
    assert again.value.code == 2006
    conn.close()


@pytest.mark.integration
def test_auth_switch_to_an_unsupported_plugin_names_it(server: MariadbServer,
                                                       tmp_path: Path) -> None:
    # The server opens with mysql_native_password and switches to the user's plugin.
    server.sql("INSTALL SONAME 'auth_ed25519'",
               "CREATE USER 'edwin'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpw')",
               "GRANT SLAVE MONITOR ON *.* TO 'edwin'@'%'")
    with pytest.raises(MysqlError) as caught:
        mysqlwire.connect(port=server.port, user="edwin", password="edpw")
    assert caught.value.code == mysqlwire.CR_AUTH_PLUGIN_CANNOT_LOAD
    assert "'client_ed25519' is not supported" in caught.value.message
    # the check says so instead of calling the server unreachable
    config = build(MysqlReplicationConfig, {"port": server.port, "user": "edwin",
                                            "password": "edpw"})
    [result] = MysqlReplicationCheck(config, CheckContext("repl", tmp_path)).run()
    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("could not read replication status: 2059: authentication "
                                     "plugin 'client_ed25519' is not supported")


@pytest.mark.integration
def test_heartbeat_in_a_datetime_column(server: MariadbServer) -> None:
    server.sql("CREATE DATABASE IF NOT EXISTS hb",
               "CREATE TABLE hb.heartbeat (server_id INT PRIMARY KEY, ts DATETIME(6))",
               "INSERT INTO hb.heartbeat VALUES (1, '2026-11-26 01:58:07.250000')")
    with monitor(server) as conn:
        assert read_heartbeat(_Server(conn), "hb.heartbeat") == pytest.approx(1795658287.25)


def test_parse_heartbeat_ts_reads_datetime_text() -> None:
    expected = 1795658287.0
    assert parse_heartbeat_ts("2026-11-26 01:58:07").timestamp() == expected
    assert parse_heartbeat_ts("2026-11-26 01:58:07.125").timestamp() == expected + 0.125
    assert parse_heartbeat_ts("2026-11-26T01:58:07.500000").timestamp() == expected + 0.5
    with pytest.raises(ValueError):
        parse_heartbeat_ts("0000-00-00 00:00:00")


@pytest.mark.integration
def test_the_check_loads_neither_pymysql_nor_openssl(server: MariadbServer,
                                                     tmp_path: Path) -> None:
    program = f"""
import sys
from pathlib import Path
from checks.config import build
from checks.mysql_replication import MysqlReplicationCheck, MysqlReplicationConfig
from checks.registry import CheckContext
config = build(MysqlReplicationConfig, {{"port": {server.port}, "user": "{MONITOR_USER}",
               "password": "{MONITOR_PASSWORD}", "role": "primary", "expected_replicas": 0}})
[result] = MysqlReplicationCheck(config, CheckContext("repl", Path(sys.argv[1]))).run()
assert result.status == 0, result
print(sorted(m for m in ("pymysql", "hashlib", "_hashlib", "ssl") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- scripted server

CAPABILITIES = 0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000  # as a MySQL 8 server has them, in part
NONCE = bytes(range(65, 85))  # 20 bytes, no NUL
SWITCH_NONCE = bytes(range(97, 117))
PASSWORD = "s3cret-pässword"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def expected_sha2(password: str, nonce: bytes) -> bytes:
    """XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) + nonce)), as MySQL documents it."""
    pw = password.encode()
    return bytes(a ^ b for a, b in zip(sha256(pw), sha256(sha256(sha256(pw)) + nonce),
                                       strict=True))


def expected_native(password: str, nonce: bytes) -> bytes:
    """XOR(SHA1(pw), SHA1(nonce + SHA1(SHA1(pw))))."""
    pw = password.encode()
    return bytes(a ^ b for a, b in zip(sha1(pw), sha1(nonce + sha1(sha1(pw))), strict=True))


def handshake(plugin: str, nonce: bytes = NONCE) -> bytes:
    return (b"\x0a" + b"8.0.36-scripted\0" + struct.pack("<I", 7) + nonce[:8] + b"\0"
            + struct.pack("<HBHHB", CAPABILITIES & 0xFFFF, 255, 2, CAPABILITIES >> 16, 21)
            + b"\0" * 10 + nonce[8:] + b"\0" + plugin.encode() + b"\0")


OK = b"\x00\x00\x00\x02\x00\x00\x00"


def err(code: int, message: str, sqlstate: str = "28000") -> bytes:
    return b"\xff" + struct.pack("<H", code) + b"#" + sqlstate.encode() + message.encode()


class Wire:
    """The server's side of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sequence = 0

    def send(self, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.sequence]) + payload)
        self.sequence += 1

    def receive(self) -> bytes:
        header = self._exactly(4)
        self.sequence = header[3] + 1
        return self._exactly(int.from_bytes(header[:3], "little"))

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("client closed")
            data += chunk
        return data

    def login_response(self) -> dict[str, Any]:
        """The parts of a HandshakeResponse41."""
        payload = self.receive()
        flags, _max, charset = struct.unpack_from("<IIB", payload)
        user_end = payload.index(b"\0", 32)
        length = payload[user_end + 1]
        auth = payload[user_end + 2:user_end + 2 + length]
        plugin = payload[user_end + 2 + length:].rstrip(b"\0").decode()
        return {"flags": flags, "charset": charset, "user": payload[32:user_end].decode(),
                "auth": auth, "plugin": plugin}


Script = Callable[[Wire, dict[str, Any]], None]


@contextmanager
def scripted_server(script: Script, unix_path: Path | None = None,
                    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """A one-script MySQL server on 127.0.0.1 (or ``unix_path``); what it saw, and where."""
    seen: dict[str, Any] = {}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(5)
            wire = Wire(self.request)
            try:
                script(wire, seen)
                seen["after"] = wire.receive()  # COM_QUIT, normally
            except (EOFError, OSError) as gone:
                seen.setdefault("ended", repr(gone))

    server: socketserver.BaseServer
    if unix_path is not None:
        server = socketserver.UnixStreamServer(str(unix_path), Handler)
        where: dict[str, Any] = {"unix_socket": str(unix_path)}
    else:
        server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
        where = {"port": server.server_address[1]}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield seen, where
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sha2_login(then: Callable[[Wire, dict[str, Any]], None]) -> Script:
    """Offer caching_sha2_password; reject a wrong scramble, else go on with ``then``."""
    def script(wire: Wire, seen: dict[str, Any]) -> None:
        wire.send(handshake("caching_sha2_password"))
        seen["login"] = login = wire.login_response()
        if login["auth"] != expected_sha2(PASSWORD, NONCE):
            wire.send(err(1045, "Access denied (scramble)"))
            return
        then(wire, seen)
    return script


def test_caching_sha2_fast_authentication() -> None:
    def fast(wire: Wire, _seen: dict[str, Any]) -> None:
        wire.send(b"\x01\x03")
        wire.send(OK)

    with scripted_server(sha2_login(fast)) as (seen, where):
        mysqlwire.connect(user="monitor", password=PASSWORD, **where).close()
    login = seen["login"]
    assert login["plugin"] == "caching_sha2_password" and login["user"] == "monitor"
    assert login["charset"] == 45  # utf8mb4
    assert login["flags"] & 0x200 and not login["flags"] & 0x1000000  # 4.1, no DEPRECATE_EOF
    assert seen["after"] == b"\x01"  # COM_QUIT


def test_caching_sha2_wrong_password_is_rejected_by_the_server() -> None:
    with scripted_server(sha2_login(lambda wire, seen: None)) as (_seen, where):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(user="monitor", password="wrong", **where)
    assert caught.value.code == 1045


def test_caching_sha2_full_authentication_over_tcp_is_refused() -> None:
    def full(wire: Wire, seen: dict[str, Any]) -> None:
        wire.send(b"\x01\x04")
        seen["sent"] = wire.receive()  # the client must not send the password

    before = open_fds()
    with scripted_server(sha2_login(full)) as (seen, where):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(user="monitor", password=PASSWORD, **where)
    assert caught.value.code == mysqlwire.CR_AUTH_PLUGIN_ERR
    assert caught.value.message == (
        "caching_sha2_password needs the server's RSA key or TLS to send the password; "
        "connect through the unix socket, or give the monitoring user mysql_native_password")
    assert "sent" not in seen and PASSWORD not in repr(seen)
    assert open_fds() == before


def test_caching_sha2_full_authentication_over_a_unix_socket(tmp_path: Path) -> None:
    def full(wire: Wire, seen: dict[str, Any]) -> None:
        wire.send(b"\x01\x04")
        seen["password"] = wire.receive()
        wire.send(OK)

    with scripted_server(sha2_login(full), tmp_path / "mysqld.sock") as (seen, where):
        mysqlwire.connect(user="monitor", password=PASSWORD, **where).close()
    assert seen["password"] == PASSWORD.encode() + b"\0"
    assert seen["after"] == b"\x01"


def test_auth_switch_to_mysql_native_password() -> None:
    def switch(wire: Wire, seen: dict[str, Any]) -> None:
        wire.send(b"\xfe" + b"mysql_native_password\0" + SWITCH_NONCE + b"\0")
        seen["switched"] = answer = wire.receive()
        wire.send(OK if answer == expected_native(PASSWORD, SWITCH_NONCE)
                  else err(1045, "Access denied (native scramble)"))

    with scripted_server(sha2_login(switch)) as (seen, where):
        with mysqlwire.connect(user="monitor", password=PASSWORD, **where) as conn:
            assert not conn.closed
    assert seen["switched"] == expected_native(PASSWORD, SWITCH_NONCE)


def test_auth_switch_to_an_unknown_plugin_names_it() -> None:
    def switch(wire: Wire, _seen: dict[str, Any]) -> None:
        wire.send(b"\xfe" + b"authentication_kerberos_client\0" + b"realm\0")

    with scripted_server(sha2_login(switch)) as (_seen, where):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(user="monitor", password=PASSWORD, **where)
    assert caught.value.code == mysqlwire.CR_AUTH_PLUGIN_CANNOT_LOAD
    assert "'authentication_kerberos_client' is not supported" in caught.value.message


def test_an_error_instead_of_the_handshake() -> None:
    def busy(wire: Wire, _seen: dict[str, Any]) -> None:
        wire.send(b"\xff" + struct.pack("<H", 1040) + b"Too many connections")

    with scripted_server(busy) as (_seen, where):
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(user="monitor", **where)
    assert str(caught.value) == "1040: Too many connections"


def test_a_silent_server_is_lost_connection_after_the_connect_timeout() -> None:
    def silent(wire: Wire, _seen: dict[str, Any]) -> None:
        wire.sock.recv(1)  # until the client gives up

    with scripted_server(silent) as (_seen, where):
        started = time.monotonic()
        with pytest.raises(MysqlError) as caught:
            mysqlwire.connect(user="monitor", connect_timeout=0.5, **where)
    assert time.monotonic() - started < 2
    assert caught.value.code == 2013
    assert "reading initial communication packet" in caught.value.message


def test_a_packet_of_16_mb_is_refused_clearly() -> None:
    def huge(wire: Wire, seen: dict[str, Any]) -> None:
        wire.send(OK)
        seen["query"] = wire.receive()
        wire.sock.sendall(b"\xff\xff\xff\x01")

    with scripted_server(sha2_login(huge)) as (seen, where):
        conn = mysqlwire.connect(user="monitor", password=PASSWORD, **where)
        with pytest.raises(MysqlError) as caught:
            conn.query("SELECT REPEAT('x', 20000000)")
        conn.close()
    assert seen["query"] == b"\x03SELECT REPEAT('x', 20000000)"
    assert "16 MB or more" in caught.value.message and conn.closed
