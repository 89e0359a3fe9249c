"""Table tests of the firewall check's pure half: parsing, normalisation, judgement, diff.

Rulesets are written as the JSON ``nft -j list ruleset`` prints (the shapes were taken
from nftables 1.0.6) or as iptables-save text, so the parsers are exercised too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from checks.commands import CommandOutput
from checks.config import ConfigError, build
from checks.firewall import (
    DRIFT_TARGET,
    INPUT_TARGET,
    PORTS_TARGET,
    Baseline,
    FirewallConfig,
    FirewallFacts,
    RulesetReader,
    RulesetUnreadable,
    diff_lines,
    evaluate,
    load_baseline,
)
from checks.firewall_rules import (
    PortRange,
    merge,
    parse_iptables_save,
    parse_nft_json,
    parse_port_spec,
)
from checks.result import CheckResult, Status

# ---------------------------------------------------------------------------- builders

ACCEPT: dict[str, Any] = {"accept": None}
DROP: dict[str, Any] = {"drop": None}
REJECT: dict[str, Any] = {"reject": None}
COUNTER: dict[str, Any] = {"counter": {"packets": 0, "bytes": 0}}


def match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field_name: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field_name}}


def dport(port: Any, proto: str = "tcp", op: str = "==") -> dict[str, Any]:
    return match(payload(proto, "dport"), port, op)


def saddr(prefix: str, length: int) -> dict[str, Any]:
    return match(payload("ip", "saddr"), {"prefix": {"addr": prefix, "len": length}})


def iif(name: str) -> dict[str, Any]:
    return match({"meta": {"key": "iif"}}, name)


def l4proto(value: Any) -> dict[str, Any]:
    return match({"meta": {"key": "l4proto"}}, value)


def jump(target: str) -> dict[str, Any]:
    return {"jump": {"target": target}}


def nft(
    chains: Sequence[tuple[str, str, str]] = (("inet", "input", "accept"),),
    rules: Sequence[Sequence[dict[str, Any]]] = (),
    *,
    table: str = "filter",
    chain: str = "input",
    extra: Sequence[dict[str, Any]] = (),
    handle_base: int = 1,
    comments: Sequence[str | None] = (),
) -> str:
    """A ruleset: ``chains`` are (family, hook, policy) base chains named after the hook
    (``hook`` "" makes a regular chain named ``policy``); ``rules`` go into ``chain`` of
    the first chain's family."""
    family = chains[0][0] if chains else "inet"
    objects: list[dict[str, Any]] = [{"metainfo": {"version": "1.0.6",
                                                   "json_schema_version": 1}}]
    for fam in dict.fromkeys(c[0] for c in chains):
        objects.append({"table": {"family": fam, "name": table, "handle": handle_base}})
    objects.extend(extra)
    for i, (fam, hook, policy) in enumerate(chains):
        if hook:
            objects.append({"chain": {"family": fam, "table": table, "name": hook,
                                      "handle": handle_base + i, "type": "filter",
                                      "hook": hook, "prio": 0, "policy": policy}})
        else:
            objects.append({"chain": {"family": fam, "table": table, "name": policy,
                                      "handle": handle_base + i}})
    for i, expr in enumerate(rules):
        body: dict[str, Any] = {"family": family, "table": table, "chain": chain,
                                "handle": handle_base + 10 + i, "expr": list(expr)}
        if i < len(comments) and comments[i]:
            body["comment"] = comments[i]
        objects.append({"rule": body})
    return json.dumps({"nftables": objects})


def config(**table: Any) -> FirewallConfig:
    return build(FirewallConfig, table)


def judge(text: str, *, iptables: bool = False, baseline: Baseline | None = None,
          **table: Any) -> dict[str, CheckResult]:
    ruleset = parse_iptables_save(text, "ip") if iptables else parse_nft_json(text)
    facts = FirewallFacts(ruleset, baseline=baseline or Baseline())
    return {r.target: r for r in evaluate(config(**table), facts, 1000.0, check="fw")}


