"""Debian's Prometheus programs (promtool, prometheus) for the metrics tests."""

from __future__ import annotations

import shutil

import pytest


def prometheus_tool(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; a missing one fails the test (never skips),
    naming the Debian package that brings it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package 'prometheus'")
    return path
