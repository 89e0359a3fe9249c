"""`make run`: the collector and an agent come up and this machine appears with its disk
results within two minutes; Ctrl-C stops both."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "deploy" / "quickstart.py"


def test_make_run_shows_this_machine_with_its_disks(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, str(QUICKSTART), "--port", str(port), "--var", str(tmp_path / "var")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    host = socket.getfqdn()
    login_file = tmp_path / "var" / "login"
    checks: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(c["check"] == "disk" for c in checks):
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/hosts/{host}", timeout=2,
                                   auth=_login(login_file))
                if answer.status_code == 200:
                    checks = answer.json()["checks"]
            except httpx.HTTPError:
                pass
            time.sleep(1)
        disk = [c for c in checks if c["check"] == "disk"]
        assert disk, f"no disk results within 2 minutes:\n{(tmp_path / 'run.log').read_text()}"
        assert any(c["target"] == "/" for c in disk)
        assert all(c["status_name"] in ("OK", "WARNING", "CRITICAL", "UNKNOWN") for c in disk)
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/hosts", timeout=5,
                           auth=_login(login_file)).json()
        assert [h["fqdn"] for h in listed] == [host]
        printed = (tmp_path / "run.log").read_text()
        assert f"http://127.0.0.1:{port}/" in printed
        name, password = _login(login_file)
        assert f"{name} / {password}" in printed  # the login is printed with the address
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as browser:
            anonymous = browser.get("/")
            assert anonymous.status_code == 303
            assert anonymous.headers["location"] == "/login?next=%2F"
            logged = browser.post("/login", data={"name": name, "password": password})
            assert logged.status_code == 303, logged.text
            page = browser.get("/hosts")
            assert page.status_code == 200 and host in page.text
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(30)
        log.close()
    assert code == 0
    with socket.socket() as s:  # nobody listens any more (TIME_WAIT leftovers are fine)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def _login(login_file: Path) -> tuple[str, str]:
    """The dashboard login ``make run`` made (``name:password`` in var/login)."""
    if not login_file.exists():
        return ("", "")
    name, _, password = login_file.read_text().strip().partition(":")
    return (name, password)
