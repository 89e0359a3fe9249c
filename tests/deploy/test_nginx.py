"""The nginx sample (deploy/nginx/watchkeeper.conf) in front of a real collector.

The sample is rendered into a temporary directory with loopback ports and test
certificates in place of its addresses and paths, checked with ``nginx -t`` and run by a
real nginx (``-p``/``-c`` in the directory, never the machine's own configuration or
port 80). Through it:

- HTTPS reaches ``/healthz`` with HSTS, and a real agent pushes its results;
- the dashboard's login form works through the proxy (the collector sees the scheme and
  host the browser used, from the forwarded headers), and ``/metrics`` is not exposed;
- a host enrolls itself through the proxy, the collector's audit names the host's address
  (from X-Forwarded-For), and a run of wrong secrets from one address is cut off (429);
- plain HTTP moves the dashboard to HTTPS and refuses a push;
- the proxy's body limit equals the collector's ``[ingest] max_body_bytes``: a push of
  exactly that size reaches the collector, one byte more is refused in the collector's
  error shape;
- with the mutual-TLS lines on, a real agent's pushes are refused while it presents no
  client certificate, or one from another CA, and its spooled results are stored once it
  presents a certificate from the agents' CA; the dashboard still needs none.

A missing nginx fails naming the Debian package; nothing here skips.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.settings import IngestSettings
from tests.support.ports import free_port
from tests.support.processes import (
    Collector,
    Proc,
    agent_command,
    collector_command,
    wait_until,
)
from tests.support.tls import issue_client_certificate, make_ca, self_signed

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "nginx" / "watchkeeper.conf"
PUSH_PATH = "/api/v1/results"
CUSTOMER = "acme"
AGENT_HOST = "db-1.proxy.example"
PUSH_HOST = "web-1.proxy.example"
ENROLLING_HOST = "app-1.proxy.example"
MTLS_HOST = "cache-1.proxy.example"
USER, PASSWORD = "proxy-noc", "correct horse battery staple"
ENROLLMENT_SECRET = "enrollment-secret-of-the-proxy-tests"
# Requests come from this loopback address, not nginx's own 127.0.0.1: the collector must
# learn it from X-Forwarded-For.
CLIENT_ADDRESS = "127.0.0.2"


def nginx_binary() -> str:
    """The nginx program; a missing one fails the test, naming the Debian package."""
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail("nginx not found: install the Debian package 'nginx'")
    return path


# ------------------------------------------------------------------------------- nginx


@dataclass
class Proxy:
    """A running nginx made from the sample: its two loopback addresses and the CA to
    trust for its certificate."""

    https: str
    http: str
    ca: Path
    proc: Proc

    def client(self, cert: tuple[Path, Path] | None = None) -> httpx.Client:
        """An HTTPS client trusting the proxy, connecting from ``CLIENT_ADDRESS``,
        presenting ``cert`` when given."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        transport = httpx.HTTPTransport(verify=context, local_address=CLIENT_ADDRESS)
        return httpx.Client(base_url=self.https, transport=transport, timeout=10)


def render(sample: str, *, http_port: int, https_port: int, upstream_port: int,
           server_tls: tuple[Path, Path], agents_ca: Path | None) -> str:
    """The sample with loopback ports and test files in place of its placeholders;
    ``agents_ca`` turns the mutual-TLS lines on."""
    substitutions = {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        "/etc/watchkeeper/tls/proxy-fullchain.pem": str(server_tls[0]),
        "/etc/watchkeeper/tls/proxy-key.pem": str(server_tls[1]),
        "/etc/watchkeeper/tls/agents-ca.pem": str(agents_ca or "unused"),
    }
    text = sample
    for placeholder, value in substitutions.items():
        assert placeholder in text, f"the sample no longer has {placeholder!r}"
        text = text.replace(placeholder, value)
    # IPv4 loopback only: the IPv6 listeners go, the others move to free ports.
    text, ipv6 = re.subn(r"(?m)^\s*listen \[::\]:\d+[^;]*;\n", "", text)
    assert ipv6 == 2, "the sample should listen on IPv6 for both servers"
    for port, new in ((80, http_port), (443, https_port)):
        text, moved = re.subn(rf"(?m)^(\s*)listen {port}\b", rf"\g<1>listen 127.0.0.1:{new}",
                              text)
        assert moved == 1, f"the sample should have one 'listen {port}'"
    if agents_ca is not None:
        assert "#mtls " in text
        text = text.replace("#mtls ", "")
    return text