def status_of(text: str, **table: Any) -> Status:
    return judge(text, **table)[INPUT_TARGET].status


# ---------------------------------------------------------------------------- default deny

POLICY_CASES = [
    # (ruleset, extra config, expected, words in the summary)
    (json.dumps({"nftables": [{"metainfo": {}}]}), {}, Status.CRITICAL, "no firewall ruleset"),
    (nft(chains=[("inet", "", "helper")]), {}, Status.CRITICAL,
     "no filter chain on the input hook"),
    (nft(chains=[("inet", "forward", "drop")]), {}, Status.CRITICAL,
     "no filter chain on the input hook"),
    (nft(), {}, Status.CRITICAL, "policy accept and no rule drops or rejects"),
    (nft(rules=[[dport(22), ACCEPT], [iif("lo"), ACCEPT]]), {}, Status.CRITICAL,
     "accepts everything"),
    # just above accept-all: one conditional drop
    (nft(rules=[[saddr("192.0.2.0", 24), DROP]]), {}, Status.WARNING, "no default deny"),
    (nft(rules=[[saddr("192.0.2.0", 24), DROP]]), {"require_default_deny": False},
     Status.OK, "no default deny"),
    (nft(rules=[[dport(23), REJECT]]), {}, Status.WARNING, "1 drop/reject rule"),
    # default deny by a final rule instead of the policy
    (nft(rules=[[dport(22), ACCEPT], [DROP]]), {}, Status.OK, "unconditional drop"),
    (nft(rules=[[dport(22), ACCEPT], [COUNTER, REJECT]]), {}, Status.OK, "unconditional drop"),
    (nft(chains=[("inet", "input", "drop")]), {}, Status.OK, "policy drop"),
    # an unconditional accept ends the chain, whatever the policy
    (nft(chains=[("inet", "input", "drop")], rules=[[ACCEPT]]), {}, Status.CRITICAL,
     "unconditional accept"),
    (nft(chains=[("inet", "input", "drop")], rules=[[COUNTER, ACCEPT]]), {}, Status.CRITICAL,
     "unconditional accept"),
    (nft(chains=[("inet", "input", "drop")], rules=[[dport(22), DROP], [ACCEPT]]), {},
     Status.WARNING, "unconditional accept after 1 drop/reject rule"),
    # a drop after an unconditional accept is never reached
    (nft(rules=[[ACCEPT], [DROP]]), {}, Status.CRITICAL, "unconditional accept"),
    # a conditional accept does not end the chain
    (nft(chains=[("inet", "input", "drop")], rules=[[dport(22), ACCEPT]]), {}, Status.OK,
     "policy drop"),
]


@pytest.mark.parametrize(("text", "table", "expected", "words"), POLICY_CASES)
def test_input_policy(text: str, table: dict[str, Any], expected: Status, words: str) -> None:
    result = judge(text, **table)[INPUT_TARGET]
    assert result.status is expected, result.summary
    assert words in result.summary


def regular_chain_rules(sub_rules: list[list[dict[str, Any]]],
                        input_rules: list[list[dict[str, Any]]], policy: str = "accept") -> str:
    objects = json.loads(nft(chains=[("inet", "input", policy), ("inet", "", "sub")],
                             rules=input_rules))["nftables"]
    for i, expr in enumerate(sub_rules):
        objects.append({"rule": {"family": "inet", "table": "filter", "chain": "sub",
                                 "handle": 90 + i, "expr": expr}})
    return json.dumps({"nftables": objects})


@pytest.mark.parametrize(
    ("sub_rules", "input_rules", "expected"),
    [
        ([[DROP]], [[jump("sub")]], Status.OK),  # unconditional jump to a deny
        ([[DROP]], [[dport(80), jump("sub")]], Status.WARNING),  # conditional: a deny exists
        ([[dport(23), DROP]], [[jump("sub")]], Status.WARNING),
        ([[ACCEPT]], [[jump("sub")]], Status.CRITICAL),
        ([[{"return": None}], [DROP]], [[jump("sub")]], Status.CRITICAL),  # returns early
        ([[jump("input")]], [[jump("sub")]], Status.CRITICAL),  # a loop ends, no deny
    ],
)
def test_jumps_are_followed(sub_rules: list[list[dict[str, Any]]],
                            input_rules: list[list[dict[str, Any]]], expected: Status) -> None:
    assert status_of(regular_chain_rules(sub_rules, input_rules)) is expected


