"""Listening sockets of the host, from /proc/net and the /proc/*/fd links, for ``intrusion``.

No psutil (about 1 MB of resident memory on every host): the socket tables are read as
the kernel writes them, and a socket's process is found by its inode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from checks.config import ConfigError


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening TCP socket or unconnected UDP socket."""

    proto: str
    """``tcp``, ``tcp6``, ``udp`` or ``udp6`` (the /proc/net file it came from)."""
    address: str
    port: int
    inode: int = 0
    process: str = ""
    """``comm (pid N)``, or empty when no process could be read (not ours, gone)."""

    @property
    def key(self) -> str:
        """``tcp 127.0.0.1:22``, ``tcp6 [::]:22``: what the baseline stores."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto} {host}:{self.port}"


# ---------------------------------------------------------------------------- listener rules


@dataclass(frozen=True, slots=True)
class ListenerRule:
    """An ``allowed_listeners`` entry: a process name, or protocol/address/port."""

    process: str = ""
    proto: str = ""
    address: str = ""
    port: int | None = None


def parse_listener_rule(text: str, key: str = "allowed_listeners") -> ListenerRule:
    """``process:sshd``, ``22``, ``tcp:22``, ``udp:127.0.0.1:53``, ``tcp6:[::1]:631``."""
    if text.startswith("process:"):
        if not text[8:]:
            raise ConfigError(key, f"{text!r}: empty process name")
        return ListenerRule(process=text[8:])
    proto, address, port_text = "", "", text
    head, sep, tail = text.partition(":")
    if sep and head in ("tcp", "tcp6", "udp", "udp6"):
        proto, port_text = head, tail
    if port_text.startswith("["):
        address, bracket, rest = port_text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(key, f"{text!r}: expected [address]:port")
        port_text = rest[1:]
    elif port_text.count(":") == 1:
        address, port_text = port_text.split(":")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(key, f"{text!r}: expected [tcp|tcp6|udp|udp6:][address:]port "
                          "or process:NAME")
    return ListenerRule("", proto, address, int(port_text))


def rule_matches(rule: ListenerRule, listener: Listener) -> bool:
    """Whether an ``allowed_listeners`` rule covers the listener."""
    if rule.process:
        return listener.process.split(" (pid")[0] == rule.process
    if rule.proto and listener.proto != rule.proto and listener.proto != rule.proto + "6":
        return False
    if rule.address and rule.address != listener.address:
        return False
    return rule.port == listener.port


def parse_port_range(text: str, key: str = "listener_ports") -> tuple[int, int]:
    """``"8080"`` or ``"20000-20100"`` as (first, last)."""
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ConfigError(key, f"{text!r}: expected a port or a range such as 20000-20100"
                          ) from None
    if not 1 <= low <= high <= 65535:
        raise ConfigError(key, f"{text!r}: ports run from 1 to 65535, low to high")
    return low, high


# ---------------------------------------------------------------------------- /proc/net


TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def decode_address(hex_address: str) -> str:
    """A /proc/net address (host byte order per 32-bit word) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words)
    import socket  # only for IPv6 (compressed text form); the agent has it loaded anyway

    return socket.inet_ntop(socket.AF_INET6, words)


def parse_proc_net(text: str, proto: str) -> list[Listener]:
    """The listening (TCP) or unconnected (UDP) sockets of one /proc/net file."""
    wanted = TCP_LISTEN if proto.startswith("tcp") else UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        local, _, port_hex = fields[1].partition(":")
        remote = fields[2].partition(":")[0]
        if wanted == UDP_UNCONNECTED and remote.strip("0"):
            continue
        found.append(Listener(proto, decode_address(local), int(port_hex, 16),
                              int(fields[9])))
    return found


