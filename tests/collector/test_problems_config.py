"""The [problems] settings: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import tomllib

import pytest

from checks.config import ConfigError
from collector.problems.config import FlappingRules, MassSilenceRules, ProblemRules
from collector.problems.keys import ProblemKey
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET


def test_defaults_from_an_empty_table():
    rules = ProblemRules.from_table({})
    assert rules == ProblemRules()
    assert rules.hard_after == 2
    assert dict(rules.hard_after_by_check) == {} == dict(rules.hard_after_by_type)
    assert rules.flapping == FlappingRules(
        enabled=True, window=21, start_threshold=50, stop_threshold=25,
        weight_oldest=0.75, weight_newest=1.25)
    assert rules.mass_silence == MassSilenceRules(
        enabled=True, fraction=0.5, min_hosts=3, window=300)


def test_a_full_section():
    table = tomllib.loads("""
[problems]
hard_after = 3
[problems.hard_after_by_check]
disk = 4
[problems.hard_after_by_type]
ntp = 5
[problems.flapping]
window = 11
start_threshold = 40
stop_threshold = 20.5
weight_oldest = 0.8
weight_newest = 1.2
[problems.mass_silence]
fraction = 0.6
min_hosts = 5
window = "10m"
""")["problems"]
    rules = ProblemRules.from_table(table)
    assert rules.hard_after == 3
    assert rules.hard_after_for(ProblemKey("c", "h", "disk", "/"), check_type="disk") == 4
    assert rules.hard_after_for(ProblemKey("c", "h", "time", "pool"), check_type="ntp") == 5
    assert rules.hard_after_for(ProblemKey("c", "h", "dns", "fwd"), check_type="dns") == 3
    assert rules.flapping == FlappingRules(window=11, start_threshold=40, stop_threshold=20.5,
                                           weight_oldest=0.8, weight_newest=1.2)
    assert rules.mass_silence == MassSilenceRules(fraction=0.6, min_hosts=5, window=600)


def test_hard_after_from_the_environment_as_a_string():
    assert ProblemRules.from_table({"hard_after": "3"}).hard_after == 3


@pytest.mark.parametrize(("table", "key", "message"), [
    pytest.param({"hard_afer": 2}, "problems.hard_afer", "unknown key", id="a typo"),
    pytest.param({"hard_after": 0}, "problems.hard_after", "at least 1", id="hard_after 0"),
    pytest.param({"hard_after": 1.5}, "problems.hard_after", "whole number",
                 id="hard_after not whole"),
    pytest.param({"hard_after": True}, "problems.hard_after", "whole number",
                 id="hard_after a boolean"),
    pytest.param({"hard_after_by_check": {"disk": 0}}, "problems.hard_after_by_check.disk",
                 "at least 1", id="an override of 0"),
    pytest.param({"hard_after_by_check": 3}, "problems.hard_after_by_check", "table",
                 id="overrides not a table"),
    pytest.param({"hard_after_by_check": {"collector": 3}},
                 "problems.hard_after_by_check.collector", "hard at once",
                 id="host silence cannot wait"),
    pytest.param({"hard_after_by_type": {"ntp": "x"}}, "problems.hard_after_by_type.ntp",
                 "whole number", id="a type override not a number"),
    pytest.param({"flapping": {"windw": 21}}, "problems.flapping.windw", "unknown key",
                 id="a typo in flapping"),
    pytest.param({"flapping": {"window": 2}}, "problems.flapping.window", "at least 3",
                 id="a window of 2 results"),
    pytest.param({"flapping": {"stop_threshold": 50}}, "problems.flapping.stop_threshold",
                 "below start_threshold", id="stop threshold not below start"),
    pytest.param({"flapping": {"start_threshold": 120}}, "problems.flapping.start_threshold",
                 "percentage", id="a threshold over 100 %"),
    pytest.param({"flapping": {"weight_oldest": 0}}, "problems.flapping.weight_oldest",
                 "above 0", id="a weight of 0"),
    pytest.param({"flapping": {"enabled": "yes"}}, "problems.flapping.enabled", "true or false",
                 id="enabled not a boolean"),
    pytest.param({"mass_silence": {"fraction": 1}}, "problems.mass_silence.fraction",
                 "below 1", id="a fraction of 1"),
    pytest.param({"mass_silence": {"fraction": 50}}, "problems.mass_silence.fraction",
                 "below 1", id="a percentage given as the fraction"),
    pytest.param({"mass_silence": {"min_hosts": 1}}, "problems.mass_silence.min_hosts",
                 "at least 2", id="a site of one host"),
    pytest.param({"mass_silence": {"window": "5 minutes"}}, "problems.mass_silence.window",
                 "duration", id="a window that is not a duration"),
    pytest.param({"mass_silence": {"window": 0}}, "problems.mass_silence.window",
                 "longer than 0", id="a window of 0"),
    pytest.param({"mass_silence": []}, "problems.mass_silence", "table",
                 id="mass_silence not a table"),
])
def test_bad_values_name_the_key(table, key, message):
    with pytest.raises(ConfigError) as err:
        ProblemRules.from_table(table)
    assert err.value.key == key
    assert message in err.value.message


def test_the_silence_key_is_the_one_the_state_stores():
    key = ProblemKey.host_silence(customer="acme", host="db1")
    assert (key.check, key.target) == (SILENCE_CHECK, SILENCE_TARGET)
    assert key.is_silence
    assert ProblemKey.site_silence(customer="acme") == ProblemKey("acme", "*", "silence", "site")
    assert ProblemKey.site_silence(customer="acme").is_silence
    assert not ProblemKey("acme", "db1", "silence", "site").is_silence
    assert not ProblemKey("acme", "db1", "disk", "/").is_silence
