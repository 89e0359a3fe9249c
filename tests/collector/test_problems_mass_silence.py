"""Mass silence: most of a customer's hosts silent together make one site problem."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from collector.problems.config import MassSilenceRules
from collector.problems.keys import ProblemKey
from collector.problems.mass_silence import (
    HostSilence,
    MassSilenceDecision,
    MassSilenceState,
    SilenceVerdict,
    SiteEventKind,
    SiteSilence,
    decide_mass_silence,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOSTS = ("a.acme.example", "b.acme.example", "c.acme.example", "d.acme.example")
A, B, C, D = HOSTS
SITE, OWN, HELD = SilenceVerdict.SITE, SilenceVerdict.OWN, SilenceVerdict.HELD
RULES = MassSilenceRules()


def snapshot(silent: dict[str, datetime], hosts: tuple[str, ...] = HOSTS) -> list[HostSilence]:
    return [HostSilence(h, silent.get(h)) for h in hosts]


def decide(silent: dict[str, datetime], *, now: datetime,
           previous: MassSilenceState | None = None, hosts: tuple[str, ...] = HOSTS,
           rules: MassSilenceRules = RULES) -> MassSilenceDecision:
    return decide_mass_silence(customer="acme", hosts=snapshot(silent, hosts),
                               previous=previous, now=now, rules=rules)


def verdicts(decision: MassSilenceDecision) -> dict[str, SilenceVerdict]:
    return {v.host: v.verdict for v in decision.verdicts}


@pytest.mark.parametrize(("silent", "now", "expected", "site_opened"), [
    pytest.param({A: T0, B: T0 + MIN, C: T0 + 4 * MIN}, T0 + 6 * MIN,
                 {A: SITE, B: SITE, C: SITE}, True,
                 id="3 of 4 silent within 5 minutes: one site problem"),
    pytest.param({A: T0, B: T0, C: T0 + 5 * MIN}, T0 + 6 * MIN,
                 {A: SITE, B: SITE, C: SITE}, True,
                 id="3 of 4 silent exactly 5 minutes apart: still together"),
    pytest.param({A: T0, B: T0, C: T0, D: T0}, T0 + MIN,
                 {A: SITE, B: SITE, C: SITE, D: SITE}, True,
                 id="all 4 silent at once: one site problem"),
    pytest.param({A: T0, B: T0 + MIN}, T0 + 10 * MIN, {A: OWN, B: OWN}, False,
                 id="2 of 4 silent (not more than half): each its own problem"),
    pytest.param({A: T0, B: T0 + 20 * MIN, C: T0 + 40 * MIN}, T0 + 60 * MIN,
                 {A: OWN, B: OWN, C: OWN}, False,
                 id="3 of 4 silent spread over an hour: each its own problem"),
    pytest.param({A: T0, B: T0 + 3 * MIN, C: T0 + 6 * MIN}, T0 + 12 * MIN,
                 {A: OWN, B: OWN, C: OWN}, False,
                 id="3 of 4 silent over 6 minutes, no 5 minutes holds 3: each its own"),
    pytest.param({A: T0, B: T0 + MIN}, T0 + 2 * MIN, {A: HELD, B: HELD}, False,
                 id="2 of 4 silent 2 minutes ago: held, a site outage may be forming"),
    pytest.param({A: T0 - 30 * MIN, B: T0 + MIN}, T0 + 2 * MIN, {A: OWN, B: HELD}, False,
                 id="a host silent for 30 minutes is not held, one silent for 1 minute is"),
])
def test_site_or_own_problems(silent, now, expected, site_opened):
    decision = decide(silent, now=now)
    assert verdicts(decision) == expected
    opened = [e for e in decision.events if e.kind is SiteEventKind.SITE_SILENT]
    assert bool(opened) is site_opened
    assert (decision.state.site is not None) is site_opened
    if site_opened:
        assert opened[0].key == ProblemKey("acme", "*", "silence", "site")
        assert opened[0].hosts == tuple(sorted(h for h, v in expected.items() if v is SITE))
        assert decision.state.site is not None
        assert decision.state.site.since == min(silent.values())


def test_the_reasons_read_as_the_decision():
    site = decide({A: T0, B: T0 + MIN, C: T0 + 4 * MIN}, now=T0 + 6 * MIN)
    assert site.events[0].reason == (
        "3 of 4 hosts fell silent within 5m (more than 50 % of at least 3 hosts): "
        "one site problem instead of one per host")
    own = decide({A: T0, B: T0 + MIN}, now=T0 + 10 * MIN)
    assert own.verdicts[0].reason == (
        "silent on its own: 2 of 4 hosts fell silent within 5m of it, "
        "not more than 50 % of at least 3 hosts")
    held = decide({A: T0}, now=T0 + MIN)
    assert held.verdicts[0].held_until == T0 + 5 * MIN
    assert held.verdicts[0].reason.startswith("held until 2026-11-23T09:05:00+00:00")


def test_hosts_falling_silent_one_by_one_over_an_hour_each_get_their_own_problem():
    silent: dict[str, datetime] = {}
    state = None
    seen = []
    for minute in range(0, 61):
        now = T0 + minute * MIN
        if minute in (0, 20, 40):
            silent[HOSTS[minute // 20]] = now
        decision = decide(silent, now=now, previous=state)
        state = decision.state
        seen.append(verdicts(decision))
        assert not decision.events
    assert seen[4] == {A: HELD}
    assert seen[5] == {A: OWN}
    assert seen[60] == {A: OWN, B: OWN, C: OWN}
    assert state is not None and state.own == (A, B, C)


def test_a_host_detected_first_is_held_then_part_of_the_site():
    first = decide({A: T0}, now=T0 + MIN)
    assert verdicts(first) == {A: HELD}
    second = decide({A: T0, B: T0 + 2 * MIN, C: T0 + 3 * MIN}, now=T0 + 3 * MIN,
                    previous=first.state)
    assert verdicts(second) == {A: SITE, B: SITE, C: SITE}


def test_a_late_joiner_joins_the_site_problem():
    opened = decide({A: T0, B: T0, C: T0 + MIN}, now=T0 + 2 * MIN)
    later = decide({A: T0, B: T0, C: T0 + MIN, D: T0 + 40 * MIN}, now=T0 + 41 * MIN,
                   previous=opened.state)
    assert verdicts(later) == {A: SITE, B: SITE, C: SITE, D: SITE}
    assert [(e.kind, e.hosts) for e in later.events] == [(SiteEventKind.JOINED, (D,))]
    assert later.state.site == SiteSilence(since=T0, members=(A, B, C, D))


def test_a_host_silent_before_the_site_stays_on_its_own():
    hosts = (*HOSTS, "e.acme.example")
    silent = {"e.acme.example": T0 - 60 * MIN, A: T0, B: T0 + MIN, C: T0 + 2 * MIN}
    decision = decide(silent, now=T0 + 3 * MIN, hosts=hosts)
    assert verdicts(decision) == {A: SITE, B: SITE, C: SITE, "e.acme.example": OWN}
    assert decision.state.own == ("e.acme.example",)


def test_partial_recovery_while_most_are_silent_keeps_the_site_problem():
    everything = dict.fromkeys(HOSTS, T0)
    opened = decide(everything, now=T0 + MIN)
    one_back = decide({B: T0, C: T0, D: T0}, now=T0 + 30 * MIN, previous=opened.state)
    assert verdicts(one_back) == {B: SITE, C: SITE, D: SITE}
    assert [(e.kind, e.hosts) for e in one_back.events] == [(SiteEventKind.LEFT, (A,))]
    assert one_back.state.site == SiteSilence(since=T0, members=(B, C, D))


def test_partial_recovery_leaves_the_still_silent_hosts_their_own_problems():
    opened = decide({A: T0, B: T0, C: T0}, now=T0 + MIN)
    recovered = decide({C: T0}, now=T0 + 30 * MIN, previous=opened.state)
    assert verdicts(recovered) == {C: OWN}
    assert recovered.verdicts[0].reason == "still silent when the site recovered"
    assert [(e.kind, e.hosts) for e in recovered.events] == [
        (SiteEventKind.SITE_RECOVERED, (A, B))]
    assert "c.acme.example still silent: each its own problem" in recovered.events[0].reason
    assert recovered.state == MassSilenceState(customer="acme", site=None, own=(C,))
    # and it stays on its own, even while another host falls silent next to it
    after = decide({C: T0, D: T0 + 31 * MIN}, now=T0 + 31 * MIN, previous=recovered.state)
    assert verdicts(after) == {C: OWN, D: HELD}


def test_full_recovery_ends_the_site_problem():
    opened = decide({A: T0, B: T0, C: T0}, now=T0 + MIN)
    recovered = decide({}, now=T0 + 30 * MIN, previous=opened.state)
    assert recovered.verdicts == ()
    assert [(e.kind, e.hosts) for e in recovered.events] == [
        (SiteEventKind.SITE_RECOVERED, (A, B, C))]
    assert recovered.state == MassSilenceState(customer="acme")


@pytest.mark.parametrize(("hosts", "rules", "expected"), [
    pytest.param(HOSTS[:2], RULES, {A: OWN, B: OWN},
                 id="2 hosts both silent: fewer than 3, each its own problem"),
    pytest.param(HOSTS[:3], RULES, {A: SITE, B: SITE, C: SITE},
                 id="3 hosts all silent: a site problem"),
    pytest.param(HOSTS[:2], MassSilenceRules(min_hosts=2), {A: SITE, B: SITE},
                 id="min_hosts 2: 2 of 2 hosts make a site problem"),
    pytest.param(HOSTS, MassSilenceRules(fraction=0.75), {A: OWN, B: OWN, C: OWN},
                 id="fraction 0.75: 3 of 4 is not more than 75 %"),
    pytest.param(HOSTS, MassSilenceRules(window=60), {A: OWN, B: OWN, C: OWN},
                 id="window 1 minute: silences 2 minutes apart are not together"),
    pytest.param(HOSTS, MassSilenceRules(enabled=False), {A: OWN, B: OWN, C: OWN},
                 id="mass silence off: each its own problem"),
])
def test_configured_rules(hosts, rules, expected):
    silent = {h: T0 + 2 * i * MIN for i, h in enumerate(hosts[:3])}
    decision = decide(silent, now=T0 + 30 * MIN, hosts=hosts, rules=rules)
    assert verdicts(decision) == expected


def test_the_decision_does_not_depend_on_the_order_of_the_snapshot():
    hosts = tuple(f"h{i:02d}.acme.example" for i in range(12))
    silent = {h: T0 + (i % 7) * MIN for i, h in enumerate(hosts) if i % 5}
    expected = decide(silent, now=T0 + 8 * MIN, hosts=hosts)
    for seed in range(5):
        shuffled = snapshot(silent, hosts)
        random.Random(seed).shuffle(shuffled)
        again = decide_mass_silence(customer="acme", hosts=shuffled, previous=None,
                                    now=T0 + 8 * MIN, rules=RULES)
        assert again == expected


def test_a_host_twice_in_the_snapshot_is_refused():
    with pytest.raises(ValueError, match="twice"):
        decide_mass_silence(customer="acme", hosts=[HostSilence(A), HostSilence(A)],
                            previous=None, now=T0, rules=RULES)


@pytest.mark.parametrize("state", [
    pytest.param(MassSilenceState(customer="acme"), id="nothing silent"),
    pytest.param(MassSilenceState(customer="acme", own=(A, B)), id="hosts on their own"),
    pytest.param(MassSilenceState(customer="acme", site=SiteSilence(since=T0, members=(A, B, C)),
                                  own=(D,)), id="a site problem"),
])
def test_state_json_round_trip(state):
    assert MassSilenceState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_state_json_refuses_bad_data():
    with pytest.raises(ValueError, match="members"):
        MassSilenceState.from_json({"version": 1, "customer": "acme", "own": [],
                                    "site": {"since": T0.isoformat(), "members": "a"}})
