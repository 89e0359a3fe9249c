"""The real thing: `watchkeeper-collector serve` as a process, over loopback HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str], cwd: Path,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False, input=stdin)


@pytest.fixture
def served(tmp_path, pg_url):
    """A collector process on PostgreSQL (URL from the environment), with two hosts."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update({"PYTHONPATH": str(REPO), "WATCHKEEPER_DATABASE_URL": pg_url,
                "WATCHKEEPER_LISTEN_PORT": str(port)})
    tokens = {}
    for host in ("a.example.net", "b.example.net"):
        done = _cli("enroll", "--customer", "acme", "--host", host, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        tokens[host] = done.stdout.strip()
    done = _cli("user", "add", "noc", "--role", "noc", "--password-stdin", env=env,
                cwd=tmp_path, stdin="night shift horse\n")
    assert done.returncode == 0, done.stderr
    done = _cli("token", "create", "--user", "noc", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tokens["noc"] = done.stdout.strip()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "serve"], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        yield base, tokens
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        finally:
            log.close()


def test_served_collector_stores_pushes_and_survives_an_oversized_one(
    served, make_batch, result
):
    base, tokens = served
    with httpx.Client(base_url=base, timeout=10,
                      headers={"Authorization": f"Bearer {tokens['noc']}"}) as client:
        huge = b'{"results": "' + b"x" * (20 * 1024 * 1024) + b'"}'
        try:
            answer = client.post("/api/v1/results", content=huge,
                                 headers={"Authorization": f"Bearer {tokens['a.example.net']}"})
            assert answer.status_code == 413
        except httpx.TransportError:
            pass  # the server may close the connection before the client finished sending
        ok = client.post(
            "/api/v1/results",
            json=make_batch("b.example.net", [result(status=1, summary="/var 91% used")]),
            headers={"Authorization": f"Bearer {tokens['b.example.net']}"},
        )
        assert ok.status_code == 202, ok.text
        problems = client.get("/api/v1/problems").json()
        assert [(p["host"], p["summary"]) for p in problems] == [("b.example.net",
                                                                  "/var 91% used")]
        assert "watchkeeper_check_status" in client.get("/metrics").text
    with httpx.Client(base_url=base, timeout=10) as browser:
        logged = browser.post("/login", data={"name": "noc", "password": "night shift horse"})
        assert logged.status_code == 303, logged.text
        assert "b.example.net" in browser.get("/").text
