"""The ``firewall`` check: a ruleset is loaded, the input path denies by default, nothing drifted.

Collect, then judge. ``FirewallCheck.run`` reads the live ruleset (``nft -j list ruleset``,
or ``iptables-save`` and ``ip6tables-save`` where nftables holds nothing), the state of
firewalld and ufw where they are installed, and the approved baseline from the check's
state directory. The parsers turn the ruleset into plain ``Chain``/``Rule`` values and
normalised lines (no counters, handles or element timeouts; checks/firewall_rules.py);
``evaluate`` judges them
without any I/O: one result for the input path, one for ports open to any address, one
for drift from the baseline. ``record_baseline`` (and ``python -m checks.firewall
record-baseline``) writes the baseline. Keys and reasoning: docs/checks/firewall.md.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks.commands import CommandOutput, CommandRunner, find_program, first_line, run_command
from checks.config import ConfigError, Seconds
from checks.firewall_rules import (
    Chain,
    PortRange,
    Rule,
    Ruleset,
    merge,
    parse_iptables_save,
    parse_nft_json,
    parse_port_spec,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown
from checks.statefile import write_json

INPUT_TARGET = "input"
PORTS_TARGET = "open_ports"
DRIFT_TARGET = "baseline"
TARGETS = (INPUT_TARGET, PORTS_TARGET, DRIFT_TARGET)
FAMILIES = ("ipv4", "ipv6")
BASELINE_VERSION = 1
DIFF_LINES_SHOWN = 50

# ---------------------------------------------------------------------------- config


@dataclass(frozen=True)
class FirewallConfig:
    """``[checks.<name>]`` of type ``firewall``; keys and defaults in docs/checks/firewall.md."""

    backend: Literal["auto", "nft", "iptables"] = "auto"
    netns: str = ""
    families: tuple[str, ...] = FAMILIES
    require_default_deny: bool = True
    allowed_open_ports: tuple[str, ...] = ("22/tcp",)
    check_drift: bool = True
    missing_baseline_status: Literal["ok", "warning"] = "ok"
    nft: str = "nft"
    iptables_save: str = "iptables-save"
    ip6tables_save: str = "ip6tables-save"
    command_timeout: Seconds = Seconds(5)

    def __post_init__(self) -> None:
        if self.netns and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.netns):
            raise ConfigError("netns", f"{self.netns!r}: use letters, digits, _ . - only")
        if not self.families:
            raise ConfigError("families", "must name at least one of ipv4, ipv6")
        for i, family in enumerate(self.families):
            if family not in FAMILIES:
                raise ConfigError(f"families[{i}]", f"{family!r}: must be ipv4 or ipv6")
        for i, spec in enumerate(self.allowed_open_ports):
            parse_port_spec(spec, f"allowed_open_ports[{i}]")
        for key in ("nft", "iptables_save", "ip6tables_save"):
            if not str(getattr(self, key)).strip():
                raise ConfigError(key, "must name a program")
        if self.command_timeout <= 0:
            raise ConfigError("command_timeout", "must be more than 0 seconds")

    @property
    def allowed_ports(self) -> tuple[PortRange, ...]:
        """``allowed_open_ports`` parsed."""
        return tuple(parse_port_spec(s) for s in self.allowed_open_ports)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The approved normalised lines, or why they cannot be used."""

    lines: tuple[str, ...] | None = None
    """None: no baseline recorded (or unreadable, see ``error``)."""
    recorded_at: float | None = None
    backend: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class FirewallFacts:
    """Everything gathered: the ruleset (None with ``error``), managers, the baseline."""

    ruleset: Ruleset | None
    error: str = ""
    managers: Mapping[str, str] = field(default_factory=dict)
    """``firewalld``/``ufw`` -> their state as they report it."""
    baseline: Baseline | None = None
    """None when drift is not checked."""


# ---------------------------------------------------------------------------- judgement

_COVERS = {"ipv4": ("ip", "inet"), "ipv6": ("ip6", "inet")}
_DENY = ("drop", "reject")