def main_config(directory: Path, site: Path) -> str:
    """A minimal nginx.conf around the site file, with every path under ``directory``
    (Debian's main file would include the site from /etc/nginx/sites-enabled)."""
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.getuid() == 0 else ""
    temp = "".join(f"    {kind}_temp_path {directory / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {directory / 'access.log'};\n{temp}"
        f"    include {site};\n"
        "}\n"
    )


def start_proxy(directory: Path, collector: Collector, *, server_tls: tuple[Path, Path],
                agents_ca: Path | None = None) -> Proxy:
    """Render the sample into ``directory``, check it with ``nginx -t``, start nginx."""
    nginx = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    site = directory / "watchkeeper.conf"
    site.write_text(render(SAMPLE.read_text(), http_port=http_port, https_port=https_port,
                           upstream_port=collector.port, server_tls=server_tls,
                           agents_ca=agents_ca))
    conf = directory / "nginx.conf"
    conf.write_text(main_config(directory, site))
    command = [nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    proc = Proc([*command, "-g", "daemon off;"], directory / "nginx.out").start()
    proxy = Proxy(https=f"https://127.0.0.1:{https_port}", http=f"http://127.0.0.1:{http_port}",
                  ca=server_tls[0], proc=proc)

    def answers() -> bool:
        if not proc.alive():
            raise AssertionError(f"nginx exited:\n{(directory / 'error.log').read_text()}")
        try:
            with proxy.client() as client:
                return client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, 15, f"nginx on {proxy.https}")
    return proxy


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Setup:
    collector: Collector
    server_tls: tuple[Path, Path]
    agent_token: str
    push_token: str
    mtls_token: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One collector behind every proxy here: plain HTTP on loopback, as the sample wants."""
    nginx_binary()
    workdir = tmp_path_factory.mktemp("collector")
    secret = workdir / "enrollment-secret"
    secret.write_text(ENROLLMENT_SECRET + "\n")
    collector = Collector(workdir, extra_config="[dashboard]\nsecure_cookie = true\n\n"
                          f'[enrollment]\nsecret_file = "{secret}"\n')
    agent_token = collector.enroll(CUSTOMER, AGENT_HOST)
    push_token = collector.enroll(CUSTOMER, PUSH_HOST)
    mtls_token = collector.enroll(CUSTOMER, MTLS_HOST)
    added = subprocess.run(
        collector_command("user", "add", USER, "--role", "noc", "--password-stdin",
                          "--config", str(collector.config)),
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    collector.start()
    try:
        yield Setup(collector, self_signed(workdir / "proxy-tls"), agent_token, push_token,
                    mtls_token)
    finally:
        collector.stop()


@pytest.fixture
def proxy(setup: Setup, tmp_path: Path) -> Iterator[Proxy]:
    proxy = start_proxy(tmp_path / "nginx", setup.collector, server_tls=setup.server_tls)
    try:
        yield proxy
    finally:
        proxy.proc.stop()


def batch(host: str, status: int = 0) -> dict[str, Any]:
    """A push of one disk result for ``host``, as its agent would send it."""
    now = time.time()
    result = {
        "id": str(uuid.uuid4()), "seq": 1, "type": "disk", "check": "disk", "target": "/srv",
        "status": status, "summary": "/srv 50.0% used", "metrics": [],
        "details": {"used_pct": 50.0}, "produced_at": now, "duration": 0.01,
        "status_changed": True,
    }
    return {"batch_id": str(uuid.uuid4()), "host": host,
            "agent": {"version": "0.1.0", "started_at": now - 60, "interval": 60.0},
            "sent_at": now, "results": [result]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def agent_config(workdir: Path, proxy: Proxy, host: str, token: str,
                 client_cert: tuple[Path, Path] | None = None) -> Path:
    """An agent configuration in ``workdir`` pushing through ``proxy`` as ``host``, often
    and with short backoffs, presenting ``client_cert`` when given."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token").write_text(token + "\n")
    certificate = "" if client_cert is None else (
        f'client_cert_file = "{client_cert[0]}"\nclient_key_file = "{client_cert[1]}"\n')
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nhost = "{host}"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{proxy.https}"\ntoken_file = "{workdir / "token"}"\n'
        f'ca_file = "{proxy.ca}"\n{certificate}push_interval = "0.3s"\n'
        'backoff_initial = "0.2s"\nbackoff_max = "0.5s"\n\n[checks.agent]\ninterval = "0.5s"\n'
    )
    return config


