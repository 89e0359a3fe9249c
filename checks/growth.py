"""Time-to-full: a short history of used bytes per filesystem and a robust growth rate.

The pure half (``record_sample``, ``estimate_growth``) takes and returns plain values; the
I/O half (``load_history``, ``save_history``) keeps the history in one small JSON file per
check instance, written atomically, and never fails a check because that file is bad.

The rate is the median of the rates between consecutive samples: a single large step
(a backup landing, a core dump) is one outlier among many intervals and does not move the
median, while growth that goes on through most of the window does. See docs/checks/disk.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.statefile import write_json

HISTORY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Sample:
    """Used bytes of one filesystem at one moment (epoch seconds)."""

    at: float
    used_bytes: int


@dataclass(frozen=True, slots=True)
class Growth:
    """What the history says about a filesystem's growth."""

    rate: float | None
    """Bytes per second (median of interval rates); None while the history is too short."""
    samples: int
    span: float
    """Seconds between the oldest and the newest sample."""
    note: str = ""
    """Why there is no rate yet, for the details of the result."""


def record_sample(
    samples: Sequence[Sample],
    sample: Sample,
    *,
    window: float,
    max_samples: int,
) -> list[Sample]:
    """The history with ``sample`` added: older than ``window`` dropped, size bounded.

    Samples are kept at least ``window / max_samples`` apart, so the history covers the
    whole window whatever the check interval is. The newest sample is always the current
    one: it replaces the previous newest as long as that one is closer than the spacing
    to the sample before it.
    Samples from the future (the clock was stepped back) are dropped.
    """
    spacing = window / max(max_samples, 1)
    kept = [s for s in samples if sample.at - window <= s.at < sample.at]
    if len(kept) >= 2 and kept[-1].at - kept[-2].at < spacing:
        kept[-1] = sample
    else:
        kept.append(sample)
    return kept[-(max_samples + 1):]


def estimate_growth(
    samples: Sequence[Sample], *, min_span: float, min_samples: int
) -> Growth:
    """The robust growth rate of a history, or no rate while it is too short to trust."""
    count = len(samples)
    span = samples[-1].at - samples[0].at if samples else 0.0
    if count < min_samples or span < min_span:
        note = (
            f"collecting history: {count} samples over {format_duration(span)}, "
            f"need {min_samples} over {format_duration(min_span)}"
        )
        return Growth(None, count, span, note)
    rates = [
        (later.used_bytes - earlier.used_bytes) / (later.at - earlier.at)
        for earlier, later in zip(samples, samples[1:], strict=False)
        if later.at > earlier.at
    ]
    if not rates:
        return Growth(None, count, span, "no usable intervals in the history")
    return Growth(median(rates), count, span)


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    # Local rather than statistics.median: that module pulls in decimal, fractions and
    # random, about 0.7 MB of resident memory on every agent for one sort.
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def time_to_full(available_bytes: int, rate: float | None) -> float | None:
    """Seconds until ``available_bytes`` are used up at ``rate``; None when not growing."""
    if rate is None or rate <= 0 or not math.isfinite(rate):
        return None
    return available_bytes / rate


History = dict[str, list[Sample]]


def load_history(path: Path) -> tuple[History, str]:
    """The stored history and a note; a missing or unreadable file starts over, said so."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except OSError as err:
        return {}, f"history file unreadable ({err.strerror or err}), started over"
    try:
        return _decode(json.loads(raw)), ""
    except (ValueError, TypeError, KeyError) as err:
        return {}, f"history file was corrupt ({type(err).__name__}: {err}), started over"


def _decode(data: Any) -> History:
    if not isinstance(data, dict) or data.get("format") != HISTORY_FORMAT:
        raise ValueError("unexpected format")
    series = data["series"]
    if not isinstance(series, dict):
        raise ValueError("series is not a table")
    history: History = {}
    for key, points in series.items():
        history[str(key)] = [Sample(float(at), int(used)) for at, used in points]
    return history


def save_history(path: Path, history: Mapping[str, Sequence[Sample]]) -> str:
    """Write the history atomically (temp file + rename); a note instead of an exception."""
    payload = {
        "format": HISTORY_FORMAT,
        "series": {key: [[s.at, s.used_bytes] for s in points] for key, points in history.items()},
    }
    try:
        write_json(path, payload)
    except OSError as err:
        # Losing history only delays time-to-full; the space judgement must still go out.
        return f"history not saved ({err.strerror or err})"
    return ""


def format_duration(seconds: float, *, coarse: bool = False) -> str:
    """A compact duration for summaries: 45s, 12m, 3h12m (coarse: 3h), 4d, 2y."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48 and coarse:
        return f"{hours + (minutes >= 30)}h"
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days = hours // 24
    if days < 730:
        return f"{days}d"
    return f"{days // 365}y"
