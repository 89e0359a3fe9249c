"""The collector's clock seam for drills: the system clock plus an offset read from a file."""

from __future__ import annotations

import os
import time

from collector.timefmt import OffsetClock


def test_the_offset_file_moves_the_clock_and_is_reread_when_it_changes(tmp_path):
    path = tmp_path / "offset"
    path.write_text("3600")
    clock = OffsetClock(str(path))
    assert abs(clock() - (time.time() + 3600)) < 5
    path.write_text("14400.5")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert abs(clock() - (time.time() + 14400.5)) < 5


def test_a_missing_or_unreadable_offset_counts_as_none(tmp_path):
    clock = OffsetClock(str(tmp_path / "absent"))
    assert abs(clock() - time.time()) < 5
    (tmp_path / "absent").write_text("soon")
    assert abs(clock() - time.time()) < 5
