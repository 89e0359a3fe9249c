"""The result vocabulary shared by the agent, the checks and the collector.

A check produces ``CheckResult`` values. They are frozen, cheap, and travel to the
collector as plain JSON (``to_wire``/``from_wire``); the same shape is stored there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    """Nagios plugin return codes; the value is also the agent's exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        """Rank for worst-of: CRITICAL > UNKNOWN > WARNING > OK (so not the plain value)."""
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of several statuses; OK when there are none."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


@dataclass(frozen=True, slots=True)
class Metric:
    """One measured value with its unit and the thresholds it was judged against."""

    name: str
    value: float
    unit: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None

    def perfdata(self) -> str:
        """Render as Nagios perfdata: ``'label'=value[UOM];warn;crit;min;max``."""
        label = self.name.replace("'", "''")
        fields = [_num(self.warn), _num(self.crit), _num(self.min), _num(self.max)]
        while fields and fields[-1] == "":
            fields.pop()
        head = f"'{label}'={_num(self.value)}{_perf_unit(self.unit)}"
        return ";".join([head, *fields])

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form, leaving out unset thresholds."""
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        for key in ("unit", "warn", "crit", "min", "max"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        return out


# Nagios knows a few units; everything else is written without one so that
# perfdata parsers do not reject it ("B/s", "s/GB" are not valid UOMs).
_PERFDATA_UNITS = {"s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"}


def _perf_unit(unit: str) -> str:
    return unit if unit in _PERFDATA_UNITS else ""


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "U"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found about one target (a mount point, a resolver, ...)."""

    check: str
    target: str
    status: Status
    summary: str
    metrics: tuple[Metric, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def perfdata(self) -> str:
        """All metrics as one perfdata string."""
        return " ".join(m.perfdata() for m in self.metrics)

    def plugin_line(self) -> str:
        """The line a Nagios plugin would print: ``STATUS - summary | perfdata``."""
        line = f"{self.status.name} - {self.summary}"
        perf = self.perfdata()
        return f"{line} | {perf}" if perf else line

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON form, as pushed to the collector."""
        return {
            "check": self.check,
            "target": self.target,
            "status": int(self.status),
            "summary": self.summary,
            "metrics": [m.to_wire() for m in self.metrics],
            "details": dict(self.details),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CheckResult:
        """Inverse of ``to_wire``."""
        return cls(
            check=data["check"],
            target=data["target"],
            status=Status(data["status"]),
            summary=data["summary"],
            metrics=tuple(Metric(**m) for m in data.get("metrics", ())),
            details=dict(data.get("details", {})),
        )


def unknown(check: str, target: str, reason: str, **details: Any) -> CheckResult:
    """A result for a check that could not run: never OK, always with the reason."""
    return CheckResult(
        check, target, Status.UNKNOWN, reason[:200], (), {"error": reason, **details}
    )
