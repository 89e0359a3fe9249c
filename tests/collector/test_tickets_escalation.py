"""The escalation matrix (clock hours since opening) and SLA breach notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checks.config import ConfigError
from collector.tickets.escalation import (
    BreachKind,
    BreachNotice,
    Deadline,
    Escalation,
    EscalationMatrix,
    Role,
    due_breach_notices,
    due_escalations,
)
from collector.tickets.priority import Priority

P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4
TSM = Role.TECHNICAL_SUPPORT_MANAGER
CRM = Role.CUSTOMER_RELATIONS_MANAGER
CTO = Role.CTO
OPENED = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # a Friday afternoon: clock hours ignore it
H = timedelta(hours=1)
S = timedelta(seconds=1)


def due(priority, elapsed, sent=(), matrix=None):
    return due_escalations(matrix=matrix or EscalationMatrix(), priority=priority,
                           opened_at=OPENED, now=OPENED + elapsed, sent=set(sent))


def roles(escalations):
    return [e.role for e in escalations]


# Every cell of the policy's matrix: not due a second before, due at its hour.
CELLS = [
    pytest.param(P1, TSM, 0, id="P1: Technical Support Manager immediately"),
    pytest.param(P1, CRM, 1, id="P1: Customer Relations Manager at 1 hour"),
    pytest.param(P1, CTO, 4, id="P1: CTO at 4 hours"),
    pytest.param(P2, TSM, 1, id="P2: Technical Support Manager at 1 hour"),
    pytest.param(P2, CRM, 4, id="P2: Customer Relations Manager at 4 hours"),
    pytest.param(P2, CTO, 8, id="P2: CTO at 8 hours"),
    pytest.param(P3, TSM, 48, id="P3: Technical Support Manager at 48 hours"),
    pytest.param(P3, CRM, 96, id="P3: Customer Relations Manager at 96 hours"),
    pytest.param(P4, TSM, 96, id="P4: Technical Support Manager at 96 hours"),
]


@pytest.mark.parametrize(("priority", "role", "hours"), CELLS)
def test_each_cell_is_due_at_its_hour_and_not_before(priority, role, hours):
    earlier = {r for r in Role if r is not role}
    sent = {(r, "earlier") for r in earlier}
    if hours:
        assert due(priority, hours * H - S, sent) == ()
    assert due(priority, hours * H, sent) == (
        Escalation(role, f"{priority} {'immediately' if hours == 0 else f'{hours}h'}",
                   OPENED + hours * H),)


@pytest.mark.parametrize(("priority", "hours", "expected"), [
    pytest.param(P1, 100, [TSM, CRM, CTO], id="P1 after 100 h: TSM, CRM, CTO in order"),
    pytest.param(P2, 100, [TSM, CRM, CTO], id="P2 after 100 h: TSM, CRM, CTO in order"),
    pytest.param(P3, 100, [TSM, CRM], id="P3 after 100 h: TSM and CRM, never the CTO"),
    pytest.param(P4, 100, [TSM], id="P4 after 100 h: only the TSM"),
    pytest.param(P2, 5, [TSM, CRM], id="P2 after 5 h: TSM and CRM, the CTO not yet"),
    pytest.param(P3, 47, [], id="P3 after 47 h: nobody yet"),
    pytest.param(P4, 95, [], id="P4 after 95 h: nobody yet"),
])
def test_the_column_of_the_priority(priority, hours, expected):
    assert roles(due(priority, hours * H)) == expected


def test_clock_hours_run_over_the_weekend():
    # Opened Friday 16:00; a P3's 48 hours end Sunday 16:00, business hours or not.
    escalations = due(P3, 48 * H)
    assert escalations[0].due_at == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


def test_each_role_once_when_asked_again_and_again():
    sent: set[tuple[str, str]] = set()
    told = []
    for minutes in range(0, 10 * 60, 7):
        for escalation in due(P2, timedelta(minutes=minutes), sent):
            told.append(escalation.role)
            sent.add((escalation.role, escalation.step))
    assert told == [TSM, CRM, CTO]


def test_a_role_already_told_under_any_step_is_not_told_again():
    assert roles(due(P1, 5 * H, {(TSM, "P3 48h")})) == [CRM, CTO]


def test_sent_may_hold_stored_role_names():
    assert roles(due(P1, 5 * H, {("technical_support_manager", "P1 immediately")})) == [CRM, CTO]


def test_p3_raised_to_p1_after_two_hours_tells_what_p1_has_due_once_each():
    # Two hours as P3: nothing was due.
    assert due(P3, 2 * H) == ()
    # Raised to P1 at 2 h: the TSM ("immediately") and the CRM (1 h) at once.
    first = due(P1, 2 * H)
    assert [(e.role, e.step, e.due_at) for e in first] == [
        (TSM, "P1 immediately", OPENED), (CRM, "P1 1h", OPENED + H)]
    sent = {(e.role, e.step) for e in first}
    # Asked again a minute later: nothing new; the CTO at 4 h since opening, not since raised.
    assert due(P1, 2 * H + 60 * S, sent) == ()
    assert due(P1, 4 * H - S, sent) == ()
    assert roles(due(P1, 4 * H, sent)) == [CTO]


def test_p3_raised_to_p2_after_50_hours_does_not_tell_the_tsm_twice():
    sent = {(e.role, e.step) for e in due(P3, 50 * H)}
    assert sent == {(TSM, "P3 48h")}
    assert roles(due(P2, 50 * H, sent)) == [CRM, CTO]


def test_p1_lowered_to_p4_by_a_person_keeps_quiet_until_the_p4_column():
    sent = {(e.role, e.step) for e in due(P1, 30 * 60 * S)}
    assert roles(due(P4, 95 * H, sent)) == []
    assert roles(due(P4, 96 * H, sent)) == []  # the TSM was told when it was P1


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        due_escalations(matrix=EscalationMatrix(), priority=P1,
                        opened_at=datetime(2026, 11, 27, 16, 0), now=OPENED, sent=set())


# ---------------------------------------------------------------------------- config

def test_a_configured_column_replaces_that_priority_only():
    matrix = EscalationMatrix.from_table({
        "P2": {"technical_support_manager": "30m", "cto": "6h"},
        "s4": {},
    })
    assert roles(due(P2, 30 * 60 * S, matrix=matrix)) == [TSM]
    assert roles(due(P2, 6 * H, matrix=matrix)) == [TSM, CTO]
    assert roles(due(P4, 200 * H, matrix=matrix)) == []
    assert roles(due(P1, 4 * H, matrix=matrix)) == [TSM, CRM, CTO]


def test_durations_as_seconds_or_with_units():
    matrix = EscalationMatrix.from_table({"P1": {"cto": 5400, "customer_relations_manager": "2d",
                                                 "technical_support_manager": 0}})
    assert [(s.role, s.after) for s in matrix.steps(P1)] == [
        (TSM, timedelta(0)), (CTO, timedelta(minutes=90)), (CRM, timedelta(days=2))]


def test_empty_table_is_the_policy_matrix():
    assert EscalationMatrix.from_table({}) == EscalationMatrix()


@pytest.mark.parametrize(("table", "key", "message"), [
    pytest.param({"P5": {}}, "escalation.P5", "unknown key", id="no priority P5"),
    pytest.param({"P1": {"ceo": "1h"}}, "escalation.P1.ceo", "not a role",
                 id="an unknown role is named"),
    pytest.param({"P1": {"cto": "soon"}}, "escalation.P1.cto", "not a duration",
                 id="a time that is no duration"),
    pytest.param({"P1": {"cto": -5}}, "escalation.P1.cto", "negative",
                 id="a negative time"),
    pytest.param({"P1": {"cto": True}}, "escalation.P1.cto", "not a duration",
                 id="a boolean time"),
    pytest.param({"P1": "tsm"}, "escalation.P1", "table", id="a column that is not a table"),
    pytest.param({"P1": {}, "S1": {}}, "escalation.S1", "same priority",
                 id="P1 and its alias S1 both given"),
    pytest.param({"breach_role": "boss"}, "escalation.breach_role", "not a role",
                 id="an unknown breach role"),
])
def test_config_errors_name_the_key(table, key, message):
    with pytest.raises(ConfigError) as err:
        EscalationMatrix.from_table(table)
    assert err.value.key == key
    assert message in err.value.message


def test_role_names():
    assert [r.display_name for r in Role] == [
        "Technical Support Manager", "Customer Relations Manager", "CTO"]


# ---------------------------------------------------------------------------- breaches

DUE = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def breaches(deadlines, now, sent=(), matrix=None):
    return due_breach_notices(matrix=matrix or EscalationMatrix(), deadlines=deadlines,
                              now=now, sent=set(sent))


@pytest.mark.parametrize(("deadline", "now", "missed"), [
    pytest.param(Deadline(BreachKind.FIRST_RESPONSE, DUE), DUE - S, False,
                 id="first response not yet due: no notice"),
    pytest.param(Deadline(BreachKind.FIRST_RESPONSE, DUE), DUE, False,
                 id="first response at its due moment, still unanswered: not yet missed"),
    pytest.param(Deadline(BreachKind.FIRST_RESPONSE, DUE), DUE + S, True,
                 id="first response a second overdue: the TSM is told"),
    pytest.param(Deadline(BreachKind.FIRST_RESPONSE, DUE, DUE), DUE + H, False,
                 id="first response given exactly at the due moment is in time"),
    pytest.param(Deadline(BreachKind.FIRST_RESPONSE, DUE, DUE + 60 * S), DUE + H, True,
                 id="first response given a minute late is a breach even seen afterwards"),
    pytest.param(Deadline(BreachKind.UPDATE, DUE), DUE + S, True,
                 id="update overdue: the TSM is told"),
    pytest.param(Deadline(BreachKind.UPDATE, DUE, DUE - H), DUE + H, False,
                 id="update given an hour early: no notice"),
])
def test_breach(deadline, now, missed):
    expected = (BreachNotice(deadline.kind, deadline.due_at, TSM),) if missed else ()
    assert breaches([deadline], now) == expected


def test_each_missed_deadline_is_told_once():
    deadlines = [Deadline(BreachKind.FIRST_RESPONSE, DUE, DUE + H),
                 Deadline(BreachKind.UPDATE, DUE + 2 * H)]
    first = breaches(deadlines, DUE + 3 * H)
    assert [n.kind for n in first] == [BreachKind.FIRST_RESPONSE, BreachKind.UPDATE]
    sent = {n.key for n in first}
    assert breaches(deadlines, DUE + 4 * H, sent) == ()
    # A later update deadline missed is a breach of its own.
    later = breaches([*deadlines, Deadline(BreachKind.UPDATE, DUE + 5 * H)], DUE + 6 * H, sent)
    assert [(n.kind, n.due_at) for n in later] == [(BreachKind.UPDATE, DUE + 5 * H)]


def test_breach_key_is_kind_and_due_moment():
    notice = BreachNotice(BreachKind.UPDATE, DUE, TSM)
    assert notice.key == "update 2026-11-27T17:00:00+00:00"


def test_breach_role_is_configurable():
    matrix = EscalationMatrix.from_table({"breach_role": "customer_relations_manager"})
    (notice,) = breaches([Deadline(BreachKind.UPDATE, DUE)], DUE + H, matrix=matrix)
    assert notice.role is CRM