@dataclass(frozen=True, slots=True)
class ChainWalk:
    """What one input base chain does with a packet it has no rule for."""

    chain: Chain
    deny_rules: int
    """Rules that drop or reject, reachable before any unconditional accept."""
    accepts_all: bool
    default_deny: bool
    reason: str
    reached: tuple[Rule, ...]
    """The rules a packet can reach (this chain and the chains it jumps to)."""


def _walk(rules_by_chain: Mapping[tuple[str, str, str], Sequence[Rule]],
          key: tuple[str, str, str], seen: set[tuple[str, str, str]]
          ) -> tuple[int, str, list[Rule]]:
    """Deny count, how the chain ends ("accept", "deny" or "") and the rules reached."""
    seen = seen | {key}
    denies = 0
    reached: list[Rule] = []
    for rule in rules_by_chain.get(key, ()):
        reached.append(rule)
        if rule.verdict in _DENY:
            denies += 1
            if not rule.conditional:
                return denies, "deny", reached
        elif rule.verdict == "accept" and not rule.conditional:
            return denies, "accept", reached
        elif rule.verdict in ("jump", "goto") and rule.target:
            sub = (key[0], key[1], rule.target)
            if sub in seen:
                continue
            sub_denies, sub_end, sub_reached = _walk(rules_by_chain, sub, seen)
            denies += sub_denies
            reached.extend(sub_reached)
            if not rule.conditional and sub_end:
                return denies, sub_end, reached
            if rule.verdict == "goto" and not rule.conditional:
                return denies, "", reached  # goto does not come back: the policy applies
        elif rule.verdict == "return" and not rule.conditional:
            return denies, "", reached
    return denies, "", reached


def walk_input_chain(chain: Chain, rules: Sequence[Rule]) -> ChainWalk:
    """Judge one base chain on the input hook: accept-all, default deny, or neither."""
    by_chain: dict[tuple[str, str, str], list[Rule]] = {}
    for rule in rules:
        by_chain.setdefault((rule.family, rule.table, rule.chain), []).append(rule)
    denies, end, reached = _walk(by_chain, (chain.family, chain.table, chain.name), set())
    label = f"{chain.family} {chain.table} {chain.name}"
    if end == "accept":
        # Whatever the policy, a packet no earlier rule denied is accepted here.
        reason = (f"{label} accepts every packet with an unconditional accept rule"
                  if denies == 0 else
                  f"{label} ends in an unconditional accept after "
                  f"{_count(denies, 'drop/reject rule')}")
        return ChainWalk(chain, denies, denies == 0, False, reason, tuple(reached))
    if end == "deny":
        return ChainWalk(chain, denies, False, True,
                         f"{label} ends in an unconditional drop/reject", tuple(reached))
    if chain.policy in _DENY:
        return ChainWalk(chain, denies, False, True, f"{label} policy {chain.policy}",
                         tuple(reached))
    if denies == 0:
        return ChainWalk(chain, 0, True, False,
                         f"{label} policy {chain.policy} and no rule drops or rejects",
                         tuple(reached))
    return ChainWalk(chain, denies, False, False,
                     f"{label} policy {chain.policy} with {denies} drop/reject rule"
                     f"{'s' if denies != 1 else ''}", tuple(reached))


@dataclass(frozen=True, slots=True)
class FamilyVerdict:
    """How the input path of one address family treats unsolicited packets."""

    family: str
    status: Status
    reason: str
    walks: tuple[ChainWalk, ...]


def judge_family(ruleset: Ruleset, family: str, config: FirewallConfig) -> FamilyVerdict:
    """Every input filter chain must accept a packet for it to pass, so one denying is enough."""
    chains = [c for c in ruleset.chains
              if c.hook == "input" and c.type == "filter" and c.family in _COVERS[family]]
    if not chains:
        return FamilyVerdict(family, Status.CRITICAL,
                             "no filter chain on the input hook", ())
    walks = tuple(walk_input_chain(c, ruleset.rules) for c in chains)
    denying = [w for w in walks if w.default_deny]
    if denying:
        return FamilyVerdict(family, Status.OK, denying[0].reason, walks)
    if all(w.accepts_all for w in walks):
        return FamilyVerdict(family, Status.CRITICAL,
                             f"input accepts everything ({walks[0].reason})", walks)
    status = Status.WARNING if config.require_default_deny else Status.OK
    partial = next(w for w in walks if not w.accepts_all)
    return FamilyVerdict(family, status, f"no default deny ({partial.reason})", walks)


