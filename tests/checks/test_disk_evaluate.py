"""The pure judgement of the disk check: thresholds, full, inodes, time-to-full, output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from checks.config import Bytes, Percent, Seconds
from checks.disk import (
    DiskConfig,
    Filesystem,
    FilesystemFacts,
    MissingMount,
    Usage,
    evaluate,
    evaluate_filesystem,
)
from checks.growth import Growth
from checks.result import CheckResult, Status

GiB = 1024**3
BLOCK = 4096
VAR = Filesystem("253:1", "/var", "xfs", "/dev/mapper/vg0-var", other_mount_points=("/srv/x",))


def usage(
    *,
    size: int = 100 * GiB,
    used_pct: float = 50.0,
    reserved_pct: float = 0.0,
    files: int = 1_000_000,
    files_used_pct: float = 10.0,
) -> Usage:
    """Figures for a disk of ``size`` where ``used_pct`` of the blocks are used."""
    blocks = size // BLOCK
    used = round(blocks * used_pct / 100)
    reserved = round(blocks * reserved_pct / 100)
    free = blocks - used
    return Usage(
        block_size=BLOCK,
        blocks=blocks,
        blocks_free=free,
        blocks_available=max(0, free - reserved),
        files=files,
        files_free=files - round(files * files_used_pct / 100),
    )


def judge(
    figures: Usage | None,
    config: DiskConfig | None = None,
    rate: float | None = None,
    error: str = "",
) -> CheckResult:
    growth = Growth(rate, 10, 3600.0) if rate is not None else None
    facts = FilesystemFacts(VAR, figures, error, growth)
    return evaluate_filesystem(facts, config or DiskConfig(), check="disk")


@dataclass(frozen=True)
class Case:
    name: str
    figures: Usage
    status: Status
    condition: str
    config: DiskConfig = DiskConfig()
    rate: float | None = None


CASES = [
    Case("half used", usage(used_pct=50), Status.OK, "ok"),
    Case("just below warn", usage(used_pct=84.9), Status.OK, "ok"),
    Case("at warn", usage(used_pct=85), Status.WARNING, "space"),
    Case("between", usage(used_pct=94.9), Status.WARNING, "space"),
    Case("at crit", usage(used_pct=95), Status.CRITICAL, "space"),
    # 84% of the blocks are used, but 5% are reserved for root: df says 88.4%.
    Case("root reserve counts as used up", usage(used_pct=84, reserved_pct=5), Status.WARNING,
         "space"),
    Case("custom percentages", usage(used_pct=70), Status.CRITICAL, "space",
         DiskConfig(space_warn_pct=Percent(50), space_crit_pct=Percent(60))),
    # A small disk at 40% with less free space than the absolute thresholds ask for.
    Case("absolute free warn", usage(size=2 * GiB, used_pct=60), Status.WARNING, "space",
         DiskConfig(space_warn_free=Bytes(1 * GiB))),
    Case("absolute free crit", usage(size=2 * GiB, used_pct=60), Status.CRITICAL, "space",
         DiskConfig(space_warn_free=Bytes(2 * GiB), space_crit_free=Bytes(1 * GiB))),
    Case("absolute free fine on a big disk", usage(size=10_000 * GiB, used_pct=80), Status.OK,
         "ok", DiskConfig(space_warn_free=Bytes(50 * GiB), space_crit_free=Bytes(10 * GiB))),
    Case("full", usage(used_pct=100), Status.CRITICAL, "full"),
    Case("full for users, root reserve left", usage(used_pct=97, reserved_pct=3),
         Status.CRITICAL, "full"),
    Case("inodes warn", usage(files_used_pct=90), Status.WARNING, "inodes"),
    Case("inodes crit", usage(files_used_pct=96), Status.CRITICAL, "inodes"),
    Case("no inodes left", usage(used_pct=10, files_used_pct=100), Status.CRITICAL, "full"),
    Case("space warn, inodes crit", usage(used_pct=90, files_used_pct=97), Status.CRITICAL,
         "inodes"),
    Case("space crit beats inode warn", usage(used_pct=96, files_used_pct=90), Status.CRITICAL,
         "space"),
    Case("filesystem without inode counts", usage(files=0, files_used_pct=0), Status.OK, "ok"),
    # 50 GiB free growing 1 MiB/s: full in ~14h, inside the 24h horizon.
    Case("steady growth, full within horizon", usage(used_pct=50), Status.WARNING,
         "time_to_full", rate=1024 * 1024),
    # 50 GiB free growing 100 KiB/s: ~6 days; no alarm for a big disk growing a little.
    Case("slow growth on a big disk", usage(used_pct=50), Status.OK, "ok", rate=100 * 1024),
    Case("shrinking", usage(used_pct=80), Status.OK, "ok", rate=-5e6),
    Case("flat", usage(used_pct=80), Status.OK, "ok", rate=0.0),
    Case("space warn beats time to full", usage(used_pct=90), Status.WARNING, "space",
         rate=1024 * 1024),
    Case("space crit with growth", usage(used_pct=97), Status.CRITICAL, "space",
         rate=1024 * 1024),
    Case("shorter horizon", usage(used_pct=50), Status.OK, "ok",
         DiskConfig(full_horizon=Seconds(3600)), rate=1024 * 1024),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_status_and_condition(case: Case) -> None:
    result = judge(case.figures, case.config, case.rate)
    assert (result.status, result.details["condition"]) == (case.status, case.condition)
    assert result.target == "/var"
    assert result.check == "disk"
    assert len(result.summary) <= 80


def test_summary_reads_like_a_ticket_subject() -> None:
    blocks = 92 * GiB // BLOCK
    available = round(8.1 * GiB / BLOCK)
    figures = Usage(BLOCK, blocks, available, available, 6_000_000, 5_000_000)
    rate = available * BLOCK / (6 * 3600)
    result = judge(figures, rate=rate)
    assert result.summary == "/var 91.2% used (8.1 GiB free of 92 GiB), full in ~6h"
    assert result.status is Status.WARNING


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (usage(used_pct=100), "/var FULL: 0 B free of 100 GiB"),
        (usage(used_pct=10, files_used_pct=100), "/var FULL: no inodes left (1000000 in use), "
                                                 "space 10.0%"),
        (usage(used_pct=40, files_used_pct=97), "/var inodes 97.0% used (30k free), space 40.0%"),
        (usage(used_pct=25), "/var 25.0% used (75 GiB free of 100 GiB)"),
    ],
)
def test_summaries(figures: Usage, expected: str) -> None:
    assert judge(figures).summary == expected


def test_a_long_mount_point_keeps_the_summary_short() -> None:
    deep = Filesystem("8:3", "/srv/" + "very-long-directory-name/" * 4 + "data", "ext4", "x")
    result = evaluate_filesystem(FilesystemFacts(deep, usage(used_pct=91)), DiskConfig(),
                                 check="disk")
    assert len(result.summary) <= 80
    assert result.summary.startswith("...")
    assert result.target == deep.mount_point  # the target itself is never shortened


def test_perfdata_carries_units_and_thresholds() -> None:
    config = DiskConfig(space_warn_free=Bytes(20 * GiB), space_crit_free=Bytes(5 * GiB))
    result = judge(usage(size=100 * GiB, used_pct=50, files=1000, files_used_pct=10), config,
                   rate=1024 * 1024)
    assert result.perfdata() == (
        "'used_pct'=50%;85;95;0;100 "
        "'used_bytes'=53687091200B;;;0;107374182400 "
        "'free_bytes'=53687091200B;21474836480;5368709120;0;107374182400 "
        "'size_bytes'=107374182400B;;;0 "
        "'inodes_used_pct'=10%;85;95;0;100 "
        "'inodes_free'=900;;;0;1000 "
        "'time_to_full_seconds'=51200s;86400;;0"
    )
    assert result.plugin_line().startswith("WARNING - /var 50.0% used (50 GiB free of 100 GiB)")


def test_details_name_device_type_and_bind_duplicates() -> None:
    result = judge(usage(), rate=12.5)
    assert result.details["device"] == "253:1"
    assert result.details["fstype"] == "xfs"
    assert result.details["source"] == "/dev/mapper/vg0-var"
    assert result.details["other_mount_points"] == ["/srv/x"]
    assert result.details["growth_bytes_per_second"] == 12.5


def test_no_inode_metrics_when_the_filesystem_has_no_inode_counts() -> None:
    names = [m.name for m in judge(usage(files=0, files_used_pct=0)).metrics]
    assert names == ["used_pct", "used_bytes", "free_bytes", "size_bytes"]


def test_a_failed_statvfs_is_unknown_with_the_reason() -> None:
    result = judge(None, error="statvfs on /var failed: Permission denied (errno 13)")
    assert result.status is Status.UNKNOWN
    assert result.summary == "statvfs on /var failed: Permission denied (errno 13)"
    assert result.details["error"] == result.summary
    assert result.details["device"] == "253:1"
    assert result.metrics == ()


def test_a_filesystem_reporting_no_size_is_not_called_full() -> None:
    result = judge(Usage(BLOCK, 0, 0, 0, 0, 0))
    assert result.status is Status.OK
    assert "nothing to judge" in result.summary


def test_missing_mounts_become_unknown_results() -> None:
    results = evaluate(
        [FilesystemFacts(VAR, usage())],
        DiskConfig(),
        check="disk",
        missing=[MissingMount("/data", "/data is not a mount point")],
        details={"history_note": "history file was corrupt (...), started over"},
    )
    assert [(r.target, r.status) for r in results] == [("/var", Status.OK),
                                                       ("/data", Status.UNKNOWN)]
    assert results[1].summary == "/data is not a mount point"
    assert all("started over" in r.details["history_note"] for r in results)


def test_a_newline_in_a_mount_point_does_not_break_the_summary_line() -> None:
    odd = Filesystem("8:4", "/mnt/new\nline", "ext4", "/dev/sdd1")
    result = evaluate_filesystem(FilesystemFacts(odd, usage(used_pct=25)), DiskConfig(),
                                 check="disk")
    assert result.summary == "/mnt/new\\nline 25.0% used (75 GiB free of 100 GiB)"
    assert "\n" not in result.plugin_line()
