"""Checks: the result vocabulary, the registry of check types, and the checks."""

from checks.result import CheckResult, Metric, Status, worst

__all__ = ["CheckResult", "Metric", "Status", "worst"]
