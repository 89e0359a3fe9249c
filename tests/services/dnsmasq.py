"""Start a private dnsmasq for tests: authoritative for ``ci.test`` on a loopback port.

The server answers only from the records it is given (no upstream, no /etc/hosts) and
listens on 127.0.0.1 at a free port. ``local=/ci.test/`` and ``local=`` for the reverse
zones make unknown names NXDOMAIN (without them dnsmasq answers REFUSED, having no upstream).
A missing binary is an error naming the Debian package, never a reason to skip.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ZONES = ("ci.test", "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa")


class DnsmasqUnavailable(RuntimeError):
    """dnsmasq is not installed or would not start."""


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody uses right now (also free for TCP, checked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise DnsmasqUnavailable("no free loopback port found")


def closed_port() -> int:
    """A loopback UDP port with nothing listening: a query there gets ICMP unreachable."""
    return free_udp_port()


@dataclass
class Dnsmasq:
    """A running dnsmasq; ``address`` is the ``ip:port`` form the dns check takes."""

    process: subprocess.Popen[bytes]
    workdir: Path
    port: int
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        """dnsmasq's own log (queries are logged), for assertion messages."""
        path = self.workdir / "dnsmasq.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server and wait for it; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def find_dnsmasq(
    which: Callable[[str], str | None] = shutil.which,
    fallback: Path = Path("/usr/sbin/dnsmasq"),
) -> str:
    """The dnsmasq binary, or DnsmasqUnavailable naming the package to install."""
    path = which("dnsmasq") or (str(fallback) if fallback.exists() else None)
    if path is None:
        raise DnsmasqUnavailable("dnsmasq not found; install the Debian package 'dnsmasq-base'")
    return path


def start_dnsmasq(
    workdir: Path,
    *,
    host_records: Sequence[tuple[str, str]] = (),
    addresses: Sequence[tuple[str, str]] = (),
    ptr_records: Sequence[tuple[str, str]] = (),
    zones: Sequence[str] = DEFAULT_ZONES,
    extra: Sequence[str] = (),
) -> Dnsmasq:
    """Start dnsmasq with the given records; returns once it answers a query.

    ``host_records``: (name, address) pairs, forward and matching PTR (``host-record``).
    ``addresses``: (name, address) pairs, forward only (``address=/name/addr``).
    ``ptr_records``: (address, name) pairs, reverse only (``ptr-record``).
    """
    binary = find_dnsmasq()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    lines = [
        f"port={port}", "listen-address=127.0.0.1", "bind-interfaces", "no-resolv",
        "no-hosts", "no-poll", "keep-in-foreground", "user=root",
        f"pid-file={workdir / 'dnsmasq.pid'}", "log-queries",
        f"log-facility={workdir / 'dnsmasq.log'}",
    ]
    lines += [f"local=/{zone}/" for zone in zones]
    lines += [f"host-record={name},{address}" for name, address in host_records]
    lines += [f"address=/{name}/{address}" for name, address in addresses]
    lines += [f"ptr-record={_reverse(address)},{name}" for address, name in ptr_records]
    lines += list(extra)
    conf = workdir / "dnsmasq.conf"
    conf.write_text("\n".join(lines) + "\n")
    checked = subprocess.run([binary, "--test", "-C", str(conf)], capture_output=True,
                             text=True, timeout=30, check=False)
    if checked.returncode != 0:
        raise DnsmasqUnavailable(f"dnsmasq refused its config: {checked.stderr.strip()}")
    with (workdir / "dnsmasq.out").open("wb") as out:
        process = subprocess.Popen([binary, "-C", str(conf)], stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Dnsmasq(process, workdir, port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (workdir / "dnsmasq.out").read_text(errors="replace")
            raise DnsmasqUnavailable(f"dnsmasq exited with {process.returncode}: {output}")
        if _answers(port):
            return server
        time.sleep(0.05)
    server.stop()
    raise DnsmasqUnavailable("dnsmasq did not answer within 10 s")


def _reverse(address: str) -> str:
    import ipaddress

    return ipaddress.ip_address(address).reverse_pointer


def _answers(port: int) -> bool:
    """True when something answers a DNS query (any rcode) on the port."""
    query = struct.pack("!HHHHHH", 0x5EED, 0x0100, 1, 0, 0, 0) + b"\x05probe\x02ci\x04test\x00"
    query += struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.connect(("127.0.0.1", port))
            sock.send(query)
            return sock.recv(512)[:2] == b"\x5e\xed"
        except OSError:
            return False
