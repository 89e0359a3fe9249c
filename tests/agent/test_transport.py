"""The agent's HTTP client (http.client) against a real HTTP server on loopback."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.config import CollectorSettings
from agent.sender import Sender, make_client
from agent.spool import Spool
from agent.transport import (
    ConnectError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Response,
    Timeout,
)
from checks.config import Seconds
from checks.result import CheckResult, Status


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


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(server: Server, tmp_path: Path) -> tuple[Server, Path]:
    cert, key = _self_signed(tmp_path)
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
