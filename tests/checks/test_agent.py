"""The agent self-check: judged from the figures the agent reports about itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from checks.agent import AgentCheck, AgentFacts, AgentSelfConfig, evaluate
from checks.config import ConfigError, build
from checks.registry import CheckContext, load
from checks.result import Status

NOW = 1_700_000_000.0
HEALTHY: dict[str, Any] = {
    "version": "0.1.0",
    "started_at": NOW - (3 * 3600 + 12 * 60),
    "spool_depth": 0,
    "spool_bytes": 0,
    "spool_oldest_age": None,
    "spool_dropped_total": 0,
    "send_failures_total": 2,
    "last_push_ok_at": NOW - 30,
}


def judge(info: Mapping[str, Any], previous_dropped: int | None = None,
          config: AgentSelfConfig | None = None) -> tuple[Status, str]:
    result = evaluate(AgentFacts.from_info(info), config or AgentSelfConfig(), check="self",
                      now=NOW, previous_dropped_total=previous_dropped)
    return result.status, result.summary


@pytest.mark.parametrize(
    ("changes", "previous_dropped", "status", "summary"),
    [
        ({}, None, Status.OK, "agent 0.1.0 up 3h12m, spool 0 results"),
        ({"spool_depth": 1, "spool_oldest_age": 40.0}, None, Status.OK,
         "agent 0.1.0 up 3h12m, spool 1 result"),
        ({"spool_depth": 120, "spool_oldest_age": 900.0}, None, Status.OK,
         "agent 0.1.0 up 3h12m, spool 120 results"),
        ({"spool_depth": 120, "spool_oldest_age": 1020.0}, None, Status.WARNING,
         "agent 0.1.0 up 3h12m, spool 120 results; oldest spooled result 17m old"),
        ({"spool_dropped_total": 7}, 7, Status.OK, "agent 0.1.0 up 3h12m, spool 0 results"),
        ({"spool_dropped_total": 12}, 7, Status.WARNING,
         "agent 0.1.0 up 3h12m, spool 0 results; 5 results dropped since last run"),
        # a smaller total: the agent restarted and its counter began again
        ({"spool_dropped_total": 1}, 7, Status.OK, "agent 0.1.0 up 3h12m, spool 0 results"),
        # first run: nothing to compare the total with yet
        ({"spool_dropped_total": 40}, None, Status.OK, "agent 0.1.0 up 3h12m, spool 0 results"),
        ({"spool_oldest_age": "soon"}, None, Status.UNKNOWN,
         "agent 0.1.0 up 3h12m, spool 0 results; spool age unknown"),
    ],
)
def test_agent_judgement(
    changes: dict[str, Any], previous_dropped: int | None, status: Status, summary: str
) -> None:
    assert judge({**HEALTHY, **changes}, previous_dropped) == (status, summary)


def test_missing_keys_are_unknown_values_not_a_crash() -> None:
    status, summary = judge({})
    assert status is Status.UNKNOWN
    assert summary == ("agent (version unknown) uptime unknown, spool unknown; "
                       "spool age unknown, dropped count unknown")


def test_metrics_and_details() -> None:
    info = {**HEALTHY, "spool_depth": 3, "spool_bytes": 4096, "spool_oldest_age": 12.5,
            "spool_dropped_total": 1}
    result = evaluate(AgentFacts.from_info(info), AgentSelfConfig(), check="self", now=NOW,
                      previous_dropped_total=None)
    assert result.target == ""
    assert result.perfdata() == (
        "'uptime_seconds'=11520s;;;0 'spool_depth'=3;;;0 'spool_bytes'=4096B;;;0 "
        "'spool_oldest_age_seconds'=12.5s;900;;0 'spool_dropped_total'=1c;;;0"
    )
    assert result.details["send_failures_total"] == 2
    assert result.details["last_push_ok_at"] == NOW - 30


def test_custom_spool_age_and_config_errors() -> None:
    config = build(AgentSelfConfig, {"spool_age_warn": "2m"})
    assert judge({**HEALTHY, "spool_oldest_age": 150.0}, config=config)[0] is Status.WARNING
    with pytest.raises(ConfigError) as caught:
        build(AgentSelfConfig, {"spool_age": "2m"}, key="checks.self")
    assert caught.value.key == "checks.self.spool_age"


def test_the_check_remembers_the_dropped_total_between_runs(tmp_path: Path) -> None:
    info = dict(HEALTHY)
    context = CheckContext(name="self", state_dir=tmp_path, clock=lambda: NOW,
                           agent_info=lambda: info)
    assert load("agent") is AgentCheck
    check = AgentCheck(AgentSelfConfig(), context)
    assert check.run()[0].status is Status.OK
    info["spool_dropped_total"] = 3
    dropped = check.run()[0]
    assert dropped.status is Status.WARNING
    assert dropped.details["dropped_since_last_run"] == 3
    assert check.run()[0].status is Status.OK  # no new drops since
