"""DiskCheck.run end to end with a fake statvfs: hangs, errors, history across runs."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from checks.config import build
from checks.disk import DiskCheck, DiskConfig, StatvfsProbes
from checks.registry import CheckContext, load
from checks.result import CheckResult, Status

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "disk"
SERVER = FIXTURES / "mountinfo-server.txt"
GiB = 1024**3
BLOCK = 4096


def figures(*, size: int = 100 * GiB, used: int = 10 * GiB) -> os.statvfs_result:
    blocks, free = size // BLOCK, (size - used) // BLOCK
    return os.statvfs_result((BLOCK, BLOCK, blocks, free, free, 1000, 900, 900, 0, 255))


class SteppedClock:
    """Epoch seconds that only move when the test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeStatvfs:
    """Answers from a table; a mount point in ``hang`` blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}
        self.errors: dict[str, OSError] = {}
        self.hang: set[str] = set()
        self.release = threading.Event()
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str) -> os.statvfs_result:
        with self._lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if path in self.hang:
            self.release.wait(30)
        if path in self.errors:
            raise self.errors[path]
        return figures(used=self.used.get(path, 10 * GiB))


@pytest.fixture
def statvfs() -> Iterator[FakeStatvfs]:
    fake = FakeStatvfs()
    yield fake
    fake.release.set()  # let any thread still blocked in the fake finish


def make_check(
    tmp_path: Path,
    statvfs: Callable[[str], os.statvfs_result],
    clock: SteppedClock | None = None,
    mountinfo: Path = SERVER,
    timeout: float = 30.0,
    **config: object,
) -> DiskCheck:
    context = CheckContext(
        name="disk", state_dir=tmp_path / "state", timeout=timeout,
        clock=clock or SteppedClock(),
    )
    return DiskCheck(build(DiskConfig, config), context, mountinfo=mountinfo, statvfs=statvfs,
                     probes=StatvfsProbes())


def by_target(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.target: r for r in results}


def test_the_registry_loads_the_disk_check() -> None:
    assert load("disk") is DiskCheck


def test_every_real_filesystem_gets_one_result(tmp_path: Path, statvfs: FakeStatvfs) -> None:
    results = make_check(tmp_path, statvfs).run()
    assert [r.target for r in results] == ["/", "/boot", "/boot/efi", "/var", "/mnt/media",
                                           "/mnt/nfs"]
    assert all(r.status is Status.OK for r in results)
    assert set(statvfs.calls) == {r.target for r in results}  # no statvfs on pseudo mounts


def test_a_hung_mount_is_unknown_alone_and_not_probed_twice(
    tmp_path: Path, statvfs: FakeStatvfs
) -> None:
    """A statvfs that never returns, as on a hard NFS mount whose server went away.

    A fake is used because a real hung mount needs an NFS server that can be made to stop
    answering mid-test; loopback NFS is not available here. The fake blocks in the same
    place (the statvfs call itself) so the timeout, the threads and the memory of hung
    mounts are exercised for real.
    """
    statvfs.hang.add("/mnt/nfs")
    clock = SteppedClock()
    check = make_check(tmp_path, statvfs, clock, statvfs_timeout=1)

    started = time.monotonic()
    first = by_target(check.run())
    elapsed = time.monotonic() - started

    assert elapsed < 1 + 1
    nfs = first["/mnt/nfs"]
    assert nfs.status is Status.UNKNOWN
    assert nfs.summary == "statvfs on /mnt/nfs did not answer within 1s"
    assert nfs.details["fstype"] == "nfs4"
    others = [r for target, r in first.items() if target != "/mnt/nfs"]
    assert len(others) == 5 and all(r.status is Status.OK for r in others)

    clock.now += 120
    started = time.monotonic()
    second = by_target(check.run())
    assert time.monotonic() - started < 1  # nothing waited on the hung mount
    assert statvfs.calls["/mnt/nfs"] == 1  # no second thread stuck on the same mount
    assert second["/mnt/nfs"].status is Status.UNKNOWN
    assert second["/mnt/nfs"].summary == (
        "statvfs on /mnt/nfs still hung since 2023-11-14 22:13:20Z (2m ago)"
    )
    assert check.probes.hung_mount_points() == ["/mnt/nfs"]

    # The server comes back: the stuck call returns, the next run measures afresh.
    statvfs.release.set()
    deadline = time.monotonic() + 5
    while check.probes.hung_mount_points() and time.monotonic() < deadline:
        time.sleep(0.01)
    third = by_target(check.run())
    assert third["/mnt/nfs"].status is Status.OK
    assert statvfs.calls["/mnt/nfs"] == 2


def test_several_hung_mounts_cost_one_timeout_not_one_each(
    tmp_path: Path, statvfs: FakeStatvfs
) -> None:
    statvfs.hang.update({"/mnt/nfs", "/mnt/media", "/boot"})
    check = make_check(tmp_path, statvfs, statvfs_timeout=1)
    started = time.monotonic()
    results = by_target(check.run())
    assert time.monotonic() - started < 1 + 1
    assert {t for t, r in results.items() if r.status is Status.UNKNOWN} == {
        "/mnt/nfs", "/mnt/media", "/boot"}


def test_statvfs_timeout_is_kept_inside_the_run_timeout(
    tmp_path: Path, statvfs: FakeStatvfs
) -> None:
    check = make_check(tmp_path, statvfs, timeout=2.0, statvfs_timeout=10)
    assert check.statvfs_timeout == pytest.approx(1.6)


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (OSError(errno.ENOENT, "No such file or directory"), "No such file or directory"),
        (OSError(errno.EACCES, "Permission denied"), "Permission denied (errno 13)"),
    ],
)
def test_a_statvfs_error_is_unknown_for_that_mount(
    tmp_path: Path, statvfs: FakeStatvfs, error: OSError, text: str
) -> None:
    statvfs.errors["/boot"] = error
    results = by_target(make_check(tmp_path, statvfs).run())
    assert results["/boot"].status is Status.UNKNOWN
    assert results["/boot"].summary.startswith("statvfs on /boot failed: ")
    assert text in results["/boot"].summary
    assert results["/var"].status is Status.OK


def test_steady_growth_over_runs_warns_time_to_full(tmp_path: Path, statvfs: FakeStatvfs) -> None:
    clock = SteppedClock()
    check = make_check(tmp_path, statvfs, clock)
    statuses = []
    for step in range(10):
        statvfs.used["/var"] = 10 * GiB + step * 1 * GiB  # 1 GiB every 5 minutes
        results = by_target(check.run())
        statuses.append(results["/var"].status)
        clock.now += 300
    assert statuses[:6] == [Status.OK] * 6  # less than 30 minutes of history
    assert statuses[-1] is Status.WARNING
    var = results["/var"]
    assert var.details["condition"] == "time_to_full"
    assert "full in ~7h" in var.summary  # 81 GiB free at 1 GiB per 5 minutes: 6.75h
    assert results["/"].status is Status.OK  # flat filesystems stay quiet


def test_a_new_check_instance_continues_from_the_saved_history(
    tmp_path: Path, statvfs: FakeStatvfs
) -> None:
    clock = SteppedClock()
    for step in range(10):
        statvfs.used["/var"] = 10 * GiB + step * GiB
        results = by_target(make_check(tmp_path, statvfs, clock).run())  # agent restarts
        clock.now += 300
    assert results["/var"].details["condition"] == "time_to_full"


def test_a_corrupt_history_file_starts_over_and_says_so(
    tmp_path: Path, statvfs: FakeStatvfs
) -> None:
    check = make_check(tmp_path, statvfs)
    check.history_path.parent.mkdir(parents=True)
    check.history_path.write_text("{\"format\": 1, \"series\": ", encoding="utf-8")
    results = check.run()
    assert all(r.status is Status.OK for r in results)
    assert all("started over" in r.details["history_note"] for r in results)
    again = check.run()
    assert all("history_note" not in r.details for r in again)  # the file was rewritten


def test_an_unreadable_mount_table_is_unknown(tmp_path: Path, statvfs: FakeStatvfs) -> None:
    results = make_check(tmp_path, statvfs, mountinfo=tmp_path / "missing").run()
    assert len(results) == 1 and results[0].status is Status.UNKNOWN
    assert "cannot read" in results[0].summary


def test_a_configuration_matching_nothing_is_unknown(tmp_path: Path, statvfs: FakeStatvfs) -> None:
    results = make_check(tmp_path, statvfs, include_mounts=["/nothing*"]).run()
    assert [(r.target, r.status) for r in results] == [("", Status.UNKNOWN)]
    assert "no filesystem matches" in results[0].summary


def test_a_configured_mount_that_is_gone_is_unknown(tmp_path: Path, statvfs: FakeStatvfs) -> None:
    results = by_target(make_check(tmp_path, statvfs, include_mounts=["/var", "/data"]).run())
    assert results["/var"].status is Status.OK
    assert results["/data"].status is Status.UNKNOWN
    assert results["/data"].summary == "/data is not a mount point"


def test_run_against_this_hosts_real_mount_table(tmp_path: Path) -> None:
    """The defaults on the real /proc/self/mountinfo and os.statvfs: judged, not failed."""
    results = DiskCheck(DiskConfig(), CheckContext(name="disk", state_dir=tmp_path)).run()
    assert results
    root = [r for r in results if r.target == "/"]
    assert root and root[0].status is not Status.UNKNOWN
    assert {m.name for m in root[0].metrics} >= {"used_pct", "free_bytes", "size_bytes"}
