"""Flapping: Nagios' weighted percent state change, start and stop thresholds, one report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from checks.result import Status
from collector.problems.config import FlappingRules, ProblemRules
from collector.problems.flapping import flapping_after, percent_state_change
from collector.problems.keys import ProblemKey
from collector.problems.states import EventKind, StateType, Step, advance, new_state

OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN
E = EventKind
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KEY = ProblemKey("acme", "web1.acme.example", "dns", "forward")
NAGIOS = FlappingRules()


def run(statuses: Sequence[Status], *, rules: ProblemRules | None = None,
        every: timedelta = timedelta(minutes=1)) -> list[Step]:
    rules = rules or ProblemRules()
    state = new_state(KEY)
    steps = []
    for i, status in enumerate(statuses):
        step = advance(state=state, status=status, at=T0 + i * every, rules=rules)
        steps.append(step)
        state = step.state
    return steps


def where(steps: Sequence[Step], kind: EventKind) -> list[int]:
    return [i for i, s in enumerate(steps) for e in s.events if e.kind is kind]


# A change between the two results at place x (1..20 of 21 results) weighs
# 0.75 + (x - 1) * 0.5 / 19; the percentage is the weighted sum * 100 / 20.
@pytest.mark.parametrize(("history", "percent"), [
    pytest.param([OK] * 21, 0.0, id="21 OK results: 0 %"),
    pytest.param([CRITICAL] * 21, 0.0, id="21 CRITICAL results: 0 %, a problem is not a flap"),
    pytest.param([OK] * 20 + [CRITICAL], 1.25 * 5, id="one change, the newest: 1.25 -> 6.25 %"),
    pytest.param([CRITICAL] + [OK] * 20, 0.75 * 5, id="one change, the oldest: 0.75 -> 3.75 %"),
    pytest.param([OK] * 11 + [CRITICAL, OK] * 5, (7.5 + 145 * 0.5 / 19) * 5,
                 id="10 changes in the newer half: 56.58 %, flapping"),
    pytest.param([OK] + [CRITICAL, OK] * 5 + [OK] * 10, (7.5 + 45 * 0.5 / 19) * 5,
                 id="the same 10 changes in the older half: 43.42 %, not flapping"),
    pytest.param([CRITICAL, OK] * 10 + [CRITICAL], 100.0, id="a change every result: 100 %"),
    pytest.param([WARNING, CRITICAL] * 10 + [WARNING], 100.0,
                 id="WARNING to CRITICAL is a change too"),
    pytest.param([OK, CRITICAL], 1.25 * 5,
                 id="a short history counts as if its first status had been there before"),
    pytest.param([OK] * 30 + [CRITICAL], 1.25 * 5, id="only the last 21 results count"),
    pytest.param([CRITICAL] * 10 + [OK] * 21, 0.0, id="a change 22 results ago is forgotten"),
])
def test_percent_state_change_hand_computed(history, percent):
    assert percent_state_change(history, rules=NAGIOS) == pytest.approx(percent)


def test_weights_can_be_configured():
    narrower = FlappingRules(weight_oldest=0.8, weight_newest=1.2)
    newer_half = [OK] * 11 + [CRITICAL, OK] * 5
    older_half = [OK] + [CRITICAL, OK] * 5 + [OK] * 10
    assert percent_state_change(newer_half, rules=narrower) == pytest.approx(
        (8 + 145 * 0.4 / 19) * 5)
    assert percent_state_change(older_half, rules=narrower) == pytest.approx(
        (8 + 45 * 0.4 / 19) * 5)
    flat = FlappingRules(weight_oldest=1, weight_newest=1)
    assert percent_state_change(newer_half, rules=flat) == pytest.approx(50.0)


def test_a_shorter_window():
    five = FlappingRules(window=5)
    # places 1..4 weigh 0.75, 0.9167, 1.0833, 1.25; out of 4
    assert percent_state_change([OK, OK, OK, CRITICAL, OK], rules=five) == pytest.approx(
        (1.0833333 + 1.25) * 25)


@pytest.mark.parametrize(("was", "percent", "now"), [
    pytest.param(False, 49.9, False, id="not flapping below the start threshold"),
    pytest.param(False, 50.0, True, id="starts flapping at 50 %"),
    pytest.param(False, 30.0, False, id="between the thresholds a stable key stays stable"),
    pytest.param(True, 30.0, True, id="between the thresholds a flapping key goes on"),
    pytest.param(True, 25.1, True, id="still flapping just above the stop threshold"),
    pytest.param(True, 25.0, False, id="stops flapping at 25 %"),
])
def test_start_and_stop_thresholds(was, percent, now):
    assert flapping_after(was_flapping=was, percent=percent, rules=NAGIOS) is now


def test_flap_detection_off_never_flaps():
    assert not flapping_after(was_flapping=True, percent=100.0,
                              rules=FlappingRules(enabled=False))


def test_flapping_every_result_starts_once_and_opens_one_ticket():
    steps = run([CRITICAL, OK] * 15)
    # 9 changes at places 12..20 weigh 10.30 (51.5 %); 8 at 13..20 only 46.3 %
    assert where(steps, E.FLAPPING_STARTED) == [9]
    started = steps[9].events[0]
    assert started.opens
    assert started.status is CRITICAL  # what it flaps to, though this result is OK
    assert started.percent_state_change == pytest.approx(51.51, abs=0.01)
    assert started.suppressed is E.SOFT_RECOVERED
    assert "one ticket marked flapping" in started.reason
    assert [e.kind for s in steps[10:] for e in s.events] == [E.STILL_FLAPPING] * 20
    assert where(steps, E.BECAME_HARD) == []


def test_one_hundred_flaps_in_an_hour_make_one_ticket():
    statuses = [CRITICAL, CRITICAL, OK, OK] * 50  # 100 falls and 100 recoveries, 18 s apart
    steps = run(statuses, every=timedelta(seconds=18))
    opening = [(i, e.kind) for i, s in enumerate(steps) for e in s.events if e.opens]
    # Until the history shows the flapping (a change every 2 results: 50.66 % at the
    # 21st result), each fall is hard and reopens the same ticket (the ticket engine
    # reopens a recurrence); from then on the ticket is marked flapping and nothing else
    # is reported for the remaining 90 flaps.
    assert opening == [(1, E.BECAME_HARD), (5, E.BECAME_HARD), (9, E.BECAME_HARD),
                       (13, E.BECAME_HARD), (17, E.BECAME_HARD), (20, E.FLAPPING_STARTED)]
    assert steps[20].events[0].percent_state_change == pytest.approx(50.66, abs=0.01)
    assert [e.kind for s in steps[21:] for e in s.events] == [E.STILL_FLAPPING] * 179
    assert steps[-1].state.flapping


def test_a_hard_problem_that_starts_flapping_keeps_its_ticket():
    steps = run([CRITICAL] * 3 + [WARNING, CRITICAL] * 10)
    # 9 changes at the newest places: 51.5 %, as for any key
    assert where(steps, E.FLAPPING_STARTED) == [11]
    started = steps[11].events[0]
    assert not started.opens  # the ticket is open already; it is marked flapping
    assert started.suppressed is E.IMPROVED  # this result is the WARNING of the pair
    assert where(steps, E.WORSENED) == [4, 6, 8, 10]
    assert all(s.state.state_type is StateType.HARD for s in steps[1:])


def test_a_stable_problem_is_not_flapping():
    steps = run([OK] * 5 + [CRITICAL] * 40)
    assert all(not s.state.flapping for s in steps)
    assert max(s.state.percent_state_change for s in steps) == pytest.approx(6.25)
    assert where(steps, E.BECAME_HARD) == [6]


def test_flapping_stops_when_stable_and_ok_decides():
    steps = run([CRITICAL, OK] * 15 + [OK] * 20)
    # after 100 %, each stable result moves the changes one place older: <= 25 % at the 14th
    assert where(steps, E.FLAPPING_STOPPED) == [43]
    assert [e.kind for e in steps[43].events] == [E.FLAPPING_STOPPED, E.RECOVERED]
    assert steps[43].state.percent_state_change == pytest.approx(24.47, abs=0.01)
    assert steps[43].state.state_type is StateType.OK
    assert not steps[43].state.reported
    assert [e.kind for s in steps[44:] for e in s.events] == []


def test_flapping_stops_while_failing_and_the_problem_goes_on():
    steps = run([CRITICAL, OK] * 15 + [CRITICAL] * 20 + [OK])
    # one place later than when settling on OK: OK -> CRITICAL is one more change
    assert where(steps, E.FLAPPING_STOPPED) == [44]
    stopped = steps[44].events
    assert [e.kind for e in stopped] == [E.FLAPPING_STOPPED]
    assert "still CRITICAL" in stopped[0].reason
    assert steps[44].state.state_type is StateType.HARD
    assert steps[44].state.reported
    assert [e.kind for s in steps[45:-1] for e in s.events] == [E.STILL_FAILING] * 5
    assert [e.kind for e in steps[-1].events] == [E.RECOVERED]


def test_a_worse_status_while_flapping_is_reported_once():
    steps = run([WARNING, OK] * 12 + [CRITICAL, OK] * 3)
    assert where(steps, E.FLAPPING_STARTED) == [9]
    assert steps[9].events[0].status is WARNING
    assert where(steps, E.WORSENED) == [24]
    worse = steps[24].events[0]
    assert worse.status is CRITICAL
    assert worse.reason == "flapping, now also CRITICAL (worse than WARNING)"
    assert where(steps, E.FLAPPING_STARTED) == [9]


def test_flap_detection_turned_off_stops_a_flapping_key():
    steps = run([CRITICAL, OK] * 10)
    assert steps[-1].state.flapping
    off = ProblemRules(flapping=FlappingRules(enabled=False))
    step = advance(state=steps[-1].state, status=CRITICAL, at=T0 + timedelta(hours=1),
                   rules=off)
    assert [e.kind for e in step.events] == [E.FLAPPING_STOPPED]
    assert "flap detection is off" in step.events[0].reason
    assert step.state.state_type is StateType.HARD


def test_configured_thresholds():
    steps = run([CRITICAL, OK] * 15, rules=ProblemRules(
        flapping=FlappingRules(start_threshold=30, stop_threshold=10)))
    # 29.93 % after 5 changes, 35.53 % after 6
    assert where(steps, E.FLAPPING_STARTED) == [6]
