"""The configuration examples on the SLA page are valid and give the policy's defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from collector.sla import SlaPolicy, calendars_from_table, sla_policy_from_table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sla.md"


def _examples() -> list[dict[str, object]]:
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", PAGE.read_text(),
                                                         re.S)]


def test_the_documented_calendar_example_is_valid():
    calendars = calendars_from_table(_examples()[0]["calendars"])  # type: ignore[arg-type]
    assert calendars["kyiv"].timezone == "Europe/Kyiv"


def test_the_documented_commitments_table_is_the_default():
    assert sla_policy_from_table(_examples()[1]["sla"]) == SlaPolicy.default()  # type: ignore[arg-type]
