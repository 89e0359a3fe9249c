"""Priorities: P1..P4, their RT codes, the S1..S4 aliases, and which one is worse."""

from __future__ import annotations

import pytest

from collector.tickets.priority import Priority, PriorityError

P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4


@pytest.mark.parametrize(("priority", "code", "severity"), [
    pytest.param(P1, 80, "S1", id="P1 is RT code 80, S1 system outage"),
    pytest.param(P2, 60, "S2", id="P2 is RT code 60, S2 key functionality impaired"),
    pytest.param(P3, 40, "S3", id="P3 is RT code 40, S3 moderate impact"),
    pytest.param(P4, 20, "S4", id="P4 is RT code 20, S4 minor impact"),
])
def test_rt_code_and_severity(priority, code, severity):
    assert priority.rt_code == code
    assert priority.severity == severity


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("P1", P1, id="P1"),
    pytest.param("p2", P2, id="lower case p2"),
    pytest.param(" P3 ", P3, id="P3 with spaces"),
    pytest.param("P4", P4, id="P4"),
    pytest.param("S1", P1, id="S1 is P1"),
    pytest.param("s2", P2, id="s2 is P2"),
    pytest.param("S3", P3, id="S3 is P3"),
    pytest.param("S4", P4, id="S4 is P4"),
    pytest.param(80, P1, id="RT code 80 is P1"),
    pytest.param(60, P2, id="RT code 60 is P2"),
    pytest.param(40, P3, id="RT code 40 is P3"),
    pytest.param(20, P4, id="RT code 20 is P4"),
    pytest.param("40", P3, id="RT code as text '40' is P3"),
    pytest.param(P2, P2, id="a priority is itself"),
])
def test_parse(text, expected):
    assert Priority.parse(text) is expected


@pytest.mark.parametrize("text", [
    pytest.param("P0", id="P0 does not exist"),
    pytest.param("P5", id="P5 does not exist"),
    pytest.param("S5", id="S5 does not exist"),
    pytest.param("high", id="a word"),
    pytest.param("", id="empty"),
    pytest.param(50, id="RT code 50 is not one of the four"),
    pytest.param(True, id="a boolean"),
    pytest.param(1.0, id="a float"),
    pytest.param(None, id="nothing"),
])
def test_parse_refuses_with_a_clear_error(text):
    with pytest.raises(PriorityError, match="use P1..P4, S1..S4 or the RT codes"):
        Priority.parse(text)


def test_p1_is_the_highest_and_max_is_the_most_urgent():
    assert P1 > P2 > P3 > P4
    assert P4 < P3 < P2 < P1
    assert max([P3, P1, P4]) is P1
    assert min([P3, P2, P4]) is P4
    assert sorted([P2, P4, P1, P3], reverse=True) == [P1, P2, P3, P4]


@pytest.mark.parametrize(("a", "b", "worse"), [
    pytest.param(P1, P2, True, id="P1 is worse than P2"),
    pytest.param(P3, P4, True, id="P3 is worse than P4"),
    pytest.param(P4, P1, False, id="P4 is not worse than P1"),
    pytest.param(P2, P2, False, id="P2 is not worse than itself"),
])
def test_worse(a, b, worse):
    assert a.is_worse_than(b) is worse
    assert (a > b) is worse


def test_stored_as_its_name():
    assert str(P1) == "P1"
    assert Priority("P3") is P3
    assert P2 == "P2"


def test_comparing_with_plain_text_is_refused():
    with pytest.raises(TypeError):
        assert P1 > "P2"  # type: ignore[operator]