@pytest.mark.parametrize(
    ("chains", "families", "expected"),
    [
        ([("ip", "input", "drop")], ["ipv4"], Status.OK),
        ([("ip", "input", "drop")], ["ipv4", "ipv6"], Status.CRITICAL),  # IPv6 left open
        ([("ip6", "input", "drop")], ["ipv4"], Status.CRITICAL),
        ([("ip", "input", "drop"), ("ip6", "input", "drop")], ["ipv4", "ipv6"], Status.OK),
        ([("inet", "input", "drop")], ["ipv4", "ipv6"], Status.OK),
        # all chains on the hook must accept: one denying is a default deny
        ([("inet", "input", "accept"), ("ip", "input", "drop")], ["ipv4"], Status.OK),
        ([("inet", "input", "accept"), ("ip", "input", "drop")], ["ipv6"], Status.CRITICAL),
    ],
)
def test_families(chains: list[tuple[str, str, str]], families: list[str],
                  expected: Status) -> None:
    result = judge(nft(chains=chains), families=families)[INPUT_TARGET]
    assert result.status is expected, result.summary
    assert set(result.details["families"]) == set(families)


def test_a_nat_chain_on_the_input_hook_is_not_a_filter() -> None:
    text = json.dumps({"nftables": [
        {"table": {"family": "ip", "name": "nat", "handle": 1}},
        {"chain": {"family": "ip", "table": "nat", "name": "input", "type": "nat",
                   "hook": "input", "prio": 100, "policy": "drop"}},
    ]})
    assert status_of(text, families=["ipv4"]) is Status.CRITICAL


def test_iptables_nft_compat_target_counts_as_a_verdict() -> None:
    # iptables-nft's REJECT shows up in nft JSON only as an opaque xt target.
    rules = [[COUNTER, {"xt": {"type": "target", "name": "REJECT"}}]]
    assert status_of(nft(chains=[("ip", "input", "accept")], rules=rules),
                     families=["ipv4"]) is Status.OK
    opaque = [[{"xt": {"type": "match", "name": "multiport"}}, DROP]]
    assert status_of(nft(chains=[("ip", "input", "accept")], rules=opaque),
                     families=["ipv4"]) is Status.WARNING


IPT_HEAD = "# Generated by iptables-save v1.8.9 (nf_tables) on Thu Nov 26 01:58:56 2026\n*filter\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", Status.CRITICAL),  # iptables-save printed nothing: no table
        (":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", Status.CRITICAL),
        (":INPUT DROP [0:0]\nCOMMIT\n", Status.OK),
        (":INPUT ACCEPT [10:600]\n-A INPUT -s 192.0.2.0/24 -j DROP\nCOMMIT\n", Status.WARNING),
        (":INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
         "-A INPUT -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n", Status.OK),
        (":INPUT DROP [0:0]\n-A INPUT -m comment --comment \"allow all\" -j ACCEPT\nCOMMIT\n",
         Status.CRITICAL),
        (":INPUT ACCEPT [0:0]\n:BLOCK - [0:0]\n-A INPUT -j BLOCK\n-A BLOCK -j DROP\nCOMMIT\n",
         Status.OK),
        (":INPUT ACCEPT [0:0]\n:BLOCK - [0:0]\n-A INPUT -p tcp -j BLOCK\n-A BLOCK -j DROP\n"
         "COMMIT\n", Status.WARNING),
    ],
)
def test_iptables_input_policy(body: str, expected: Status) -> None:
    text = IPT_HEAD + body if body else ""
    result = judge(text, iptables=True, families=["ipv4"])[INPUT_TARGET]
    assert result.status is expected, result.summary


