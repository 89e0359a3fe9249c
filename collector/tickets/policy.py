"""Which priority a problem found by monitoring gets: configured rules, then the policy's table.

``priority_for`` judges one non-OK result. The operator's rules (``[[priority.rules]]``)
are tried in order and the first that matches wins; then the built-in table, which is the
support policy's "Default priority for problems found by monitoring"; then a fallback by
status, so that every problem gets a ticket. ``classify`` maps a result of each check
type to the row of the policy's table it belongs to, from the result's target and details.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from checks.config import ConfigError
from checks.result import Status
from collector.tickets.priority import Priority, PriorityError

SILENCE_CHECK_TYPE = "silence"
"""The check type of the collector's own host-silence problem."""
AGENT_VERSION_CHECK_TYPE = "agent_version"
"""The check type of the collector's own "agent version no longer supported" problem."""


class Problem(StrEnum):
    """A row of the policy's default table (and two rows the policy leaves open)."""

    FILESYSTEM_FULL = "filesystem_full"
    DISK_THRESHOLD = "disk_threshold"
    LOG_ROTATION = "log_rotation"
    BACKUP = "backup"
    REPLICATION_STOPPED = "replication_stopped"
    REPLICATION_LAG = "replication_lag"
    CLOCK = "clock"
    DNS_FORWARD = "dns_forward"
    DNS_REVERSE = "dns_reverse"
    FIREWALL_NOT_DENYING = "firewall_not_denying"
    FIREWALL_DRIFT = "firewall_drift"
    INTRUSION = "intrusion"
    SECURITY_UPDATES = "security_updates"
    REBOOT_REQUIRED = "reboot_required"
    PACKAGE_METADATA = "package_metadata"
    HOST_SILENT = "host_silent"
    AGENT_VERSION = "agent_version"


@dataclass(frozen=True, slots=True)
class DefaultRow:
    """One line of the default table: a problem and its priority per status (None: blank)."""

    problem: Problem
    text: str
    critical: Priority | None
    warning: Priority | None
    in_policy: bool = True


P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4

DEFAULT_TABLE: tuple[DefaultRow, ...] = (
    DefaultRow(Problem.FILESYSTEM_FULL, "filesystem full (no space or inodes left)", P1, None),
    DefaultRow(Problem.DISK_THRESHOLD,
               "disk space or inodes over threshold, or full within the warning horizon", P2, P3),
    DefaultRow(Problem.LOG_ROTATION,
               "log rotation not happening, rotated logs not compressed", P3, P4),
    DefaultRow(Problem.BACKUP, "backup missing, stale, empty or shrunk", P3, P4),
    DefaultRow(Problem.REPLICATION_STOPPED, "replication stopped or failing", P2, None),
    DefaultRow(Problem.REPLICATION_LAG, "replication lag over threshold", P2, P3),
    DefaultRow(Problem.CLOCK, "clock offset over threshold, no synchronised time source", P2, P3),
    DefaultRow(Problem.DNS_FORWARD, "forward resolution failing, resolvers not answering", P2, P3),
    DefaultRow(Problem.DNS_REVERSE, "reverse resolution missing or not matching", P3, P4),
    DefaultRow(Problem.FIREWALL_NOT_DENYING, "firewall not loaded or not default-deny", P1, None),
    DefaultRow(Problem.FIREWALL_DRIFT, "firewall ruleset differs from its approved baseline",
               P2, P3),
    DefaultRow(Problem.INTRUSION, "burst of failed logins, unexpected listening port", P2, P3),
    DefaultRow(Problem.SECURITY_UPDATES, "pending security updates", P4, P4),
    DefaultRow(Problem.REBOOT_REQUIRED, "reboot required after updates", P4, P4, in_policy=False),
    DefaultRow(Problem.PACKAGE_METADATA, "package lists not refreshed", P4, P4, in_policy=False),
    DefaultRow(Problem.HOST_SILENT, "agent not reporting (host silent)", P2, None),
    DefaultRow(Problem.AGENT_VERSION, "agent version no longer supported", None, P4),
)
CRITICAL_HOST_SILENT = P1
"""Host silence of a host marked critical: the policy's "P1 for hosts marked critical"."""


def default_row(problem: Problem) -> DefaultRow:
    """The default table's row for ``problem``."""
    return next(row for row in DEFAULT_TABLE if row.problem is problem)


# ---------------------------------------------------------------------------- classify

_DNS_REVERSE_CONDITIONS = frozenset({"ptr_missing", "ptr_mismatch", "ptr_unconfirmed"})
_DNS_QUESTIONS = {"forward": Problem.DNS_FORWARD, "reverse": Problem.DNS_REVERSE}
_MYSQL_LAG_STATES = frozenset({"lagging", "lag_unknown"})
_NTP_CLOCK_TARGETS = frozenset({"offset", "local"})


