"""Soft and hard problem states: when failing results become a ticket, and what is reported."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from checks.result import Status
from collector.problems.config import ProblemRules
from collector.problems.keys import ProblemKey
from collector.problems.states import (
    EventKind,
    ProblemState,
    StateType,
    Step,
    advance,
    new_state,
)

OK, WARNING, CRITICAL, UNKNOWN = Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN
E = EventKind
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KEY = ProblemKey("acme", "db1.acme.example", "replication", "main")
DISK = ProblemKey("acme", "db1.acme.example", "disk", "/var")
SILENCE = ProblemKey.host_silence(customer="acme", host="db1.acme.example")
SITE = ProblemKey.site_silence(customer="acme")


def run(statuses: Sequence[Status], *, rules: ProblemRules | None = None,
        key: ProblemKey = KEY, check_type: str | None = None) -> list[Step]:
    """Fold results a minute apart into a new key; one step per result."""
    rules = rules or ProblemRules()
    state = new_state(key)
    steps = []
    for i, status in enumerate(statuses):
        step = advance(state=state, status=status, at=T0 + timedelta(minutes=i), rules=rules,
                       check_type=check_type)
        steps.append(step)
        state = step.state
    return steps


def kinds(steps: Sequence[Step]) -> list[list[EventKind]]:
    return [[e.kind for e in step.events] for step in steps]


@pytest.mark.parametrize(("statuses", "expected"), [
    pytest.param([OK, OK, OK], [[], [], []], id="OK all along reports nothing"),
    pytest.param([CRITICAL], [[E.SOFT_FAILURE]],
                 id="one CRITICAL is a soft state 1/2: no ticket"),
    pytest.param([CRITICAL, CRITICAL], [[E.SOFT_FAILURE], [E.BECAME_HARD]],
                 id="the second CRITICAL in a row makes it hard: a ticket"),
    pytest.param([CRITICAL, OK, CRITICAL, OK], [[E.SOFT_FAILURE], [E.SOFT_RECOVERED],
                                               [E.SOFT_FAILURE], [E.SOFT_RECOVERED]],
                 id="an OK in soft state resets the count: never a ticket"),
    pytest.param([WARNING, CRITICAL], [[E.SOFT_FAILURE], [E.BECAME_HARD]],
                 id="WARNING then CRITICAL are two non-OK results in a row"),
    pytest.param([UNKNOWN, UNKNOWN], [[E.SOFT_FAILURE], [E.BECAME_HARD]],
                 id="UNKNOWN (could not check) counts as non-OK"),
    pytest.param([OK, UNKNOWN, CRITICAL], [[], [E.SOFT_FAILURE], [E.BECAME_HARD]],
                 id="UNKNOWN then CRITICAL make it hard"),
    pytest.param([WARNING, WARNING, CRITICAL], [[E.SOFT_FAILURE], [E.BECAME_HARD],
                                                [E.WORSENED]],
                 id="WARNING to CRITICAL while hard is worse"),
    pytest.param([WARNING, WARNING, UNKNOWN], [[E.SOFT_FAILURE], [E.BECAME_HARD],
                                               [E.WORSENED]],
                 id="WARNING to UNKNOWN while hard is worse"),
    pytest.param([CRITICAL, CRITICAL, UNKNOWN], [[E.SOFT_FAILURE], [E.BECAME_HARD],
                                                 [E.IMPROVED]],
                 id="CRITICAL to UNKNOWN while hard is better"),
    pytest.param([CRITICAL, CRITICAL, WARNING], [[E.SOFT_FAILURE], [E.BECAME_HARD],
                                                 [E.IMPROVED]],
                 id="CRITICAL to WARNING while hard is better"),
    pytest.param([CRITICAL, CRITICAL, CRITICAL, CRITICAL],
                 [[E.SOFT_FAILURE], [E.BECAME_HARD], [E.STILL_FAILING], [E.STILL_FAILING]],
                 id="the same status while hard is still failing, every result"),
    pytest.param([CRITICAL, CRITICAL, OK, OK], [[E.SOFT_FAILURE], [E.BECAME_HARD],
                                                [E.RECOVERED], []],
                 id="OK after hard is the recovery, reported once"),
    pytest.param([CRITICAL, CRITICAL, OK, CRITICAL, CRITICAL],
                 [[E.SOFT_FAILURE], [E.BECAME_HARD], [E.RECOVERED], [E.SOFT_FAILURE],
                  [E.BECAME_HARD]],
                 id="after a recovery a new failure starts soft again"),
])
def test_soft_and_hard_states(statuses, expected):
    assert kinds(run(statuses)) == expected


@pytest.mark.parametrize(("rules", "key", "check_type", "hard_at"), [
    pytest.param(ProblemRules(), KEY, None, 2, id="default: hard at the 2nd non-OK result"),
    pytest.param(ProblemRules(hard_after=1), KEY, None, 1, id="hard_after 1: hard at once"),
    pytest.param(ProblemRules(hard_after=4), KEY, None, 4, id="hard_after 4: at the 4th"),
    pytest.param(ProblemRules(hard_after_by_check={"disk": 3}), DISK, "disk", 3,
                 id="disk check overridden to 3: hard at the 3rd"),
    pytest.param(ProblemRules(hard_after_by_check={"disk": 3}), KEY, None, 2,
                 id="an override for disk leaves replication at the default 2"),
    pytest.param(ProblemRules(hard_after_by_type={"mysql_replication": 5}), KEY,
                 "mysql_replication", 5, id="override by check type: hard at the 5th"),
    pytest.param(ProblemRules(hard_after_by_check={"replication": 3},
                              hard_after_by_type={"mysql_replication": 5}),
                 KEY, "mysql_replication", 3, id="the check instance wins over its type"),
    pytest.param(ProblemRules(hard_after=5), SILENCE, None, 1,
                 id="host silence is hard at once whatever hard_after says"),
    pytest.param(ProblemRules(hard_after=5), SITE, None, 1,
                 id="site silence is hard at once"),
])
def test_hard_after_per_check(rules, key, check_type, hard_at):
    steps = run([CRITICAL] * 6, rules=rules, key=key, check_type=check_type)
    became = [i + 1 for i, s in enumerate(steps) if E.BECAME_HARD in [e.kind for e in s.events]]
    assert became == [hard_at]
    assert steps[hard_at - 1].events[0].opens
    assert steps[hard_at - 1].state.state_type is StateType.HARD
    if hard_at > 1:
        assert steps[hard_at - 2].state.state_type is StateType.SOFT


def test_reasons_say_why_no_ticket_was_opened():
    soft, hard, worse, still, recovered = (s.events[0] for s in run(
        [WARNING, WARNING, CRITICAL, CRITICAL, OK]))
    assert soft.reason.startswith("soft state 1/2: WARNING")
    assert not soft.opens
    assert hard.reason == "WARNING: 2 non-OK results in a row (hard after 2)"
    assert worse.reason == "worse: WARNING -> CRITICAL"
    assert still.reason == "still CRITICAL: 4 non-OK results in a row"
    assert recovered.reason == ("OK again after 4 non-OK results since "
                                "2026-11-23T09:00:00+00:00")
    silence = run([CRITICAL], key=SILENCE)[0].events[0]
    assert (silence.kind, silence.reason) == (E.BECAME_HARD, "CRITICAL: hard at once")


def test_events_carry_what_the_ticket_engine_needs():
    steps = run([WARNING, CRITICAL, CRITICAL])
    hard = steps[1].events[0]
    assert hard.key == KEY
    assert hard.at == T0 + timedelta(minutes=1)
    assert (hard.status, hard.previous_status) == (CRITICAL, WARNING)
    assert (hard.attempt, hard.hard_after) == (2, 2)
    assert hard.to_json()["kind"] == "became_hard"
    assert json.loads(json.dumps(hard.to_json()))["key"] == KEY.to_json()


def test_timestamps_of_a_problem():
    steps = run([OK, CRITICAL, CRITICAL, CRITICAL, OK])
    failing = steps[3].state
    assert failing.failing_since == T0 + timedelta(minutes=1)
    assert failing.hard_since == T0 + timedelta(minutes=2)
    assert failing.last_result_at == T0 + timedelta(minutes=3)
    assert failing.attempt == 3
    ok = steps[4].state
    assert (ok.failing_since, ok.hard_since, ok.attempt) == (None, None, 0)


def test_a_result_older_than_the_last_one_changes_nothing():
    state = run([CRITICAL])[0].state
    late = advance(state=state, status=CRITICAL, at=T0 - timedelta(seconds=1),
                   rules=ProblemRules())
    assert late == Step(state, ())


def test_local_times_are_kept_in_utc():
    kyiv = datetime(2026, 11, 23, 11, 0, tzinfo=ZoneInfo("Europe/Kyiv"))
    step = advance(state=new_state(KEY), status=CRITICAL, at=kyiv, rules=ProblemRules())
    assert step.state.last_result_at == T0
    assert step.state.last_result_at.tzinfo is UTC
    assert step.events[0].at.utcoffset() == timedelta(0)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        advance(state=new_state(KEY), status=CRITICAL, at=datetime(2026, 11, 23, 9),
                rules=ProblemRules())


def test_host_silence_is_never_flapping():
    steps = run([CRITICAL, OK] * 20, key=SILENCE)
    assert all(not s.state.flapping for s in steps)
    assert kinds(steps) == [[E.BECAME_HARD], [E.RECOVERED]] * 20


@pytest.mark.parametrize("statuses", [
    pytest.param([], id="a new key"),
    pytest.param([CRITICAL], id="soft"),
    pytest.param([WARNING, CRITICAL, CRITICAL], id="hard"),
    pytest.param([CRITICAL, OK] * 8, id="flapping"),
    pytest.param([CRITICAL, OK] * 8 + [OK] * 30, id="stopped flapping"),
    pytest.param([CRITICAL, UNKNOWN, WARNING, OK] * 10, id="a long history, trimmed to 21"),
])
def test_state_json_round_trip(statuses):
    state = run(statuses)[-1].state if statuses else new_state(KEY)
    text = json.dumps(state.to_json())
    assert ProblemState.from_json(json.loads(text)) == state
    assert len(state.history) <= 21


@pytest.mark.parametrize(("change", "message"), [
    pytest.param({"version": 2}, "version", id="another version"),
    pytest.param({"status": 7}, "status", id="a status out of range"),
    pytest.param({"history": [0, "2"]}, "history", id="a history entry not a status"),
    pytest.param({"hard_since": "2026-11-23T09:00:00"}, "hard_since", id="a naive time"),
    pytest.param({"key": {"customer": "acme"}}, "host", id="a key without host"),
    pytest.param({"state_type": "sticky"}, "sticky", id="an unknown state type"),
])
def test_state_json_refuses_bad_data(change, message):
    data = run([CRITICAL, CRITICAL])[-1].state.to_json() | change
    with pytest.raises(ValueError, match=message):
        ProblemState.from_json(data)
