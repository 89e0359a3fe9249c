"""A small MySQL/MariaDB client on the standard library: log in, run text queries, read rows.

Just enough of the client/server protocol for the ``mysql_replication`` check, without
pymysql (whose import and one connection cost the agent about 4.5 MB of resident memory):
connect over TCP or a unix socket, read the v10 handshake (MySQL 5.x/8.x, MariaDB
10.x/11.x), log in with ``mysql_native_password`` or ``caching_sha2_password`` (following
an auth switch request to either), run statements with ``COM_QUERY`` and read text result
sets as dicts (integer columns as ``int``, NULL as ``None``, everything else as ``str``),
and say ``COM_QUIT`` on close. Blocking sockets: ``connect_timeout`` covers the connect and
the login, ``timeout`` each read and write after it.

Not supported: TLS (the check has no TLS settings), so a ``caching_sha2_password`` login
that needs the full exchange sends the password only through a unix socket and is refused
over TCP; ``sha256_password``, MariaDB's ``client_ed25519``, PAM and the other plugins end
with an error naming the plugin; prepared statements, multi-statements, ``LOAD DATA LOCAL``
and packets of 16 MB or more. No database is selected; the character set is utf8mb4.

Every failure is a ``MysqlError`` carrying the error number a MySQL client would give:
the server's own (with its SQLSTATE) or a client one (2002 socket, 2003 host, 2006 gone
away, 2013 lost connection, ...), so callers sort failures as they would with any client.
A failed connect closes its socket before raising.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from checks.net import connect_tcp

# Client error numbers (MySQL's errmsg.h); the server's own are below 2000 or above 2999.
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE_ERROR = 2006
CR_VERSION_ERROR = 2007
CR_SERVER_HANDSHAKE_ERR = 2012
CR_SERVER_LOST = 2013
CR_COMMANDS_OUT_OF_SYNC = 2014
CR_NET_PACKET_TOO_LARGE = 2020
CR_MALFORMED_PACKET = 2027
CR_AUTH_PLUGIN_CANNOT_LOAD = 2059
CR_AUTH_PLUGIN_ERR = 2061

AUTH_PLUGIN_ERRORS = frozenset({CR_AUTH_PLUGIN_CANNOT_LOAD, CR_AUTH_PLUGIN_ERR})
"""The login needs something this client does not do (a plugin, TLS): a setup problem."""

DIALECT_ERRORS = frozenset({1064, 1149})
"""ER_PARSE_ERROR, ER_SYNTAX_ERROR: the statement is not in this server's dialect."""

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"

_CLIENT_LONG_PASSWORD = 0x1
_CLIENT_PROTOCOL_41 = 0x200
_CLIENT_TRANSACTIONS = 0x2000
_CLIENT_SECURE_CONNECTION = 0x8000
_CLIENT_PLUGIN_AUTH = 0x80000
# CLIENT_DEPRECATE_EOF is not asked for: every result set ends its column definitions
# and its rows with an EOF packet, on every server version.
_CLIENT_FLAGS = (_CLIENT_LONG_PASSWORD | _CLIENT_PROTOCOL_41 | _CLIENT_TRANSACTIONS
                 | _CLIENT_SECURE_CONNECTION | _CLIENT_PLUGIN_AUTH)
_UTF8MB4_GENERAL_CI = 45  # known to MySQL 5.5+ and every MariaDB; 255 is MySQL 8 only
_MAX_PAYLOAD = 0xFFFFFF
_SERVER_MORE_RESULTS_EXISTS = 0x8
_SERVER_NO_BACKSLASH_ESCAPES = 0x200

_COM_QUIT = 0x01
_COM_QUERY = 0x03

# MYSQL_TYPE_TINY, SHORT, LONG, LONGLONG, INT24, YEAR: read as int (as pymysql does).
_INTEGER_TYPES = frozenset({1, 2, 3, 8, 9, 13})

_FULL_AUTH_OVER_TCP = (
    "caching_sha2_password needs the server's RSA key or TLS to send the password; "
    "connect through the unix socket, or give the monitoring user mysql_native_password"
)


