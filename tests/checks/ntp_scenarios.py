"""Reusable set-ups of the ntp check's acceptance scenarios, for end-to-end tests.

``build(kind, workdir)`` starts what the scenario needs (a real chronyd on loopback, or
the NTP responder that serves a chosen offset; see tests/services/ntp_responder.py for
why that one is a fake) and returns a ``Scenario``: the whole ``[checks.<name>]`` TOML
table, the status the check as a whole must report, and ``stop`` to shut everything down.

The scenarios set ``check_local = false``: the local-state result would read this
machine's kernel and chronyd, whose state the test does not control, so the expected
status depends only on the servers. Kinds:

- ``ok``: one real chronyd; offset near zero -> OK.
- ``warning``: the responder serving +200 ms -> WARNING (offset at or above 100 ms).
- ``critical``: the responder serving +2 s -> CRITICAL (offset at or above 500 ms).
- ``one_dead``: chronyd, the responder at +0 and a closed loopback port -> WARNING
  (the dead server's own result; the offset is judged OK from the other two).
- ``all_dead``: two closed loopback ports -> UNKNOWN (no offset can be measured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks.result import Status
from tests.services.chrony import start_chronyd
from tests.services.ntp_responder import dead_server_address, start_responder

KINDS = ("ok", "warning", "critical", "one_dead", "all_dead")


@dataclass(frozen=True)
class Scenario:
    """A prepared scenario: agent TOML, the worst status expected, and how to stop it."""

    toml: str
    expected: Status
    describe: str
    stop: Callable[[], None]
    servers: tuple[str, ...] = ()


def _toml(name: str, servers: list[str]) -> str:
    listed = ", ".join(f'"{s}"' for s in servers)
    return (
        f"[checks.{name}]\n"
        'type = "ntp"\n'
        'interval = "10s"\n'
        'timeout = "8s"\n'
        f"servers = [{listed}]\n"
        'query_timeout = "1s"\n'
        "check_local = false\n"
    )


def build(kind: str, workdir: Path, name: str = "ntp") -> Scenario:
    """Set up scenario ``kind`` (one of ``KINDS``) with its files under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "ok":
        chrony = start_chronyd(workdir / "chrony")
        servers = [chrony.address]
        return Scenario(_toml(name, servers), Status.OK,
                        "a real chronyd on loopback: offset near zero", chrony.stop,
                        tuple(servers))
    if kind in ("warning", "critical"):
        offset = 0.2 if kind == "warning" else 2.0
        responder = start_responder(offset)
        servers = [responder.address]
        expected = Status.WARNING if kind == "warning" else Status.CRITICAL
        return Scenario(_toml(name, servers), expected,
                        f"an NTP responder serving its clock +{offset:g} s", responder.stop,
                        tuple(servers))
    if kind == "one_dead":
        chrony = start_chronyd(workdir / "chrony")
        try:
            responder = start_responder(0.0)
        except BaseException:
            chrony.stop()
            raise
        servers = [chrony.address, responder.address, dead_server_address()]

        def stop() -> None:
            try:
                responder.stop()
            finally:
                chrony.stop()

        return Scenario(_toml(name, servers), Status.WARNING,
                        "chronyd and a responder at +0 answer, the third port is closed",
                        stop, tuple(servers))
    if kind == "all_dead":
        servers = [dead_server_address(), dead_server_address()]
        return Scenario(_toml(name, servers), Status.UNKNOWN,
                        "two closed loopback ports: no server answers", lambda: None,
                        tuple(servers))
    raise ValueError(f"unknown ntp scenario {kind!r} (known: {', '.join(KINDS)})")
