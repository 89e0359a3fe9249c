"""Serves ``GET /metrics`` on one listening socket from one daemon thread.

The standard library's ``http.server`` would load ``http.client``, the ``email`` package
and ``ssl`` into the agent; a scrape needs none of that. One connection is served at a
time, and a client has ``CLIENT_TIMEOUT`` seconds to send its request; the answer closes
the connection. Any path but ``/metrics`` is 404, any method but GET and HEAD 405.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("agent.metrics")

MAX_REQUEST_BYTES = 8192
CLIENT_TIMEOUT = 5.0
"""Seconds a client has to send its request: one connection is served at a time."""


class MetricsServer:
    """Serves ``GET /metrics`` on one listening socket from one daemon thread."""

    def __init__(
        self, address: tuple[str, int], render_text: Callable[[], str], *, content_type: str
    ) -> None:
        self._render = render_text
        self._content_type = content_type
        self._socket = _listen(address)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The address it listens on (the port chosen when 0 was asked for)."""
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; a scrape in progress is cut off."""
        self._stopping = True
        try:
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._socket.close()
        self._thread.join(CLIENT_TIMEOUT + 1.0)

    def _serve(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                if self._stopping:
                    return
                time.sleep(0.1)  # out of file descriptors, say: try again
                continue
            try:
                conn.settimeout(CLIENT_TIMEOUT)
                self._answer(conn)
            except Exception as err:  # one bad client never stops the endpoint
                log.debug("metrics: connection failed: %s: %s", type(err).__name__, err)
            finally:
                conn.close()

    def _answer(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > MAX_REQUEST_BYTES:
                _respond(conn, 431, "request header too large\n")
                return
        parts = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            _respond(conn, 400, "bad request\n")
            return
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target != b"/metrics":
            _respond(conn, 404, "not found: the agent serves GET /metrics only\n")
            return
        if method not in (b"GET", b"HEAD"):
            _respond(conn, 405, "method not allowed: GET /metrics\n",
                     extra="Allow: GET, HEAD\r\n")
            return
        try:
            body = self._render()
        except Exception:
            log.exception("metrics: cannot render the metrics")
            _respond(conn, 500, "the metrics could not be rendered; see the agent's log\n")
            return
        _respond(conn, 200, body, content_type=self._content_type, head_only=method == b"HEAD")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 500: "Internal Server Error"}


def _respond(
    conn: socket.socket,
    code: int,
    body: str,
    *,
    content_type: str = "text/plain; charset=utf-8",
    extra: str = "",
    head_only: bool = False,
) -> None:
    data = body.encode()
    head = (f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n").encode()
    conn.sendall(head if head_only else head + data)


def _listen(address: tuple[str, int]) -> socket.socket:
    host, port = address
    # ASCII bytes: a str host would load the idna codec (docs/agent.md, "Memory").
    infos = socket.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock
