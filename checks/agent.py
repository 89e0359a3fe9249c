"""The ``agent`` self-check: is the agent itself delivering its results?

The agent reports its own figures through ``CheckContext.agent_info``; ``evaluate`` judges
them without I/O. A spool that keeps old results means pushes are failing; a dropped
counter that grew means results were lost because the spool was full. Reference of the
keys: docs/checks/agent.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from checks.config import Seconds
from checks.growth import format_duration
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, worst


@dataclass(frozen=True)
class AgentSelfConfig:
    """``[checks.<name>]`` of type ``agent``."""

    spool_age_warn: Seconds = Seconds(15 * 60)


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """The agent's own figures; None where ``agent_info`` did not give a usable value."""

    version: str | None = None
    started_at: float | None = None
    spool_depth: int | None = None
    spool_bytes: int | None = None
    spool_oldest_age: float | None = None
    spool_oldest_known: bool = False
    """True when ``spool_oldest_age`` was reported (None then means an empty spool)."""
    spool_dropped_total: int | None = None
    send_failures_total: int | None = None
    last_push_ok_at: float | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> AgentFacts:
        """From ``agent_info()``; missing or mistyped values become None, never an error."""
        oldest_known = "spool_oldest_age" in info and (
            info["spool_oldest_age"] is None or _number(info["spool_oldest_age"]) is not None
        )
        version = info.get("version")
        return cls(
            version=version if isinstance(version, str) else None,
            started_at=_number(info.get("started_at")),
            spool_depth=_count(info.get("spool_depth")),
            spool_bytes=_count(info.get("spool_bytes")),
            spool_oldest_age=_number(info.get("spool_oldest_age")),
            spool_oldest_known=oldest_known,
            spool_dropped_total=_count(info.get("spool_dropped_total")),
            send_failures_total=_count(info.get("send_failures_total")),
            last_push_ok_at=_number(info.get("last_push_ok_at")),
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def evaluate(
    facts: AgentFacts,
    config: AgentSelfConfig,
    *,
    check: str,
    now: float,
    previous_dropped_total: int | None,
) -> CheckResult:
    """Judge the agent's figures: old spool or new drops are WARNING, unknowns UNKNOWN."""
    statuses: list[Status] = []
    problems: list[str] = []

    if not facts.spool_oldest_known:
        statuses.append(Status.UNKNOWN)
        problems.append("spool age unknown")
    elif facts.spool_oldest_age is not None and facts.spool_oldest_age > config.spool_age_warn:
        statuses.append(Status.WARNING)
        problems.append(f"oldest spooled result {format_duration(facts.spool_oldest_age)} old")

    dropped_since = None
    if facts.spool_dropped_total is None:
        statuses.append(Status.UNKNOWN)
        problems.append("dropped count unknown")
    elif previous_dropped_total is not None:
        # A smaller total means the agent restarted and its counter began again.
        dropped_since = max(0, facts.spool_dropped_total - previous_dropped_total)
        if dropped_since:
            statuses.append(Status.WARNING)
            problems.append(f"{dropped_since} results dropped since last run")

    uptime = now - facts.started_at if facts.started_at is not None else None
    metrics = []
    if uptime is not None:
        metrics.append(Metric("uptime_seconds", round(max(0.0, uptime), 1), "s", min=0))
    if facts.spool_depth is not None:
        metrics.append(Metric("spool_depth", facts.spool_depth, min=0))
    if facts.spool_bytes is not None:
        metrics.append(Metric("spool_bytes", facts.spool_bytes, "B", min=0))
    if facts.spool_oldest_known:
        metrics.append(
            Metric("spool_oldest_age_seconds", round(facts.spool_oldest_age or 0.0, 1), "s",
                   warn=config.spool_age_warn, min=0)
        )
    if facts.spool_dropped_total is not None:
        metrics.append(Metric("spool_dropped_total", facts.spool_dropped_total, "c", min=0))

    version = facts.version or "(version unknown)"
    up = f"up {format_duration(uptime)}" if uptime is not None else "uptime unknown"
    if facts.spool_depth is None:
        spool = "spool unknown"
    else:
        spool = f"spool {facts.spool_depth} result{'s' if facts.spool_depth != 1 else ''}"
    summary = f"agent {version} {up}, {spool}"
    if problems:
        summary += "; " + ", ".join(problems)

    details: dict[str, Any] = {
        "version": facts.version,
        "started_at": facts.started_at,
        "send_failures_total": facts.send_failures_total,
        "last_push_ok_at": facts.last_push_ok_at,
        "dropped_since_last_run": dropped_since,
    }
    return CheckResult(check, "", worst(statuses), summary, tuple(metrics), details)


class AgentCheck:
    """The agent's own health: uptime, spool depth and age, dropped results."""

    type_name: ClassVar[str] = "agent"
    Config: ClassVar[type[AgentSelfConfig]] = AgentSelfConfig

    def __init__(self, config: AgentSelfConfig, context: CheckContext) -> None:
        self.config = config
        self.context = context
        self._previous_dropped_total: int | None = None

    def run(self) -> list[CheckResult]:
        """Read the agent's figures and judge them against the previous run."""
        facts = AgentFacts.from_info(self.context.agent_info())
        result = evaluate(
            facts,
            self.config,
            check=self.context.name,
            now=self.context.clock(),
            previous_dropped_total=self._previous_dropped_total,
        )
        if facts.spool_dropped_total is not None:
            self._previous_dropped_total = facts.spool_dropped_total
        return [result]
