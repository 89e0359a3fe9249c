"""The priority policy: the support policy's default table, operator rules, config errors."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from checks.config import ConfigError
from checks.disk import DiskConfig, Filesystem, FilesystemFacts, Usage, evaluate_filesystem
from checks.dns import DnsConfig, Failure, NameFacts, Outcome, evaluate_name
from checks.result import Status
from collector.tickets.policy import (
    DEFAULT_TABLE,
    Decision,
    PriorityPolicy,
    Problem,
    priority_for,
)
from collector.tickets.priority import Priority

P1, P2, P3, P4 = Priority.P1, Priority.P2, Priority.P3, Priority.P4
CRIT, WARN, UNKNOWN, OK = Status.CRITICAL, Status.WARNING, Status.UNKNOWN, Status.OK


def decide(check_type: str, status: Status, target: str = "", details: dict[str, Any] | None
           = None, *, policy: PriorityPolicy | None = None, customer: str = "acme",
           host_tags: tuple[str, ...] = (), host_critical: bool = False) -> Decision | None:
    return priority_for(policy=policy or PriorityPolicy(), check_type=check_type,
                        status=status, target=target, customer=customer,
                        host_tags=host_tags, host_critical=host_critical,
                        details=details or {})


# One case per line and status column of the policy's "Default priority for problems
# found by monitoring", as the checks report that problem.
DEFAULT_CASES = [
    pytest.param("disk", CRIT, "/var", {"condition": "full"}, P1, Problem.FILESYSTEM_FULL,
                 id="filesystem full (no space or inodes left), CRITICAL: P1"),
    pytest.param("disk", CRIT, "/var", {"condition": "space"}, P2, Problem.DISK_THRESHOLD,
                 id="disk space over the critical threshold: P2"),
    pytest.param("disk", CRIT, "/var", {"condition": "inodes"}, P2, Problem.DISK_THRESHOLD,
                 id="inodes over the critical threshold: P2"),
    pytest.param("disk", WARN, "/var", {"condition": "space"}, P3, Problem.DISK_THRESHOLD,
                 id="disk space over the warning threshold: P3"),
    pytest.param("disk", WARN, "/var", {"condition": "time_to_full"}, P3,
                 Problem.DISK_THRESHOLD, id="disk full within the warning horizon: P3"),
    pytest.param("logrotate", CRIT, "/var/log/app.log", {"condition": "not_rotated"}, P3,
                 Problem.LOG_ROTATION, id="log rotation not happening, CRITICAL: P3"),
    pytest.param("logrotate", WARN, "/var/log/app.log", {"condition": "uncompressed"}, P4,
                 Problem.LOG_ROTATION, id="rotated logs not compressed, WARNING: P4"),
    pytest.param("backup", CRIT, "billing-db", {"condition": "missing"}, P3, Problem.BACKUP,
                 id="backup missing, CRITICAL: P3"),
    pytest.param("backup", CRIT, "billing-db", {"condition": "empty"}, P3, Problem.BACKUP,
                 id="backup empty, CRITICAL: P3"),
    pytest.param("backup", WARN, "billing-db", {"condition": "stale"}, P4, Problem.BACKUP,
                 id="backup stale, WARNING: P4"),
    pytest.param("backup", WARN, "billing-db", {"condition": "shrunk"}, P4, Problem.BACKUP,
                 id="backup shrunk, WARNING: P4"),
    pytest.param("mysql_replication", CRIT, "default", {"state": "sql_error"}, P2,
                 Problem.REPLICATION_STOPPED, id="replication SQL thread failing: P2"),
    pytest.param("mysql_replication", CRIT, "default", {"state": "stopped"}, P2,
                 Problem.REPLICATION_STOPPED, id="replication stopped: P2"),
    pytest.param("mysql_replication", CRIT, "server", {}, P2, Problem.REPLICATION_STOPPED,
                 id="replica database not reachable: P2"),
    pytest.param("mysql_replication", CRIT, "cdr", {"state": "lagging"}, P2,
                 Problem.REPLICATION_LAG, id="replication lag over the critical threshold: P2"),
    pytest.param("mysql_replication", WARN, "cdr", {"state": "lagging"}, P3,
                 Problem.REPLICATION_LAG, id="replication lag over the warning threshold: P3"),
    pytest.param("ntp", CRIT, "offset", {}, P2, Problem.CLOCK,
                 id="clock offset over the critical threshold: P2"),
    pytest.param("ntp", WARN, "offset", {}, P3, Problem.CLOCK,
                 id="clock offset over the warning threshold: P3"),
    pytest.param("ntp", CRIT, "local", {}, P2, Problem.CLOCK,
                 id="no synchronised time source, CRITICAL: P2"),
    pytest.param("ntp", WARN, "local", {}, P3, Problem.CLOCK,
                 id="no synchronised time source, WARNING: P3"),
    pytest.param("dns", CRIT, "www.example.com@192.0.2.53", {"condition": "nxdomain"}, P2,
                 Problem.DNS_FORWARD, id="forward resolution failing, CRITICAL: P2"),
    pytest.param("dns", CRIT, "www.example.com@192.0.2.53", {"condition": "timeout"}, P2,
                 Problem.DNS_FORWARD, id="resolver not answering, CRITICAL: P2"),
    pytest.param("dns", WARN, "www.example.com@192.0.2.53", {"condition": "mismatch"}, P3,
                 Problem.DNS_FORWARD, id="forward resolution failing, WARNING: P3"),
    pytest.param("dns", CRIT, "www.example.com@192.0.2.53", {"condition": "ptr_missing"}, P3,
                 Problem.DNS_REVERSE, id="reverse resolution missing, CRITICAL: P3"),
    pytest.param("dns", WARN, "www.example.com@192.0.2.53", {"condition": "ptr_mismatch"}, P4,
                 Problem.DNS_REVERSE, id="reverse resolution not matching, WARNING: P4"),
    pytest.param("dns", WARN, "www.example.com@192.0.2.53", {"condition": "ptr_unconfirmed"},
                 P4, Problem.DNS_REVERSE, id="reverse name not confirmed forward, WARNING: P4"),
    pytest.param("firewall", CRIT, "input", {}, P1, Problem.FIREWALL_NOT_DENYING,
                 id="firewall not loaded or not default-deny, CRITICAL: P1"),
    pytest.param("firewall", CRIT, "baseline", {}, P2, Problem.FIREWALL_DRIFT,
                 id="firewall ruleset differs from its baseline, CRITICAL: P2"),
    pytest.param("firewall", WARN, "baseline", {}, P3, Problem.FIREWALL_DRIFT,
                 id="firewall ruleset differs from its baseline, WARNING: P3"),
    pytest.param("intrusion", CRIT, "/var/log/auth.log", {}, P2, Problem.INTRUSION,
                 id="burst of failed logins, CRITICAL: P2"),
    pytest.param("intrusion", WARN, "journal", {}, P3, Problem.INTRUSION,
                 id="burst of failed logins read from the journal, WARNING: P3"),
    pytest.param("intrusion", CRIT, "listeners", {}, P2, Problem.INTRUSION,
                 id="unexpected listening port, CRITICAL: P2"),
    pytest.param("intrusion", WARN, "listeners", {}, P3, Problem.INTRUSION,
                 id="unexpected listening port, WARNING: P3"),
    pytest.param("intrusion", CRIT, "logins", {}, P2, Problem.INTRUSION,
                 id="login after a burst of failures, CRITICAL: P2"),
    pytest.param("firewall", WARN, "open_ports", {}, P3, Problem.INTRUSION,
                 id="port open to any address, WARNING: P3 like an unexpected listener"),
    pytest.param("os_updates", CRIT, "security", {}, P4, Problem.SECURITY_UPDATES,
                 id="pending security updates, CRITICAL: P4"),
    pytest.param("os_updates", WARN, "security", {}, P4, Problem.SECURITY_UPDATES,
                 id="pending security updates, WARNING: P4"),
    pytest.param("os_updates", WARN, "reboot", {}, P4, Problem.REBOOT_REQUIRED,
                 id="reboot required, WARNING: P4"),
    pytest.param("os_updates", CRIT, "metadata", {}, P4, Problem.PACKAGE_METADATA,
                 id="package lists not refreshed, CRITICAL: P4"),
    pytest.param("silence", CRIT, "silence", {}, P2, Problem.HOST_SILENT,
                 id="agent not reporting (host silent): P2"),
    pytest.param("agent_version", WARN, "", {}, P4, Problem.AGENT_VERSION,
                 id="agent version no longer supported, WARNING: P4"),
]


@pytest.mark.parametrize(("check_type", "status", "target", "details", "priority", "problem"),
                         DEFAULT_CASES)
def test_default_table(check_type, status, target, details, priority, problem):
    decision = decide(check_type, status, target, details)
    assert decision is not None
    assert (decision.priority, decision.problem) == (priority, problem)
    assert decision.rule.startswith("default: ")


def test_every_row_of_the_default_table_is_tested():
    tested = {case.values[5] for case in DEFAULT_CASES}
    assert tested == {row.problem for row in DEFAULT_TABLE}


def test_host_silence_of_a_critical_host_is_p1():
    decision = decide("silence", CRIT, "silence", host_critical=True)
    assert decision == Decision(P1, "default: agent not reporting (host silent), host marked "
                                "critical", Problem.HOST_SILENT)


def test_only_host_silence_is_raised_for_critical_hosts():
    decision = decide("backup", CRIT, "billing-db", {"condition": "missing"}, host_critical=True)
    assert decision is not None and decision.priority is P3


def _disk(free_blocks: int, free_inodes: int) -> Any:
    fs = Filesystem("8:1", "/var", "ext4", "/dev/sda1")
    usage = Usage(block_size=4096, blocks=1000, blocks_free=free_blocks,
                  blocks_available=free_blocks, files=100, files_free=free_inodes)
    return evaluate_filesystem(FilesystemFacts(fs, usage), DiskConfig(), check="disk")


@pytest.mark.parametrize(("free_blocks", "free_inodes", "priority"), [
    pytest.param(0, 50, P1, id="a disk with no space left, as the disk check reports it: P1"),
    pytest.param(500, 0, P1, id="a disk with no inodes left, as the disk check reports it: P1"),
    pytest.param(40, 50, P2, id="a disk 96 % used but not full, as the check reports it: P2"),
    pytest.param(100, 50, P3, id="a disk 90 % used, as the disk check reports it: P3"),
])
def test_disk_results_from_the_disk_check(free_blocks, free_inodes, priority):
    result = _disk(free_blocks, free_inodes)
    decision = decide("disk", result.status, result.target, dict(result.details))
    assert decision is not None and decision.priority is priority


DNS_TARGET = "web1.example.net@192.0.2.53"


@pytest.mark.parametrize(("status", "details", "priority", "problem"), [
    pytest.param(WARN, {"condition": "servfail", "question": "reverse"}, P4,
                 Problem.DNS_REVERSE, id="reverse question SERVFAIL, WARNING: P4"),
    pytest.param(CRIT, {"condition": "servfail", "question": "reverse"}, P3,
                 Problem.DNS_REVERSE, id="reverse question SERVFAIL, CRITICAL: P3"),
    pytest.param(WARN, {"condition": "refused", "question": "reverse"}, P4,
                 Problem.DNS_REVERSE, id="reverse question REFUSED, WARNING: P4"),
    pytest.param(WARN, {"condition": "bad_answer", "question": "reverse"}, P4,
                 Problem.DNS_REVERSE, id="malformed answer to a PTR question, WARNING: P4"),
    pytest.param(WARN, {"condition": "timeout", "question": "reverse"}, P4,
                 Problem.DNS_REVERSE, id="PTR question unanswered, forward fine, WARNING: P4"),
    pytest.param(WARN, {"condition": "servfail", "question": "forward"}, P3,
                 Problem.DNS_FORWARD, id="forward question SERVFAIL, WARNING: P3"),
    pytest.param(CRIT, {"condition": "servfail", "question": "forward"}, P2,
                 Problem.DNS_FORWARD, id="forward question SERVFAIL, CRITICAL: P2"),
    pytest.param(CRIT, {"condition": "connection_refused", "question": "forward"}, P2,
                 Problem.DNS_FORWARD, id="resolver not answering at all, CRITICAL: P2"),
    pytest.param(WARN, {"condition": "servfail"}, P3, Problem.DNS_FORWARD,
                 id="no question (an older agent): SERVFAIL counted as forward, P3"),
    pytest.param(WARN, {"condition": "ptr_missing"}, P4, Problem.DNS_REVERSE,
                 id="no question (an older agent): a PTR condition is reverse, P4"),
    pytest.param(WARN, {"condition": "ptr_missing", "question": "sideways"}, P4,
                 Problem.DNS_REVERSE, id="a question of no known kind: judged by condition"),
])
def test_dns_question_decides_forward_or_reverse(status, details, priority, problem):
    decision = decide("dns", status, DNS_TARGET, details)
    assert decision is not None
    assert (decision.priority, decision.problem) == (priority, problem)


def _dns(forward_rcode: str, ptr_rcode: str, **config: Any) -> Any:
    name, address = "web1.example.net", "192.0.2.10"
    values = (address,) if forward_rcode == "NOERROR" else ()
    facts = NameFacts(
        "192.0.2.53", name, (address,), True,
        (Outcome(name, "A", forward_rcode, values, elapsed=0.002),),
        ((address, Outcome("10.2.0.192.in-addr.arpa", "PTR", ptr_rcode,
                           (name,) if ptr_rcode == "NOERROR" else (), elapsed=0.002)),),
    )
    return evaluate_name(facts, DnsConfig(record_types=("A",), **config), check="dns")


@pytest.mark.parametrize(("forward_rcode", "ptr_rcode", "config", "priority"), [
    pytest.param("NOERROR", "SERVFAIL", {}, P4,
                 id="the dns check's reverse SERVFAIL (WARNING by default): P4"),
    pytest.param("NOERROR", "SERVFAIL", {"reverse_failure": "critical"}, P3,
                 id="the dns check's reverse SERVFAIL set to CRITICAL: P3"),
    pytest.param("NOERROR", "REFUSED", {}, P4, id="the dns check's reverse REFUSED: P4"),
    pytest.param("SERVFAIL", "NOERROR", {}, P2,
                 id="the dns check's forward SERVFAIL (CRITICAL by default): P2"),
    pytest.param("SERVFAIL", "NOERROR", {"forward_failure": "warning"}, P3,
                 id="the dns check's forward SERVFAIL set to WARNING: P3"),
    pytest.param("SERVFAIL", "SERVFAIL", {"forward_failure": "warning"}, P3,
                 id="forward and reverse SERVFAIL, both WARNING: forward decides, P3"),
])
def test_dns_results_from_the_dns_check(forward_rcode, ptr_rcode, config, priority):
    result = _dns(forward_rcode, ptr_rcode, **config)
    decision = decide("dns", result.status, result.target, dict(result.details))
    assert decision is not None and decision.priority is priority, result.details


def test_dns_dead_resolver_from_the_dns_check_is_forward():
    name = "web1.example.net"
    refused = Failure.CONNECTION_REFUSED
    facts = NameFacts("192.0.2.53", name, ("192.0.2.10",), True,
                      (Outcome(name, "A", failure=refused),),
                      (("192.0.2.10", Outcome("10.2.0.192.in-addr.arpa", "PTR",
                                              failure=refused)),))
    # Forward only a warning here, reverse critical: the dead resolver is still forward.
    config = DnsConfig(record_types=("A",), forward_failure="warning",
                       reverse_failure="critical")
    result = evaluate_name(facts, config, check="dns")
    decision = decide("dns", result.status, result.target, dict(result.details))
    assert decision is not None
    assert (result.status, decision.priority, decision.problem) == (
        WARN, P3, Problem.DNS_FORWARD)


# Blank cells, results no row covers, UNKNOWN, OK.
@pytest.mark.parametrize(("check_type", "status", "target", "details", "priority", "rule"), [
    pytest.param("firewall", WARN, "input", {}, P4, "priority.fallback_warning",
                 id="firewall without default deny but dropping some, WARNING: blank cell, P4"),
    pytest.param("mysql_replication", WARN, "default", {"state": "recovered"}, P4,
                 "priority.fallback_warning",
                 id="replication restarted by the check, WARNING: blank cell, P4"),
    pytest.param("ntp", WARN, "ntp1.example.com:123", {}, P4, "priority.fallback_warning",
                 id="one NTP server not answering, WARNING: no row, P4"),
    pytest.param("agent", WARN, "", {}, P4, "priority.fallback_warning",
                 id="agent spool ageing, WARNING: no row, P4"),
    pytest.param("custom_plugin", CRIT, "x", {}, P3, "priority.fallback_critical",
                 id="a check type the table does not know, CRITICAL: P3"),
    pytest.param("agent_version", CRIT, "", {}, P3, "priority.fallback_critical",
                 id="agent version, CRITICAL: blank cell, P3"),
    pytest.param("mysql_replication", UNKNOWN, "server", {}, P4, "priority.unknown",
                 id="replication check that cannot log in, UNKNOWN: P4"),
    pytest.param("disk", UNKNOWN, "/mnt/nfs", {}, P4, "priority.unknown",
                 id="disk that cannot be read (hung NFS), UNKNOWN: P4"),
])
def test_fallbacks(check_type, status, target, details, priority, rule):
    decision = decide(check_type, status, target, details)
    assert decision is not None
    assert decision.priority is priority
    assert decision.rule.startswith(rule)


def test_fallbacks_and_unknown_are_configurable():
    policy = PriorityPolicy.from_table({"fallback_critical": "P2", "fallback_warning": "S3",
                                        "unknown": 40})
    assert decide("custom", CRIT, policy=policy).priority is P2  # type: ignore[union-attr]
    assert decide("custom", WARN, policy=policy).priority is P3  # type: ignore[union-attr]
    assert decide("disk", UNKNOWN, "/", policy=policy).priority is P3  # type: ignore[union-attr]


def test_ok_opens_no_ticket():
    assert decide("disk", OK, "/var", {"condition": "ok"}) is None


def test_status_given_as_a_stored_integer():
    decision = decide("firewall", 2, "input")  # type: ignore[arg-type]
    assert decision is not None and decision.priority is P1


# ---------------------------------------------------------------------------- rules

RULES = """
[[priority.rules]]
name = "acme billing database disks"
customer = "acme"
host_tags = ["db", "billing"]
check_type = "disk"
target = ["/var/lib/mysql*", "/srv/db"]
priority = "P1"