def classify(*, check_type: str, target: str, details: Mapping[str, Any]) -> Problem | None:
    """The row of the default table a result of ``check_type`` belongs to; None if no row."""
    if check_type == "disk":
        if details.get("condition") == "full":
            return Problem.FILESYSTEM_FULL
        return Problem.DISK_THRESHOLD
    if check_type == "logrotate":
        return Problem.LOG_ROTATION
    if check_type == "backup":
        return Problem.BACKUP
    if check_type == "mysql_replication":
        if details.get("state") in _MYSQL_LAG_STATES:
            return Problem.REPLICATION_LAG
        return Problem.REPLICATION_STOPPED
    if check_type == "ntp":
        # A single server that does not answer is about that server, not the clock.
        return Problem.CLOCK if target in _NTP_CLOCK_TARGETS else None
    if check_type == "dns":
        # The check says which question decided the result; agents from before it did
        # are judged by the condition, where a failed PTR question counts as forward.
        question = details.get("question")
        if question in _DNS_QUESTIONS:
            return _DNS_QUESTIONS[question]
        if details.get("condition") in _DNS_REVERSE_CONDITIONS:
            return Problem.DNS_REVERSE
        return Problem.DNS_FORWARD
    if check_type == "firewall":
        if target == "input":
            return Problem.FIREWALL_NOT_DENYING
        if target == "baseline":
            return Problem.FIREWALL_DRIFT
        if target == "open_ports":
            return Problem.INTRUSION
        return None
    if check_type == "intrusion":
        return Problem.INTRUSION
    if check_type == "os_updates":
        return {"security": Problem.SECURITY_UPDATES, "reboot": Problem.REBOOT_REQUIRED,
                "metadata": Problem.PACKAGE_METADATA}.get(target)
    if check_type == SILENCE_CHECK_TYPE:
        return Problem.HOST_SILENT
    if check_type == AGENT_VERSION_CHECK_TYPE:
        return Problem.AGENT_VERSION
    return None


# ---------------------------------------------------------------------------- rules

_STATUS_NAMES = {"critical": Status.CRITICAL, "warning": Status.WARNING,
                 "unknown": Status.UNKNOWN}


@dataclass(frozen=True, slots=True)
class PriorityRule:
    """An operator's rule: every given condition must hold; an absent one matches anything."""

    priority: Priority
    key: str
    """Where it was configured, e.g. ``priority.rules[2]``: named in every decision."""
    name: str = ""
    check_types: frozenset[str] | None = None
    statuses: frozenset[Status] | None = None
    customers: frozenset[str] | None = None
    host_tags: frozenset[str] = frozenset()
    """All of these tags must be on the host."""
    targets: tuple[str, ...] = ()
    """Shell-style globs; one must match the target."""
    problems: frozenset[Problem] | None = None
    host_critical: bool | None = None

    def matches(self, *, check_type: str, status: Status, target: str, customer: str,
                host_tags: Collection[str], host_critical: bool,
                problem: Problem | None) -> bool:
        """True when the result meets every condition of this rule."""
        return (
            (self.check_types is None or check_type in self.check_types)
            and (self.statuses is None or status in self.statuses)
            and (self.customers is None or customer in self.customers)
            and self.host_tags.issubset(host_tags)
            and (not self.targets
                 or any(fnmatch.fnmatchcase(target, glob) for glob in self.targets))
            and (self.problems is None or problem in self.problems)
            and (self.host_critical is None or self.host_critical == host_critical)
        )

    @property
    def label(self) -> str:
        """How a decision names this rule."""
        return f"{self.key} ({self.name})" if self.name else self.key


@dataclass(frozen=True, slots=True)
class PriorityPolicy:
    """The ``[priority]`` section: rules first, then the default table, then the fallbacks."""

    rules: tuple[PriorityRule, ...] = ()
    fallback_critical: Priority = P3
    """A CRITICAL result the default table gives no priority."""
    fallback_warning: Priority = P4
    """A WARNING result the default table gives no priority."""
    unknown: Priority = P4
    """An UNKNOWN result (the check could not run) that no rule matched."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, key: str = "priority") -> PriorityPolicy:
        """The policy from the collector's ``[priority]`` table; ConfigError names a bad key."""
        if not isinstance(table, Mapping):
            raise ConfigError(key, "expected a table")
        allowed = {"rules", "fallback_critical", "fallback_warning", "unknown"}
        _refuse_unknown(table, allowed, key)
        values: dict[str, Any] = {}
        for name in ("fallback_critical", "fallback_warning", "unknown"):
            if name in table:
                values[name] = _priority(table[name], f"{key}.{name}")
        rules = table.get("rules", [])
        if not isinstance(rules, list):
            raise ConfigError(f"{key}.rules", "expected an array of tables ([[priority.rules]])")
        values["rules"] = tuple(_rule(r, f"{key}.rules[{i}]") for i, r in enumerate(rules))
        return cls(**values)