def test_ip6tables_judged_apart_from_iptables() -> None:
    v4 = parse_iptables_save(IPT_HEAD + ":INPUT DROP [0:0]\nCOMMIT\n", "ip")
    v6 = parse_iptables_save("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "ip6")
    facts = FirewallFacts(merge([v4, v6], "iptables"), baseline=Baseline())
    result = evaluate(config(), facts, 0.0, check="fw")[0]
    assert result.status is Status.CRITICAL
    assert result.summary.startswith("ipv6: input accepts everything")
    assert result.details["families"]["ipv4"]["status"] == "OK"


# ---------------------------------------------------------------------------- open ports


def ports_of(text: str, **table: Any) -> CheckResult:
    return judge(text, **{"families": ["ipv4"], **table})[PORTS_TARGET]


def dropping(*rules: list[dict[str, Any]]) -> str:
    return nft(chains=[("inet", "input", "drop")], rules=list(rules))


@pytest.mark.parametrize(
    ("rules", "allowed", "expected", "open_labels"),
    [
        ([[dport(22), ACCEPT]], ["22/tcp"], Status.OK, ["22/tcp"]),
        ([[dport(8080), ACCEPT]], ["22/tcp"], Status.WARNING, ["8080/tcp"]),
        ([[dport(8080), ACCEPT]], [], Status.WARNING, ["8080/tcp"]),
        ([[dport(22), ACCEPT]], [], Status.WARNING, ["22/tcp"]),
        ([[dport(53, "udp"), ACCEPT]], ["53/tcp"], Status.WARNING, ["53/udp"]),
        ([[saddr("10.0.0.0", 8), dport(5432), ACCEPT]], [], Status.OK, []),
        ([[iif("lo"), dport(5432), ACCEPT]], [], Status.OK, []),
        ([[iif("eth0"), dport(5432), ACCEPT]], [], Status.WARNING, ["5432/tcp"]),
        ([[dport(8080), DROP]], [], Status.OK, []),
        ([[dport(22, op="!="), ACCEPT]], [], Status.OK, []),
        ([[dport({"set": [80, 443]}), ACCEPT]], ["80/tcp"], Status.WARNING,
         ["80/tcp", "443/tcp"]),
        ([[dport({"set": [80, 443]}), ACCEPT]], ["80/tcp", "443/tcp"], Status.OK,
         ["80/tcp", "443/tcp"]),
        # a range is allowed only when an allowed range covers all of it
        ([[dport({"range": [6000, 6010]}), ACCEPT]], ["6000-6010/tcp"], Status.OK,
         ["6000-6010/tcp"]),
        ([[dport({"range": [6000, 6010]}), ACCEPT]], ["6000-6009/tcp"], Status.WARNING,
         ["6000-6010/tcp"]),
        ([[dport({"range": [6000, 6010]}), ACCEPT]], ["6001-6010/tcp"], Status.WARNING,
         ["6000-6010/tcp"]),
        ([[dport({"range": [6000, 6010]}), ACCEPT]], ["5999-6011/tcp"], Status.OK,
         ["6000-6010/tcp"]),
        ([[dport(6005), ACCEPT]], ["6000-6010/tcp"], Status.OK, ["6005/tcp"]),
        ([[l4proto({"set": ["tcp", "udp"]}), dport(53, "th"), ACCEPT]], ["53/tcp"],
         Status.WARNING, ["53/tcp", "53/udp"]),
        ([[dport(9000, "th"), ACCEPT]], [], Status.WARNING, ["9000/tcp", "9000/udp"]),
    ],
)
def test_open_ports(rules: list[list[dict[str, Any]]], allowed: list[str], expected: Status,
                    open_labels: list[str]) -> None:
    result = ports_of(dropping(*rules), allowed_open_ports=allowed)
    assert result.status is expected, result.summary
    assert [o["port"] for o in result.details["open_to_any"]] == open_labels
    unexpected = [o["port"] for o in result.details["open_to_any"] if not o["allowed"]]
    for label in unexpected:
        assert label in result.summary
    assert result.metrics[0].value == len(unexpected)


def vmap(*entries: tuple[int, str]) -> dict[str, Any]:
    return {"vmap": {"key": payload("tcp", "dport"),
                     "data": {"set": [[port, {verdict: None}] for port, verdict in entries]}}}


@pytest.mark.parametrize(
    ("entries", "policy", "open_labels", "expected"),
    [
        ([(22, "accept"), (23, "drop")], "accept", ["22/tcp"], Status.WARNING),  # a deny
        ([(22, "accept"), (8080, "accept")], "accept", ["22/tcp", "8080/tcp"],
         Status.CRITICAL),  # accepts everything: no deny anywhere
        ([(22, "accept"), (8080, "accept")], "drop", ["22/tcp", "8080/tcp"], Status.OK),
    ],
)
def test_verdict_maps(entries: list[tuple[int, str]], policy: str, open_labels: list[str],
                      expected: Status) -> None:
    results = judge(nft(chains=[("inet", "input", policy)], rules=[[vmap(*entries)]]),
                    families=["ipv4"])
    assert results[INPUT_TARGET].status is expected, results[INPUT_TARGET].summary
    assert [o["port"] for o in results[PORTS_TARGET].details["open_to_any"]] == open_labels
    assert "tcp dport vmap" in parse_nft_json(
        nft(rules=[[vmap(*entries)]])).lines[-1]


def test_named_port_set_is_resolved() -> None:
    port_set = {"set": {"family": "inet", "table": "filter", "name": "web", "type":
                        "inet_service", "handle": 5, "elem": [80, 8443]}}
    text = nft(chains=[("inet", "input", "drop")], rules=[[dport("@web"), ACCEPT]],
               extra=[port_set])
    result = ports_of(text)
    assert result.status is Status.WARNING
    assert result.summary == "80/tcp, 8443/tcp open to any address (not in allowed_open_ports)"


def test_ports_in_a_chain_off_the_input_path_do_not_count() -> None:
    text = nft(chains=[("inet", "input", "drop"), ("inet", "forward", "drop")],
               rules=[[dport(8080), ACCEPT]], chain="forward")
    assert ports_of(text).status is Status.OK


@pytest.mark.parametrize(
    ("rule", "open_labels"),
    [
        ("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", ["22/tcp"]),
        ("-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT", ["8080/tcp"]),
        ("-A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT", ["80/tcp", "443/tcp"]),
        ("-A INPUT -p udp -m udp --dport 6000:6010 -j ACCEPT", ["6000-6010/udp"]),
        ("-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 5432 -j ACCEPT", []),
        ("-A INPUT -s 0.0.0.0/0 -p tcp -m tcp --dport 5432 -j ACCEPT", ["5432/tcp"]),
        ("-A INPUT -i lo -p tcp -m tcp --dport 5432 -j ACCEPT", []),
        ("-A INPUT -p tcp -m tcp ! --dport 22 -j ACCEPT", []),
        ("-A INPUT -p tcp -m tcp --dport 8080 -j DROP", []),
    ],
)
def test_iptables_open_ports(rule: str, open_labels: list[str]) -> None:
    text = IPT_HEAD + f":INPUT DROP [0:0]\n{rule}\nCOMMIT\n"
    result = judge(text, iptables=True, families=["ipv4"])[PORTS_TARGET]
    assert [o["port"] for o in result.details["open_to_any"]] == open_labels


# ---------------------------------------------------------------------------- normalisation


def test_nft_counters_handles_and_element_timeouts_are_not_compared() -> None:
    def ruleset(packets: int, handle: int, expires: int) -> tuple[str, ...]:
        blocked = {"set": {"family": "inet", "table": "filter", "name": "blocked",
                           "type": "ipv4_addr", "handle": handle + 50, "flags": ["timeout"],
                           "elem": [{"elem": {"val": "192.0.2.66", "timeout": 3600,
                                              "expires": expires}}]}}
        allow = {"set": {"family": "inet", "table": "filter", "name": "allow",
                         "type": "ipv4_addr", "handle": handle + 51,
                         "elem": ["198.51.100.1", "192.0.2.1"][::1 if packets else -1]}}
        quota = {"quota": {"family": "inet", "table": "filter", "name": "q", "handle": handle,
                           "bytes": 100, "used": packets * 10, "inv": False}}
        text = nft(chains=[("inet", "input", "drop")],
                   rules=[[dport(22), {"counter": {"packets": packets, "bytes": packets * 60}},
                           ACCEPT]],
                   extra=[blocked, allow, quota], handle_base=handle, comments=["ssh"])
        return parse_nft_json(text).lines

    first, second = ruleset(0, 1, 3599), ruleset(4711, 37, 12)
    assert first == second
    assert 'rule inet filter input: tcp dport 22 counter accept comment "ssh"' in first
    assert any("blocked" in line and "not compared" in line for line in first)
    assert "set inet filter allow type ipv4_addr elements { 192.0.2.1, 198.51.100.1 }" in first


def test_nft_real_changes_are_compared() -> None:
    base = parse_nft_json(nft(rules=[[dport(22), ACCEPT]])).lines
    assert parse_nft_json(nft(rules=[[dport(23), ACCEPT]])).lines != base
    assert parse_nft_json(nft(chains=[("inet", "input", "drop")],
                              rules=[[dport(22), ACCEPT]])).lines != base
    assert parse_nft_json(nft(rules=[[dport(22), ACCEPT]], comments=["x"])).lines != base


def test_iptables_counters_and_dated_comments_are_not_compared() -> None:
    first = ("# Generated by iptables-save v1.8.9 on Thu Nov 26 01:58:56 2026\n*filter\n"
             ":INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n"
             "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
             "# Completed on Thu Nov 26 01:58:56 2026\n")
    second = ("# Generated by iptables-save v1.8.9 on Fri Nov 27 09:00:00 2026\n*filter\n"
              ":INPUT DROP [1234:99000]\n:FORWARD ACCEPT [5:300]\n"
              "[17:1020] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
              "# Completed on Fri Nov 27 09:00:00 2026\n")
    assert parse_iptables_save(first, "ip").lines == parse_iptables_save(second, "ip").lines
    assert parse_iptables_save(first, "ip").lines == (
        "ip *filter", "ip filter :INPUT DROP", "ip filter :FORWARD ACCEPT",
        "ip filter -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
    )


# ---------------------------------------------------------------------------- drift


@pytest.mark.parametrize(
    ("baseline", "current", "added", "removed"),
    [
        (["a", "b", "c"], ["a", "b", "c"], [], []),
        (["a", "b"], ["a", "b", "c"], ["c"], []),
        (["a", "b", "c"], ["a", "c"], [], ["b"]),
        (["a", "b", "c"], ["a", "x", "c"], ["x"], ["b"]),
        (["a", "b", "c"], ["b", "a", "c"], ["b"], ["b"]),  # a move is a removal and an addition
        (["a", "a"], ["a"], [], ["a"]),  # a duplicate rule removed
        ([], ["a"], ["a"], []),
    ],
)
def test_diff(baseline: list[str], current: list[str], added: list[str],
              removed: list[str]) -> None:
    drift = diff_lines(baseline, current)
    assert sorted(drift.added) == sorted(added)
    assert sorted(drift.removed) == sorted(removed)


def test_drift_summary_counts_rules_and_details_show_them() -> None:
    current = nft(chains=[("inet", "input", "drop")],
                  rules=[[dport(22), ACCEPT], [dport(8080), ACCEPT]])
    approved = parse_nft_json(nft(chains=[("inet", "input", "drop")],
                                  rules=[[dport(22), ACCEPT], [dport(443), ACCEPT]])).lines
    result = judge(current, baseline=Baseline(approved, 400.0, "nft"))[DRIFT_TARGET]
    assert result.status is Status.WARNING
    assert result.summary == "ruleset drifted from the baseline: 1 rule added, 1 removed"
    assert result.details["added"] == ["rule inet filter input: tcp dport 8080 accept"]
    assert result.details["removed"] == ["rule inet filter input: tcp dport 443 accept"]
    assert result.details["baseline_age_seconds"] == 600.0


def test_drift_of_a_policy_is_counted_as_other_lines() -> None:
    approved = parse_nft_json(nft(chains=[("inet", "input", "drop")])).lines
    result = judge(nft(chains=[("inet", "input", "accept")], rules=[[DROP]]),
                   baseline=Baseline(approved, 0.0, "nft"))[DRIFT_TARGET]
    assert result.summary == ("ruleset drifted from the baseline: 1 rule added, 0 removed, "
                              "2 other lines changed")


def test_no_drift_is_ok() -> None:
    text = nft(chains=[("inet", "input", "drop")], rules=[[dport(22), ACCEPT]])
    result = judge(text, baseline=Baseline(parse_nft_json(text).lines, 0.0, "nft"))
    assert result[DRIFT_TARGET].status is Status.OK
    assert result[DRIFT_TARGET].summary.startswith("ruleset matches the baseline")


@pytest.mark.parametrize(("setting", "expected"), [("ok", Status.OK),
                                                   ("warning", Status.WARNING)])
def test_missing_baseline(setting: str, expected: Status) -> None:
    result = judge(nft(chains=[("inet", "input", "drop")]),
                   missing_baseline_status=setting)[DRIFT_TARGET]
    assert result.status is expected
    assert "no baseline recorded" in result.summary


def test_unreadable_baseline_is_unknown() -> None:
    result = judge(nft(chains=[("inet", "input", "drop")]),
                   baseline=Baseline(error="bad json"))[DRIFT_TARGET]
    assert result.status is Status.UNKNOWN
    assert "baseline unreadable: bad json" in result.summary


def test_drift_can_be_turned_off() -> None:
    results = judge(nft(chains=[("inet", "input", "drop")]), check_drift=False)
    assert set(results) == {INPUT_TARGET, PORTS_TARGET}


def test_an_unreadable_ruleset_is_unknown_for_every_target() -> None:
    facts = FirewallFacts(None, "nft failed: Operation not permitted")
    results = evaluate(config(), facts, 0.0, check="fw")
    assert [r.target for r in results] == [INPUT_TARGET, PORTS_TARGET, DRIFT_TARGET]
    assert all(r.status is Status.UNKNOWN for r in results)
    assert "Operation not permitted" in results[0].summary


def test_managers_are_named_when_nothing_is_loaded() -> None:
    facts = FirewallFacts(parse_nft_json(""), managers={"ufw": "inactive"})
    result = evaluate(config(), facts, 0.0, check="fw")[0]
    assert result.status is Status.CRITICAL
    assert result.summary == "no firewall ruleset loaded (nft) (ufw inactive)"


# ---------------------------------------------------------------------------- baseline file


def test_load_baseline(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    assert load_baseline(path) == Baseline()
    path.write_text("{not json")
    assert "not a valid baseline" in load_baseline(path).error
    path.write_text(json.dumps({"version": 2, "lines": []}))
    assert "version 1" in load_baseline(path).error
    path.write_text(json.dumps({"version": 1, "lines": ["a", 3]}))
    assert load_baseline(path).lines is None
    path.write_text(json.dumps({"version": 1, "lines": ["a"], "recorded_at": 5,
                                "backend": "nft"}))
    assert load_baseline(path) == Baseline(("a",), 5.0, "nft")


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"allowed_open_ports": ["22"]}, "allowed_open_ports[0]"),
        ({"allowed_open_ports": ["22/tcp", "0/tcp"]}, "allowed_open_ports[1]"),
        ({"allowed_open_ports": ["65536/tcp"]}, "allowed_open_ports[0]"),
        ({"allowed_open_ports": ["20-10/tcp"]}, "allowed_open_ports[0]"),
        ({"allowed_open_ports": ["22/icmp"]}, "allowed_open_ports[0]"),
        ({"families": []}, "families"),
        ({"families": ["ipv5"]}, "families[0]"),
        ({"netns": "a b"}, "netns"),
        ({"nft": " "}, "nft"),
        ({"command_timeout": 0}, "command_timeout"),
        ({"backend": "pf"}, "backend"),
        ({"missing_baseline_status": "critical"}, "missing_baseline_status"),
        ({"alowed_open_ports": []}, "alowed_open_ports"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**table)
    assert caught.value.key == key


