"""Start a private Request Tracker 5 for tests, and a proxy that breaks its connections.

RT runs from Debian's ``request-tracker5`` with ``rt5-db-sqlite``: a site configuration
directory of its own (``RT_SITE_CONFIG_DIR``, which replaces the machine's
``/etc/request-tracker5/RT_SiteConfig.d``), an SQLite database in the working directory,
mail written to files instead of sent, and ``rt-server`` on a free loopback port. The
database is loaded with ``deploy/rt/watchkeeper.initialdata`` (what a customer's RT
administrator loads) and then ``rt_staff.initialdata`` (test-only: the staff user
``alice`` and a password for ``watchkeeper``).

A missing RT is an error (``RtUnavailable``) naming the Debian packages, never a reason
to skip.

``FaultProxy`` stands between a client and RT: it can forward a request and then close
the client's connection without an answer (the network failed after RT acted), or refuse
every connection while it is down.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.rt.client import RtClient
from collector.settings import RequestTrackerSettings
from tests.support.ports import free_port

SETUP_DATABASE = Path("/usr/sbin/rt-setup-database-5")
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
REPO = Path(__file__).resolve().parents[2]
WATCHKEEPER_INITIALDATA = REPO / "deploy" / "rt" / "watchkeeper.initialdata"
STAFF_INITIALDATA = Path(__file__).with_name("rt_staff.initialdata")

ROOT_PASSWORD = "root-secret"
CONNECTOR_USER = "watchkeeper"
CONNECTOR_PASSWORD = "watchkeeper-secret"  # set by rt_staff.initialdata
STAFF_USER = "alice"
STAFF_PASSWORD = "alice-secret"
KEY_FIELD = "Watchkeeper Key"

_PACKAGES = "install the Debian packages 'request-tracker5' and 'rt5-db-sqlite'"


class RtUnavailable(RuntimeError):
    """Request Tracker is not installed, or it would not set up or start."""


def _require_rt() -> None:
    for path in (SETUP_DATABASE, RT_SERVER):
        if not path.exists():
            raise RtUnavailable(f"{path} not found; {_PACKAGES}")


def _site_config(workdir: Path, port: int) -> str:
    """RT_SiteConfig for a private instance; every path is inside ``workdir``."""
    return f"""\