[[priority.rules]]
check_type = "backup"
status = "warning"
priority = "S3"

[[priority.rules]]
problem = "dns_reverse"
priority = 20

[[priority.rules]]
check_type = ["ntp", "dns"]
status = ["critical", "unknown"]
host_critical = true
priority = "P1"
"""


def result(**kwargs: Any) -> dict[str, Any]:
    """The arguments of one result for ``priority_for``."""
    return kwargs


def rules_policy() -> PriorityPolicy:
    return PriorityPolicy.from_table(tomllib.loads(RULES)["priority"])


@pytest.mark.parametrize(("kwargs", "priority", "rule"), [
    pytest.param(result(check_type="disk", status=WARN, target="/var/lib/mysql",
                      customer="acme", host_tags=("db", "billing", "eu")),
                 P1, "priority.rules[0] (acme billing database disks)",
                 id="acme billing db disk over warning is P1 by the first rule, not P3"),
    pytest.param(result(check_type="disk", status=WARN, target="/var/lib/mysql",
                      customer="acme", host_tags=("db",)),
                 P3, "default: ", id="a host lacking one of the rule's tags keeps the default"),
    pytest.param(result(check_type="disk", status=WARN, target="/var/lib/mysql",
                      customer="globex", host_tags=("db", "billing")),
                 P3, "default: ", id="another customer keeps the default"),
    pytest.param(result(check_type="disk", status=WARN, target="/home",
                      customer="acme", host_tags=("db", "billing")),
                 P3, "default: ", id="a target outside the rule's globs keeps the default"),
    pytest.param(result(check_type="disk", status=WARN, target="/srv/db",
                      customer="acme", host_tags=("db", "billing")),
                 P1, "priority.rules[0]", id="the rule's second glob matches too"),
    pytest.param(result(check_type="backup", status=WARN, target="nightly"),
                 P3, "priority.rules[1]", id="a stale backup raised to P3 by an S3 rule"),
    pytest.param(result(check_type="backup", status=CRIT, target="nightly"),
                 P3, "default: ", id="a CRITICAL backup does not match a warning rule"),
    pytest.param(result(check_type="dns", status=CRIT, target="a@b",
                      details={"condition": "ptr_missing"}),
                 P4, "priority.rules[2]", id="a rule on the problem: missing PTR lowered to P4"),
    pytest.param(result(check_type="ntp", status=UNKNOWN, target="offset", host_critical=True),
                 P1, "priority.rules[3]", id="a critical host's NTP UNKNOWN is P1 by rule"),
    pytest.param(result(check_type="ntp", status=UNKNOWN, target="offset"),
                 P4, "priority.unknown", id="the same on an ordinary host is the UNKNOWN P4"),
    pytest.param(result(check_type="ntp", status=WARN, target="offset", host_critical=True),
                 P3, "default: ", id="a rule for critical and unknown leaves a WARNING alone"),
])
def test_rules_override_the_default_table_first_match_wins(kwargs, priority, rule):
    args: dict[str, Any] = {"target": "", "customer": "acme", "host_tags": (),
                            "host_critical": False, "details": {}}
    args.update(kwargs)
    decision = priority_for(policy=rules_policy(), **args)
    assert decision is not None
    assert decision.priority is priority
    assert decision.rule.startswith(rule)


def test_first_matching_rule_wins_over_a_later_one():
    policy = PriorityPolicy.from_table({"rules": [
        {"check_type": "disk", "priority": "P2"},
        {"check_type": "disk", "customer": "acme", "priority": "P1"},
    ]})
    decision = decide("disk", WARN, "/", policy=policy)
    assert decision is not None
    assert (decision.priority, decision.rule) == (P2, "priority.rules[0]")


def test_a_rule_without_status_matches_unknown_too():
    policy = PriorityPolicy.from_table({"rules": [{"customer": "acme", "priority": "P2"}]})
    decision = decide("disk", UNKNOWN, "/", policy=policy)
    assert decision is not None and decision.priority is P2


def test_no_rules_by_default():
    assert PriorityPolicy.from_table({}) == PriorityPolicy()
    assert PriorityPolicy().rules == ()


# ---------------------------------------------------------------------------- config errors

@pytest.mark.parametrize(("table", "key", "message"), [
    pytest.param({"rule": []}, "priority.rule", "unknown key",
                 id="a misspelt key is named"),
    pytest.param({"fallback_critical": "P9"}, "priority.fallback_critical", "not a priority",
                 id="a fallback that is no priority"),
    pytest.param({"unknown": "none"}, "priority.unknown", "not a priority",
                 id="unknown must be a priority"),
    pytest.param({"rules": {"priority": "P1"}}, "priority.rules", "array of tables",
                 id="rules as one table instead of an array"),
    pytest.param({"rules": [{"priority": "P1"}, {"check_type": "disk"}]},
                 "priority.rules[1].priority", "required",
                 id="the second rule without a priority"),
    pytest.param({"rules": [{"priority": "P1"}, {"priority": "P2"},
                            {"status": "warn", "priority": "P2"}]},
                 "priority.rules[2].status", "not a problem status",
                 id="the third rule's status misspelt"),
    pytest.param({"rules": [{"status": "ok", "priority": "P2"}]},
                 "priority.rules[0].status", "not a problem status",
                 id="OK is no problem status"),
    pytest.param({"rules": [{"priority": "urgent"}]}, "priority.rules[0].priority",
                 "not a priority", id="a rule's priority that is no priority"),
    pytest.param({"rules": [{"priority": "P1", "host_tag": "db"}]},
                 "priority.rules[0].host_tag", "unknown key",
                 id="a rule's misspelt key is named with its index"),
    pytest.param({"rules": [{"priority": "P1", "host_tags": "db,web"}]},
                 "priority.rules[0].host_tags", None,
                 id="host tags given as one string are accepted as one tag"),
    pytest.param({"rules": [{"priority": "P1", "host_tags": [1]}]},
                 "priority.rules[0].host_tags", "string",
                 id="host tags that are not strings"),
    pytest.param({"rules": [{"priority": "P1", "check_type": []}]},
                 "priority.rules[0].check_type", "at least one",
                 id="an empty check type list would match nothing"),
    pytest.param({"rules": [{"priority": "P1", "problem": "disk_full"}]},
                 "priority.rules[0].problem", "not a problem",
                 id="an unknown problem name"),
    pytest.param({"rules": [{"priority": "P1", "host_critical": "yes"}]},
                 "priority.rules[0].host_critical", "true or false",
                 id="host_critical that is not a boolean"),
    pytest.param({"rules": [{"priority": "P1", "name": 3}]},
                 "priority.rules[0].name", "string", id="a name that is not a string"),
    pytest.param({"rules": ["P1"]}, "priority.rules[0]", "table",
                 id="a rule that is not a table"),
])
def test_config_errors_name_the_key(table, key, message):
    if message is None:
        PriorityPolicy.from_table(table)
        return
    with pytest.raises(ConfigError) as err:
        PriorityPolicy.from_table(table)
    assert err.value.key == key
    assert message in err.value.message
