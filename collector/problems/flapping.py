"""Nagios' percent state change: how much a key's recent results changed, recent ones weighing more.

Over the last ``window`` results (21 in Nagios) there are ``window - 1`` places where the
status may change. A change at place ``x`` (1 = between the two oldest results, ``window - 1``
= between the two newest) weighs ``oldest + (x - 1) * (newest - oldest) / (window - 2)``;
the weighted sum over the ``window - 1`` places, as a percentage, is the percent state change.
Every status counts: WARNING to CRITICAL is a change like OK to CRITICAL.
"""

from __future__ import annotations

from collections.abc import Sequence

from checks.result import Status
from collector.problems.config import FlappingRules


def percent_state_change(history: Sequence[Status], *, rules: FlappingRules) -> float:
    """The weighted percent state change (0..100) of ``history``, oldest first.

    A history shorter than the window counts as if its oldest status had been there
    before (Nagios fills a new history with the current state); a longer one counts
    only its last ``window`` results.
    """
    window = rules.window
    recent = list(history[-window:])
    if not recent:
        return 0.0
    padded = [recent[0]] * (window - len(recent)) + recent
    step = (rules.weight_newest - rules.weight_oldest) / (window - 2)
    weighted = sum(
        rules.weight_oldest + (place - 1) * step
        for place in range(1, window)
        if padded[place] != padded[place - 1]
    )
    return weighted * 100.0 / (window - 1)


def flapping_after(*, was_flapping: bool, percent: float, rules: FlappingRules) -> bool:
    """Whether a key flaps, given the new percent state change (with hysteresis).

    It starts flapping at or above the start threshold and stops at or below the stop
    threshold; in between it stays as it was.
    """
    if not rules.enabled:
        return False
    if was_flapping:
        return percent > rules.stop_threshold
    return percent >= rules.start_threshold
