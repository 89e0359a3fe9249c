"""The collector's code passes ruff and mypy --strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    assert found, f"{name} is not installed (it is in the project's test extras)"
    return found


def test_ruff_is_clean():
    proc = subprocess.run(
        [_tool("ruff"), "check", "collector", "tests/collector", "tests/services"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean():
    proc = subprocess.run(
        [_tool("mypy"), "--strict", "-p", "collector"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=280,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
