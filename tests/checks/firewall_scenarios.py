"""Named situations for the firewall check, each in a network namespace of its own.

The firewall check reads the live ruleset, so a test must never load rules into the
namespace of the machine running it. Every scenario creates a throw-away namespace
(``ip netns add wk-fw-<pid>-<n>``), loads its rules there with the real ``nft``, and
returns a TOML table with ``netns = "<that namespace>"`` so the check runs its commands
through ``ip netns exec``. ``stop`` deletes the namespace (safe to call twice).

``build(kind, workdir, *, check_name="firewall", state_dir)`` returns a ``Scenario``:
``toml`` (the whole ``[checks.<check_name>]`` table, ``type = "firewall"`` included),
``expected`` (the worst status of the check's results), ``describe``, ``stop``, and
``namespace``/``table`` for tests that build the check directly.

``state_dir`` is where the check keeps its state when the agent runs it: the agent gives
every check ``<[agent].state_dir>/checks`` (``check_state_dir(agent_state_dir)``), and the
baseline of a check named N is ``firewall-N.baseline.json`` in it. ``drifted`` and
``counters_only`` record their baseline there through ``checks.firewall.record_baseline``,
so the agent started on the same ``[agent].state_dir`` compares against it. Kinds:

- ``empty``: nothing loaded in the namespace -> CRITICAL ("no firewall ruleset loaded").
- ``accept_all``: an input chain with policy accept and only accept rules -> CRITICAL.
- ``good``: default deny (policy drop), loopback, established, 22/tcp from anywhere,
  5432/tcp from 10.0.0.0/8 only; ``allowed_open_ports = ["22/tcp"]``; no baseline -> OK.
- ``drifted``: ``good``, baseline recorded, then one rule added (8080/tcp from
  10.0.0.0/8, so no open port) and one removed (ICMP) -> WARNING, "1 rule added, 1 removed".
- ``counters_only``: ``good``, baseline recorded, then UDP traffic on lo moves the rule
  counters and ``nft reset counters`` runs -> OK (counters are not drift).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.config import build as build_config
from checks.firewall import FirewallConfig, record_baseline
from checks.registry import CheckContext
from checks.result import Status

KINDS = ("empty", "accept_all", "good", "drifted", "counters_only")

PACKAGES = {"ip": "iproute2", "nft": "nftables", "iptables": "iptables",
            "iptables-save": "iptables", "iptables-legacy": "iptables",
            "iptables-legacy-save": "iptables", "ip6tables": "iptables",
            "ip6tables-save": "iptables", "ip6tables-legacy-save": "iptables",
            "python3": "python3"}

ACCEPT_ALL = """\
flush ruleset
table inet filter {
  chain input {
    type filter hook input priority 0; policy accept;
    iif "lo" accept
    tcp dport 22 accept
  }
}
"""

GOOD = """\
flush ruleset
table inet filter {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related counter accept
    iif "lo" counter accept
    meta l4proto icmp accept comment "icmp"
    tcp dport 22 counter accept comment "ssh"
    ip saddr 10.0.0.0/8 tcp dport 5432 accept comment "pg from the LAN"
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
}
"""

_counter = itertools.count(1)


class ToolMissing(RuntimeError):
    """A program the scenario needs is not installed (names the Debian package)."""


def tool(name: str) -> str:
    """The absolute path of ``name``; ToolMissing naming its Debian package otherwise."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        raise ToolMissing(f"{name} not found: install the Debian package "
                          f"{PACKAGES.get(name, name)}")
    return path


def check_state_dir(agent_state_dir: Path) -> Path:
    """Where the agent keeps check state: ``<[agent].state_dir>/checks`` (agent/cli.py)."""
    return agent_state_dir / "checks"