# ------------------------------------------------------------------------------- tests


def test_https_through_the_proxy_reaches_the_collector_and_an_agent_pushes_through_it(
    setup: Setup, proxy: Proxy, tmp_path: Path
) -> None:
    with proxy.client() as client:
        health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.headers["strict-transport-security"] == "max-age=63072000"

    workdir = tmp_path / "agent"
    config = agent_config(workdir, proxy, AGENT_HOST, setup.agent_token)
    agent = Proc(agent_command("run", "--config", str(config)), workdir / "agent.log").start()
    try:
        wait_until(lambda: setup.collector.get(f"/api/v1/hosts/{AGENT_HOST}").json()["checks"],
                   30, f"the agent's results at the collector\n{agent.tail()}")
    finally:
        agent.stop()
    checks = setup.collector.get(f"/api/v1/hosts/{AGENT_HOST}").json()["checks"]
    assert {c["check"] for c in checks} == {"agent"}
    assert "POST /api/v1/results HTTP/1.1\" 202" in (tmp_path / "nginx" / "access.log").read_text()


def test_the_dashboard_login_works_through_the_proxy_and_metrics_stay_inside(
    proxy: Proxy
) -> None:
    # The collector refuses a form whose Origin is not its own scheme and host: it passes
    # only when the proxy forwards the scheme (https) and the Host with its port.
    with proxy.client() as browser:
        login = browser.post("/login", data={"name": USER, "password": PASSWORD},
                             headers={"Origin": proxy.https})
        assert login.status_code == 303, login.text
        assert login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "secure" in cookie.lower() and "httponly" in cookie.lower()
        page = browser.get("/hosts")
        assert page.status_code == 200 and PUSH_HOST in page.text
        assert browser.get("/metrics").status_code == 403


def test_a_host_enrolls_through_the_proxy_which_limits_the_rate_of_attempts(
    setup: Setup, proxy: Proxy
) -> None:
    request = {"customer": CUSTOMER, "fqdn": ENROLLING_HOST}
    with proxy.client() as client:
        enrolled = client.post("/api/v1/enroll", json=request,
                               headers=bearer(ENROLLMENT_SECRET))
        assert enrolled.status_code == 201, enrolled.text
        pushed = client.post(PUSH_PATH, json=batch(ENROLLING_HOST),
                             headers=bearer(enrolled.json()["token"]))
        assert pushed.status_code == 202, pushed.text
        guesses = [client.post("/api/v1/enroll", json={**request, "fqdn": f"guess-{n}.example"},
                               headers=bearer(f"guessed-secret-number-{n:04d}"))
                   for n in range(70)]
    codes = [answer.status_code for answer in guesses]
    # A burst of 60 attempts (the enrollment included) reaches the collector, then one a
    # second: the rest are refused by the proxy.
    assert set(codes[:55]) == {401} and codes[-1] == 429, codes
    assert guesses[-1].json()["error"] == "too_many_requests"
    # The audit names the address the host came from, not the proxy's.
    audit = setup.collector.get("/api/v1/audit?kind=host_enrolled").json()
    entry = next(e for e in audit if ENROLLING_HOST in json.dumps(e))
    assert CLIENT_ADDRESS in entry["actor"], entry