_RULE_KEYS = {"priority", "name", "check_type", "status", "customer", "host_tags", "target",
              "problem", "host_critical"}


def _rule(table: Any, key: str) -> PriorityRule:
    if not isinstance(table, Mapping):
        raise ConfigError(key, "expected a table")
    _refuse_unknown(table, _RULE_KEYS, key)
    if "priority" not in table:
        raise ConfigError(f"{key}.priority", "required key is missing")
    name = table.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name", "expected a string")
    statuses = None
    if "status" in table:
        words = _strings(table["status"], f"{key}.status")
        unknown = [w for w in words if w.lower() not in _STATUS_NAMES]
        if unknown:
            raise ConfigError(f"{key}.status", f"not a problem status: {unknown[0]!r} "
                              "(use critical, warning, unknown)")
        statuses = frozenset(_STATUS_NAMES[w.lower()] for w in words)
    problems = None
    if "problem" in table:
        words = _strings(table["problem"], f"{key}.problem")
        known = {p.value for p in Problem}
        bad = [w for w in words if w not in known]
        if bad:
            raise ConfigError(f"{key}.problem", f"not a problem: {bad[0]!r} "
                              f"(known: {', '.join(sorted(known))})")
        problems = frozenset(Problem(w) for w in words)
    host_critical = table.get("host_critical")
    if host_critical is not None and not isinstance(host_critical, bool):
        raise ConfigError(f"{key}.host_critical", "expected true or false")
    return PriorityRule(
        priority=_priority(table["priority"], f"{key}.priority"),
        key=key,
        name=name,
        check_types=_optional_set(table, "check_type", key),
        statuses=statuses,
        customers=_optional_set(table, "customer", key),
        host_tags=_optional_set(table, "host_tags", key) or frozenset(),
        targets=tuple(sorted(_optional_set(table, "target", key) or ())),
        problems=problems,
        host_critical=host_critical,
    )


def _refuse_unknown(table: Mapping[str, Any], allowed: set[str], key: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}",
                          f"unknown key (allowed here: {', '.join(sorted(allowed))})")


def _priority(value: Any, key: str) -> Priority:
    try:
        return Priority.parse(value)
    except PriorityError as err:
        raise ConfigError(key, str(err)) from None


def _strings(value: Any, key: str) -> list[str]:
    """A string or an array of non-empty strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(key, "expected a non-empty string or an array of them")
    if not items:
        raise ConfigError(key, "expected at least one value")
    return items


def _optional_set(table: Mapping[str, Any], name: str, key: str) -> frozenset[str] | None:
    if name not in table:
        return None
    return frozenset(_strings(table[name], f"{key}.{name}"))


# ---------------------------------------------------------------------------- decide


@dataclass(frozen=True, slots=True)
class Decision:
    """The priority for a problem and what decided it, for the audit log."""

    priority: Priority
    rule: str
    problem: Problem | None = None


def priority_for(
    *,
    policy: PriorityPolicy,
    check_type: str,
    status: Status,
    target: str,
    customer: str,
    host_tags: Collection[str],
    host_critical: bool,
    details: Mapping[str, Any],
) -> Decision | None:
    """The priority of a non-OK result; None for OK, which opens no ticket."""
    status = Status(status)
    if status is Status.OK:
        return None
    problem = classify(check_type=check_type, target=target, details=details)
    for rule in policy.rules:
        if rule.matches(check_type=check_type, status=status, target=target,
                        customer=customer, host_tags=host_tags,
                        host_critical=host_critical, problem=problem):
            return Decision(rule.priority, rule.label, problem)
    if status is Status.UNKNOWN:
        return Decision(policy.unknown, "priority.unknown: the check could not run", problem)
    if problem is not None:
        row = default_row(problem)
        if problem is Problem.HOST_SILENT and host_critical:
            return Decision(CRITICAL_HOST_SILENT,
                            f"default: {row.text}, host marked critical", problem)
        cell = row.critical if status is Status.CRITICAL else row.warning
        if cell is not None:
            return Decision(cell, f"default: {row.text}, {status.name}", problem)
    if status is Status.CRITICAL:
        return Decision(policy.fallback_critical,
                        "priority.fallback_critical: no default for this CRITICAL result",
                        problem)
    return Decision(policy.fallback_warning,
                    "priority.fallback_warning: no default for this WARNING result", problem)
