"""The agent's HTTP client against real servers on loopback: the standard library's HTTP
server, a TLS server, and a scripted one that writes the answers a test needs byte by byte."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.config import CollectorSettings
from agent.sender import Sender, make_client
from agent.spool import Spool
from agent.transport import (
    Client,
    ConnectError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Response,
    Timeout,
    TransportError,
    WriteError,
    tls_context,
)
from checks.config import Seconds
from checks.result import CheckResult, Status
from tests.support.tls import encrypted_copy, issue_client_certificate, make_ca, self_signed


class Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[dict[str, Any]]
    connections: set[tuple[str, int]]
    delay: float = 0.0
    status: int = 202
    hang_up: bool = False
    """Close the connection without answering."""
    close_after_answer: bool = False
    """Close the connection after answering without saying so, as an idle timeout does."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.connections.add(self.client_address)
        self.server.received.append({"headers": dict(self.headers), "body": json.loads(body)})
        time.sleep(self.server.delay)
        if self.server.hang_up:
            self.close_connection = True
            return
        answer = json.dumps({"batch_id": self.server.received[-1]["body"].get("batch_id"),
                             "accepted": 1, "duplicate": False}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.server.status == 307:
            self.send_header("Location", "/elsewhere")
        self.end_headers()
        self.wfile.write(answer)
        self.close_connection = self.server.close_after_answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.received, srv.connections = [], set()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def settings(url: str, **overrides: Any) -> CollectorSettings:
    return CollectorSettings(url=url, token="t0k3n", timeout=Seconds(2), **overrides)


def test_pushes_reach_a_real_server_over_one_kept_alive_connection(
    server: Server, tmp_path: Path
) -> None:
    spool = Spool(tmp_path)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sender = Sender(spool, settings(url, batch_max_results=2), host="db1.example.net",
                    token=lambda: "t0k3n", agent={"version": "0.1.0"})
    for i in range(5):
        spool.add(CheckResult("disk", f"/{i}", Status.OK, "fine"), type_name="disk")
    assert sender.push_pending() is True
    sender.close()
    assert len(spool) == 0
    assert [len(r["body"]["results"]) for r in server.received] == [2, 2, 1]
    assert len(server.connections) == 1  # kept alive between batches
    headers = server.received[0]["headers"]
    assert headers["Authorization"] == "Bearer t0k3n"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert headers["User-Agent"] == "watchkeeper-agent/0.1.0"


def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(ConnectError):
        client.post(f"http://127.0.0.1:{port}/api/v1/results", content=b"{}")
    client.close()


def test_a_slow_answer_is_a_read_timeout(server: Server) -> None:
    server.delay = 1.0
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url))
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        client.post(f"{url}/api/v1/results", content=b"{}", timeout=0.3)
    assert time.monotonic() - started < 0.9
    server.delay = 0.0
    assert client.post(f"{url}/api/v1/results", content=b"{}").status_code == 202
    client.close()


def test_a_kept_alive_connection_the_server_closed_is_replaced_once(server: Server) -> None:
    server.close_after_answer = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url))
    assert client.post(f"{url}/api/v1/results", content=b"{}").status_code == 202
    time.sleep(0.2)  # the server has closed the connection the client keeps
    assert client.post(f"{url}/api/v1/results", content=b"{}").status_code == 202
    client.close()
    assert len(server.received) == 2 and len(server.connections) == 2


def test_a_fresh_connection_closed_without_an_answer_is_not_retried(server: Server) -> None:
    server.hang_up = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url))
    with pytest.raises(RemoteProtocolError):
        client.post(f"{url}/api/v1/results", content=b"{}")
    client.close()
    assert len(server.received) == 1


def test_a_redirect_is_answered_not_followed(server: Server) -> None:
    server.status = 307
    url = f"http://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url))
    answer = client.post(f"{url}/api/v1/results", content=b"{}")
    client.close()
    assert (answer.status_code, answer.reason_phrase) == (307, "Temporary Redirect")
    assert answer.headers.get("location") == "/elsewhere"
    assert answer.json()["accepted"] == 1
    assert len(server.received) == 1


