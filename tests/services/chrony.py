"""Start a private chronyd for tests: NTP on a free loopback UDP port, its own command socket.

chronyd runs in the foreground (``-d``) without touching the system clock (``-x``) and
serves its own clock at ``local stratum 8``, so it answers NTP at once. Its command socket
lives in a directory of mode 0700 (chronyd refuses a socket others could reach) and the
UDP command port is off (``cmdport 0``), so ``chronyc -h <socket>`` reaches only this daemon.

A missing binary is an error (``ChronyUnavailable``) naming the Debian package, never a
reason to skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ntplib


class ChronyUnavailable(RuntimeError):
    """chronyd or chronyc is not installed, or chronyd would not start."""


def free_udp_port() -> int:
    """A loopback UDP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str:
    """The path of a chrony program; ChronyUnavailable naming the package when missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        raise ChronyUnavailable(f"{name} not found; install the Debian package 'chrony'")
    return path


@dataclass
class ChronyServer:
    """A running private chronyd."""

    port: int
    socket_path: Path
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    _own_workdir: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as the ntp check's ``servers`` takes it."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """What chronyd printed so far."""
        path = self.workdir / "chronyd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop chronyd (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_chronyd(directory: Path, *, ready_timeout: float = 10.0) -> ChronyServer:
    """Start chronyd with its files under ``directory``; it answers NTP when this returns."""
    chronyd = find_binary("chronyd")
    find_binary("chronyc")
    workdir = directory
    own = False
    # A unix socket path is limited to 108 bytes; deep pytest directories can exceed it.
    if len(str(directory / "run" / "chronyd.sock")) > 100:
        workdir, own = Path(tempfile.mkdtemp(prefix="wk-chrony-")), True
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    run_dir.mkdir(exist_ok=True)
    os.chmod(run_dir, 0o700)
    port = free_udp_port()
    socket_path = run_dir / "chronyd.sock"
    conf = workdir / "chrony.conf"
    conf.write_text(
        f"port {port}\n"
        "bindaddress 127.0.0.1\n"
        "allow 127.0.0.1\n"
        "local stratum 8\n"
        f"driftfile {workdir / 'chrony.drift'}\n"
        f"pidfile {workdir / 'chronyd.pid'}\n"
        f"bindcmdaddress {socket_path}\n"
        "cmdport 0\n"
    )
    with open(workdir / "chronyd.log", "wb") as log:
        process = subprocess.Popen(
            [chronyd, "-d", "-x", "-u", "root", "-f", str(conf)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = ChronyServer(port, socket_path, workdir, process, own)
    deadline = time.monotonic() + ready_timeout
    client = ntplib.NTPClient()
    while True:
        if process.poll() is not None:
            detail = server.log()
            server.stop()
            raise ChronyUnavailable(f"chronyd exited with {process.returncode}:\n{detail}")
        try:
            client.request("127.0.0.1", version=4, port=port, timeout=0.2)
        except ntplib.NTPException:
            if time.monotonic() > deadline:
                detail = server.log()
                server.stop()
                raise ChronyUnavailable(
                    f"chronyd did not answer NTP within {ready_timeout:g}s:\n{detail}"
                ) from None
            continue
        if socket_path.exists():
            return server
        time.sleep(0.05)
