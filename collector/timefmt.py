"""Time helpers: stored times are float epoch seconds; the API speaks ISO-8601 UTC."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch; ``time.time`` in production, a settable fake in tests."""


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused (it names no instant)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got a naive one: {at!r}")
    return at.astimezone(UTC)


def iso(ts: float) -> str:
    """``2026-11-23T09:24:06.929Z`` from epoch seconds."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def human_time(ts: float) -> str:
    """``2026-11-23 09:24:06 UTC``: a moment in a text people read (notes, mail)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_or_none(ts: float | None) -> str | None:
    """``iso`` that passes ``None`` through."""
    return None if ts is None else iso(ts)


def human_duration(seconds: float) -> str:
    """A short duration for people: ``45s``, ``7m``, ``3h20m``, ``2d4h``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


CLOCK_OFFSET_ENV = "WATCHKEEPER_CLOCK_OFFSET_FILE"


class OffsetClock:
    """The system clock plus the seconds written in a file (re-read when it changes).

    For drills and end-to-end tests of the SLA and escalation clocks with real processes:
    ``WATCHKEEPER_CLOCK_OFFSET_FILE=path watchkeeper-collector serve`` runs the collector
    that many seconds ahead. Not meant for production; a missing or unreadable file
    counts as no offset.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._offset = 0.0

    def __call__(self) -> float:
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self._path) as fh:
                    self._offset = float(fh.read().strip() or 0)
                self._stamp = stamp
        except (OSError, ValueError):
            self._offset, self._stamp = 0.0, None
        return time.time() + self._offset
