"""BackupCheck against real archives made by gzip, xz, bzip2 and tar in a temp directory.

Every file is written by the real tool (``backup_scenarios.py``), then damaged the way
backups really get damaged: cut short, bytes flipped, emptied, shrunk, left stale, copied
(fresh mtimes). Times are moved with ``os.utime``; the check's clock is the same ``now``.
A missing tool fails naming its Debian package; nothing here skips.
"""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from checks.backup import BackupCheck, BackupConfig
from checks.config import build as build_config
from checks.registry import CheckContext, load
from checks.result import CheckResult, Status
from tests.checks import backup_scenarios as scenarios
from tests.checks.backup_scenarios import (
    DAY,
    HOUR,
    ROWS,
    cut,
    daily_series,
    flip,
    set_age,
    tool,
    write_dump,
    write_tar,
)

pytestmark = pytest.mark.integration

NOW = time.time()


class Ticking:
    """A monotonic clock that advances ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make_check(sets: list[dict[str, Any]], *, now: float = NOW, timeout: float = 30.0,
               monotonic: Callable[[], float] = time.monotonic, **keys: Any) -> BackupCheck:
    config = build_config(BackupConfig, {"sets": sets, **keys}, key="checks.backup")
    context = CheckContext(name="backup", state_dir=Path("/nonexistent"), timeout=timeout,
                           clock=lambda: now)
    return BackupCheck(config, context, monotonic=monotonic)


def a_set(directory: Path, pattern: str = "db-*.sql.gz", **keys: Any) -> dict[str, Any]:
    return {"name": "db", "directory": str(directory), "pattern": pattern, **keys}


def run_one(directory: Path, pattern: str = "db-*.sql.gz", **keys: Any) -> CheckResult:
    results = make_check([a_set(directory, pattern, **keys)]).run()
    assert len(results) == 1
    return results[0]


def integrity(result: CheckResult) -> dict[str, Any]:
    found: dict[str, Any] = result.details["integrity"]
    return found


def test_the_tools_are_installed() -> None:
    for name in ("gzip", "xz", "bzip2", "tar"):
        assert os.access(tool(name), os.X_OK)


def test_the_registry_loads_the_backup_check() -> None:
    assert load("backup") is BackupCheck


# ---------------------------------------------------------------------------- good series


@pytest.mark.parametrize(("compressor", "suffix", "fmt"), [
    ("gzip", ".sql.gz", "gzip+mysqldump"),
    ("xz", ".sql.xz", "xz+mysqldump"),
    ("bzip2", ".sql.bz2", "bzip2+mysqldump"),
    (None, ".sql", "mysqldump"),
])
def test_a_good_series_is_ok_and_verified(tmp_path: Path, compressor: str | None, suffix: str,
                                          fmt: str) -> None:
    for i in range(8):
        path = write_dump(tmp_path / f"db-{i}.sql", ROWS, seed=i, compressor=compressor)
        set_age(path, NOW, HOUR + (7 - i) * DAY)
    result = run_one(tmp_path, f"db-*{suffix}")
    assert result.status is Status.OK, result.summary
    assert integrity(result)["verdict"] == "ok"
    assert integrity(result)["format"] == fmt
    assert result.details["newest"] == f"db-7{suffix}"
    assert result.details["copies"] == 8
    assert f"{fmt} verified" in result.summary


@pytest.mark.parametrize(("flags", "name", "fmt"), [
    ("", "files-{}.tar", "tar"),
    ("z", "files-{}.tar.gz", "gzip+tar"),
    ("z", "files-{}.tgz", "gzip+tar"),
    ("J", "files-{}.tar.xz", "xz+tar"),
    ("j", "files-{}.tar.bz2", "bzip2+tar"),
])
def test_tar_archives_are_listed_to_the_end(tmp_path: Path, flags: str, name: str,
                                            fmt: str) -> None:
    for i in range(3):
        path = write_tar(tmp_path / name.format(i), 3, seed=i, flags=flags)
        set_age(path, NOW, HOUR + (2 - i) * DAY)
    result = run_one(tmp_path, name.format("*"))
    assert result.status is Status.OK, result.summary
    assert integrity(result) | {"bytes_read": 0} == {
        "verdict": "ok", "format": fmt, "tar_members": 4, "bytes_read": 0,  # "." + 3 files
    }


def test_concatenated_gzip_members_are_one_good_file(tmp_path: Path) -> None:
    first = write_dump(tmp_path / "a.sql", ROWS, seed=1, complete=False).read_bytes()
    second = write_dump(tmp_path / "b.sql", 10, seed=2).read_bytes()
    target = tmp_path / "db-1.sql.gz"
    target.write_bytes(first + second)  # what pigz -i or `cat a.gz b.gz` produce
    set_age(target, NOW, HOUR)
    result = run_one(tmp_path)
    assert integrity(result)["verdict"] == "ok", integrity(result)


# ---------------------------------------------------------------------------- damage


@pytest.mark.parametrize("compressor", ["gzip", "xz", "bzip2"])
def test_a_truncated_dump_is_critical(tmp_path: Path, compressor: str) -> None:
    suffix = scenarios.SUFFIX[compressor]
    files = daily_series(tmp_path, NOW, [ROWS] * 4, compressor=compressor)
    cut(files[-1], 0.5)
    set_age(files[-1], NOW, HOUR)
    result = run_one(tmp_path, f"db-*.sql{suffix}")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "truncated")
    assert integrity(result)["detail"] == f"the {compressor} stream ends before its end marker"
    assert "truncated" in result.summary


@pytest.mark.parametrize(("flags", "keep", "detail"), [
    ("", 0.5, "tar archive ends inside"),
    ("J", 0.5, "the xz stream ends before its end marker"),
    ("z", 0.5, "the gzip stream ends before its end marker"),
])
def test_a_truncated_tar_is_critical(tmp_path: Path, flags: str, keep: float,
                                     detail: str) -> None:
    path = write_tar(tmp_path / "files.tar.x", 3, seed=1, flags=flags)
    cut(path, keep)
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "files.tar.x")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "truncated")
    assert integrity(result)["detail"].startswith(detail)


def test_a_tar_cut_between_members_has_no_end_marker(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "files.tar", 3, seed=1, flags="")
    data = path.read_bytes()
    end = len(data.rstrip(b"\0"))
    path.write_bytes(data[: end + (-end % 512)])  # whole members, no end-of-archive blocks
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "files.tar")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "truncated")
    assert integrity(result)["detail"] == "tar archive has no end-of-archive marker"


@pytest.mark.parametrize("compressor", ["gzip", "xz", "bzip2"])
def test_flipped_bytes_in_the_middle_are_corrupt(tmp_path: Path, compressor: str) -> None:
    suffix = scenarios.SUFFIX[compressor]
    files = daily_series(tmp_path, NOW, [ROWS] * 4, compressor=compressor)
    size = files[-1].stat().st_size
    flip(files[-1])
    set_age(files[-1], NOW, HOUR)
    assert files[-1].stat().st_size == size  # same size: ls and du see nothing wrong
    result = run_one(tmp_path, f"db-*.sql{suffix}")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "corrupt")
    assert integrity(result)["detail"].startswith(f"{compressor}: ")


def test_flipped_bytes_in_a_plain_tar_header_are_corrupt(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "files.tar", 2, seed=1, flags="")
    with open(path, "r+b") as f:
        f.seek(512 + 0)  # inside the second header's name, after the "." entry
        f.write(b"\xff\xff")
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "files.tar")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "corrupt")
    assert "checksum mismatch" in integrity(result)["detail"]


def test_an_empty_newest_file_is_critical(tmp_path: Path) -> None:
    files = daily_series(tmp_path, NOW, [ROWS] * 4)
    files[-1].write_bytes(b"")
    set_age(files[-1], NOW, HOUR)
    result = run_one(tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "empty")
    assert result.summary == f"backup {files[-1].name} is empty (0 B)"


@pytest.mark.parametrize("compressor", [None, "gzip", "xz"])
def test_a_mysqldump_without_its_completion_line_is_critical(tmp_path: Path,
                                                             compressor: str | None) -> None:
    path = write_dump(tmp_path / "db-1.sql", ROWS, seed=1, compressor=compressor,
                      complete=False)
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "db-*")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "incomplete")
    assert result.summary == f"backup {path.name} has no mysqldump completion line"


def test_a_dump_cut_at_a_line_end_is_still_caught(tmp_path: Path) -> None:
    text = scenarios.dump_text(ROWS, seed=1)
    cut_at = text.rindex(b";\n", 0, len(text) // 2) + 2  # a clean-looking end of statement
    path = tmp_path / "db-1.sql"
    path.write_bytes(text[:cut_at])
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "db-*.sql")
    assert result.details["condition"] == "incomplete"


def test_dump_none_skips_the_completion_line(tmp_path: Path) -> None:
    path = write_dump(tmp_path / "db-1.sql", ROWS, seed=1, complete=False)
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, dump="none")
    assert result.status is Status.OK
    assert integrity(result)["format"] == "gzip"


def test_a_shrinking_series_warns_then_goes_critical(tmp_path: Path) -> None:
    files = daily_series(tmp_path / "warn", NOW, [ROWS] * 7 + [int(ROWS * 0.6)])
    result = run_one(tmp_path / "warn")
    assert (result.status, result.details["condition"]) == (Status.WARNING, "shrunk")
    assert 30 <= result.details["size_drop_pct"] < 70
    assert result.summary.startswith(f"backup {files[-1].name} is ")
    assert result.summary.endswith("% smaller than the median of the last 7")

    daily_series(tmp_path / "crit", NOW, [ROWS] * 7 + [int(ROWS * 0.2)])
    result = run_one(tmp_path / "crit")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "shrunk")
    assert result.details["size_drop_pct"] >= 70


def test_a_short_history_is_judged_leniently(tmp_path: Path) -> None:
    daily_series(tmp_path, NOW, [ROWS, ROWS, int(ROWS * 0.1)])
    result = run_one(tmp_path)
    assert (result.status, result.details["condition"]) == (Status.WARNING, "shrunk")
    assert "only 2 earlier copies" in result.details["size_note"]


def test_a_stale_series_warns_then_goes_critical(tmp_path: Path) -> None:
    daily_series(tmp_path / "a", NOW, [ROWS] * 3, newest_age=30 * HOUR)
    result = run_one(tmp_path / "a")
    assert (result.status, result.details["condition"]) == (Status.WARNING, "stale")
    assert result.summary.endswith("is 30h old (max 26h)")
    daily_series(tmp_path / "b", NOW, [ROWS] * 3, newest_age=3 * DAY)
    result = run_one(tmp_path / "b")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "stale")


def test_dated_names_win_over_copied_mtimes(tmp_path: Path) -> None:
    # Copied from the backup host: every mtime fresh, the OLDEST dump copied last.
    files = daily_series(tmp_path, NOW, [ROWS] * 6 + [int(ROWS * 0.2)], first_day=10)
    for i, path in enumerate(files):
        set_age(path, NOW, 600 + i)
    by_mtime = run_one(tmp_path)
    assert by_mtime.details["newest"] == "db-2026-11-10.sql.gz"  # wrong, and says OK
    assert by_mtime.status is Status.OK

    dated = run_one(tmp_path, name_date="%Y-%m-%d", max_age_warn="30d", max_age_crit="60d")
    assert dated.details["newest"] == "db-2026-11-16.sql.gz"
    assert dated.details["ordered_by"] == "name"
    assert (dated.status, dated.details["condition"]) == (Status.CRITICAL, "shrunk")


def test_dated_names_give_the_age(tmp_path: Path) -> None:
    scenario = scenarios.build("dated", tmp_path, NOW)
    result = run_scenario(scenario, NOW)
    assert (result.status, result.details["condition"]) == (Status.WARNING, "stale")
    assert "49h" in result.summary
    assert result.details["newest_mtime"] > NOW - 3600  # the mtime alone would say fresh


def test_undated_names_are_listed_not_judged(tmp_path: Path) -> None:
    daily_series(tmp_path, NOW, [ROWS] * 2)
    (tmp_path / "db-latest.sql.gz").write_bytes(b"")
    set_age(tmp_path / "db-latest.sql.gz", NOW, HOUR)
    result = run_one(tmp_path, name_date="%Y-%m-%d", max_age_warn="60d", max_age_crit="90d")
    assert result.status is Status.OK, result.summary
    assert result.details["newest"] == "db-2026-11-11.sql.gz"
    assert result.details["undated"] == ["db-latest.sql.gz"]


def test_too_few_copies_warn(tmp_path: Path) -> None:
    daily_series(tmp_path, NOW, [ROWS] * 3)
    result = run_one(tmp_path, min_copies=7)
    assert (result.status, result.details["condition"]) == (Status.WARNING, "few_copies")
    assert result.summary == "only 3 backups of db kept (min 7)"


def test_a_file_still_being_written_is_left_aside(tmp_path: Path) -> None:
    files = daily_series(tmp_path, NOW, [ROWS] * 3)
    growing = write_dump(tmp_path / "db-2026-11-13.sql", ROWS, seed=9)
    cut(growing)
    set_age(growing, NOW, 30)  # written 30 s ago: the dump is still running
    result = run_one(tmp_path)
    assert result.status is Status.OK
    assert result.details["newest"] == files[-1].name
    assert result.details["being_written"] == [growing.name]


def test_no_backup_and_no_directory_are_critical(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("x")
    result = run_one(tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "missing")
    assert result.summary == f"no backup matching db-*.sql.gz in {tmp_path}"
    result = run_one(tmp_path / "gone")
    assert result.status is Status.CRITICAL
    assert result.summary == f"backup directory {tmp_path / 'gone'} does not exist"


def test_a_directory_that_is_a_file_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run_one(tmp_path / "file")
    assert result.status is Status.UNKNOWN
    assert "cannot list" in result.summary


def test_one_result_per_set(tmp_path: Path) -> None:
    daily_series(tmp_path / "db", NOW, [ROWS] * 3)
    (tmp_path / "etc").mkdir()
    write_tar(tmp_path / "etc" / "etc.tar.xz", 2, seed=1, flags="J")
    set_age(tmp_path / "etc" / "etc.tar.xz", NOW, 3 * DAY)
    check = make_check([a_set(tmp_path / "db"),
                        {"name": "etc", "directory": str(tmp_path / "etc"),
                         "pattern": "etc*.tar.xz", "max_age_warn": "8d", "max_age_crit": "15d"}])
    results = check.run()
    assert [(r.target, r.status) for r in results] == [("db", Status.OK), ("etc", Status.OK)]


# ---------------------------------------------------------------------------- budget


def test_a_big_file_is_verified_over_several_runs(tmp_path: Path) -> None:
    path = write_dump(tmp_path / "db-1.sql", ROWS * 40, seed=3, compressor="gzip")
    set_age(path, NOW, HOUR)
    size = path.stat().st_size
    budget = 256 * 1024
    check = make_check([a_set(tmp_path)], verify_bytes_budget=budget)
    seen = []
    for _ in range(size // budget + 2):
        result = check.run()[0]
        seen.append(integrity(result)["verdict"])
        if seen[-1] != "in_progress":
            break
        assert result.status is Status.OK
        assert "verifying (" in result.summary
    assert seen[0] == "in_progress" and seen[-1] == "ok"
    assert len(seen) >= size // budget
    # Verified once: later runs do not read it again, even with a tiny budget.
    assert integrity(check.run()[0])["verdict"] == "ok"


def test_the_time_budget_pauses_and_a_changed_file_starts_over(tmp_path: Path) -> None:
    path = write_dump(tmp_path / "db-1.sql", ROWS * 40, seed=3, compressor="gzip")
    set_age(path, NOW, HOUR)
    assert path.stat().st_size > 2 * 1024 * 1024
    ticking = Ticking(step=1.0)  # each chunk "takes" a second: one chunk per run
    check = make_check([a_set(tmp_path)], verify_time_budget="1s", monotonic=ticking)
    first = integrity(check.run()[0])
    assert first["verdict"] == "in_progress" and first["bytes_read"] == 1024 * 1024
    second = integrity(check.run()[0])
    assert second["verdict"] == "in_progress" and second["bytes_read"] == 2 * 1024 * 1024
    cut(path, 0.5)  # replaced by a broken copy: the verification starts again
    set_age(path, NOW, HOUR)
    for _ in range(20):
        result = check.run()[0]
        if integrity(result)["verdict"] != "in_progress":
            break
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "truncated")


def test_verify_false_reads_nothing(tmp_path: Path) -> None:
    files = daily_series(tmp_path, NOW, [ROWS] * 2)
    flip(files[-1])
    set_age(files[-1], NOW, HOUR)
    result = run_one(tmp_path, verify=False)
    assert result.status is Status.OK
    assert "integrity" not in result.details


# ---------------------------------------------------------------------------- scenarios


def run_scenario(scenario: scenarios.Scenario, now: float) -> CheckResult:
    table = tomllib.loads(scenario.toml)["checks"]["backup"]
    assert table.pop("type") == "backup"
    config = build_config(BackupConfig, table, key="checks.backup")
    context = CheckContext(name="backup", state_dir=Path("/nonexistent"), clock=lambda: now)
    results = BackupCheck(config, context).run()
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize("kind", scenarios.KINDS)
def test_each_scenario_gives_its_expected_status(tmp_path: Path, kind: str) -> None:
    scenario = scenarios.build(kind, tmp_path, NOW)
    result = run_scenario(scenario, NOW)
    assert result.status is scenario.expected, (kind, result.summary)
    assert result.target == kind
    assert scenario.newest.name == result.details["newest"]


def test_the_verification_budget_fits_inside_the_run_timeout() -> None:
    assert make_check([a_set(Path("/b"))], timeout=5.0).verify_time_budget == 3.0
    assert make_check([a_set(Path("/b"))], timeout=60.0).verify_time_budget == 10.0


def test_an_error_message_saved_as_the_dump_is_corrupt(tmp_path: Path) -> None:
    # `mysqldump ... | gzip > db.sql.gz` with gzip missing from PATH, or a script that
    # redirected stderr into the backup: a non-empty file that restores nothing.
    daily_series(tmp_path, NOW, [ROWS] * 3)
    newest = tmp_path / "db-2026-11-13.sql.gz"
    newest.write_bytes(b"mysqldump: Got error: 1045: Access denied for user 'backup'\n")
    set_age(newest, NOW, HOUR)
    result = run_one(tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "corrupt")
    assert integrity(result)["detail"].startswith(
        "not gzip data (starts with 'mysqldump: Got error: 1045: Access denied")


def test_a_tar_name_with_other_content_is_corrupt(tmp_path: Path) -> None:
    path = write_dump(tmp_path / "files.tar", ROWS, seed=1, compressor="gzip")
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "files.tar.gz")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "corrupt")
    assert integrity(result)["detail"] == "not a tar archive"


def test_a_backup_dated_in_the_future_is_judged_not_left_aside(tmp_path: Path) -> None:
    files = daily_series(tmp_path, NOW, [ROWS] * 3)
    set_age(files[-1], NOW, -2 * HOUR)  # made by a host whose clock is two hours ahead
    result = run_one(tmp_path)
    assert result.details["newest"] == files[-1].name
    assert "being_written" not in result.details
    assert result.status is Status.OK
    assert next(m.value for m in result.metrics if m.name == "age_seconds") == 0


def test_a_compressed_nothing_is_empty(tmp_path: Path) -> None:
    # `mysqldump db | gzip > db.sql.gz` where mysqldump printed nothing: a valid gzip file
    # of 20 bytes, which neither ls nor gzip -t finds wrong.
    path = tmp_path / "db-1.sql.gz"
    with open(path, "wb") as out:
        subprocess.run([tool("gzip"), "-c"], input=b"", stdout=out, check=True, timeout=30)
    set_age(path, NOW, HOUR)
    assert path.stat().st_size > 0
    result = run_one(tmp_path)
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "empty")
    assert result.summary == "backup db-1.sql.gz is empty inside (gzip of 0 bytes)"


@pytest.mark.parametrize("how", ["no entries", "empty directory"])
def test_a_tar_of_nothing_is_empty(tmp_path: Path, how: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    path = tmp_path / "files.tar.gz"
    args = ["-T", "/dev/null"] if how == "no entries" else ["-C", str(source), "."]
    subprocess.run([tool("tar"), "-czf", str(path), *args], check=True, timeout=30)
    set_age(path, NOW, HOUR)
    result = run_one(tmp_path, "files.tar.gz")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "empty")
    assert integrity(result)["detail"] == "tar archive without files"