def socket_owners(proc: Path, inodes: set[int]) -> dict[int, str]:
    """inode -> ``comm (pid N)`` from /proc/*/fd links; stops once every inode is found."""
    owners: dict[int, str] = {}
    if not inodes:
        return owners
    wanted = {f"socket:[{i}]": i for i in inodes}
    root = str(proc)
    try:
        pids = [e for e in os.listdir(root) if e.isdigit()]
    except OSError:
        return owners
    for pid in pids:
        fd_dir = f"{root}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            inode = wanted.get(link)
            if inode is not None and inode not in owners:
                owners[inode] = f"{_comm(root, pid) or '?'} (pid {pid})"
        if len(owners) == len(wanted):
            break
    return owners


def _comm(root: str, pid: str) -> str:
    try:
        with open(f"{root}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class OwnerCache:
    """Owners found by earlier runs, so that the /proc/*/fd walk (thousands of readlinks on
    a busy host) runs only for sockets not seen before.

    A socket's inode is fixed for its life, so a listener seen again with the same inode is
    the same socket; its cached owner is kept while that process still exists under the
    same name, else looked up again. Sockets whose owner could not be found (a process this
    agent may not inspect) are remembered too and not searched for again.
    """

    def __init__(self) -> None:
        self._owners: dict[int, str] = {}

    def lookup(self, proc: Path, inodes: set[int]) -> dict[int, str]:
        """inode -> ``comm (pid N)`` (empty when unknown) for every inode in ``inodes``."""
        root = str(proc)
        known: dict[int, str] = {}
        for inode in inodes & self._owners.keys():
            owner = self._owners[inode]
            if not owner or _still_running(root, owner):
                known[inode] = owner
        missing = inodes - known.keys()
        if missing:
            found = socket_owners(proc, missing)
            known.update({inode: found.get(inode, "") for inode in missing})
        self._owners = known  # sockets gone since the last run are forgotten
        return {inode: owner for inode, owner in known.items() if owner}


def _still_running(root: str, owner: str) -> bool:
    """Whether ``comm (pid N)`` still names a live process of that name."""
    comm, _, pid = owner.rpartition(" (pid ")
    return bool(pid) and _comm(root, pid.rstrip(")")) == comm


def ephemeral_ports(proc: Path) -> tuple[int, int]:
    """The kernel's local port range for outgoing sockets (default 32768-60999)."""
    try:
        low, high = (proc / "sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def read_listeners(proc: Path, ports: Sequence[str] = (), include_ephemeral_udp: bool = False
                   ) -> tuple[list[Listener], list[str]]:
    """The listeners of the whole host, filtered by ``listener_ports``; notes of what failed."""
    listeners: list[Listener] = []
    notes: list[str] = []
    read_any = False
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            text = (proc / "net" / proto).read_text()
        except OSError as err:
            notes.append(f"/proc/net/{proto}: {err.strerror or err}")
            continue
        read_any = True
        listeners.extend(parse_proc_net(text, proto))
    if not read_any:
        raise OSError("no /proc/net socket table readable: " + "; ".join(notes))
    ranges = [parse_port_range(p) for p in ports]
    if ranges:
        listeners = [x for x in listeners if any(lo <= x.port <= hi for lo, hi in ranges)]
    if not include_ephemeral_udp:
        low, high = ephemeral_ports(proc)
        listeners = [x for x in listeners
                     if x.proto.startswith("tcp") or not low <= x.port <= high]
    unique = {x.key: x for x in listeners}  # SO_REUSEPORT: one row per socket, same key
    return list(unique.values()), notes


def name_listeners(proc: Path, listeners: Sequence[Listener],
                   cache: OwnerCache | None = None) -> list[Listener]:
    """The same listeners with their process, where /proc lets us see it."""
    inodes = {x.inode for x in listeners if x.inode}
    owners = cache.lookup(proc, inodes) if cache is not None else socket_owners(proc, inodes)
    return [Listener(x.proto, x.address, x.port, x.inode, owners.get(x.inode, ""))
            for x in listeners]