class MysqlError(Exception):
    """A failed connect, login or statement: ``code`` is the MySQL error number."""

    def __init__(self, code: int, message: str, sqlstate: str = "") -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def is_dialect_error(self) -> bool:
        """A syntax error: the statement is not one this server (version) knows."""
        return self.code in DIALECT_ERRORS


# ---------------------------------------------------------------------------- hashing


def _hash(name: str) -> Callable[[bytes], Any]:
    """The interpreter's builtin SHA-1/SHA-256, else hashlib's.

    ``import hashlib`` loads _hashlib and with it libcrypto: measured on CPython 3.11,
    +3.7 MB resident in a bare interpreter (+0.7 MB where ``ssl`` is already loaded, as
    in the agent), against about 35 kB for ``_sha1`` or ``_sha256`` (``_sha2`` from 3.12).
    """
    import importlib

    module_names = {"sha1": ("_sha1",), "sha256": ("_sha2", "_sha256")}[name]
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        function: Callable[[bytes], Any] = getattr(module, name)
        return function
    import hashlib

    fallback: Callable[[bytes], Any] = getattr(hashlib, name)
    return fallback


def _digest(name: str, *parts: bytes) -> bytes:
    digest: bytes = _hash(name)(b"".join(parts)).digest()
    return digest


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def scramble_native_password(password: bytes, nonce: bytes) -> bytes:
    """``SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))``; empty for an empty password."""
    if not password:
        return b""
    stage1 = _digest("sha1", password)
    return _xor(stage1, _digest("sha1", nonce[:20], _digest("sha1", stage1)))


def scramble_caching_sha2(password: bytes, nonce: bytes) -> bytes:
    """``SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)``; empty for an empty password."""
    if not password:
        return b""
    stage1 = _digest("sha256", password)
    return _xor(stage1, _digest("sha256", _digest("sha256", stage1), nonce[:20]))


def _auth_response(plugin: str, password: bytes, nonce: bytes) -> bytes:
    if plugin == NATIVE_PASSWORD:
        return scramble_native_password(password, nonce)
    if plugin == CACHING_SHA2_PASSWORD:
        return scramble_caching_sha2(password, nonce)
    raise _unsupported_plugin(plugin)


def _unsupported_plugin(plugin: str) -> MysqlError:
    return MysqlError(
        CR_AUTH_PLUGIN_CANNOT_LOAD,
        f"authentication plugin '{plugin}' is not supported by this client; give the "
        f"monitoring user mysql_native_password (or caching_sha2_password on MySQL)",
    )


# ---------------------------------------------------------------------------- packets


