"""The agent's HTTP client: a small HTTP/1.1 exchange on a plain socket.

Why not httpx: ``import httpx`` alone adds 3.2 MB of resident memory to an agent whose
budget is 28 MB on every customer host (its own transport would load httpcore, h11 and
certifi on top), for one sequential POST every few seconds to one collector. Why not
``http.client``: it imports ``ssl`` (3.9 MB: ``_ssl``, libssl, libcrypto) and the ``email``
package (about 1 MB) even for an http:// collector on the same network or behind a local
TLS-terminating proxy. Here ``ssl`` is imported only when an https URL or a TLS context is
used, and an ASCII host name is resolved without loading the ``idna`` codec.

What it does: HTTP/1.1 with one kept-alive connection per origin (requests are sequential),
a connect and a read timeout on each request, TLS with a given ``ssl.SSLContext`` (built by
``tls_context`` only for an https collector: loading a trust store costs memory; it
presents the agent's client certificate when one is configured, for a proxy that requires
mutual TLS), and one retry on a fresh connection when a kept-alive connection turns out to
have been closed by the server (safe here: a batch resend is deduplicated by its
``batch_id``). A request carries ``Host``, ``Content-Length`` and ``Accept-Encoding:
identity`` besides the headers given. An answer is framed by ``Content-Length``, by
``Transfer-Encoding: chunked`` (trailers are read and dropped) or by the server closing the
connection; ``Connection: close`` and HTTP/1.0 answers close the connection; interim 1xx
answers (``100 Continue``) are skipped. The status line, the header block and the body are
bounded, so a server that answers something other than HTTP gets a ``RemoteProtocolError``
that says what was wrong, never a hang or an unbounded buffer.

What it does not do: no redirects followed (a 3xx is returned as it is), no proxies (the
``*_proxy`` environment variables are ignored), no HTTP/2, no compressed answers (it asks
for ``identity``; a ``Content-Encoding`` the server applies anyway is left to the caller).

The seam: ``Client`` sends each ``Request`` through a ``Transport``, any callable from
``Request`` to ``Response``; the default is ``SocketTransport``, and tests pass a function
that plays the collector.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from io import BufferedReader
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from checks.net import connect_tcp, lookup_name

if TYPE_CHECKING:
    import ssl  # imported at run time only for TLS: with libssl and libcrypto it is 3.9 MB

# -- errors: the request got no HTTP answer ----------------------------------------------------


class TransportError(Exception):
    """No HTTP answer: the connection, the TLS handshake or the exchange failed."""


class ConnectError(TransportError):
    """The connection or the TLS handshake failed (refused, unreachable, untrusted)."""


class ConnectTimeout(TransportError):
    """The connection was not established within the connect timeout."""


class WriteError(TransportError):
    """The connection broke while the request was being sent."""


class WriteTimeout(TransportError):
    """The request could not be sent within the read timeout."""


class ReadError(TransportError):
    """The connection broke while the answer was being read."""


class ReadTimeout(TransportError):
    """No (complete) answer within the read timeout."""


class RemoteProtocolError(TransportError):
    """The server closed the connection without an answer, or answered something not HTTP."""


# -- values ------------------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Header fields by name, case-insensitively; a repeated name keeps its last value
    (the agent reads single-valued fields only: Content-Type, Retry-After)."""

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        self._fields = {name.lower(): (name, value) for name, value in pairs}

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self._fields.values())!r})"


class Timeout(NamedTuple):
    """Seconds to wait for the connection, and then for each read or write on it."""

    connect: float
    read: float


@dataclass(frozen=True)
class Request:
    """One request as the transport sends it."""

    method: str
    url: str
    headers: Headers
    content: bytes
    timeout: Timeout