class Namespace:
    """A network namespace created for one test; ``delete`` removes it."""

    def __init__(self, prefix: str = "wk-fw") -> None:
        self.ip = tool("ip")
        self.name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        subprocess.run([self.ip, "netns", "add", self.name], check=True, capture_output=True,
                       timeout=10)
        self.deleted = False
        try:
            self.exec("ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    def exec(self, program: str, *args: str, stdin: str | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``program`` inside the namespace (ip netns exec), with a timeout."""
        argv = [self.ip, "netns", "exec", self.name, tool(program), *args]
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              check=check, timeout=20)

    def load(self, ruleset: str) -> None:
        """``nft -f -`` inside the namespace."""
        self.exec("nft", "-f", "-", stdin=ruleset)

    def nft_json(self) -> list[dict[str, Any]]:
        """The namespace's ``nft -j list ruleset`` objects."""
        objects: list[dict[str, Any]] = json.loads(
            self.exec("nft", "-j", "list", "ruleset").stdout)["nftables"]
        return objects

    def rule_handle(self, comment: str) -> int:
        """The handle of the rule with ``comment`` (handles change between loads)."""
        for item in self.nft_json():
            rule = item.get("rule")
            if rule and rule.get("comment") == comment:
                return int(rule["handle"])
        raise LookupError(f"no rule with comment {comment!r} in {self.name}")

    def send_loopback_traffic(self, packets: int = 5) -> None:
        """UDP datagrams to 127.0.0.1 inside the namespace, so rule counters move."""
        code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range({packets}): s.sendto(b'x', ('127.0.0.1', 9))\n")
        self.exec("python3", "-c", code)

    def delete(self) -> None:
        """Remove the namespace (and every rule in it); safe to call twice."""
        if self.deleted:
            return
        subprocess.run([self.ip, "netns", "del", self.name], check=False, capture_output=True,
                       timeout=10)
        self.deleted = True


@dataclass(frozen=True)
class Scenario:
    """One situation, ready to be put into an agent config."""

    toml: str
    """The whole ``[checks.<check_name>]`` table, ``type = "firewall"`` included."""
    expected: Status
    describe: str
    stop: Callable[[], None]
    namespace: str = ""
    table: Mapping[str, Any] = field(default_factory=dict)
    """The check's own keys (no runner keys), for building ``FirewallConfig`` directly."""


def _toml(name: str, table: Mapping[str, Any]) -> str:
    lines = [f"[checks.{name}]", 'type = "firewall"', 'interval = "30s"', 'timeout = "10s"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _record(table: Mapping[str, Any], check_name: str, state_dir: Path) -> Path:
    config = build_config(FirewallConfig, dict(table))
    return record_baseline(config, CheckContext(name=check_name, state_dir=state_dir,
                                                timeout=10.0))


def build(kind: str, workdir: Path, *, check_name: str = "firewall",
          state_dir: Path) -> Scenario:
    """Set up scenario ``kind`` (one of ``KINDS``); ``state_dir`` is the check state dir."""
    if kind not in KINDS:
        raise ValueError(f"unknown firewall scenario {kind!r} (known: {', '.join(KINDS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    namespace = Namespace()
    table: dict[str, Any] = {"netns": namespace.name, "allowed_open_ports": ["22/tcp"]}
    try:
        if kind == "empty":
            expected, describe = Status.CRITICAL, "a namespace with no ruleset at all"
        elif kind == "accept_all":
            namespace.load(ACCEPT_ALL)
            expected, describe = Status.CRITICAL, "input policy accept, only accept rules"
        else:
            (workdir / "good.nft").write_text(GOOD)
            namespace.load(GOOD)
            expected, describe = Status.OK, "default deny, 22/tcp open, no baseline"
            if kind == "drifted":
                _record(table, check_name, state_dir)
                namespace.exec("nft", "add", "rule", "inet", "filter", "input", "ip", "saddr",
                               "10.0.0.0/8", "tcp", "dport", "8080", "accept", "comment",
                               '"added"')
                namespace.exec("nft", "delete", "rule", "inet", "filter", "input", "handle",
                               str(namespace.rule_handle("icmp")))
                expected = Status.WARNING
                describe = "baseline recorded, then 8080/tcp from 10/8 added and icmp removed"
            elif kind == "counters_only":
                _record(table, check_name, state_dir)
                namespace.send_loopback_traffic()
                namespace.exec("nft", "reset", "counters")
                namespace.send_loopback_traffic(3)
                describe = "baseline recorded, then loopback traffic moved the counters"
    except BaseException:
        namespace.delete()
        raise
    return Scenario(_toml(check_name, table), expected, describe, namespace.delete,
                    namespace.name, table)
