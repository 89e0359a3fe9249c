"""Firewall rulesets as plain values: nft JSON and iptables-save parsed and normalised.

``parse_nft_json`` and ``parse_iptables_save`` turn what the tools print into ``Chain`` and
``Rule`` values (what the judgement of checks/firewall.py needs: verdict, whether the rule
matches every packet, source restriction, accepted ports) and into normalised lines, one
per table, chain, set and rule, without counters, handles or element timeouts: the lines
the baseline stores and drift compares. No I/O here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks.config import ConfigError

_PORT_SPEC = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/(tcp|udp|sctp|dccp)$")

# ---------------------------------------------------------------------------- ports


@dataclass(frozen=True, slots=True)
class PortRange:
    """A port or range of one transport protocol, as ``22/tcp`` or ``6000-6010/udp``."""

    low: int
    high: int
    proto: str

    @property
    def label(self) -> str:
        """``22/tcp`` or ``6000-6010/udp``."""
        ports = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"{ports}/{self.proto}"

    def covers(self, other: PortRange) -> bool:
        """Whether every port of ``other`` is in this range (same protocol)."""
        return self.proto == other.proto and self.low <= other.low and other.high <= self.high


def parse_port_spec(text: str, key: str = "allowed_open_ports") -> PortRange:
    """``22/tcp``, ``6000-6010/udp``; ConfigError naming ``key`` otherwise."""
    match = _PORT_SPEC.match(text.strip().lower())
    if not match:
        raise ConfigError(key, f"{text!r}: expected PORT/PROTO or LOW-HIGH/PROTO, e.g. \"22/tcp\"")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 0 < low <= high <= 65535:
        raise ConfigError(key, f"{text!r}: ports must be 1..65535, low before high")
    return PortRange(low, high, match.group(3))


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain; ``hook`` is set for a base chain (``input``, ``forward``, ...)."""

    family: str
    """nft family (``ip``, ``ip6``, ``inet``, ...); iptables-save gives ``ip``/``ip6``."""
    table: str
    name: str
    hook: str = ""
    type: str = ""
    policy: str = "accept"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, reduced to what the judgement needs, with its readable text."""

    family: str
    table: str
    chain: str
    text: str
    verdict: str = ""
    """``accept``, ``drop``, ``reject``, ``jump``, ``goto``, ``return`` or "" (none)."""
    target: str = ""
    """The chain of a ``jump``/``goto``."""
    conditional: bool = True
    """False when the rule matches every packet (only counters, logs, comments)."""
    source_restricted: bool = False
    """It matches a source address, a source set or the loopback interface."""
    ports: tuple[PortRange, ...] = ()
    """Destination ports it accepts (empty: none, or no port match understood)."""


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A parsed ruleset and its normalised lines (what drift compares)."""

    backend: str
    chains: tuple[Chain, ...] = ()
    rules: tuple[Rule, ...] = ()
    lines: tuple[str, ...] = ()
    tables: int = 0

    @property
    def empty(self) -> bool:
        """No table at all: nothing is loaded."""
        return self.tables == 0


# ---------------------------------------------------------------------------- nft parsing

_NON_MATCH_STATEMENTS = {"counter", "log", "comment", "notrack"}
_VERDICTS = {"accept", "drop", "reject", "jump", "goto", "return", "continue", "queue"}
_VOLATILE_KEYS = {"handle", "packets", "bytes", "expires", "used"}
_XT_VERDICTS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _compact(value: Any) -> str:
    return json.dumps(_strip_volatile(value), sort_keys=True, separators=(",", ":"))


