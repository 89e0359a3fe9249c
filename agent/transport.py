"""A small ``httpx`` transport over the standard library's ``http.client``.

Why not httpx's own ``HTTPTransport``: it loads httpcore, h11, anyio and certifi and reads
the whole certifi bundle at start, about 3 MB of resident memory on every customer host,
for one sequential POST every few seconds. ``http.client`` is loaded by httpx anyway. The
agent keeps httpx's client API, its exceptions and ``MockTransport`` for tests; only the
wire underneath is the standard library's.

What it does: HTTP/1.1 with one kept-alive connection per origin (requests are
sequential), the connect and read timeouts of each request, TLS with a given
``ssl.SSLContext``, and one retry on a fresh connection when a kept-alive connection
turns out to have been closed by the server (safe here: a batch resend is deduplicated
by its ``batch_id``). No proxies, no HTTP/2.
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
from typing import Any

import httpx


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


class StdlibTransport(httpx.BaseTransport):
    """``httpx.BaseTransport`` on ``http.client``, one connection per origin."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole answer."""
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, url.host, port)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        body = request.read()
        path = url.raw_path.decode("ascii")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        with self._lock:
            for attempt in (1, 2):
                connection, reused = self._connection(key, timeouts)
                try:
                    return self._exchange(connection, request, path, headers, body, timeouts)
                except _StaleConnection as stale:
                    self._drop(key)
                    if attempt == 2 or not reused:
                        raise httpx.RemoteProtocolError(str(stale), request=request) from None
                except BaseException:
                    self._drop(key)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            for key in list(self._connections):
                self._drop(key)

    def _connection(
        self, key: tuple[str, str, int], timeouts: dict[str, Any]
    ) -> tuple[http.client.HTTPConnection, bool]:
        existing = self._connections.get(key)
        if existing is not None and existing.sock is not None:
            return existing, True
        scheme, host, port = key
        connect_timeout = timeouts.get("connect")
        connection: http.client.HTTPConnection
        if scheme == "https":
            context = self._ssl_context or system_trust_context()
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        self._connections[key] = connection
        return connection, False

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection,
        request: httpx.Request,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        fresh = connection.sock is None
        try:
            if fresh:
                connection.connect()
        except TimeoutError as err:
            raise httpx.ConnectTimeout(f"connect timed out: {err}", request=request) from err
        except (OSError, ssl.SSLError) as err:
            raise httpx.ConnectError(str(err), request=request) from err
        assert connection.sock is not None
        connection.sock.settimeout(timeouts.get("read"))
        try:
            connection.putrequest(request.method, path, skip_host=True,
                                  skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body or None)
        except (BrokenPipeError, ConnectionResetError) as err:
            if not fresh:
                raise _StaleConnection(str(err)) from err
            raise httpx.WriteError(str(err), request=request) from err
        except TimeoutError as err:
            raise httpx.WriteTimeout(str(err), request=request) from err
        except OSError as err:
            raise httpx.WriteError(str(err), request=request) from err
        try:
            answer = connection.getresponse()
            content = answer.read()
        except http.client.RemoteDisconnected as err:
            if not fresh:
                raise _StaleConnection(str(err)) from err
            raise httpx.RemoteProtocolError(str(err), request=request) from err
        except TimeoutError as err:
            raise httpx.ReadTimeout(f"read timed out: {err}", request=request) from err
        except http.client.HTTPException as err:
            raise httpx.RemoteProtocolError(f"{type(err).__name__}: {err}",
                                            request=request) from err
        except OSError as err:
            raise httpx.ReadError(str(err), request=request) from err
        if answer.will_close:
            connection.close()
        return httpx.Response(
            status_code=answer.status,
            headers=answer.getheaders(),
            stream=httpx.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": answer.reason.encode("latin-1", "replace")},
            request=request,
        )


class _StaleConnection(Exception):
    """A kept-alive connection the server had closed; worth one retry on a new one."""