class Response:
    """An HTTP answer, read whole."""

    def __init__(
        self,
        status_code: int,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        content: bytes = b"",
        reason_phrase: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = Headers(headers)
        self.content = content
        self.reason_phrase = _standard_phrase(status_code) if reason_phrase is None \
            else reason_phrase

    @property
    def text(self) -> str:
        """The body as text (UTF-8; undecodable bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not JSON."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code} {self.reason_phrase}]>"


def _standard_phrase(status_code: int) -> str:
    import http  # 64 kB of enum, needed only when an answer came without a reason phrase

    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


Transport = Callable[[Request], Response]
"""Sends a request and returns the whole answer, or raises a ``TransportError``."""


# -- the client --------------------------------------------------------------------------------


class Client:
    """POSTs with default headers and timeouts through a transport (``SocketTransport``
    with ``ssl_context`` unless one is given)."""

    def __init__(
        self,
        *,
        timeout: Timeout,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._timeout = timeout
        self._headers = dict(headers or {})
        # A transport passed in belongs to the caller; the client closes only its own.
        self._own: SocketTransport | None = None
        if transport is None:
            transport = self._own = SocketTransport(ssl_context)
        self._transport: Transport = transport

    def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """POST ``content`` to ``url``; ``timeout`` replaces both of the client's timeouts."""
        request = Request(
            "POST", url, Headers([*self._headers.items(), *(headers or {}).items()]), content,
            self._timeout if timeout is None else Timeout(timeout, timeout),
        )
        return self._transport(request)

    def close(self) -> None:
        """Close the client's kept-alive connections."""
        if self._own is not None:
            self._own.close()


# -- TLS ---------------------------------------------------------------------------------------


def system_trust_context() -> ssl.SSLContext:
    """TLS client context that verifies against the system trust store.

    It uses the hashed certificate directory when there is one (OpenSSL then reads a CA
    only when a server presents a chain that needs it) instead of loading a whole bundle.
    """
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies cert and host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    paths = ssl.get_default_verify_paths()
    cafile_from_env = os.environ.get(paths.openssl_cafile_env)
    if cafile_from_env:
        context.load_verify_locations(cafile=cafile_from_env)
    elif paths.capath and os.path.isdir(paths.capath):
        context.load_verify_locations(capath=paths.capath)
    else:
        context.load_default_certs()
    return context


def tls_context(
    *, verify: bool = True, ca_file: str | None = None, client_cert_file: str | None = None,
    client_key_file: str | None = None,
) -> ssl.SSLContext:
    """The TLS context for the collector connection, as configured: the collector verified
    against ``ca_file`` (else the system trust store) unless ``verify`` is false, and the
    agent's own certificate presented when ``client_cert_file`` is given (mutual TLS)."""
    import ssl

    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        context = system_trust_context()
    if client_cert_file:
        load_client_certificate(context, client_cert_file, client_key_file)
    return context


def load_client_certificate(
    context: ssl.SSLContext, cert_file: str, key_file: str | None = None
) -> None:
    """Make ``context`` present the certificate in ``cert_file`` with its private key (from
    ``key_file``, else from ``cert_file`` too) to a server that asks for one.

    An encrypted key is a ``ValueError``: OpenSSL would otherwise ask for its passphrase on
    the terminal, and a daemon has nobody to answer. A missing file is an ``OSError``, a key
    that is not the certificate's, or a file that is not PEM, an ``ssl.SSLError``.
    """

    def refuse_encrypted_key() -> bytes:
        raise ValueError(f"the private key in {key_file or cert_file} is encrypted (not "
                         "supported: the agent needs it unencrypted)")

    context.load_cert_chain(cert_file, key_file, password=refuse_encrypted_key)


# -- the wire ----------------------------------------------------------------------------------


Origin = tuple[str, str, int]

_MAX_LINE = 16 * 1024
"""Bytes in the status line, in one header line or in one chunk-size line."""
_MAX_HEADER_BLOCK = 64 * 1024
"""Bytes in the header block of an answer (and in its trailers)."""
_MAX_HEADERS = 100
"""Fields in the header block of an answer (and in its trailers)."""
_MAX_INTERIM = 10
"""Interim (1xx) answers before the final one."""
_MAX_BODY = 16 * 1024 * 1024
"""Bytes in an answer's body: the collector answers a few hundred bytes of JSON."""

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: (.*))?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?")
_TARGET_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")
_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class SocketTransport:
    """Sends requests on plain sockets (TLS-wrapped for https), one kept-alive connection
    per origin."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._connections: dict[Origin, _Connection] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        """Send ``request`` and read the whole answer."""
        origin, target = _origin_and_target(request.url)
        message = _request_head(request, origin, target) + request.content
        with self._lock:
            kept = self._connections.pop(origin, None)
            if kept is not None:
                try:
                    return self._exchange(origin, kept, request, message, reused=True)
                except _StaleConnection:
                    pass  # the server closed it while it was idle: once more, on a new one
            connection = self._open(origin, request.timeout)
            return self._exchange(origin, connection, request, message, reused=False)

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            while self._connections:
                self._connections.popitem()[1].close()

    def _exchange(
        self, origin: Origin, connection: _Connection, request: Request, message: bytes,
        *, reused: bool,
    ) -> Response:
        try:
            response, keep_alive = _exchange(connection, request, message, reused=reused)
        except BaseException:
            connection.close()  # halfway through an exchange: nothing more can be read on it
            raise
        if keep_alive:
            self._connections[origin] = connection
        else:
            connection.close()
        return response

    def _open(self, origin: Origin, timeout: Timeout) -> _Connection:
        scheme, host, port = origin
        try:
            sock = connect_tcp(host, port, timeout.connect)
        except TimeoutError as err:
            raise ConnectTimeout(f"connecting to {host}:{port} timed out") from err
        except (OSError, UnicodeError) as err:  # socket.gaierror too: an unknown name
            raise ConnectError(f"cannot connect to {host}:{port}: {err}") from err
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = system_trust_context()
            try:
                # An ASCII name as bytes: ssl would run a str through the idna codec.
                sock = self._ssl_context.wrap_socket(sock, server_hostname=lookup_name(host))
            except TimeoutError as err:
                sock.close()
                raise ConnectTimeout(f"TLS handshake with {host}:{port} timed out") from err
            except OSError as err:  # ssl.SSLCertVerificationError: an untrusted certificate
                sock.close()
                raise ConnectError(f"TLS handshake with {host}:{port} failed: {err}") from err
        return _Connection(sock)


class _Connection:
    """A connected socket and the buffered reader of its answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BufferedReader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed; worth one retry on a new one."""


def _origin_and_target(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as err:
        raise TransportError(f"cannot send to {url!r}: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"cannot send to {url!r}: not an http:// or https:// URL")
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target


def _request_head(request: Request, origin: Origin, target: str) -> bytes:
    """The request line and header block; a request that cannot be written is a
    ``WriteError`` before anything is sent."""
    if not _TOKEN.fullmatch(request.method.encode("ascii", "replace")):
        raise WriteError(f"invalid request method {request.method!r}")
    if _TARGET_FORBIDDEN.search(target):
        raise WriteError(f"invalid request target {target!r}: space, control or non-ASCII "
                         "character (percent-encode it)")
    given = {name.lower() for name in request.headers}
    lines = [f"{request.method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {_host_field(origin)}")
    if request.content or request.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(request.content)}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    for name, value in request.headers.items():
        if name.lower() in ("content-length", "transfer-encoding"):
            continue  # the body is sent whole: its length is the transport's to say
        if not _TOKEN.fullmatch(name.encode("ascii", "replace")):
            raise WriteError(f"invalid header name {name!r}")
        if _VALUE_FORBIDDEN.search(value):
            raise WriteError(f"invalid value of header {name}: {value!r}")
        lines.append(f"{name}: {value}")
    lines += ["", ""]
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as err:
        raise WriteError(f"header not encodable as ISO-8859-1: {err}") from None


def _host_field(origin: Origin) -> str:
    scheme, host, port = origin
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    default_port = 443 if scheme == "https" else 80
    return host if port == default_port else f"{host}:{port}"


def _exchange(
    connection: _Connection, request: Request, message: bytes, *, reused: bool
) -> tuple[Response, bool]:
    """Send ``message`` on ``connection`` and read the answer, errors mapped to
    ``TransportError``s; also says whether the connection can carry another request.

    On a ``reused`` connection, a failure before the first byte of an answer is a
    ``_StaleConnection``: the server closed it while it was idle.
    """
    connection.sock.settimeout(request.timeout.read)
    try:
        connection.sock.sendall(message)
    except TimeoutError as err:
        raise WriteTimeout(f"sending the request timed out: {err}") from err
    except (BrokenPipeError, ConnectionResetError) as err:
        if reused:
            raise _StaleConnection(str(err)) from err
        raise WriteError(str(err)) from err
    except OSError as err:
        raise WriteError(str(err)) from err
    try:
        first_line = connection.reader.readline(_MAX_LINE + 1)
    except TimeoutError as err:
        raise ReadTimeout(f"no answer within {request.timeout.read:g} s") from err
    except ConnectionResetError as err:
        if reused:
            raise _StaleConnection(str(err)) from err
        raise ReadError(str(err)) from err
    except OSError as err:
        raise ReadError(str(err)) from err
    if not first_line:
        if reused:
            raise _StaleConnection("the server had closed the kept-alive connection")
        raise RemoteProtocolError("the server closed the connection without an answer")
    try:
        return _read_answer(connection.reader, first_line, request.method)
    except TimeoutError as err:
        raise ReadTimeout(f"the answer stalled for {request.timeout.read:g} s") from err
    except OSError as err:
        raise ReadError(str(err)) from err


def _read_answer(reader: BufferedReader, line: bytes, method: str) -> tuple[Response, bool]:
    """The answer whose status line (or its first ``_MAX_LINE + 1`` bytes) is ``line``, and
    whether the connection stays open."""
    interim = 0
    while True:
        minor_version, status, reason = _status_line(_complete(line, "status line"))
        fields = _fields(reader, "header")
        if status == 101:
            raise RemoteProtocolError("101 Switching Protocols, but no upgrade was asked for")
        if status >= 200:
            break
        interim += 1  # 100 Continue, 103 Early Hints: the real answer follows
        if interim > _MAX_INTERIM:
            raise RemoteProtocolError(f"more than {_MAX_INTERIM} interim (1xx) answers")
        line = reader.readline(_MAX_LINE + 1)
    values = _values_by_name(fields)
    connection_options = {option.strip().lower()
                          for value in values.get("connection", ())
                          for option in value.split(",")}
    keep_alive = minor_version >= 1 and "close" not in connection_options
    if method == "HEAD" or status in (204, 304):
        content = b""
    elif "transfer-encoding" in values:
        codings = [coding.strip().lower()
                   for value in values["transfer-encoding"] for coding in value.split(",")]
        if codings != ["chunked"]:
            raise RemoteProtocolError(
                f"unsupported Transfer-Encoding: {', '.join(values['transfer-encoding'])}")
        content = _chunked_body(reader)
        # Framed twice: RFC 9112 (6.1) lets chunked win, but the connection is suspect.
        keep_alive = keep_alive and "content-length" not in values
    elif "content-length" in values:
        content = _exactly(reader, _content_length(values["content-length"]), "body")
    else:
        content = reader.read(_MAX_BODY + 1)  # framed by the end of the connection
        _check_body_size(len(content))
        keep_alive = False
    return Response(status, headers=fields, content=content, reason_phrase=reason), keep_alive


def _complete(line: bytes, what: str) -> bytes:
    """``line`` without its line end; a ``RemoteProtocolError`` if it is cut off or too long."""
    if line.endswith(b"\n"):
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]
    if len(line) > _MAX_LINE:
        raise RemoteProtocolError(f"{what} longer than {_MAX_LINE} bytes: {line[:60]!r}...")
    raise RemoteProtocolError(f"the connection closed in the middle of the {what}")


def _line(reader: BufferedReader, what: str) -> bytes:
    return _complete(reader.readline(_MAX_LINE + 1), what)


def _status_line(line: bytes) -> tuple[int, int, str | None]:
    """HTTP minor version, status code and reason phrase (``None`` when there is none)."""
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    minor_version, status, reason = match.groups()
    if int(status) < 100:
        raise RemoteProtocolError(f"status code out of range: {line[:80]!r}")
    return int(minor_version), int(status), reason.decode("latin-1") if reason else None


def _fields(reader: BufferedReader, what: str) -> list[tuple[str, str]]:
    """The fields of a header (or trailer) block, up to its empty line."""
    fields: list[tuple[str, str]] = []
    size = 0
    while line := _line(reader, f"{what} line"):
        size += len(line)
        if size > _MAX_HEADER_BLOCK:
            raise RemoteProtocolError(f"{what} block longer than {_MAX_HEADER_BLOCK} bytes")
        if line[:1] in (b" ", b"\t") and fields:  # obsolete line folding: more of the value
            name, value = fields[-1]
            fields[-1] = (name, value + " " + line.strip(b" \t").decode("latin-1"))
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(raw_name):
            raise RemoteProtocolError(f"malformed {what} line: {line[:80]!r}")
        if len(fields) == _MAX_HEADERS:
            raise RemoteProtocolError(f"more than {_MAX_HEADERS} fields in the {what} block")
        fields.append((raw_name.decode("ascii"), raw_value.strip(b" \t").decode("latin-1")))
    return fields


def _values_by_name(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name.lower(), []).append(value)
    return values


def _content_length(values: list[str]) -> int:
    lengths = {length.strip() for value in values for length in value.split(",")}
    if len(lengths) != 1 or not all(length.isascii() and length.isdigit() for length in lengths):
        raise RemoteProtocolError(f"invalid Content-Length: {', '.join(values)!r}")
    length = int(lengths.pop())
    _check_body_size(length)
    return length


def _check_body_size(size: int) -> None:
    if size > _MAX_BODY:
        raise RemoteProtocolError(f"answer body larger than {_MAX_BODY} bytes")


def _exactly(reader: BufferedReader, size: int, what: str) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise RemoteProtocolError(
            f"the connection closed after {len(data)} of the {size} bytes of the {what}")
    return data


def _chunked_body(reader: BufferedReader) -> bytes:
    """A body in chunks, up to the last chunk and its trailer fields (dropped)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        line = _line(reader, "chunk size line")
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError(f"malformed chunk size line: {line[:80]!r}")
        size = int(match.group(1), 16)
        if size == 0:
            break
        total += size
        _check_body_size(total)
        chunks.append(_exactly(reader, size, "chunk"))
        if _line(reader, "line end after a chunk") != b"":
            raise RemoteProtocolError("chunk data longer than its size line says")
    _fields(reader, "trailer")
    return b"".join(chunks)