Set($rtname, 'rt.test.local');
Set($Organization, 'test.local');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{workdir / "rt.db"}');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($MasonDataDir, '{workdir / "mason"}');
Set($MasonSessionDir, '{workdir / "sessions"}');
Set($LogToSTDERR, 'warning');
Set($LogToSyslog, undef);
# Mail goes to files under /tmp (RT's "testfile"), never to a mail server.
Set($MailCommand, 'testfile');
Set($CorrespondAddress, 'rt@test.local');
Set($CommentAddress, 'rt-comment@test.local');
# Not UTC, so that a search date written in the wrong time zone shows: the connector
# user has its own (UTC, from watchkeeper.initialdata).
Set($Timezone, 'America/New_York');
# RT checks a token or password with bcrypt on every REST2 call: at RT's default cost
# (12) that is about 0.5 s of CPU per call. The tests' RT uses the cheapest cost.
Set($BcryptCost, 4);
# Priority as the number watchkeeper sends (80), not RT 5's "High"/"Medium"/"Low".
Set($EnablePriorityAsString, 0);
1;
"""


@dataclass
class RtServer:
    """A private RT: its working directory, port and ``rt-server`` process."""

    workdir: Path
    port: int
    root_password: str = ROOT_PASSWORD
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_in: float = 0.0  # seconds from the first setup step until RT answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_dir(self) -> Path:
        return self.workdir / "conf.d"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def env(self) -> dict[str, str]:
        """The environment of RT's programs: this instance's configuration only."""
        return {**os.environ, "RT_SITE_CONFIG_DIR": str(self.config_dir)}

    def alive(self) -> bool:
        """Whether ``rt-server`` runs (not whether it answers yet)."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of RT's log (its stderr), for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no RT log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = 60.0) -> None:
        """Start ``rt-server`` on this port and database; return once it answers."""
        if self.alive():
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(RT_SERVER), "--port", str(self.port), "--host", "127.0.0.1",
                 "--max-workers", "2"],
                stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                start_new_session=True,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RtUnavailable(f"rt-server exited:\n{self.log_tail()}")
            try:
                # /REST/2.0/rt needs no rights; any HTTP answer means a worker serves.
                httpx.get(f"{self.url}/REST/2.0/rt", timeout=2.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RtUnavailable(f"rt-server did not answer within {timeout:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the master (its workers exit with it); wait until the port is free."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Workers that outlived the master would keep answering on the port.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None
        _wait_port_closed(self.port)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again on the same port and database."""
        self.stop()
        self.start(timeout)


def _wait_port_closed(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)


def _run_setup(server: RtServer, *args: str, log_name: str) -> None:
    log = server.workdir / log_name
    with log.open("wb") as out:
        proc = subprocess.run(
            [str(SETUP_DATABASE), *args], stdout=out, stderr=subprocess.STDOUT,
            env=server.env(), timeout=180, check=False,
        )
    if proc.returncode != 0:
        raise RtUnavailable(
            f"rt-setup-database-5 {' '.join(args)} failed ({proc.returncode}):\n"
            + log.read_text(errors="replace")[-3000:])


def load_initialdata(server: RtServer, datafile: Path) -> None:
    """Load an initialdata file the way an RT administrator does (``--action insert``)."""
    _run_setup(server, "--action", "insert", "--datafile", str(datafile),
               log_name=f"insert-{datafile.stem}.log")


def start_rt(workdir: Path) -> RtServer:
    """Set up and start a private RT under ``workdir``; it answers when this returns.

    Users: ``root`` (``ROOT_PASSWORD``), the connector ``watchkeeper``
    (``CONNECTOR_PASSWORD``, or a token from ``make_token``) and the staff user ``alice``
    (``STAFF_PASSWORD``). The ticket custom field ``Watchkeeper Key`` applies to every queue.
    """
    _require_rt()
    began = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("conf.d", "mason", "sessions"):
        (workdir / sub).mkdir(exist_ok=True)
    server = RtServer(workdir, free_port())
    (server.config_dir / "test.pm").write_text(_site_config(workdir, server.port))
    password_file = workdir / "rootpw"
    password_file.write_text(server.root_password + "\n")
    _run_setup(server, "--action", "init", "--root-password-file", str(password_file),
               log_name="init.log")
    load_initialdata(server, WATCHKEEPER_INITIALDATA)
    load_initialdata(server, STAFF_INITIALDATA)
    server.start()
    server.started_in = time.monotonic() - began
    return server


_TOKEN_SCRIPT = r"""
use strict; use warnings;
use RT; RT::LoadConfig(); RT::Init();
my $user = RT::CurrentUser->new; $user->Load($ARGV[0]) or die "no RT user $ARGV[0]\n";
# As RT's system user: creating a token for someone needs the ManageAuthTokens right,
# which the connector does not have (an administrator makes its token).
my ($id, $msg, $token) = RT::AuthToken->new(RT->SystemUser)->Create(
    Owner => $user->id, Description => $ARGV[1]);
die "$msg\n" unless $id;
print $token;
"""


def rt_client(url: str, user: str, **secret: str) -> RtClient:
    """The connector's REST2 client as ``user`` (``token=`` or ``password=``): how the
    tests act in RT as the connector or as staff. Close it."""
    return RtClient(RequestTrackerSettings.model_validate({"url": url, "user": user,
                                                           **secret}))


def make_token(server: RtServer, user: str, description: str = "watchkeeper tests") -> str:
    """An authentication token of an RT user, made with RT's Perl API (RT 5.0 has no REST
    call for it)."""
    proc = subprocess.run(
        ["perl", f"-I{RT_LIB}", "-e", _TOKEN_SCRIPT, user, description],
        capture_output=True, text=True, env=server.env(), timeout=60, check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RtUnavailable(f"cannot make a token for {user}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


def rt_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtServer]:
    """The body of a session-scoped fixture: one RT for the session, stopped at the end.

    A missing RT fails (pytest.fail naming the packages); the conftest wraps it with
    ``@pytest.fixture(scope="session")``.
    """
    try:
        server = start_rt(tmp_path_factory.mktemp("rt"))
    except RtUnavailable as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


# --- FaultProxy -------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
               "upgrade", "content-length"}


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # Down: the server closes the accepted connection at once, before any byte.
        return not self.proxy.is_down


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass

    def _forward(self) -> None:
        proxy = self.server.proxy
        if proxy.is_down:
            self.close_connection = True
            return
        path_only = self.path.split("?", 1)[0]
        proxy.count(self.command, path_only)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            self.close_connection = True
            return
        finally:
            upstream.close()
        if proxy.take_drop(self.command, path_only):
            # RT has acted on the request; the client never hears of it.
            self.close_connection = True
            return
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward


class FaultProxy:
    """An HTTP proxy on a loopback port in a thread, forwarding to RT on ``target_port``.

    ``drop_response_of(method, path)`` forwards the next matching request(s) to RT and then
    closes the client's connection without an answer; ``down()`` refuses (closes at once)
    every connection until ``up()``. ``requests[(method, path)]`` counts what reached it
    (path without its query string; refused connections are not counted).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requests: Counter[tuple[str, str]] = Counter()
        self.is_down = False
        self._drops: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_response_of(self, method: str, path: str, times: int = 1) -> None:
        """Forward the next ``times`` requests ``method path`` but never answer them."""
        with self._lock:
            self._drops[(method.upper(), path)] = times

    def take_drop(self, method: str, path: str) -> bool:
        with self._lock:
            left = self._drops.get((method, path), 0)
            if left <= 0:
                return False
            self._drops[(method, path)] = left - 1
            return True

    def count(self, method: str, path: str) -> None:
        with self._lock:
            self.requests[(method, path)] += 1

    def down(self) -> None:
        """Refuse connections: each is closed as soon as it is accepted."""
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