def render_value(value: Any) -> str:
    """An nft JSON right-hand side as nft writes it: ``22``, ``{ 80, 443 }``, ``10.0.0.0/8``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list):
        return "{ " + ", ".join(render_value(v) for v in value) + " }"
    if isinstance(value, dict) and len(value) == 1:
        key, inner = next(iter(value.items()))
        if key == "set":
            return render_value(inner if isinstance(inner, list) else [inner])
        if key == "prefix" and isinstance(inner, dict):
            return f"{render_value(inner.get('addr'))}/{inner.get('len')}"
        if key == "range" and isinstance(inner, list) and len(inner) == 2:
            return f"{render_value(inner[0])}-{render_value(inner[1])}"
        if key == "payload" and isinstance(inner, dict) and "protocol" in inner:
            return f"{inner['protocol']} {inner.get('field', '')}".strip()
        if key in ("meta", "ct") and isinstance(inner, dict) and "key" in inner:
            prefix = "" if key == "meta" and inner["key"] in ("iif", "iifname", "oif",
                                                                  "oifname") else f"{key} "
            return f"{prefix}{inner['key']}"
        if key == "elem" and isinstance(inner, dict):
            return render_value(inner.get("val"))
    return _compact(value)


def render_statement(statement: Any) -> str:
    """One element of a rule's ``expr`` list, in nft's words where it is common."""
    if not isinstance(statement, dict) or len(statement) != 1:
        return _compact(statement)
    key, body = next(iter(statement.items()))
    if key == "match" and isinstance(body, dict):
        op = body.get("op", "==")
        shown = "" if op in ("==", "in") else f"{op} "
        return f"{render_value(body.get('left'))} {shown}{render_value(body.get('right'))}"
    if key in ("accept", "drop", "continue", "return") and body is None:
        return str(key)
    if key in ("jump", "goto") and isinstance(body, dict):
        return f"{key} {body.get('target', '')}"
    if key == "counter":
        return "counter"
    if key == "reject" and not body:
        return "reject"
    if key == "xt" and isinstance(body, dict):
        return f"xt {body.get('type', '')} {body.get('name', '')}"
    if key == "vmap" and isinstance(body, dict) and isinstance(body.get("data"), dict):
        entries = body["data"].get("set")
        if isinstance(entries, list) and all(isinstance(e, list) and len(e) == 2
                                              for e in entries):
            shown = ", ".join(f"{render_value(k)} : {render_statement(v)}" for k, v in entries)
            return f"{render_value(body.get('key'))} vmap {{ {shown} }}"
    return f"{key} {_compact(body)}"


def _ports_of(value: Any, sets: Mapping[str, list[Any]], protos: Sequence[str]
              ) -> tuple[PortRange, ...]:
    """The port ranges a dport match's right-hand side names."""
    if isinstance(value, str) and value.startswith("@"):
        return _ports_of(sets.get(value[1:], []), sets, protos)
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return tuple(PortRange(value, value, p) for p in protos)
    if isinstance(value, str) and value.isdigit():
        return _ports_of(int(value), sets, protos)
    if isinstance(value, list):
        return tuple(r for v in value for r in _ports_of(v, sets, protos))
    if isinstance(value, dict) and len(value) == 1:
        key, inner = next(iter(value.items()))
        if key == "set":
            return _ports_of(inner, sets, protos)
        if key == "elem" and isinstance(inner, dict):
            return _ports_of(inner.get("val"), sets, protos)
        if key == "range" and isinstance(inner, list) and len(inner) == 2:
            low, high = inner
            if isinstance(low, int) and isinstance(high, int):
                return tuple(PortRange(low, high, p) for p in protos)
    return ()


def _l4protos(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict) and "set" in value:
        return _l4protos(value["set"])
    if isinstance(value, list):
        return tuple(p for v in value for p in _l4protos(v))
    return ()


def _vmap(body: Mapping[str, Any], sets: Mapping[str, list[Any]]
          ) -> tuple[list[PortRange], bool]:
    """Ports a verdict map accepts (when keyed on a destination port) and whether it denies."""
    key = body.get("key")
    proto = ""
    if isinstance(key, dict) and isinstance(key.get("payload"), dict):
        if key["payload"].get("field") == "dport":
            proto = str(key["payload"].get("protocol", ""))
    data = body.get("data")
    entries = data.get("set", []) if isinstance(data, dict) else []
    accepted: list[PortRange] = []
    denies = False
    for entry in entries if isinstance(entries, list) else []:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
            continue
        value, verdict = entry
        if "accept" in verdict and proto and proto != "th":
            accepted.extend(_ports_of(value, sets, (proto,)))
        elif "drop" in verdict or "reject" in verdict:
            denies = True
    return accepted, denies


