"""The agent's HTTP client: the standard library's ``http.client``, and nothing else.

Why not httpx: ``import httpx`` alone adds 3.2 MB of resident memory to an agent whose
budget is 28 MB on every customer host (its own transport would load httpcore, h11 and
certifi on top), for one sequential POST every few seconds to one collector.

What it does: HTTP/1.1 with one kept-alive connection per origin (requests are
sequential), a connect and a read timeout on each request, TLS with a given
``ssl.SSLContext`` (built by ``tls_context`` only for an https collector: loading a trust
store costs memory), and one retry on a fresh connection when a kept-alive connection turns
out to have been closed by the server (safe here: a batch resend is deduplicated by its
``batch_id``). No redirects followed, no proxies from the environment, no HTTP/2, no
compressed answers (it asks for ``identity``).

The seam: ``Client`` sends each ``Request`` through a ``Transport``, any callable from
``Request`` to ``Response``; the default is ``StdlibTransport``, and tests pass a function
that plays the collector.
"""

from __future__ import annotations

import http
import http.client
import json
import os
import ssl  # loaded by http.client in any case; the costly part is a context's trust store
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

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
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return ""


Transport = Callable[[Request], Response]
"""Sends a request and returns the whole answer, or raises a ``TransportError``."""


# -- the client --------------------------------------------------------------------------------


class Client:
    """POSTs with default headers and timeouts through a transport (``StdlibTransport``
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
        self._own: StdlibTransport | None = None
        if transport is None:
            transport = self._own = StdlibTransport(ssl_context)
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


def tls_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """The TLS context for the collector connection, as configured."""
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
    return system_trust_context()


# -- the wire ----------------------------------------------------------------------------------


Origin = tuple[str, str, int]


class StdlibTransport:
    """Sends requests with ``http.client``, one kept-alive connection per origin."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._connections: dict[Origin, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        """Send ``request`` and read the whole answer."""
        origin, path = _origin_and_path(request.url)
        with self._lock:
            for attempt in (1, 2):
                connection, reused = self._connection(origin, request.timeout)
                try:
                    return _exchange(connection, request, path)
                except _StaleConnection as stale:
                    self._drop(origin)
                    if attempt == 2 or not reused:
                        raise RemoteProtocolError(str(stale)) from None
                except BaseException:
                    self._drop(origin)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            for origin in list(self._connections):
                self._drop(origin)

    def _connection(
        self, origin: Origin, timeout: Timeout
    ) -> tuple[http.client.HTTPConnection, bool]:
        existing = self._connections.get(origin)
        if existing is not None and existing.sock is not None:
            return existing, True
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            context = self._ssl_context or system_trust_context()
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout.connect, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout.connect)
        self._connections[origin] = connection
        return connection, False

    def _drop(self, origin: Origin) -> None:
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()


def _origin_and_path(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as err:
        raise TransportError(f"cannot send to {url!r}: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"cannot send to {url!r}: not an http:// or https:// URL")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), path


def _exchange(connection: http.client.HTTPConnection, request: Request, path: str) -> Response:
    """One request and its answer on ``connection``, errors mapped to ``TransportError``s."""
    fresh = connection.sock is None
    try:
        if fresh:
            connection.connect()
    except TimeoutError as err:
        raise ConnectTimeout(f"connect timed out: {err}") from err
    except OSError as err:  # ssl.SSLError too: an untrusted certificate
        raise ConnectError(str(err)) from err
    assert connection.sock is not None
    connection.sock.settimeout(request.timeout.read)
    try:
        # http.client adds Host, Content-Length and "Accept-Encoding: identity".
        connection.request(request.method, path, body=request.content,
                           headers=dict(request.headers))
    except (BrokenPipeError, ConnectionResetError) as err:
        if not fresh:
            raise _StaleConnection(str(err)) from err
        raise WriteError(str(err)) from err
    except TimeoutError as err:
        raise WriteTimeout(str(err)) from err
    except OSError as err:
        raise WriteError(str(err)) from err
    except http.client.HTTPException as err:  # e.g. a control character in the URL's path
        raise WriteError(f"{type(err).__name__}: {err}") from err
    try:
        answer = connection.getresponse()
        content = answer.read()
    except ConnectionResetError as err:  # RemoteDisconnected too: closed, no answer
        if not fresh:
            raise _StaleConnection(str(err)) from err
        if isinstance(err, http.client.RemoteDisconnected):
            raise RemoteProtocolError(str(err)) from err
        raise ReadError(str(err)) from err
    except TimeoutError as err:
        raise ReadTimeout(f"read timed out: {err}") from err
    except http.client.HTTPException as err:
        raise RemoteProtocolError(f"{type(err).__name__}: {err}") from err
    except OSError as err:
        raise ReadError(str(err)) from err
    if answer.will_close:
        connection.close()
    return Response(answer.status, headers=answer.getheaders(), content=content,
                    reason_phrase=answer.reason)


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed; worth one retry on a new one."""
