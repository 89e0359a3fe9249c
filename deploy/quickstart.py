"""`make run`: the whole thing on this machine, on its embedded defaults.

Starts the collector on http://127.0.0.1:8080 with its SQLite store under ./var/, enrolls
this machine (once; the token is kept in ./var/agent/token), writes an agent config that
checks this machine, starts the agent, and prints where to look. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _collector(*args: str) -> list[str]:
    return [sys.executable, "-m", "collector.cli", *args]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _enroll(host: str, token_file: Path, env: dict[str, str]) -> None:
    """Enroll this machine once; rotate its token if the token file was lost."""
    if token_file.exists() and token_file.read_text().strip():
        return
    command = _collector("enroll", "--customer", "local", "--host", host)
    answer = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if answer.returncode != 0 and "--rotate" in answer.stderr:
        answer = subprocess.run([*command, "--rotate"], capture_output=True, text=True, cwd=ROOT,
                                env=env)
    if answer.returncode != 0:
        sys.exit(f"enrolling {host} failed:\n{answer.stderr}")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(answer.stdout.strip().splitlines()[-1] + "\n")


def _admin_login(login_file: Path, env: dict[str, str]) -> tuple[str, str]:
    """An admin user for the dashboard and the API, made once; its password kept in var/."""
    if login_file.exists():
        name, _, password = login_file.read_text().strip().partition(":")
        if name and password:
            return name, password
    name, password = "admin", secrets.token_urlsafe(12)
    command = _collector("user", "add", name, "--role", "admin", "--password-stdin")
    answer = subprocess.run(command, input=password + "\n", capture_output=True, text=True,
                            cwd=ROOT, env=env)
    if answer.returncode != 0 and "exists" in answer.stderr:
        command = _collector("user", "password", name)
        answer = subprocess.run(command, input=password + "\n", capture_output=True,
                                text=True, cwd=ROOT, env=env)
    if answer.returncode != 0:
        sys.exit(f"creating the admin login failed:\n{answer.stderr}")
    login_file.touch(mode=0o600)
    login_file.write_text(f"{name}:{password}\n")
    return name, password


def _agent_config(var: Path, host: str, url: str) -> Path:
    agent_dir = var / "agent"
    config = agent_dir / "agent.toml"
    config.write_text(
        "# Written by `make run`; see docs/agent.md for every key.\n"
        f'[agent]\nhost = "{host}"\nstate_dir = "{agent_dir / "state"}"\n\n'
        f'[collector]\nurl = "{url}"\ntoken_file = "{agent_dir / "token"}"\n'
        'push_interval = "5s"\n\n'
        '[checks.disk]\ninterval = "30s"\n\n'
        '[checks.agent]\ninterval = "30s"\n'
    )
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--var", type=Path, default=ROOT / "var",
                        help="where the store, the agent's config, token and spool live")
    args = parser.parse_args()
    var: Path = args.var.resolve()
    url = f"http://127.0.0.1:{args.port}"
    if not _port_free("127.0.0.1", args.port):
        sys.exit(f"port {args.port} on 127.0.0.1 is taken; run `make run PORT=8081`")

    var.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WATCHKEEPER_DATABASE_URL": f"sqlite:///{var / 'watchkeeper.db'}"}
    host = socket.getfqdn()
    _enroll(host, var / "agent" / "token", env)
    login = _admin_login(var / "login", env)
    config = _agent_config(var, host, url)
    collector = subprocess.Popen(_collector("serve", "--port", str(args.port)), cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while not _healthy(url):
        if collector.poll() is not None or time.monotonic() > deadline:
            sys.exit("the collector did not start; see its messages above")
        time.sleep(0.2)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config)], cwd=ROOT
    )
    print(
        f"\n  watchkeeper is running\n"
        f"  dashboard:  {url}/\n"
        f"  login:      {login[0]} / {login[1]}   (kept in {var / 'login'})\n"
        f"  this host:  {url}/api/v1/hosts/{host}\n"
        f"  metrics:    {url}/metrics\n"
        f"  agent:      {config}\n"
        f"  Ctrl-C stops both.\n",
        flush=True,
    )

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while collector.poll() is None and agent.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for proc in (agent, collector):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in (agent, collector):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