def parse_nft_rule(body: Mapping[str, Any], sets: Mapping[str, list[Any]]) -> Rule:
    """A ``rule`` object of ``nft -j list ruleset``, judged and rendered."""
    expr = body.get("expr") or []
    verdict = ""
    target = ""
    conditional = False
    restricted = False
    l4: tuple[str, ...] = ()
    dports: list[tuple[str, Any]] = []
    vmap_ports: list[PortRange] = []
    vmap_deny = False
    for statement in expr:
        if not isinstance(statement, dict) or len(statement) != 1:
            conditional = True
            continue
        key, inner = next(iter(statement.items()))
        if key in _VERDICTS:
            verdict = key
            if key in ("jump", "goto") and isinstance(inner, dict):
                target = str(inner.get("target", ""))
            continue
        if key == "xt" and isinstance(inner, dict):
            if inner.get("type") == "target" and inner.get("name") in _XT_VERDICTS:
                verdict = _XT_VERDICTS[str(inner["name"])]
            elif inner.get("type") != "target":
                conditional = True  # an iptables-nft match nft cannot show (-m multiport ...)
            continue
        if key in _NON_MATCH_STATEMENTS:
            continue
        conditional = True
        if key == "vmap" and isinstance(inner, dict):
            # ``tcp dport vmap { 22 : accept, 23 : drop }``: a conditional verdict per key.
            vmap_accepts, vmap_denies = _vmap(inner, sets)
            vmap_ports.extend(vmap_accepts)
            vmap_deny = vmap_deny or vmap_denies
            continue
        if key != "match" or not isinstance(inner, dict):
            continue
        left = inner.get("left")
        right = inner.get("right")
        if isinstance(left, dict) and "payload" in left and isinstance(left["payload"], dict):
            payload = left["payload"]
            if payload.get("field") == "saddr":
                restricted = True
            elif payload.get("field") == "dport" and inner.get("op", "==") in ("==", "in"):
                dports.append((str(payload.get("protocol", "")), right))
        elif isinstance(left, dict) and "meta" in left and isinstance(left["meta"], dict):
            meta_key = left["meta"].get("key")
            if meta_key in ("iif", "iifname") and right == "lo" and inner.get("op", "==") == "==":
                restricted = True
            elif meta_key == "l4proto":
                l4 = _l4protos(right)
    ports: list[PortRange] = []
    if verdict == "accept":
        for proto, right in dports:
            protos = (l4 or ("tcp", "udp")) if proto == "th" else (proto,)
            ports.extend(_ports_of(right, sets, protos))
    elif not verdict:
        ports = vmap_ports
        verdict = "drop" if vmap_deny else ""
    text = " ".join(render_statement(s) for s in expr)
    if body.get("comment"):
        text += f' comment "{body["comment"]}"'
    return Rule(
        family=str(body.get("family", "")),
        table=str(body.get("table", "")),
        chain=str(body.get("chain", "")),
        text=text,
        verdict=verdict,
        target=target,
        conditional=conditional,
        source_restricted=restricted,
        ports=tuple(ports),
    )


def _set_line(kind: str, body: Mapping[str, Any]) -> str:
    flags = [str(f) for f in body.get("flags", [])]
    head = f"{kind} {body.get('family')} {body.get('table')} {body.get('name')}"
    head += f" type {render_value(body.get('type'))}"
    if body.get("map"):
        head += f" map {render_value(body.get('map'))}"
    if flags:
        head += f" flags {','.join(sorted(flags))}"
    if "dynamic" in flags or "timeout" in flags:
        # Elements of such sets come and go at run time (added by rules, expiring): state,
        # not configuration, so drift ignores them.
        return head + " elements (dynamic, not compared)"
    elements = sorted(render_value(e) for e in body.get("elem", []))
    return head + (" elements { " + ", ".join(elements) + " }" if elements else "")


def parse_nft_json(text: str) -> Ruleset:
    """``nft -j list ruleset`` output; ValueError when it is not that."""
    try:
        document = json.loads(text) if text.strip() else {"nftables": []}
    except json.JSONDecodeError as err:
        raise ValueError(f"nft printed no JSON: {err}") from err
    objects = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(objects, list):
        raise ValueError("nft JSON has no \"nftables\" list")
    sets: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for item in objects:
        if isinstance(item, dict) and "set" in item and isinstance(item["set"], dict):
            body = item["set"]
            where = (str(body.get("family")), str(body.get("table")))
            sets.setdefault(where, {})[str(body.get("name"))] = list(body.get("elem", []))
    chains: list[Chain] = []
    rules: list[Rule] = []
    lines: list[str] = []
    tables = 0
    for item in objects:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        kind, body = next(iter(item.items()))
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        if kind == "table":
            tables += 1
            flags = body.get("flags")
            lines.append(f"table {body.get('family')} {body.get('name')}"
                         + (f" flags {render_value(flags)}" if flags else ""))
        elif kind == "chain":
            chain = Chain(str(body.get("family")), str(body.get("table")), str(body.get("name")),
                          str(body.get("hook", "")), str(body.get("type", "")),
                          str(body.get("policy", "accept")))
            chains.append(chain)
            line = f"chain {chain.family} {chain.table} {chain.name}"
            if chain.hook:
                line += (f" {{ type {chain.type} hook {chain.hook} priority "
                         f"{body.get('prio')}; policy {chain.policy}; }}")
            lines.append(line)
        elif kind == "rule":
            where = (str(body.get("family")), str(body.get("table")))
            rule = parse_nft_rule(body, sets.get(where, {}))
            rules.append(rule)
            lines.append(f"rule {rule.family} {rule.table} {rule.chain}: {rule.text}")
        elif kind in ("set", "map"):
            lines.append(_set_line(kind, body))
        else:
            lines.append(f"{kind} {_compact(body)}")
    return Ruleset("nft", tuple(chains), tuple(rules), tuple(lines), tables)


