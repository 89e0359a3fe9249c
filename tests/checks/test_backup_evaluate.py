"""The pure judgement of the backup check: every boundary of age, size drop, copies, size."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from checks.backup import (
    BackupConfig,
    BackupFile,
    BackupSet,
    SetFacts,
    evaluate,
    evaluate_set,
    format_age,
    parse_name_time,
)
from checks.backup_verify import Integrity, Verdict
from checks.config import Bytes, ConfigError, Percent, Seconds, build
from checks.result import CheckResult, Status

NOW = 1_795_000_000.0
HOUR = 3600.0
DB = BackupSet("db", "/backup/db", "db-*.sql.gz")


def series(sizes: list[int], *, newest_age: float = HOUR, spacing: float = 24 * HOUR,
           ) -> tuple[BackupFile, ...]:
    """Daily files, oldest first, the last ``newest_age`` old, with the given sizes."""
    count = len(sizes)
    files = []
    for i, size in enumerate(sizes):
        made = NOW - newest_age - (count - 1 - i) * spacing
        files.append(BackupFile(f"db-{i:02d}.sql.gz", size, made))
    return tuple(files)


def facts(files: tuple[BackupFile, ...], **extra: Any) -> SetFacts:
    return SetFacts("db", "/backup/db", "db-*.sql.gz", files, **extra)


def judge(files: tuple[BackupFile, ...], backup_set: BackupSet = DB, **extra: Any) -> CheckResult:
    return evaluate_set(backup_set, facts(files, **extra), NOW, check="backup")


SEVEN = [1000] * 7


@dataclass(frozen=True)
class Case:
    name: str
    files: tuple[BackupFile, ...]
    status: Status
    condition: str
    backup_set: BackupSet = DB
    extra: dict[str, Any] = field(default_factory=dict)


def ok(fmt: str = "gzip") -> Integrity:
    return Integrity(Verdict.OK, fmt, bytes_read=1000, size=1000)


CASES = [
    # -- age (max_age_warn 26h, max_age_crit 50h; the limit itself is still fine)
    Case("fresh", series(SEVEN + [1000]), Status.OK, "ok"),
    Case("age just below warn", series(SEVEN + [1000], newest_age=26 * HOUR - 1), Status.OK,
         "ok"),
    Case("age at warn", series(SEVEN + [1000], newest_age=26 * HOUR), Status.OK, "ok"),
    Case("age just above warn", series(SEVEN + [1000], newest_age=26 * HOUR + 1),
         Status.WARNING, "stale"),
    Case("age at crit", series(SEVEN + [1000], newest_age=50 * HOUR), Status.WARNING, "stale"),
    Case("age just above crit", series(SEVEN + [1000], newest_age=50 * HOUR + 1),
         Status.CRITICAL, "stale"),
    Case("age from the future counts as zero", series(SEVEN + [1000], newest_age=-HOUR),
         Status.OK, "ok"),
    Case("hourly schedule", series(SEVEN + [1000], newest_age=2 * HOUR), Status.WARNING, "stale",
         BackupSet("db", "/b", "*", max_age_warn=Seconds(90 * 60), max_age_crit=Seconds(4 * HOUR))),
    # -- size drop against the median of the previous 7 (warn 30 %, crit 70 %)
    Case("drop just below warn", series(SEVEN + [701]), Status.OK, "ok"),
    # 29.96 % shows as 30.0 but is below the threshold.
    Case("drop a hair below warn", series([10000] * 7 + [7004]), Status.OK, "ok"),
    Case("drop at warn", series(SEVEN + [700]), Status.WARNING, "shrunk"),
    Case("drop just below crit", series(SEVEN + [301]), Status.WARNING, "shrunk"),
    Case("drop at crit", series(SEVEN + [300]), Status.CRITICAL, "shrunk"),
    Case("growth is fine", series(SEVEN + [5000]), Status.OK, "ok"),
    Case("one small outlier does not move the median",
         series([10, 1000, 1000, 1000, 1000, 1000, 1000, 650]), Status.WARNING, "shrunk"),
    Case("only the last size_history copies count",
         series([9000] * 5 + [1000] * 7 + [1000]), Status.OK, "ok"),
    Case("custom drop thresholds", series(SEVEN + [850]), Status.CRITICAL, "shrunk",
         BackupSet("db", "/b", "*", drop_warn_pct=Percent(5), drop_crit_pct=Percent(10))),
    # -- a short history is judged leniently: a critical drop is a warning
    Case("no earlier copy", series([10]), Status.OK, "ok"),
    Case("one earlier copy, huge drop", series([1000, 10]), Status.WARNING, "shrunk"),
    Case("two earlier copies, huge drop", series([1000, 1000, 10]), Status.WARNING, "shrunk"),
    Case("three earlier copies, huge drop", series([1000, 1000, 1000, 10]), Status.CRITICAL,
         "shrunk"),
    Case("two earlier copies, warn-level drop", series([1000, 1000, 600]), Status.WARNING,
         "shrunk"),
    # -- size (min_size 1 B by default)
    Case("empty newest", series(SEVEN + [0]), Status.CRITICAL, "empty"),
    Case("one byte is not empty", series([1]), Status.OK, "ok"),
    Case("just below min_size", series([1023]), Status.CRITICAL, "empty",
         BackupSet("db", "/b", "*", min_size=Bytes(1024))),
    Case("at min_size", series([1024]), Status.OK, "ok",
         BackupSet("db", "/b", "*", min_size=Bytes(1024))),
    # -- copies kept (min_copies, a warning below)
    Case("copies just below min", series([1000] * 6), Status.WARNING, "few_copies",
         BackupSet("db", "/b", "*", min_copies=7)),
    Case("copies at min", series([1000] * 7), Status.OK, "ok",
         BackupSet("db", "/b", "*", min_copies=7)),
    # -- nothing there
    Case("no backup at all", (), Status.CRITICAL, "missing"),
    Case("directory missing", (), Status.CRITICAL, "missing",
         extra={"error": "backup directory /backup/db does not exist", "directory_missing": True}),
    # -- integrity
    Case("verified", series(SEVEN + [1000]), Status.OK, "ok", extra={"integrity": ok()}),
    Case("corrupt", series(SEVEN + [1000]), Status.CRITICAL, "corrupt",
         extra={"integrity": Integrity(Verdict.CORRUPT, "gzip", "gzip: incorrect data check")}),
    Case("truncated", series(SEVEN + [1000]), Status.CRITICAL, "truncated",
         extra={"integrity": Integrity(Verdict.TRUNCATED, "xz+tar", "xz stream ends early")}),
    Case("dump without completion", series(SEVEN + [1000]), Status.CRITICAL, "incomplete",
         extra={"integrity": Integrity(Verdict.NO_COMPLETION, "gzip+mysqldump", "no line")}),
    Case("empty inside", series(SEVEN + [1000]), Status.CRITICAL, "empty",
         extra={"integrity": Integrity(Verdict.EMPTY, "gzip", "gzip of 0 bytes")}),
    Case("verification still running", series(SEVEN + [1000]), Status.OK, "ok",
         extra={"integrity": Integrity(Verdict.IN_PROGRESS, "gzip", "", 400, 1000)}),
    Case("not a known format", series(SEVEN + [1000]), Status.OK, "ok",
         extra={"integrity": Integrity(Verdict.NOT_CHECKED, "plain", "no known format")}),
    Case("unreadable", series(SEVEN + [1000]), Status.UNKNOWN, "unverified",
         extra={"integrity": Integrity(Verdict.UNREADABLE, "unknown", "Permission denied")}),
    # -- worst of several reasons: CRITICAL > UNKNOWN > WARNING
    Case("stale warning and corrupt", series(SEVEN + [1000], newest_age=30 * HOUR),
         Status.CRITICAL, "corrupt",
         extra={"integrity": Integrity(Verdict.CORRUPT, "gzip", "bad")}),
    Case("unreadable beats a warning", series(SEVEN + [600]), Status.UNKNOWN, "unverified",
         extra={"integrity": Integrity(Verdict.UNREADABLE, "unknown", "EIO")}),
    Case("critical age beats unreadable", series(SEVEN + [1000], newest_age=60 * HOUR),
         Status.CRITICAL, "stale",
         extra={"integrity": Integrity(Verdict.UNREADABLE, "unknown", "EIO")}),
    Case("empty wins over its own size drop", series(SEVEN + [0]), Status.CRITICAL, "empty"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_status_and_condition(case: Case) -> None:
    result = judge(case.files, case.backup_set, **case.extra)
    assert (result.status, result.details["condition"]) == (case.status, case.condition), \
        result.summary
    assert result.target == "db"
    assert result.check == "backup"
    assert len(result.summary) <= 90, result.summary


def test_size_drop_summary_reads_like_a_ticket_subject() -> None:
    files = series(SEVEN + [420])
    files = files[:-1] + (BackupFile("db-2026-11-20.sql.gz", 420, files[-1].mtime),)
    result = judge(files)
    assert result.summary == "backup db-2026-11-20.sql.gz is 58 % smaller than the median of " \
                             "the last 7"
    assert result.status is Status.WARNING
    metrics = {m.name: m for m in result.metrics}
    assert metrics["size_drop_pct"].value == 58.0
    assert (metrics["size_drop_pct"].warn, metrics["size_drop_pct"].crit) == (30, 70)
    assert metrics["median_previous_bytes"].value == 1000
    assert result.details["previous_sizes"] == [1000] * 7


def test_short_history_says_so() -> None:
    result = judge(series([1000, 1000, 10]))
    assert result.summary.endswith("(short history)")
    assert "only 2 earlier copies" in result.details["size_note"]
    assert judge(series([50])).details["size_note"] == "no earlier copy to compare with"
    assert "size_note" not in judge(series([1000] * 4)).details
    assert judge(series([1000, 10])).details["size_note"].startswith("only 1 earlier copy to")


@pytest.mark.parametrize(
    ("files", "extra", "expected"),
    [
        (series(SEVEN + [1000], newest_age=30 * HOUR), {},
         "newest backup db-07.sql.gz is 30h old (max 26h)"),
        (series(SEVEN + [1000], newest_age=80 * HOUR), {},
         "newest backup db-07.sql.gz is 3d old (max 50h)"),
        (series(SEVEN + [0]), {}, "backup db-07.sql.gz is empty (0 B)"),
        ((), {}, "no backup matching db-*.sql.gz in /backup/db"),
        ((), {"being_written": ("db-08.sql.gz",)},
         "no backup matching db-*.sql.gz in /backup/db (1 being written)"),
        (series([1000, 1000]), {"integrity": Integrity(Verdict.TRUNCATED, "gzip+tar")},
         "backup db-01.sql.gz is truncated (gzip+tar)"),
        (series([1000]), {"integrity": Integrity(Verdict.EMPTY, "gzip", "gzip of 0 bytes")},
         "backup db-00.sql.gz is empty inside (gzip of 0 bytes)"),
        (series([1000]), {"integrity": Integrity(Verdict.NO_COMPLETION, "xz+mysqldump")},
         "backup db-00.sql.gz has no mysqldump completion line"),
        (series(SEVEN + [2 * 1024**3], newest_age=3 * HOUR), {"integrity": ok("gzip+tar")},
         "db-07.sql.gz 2.0 GiB, 3h old, 8 kept, gzip+tar verified"),
        (series([1000]), {"integrity": Integrity(Verdict.IN_PROGRESS, "xz", "", 250, 1000)},
         "db-00.sql.gz 1000 B, 1h old, 1 kept, verifying (25 %)"),
    ],
)
def test_summaries(files: tuple[BackupFile, ...], extra: dict[str, Any], expected: str) -> None:
    assert judge(files, **extra).summary == expected


def test_every_problem_is_listed_in_details() -> None:
    result = judge(series([1000] * 3 + [100], newest_age=30 * HOUR),
                   BackupSet("db", "/b", "*", min_copies=5))
    conditions = [p["condition"] for p in result.details["problems"]]
    assert conditions == ["stale", "shrunk", "few_copies"]
    assert result.status is Status.CRITICAL and result.details["condition"] == "shrunk"


def test_metrics_carry_units_and_thresholds() -> None:
    result = judge(series(SEVEN + [800], newest_age=2 * HOUR))
    metrics = {m.name: m for m in result.metrics}
    assert (metrics["age_seconds"].value, metrics["age_seconds"].unit) == (7200, "s")
    assert (metrics["age_seconds"].warn, metrics["age_seconds"].crit) == (26 * HOUR, 50 * HOUR)
    assert (metrics["size_bytes"].value, metrics["size_bytes"].unit) == (800, "B")
    assert metrics["copies"].value == 8
    assert metrics["size_drop_pct"].value == 20.0
    assert "'size_drop_pct'=20%;30;70" in result.perfdata()


def test_listing_error_is_unknown_never_ok() -> None:
    result = judge((), error="cannot list /backup/db: Permission denied")
    assert result.status is Status.UNKNOWN
    assert result.details["error"] == "cannot list /backup/db: Permission denied"


def test_only_undated_names_is_unknown() -> None:
    dated = BackupSet("db", "/b", "db-*", name_date="%Y-%m-%d")
    result = judge((), dated, undated=("db-latest.sql.gz",))
    assert result.status is Status.UNKNOWN
    assert result.summary == "no file matching db-*.sql.gz has a date like %Y-%m-%d"


def test_the_name_date_is_the_age_when_configured() -> None:
    # Copied yesterday (fresh mtime) but named three days ago: stale by its name.
    copied = BackupFile("db-2026-11-20.sql.gz", 1000, NOW - HOUR, name_time=NOW - 72 * HOUR)
    dated = BackupSet("db", "/b", "db-*", name_date="%Y-%m-%d")
    result = judge((copied,), dated)
    assert result.status is Status.CRITICAL and result.details["condition"] == "stale"
    assert result.details["ordered_by"] == "name"


def test_evaluate_gives_one_result_per_set_in_config_order() -> None:
    config = BackupConfig(sets=(DB, BackupSet("files", "/backup/files", "*.tar.xz")))
    results = evaluate(config, [facts(series([1000]))], NOW, check="backup")
    assert [r.target for r in results] == ["db", "files"]
    assert results[1].status is Status.UNKNOWN  # not collected is never OK


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "90s"), (45 * 60, "45m"), (HOUR, "1h"), (5400, "1h30m"), (26 * HOUR, "26h"),
     (50 * HOUR + 1800, "50h30m"), (72 * HOUR - 1, "71h59m"), (72 * HOUR, "3d")],
)
def test_format_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


# ---------------------------------------------------------------------------- names


def test_parse_name_time_utc_and_local() -> None:
    regex = BackupSet("x", "/b", "*", name_date="%Y-%m-%d_%H%M").name_regex
    assert regex is not None
    expected = calendar.timegm((2026, 11, 20, 2, 30, 0, 0, 0, 0))
    assert parse_name_time("db-2026-11-20_0230.sql.gz", regex, utc=True) == expected
    assert parse_name_time("db-2026-13-20_0230.sql.gz", regex, utc=True) is None
    assert parse_name_time("db-latest.sql.gz", regex, utc=True) is None
    local = parse_name_time("db-2026-11-20_0230.sql.gz", regex, utc=False)
    assert local == time.mktime((2026, 11, 20, 2, 30, 0, 0, 0, -1))


def test_parse_name_time_literal_percent() -> None:
    regex = BackupSet("x", "/b", "*", name_date="%%%Y%m%d").name_regex
    assert regex is not None
    expected = calendar.timegm((2026, 11, 20, 0, 0, 0, 0, 0, 0))
    assert parse_name_time("a%20261120", regex, utc=True) == expected
    assert parse_name_time("a20261120", regex, utc=True) is None


# ---------------------------------------------------------------------------- config


def build_config(data: dict[str, Any]) -> BackupConfig:
    return build(BackupConfig, data, key="checks.backup")


def a_set(**keys: Any) -> dict[str, Any]:
    return {"name": "db", "directory": "/backup/db", "pattern": "db-*.sql.gz", **keys}


def test_defaults() -> None:
    config = build_config({"sets": [a_set()]})
    s = config.sets[0]
    assert (s.max_age_warn, s.max_age_crit) == (26 * HOUR, 50 * HOUR)
    assert (s.size_history, s.size_min_history) == (7, 3)
    assert (float(s.drop_warn_pct), float(s.drop_crit_pct)) == (30.0, 70.0)
    assert (s.min_size, s.min_copies, s.verify, s.dump, s.name_date) == (1, 1, True, "auto", "")
    assert float(config.verify_time_budget) == 10.0
    assert int(config.verify_bytes_budget) == 2 * 1024**3


def test_durations_and_sizes_are_parsed() -> None:
    config = build_config({"sets": [a_set(max_age_warn="8d", max_age_crit="15d",
                                          min_size="1MiB")]})
    assert float(config.sets[0].max_age_warn) == 8 * 86400.0
    assert config.sets[0].min_size == 1024**2


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({}, "checks.backup.sets", "at least one backup set"),
        ({"sets": []}, "checks.backup.sets", "at least one backup set"),
        ({"sets": {"db": a_set()}}, "checks.backup.sets", "expected an array"),
        ({"sets": [a_set(), a_set()]}, "checks.backup.sets[1].name", "duplicate"),
        ({"sets": [a_set(directory="backup")]}, "checks.backup.sets[0].directory", "absolute"),
        ({"sets": [a_set(pattern="db/*.gz")]}, "checks.backup.sets[0].pattern", "file-name glob"),
        ({"sets": [{"name": "db", "directory": "/b"}]}, "checks.backup.sets[0].pattern",
         "required"),
        ({"sets": [a_set(max_age_warn="3d", max_age_crit="2d")]},
         "checks.backup.sets[0].max_age_warn", "above max_age_crit"),
        ({"sets": [a_set(drop_warn_pct=80)]}, "checks.backup.sets[0].drop_warn_pct", "above"),
        ({"sets": [a_set(drop_crit_pct=120)]}, "checks.backup.sets[0].drop_crit_pct",
         "percentage"),
        ({"sets": [a_set(size_history=0)]}, "checks.backup.sets[0].size_history", "at least 1"),
        ({"sets": [a_set(size_min_history=9)]}, "checks.backup.sets[0].size_min_history",
         "between"),
        ({"sets": [a_set(min_copies=-1)]}, "checks.backup.sets[0].min_copies", "negative"),
        ({"sets": [a_set(name_date="%Y-%m")]}, "checks.backup.sets[0].name_date", "%d"),
        ({"sets": [a_set(name_date="%Y-%m-%d-%j")]}, "checks.backup.sets[0].name_date",
         "%j is not supported"),
        ({"sets": [a_set(dump="oracle")]}, "checks.backup.sets[0].dump", "must be one of"),
        ({"sets": [a_set(max_age="26h")]}, "checks.backup.sets[0].max_age", "unknown key"),
        ({"sets": [a_set()], "verify_time_budget": 0}, "checks.backup.verify_time_budget",
         "more than 0"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(data)
    assert caught.value.key == key
    assert message in caught.value.message