class _Reader:
    """Reads the fields of one packet payload; running past its end is a malformed packet."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MysqlError(CR_MALFORMED_PACKET,
                             f"malformed packet: {size} bytes wanted at offset {self.offset} "
                             f"of {len(self.data)}")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def lenenc_int(self) -> int | None:
        """A length-encoded integer; None for 0xFB (NULL in a row)."""
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.uint(2)
        if first == 0xFD:
            return self.uint(3)
        if first == 0xFE:
            return self.uint(8)
        raise MysqlError(CR_MALFORMED_PACKET, "malformed packet: 0xFF as a length")

    def lenenc_bytes(self) -> bytes | None:
        size = self.lenenc_int()
        return None if size is None else self.take(size)

    def nul_terminated(self) -> bytes:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            end = len(self.data)  # some servers leave the last string unterminated
        chunk = self.data[self.offset:end]
        self.offset = min(end + 1, len(self.data))
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.offset:]
        self.offset = len(self.data)
        return chunk


def server_error(payload: bytes) -> MysqlError:
    """The ``MysqlError`` of an ERR packet (0xFF, errno, optional ``#`` SQLSTATE, text)."""
    reader = _Reader(payload, 1)
    code = reader.uint(2)
    sqlstate = ""
    if payload[3:4] == b"#":
        reader.take(1)
        sqlstate = reader.take(5).decode("ascii", "replace")
    return MysqlError(code, reader.rest().decode("utf-8", "replace"), sqlstate)


def quote(value: str, *, no_backslash_escapes: bool = False) -> str:
    """``value`` as a quoted SQL string literal (what ``Connection.escape`` returns)."""
    if no_backslash_escapes:
        return "'" + value.replace("'", "''") + "'"
    return "'" + value.translate(_ESCAPES) + "'"


_ESCAPES = {0: "\\0", ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
            0x1A: "\\Z", ord("'"): "\\'", ord('"'): '\\"'}


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


# ---------------------------------------------------------------------------- connection


class Connection:
    """One logged-in session; build it with ``connect``. Not for use by several threads."""

    def __init__(self, sock: socket.socket, *, over_unix_socket: bool) -> None:
        self._sock: socket.socket | None = sock
        self._buffer = bytearray()
        self._sequence = 0
        self._stage = "at 'reading initial communication packet'"
        self._over_unix_socket = over_unix_socket
        self.server_version = ""
        self.status = 0
        """Server status flags of the last OK/EOF packet (e.g. NO_BACKSLASH_ESCAPES)."""

    # -- lifecycle

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say COM_QUIT (best effort) and close the socket; closing twice is harmless."""
        sock = self._sock
        if sock is None:
            return
        try:
            self._sequence = 0
            self._send(bytes([_COM_QUIT]))
        except MysqlError:
            pass  # already gone: nothing to say goodbye to
        finally:
            self._abort()
            sock.close()

    @property
    def closed(self) -> bool:
        """True after ``close`` or after an error that lost the connection."""
        return self._sock is None

    def _abort(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- statements

    def escape(self, value: str) -> str:
        """``value`` as a quoted string literal, honouring the server's NO_BACKSLASH_ESCAPES."""
        return quote(value, no_backslash_escapes=bool(self.status & _SERVER_NO_BACKSLASH_ESCAPES))

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run one statement; its rows as dicts (none for a statement without a result set)."""
        self._sequence = 0
        self._stage = "during query"
        self._send(bytes([_COM_QUERY]) + sql.encode("utf-8"))
        first = self._receive()
        if first[:1] == b"\x00":
            self._read_ok(first)
            return []
        if first[:1] == b"\xff":
            raise server_error(first)
        if first[:1] == b"\xfb":
            self._abort()  # the server now waits for a file; the session cannot go on
            raise MysqlError(CR_MALFORMED_PACKET,
                             "the server asked for a local file (LOAD DATA LOCAL); "
                             "this client does not send files")
        count = _Reader(first).lenenc_int() or 0
        columns = [self._column(self._receive()) for _ in range(count)]
        self._expect_eof()
        rows: list[dict[str, Any]] = []
        while True:
            packet = self._receive()
            if packet[:1] == b"\xfe" and len(packet) < 9:
                self._read_eof(packet)
                break
            if packet[:1] == b"\xff":
                raise server_error(packet)
            reader = _Reader(packet)
            row: dict[str, Any] = {}
            for name, integer in columns:
                value = reader.lenenc_bytes()
                if value is None:
                    row[name] = None
                elif integer:
                    row[name] = int(value)
                else:
                    row[name] = value.decode("utf-8", "replace")
            rows.append(row)
        return rows

    def _column(self, payload: bytes) -> tuple[str, bool]:
        """Name and integer-ness of a Protocol::ColumnDefinition41."""
        reader = _Reader(payload)
        for _ in range(4):  # catalog, schema, table, original table
            reader.lenenc_bytes()
        name = (reader.lenenc_bytes() or b"").decode("utf-8", "replace")
        reader.lenenc_bytes()  # original name
        reader.lenenc_int()  # length of the fixed fields
        reader.take(2 + 4)  # character set, column length
        column_type = reader.uint(1)
        return name, column_type in _INTEGER_TYPES

    def _expect_eof(self) -> None:
        packet = self._receive()
        if packet[:1] == b"\xff":
            raise server_error(packet)
        if packet[:1] != b"\xfe" or len(packet) >= 9:
            self._abort()
            raise MysqlError(CR_MALFORMED_PACKET,
                             "malformed packet: no EOF after the column definitions")
        self._read_eof(packet)

    def _read_ok(self, payload: bytes) -> None:
        reader = _Reader(payload, 1)
        reader.lenenc_int()  # affected rows
        reader.lenenc_int()  # last insert id
        self._set_status(reader.uint(2))

    def _read_eof(self, payload: bytes) -> None:
        if len(payload) >= 5:
            self._set_status(int.from_bytes(payload[3:5], "little"))

    def _set_status(self, status: int) -> None:
        self.status = status
        if status & _SERVER_MORE_RESULTS_EXISTS:
            # Never asked for (no multi-statements, no CALL): the session is out of step.
            self._abort()
            raise MysqlError(CR_COMMANDS_OUT_OF_SYNC,
                             "the server sent more result sets than were asked for")

    # -- packets

    def _send(self, payload: bytes) -> None:
        if self._sock is None:
            raise MysqlError(CR_SERVER_GONE_ERROR, "MySQL server has gone away (connection closed)")
        if len(payload) >= _MAX_PAYLOAD:
            raise MysqlError(CR_NET_PACKET_TOO_LARGE,
                             "a statement of 16 MB or more; this client does not send those")
        header = len(payload).to_bytes(3, "little") + bytes([self._sequence])
        self._sequence = (self._sequence + 1) & 0xFF
        try:
            self._sock.sendall(header + payload)
        except OSError as err:
            self._abort()
            raise MysqlError(CR_SERVER_GONE_ERROR,
                             f"MySQL server has gone away ({_reason(err)})") from None

    def _receive(self) -> bytes:
        header = self._read_exactly(4)
        length = int.from_bytes(header[:3], "little")
        sequence = header[3]
        if length == _MAX_PAYLOAD:
            self._abort()
            raise MysqlError(CR_NET_PACKET_TOO_LARGE,
                             "the server sent a packet of 16 MB or more; "
                             "this client does not read those")
        payload = self._read_exactly(length)
        if sequence != self._sequence:
            self._abort()
            # MariaDB says why it is closing (e.g. shutdown) in an ERR out of sequence.
            said = f": {server_error(payload)}" if payload[:1] == b"\xff" else ""
            raise MysqlError(CR_SERVER_LOST, f"Lost connection to MySQL server {self._stage}"
                                             f" (packet out of sequence{said})")
        self._sequence = (sequence + 1) & 0xFF
        return payload

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if self._sock is None:
                raise MysqlError(CR_SERVER_GONE_ERROR,
                                 "MySQL server has gone away (connection closed)")
            try:
                chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            except OSError as err:
                timeout = self._sock.gettimeout()
                self._abort()
                why = (f"no answer within {timeout:g} s" if isinstance(err, TimeoutError)
                       and timeout else _reason(err))
                raise MysqlError(CR_SERVER_LOST,
                                 f"Lost connection to MySQL server {self._stage} ({why})") from None
            if not chunk:
                self._abort()
                raise MysqlError(CR_SERVER_LOST, f"Lost connection to MySQL server {self._stage}")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    # -- login

    def _login(self, user: str, password: str) -> None:
        handshake = self._receive()
        if handshake[:1] == b"\xff":  # too many connections, host blocked, ...
            raise server_error(handshake)
        reader = _Reader(handshake)
        version = reader.uint(1)
        if version != 10:
            raise MysqlError(CR_VERSION_ERROR, f"protocol version {version} is not 10 "
                                               "(server older than MySQL 4.1?)")
        # MariaDB 10+ puts "5.5.5-" before its version for the sake of old clients.
        version_text = reader.nul_terminated().decode("utf-8", "replace")
        self.server_version = version_text.removeprefix("5.5.5-")
        reader.take(4)  # connection id
        nonce = reader.take(8)
        reader.take(1)
        capabilities = reader.uint(2)
        plugin = NATIVE_PASSWORD
        if reader.offset < len(handshake):
            reader.take(1)  # the server's character set
            self.status = reader.uint(2)
            capabilities |= reader.uint(2) << 16
            nonce_length = reader.uint(1)
            reader.take(10)  # reserved (MariaDB: its extended capabilities)
            if capabilities & _CLIENT_SECURE_CONNECTION:
                nonce += reader.take(max(12, nonce_length - 9))
                reader.take(1)
            if capabilities & _CLIENT_PLUGIN_AUTH:
                plugin = reader.nul_terminated().decode("ascii", "replace")
        needed = _CLIENT_PROTOCOL_41 | _CLIENT_SECURE_CONNECTION
        if capabilities & needed != needed:
            raise MysqlError(CR_SERVER_HANDSHAKE_ERR,
                             "the server does not speak the 4.1 protocol with secure login")
        # An unknown default plugin: answer as mysql_native_password; a server whose user
        # needs another plugin asks to switch.
        if plugin not in (NATIVE_PASSWORD, CACHING_SHA2_PASSWORD):
            plugin = NATIVE_PASSWORD
        secret = password.encode("utf-8")
        flags = _CLIENT_FLAGS
        if not capabilities & _CLIENT_PLUGIN_AUTH:  # MySQL before 5.5: no plugin names
            flags &= ~_CLIENT_PLUGIN_AUTH
        scramble = _auth_response(plugin, secret, nonce)
        response = (struct.pack("<IIB23x", flags, _MAX_PAYLOAD, _UTF8MB4_GENERAL_CI)
                    + user.encode("utf-8") + b"\0" + bytes([len(scramble)]) + scramble)
        if flags & _CLIENT_PLUGIN_AUTH:
            response += plugin.encode("ascii") + b"\0"
        self._stage = "at 'reading authorization packet'"
        self._send(response)
        self._authenticate(plugin, secret)

    def _authenticate(self, plugin: str, secret: bytes) -> None:
        switched = False
        while True:
            packet = self._receive()
            head = packet[:1]
            if head == b"\x00":
                self._read_ok(packet)
                return
            if head == b"\xff":
                raise server_error(packet)
            if head == b"\xfe" and not switched:
                # Auth switch request: the user's plugin differs from the one we answered.
                switched = True
                if len(packet) == 1:  # the pre-4.1 request, which carries no name
                    raise _unsupported_plugin("mysql_old_password")
                reader = _Reader(packet, 1)
                plugin = reader.nul_terminated().decode("ascii", "replace")
                nonce = reader.rest()
                self._send(_auth_response(plugin, secret, nonce.removesuffix(b"\0")))
                continue
            if head == b"\x01" and plugin == CACHING_SHA2_PASSWORD:
                if packet[1:] == b"\x03":  # fast authentication: the OK packet follows
                    continue
                if packet[1:] == b"\x04":  # full authentication: the password itself
                    if not self._over_unix_socket:
                        raise MysqlError(CR_AUTH_PLUGIN_ERR, _FULL_AUTH_OVER_TCP)
                    self._send(secret + b"\0")
                    continue
            raise MysqlError(CR_MALFORMED_PACKET,
                             f"unexpected packet 0x{packet[:1].hex()} while logging in "
                             f"with {plugin}")


def connect(
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    unix_socket: str = "",
    user: str,
    password: str = "",
    connect_timeout: float = 5.0,
    timeout: float = 5.0,
) -> Connection:
    """Connect (``unix_socket`` when given, else TCP) and log in; ``MysqlError`` otherwise.

    ``connect_timeout`` bounds the connect and each read and write of the login,
    ``timeout`` each read and write of the statements after it.
    """
    if unix_socket:
        sock = _connect_unix(unix_socket, connect_timeout)
    else:
        sock = _connect_tcp(host, port, connect_timeout)
    connection = Connection(sock, over_unix_socket=bool(unix_socket))
    try:
        sock.settimeout(connect_timeout)
        connection._login(user, password)
        sock.settimeout(timeout)
    except BaseException:
        connection._abort()
        raise
    return connection


def _connect_unix(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise MysqlError(CR_CONNECTION_ERROR, f"Can't connect to local server through socket "
                                              f"'{path}' ({_reason(err)})") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    try:
        return connect_tcp(host, port, timeout)
    except socket.gaierror as err:
        raise MysqlError(CR_UNKNOWN_HOST,
                         f"Unknown MySQL server host '{host}' ({_reason(err)})") from None
    except OSError as err:
        raise MysqlError(CR_CONN_HOST_ERROR,
                         f"Can't connect to MySQL server on '{host}:{port}' ({_reason(err)})"
                         ) from None
