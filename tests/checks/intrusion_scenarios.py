"""Set-ups of the intrusion check's acceptance scenarios, for end-to-end tests.

``build(kind, workdir, now, *, check_name, state_dir)`` writes an auth log under
``workdir`` in the Debian 12 format (rsyslog's RFC3339 timestamps) with lines timed
relative to ``now``, records the listener baseline of the instance in ``state_dir`` (the
agent's check state directory, ``<agent.state_dir>/checks``), opens a real listening
socket where the scenario needs one, and returns a ``Scenario``: the ``[checks.<name>]``
TOML table, the worst status the instance must report, and ``stop`` (closes the sockets
the scenario opened).

The listener half reads the whole machine's sockets. So that other services of this
machine (and other tests) starting or stopping listeners cannot change the verdict, every
scenario restricts the check to one port with ``listener_ports``: a port free when the
builder ran, whose baseline (empty) is recorded before any scenario socket opens. The
table also allows ``process:sshd``: with an allowed list, a missing baseline counts as
empty, so the expected status holds even for an agent whose state directory is not
``state_dir`` (two agents over the same scenarios, each with its own state).

Kinds (``KINDS``):

- ``quiet``: two failures long ago, a user's login -> OK.
- ``brute_force``: 20 failed passwords from 203.0.113.5 in the last 5 minutes -> WARNING
  (at or above 10, below 50 per address).
- ``success_after_failures``: 6 failures, then ``Accepted password`` from the same address
  -> CRITICAL.
- ``new_listener``: a TCP socket listening on 127.0.0.1 in this process after the baseline
  -> WARNING (``new listener tcp 127.0.0.1:PORT (python (pid N))``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks.intrusion import IntrusionConfig, record_baseline
from checks.registry import CheckContext
from checks.result import Status
from tests.support.ports import free_port

KINDS = ("quiet", "brute_force", "success_after_failures", "new_listener")
ATTACKER = "203.0.113.5"


@dataclass(frozen=True)
class Scenario:
    """A prepared scenario: agent TOML, the worst status expected, and how to stop it."""

    toml: str
    expected: Status
    describe: str
    stop: Callable[[], None]
    auth_log: Path
    port: int


def debian_line(at: float, message: str, pid: int = 4242) -> str:
    """A line as Debian 12's rsyslog writes /var/log/auth.log (RFC3339, microseconds)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    return f"{stamp}.{int(at % 1 * 1e6):06d}+00:00 web1 sshd[{pid}]: {message}\n"


def _toml(name: str, log: Path, port: int) -> str:
    return (
        f"[checks.{name}]\n"
        'type = "intrusion"\n'
        'interval = "10s"\n'
        'timeout = "8s"\n'
        f'auth_log = "{log}"\n'
        f'listener_ports = ["{port}"]\n'
        'allowed_listeners = ["process:sshd"]\n'
        "record_baseline_if_missing = false\n"
    )


def build(kind: str, workdir: Path, now: float, *, check_name: str = "intrusion",
          state_dir: Path) -> Scenario:
    """Set up scenario ``kind`` (one of ``KINDS``) under ``workdir``; see the module doc."""
    if kind not in KINDS:
        raise ValueError(f"unknown intrusion scenario {kind!r} (known: {', '.join(KINDS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "auth.log"
    lines = [debian_line(now - 7200, f"Failed password for root from {ATTACKER} port 1 ssh2", 1),
             debian_line(now - 7190, f"Failed password for root from {ATTACKER} port 2 ssh2", 2),
             debian_line(now - 3000, "Accepted publickey for alice from 198.51.100.7 port 50022 "
                         "ssh2: ED25519 SHA256:x", 3)]
    expected, describe = Status.OK, "old failures and a user's login; no new listener"
    if kind == "brute_force":
        lines += [debian_line(now - 300 + i, f"Failed password for invalid user u{i} from "
                              f"{ATTACKER} port {40000 + i} ssh2", 5000 + i) for i in range(20)]
        expected, describe = Status.WARNING, f"20 failed passwords from {ATTACKER} in 5 min"
    elif kind == "success_after_failures":
        lines += [debian_line(now - 120 + i, f"Failed password for oracle from {ATTACKER} port "
                              f"{40000 + i} ssh2", 6000) for i in range(6)]
        lines.append(debian_line(now - 60, f"Accepted password for oracle from {ATTACKER} "
                                 "port 40100 ssh2", 6001))
        expected, describe = Status.CRITICAL, f"6 failures then a login from {ATTACKER}"
    log.write_text("".join(lines))

    port = free_port()
    config = IntrusionConfig(listener_ports=(str(port),))
    record_baseline(config, CheckContext(name=check_name, state_dir=state_dir, clock=lambda: now))
    sockets: list[socket.socket] = []
    if kind == "new_listener":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        sockets.append(listener)
        expected, describe = Status.WARNING, f"a new TCP listener on 127.0.0.1:{port}"

    def stop() -> None:
        for s in sockets:
            s.close()

    return Scenario(_toml(check_name, log, port), expected, describe, stop, log, port)