def test_timeouts_and_default_headers_are_given_to_the_transport() -> None:
    sent: list[Request] = []

    def transport(request: Request) -> Response:
        sent.append(request)
        return Response(202)

    url = "http://collector.test:8080"
    client = make_client(CollectorSettings(url=url, token="t", timeout=Seconds(30)), transport)
    client.post(f"{url}/api/v1/results", content=b"{}", headers={"Content-Type": "x/y"})
    client.post(f"{url}/api/v1/results", content=b"{}", timeout=5)
    assert sent[0].timeout == Timeout(connect=10, read=30)  # connect: at most 10 s
    assert sent[1].timeout == Timeout(connect=5, read=5)  # a per-request budget: both
    assert sent[0].headers["user-agent"] == "watchkeeper-agent/0.1.0"
    assert sent[0].headers["content-type"] == "x/y"


@pytest.fixture
def tls_server(server: Server, tmp_path: Path, request: pytest.FixtureRequest
               ) -> tuple[Server, Path]:
    cert, key = self_signed(tmp_path, getattr(request, "param", "IP:127.0.0.1"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server, cert


def test_tls_verifies_the_collector_with_the_configured_ca(
    tls_server: tuple[Server, Path]
) -> None:
    server, cert = tls_server
    url = f"https://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url, ca_file=str(cert)))
    assert client.post(f"{url}/api/v1/results", content=b"{}").status_code == 202
    client.close()


def test_tls_refuses_a_collector_nobody_trusts(tls_server: tuple[Server, Path]) -> None:
    server, _ = tls_server
    url = f"https://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url))  # system trust store: the self-signed cert is unknown
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.post(f"{url}/api/v1/results", content=b"{}")
    client.close()
    assert server.received == []


@pytest.mark.parametrize("tls_server", ["DNS:collector.example.net"], indirect=True)
def test_tls_refuses_a_certificate_for_another_name(tls_server: tuple[Server, Path]) -> None:
    server, cert = tls_server  # trusted, but issued to collector.example.net
    url = f"https://127.0.0.1:{server.server_address[1]}"
    client = make_client(settings(url, ca_file=str(cert)))
    with pytest.raises(ConnectError, match=r"CERTIFICATE_VERIFY_FAILED.*mismatch"):
        client.post(f"{url}/api/v1/results", content=b"{}")
    client.close()
    assert server.received == []


@pytest.fixture
def mtls_server(server: Server, tmp_path: Path) -> tuple[Server, Path, tuple[Path, Path]]:
    """A TLS server that requires a client certificate from the agents' CA: the server, the
    CA to trust for its certificate, and a client certificate and key from the agents' CA."""
    cert, key = self_signed(tmp_path / "server")
    agents_ca = make_ca(tmp_path / "agents-ca", "watchkeeper agents")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=agents_ca[0])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server, cert, issue_client_certificate(agents_ca, tmp_path / "host", "db1.example.net")


def _push_one(server: Server, spool_dir: Path, **tls: Any) -> tuple[bool, Spool]:
    """One result pushed by the agent's sender with the ``tls`` settings: whether the push
    succeeded, and the spool."""
    spool = Spool(spool_dir)
    spool.add(CheckResult("disk", "/", Status.OK, "fine"), type_name="disk")
    url = f"https://127.0.0.1:{server.server_address[1]}"
    sender = Sender(spool, settings(url, **tls), host="db1.example.net",
                    token=lambda: "t0k3n", agent={"version": "0.1.0"})
    try:
        return sender.push_pending(), spool
    finally:
        sender.close()


def test_a_collector_that_requires_a_client_certificate_gets_the_agents(
    mtls_server: tuple[Server, Path, tuple[Path, Path]], tmp_path: Path
) -> None:
    server, ca, (cert, key) = mtls_server
    pushed, spool = _push_one(server, tmp_path / "spool", ca_file=str(ca),
                              client_cert_file=str(cert), client_key_file=str(key))
    assert pushed is True and len(spool) == 0
    assert [len(r["body"]["results"]) for r in server.received] == [1]


def test_a_client_certificate_and_its_key_in_one_file_are_presented(
    mtls_server: tuple[Server, Path, tuple[Path, Path]], tmp_path: Path
) -> None:
    server, ca, (cert, key) = mtls_server
    both = tmp_path / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    pushed, spool = _push_one(server, tmp_path / "spool", ca_file=str(ca),
                              client_cert_file=str(both))
    assert pushed is True and len(spool) == 0
    assert len(server.received) == 1


def test_without_a_client_certificate_the_push_is_refused_and_the_result_kept(
    mtls_server: tuple[Server, Path, tuple[Path, Path]], tmp_path: Path
) -> None:
    server, ca, _ = mtls_server
    pushed, spool = _push_one(server, tmp_path / "spool", ca_file=str(ca))
    assert pushed is False and len(spool) == 1
    assert server.received == []


def test_a_client_certificate_from_another_ca_is_refused(
    mtls_server: tuple[Server, Path, tuple[Path, Path]], tmp_path: Path
) -> None:
    server, ca, _ = mtls_server
    cert, key = issue_client_certificate(make_ca(tmp_path / "other-ca", "someone else"),
                                         tmp_path / "stranger", "db1.example.net")
    client = make_client(settings(f"https://127.0.0.1:{server.server_address[1]}",
                                  ca_file=str(ca), client_cert_file=str(cert),
                                  client_key_file=str(key)))
    url = f"https://127.0.0.1:{server.server_address[1]}/api/v1/results"
    # TLS 1.3: the server's alert (unknown CA) may come after the client's handshake is
    # over, as a closed connection; either way no request reaches the server.
    with pytest.raises(TransportError):
        client.post(url, content=b"{}")
    client.close()
    assert server.received == []


def test_an_encrypted_client_key_is_refused_not_prompted_for(tmp_path: Path) -> None:
    """OpenSSL would ask for the passphrase on the terminal; a daemon has nobody to ask."""
    ca = make_ca(tmp_path / "ca", "watchkeeper agents")
    cert, key = issue_client_certificate(ca, tmp_path / "host", "db1.example.net")
    encrypted = encrypted_copy(key, tmp_path / "encrypted-key.pem")
    with pytest.raises(ValueError, match="is encrypted"):
        tls_context(ca_file=str(ca[0]), client_cert_file=str(cert),
                    client_key_file=str(encrypted))


_HEAVY = ("ssl", "_ssl", "http.client", "email", "encodings.idna", "unicodedata")


def _post_in_a_fresh_agent(url: str, ca_file: Path | None = None) -> tuple[str, str]:
    """POST once with the agent's client in a new interpreter: the answer's status and the
    heavy modules that process then held."""
    code = (
        "import sys, agent.cli, agent.sender\n"
        "from agent.config import CollectorSettings\n"
        "from checks.config import Seconds\n"
        "url, ca = sys.argv[1], sys.argv[2] or None\n"
        "client = agent.sender.make_client(CollectorSettings(url=url, timeout=Seconds(5),"
        " ca_file=ca))\n"
        "print(client.post(url + '/api/v1/results', content=b'{}').status_code)\n"
        f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
           "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code, url, str(ca_file or "")],
                          capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    status, modules = done.stdout.split("\n")[:2]
    return status, modules


def test_an_http_collector_costs_no_tls_and_no_idna_memory(server: Server) -> None:
    """ssl with libssl and libcrypto is 3.9 MB resident, http.client's email package 1 MB,
    the idna codec 0.3 MB: an agent posting to an http:// collector loads none of them."""
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert _post_in_a_fresh_agent(url) == ("202", "[]")
    assert len(server.received) == 1


@pytest.mark.parametrize("tls_server", ["DNS:localhost"], indirect=True)
def test_an_https_collector_by_name_loads_ssl_but_not_the_idna_codec(
    tls_server: tuple[Server, Path]
) -> None:
    """The server name goes to the TLS handshake (SNI, certificate check) as ASCII bytes."""
    server, cert = tls_server
    url = f"https://localhost:{server.server_address[1]}"
    assert _post_in_a_fresh_agent(url, cert) == ("202", "['_ssl', 'ssl']")
    assert len(server.received) == 1


# -- a scripted server: the answers a test needs, byte by byte -----------------------------------


Reply = Callable[[socket.socket], bool]
"""Answers one request on a connection; says whether to keep the connection open."""


def answer(data: bytes, *, close: bool = False) -> Reply:
    """Write ``data``, then close the connection (without saying so) or keep it open."""

    def reply(conn: socket.socket) -> bool:
        conn.sendall(data)
        return not close

    return reply


def hang_up(conn: socket.socket) -> bool:
    """Close the connection without answering."""
    return False


def never_answer(conn: socket.socket) -> bool:
    """Wait, answering nothing, until the client goes away."""
    conn.recv(1)
    return False


def endless(start: bytes, repeat: bytes) -> Reply:
    """Write ``start``, then ``repeat`` over and over until the client goes away."""

    def reply(conn: socket.socket) -> bool:
        conn.sendall(start)
        while True:
            conn.sendall(repeat * 64)

    return reply


class ScriptedServer:
    """A TCP server on loopback that reads whole requests and gives the n-th request the
    n-th reply (the last one repeats)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self._replies = replies
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes its thread, which closes it
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            try:
                while request := self._read_request(reader):
                    self.requests.append(request)
                    if not self._replies[min(len(self.requests), len(self._replies)) - 1](conn):
                        return
            except OSError:
                return

    @staticmethod
    def _read_request(reader: Any) -> bytes:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()
            if not line:
                return b""
            head += line
        length = re.search(rb"(?im)^content-length: *([0-9]+)", head)
        return head + (reader.read(int(length.group(1))) if length else b"")


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*replies: Reply) -> ScriptedServer:
        servers.append(ScriptedServer(list(replies)))
        return servers[-1]

    yield start
    for started in servers:
        started.close()


@pytest.fixture
def client() -> Iterator[Client]:
    client = Client(timeout=Timeout(connect=2, read=2))
    yield client
    client.close()


ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def test_a_request_says_host_length_and_identity_and_the_answer_has_its_reason(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(b"HTTP/1.1 202 Stored For Later\r\nContent-Length: 2\r\n"
                             b"X-Request-Id: r-1\r\n\r\n{}"))
    got = client.post(f"{server.url}/api/v1/results?dry=1", content=b'{"a": 1}',
                      headers={"Authorization": "Bearer t0k3n"})
    assert (got.status_code, got.reason_phrase, got.content) == (202, "Stored For Later", b"{}")
    assert got.headers["x-request-id"] == "r-1"
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/v1/results?dry=1 HTTP/1.1"
    assert sorted(lines[1:]) == sorted([
        f"Host: {server.url.removeprefix('http://')}".encode(), b"Content-Length: 8",
        b"Accept-Encoding: identity", b"Authorization: Bearer t0k3n"])
    assert body == b'{"a": 1}'


def test_an_answer_without_a_reason_phrase_gets_the_standard_one(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(b"HTTP/1.1 429\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n"))
    got = client.post(server.url, content=b"{}")
    assert (got.status_code, got.reason_phrase, got.headers["retry-after"]) == (
        429, "Too Many Requests", "7")


def test_several_posts_share_one_kept_alive_connection(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(ACCEPTED))
    assert [client.post(server.url, content=b"{}").status_code for _ in range(5)] == [202] * 5
    assert (len(server.requests), server.connections) == (5, 1)


def test_a_chunked_answer_is_read_whole_trailers_and_all(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5;note=first\r\nhello\r\n6\r\n world\r\n0\r\n"
                             b"X-Checksum: 5eb63bbbe0\r\n\r\n"))
    assert client.post(server.url, content=b"{}").content == b"hello world"
    assert client.post(server.url, content=b"{}").content == b"hello world"
    assert server.connections == 1  # the framing was right: the connection carried on


def test_an_answer_without_a_length_lasts_until_the_server_closes(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                             b"all of it, however long", close=True))
    assert client.post(server.url, content=b"{}").text == "all of it, however long"
    assert client.post(server.url, content=b"{}").text == "all of it, however long"
    assert (len(server.requests), server.connections) == (2, 2)


@pytest.mark.parametrize("status_and_headers", [
    b"HTTP/1.0 202 Accepted\r\n", b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n",
], ids=["HTTP/1.0", "Connection: close"])
def test_an_answer_that_announces_the_end_closes_the_connection(
    scripted: Callable[..., ScriptedServer], client: Client, status_and_headers: bytes
) -> None:
    # The server keeps the connection open: only the client can close it.
    server = scripted(answer(status_and_headers + b"Content-Length: 2\r\n\r\n{}"))
    assert client.post(server.url, content=b"{}").status_code == 202
    assert client.post(server.url, content=b"{}").status_code == 202
    assert (len(server.requests), server.connections) == (2, 2)


def test_100_continue_before_the_answer_is_skipped(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                             b"Link: </style.css>\r\n\r\n" + ACCEPTED))
    got = client.post(server.url, content=b"{}")
    assert (got.status_code, got.reason_phrase, got.content) == (202, "Accepted", b"{}")
    assert "link" not in got.headers
    assert client.post(server.url, content=b"{}").status_code == 202
    assert server.connections == 1


def test_a_kept_alive_connection_closed_by_the_server_is_retried_once_on_a_new_one(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    # Answers, then closes without a word (an idle timeout); then a server that hangs up.
    server = scripted(answer(ACCEPTED, close=True), hang_up)
    assert client.post(server.url, content=b"{}").status_code == 202
    time.sleep(0.1)
    with pytest.raises(RemoteProtocolError, match="without an answer"):
        client.post(server.url, content=b"{}")
    assert (len(server.requests), server.connections) == (2, 2)  # no third try


def test_a_server_that_never_answers_is_a_read_timeout(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(never_answer)
    started = time.monotonic()
    with pytest.raises(ReadTimeout):
        client.post(server.url, content=b"{}", timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0


GARBAGE = {
    "not HTTP": (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1.x status line: b'SSH-2.0"),
    "status code": (b"HTTP/1.1 2x2 Accepted\r\n\r\n", "not an HTTP/1.x status line"),
    "cut status line": (b"HTTP/1.1 202 Acc", "closed in the middle of the status line"),
    "long status line": (b"HTTP/1.1 202 " + b"A" * 20_000 + b"\r\n\r\n",
                         "status line longer than 16384 bytes"),
    "header line": (b"HTTP/1.1 202 Accepted\r\nno colon here\r\n\r\n",
                    "malformed header line: b'no colon here'"),
    "content length": (b"HTTP/1.1 202 Accepted\r\nContent-Length: 2, 3\r\n\r\n{}",
                       "invalid Content-Length: '2, 3'"),
    "short body": (b"HTTP/1.1 202 Accepted\r\nContent-Length: 10\r\n\r\n{}",
                   "closed after 2 of the 10 bytes of the body"),
    "chunk size": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                   "malformed chunk size line: b'zz'"),
    "transfer coding": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                        "unsupported Transfer-Encoding: gzip"),
    "upgrade": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
                "101 Switching Protocols"),
}


@pytest.mark.parametrize(("garbage", "complaint"), GARBAGE.values(), ids=GARBAGE.keys())
def test_an_answer_that_is_not_http_is_a_protocol_error_that_says_why(
    scripted: Callable[..., ScriptedServer], client: Client, garbage: bytes, complaint: str
) -> None:
    server = scripted(answer(garbage, close=True))
    with pytest.raises(RemoteProtocolError, match=re.escape(complaint)):
        client.post(server.url, content=b"{}")


ENDLESS = {
    "header fields": (b"HTTP/1.1 200 OK\r\n", b"X-Filler: 0123456789\r\n",
                      "more than 100 fields in the header block"),
    "a header line": (b"HTTP/1.1 200 OK\r\nX-Filler: ", b"0123456789",
                      "header line longer than 16384 bytes"),
    "interim answers": (b"", b"HTTP/1.1 100 Continue\r\n\r\n",
                        "more than 10 interim (1xx) answers"),
    "trailer fields": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
                       b"X-Filler: 0123456789\r\n", "more than 100 fields in the trailer block"),
}


@pytest.mark.parametrize(("start", "repeat", "complaint"), ENDLESS.values(), ids=ENDLESS.keys())
def test_an_endless_answer_head_is_cut_off_at_its_limit(
    scripted: Callable[..., ScriptedServer], client: Client, start: bytes, repeat: bytes,
    complaint: str,
) -> None:
    server = scripted(endless(start, repeat))
    started = time.monotonic()
    with pytest.raises(RemoteProtocolError, match=re.escape(complaint)):
        client.post(server.url, content=b"{}")
    assert time.monotonic() - started < 1.0  # long before the 2 s read timeout


def test_a_header_that_would_split_the_request_is_refused_before_sending(
    scripted: Callable[..., ScriptedServer], client: Client
) -> None:
    server = scripted(answer(ACCEPTED))
    with pytest.raises(WriteError, match="invalid value of header X-Note"):
        client.post(server.url, content=b"{}",
                    headers={"X-Note": "a\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1"})
    assert client.post(server.url, content=b"{}").status_code == 202
    assert len(server.requests) == 1