@dataclass(frozen=True, slots=True)
class OpenPort:
    """A port a rule accepts from any source address."""

    port: PortRange
    rule: str
    allowed: bool


def open_ports(ruleset: Ruleset, config: FirewallConfig) -> list[OpenPort]:
    """Ports accepted from any address by a rule reachable from an input chain."""
    allowed = config.allowed_ports
    found: dict[tuple[str, str], OpenPort] = {}
    for family in config.families:
        chains = [c for c in ruleset.chains
                  if c.hook == "input" and c.type == "filter" and c.family in _COVERS[family]]
        for chain in chains:
            for rule in walk_input_chain(chain, ruleset.rules).reached:
                if rule.source_restricted:
                    continue
                for port in rule.ports:
                    key = (port.label, rule.text)
                    if key not in found:
                        ok = any(a.covers(port) for a in allowed)
                        found[key] = OpenPort(port, f"{rule.family} {rule.table} {rule.chain}: "
                                              f"{rule.text}", ok)
    return sorted(found.values(), key=lambda o: (o.port.proto, o.port.low, o.port.high, o.rule))


@dataclass(frozen=True, slots=True)
class Drift:
    """Normalised lines added to and removed from the baseline, in ruleset order."""

    added: tuple[str, ...]
    removed: tuple[str, ...]


