"""The history of used bytes and the robust growth rate behind time-to-full."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checks.growth import (
    Sample,
    estimate_growth,
    format_duration,
    load_history,
    record_sample,
    save_history,
    time_to_full,
)

MiB = 1024 * 1024
HOUR = 3600.0


def series(used: list[int], step: float = 300.0, start: float = 1_000_000.0) -> list[Sample]:
    return [Sample(start + i * step, u) for i, u in enumerate(used)]


@pytest.mark.parametrize(
    ("name", "used", "expected_rate"),
    [
        ("steady growth", [i * 300 * MiB for i in range(8)], float(MiB)),
        ("one burst then flat", [0, 0, 40_000 * MiB] + [40_000 * MiB] * 6, 0.0),
        ("burst at the start then flat", [0, 50_000 * MiB] + [50_000 * MiB] * 6, 0.0),
        ("steady growth with one burst", [i * 300 * MiB + (10**12 if i >= 4 else 0)
                                          for i in range(8)], float(MiB)),
        ("cleanup in steady growth", [i * 300 * MiB - (10**9 if i >= 4 else 0)
                                      for i in range(8)], float(MiB)),
        ("shrinking", [10**10 - i * 300 * MiB for i in range(8)], -float(MiB)),
    ],
)
def test_rate_is_the_median_of_interval_rates(
    name: str, used: list[int], expected_rate: float
) -> None:
    growth = estimate_growth(series(used), min_span=1800, min_samples=4)
    assert growth.rate == pytest.approx(expected_rate), name


@pytest.mark.parametrize(
    ("samples", "why"),
    [
        (series([0, MiB, 2 * MiB], step=900), "3 samples"),  # enough span, too few samples
        (series([i * MiB for i in range(10)], step=60), "over 9m"),  # enough samples, too short
        ([], "0 samples"),
    ],
)
def test_no_rate_before_enough_history(samples: list[Sample], why: str) -> None:
    growth = estimate_growth(samples, min_span=1800, min_samples=4)
    assert growth.rate is None
    assert why in growth.note and "need 4 over 30m" in growth.note


def test_history_keeps_only_the_window() -> None:
    samples: list[Sample] = []
    for i in range(200):
        samples = record_sample(samples, Sample(i * 300.0, i), window=6 * HOUR, max_samples=72)
    assert samples[-1] == Sample(199 * 300.0, 199)
    assert samples[-1].at - samples[0].at <= 6 * HOUR
    assert samples[-1].at - samples[0].at >= 5.5 * HOUR


def test_history_stays_bounded_and_covers_the_window_at_a_fast_interval() -> None:
    samples: list[Sample] = []
    for i in range(24 * 60):  # a day of one-minute runs
        samples = record_sample(samples, Sample(i * 60.0, i), window=6 * HOUR, max_samples=72)
    assert len(samples) <= 73
    assert samples[-1].at - samples[0].at >= 5.5 * HOUR
    assert samples[-1] == Sample((24 * 60 - 1) * 60.0, 24 * 60 - 1)  # the newest is current


def test_samples_from_the_future_are_dropped_when_the_clock_steps_back() -> None:
    samples = series([1, 2, 3], start=10_000)
    kept = record_sample(samples, Sample(10_100.0, 9), window=6 * HOUR, max_samples=72)
    assert kept == [Sample(10_000.0, 1), Sample(10_100.0, 9)]


@pytest.mark.parametrize(
    ("available", "rate", "expected"),
    [(3600 * MiB, float(MiB), 3600.0), (MiB, 0.0, None), (MiB, -1.0, None), (MiB, None, None)],
)
def test_time_to_full(available: int, rate: float | None, expected: float | None) -> None:
    assert time_to_full(available, rate) == expected


def test_history_round_trips_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "disk.json"
    history = {"253:1 /var": series([1, 2, 3])}
    assert save_history(path, history) == ""
    assert load_history(path) == (history, "")
    assert [p.name for p in path.parent.iterdir()] == ["disk.json"]  # no temp file left


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"format": 99, "series": {}}), json.dumps({"format": 1,
                                                                       "series": {"k": [[1]]}}),
     json.dumps([1, 2])],
)
def test_a_corrupt_history_starts_over_and_says_so(tmp_path: Path, content: str) -> None:
    path = tmp_path / "disk.json"
    path.write_text(content, encoding="utf-8")
    history, note = load_history(path)
    assert history == {}
    assert "corrupt" in note and "started over" in note


def test_a_missing_history_is_a_quiet_start(tmp_path: Path) -> None:
    assert load_history(tmp_path / "absent.json") == ({}, "")


def test_an_unwritable_history_is_a_note_not_an_exception(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    note = save_history(blocker / "disk.json", {"k": series([1])})
    assert note.startswith("history not saved")


@pytest.mark.parametrize(
    ("seconds", "coarse", "text"),
    [(45, False, "45s"), (720, False, "12m"), (3 * HOUR + 720, False, "3h12m"),
     (6 * HOUR + 1500, True, "6h"), (6 * HOUR + 1900, True, "7h"), (5 * 86400, False, "5d"),
     (800 * 86400, False, "2y")],
)
def test_format_duration(seconds: float, coarse: bool, text: str) -> None:
    assert format_duration(seconds, coarse=coarse) == text