def test_plain_http_moves_the_dashboard_to_https_and_refuses_a_push(
    setup: Setup, proxy: Proxy
) -> None:
    page = httpx.get(f"{proxy.http}/hosts?page=2", timeout=10)
    assert page.status_code == 301
    assert page.headers["location"] == "https://127.0.0.1/hosts?page=2"
    push = httpx.post(f"{proxy.http}{PUSH_PATH}", json=batch(PUSH_HOST),
                      headers=bearer(setup.push_token), timeout=10)
    assert push.status_code == 403
    assert push.json()["error"] == "https_required"


def test_the_proxy_body_limit_is_the_collectors(setup: Setup, proxy: Proxy) -> None:
    limit = IngestSettings().max_body_bytes
    size = re.search(r"(?m)^\s*client_max_body_size (\d+)m;", SAMPLE.read_text())
    assert size is not None and int(size.group(1)) * 1024 * 1024 == limit
    headers = {**bearer(setup.push_token), "Content-Type": "application/json"}
    with proxy.client() as client:
        # Exactly the limit: the collector reads it (and finds it is not a batch).
        at_limit = client.post(PUSH_PATH, content=b" " * limit, headers=headers)
        assert at_limit.status_code == 422, at_limit.text
        assert at_limit.json()["error"] == "invalid_payload"
        over = client.post(PUSH_PATH, content=b" " * (limit + 1), headers=headers)
    assert over.status_code == 413
    assert over.json()["error"] == "payload_too_large"


def test_mutual_tls_admits_only_agents_with_a_certificate_from_the_agents_ca(
    setup: Setup, tmp_path: Path
) -> None:
    agents_ca = make_ca(tmp_path / "agents-ca", "watchkeeper agents")
    trusted = issue_client_certificate(agents_ca, tmp_path / "trusted", MTLS_HOST)
    stranger = issue_client_certificate(make_ca(tmp_path / "other-ca", "someone else"),
                                        tmp_path / "stranger", MTLS_HOST)
    proxy = start_proxy(tmp_path / "nginx", setup.collector, server_tls=setup.server_tls,
                        agents_ca=agents_ca[0])
    access_log = tmp_path / "nginx" / "access.log"
    workdir = tmp_path / "agent"  # one state directory: the spool outlives each run

    def run_agent_until(client_cert: tuple[Path, Path] | None, done: str,
                        condition: Callable[[], bool]) -> str:
        """Run the agent with ``client_cert`` until ``condition()``; its log."""
        config = agent_config(workdir, proxy, MTLS_HOST, setup.mtls_token, client_cert)
        log = workdir / f"agent-{len(list(workdir.glob('agent-*.log')))}.log"
        agent = Proc(agent_command("run", "--config", str(config)), log).start()
        try:
            wait_until(condition, 30, f"{done}\n{agent.tail()}")
        finally:
            agent.stop()
        return log.read_text()

    def pushes_answered(status: int) -> bool:
        return f'"POST {PUSH_PATH} HTTP/1.1" {status} ' in access_log.read_text()

    def stored() -> list[dict[str, Any]]:
        checks: list[dict[str, Any]] = setup.collector.get(
            f"/api/v1/hosts/{MTLS_HOST}").json()["checks"]
        return checks

    try:
        # No certificate: the agents' location refuses the push; the results stay spooled.
        log = run_agent_until(None, "a push refused for want of a client certificate",
                              lambda: pushes_answered(403))
        assert "HTTP 403" in log and "client_certificate_required" in log, log
        # A certificate nginx cannot verify: nginx itself refuses the request (400).
        log = run_agent_until(stranger, "a push refused for a certificate of another CA",
                              lambda: pushes_answered(400))
        assert "HTTP 400" in log, log
        assert stored() == []
        assert not pushes_answered(202)

        # A certificate from the agents' CA: the spooled results and the new ones arrive.
        run_agent_until(trusted, "the agent's results at the collector",
                        lambda: bool(stored()))
        assert [check["check"] for check in stored()] == ["agent"]
        assert pushes_answered(202)

        # The dashboard and /healthz need no client certificate.
        with proxy.client() as browser:
            assert browser.get("/healthz").status_code == 200
            assert browser.get("/login").status_code == 200
    finally:
        proxy.proc.stop()