def diff_lines(baseline: Sequence[str], current: Sequence[str]) -> Drift:
    """Lines only in ``current`` (added) and only in ``baseline`` (removed); a move is both."""
    from difflib import SequenceMatcher  # only paid when there is a baseline to compare

    added: list[str] = []
    removed: list[str] = []
    matcher = SequenceMatcher(None, list(baseline), list(current), autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed.extend(baseline[a0:a1])
        if tag in ("replace", "insert"):
            added.extend(current[b0:b1])
    return Drift(tuple(added), tuple(removed))


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_drift(drift: Drift) -> str:
    """``1 rule added, 1 removed``; counts rules, or lines when no rule changed."""
    rules_added = sum(1 for line in drift.added if _is_rule(line))
    rules_removed = sum(1 for line in drift.removed if _is_rule(line))
    others = (len(drift.added) - rules_added) + (len(drift.removed) - rules_removed)
    parts = []
    if rules_added or rules_removed:
        parts.append(f"{_count(rules_added, 'rule')} added, {rules_removed} removed")
    if others:
        parts.append(f"{_count(others, 'other line')} changed")
    return ", ".join(parts)


def _is_rule(line: str) -> bool:
    return line.startswith("rule ") or " -A " in line


def evaluate(config: FirewallConfig, facts: FirewallFacts, now: float, *, check: str
             ) -> list[CheckResult]:
    """One result for the input path, one for open ports, one for drift (when checked)."""
    info: dict[str, Any] = {"managers": dict(facts.managers)} if facts.managers else {}
    if facts.ruleset is None:
        reason = f"cannot read the firewall ruleset: {facts.error}"
        targets = TARGETS if config.check_drift else TARGETS[:2]
        return [unknown(check, t, reason, **info) for t in targets]
    ruleset = facts.ruleset
    results = [_input_result(config, ruleset, facts.managers, check),
               _ports_result(config, ruleset, check)]
    if config.check_drift:
        results.append(_drift_result(config, ruleset, facts.baseline, now, check))
    return results


def _manager_note(managers: Mapping[str, str]) -> str:
    notes = [f"{name} {state}" for name, state in managers.items()]
    return f" ({', '.join(notes)})" if notes else ""


def _by_reason(verdicts: Sequence[FamilyVerdict]) -> str:
    """``ipv4, ipv6: <reason>``: families with the same reason (an inet chain) said once."""
    grouped: dict[str, list[str]] = {}
    for verdict in verdicts:
        grouped.setdefault(verdict.reason, []).append(verdict.family)
    return "; ".join(f"{', '.join(families)}: {reason}" for reason, families in grouped.items())


def _input_result(config: FirewallConfig, ruleset: Ruleset, managers: Mapping[str, str],
                  check: str) -> CheckResult:
    details: dict[str, Any] = {"backend": ruleset.backend, "tables": ruleset.tables,
                               "chains": len(ruleset.chains), "rules": len(ruleset.rules)}
    if managers:
        details["managers"] = dict(managers)
    metrics = (Metric("rules", len(ruleset.rules), min=0),)
    if ruleset.empty:
        summary = f"no firewall ruleset loaded ({ruleset.backend}){_manager_note(managers)}"
        return CheckResult(check, INPUT_TARGET, Status.CRITICAL, summary[:120], metrics, details)
    verdicts = [judge_family(ruleset, f, config) for f in config.families]
    details["families"] = {
        v.family: {"status": v.status.name, "reason": v.reason,
                   "chains": [{"chain": f"{w.chain.family} {w.chain.table} {w.chain.name}",
                               "policy": w.chain.policy, "deny_rules": w.deny_rules,
                               "default_deny": w.default_deny, "accepts_all": w.accepts_all}
                              for w in v.walks]}
        for v in verdicts
    }
    status = max((v.status for v in verdicts), key=lambda s: s.severity)
    bad = [v for v in verdicts if v.status is status and status is not Status.OK]
    if bad:
        summary = _by_reason(bad)
    else:
        summary = "input denies by default: " + _by_reason(verdicts)
    return CheckResult(check, INPUT_TARGET, status, summary[:160], metrics, details)


def _ports_result(config: FirewallConfig, ruleset: Ruleset, check: str) -> CheckResult:
    found = open_ports(ruleset, config)
    unexpected = list(dict.fromkeys(o.port.label for o in found if not o.allowed))
    details: dict[str, Any] = {
        "allowed_open_ports": list(config.allowed_open_ports),
        "open_to_any": [{"port": o.port.label, "rule": o.rule, "allowed": o.allowed}
                        for o in found],
    }
    metrics = (Metric("unexpected_open_ports", len(unexpected), min=0),)
    if unexpected:
        summary = (f"{', '.join(unexpected)} open to any address "
                   f"(not in allowed_open_ports)")
        return CheckResult(check, PORTS_TARGET, Status.WARNING, summary[:160], metrics, details)
    shown = list(dict.fromkeys(o.port.label for o in found))
    summary = (f"only allowed ports open to any address: {', '.join(shown)}" if shown
               else "no port open to any address")
    return CheckResult(check, PORTS_TARGET, Status.OK, summary[:160], metrics, details)


def _drift_result(config: FirewallConfig, ruleset: Ruleset, baseline: Baseline | None,
                  now: float, check: str) -> CheckResult:
    if baseline is None or (baseline.lines is None and not baseline.error):
        status = Status.WARNING if config.missing_baseline_status == "warning" else Status.OK
        return CheckResult(check, DRIFT_TARGET, status,
                           "no baseline recorded: drift is not checked", (),
                           {"lines": len(ruleset.lines)})
    if baseline.lines is None:
        return unknown(check, DRIFT_TARGET, f"baseline unreadable: {baseline.error}")
    drift = diff_lines(baseline.lines, ruleset.lines)
    details: dict[str, Any] = {
        "added": list(drift.added[:DIFF_LINES_SHOWN]),
        "removed": list(drift.removed[:DIFF_LINES_SHOWN]),
        "baseline_backend": baseline.backend,
        "backend": ruleset.backend,
    }
    if baseline.recorded_at is not None:
        details["baseline_recorded_at"] = baseline.recorded_at
        details["baseline_age_seconds"] = round(now - baseline.recorded_at, 1)
    if len(drift.added) > DIFF_LINES_SHOWN or len(drift.removed) > DIFF_LINES_SHOWN:
        details["truncated"] = True
    metrics = (Metric("lines_added", len(drift.added), min=0),
               Metric("lines_removed", len(drift.removed), min=0))
    if not drift.added and not drift.removed:
        return CheckResult(check, DRIFT_TARGET, Status.OK,
                           f"ruleset matches the baseline ({len(ruleset.lines)} lines)",
                           metrics, details)
    summary = f"ruleset drifted from the baseline: {describe_drift(drift)}"
    return CheckResult(check, DRIFT_TARGET, Status.WARNING, summary, metrics, details)


# ---------------------------------------------------------------------------- I/O


class RulesetUnreadable(RuntimeError):
    """No backend could read the ruleset; the message says why."""


class RulesetReader:
    """Runs nft / iptables-save (inside ``netns`` when set) and parses what they print."""

    def __init__(self, config: FirewallConfig, run: CommandRunner, timeout: float) -> None:
        self.config = config
        self.run = run
        self.timeout = timeout

    def _prefix(self) -> list[str]:
        if not self.config.netns:
            return []
        ip = find_program("ip")
        if ip is None:
            raise RulesetUnreadable("netns is set but the ip program (iproute2) is not installed")
        return [ip, "netns", "exec", self.config.netns]

    def _call(self, program: str, *args: str) -> tuple[CommandOutput | None, str]:
        path = find_program(program)
        if path is None:
            return None, f"{program} not installed"
        output = self.run([*self._prefix(), path, *args], self.timeout)
        if output.returncode != 0:
            return None, f"{program} failed: {first_line(output)}"
        return output, ""

    def read_nft(self) -> tuple[Ruleset | None, str]:
        """``nft -j list ruleset`` parsed, or None and why not."""
        output, error = self._call(self.config.nft, "-j", "list", "ruleset")
        if output is None:
            return None, error
        try:
            return parse_nft_json(output.stdout), ""
        except ValueError as err:
            return None, f"nft output not understood: {err}"

    def read_iptables(self) -> tuple[Ruleset | None, str]:
        """iptables-save and ip6tables-save merged (ip6tables optional when ipv6 not judged)."""
        parts: list[Ruleset] = []
        errors: list[str] = []
        wanted = [(self.config.iptables_save, "ip", "ipv4"),
                  (self.config.ip6tables_save, "ip6", "ipv6")]
        for program, family, name in wanted:
            output, error = self._call(program)
            if output is None:
                if name in self.config.families:
                    errors.append(error)
                continue
            parts.append(parse_iptables_save(output.stdout, family))
        if errors:
            return None, "; ".join(errors)
        return merge(parts, "iptables"), ""

    def read(self) -> Ruleset:
        """The ruleset by ``backend``; auto: nftables, or iptables when nftables is empty."""
        backend = self.config.backend
        if backend == "nft":
            ruleset, error = self.read_nft()
        elif backend == "iptables":
            ruleset, error = self.read_iptables()
        else:
            ruleset, error = self.read_nft()
            if ruleset is None or ruleset.empty:
                # A legacy iptables host keeps its rules outside nftables.
                legacy, legacy_error = self.read_iptables()
                if legacy is not None and (ruleset is None or not legacy.empty):
                    ruleset = legacy
                elif ruleset is None:
                    error = f"{error}; {legacy_error}"
        if ruleset is None:
            raise RulesetUnreadable(error)
        return ruleset

    def managers(self) -> dict[str, str]:
        """firewalld and ufw state where installed (the host's, so not inside a netns)."""
        if self.config.netns:
            return {}
        found: dict[str, str] = {}
        firewall_cmd = find_program("firewall-cmd")
        if firewall_cmd:
            out = self.run([firewall_cmd, "--state"], self.timeout)
            found["firewalld"] = (out.stdout.strip() or out.stderr.strip() or "unknown")[:60]
        ufw = find_program("ufw")
        if ufw:
            out = self.run([ufw, "status"], self.timeout)
            first = (out.stdout.strip() or out.stderr.strip() or "unknown").splitlines()[0]
            found["ufw"] = first.removeprefix("Status:").strip()[:60]
        return found


def baseline_path(context: CheckContext) -> Path:
    """``<state_dir>/firewall-<name>.baseline.json``: one baseline per check instance."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", context.name)
    return context.state_dir / f"firewall-{safe_name}.baseline.json"


def load_baseline(path: Path) -> Baseline:
    """The baseline at ``path``; ``lines`` None when missing, with ``error`` when unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline()
    except OSError as err:
        return Baseline(error=f"cannot read {path}: {err.strerror or err}")
    try:
        data = json.loads(text)
        lines = data["lines"]
        if data.get("version") != BASELINE_VERSION or not isinstance(lines, list) or not all(
                isinstance(x, str) for x in lines):
            raise ValueError("not a firewall baseline of version 1")
        recorded = data.get("recorded_at")
        return Baseline(tuple(lines), float(recorded) if recorded is not None else None,
                        str(data.get("backend", "")))
    except (ValueError, KeyError, TypeError) as err:
        return Baseline(error=f"{path} is not a valid baseline: {err}")


def _budget(config: FirewallConfig, context: CheckContext) -> float:
    # nft, then possibly iptables-save and ip6tables-save, then firewall-cmd and ufw.
    return min(float(config.command_timeout), context.timeout / 6)


def record_baseline(config: FirewallConfig, context: CheckContext, *,
                    run: CommandRunner = run_command) -> Path:
    """Read the live ruleset and store it as the approved baseline; RulesetUnreadable if not."""
    ruleset = RulesetReader(config, run, _budget(config, context)).read()
    path = baseline_path(context)
    document = {"version": BASELINE_VERSION, "recorded_at": context.clock(),
                "backend": ruleset.backend, "check": context.name, "lines": list(ruleset.lines)}
    write_json(path, document, durable=True, indent=1)
    return path


# ---------------------------------------------------------------------------- the check


class FirewallCheck:
    """A loaded ruleset, default deny on input, allowed open ports, no drift."""

    type_name: ClassVar[str] = "firewall"
    Config: ClassVar[type[FirewallConfig]] = FirewallConfig

    def __init__(self, config: FirewallConfig, context: CheckContext, *,
                 run: CommandRunner = run_command) -> None:
        self.config = config
        self.context = context
        self.run_command = run
        self.baseline_path = baseline_path(context)

    def run(self) -> list[CheckResult]:
        """Read the ruleset, the managers and the baseline, then judge."""
        reader = RulesetReader(self.config, self.run_command, _budget(self.config, self.context))
        managers = reader.managers()
        try:
            ruleset: Ruleset | None = reader.read()
            error = ""
        except RulesetUnreadable as err:
            ruleset, error = None, str(err)
        baseline = load_baseline(self.baseline_path) if self.config.check_drift else None
        facts = FirewallFacts(ruleset, error, managers, baseline)
        return evaluate(self.config, facts, self.context.clock(), check=self.context.name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m checks.firewall record-baseline --state-dir DIR [--name N] [--config-json]``."""
    import argparse

    from checks.config import build

    parser = argparse.ArgumentParser(prog="python -m checks.firewall")
    commands = parser.add_subparsers(dest="command", required=True)
    record = commands.add_parser("record-baseline", help="store the live ruleset as approved")
    record.add_argument("--state-dir", required=True, type=Path,
                        help="the agent's check state directory (<agent.state_dir>/checks)")
    record.add_argument("--name", default="firewall", help="the check instance name")
    record.add_argument("--config-json", default="{}",
                        help="the check's keys as a JSON object (netns, backend, ...)")
    args = parser.parse_args(argv)
    try:
        table = json.loads(args.config_json)
        config = build(FirewallConfig, table)
    except json.JSONDecodeError as err:
        print(f"--config-json: not JSON: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    context = CheckContext(name=args.name, state_dir=args.state_dir)
    try:
        path = record_baseline(config, context)
    except (RulesetUnreadable, OSError) as err:
        print(f"cannot record the firewall baseline: {err}", file=sys.stderr)
        return 1
    print(f"firewall baseline for {args.name} recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