def test_port_spec_boundaries() -> None:
    assert parse_port_spec("1/tcp") == PortRange(1, 1, "tcp")
    assert parse_port_spec("65535/udp") == PortRange(65535, 65535, "udp")
    assert parse_port_spec("10-10/sctp").label == "10/sctp"
    assert config().allowed_ports == (PortRange(22, 22, "tcp"),)


# ---------------------------------------------------------------------------- reader


class FakeRunner:
    """Answers by program basename; records every argv."""

    def __init__(self, answers: dict[str, CommandOutput]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandOutput:
        self.calls.append(list(argv))
        for part in argv:
            name = part.rsplit("/", 1)[-1]
            if name in self.answers:
                return self.answers[name]
        return CommandOutput(1, "", "unexpected command")


EMPTY_NFT = CommandOutput(0, json.dumps({"nftables": [{"metainfo": {}}]}), "")
LEGACY = CommandOutput(0, IPT_HEAD + ":INPUT DROP [0:0]\nCOMMIT\n", "")
LEGACY6 = CommandOutput(0, "*filter\n:INPUT DROP [0:0]\nCOMMIT\n", "")


def test_auto_reads_iptables_when_nftables_is_empty() -> None:
    run = FakeRunner({"nft": EMPTY_NFT, "iptables-save": LEGACY, "ip6tables-save": LEGACY6})
    ruleset = RulesetReader(config(), run, 1.0).read()
    assert ruleset.backend == "iptables" and ruleset.tables == 2


def test_auto_keeps_an_empty_nft_ruleset_when_iptables_is_empty_too() -> None:
    empty = CommandOutput(0, "", "")
    run = FakeRunner({"nft": EMPTY_NFT, "iptables-save": empty, "ip6tables-save": empty})
    ruleset = RulesetReader(config(), run, 1.0).read()
    assert ruleset.backend == "nft" and ruleset.empty


def test_netns_prefixes_every_command() -> None:
    run = FakeRunner({"nft": CommandOutput(0, nft(chains=[("inet", "input", "drop")]), "")})
    RulesetReader(config(netns="mgmt"), run, 1.0).read()
    assert run.calls[0][1:4] == ["netns", "exec", "mgmt"]
    assert run.calls[0][-3:] == ["-j", "list", "ruleset"]


def test_nothing_readable_says_why() -> None:
    denied = CommandOutput(1, "", "Operation not permitted (you must be root)")
    run = FakeRunner({"nft": denied, "iptables-save": denied, "ip6tables-save": denied})
    with pytest.raises(RulesetUnreadable, match="nft failed: Operation not permitted"):
        RulesetReader(config(), run, 1.0).read()
    with pytest.raises(RulesetUnreadable, match="not installed"):
        RulesetReader(config(backend="nft", nft="/nonexistent/nft"), run, 1.0).read()


def test_a_hung_command_is_reported() -> None:
    run = FakeRunner({"nft": CommandOutput(None, "", "no answer within 1s")})
    with pytest.raises(RulesetUnreadable, match="no answer within 1s"):
        RulesetReader(config(backend="nft"), run, 1.0).read()


def test_unparsable_nft_output() -> None:
    run = FakeRunner({"nft": CommandOutput(0, "table inet filter {", "")})
    with pytest.raises(RulesetUnreadable, match="not understood"):
        RulesetReader(config(backend="nft"), run, 1.0).read()
