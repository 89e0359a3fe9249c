from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent import fakes


@pytest.fixture(autouse=True)
def _release_hung_checks() -> Iterator[None]:
    fakes.RELEASE.clear()
    fakes.STARTS.clear()
    yield
    fakes.RELEASE.set()


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write an agent config under tmp_path; returns its path."""

    def write(text: str, name: str = "agent.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
