"""The check types the agent knows, imported only when a config uses them.

Each entry names ``module:Class``. The class follows the ``CheckType`` protocol: it has
a ``type_name``, a frozen ``Config`` dataclass (see ``checks.config``), is built from
that config and a ``CheckContext``, and its ``run()`` returns results. ``run()`` may do
blocking I/O; the agent's runner puts it under a timeout in a worker thread and turns
any exception into UNKNOWN, so a check never needs a catch-all of its own.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from checks.result import CheckResult

# Lazy on purpose: an agent that runs only `disk` never imports the DNS or MySQL code.
CHECK_TYPES: Mapping[str, str] = {
    "agent": "checks.agent:AgentCheck",
    "backup": "checks.backup:BackupCheck",
    "disk": "checks.disk:DiskCheck",
    "dns": "checks.dns:DnsCheck",
    "firewall": "checks.firewall:FirewallCheck",
    "intrusion": "checks.intrusion:IntrusionCheck",
    "logrotate": "checks.logrotate:LogrotateCheck",
    "mysql_replication": "checks.mysql_replication:MysqlReplicationCheck",
    "ntp": "checks.ntp:NtpCheck",
    "os_updates": "checks.os_updates:OsUpdatesCheck",
}


@dataclass(frozen=True)
class CheckContext:
    """What a check may touch outside itself, passed in so tests can replace it."""

    name: str
    """The instance name from the config (``[checks.<name>]``); results carry it."""
    state_dir: Path
    """A directory the check may keep small state in (history between runs)."""
    timeout: float = 30.0
    """Seconds the runner allows one run; inner timeouts should fit inside it."""
    clock: Callable[[], float] = time.time
    agent_info: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    """For the ``agent`` self-check: version, uptime, spool figures."""


class CheckType(Protocol):
    """The shape every check class has."""

    type_name: ClassVar[str]
    Config: ClassVar[type[Any]]

    def __init__(self, config: Any, context: CheckContext) -> None: ...

    def run(self) -> list[CheckResult]: ...


class UnknownCheckType(KeyError):
    """No check type of that name."""


def load(type_name: str) -> type[CheckType]:
    """The class for ``type_name``, importing its module on first use."""
    try:
        target = CHECK_TYPES[type_name]
    except KeyError:
        known = ", ".join(sorted(CHECK_TYPES))
        raise UnknownCheckType(f"unknown check type {type_name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    cls: type[CheckType] = getattr(importlib.import_module(module_name), class_name)
    return cls