# ---------------------------------------------------------------------------- iptables-save

_IPT_COUNTERS = re.compile(r"^\[\d+:\d+\]\s*")
_BUILTIN_HOOKS = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output",
                  "PREROUTING": "prerouting", "POSTROUTING": "postrouting"}
_ANY_SOURCE = {"0.0.0.0/0", "::/0"}


def _split(line: str) -> list[str]:
    import shlex  # only iptables hosts pay for it

    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _ipt_ports(spec: str, protos: Sequence[str]) -> list[PortRange]:
    ports: list[PortRange] = []
    for part in spec.split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            ports.extend(PortRange(int(low), int(high or low), p) for p in protos)
    return ports


def parse_iptables_rule(family: str, table: str, line: str) -> Rule:
    """One ``-A CHAIN ...`` line of iptables-save (counters already removed)."""
    tokens = _split(line)
    chain = tokens[1] if len(tokens) > 1 else ""
    conditions: list[str] = []
    verdict = target = ""
    proto = ""
    restricted = False
    ports: list[PortRange] = []
    i = 2
    while i < len(tokens):
        token = tokens[i]
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("-j", "-g", "--jump", "--goto"):
            name = value
            if name in _XT_VERDICTS:
                verdict = _XT_VERDICTS[name]
            elif name:
                verdict = "goto" if token in ("-g", "--goto") else "jump"
                target = name
            break  # everything after the target is the target's own options
        if token == "-m" and value == "comment":
            i += 2
            continue
        if token == "--comment":
            i += 2
            continue
        negated = token == "!"
        if negated:
            conditions.append(token)
            i += 1
            continue
        conditions.append(token)
        if token in ("-p", "--protocol"):
            proto = value
        elif token in ("-s", "--source", "--src-range", "--match-set") and value not in _ANY_SOURCE:
            restricted = True
        elif token in ("-i", "--in-interface") and value == "lo":
            restricted = True
        elif token in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            if proto and (i == 0 or tokens[i - 1] != "!"):
                ports.extend(_ipt_ports(value, (proto,)))
        i += 2 if value and not value.startswith("-") else 1
    accepted = tuple(ports) if verdict == "accept" else ()
    return Rule(family, table, chain, line, verdict, target, bool(conditions), restricted,
                accepted)


def parse_iptables_save(text: str, family: str) -> Ruleset:
    """iptables-save (``family`` ip) or ip6tables-save (``ip6``) output."""
    chains: list[Chain] = []
    rules: list[Rule] = []
    lines: list[str] = []
    table = ""
    tables = 0
    for raw in text.splitlines():
        line = _IPT_COUNTERS.sub("", raw.strip())
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            tables += 1
            lines.append(f"{family} *{table}")
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            policy = rest.split()[0] if rest.split() else "-"
            hook = _BUILTIN_HOOKS.get(name, "") if policy != "-" else ""
            chains.append(Chain(family, table, name, hook, "filter" if table == "filter" else
                                table, policy.lower() if hook else "accept"))
            lines.append(f"{family} {table} :{name} {policy}")
        elif line.startswith("-A "):
            rules.append(parse_iptables_rule(family, table, line))
            lines.append(f"{family} {table} {line}")
    return Ruleset("iptables", tuple(chains), tuple(rules), tuple(lines), tables)


def merge(rulesets: Iterable[Ruleset], backend: str) -> Ruleset:
    """iptables and ip6tables rulesets as one."""
    parts = list(rulesets)
    return Ruleset(
        backend,
        tuple(c for r in parts for c in r.chains),
        tuple(x for r in parts for x in r.rules),
        tuple(line for r in parts for line in r.lines),
        sum(r.tables for r in parts),
    )
