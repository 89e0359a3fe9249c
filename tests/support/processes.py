"""Start the real collector and agent as processes on loopback, for end-to-end tests and
benchmarks. Everything lives under a directory the caller owns; nothing is left running."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.ports import free_port


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Proc:
    """A started process with its log file."""

    args: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig`` and wait; SIGKILL if it does not exit in time."""
        if self.popen is None or self.popen.poll() is not None:
            return None if self.popen is None else self.popen.returncode
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def collector_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "collector.cli", *args]


def agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


class Collector:
    """A collector process on a loopback port with its own SQLite store (or a given URL)."""

    def __init__(self, workdir: Path, *, database_url: str | None = None, port: int | None = None,
                 extra_config: str = "", tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: serve HTTPS with this (certificate, key); ``self.ca`` is then the
        certificate to trust."""
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ca: Path | bool = tls[0] if tls else True
        self.database_url = database_url or f"sqlite:///{workdir / 'collector.db'}"
        self.config = workdir / "collector.toml"
        tls_keys = f'tls_cert_file = "{tls[0]}"\ntls_key_file = "{tls[1]}"\n' if tls else ""
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n{tls_keys}\n'
            f'[database]\nurl = "{self.database_url}"\n' + extra_config
        )
        self.proc: Proc | None = None
        self.starts = 0
        self._reader: dict[str, str] | None = None

    def start(self, timeout: float = 30.0) -> Collector:
        self.starts += 1
        self.proc = Proc(
            collector_command("serve", "--config", str(self.config)),
            self.workdir / "collector.log",
        ).start()
        wait_until(self.healthy, timeout, f"collector on {self.url}\n{self.proc.tail()}")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise AssertionError(f"collector exited:\n{self.proc.tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1,
                             verify=self._verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def enroll(self, customer: str, host: str) -> str:
        """Enroll ``host`` and return its token, as an operator would."""
        out = subprocess.run(
            collector_command("enroll", "--config", str(self.config),
                              "--customer", customer, "--host", host),
            capture_output=True, text=True, check=True, timeout=60,
        )
        token = out.stdout.strip().splitlines()[-1].strip()
        assert token, out.stderr
        return token

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.stop(sig)

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` as a NOC user of this collector (the read API wants a login)."""
        return httpx.get(f"{self.url}{path}", headers=self.reader_headers(), timeout=5,
                         verify=self._verify())

    def reader_headers(self, name: str = "e2e-noc") -> dict[str, str]:
        """A NOC user's bearer header, the user and token made once with the collector's
        commands (``user add``, ``token create``) as an administrator would."""
        if self._reader is None:
            for args in (("user", "add", name, "--role", "noc"),
                         ("token", "create", "--user", name)):
                done = subprocess.run(
                    collector_command(*args, "--config", str(self.config)),
                    capture_output=True, text=True, timeout=60, check=False)
                assert done.returncode == 0, done.stderr
            self._reader = {"Authorization":
                            f"Bearer {done.stdout.strip().splitlines()[-1]}"}
        return self._reader

    def _verify(self) -> ssl.SSLContext | bool:
        if isinstance(self.ca, Path):
            return ssl.create_default_context(cafile=str(self.ca))
        return self.ca

    def store_pid(self) -> int | None:
        """The pid of the collector's store process (its only child), if one runs."""
        import psutil

        if self.proc is None or not self.proc.alive():
            return None
        children = psutil.Process(self.proc.pid).children()
        return children[0].pid if children else None


def kill_tree_on_exit(procs: list[Proc]) -> None:
    """Last-resort cleanup: SIGKILL whatever is still running."""
    for proc in procs:
        if proc.alive():
            proc.kill()
