"""The pure judgement of the logrotate check: every status boundary and failure kind."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from checks.config import ConfigError, Seconds, build
from checks.logrotate import (
    Facts,
    LogFacts,
    LogrotateConfig,
    RotatedFile,
    Seen,
    StateFacts,
    UncoveredLog,
    evaluate,
    evaluate_log,
    evaluate_state,
    evaluate_uncovered,
    slack_for,
    state_limits,
)
from checks.logrotate_conf import DAY, HOUR, ConfigProblem, LogSettings
from checks.result import CheckResult, Status

NOW = 1_800_000_000.0
LOG = "/var/log/app/app.log"
DAILY = LogSettings(period=DAY, period_name="daily", rotate=7)
HOURLY = LogSettings(period=HOUR, period_name="hourly", rotate=24)
SIZE_ONLY = LogSettings(period=None, period_name="size", size=10_000, rotate=5)
WARN = DAY + 12 * HOUR  # daily: one period plus 12 h slack
CRIT = 3 * DAY + 12 * HOUR


def rotated(age: float, name: str = "app.log.1.gz", *, compressed: bool = True,
            inode: int = 11) -> RotatedFile:
    return RotatedFile(f"/var/log/app/{name}", NOW - age, 100, compressed, inode)


def log(
    settings: LogSettings = DAILY,
    *,
    size: int = 5000,
    rotated_files: tuple[RotatedFile, ...] = (),
    state_age: float | None = None,
    exists: bool = True,
    error: str = "",
    previous: Seen | None = None,
) -> LogFacts:
    return LogFacts(
        LOG, LOG, settings, exists, size, NOW, rotated_files,
        None if state_age is None else NOW - state_age, error, previous,
    )


@dataclass(frozen=True)
class Case:
    name: str
    facts: LogFacts
    status: Status
    condition: str
    config: LogrotateConfig = field(default_factory=LogrotateConfig)


def fresh(age: float) -> tuple[RotatedFile, ...]:
    return (rotated(age),)


CASES = [
    # Rotation age against period + slack (warn) and 3 periods + slack (crit).
    Case("rotated an hour ago", log(rotated_files=fresh(HOUR), state_age=HOUR), Status.OK, "ok"),
    Case("just below warn", log(rotated_files=fresh(WARN - 1), state_age=WARN - 1),
         Status.OK, "ok"),
    Case("at warn", log(rotated_files=fresh(WARN), state_age=WARN), Status.OK, "ok"),
    Case("just above warn", log(rotated_files=fresh(WARN + 1), state_age=WARN + 1),
         Status.WARNING, "not_rotated"),
    Case("at crit", log(rotated_files=fresh(CRIT), state_age=CRIT), Status.WARNING,
         "not_rotated"),
    Case("just above crit", log(rotated_files=fresh(CRIT + 1), state_age=CRIT + 1),
         Status.CRITICAL, "not_rotated"),
    Case("overdue without a state entry", log(rotated_files=fresh(WARN + 1)), Status.WARNING,
         "not_rotated"),
    Case("custom slack", log(rotated_files=fresh(DAY + 2 * HOUR), state_age=DAY + 2 * HOUR),
         Status.WARNING, "not_rotated", LogrotateConfig(slack=Seconds(HOUR))),
    Case("custom critical_periods", log(rotated_files=fresh(2 * DAY), state_age=2 * DAY),
         Status.CRITICAL, "not_rotated", LogrotateConfig(critical_periods=1.0)),
    Case("hourly overdue", log(HOURLY, rotated_files=fresh(91 * 60), state_age=91 * 60),
         Status.WARNING, "not_rotated"),
    Case("hourly at warn", log(HOURLY, rotated_files=fresh(90 * 60), state_age=90 * 60),
         Status.OK, "ok"),
    # Logs that are not expected to rotate.
    Case("empty log is not overdue", log(size=0, rotated_files=fresh(10 * DAY)), Status.OK,
         "ok"),
    Case("below minsize is not overdue",
         log(replace(DAILY, minsize=10_000), size=9_999, rotated_files=fresh(10 * DAY)),
         Status.OK, "ok"),
    Case("at minsize is overdue",
         log(replace(DAILY, minsize=10_000), size=10_000, rotated_files=fresh(10 * DAY)),
         Status.CRITICAL, "not_rotated"),
    Case("rotate 0 keeps nothing to check", log(replace(DAILY, rotate=0), state_age=10 * DAY),
         Status.OK, "ok"),
    Case("new log, no state, nothing rotated", log(), Status.OK, "ok"),
    Case("known to logrotate, never rotated, young", log(state_age=WARN), Status.OK, "ok"),
    Case("known to logrotate, never rotated, overdue", log(state_age=WARN + 1),
         Status.WARNING, "not_rotated"),
    Case("size-only log has no age limit", log(SIZE_ONLY, size=10, rotated_files=fresh(
        30 * DAY), state_age=30 * DAY), Status.OK, "ok"),
    # The state file claims a rotation that no rotated file backs.
    Case("state consistent with rotated file",
         log(rotated_files=fresh(2 * DAY), state_age=2 * DAY - WARN), Status.OK, "ok"),
    Case("state claims rotation, rotated file too old",
         log(rotated_files=fresh(3 * DAY), state_age=60), Status.CRITICAL, "failed_rotation"),
    Case("state claims, rotated file just within a period before",
         log(rotated_files=fresh(WARN + 60), state_age=60), Status.OK, "ok"),
    Case("state claims, rotated file just over a period before",
         log(rotated_files=fresh(WARN + 61), state_age=60), Status.CRITICAL,
         "failed_rotation"),
    Case("late rotation of a quiet log proven by a new inode",
         log(rotated_files=(rotated(5 * DAY, inode=22),), state_age=60,
             previous=Seen(NOW - 600, 11)), Status.OK, "ok"),
    Case("same inode as before: failed",
         log(rotated_files=(rotated(5 * DAY, inode=11),), state_age=60,
             previous=Seen(NOW - 600, 11)), Status.CRITICAL, "failed_rotation"),
    Case("previous look after the claim proves nothing",
         log(rotated_files=(rotated(5 * DAY, inode=22),), state_age=600,
             previous=Seen(NOW - 60, 11)), Status.CRITICAL, "failed_rotation"),
    Case("rotate 0 is never contradicted",
         log(replace(DAILY, rotate=0), rotated_files=fresh(9 * DAY), state_age=60),
         Status.OK, "ok"),
    # Compression.
    Case("compressed rotations", log(replace(DAILY, compress=True),
         rotated_files=(rotated(HOUR), rotated(DAY, "app.log.2.gz")), state_age=HOUR),
         Status.OK, "ok"),
    Case("plain rotation with compress", log(replace(DAILY, compress=True),
         rotated_files=(rotated(HOUR, "app.log.1", compressed=False),), state_age=HOUR),
         Status.WARNING, "uncompressed"),
    Case("delaycompress allows a plain newest", log(
        replace(DAILY, compress=True, delaycompress=True),
        rotated_files=(rotated(HOUR, "app.log.1", compressed=False),
                       rotated(DAY, "app.log.2.gz")), state_age=HOUR), Status.OK, "ok"),
    Case("delaycompress, second one plain", log(
        replace(DAILY, compress=True, delaycompress=True),
        rotated_files=(rotated(HOUR, "app.log.1", compressed=False),
                       rotated(DAY, "app.log.2", compressed=False)), state_age=HOUR),
         Status.WARNING, "uncompressed"),
    Case("no compress configured, plain is fine", log(
        rotated_files=(rotated(HOUR, "app.log.1", compressed=False),), state_age=HOUR),
         Status.OK, "ok"),
    # Live size.
    Case("at maxsize", log(replace(DAILY, maxsize=5000), size=5000, rotated_files=fresh(HOUR),
                           state_age=HOUR), Status.OK, "ok"),
    Case("over maxsize", log(replace(DAILY, maxsize=5000), size=5001,
                             rotated_files=fresh(HOUR), state_age=HOUR),
         Status.WARNING, "oversize"),
    Case("size-only at size", log(SIZE_ONLY, size=10_000), Status.OK, "ok"),
    Case("size-only over size", log(SIZE_ONLY, size=10_001), Status.WARNING, "oversize"),
    Case("daily with size: size not a live limit",
         log(replace(DAILY, size=10), size=10_000, rotated_files=fresh(HOUR), state_age=HOUR),
         Status.OK, "ok"),
    # Presence.
    Case("missing with missingok", log(replace(DAILY, missingok=True), exists=False),
         Status.OK, "absent_missingok"),
    Case("missing without missingok", log(exists=False), Status.WARNING, "missing"),
    # Worst reason wins.
    Case("failed beats oversize", log(replace(DAILY, maxsize=10), size=5000,
                                      rotated_files=fresh(4 * DAY), state_age=10),
         Status.CRITICAL, "failed_rotation"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_log_status_and_condition(case: Case) -> None:
    result = evaluate_log(case.config, case.facts, NOW, check="lr")
    assert (result.status, result.details["condition"]) == (case.status, case.condition), (
        result.summary)
    assert result.target == LOG
    assert result.check == "lr"
    assert len(result.summary) <= 200


def test_unreadable_log_is_unknown() -> None:
    result = evaluate_log(LogrotateConfig(), log(error="cannot stat: Permission denied"), NOW,
                          check="lr")
    assert result.status is Status.UNKNOWN
    assert "Permission denied" in result.summary


def test_summaries_say_what_to_act_on() -> None:
    config = LogrotateConfig()
    overdue = evaluate_log(config, log(rotated_files=fresh(9 * DAY), state_age=9 * DAY), NOW,
                           check="lr")
    assert overdue.summary == "/var/log/app/app.log not rotated for 9.0 days (daily)"
    failed = evaluate_log(config, log(rotated_files=fresh(3 * DAY), state_age=60), NOW,
                          check="lr")
    assert "rotation failing: state says 60s ago, newest rotated is 3.0 days old" in (
        failed.summary)
    both = evaluate_log(config, log(replace(DAILY, maxsize=10, compress=True),
                                    rotated_files=(rotated(9 * DAY, "app.log.1",
                                                           compressed=False),),
                                    state_age=9 * DAY), NOW, check="lr")
    assert both.summary.endswith("(+2 more)")
    assert len(both.details["problems"]) == 3
    metrics = {m.name: m for m in overdue.metrics}
    assert metrics["rotation_age_seconds"].warn == WARN
    assert metrics["rotation_age_seconds"].crit == CRIT
    assert metrics["rotation_age_seconds"].unit == "s"


# ---------------------------------------------------------------------------- state file

STATE = "/var/lib/logrotate/status"


def state_result(age: float, logs: tuple[LogFacts, ...] = (log(),),
                 config: LogrotateConfig | None = None) -> CheckResult:
    facts = StateFacts(STATE, NOW - age, 12)
    return evaluate_state(config or LogrotateConfig(), facts, logs, NOW, check="lr")


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (HOUR, Status.OK),
        (1.5 * DAY, Status.OK),
        (1.5 * DAY + 1, Status.WARNING),
        (3.5 * DAY, Status.WARNING),
        (3.5 * DAY + 1, Status.CRITICAL),
    ],
)
def test_state_age_for_daily_configs(age: float, status: Status) -> None:
    assert state_result(age).status is status


def test_state_limits_follow_the_shortest_period() -> None:
    config = LogrotateConfig()
    assert state_limits(config, (log(HOURLY),)) == (1.5 * HOUR, 3.5 * HOUR)
    # Weekly-only configs still expect the daily run that every distribution schedules.
    weekly = replace(DAILY, period=7 * DAY, period_name="weekly")
    assert state_limits(config, (log(weekly),)) == (1.5 * DAY, 3.5 * DAY)
    assert state_limits(config, ()) == (1.5 * DAY, 3.5 * DAY)
    custom = LogrotateConfig(state_max_age=Seconds(2 * DAY))
    assert state_limits(custom, ()) == (2 * DAY, 3.5 * DAY)
    assert state_result(2 * DAY, config=custom).status is Status.OK
    assert state_result(2 * DAY + 1, config=custom).status is Status.WARNING


def test_missing_state_file_is_unknown() -> None:
    facts = StateFacts(STATE, None, error="state file not found")
    result = evaluate_state(LogrotateConfig(), facts, (), NOW, check="lr")
    assert result.status is Status.UNKNOWN


def test_slack_defaults() -> None:
    config = LogrotateConfig()
    assert slack_for(config, DAY) == 12 * HOUR
    assert slack_for(config, HOUR) == 30 * 60
    assert slack_for(config, 7 * DAY) == 12 * HOUR
    assert slack_for(config, None) == 12 * HOUR
    assert slack_for(LogrotateConfig(slack=Seconds(2 * DAY)), DAY) == 2 * DAY


# ---------------------------------------------------------------------------- uncovered


def test_uncovered_none_is_ok_and_some_is_warning() -> None:
    config = LogrotateConfig()
    assert evaluate_uncovered(config, (), "", check="lr").status is Status.OK
    big = (UncoveredLog("/var/log/a.log", 200 * 1024 * 1024),
           UncoveredLog("/var/log/b/b.log", 300 * 1024 * 1024))
    result = evaluate_uncovered(config, big, "", check="lr")
    assert result.status is Status.WARNING
    assert result.target == "uncovered:/var/log"
    assert result.summary == "/var/log/b/b.log (300 MiB) not covered by logrotate (+1 more)"
    assert result.details["count"] == 2


# ---------------------------------------------------------------------------- whole run


def test_evaluate_caps_results_per_pattern() -> None:
    pattern = "/srv/app/*.log"
    logs = [
        LogFacts(f"/srv/app/s{i:03d}.log", pattern, DAILY, True, 10, NOW, fresh(HOUR), NOW)
        for i in range(100)
    ]
    logs[57] = replace(logs[57], rotated=fresh(9 * DAY), state_time=NOW - 9 * DAY)
    facts = Facts(logs, StateFacts(STATE, NOW, 100))
    results = evaluate(LogrotateConfig(max_logs_per_pattern=5), facts, NOW, check="lr")
    per_pattern = [r for r in results if r.details.get("pattern") == pattern]
    assert len(per_pattern) == 5
    assert per_pattern[0].target == "/srv/app/s057.log"  # the worst is shown, not hidden
    assert per_pattern[0].status is Status.CRITICAL
    assert per_pattern[-1].target == pattern
    assert per_pattern[-1].status is Status.OK
    assert per_pattern[-1].details["counts"] == {"ok": 96}
    assert len(results) == 1 + 5 + 1


def test_config_problems_are_unknown_and_bounded() -> None:
    problems = [ConfigProblem(f"/etc/logrotate.d/app:{i}", "bad size 'x'") for i in range(25)]
    facts = Facts([log(rotated_files=fresh(HOUR), state_age=HOUR)], StateFacts(STATE, NOW),
                  problems=problems)
    results = evaluate(LogrotateConfig(), facts, NOW, check="lr")
    unknowns = [r for r in results if r.status is Status.UNKNOWN]
    assert len(unknowns) == 11
    assert unknowns[0].target == "/etc/logrotate.d/app:0"
    assert unknowns[-1].summary == (
        "logrotate config: 15 more problems, first at /etc/logrotate.d/app:10")
    assert {r.target: r.status for r in results}[LOG] is Status.OK  # the rest still judged


def test_config_error_is_one_unknown() -> None:
    facts = Facts((), StateFacts(STATE, NOW), config_error="configuration not found")
    results = evaluate(LogrotateConfig(), facts, NOW, check="lr")
    assert [(r.status, r.target) for r in results] == [(Status.UNKNOWN, "/etc/logrotate.conf")]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"critical_periods": 0.5}, "critical_periods"),
        ({"watch_depth": -1}, "watch_depth"),
        ({"watch_dirs": ["var/log"]}, "watch_dirs"),
        ({"max_logs_per_pattern": 0}, "max_logs_per_pattern"),
        ({"state_max_age": 0}, "state_max_age"),
        ({"state_file": ""}, "state_file"),
        ({"config_file": ""}, "config_file"),
        ({"config_file": "logrotate.conf"}, "config_file"),
        ({"state_file": "status"}, "state_file"),
        ({"max_walk_entries": 0}, "max_walk_entries"),
        ({"slak": "1h"}, "slak"),
        ({"uncovered_min_size": "lots"}, "uncovered_min_size"),
    ],
)
def test_bad_config_names_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(LogrotateConfig, table)
    assert caught.value.key == key


def test_config_accepts_units() -> None:
    config = build(LogrotateConfig, {"slack": "2h", "uncovered_min_size": "1GiB",
                                     "state_file": "/var/lib/logrotate/logrotate.status"})
    assert config.slack == Seconds(7200)
    assert config.uncovered_min_size == 1024**3
