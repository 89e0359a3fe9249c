"""Named situations for the dns check, each against a real dnsmasq on loopback.

``build(kind, workdir)`` starts what the situation needs under ``workdir`` and returns a
``Scenario``: the whole ``[checks.<name>]`` TOML table for an agent config, the status the
check must report, a sentence saying what is set up, and ``stop`` to end it (safe to call
twice). Kinds:

- ``ok``: web1.ci.test has A 192.0.2.10 and AAAA 2001:db8::10, both with matching PTRs: OK.
- ``mismatch``: db1.ci.test resolves as expected, but the PTR of its address names
  wrong-host.ci.test: WARNING (``ptr_mismatch``).
- ``address_mismatch``: db1.ci.test resolves to 192.0.2.20 where 192.0.2.21 is expected:
  CRITICAL (``mismatch``).
- ``missing_ptr``: nop.ci.test resolves, its address has no PTR (NXDOMAIN): WARNING.
- ``nxdomain``: the name does not exist: CRITICAL.
- ``dead_resolver``: the only resolver is a closed loopback port: CRITICAL
  (``connection_refused``), at once.
- ``silent_resolver``: the only resolver is a bound UDP socket that never answers:
  CRITICAL (``timeout``) after ``query_timeout`` (1 s).
- ``one_dead_resolver``: a good dnsmasq and a closed port: the good one's result is OK,
  the dead one's CRITICAL; the worst is CRITICAL.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.result import Status
from tests.services.dnsmasq import Dnsmasq, closed_port, start_dnsmasq

KINDS = (
    "ok", "mismatch", "address_mismatch", "missing_ptr", "nxdomain", "dead_resolver",
    "silent_resolver", "one_dead_resolver",
)

QUERY_TIMEOUT = 1.0
RUN_TIMEOUT = 5.0

# Record data in the documentation ranges only.
HOST_RECORDS = (("web1.ci.test", "192.0.2.10"), ("web1.ci.test", "2001:db8::10"))
ADDRESSES = (("db1.ci.test", "192.0.2.20"), ("nop.ci.test", "192.0.2.30"))
PTR_RECORDS = (("192.0.2.20", "wrong-host.ci.test"),)


@dataclass(frozen=True)
class Scenario:
    """One situation, ready to be put into an agent config."""

    toml: str
    """The whole ``[checks.<check_name>]`` table, ``type = "dns"`` included."""
    expected: Status
    describe: str
    stop: Callable[[], None]
    table: Mapping[str, Any] = field(default_factory=dict)
    """The check's own keys (no runner keys), for building ``DnsConfig`` directly."""
    resolvers: tuple[str, ...] = ()
    timeout: float = RUN_TIMEOUT
    """The runner ``timeout`` written into the TOML."""


def start_records(workdir: Path) -> Dnsmasq:
    """dnsmasq with every record the scenarios use (see the module docstring)."""
    return start_dnsmasq(
        workdir, host_records=HOST_RECORDS, addresses=ADDRESSES, ptr_records=PTR_RECORDS,
    )


def silent_resolver() -> tuple[str, Callable[[], None]]:
    """A loopback UDP socket that takes queries and never answers; its address and closer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return f"127.0.0.1:{sock.getsockname()[1]}", sock.close


def toml_table(check_name: str, table: Mapping[str, Any], timeout: float = RUN_TIMEOUT) -> str:
    """``[checks.<name>]`` with ``type = "dns"``, the runner timeout and the check's keys."""
    lines = [f"[checks.{check_name}]", 'type = "dns"', f'timeout = "{timeout:g}s"']
    for key, value in table.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string here
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def build(kind: str, workdir: Path, *, check_name: str = "dns") -> Scenario:
    """Set up ``kind`` under ``workdir``; the caller must call ``stop()``."""
    if kind not in KINDS:
        raise ValueError(f"unknown dns scenario {kind!r} (known: {', '.join(KINDS)})")
    stops: list[Callable[[], None]] = []

    def stop() -> None:
        while stops:
            stops.pop()()

    try:
        resolvers: list[str] = []
        if kind in ("dead_resolver", "one_dead_resolver"):
            resolvers.append(f"127.0.0.1:{closed_port()}")
        if kind == "silent_resolver":
            address, close = silent_resolver()
            stops.append(close)
            resolvers.append(address)
        if kind not in ("dead_resolver", "silent_resolver"):
            server = start_records(workdir / "dnsmasq")
            stops.append(server.stop)
            resolvers.append(server.address)
        name, expected_addresses, status, describe = _SETUPS[kind]
        table: dict[str, Any] = {
            "resolvers": resolvers,
            "query_timeout": QUERY_TIMEOUT,
            "names": [{"name": name, "addresses": list(expected_addresses)}],
        }
        if not any(":" in a for a in expected_addresses) and expected_addresses:
            table["record_types"] = ["A"]
        return Scenario(
            toml=toml_table(check_name, table),
            expected=status,
            describe=describe,
            stop=stop,
            table=table,
            resolvers=tuple(resolvers),
        )
    except BaseException:
        stop()
        raise


_SETUPS: dict[str, tuple[str, tuple[str, ...], Status, str]] = {
    "ok": ("web1.ci.test", ("192.0.2.10", "2001:db8::10"), Status.OK,
           "web1.ci.test A and AAAA as expected, both PTRs name it"),
    "mismatch": ("db1.ci.test", ("192.0.2.20",), Status.WARNING,
                 "PTR of 192.0.2.20 names wrong-host.ci.test instead of db1.ci.test"),
    "address_mismatch": ("db1.ci.test", ("192.0.2.21",), Status.CRITICAL,
                         "db1.ci.test resolves to 192.0.2.20, 192.0.2.21 expected"),
    "missing_ptr": ("nop.ci.test", ("192.0.2.30",), Status.WARNING,
                    "192.0.2.30 has no PTR (NXDOMAIN)"),
    "nxdomain": ("nosuch.ci.test", (), Status.CRITICAL, "nosuch.ci.test does not exist"),
    "dead_resolver": ("web1.ci.test", ("192.0.2.10",), Status.CRITICAL,
                      "the only resolver is a closed loopback port"),
    "silent_resolver": ("web1.ci.test", ("192.0.2.10",), Status.CRITICAL,
                        "the only resolver never answers"),
    "one_dead_resolver": ("web1.ci.test", ("192.0.2.10",), Status.CRITICAL,
                          "one resolver is a closed port, the other answers correctly"),
}
