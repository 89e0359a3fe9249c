"""The ``dns`` check: the host's names forward and reverse, through each resolver apart.

Collect, then judge. ``DnsCheck.run`` asks every resolver (one thread each, all under one
deadline) for the A/AAAA records of each name and for the PTR of each address found or
expected; ``evaluate`` turns those answers into one ``CheckResult`` per (name, resolver)
without any I/O. The reference of every key and the reasoning behind the levels is
docs/checks/dns.md.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from checks import dnswire
from checks.config import ConfigError, Seconds
from checks.registry import CheckContext
from checks.result import CheckResult, Metric, Status, unknown, worst

Level = Literal["critical", "warning"]
RecordType = Literal["A", "AAAA"]

MAX_RESOLVERS = 6
MAX_NAMES = 16
MAX_REVERSE_PER_NAME = 8
RESOLV_CONF_MAXNS = 3  # glibc uses only the first three nameserver lines
_QTYPES = {"A": dnswire.TYPE_A, "AAAA": dnswire.TYPE_AAAA}


# ---------------------------------------------------------------------------- config


def parse_resolver(text: str) -> tuple[str, int]:
    """``"192.0.2.53"``, ``"127.0.0.1:5354"``, ``"2001:db8::53"``, ``"[2001:db8::53]:5354"``."""
    host, port = text.strip(), 53
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [IPv6]:port")
        host = inner
        if rest:
            port = _port(rest[1:], text)
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = _port(port_text, text)
    try:
        dnswire.canonical_address(host.split("%", 1)[0])
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (a resolver is given by address)"
        ) from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r} has no valid port")
    return int(text)


def resolver_label(host: str, port: int) -> str:
    """How a resolver is named in targets and summaries: ``10.0.0.53`` or ``127.0.0.1:5354``."""
    shown = f"[{host}]" if ":" in host and port != 53 else host
    return shown if port == 53 else f"{shown}:{port}"


@dataclass(frozen=True)
class NameSpec:
    """One name to check: ``{ name = "web1.example.net", addresses = ["192.0.2.10"] }``."""

    name: str
    addresses: tuple[str, ...] = ()
    """The exact set the name must resolve to (A and AAAA together); empty: any answer."""
    reverse: bool = True
    """Check the PTR of each address (expected or answered): it must name ``name``."""

    def __post_init__(self) -> None:
        try:
            dnswire.encode_name(self.name)
        except dnswire.FormatError as err:
            raise ConfigError("name", str(err)) from None
        if dnswire.normalise(self.name) == ".":
            raise ConfigError("name", "the root is not a host name")
        canonical = []
        for i, address in enumerate(self.addresses):
            try:
                canonical.append(dnswire.canonical_address(address))
            except ValueError:
                raise ConfigError(f"addresses[{i}]", f"{address!r} is not an IP address") from None
        object.__setattr__(self, "addresses", tuple(dict.fromkeys(canonical)))


@dataclass(frozen=True)
class DnsConfig:
    """``[checks.<name>]`` of type ``dns``; every key and its default in docs/checks/dns.md."""

    resolvers: tuple[str, ...] = ()
    names: tuple[NameSpec, ...] = ()
    record_types: tuple[RecordType, ...] = ("A", "AAAA")
    expect_route_address: bool = True
    query_timeout: Seconds = Seconds(2)
    response_time_warn: Seconds | None = None
    response_time_crit: Seconds | None = None
    forward_failure: Level = "critical"
    reverse_failure: Level = "warning"

    def __post_init__(self) -> None:
        if len(self.resolvers) > MAX_RESOLVERS:
            raise ConfigError("resolvers", f"at most {MAX_RESOLVERS} resolvers")
        for i, text in enumerate(self.resolvers):
            try:
                parse_resolver(text)
            except ValueError as err:
                raise ConfigError(f"resolvers[{i}]", str(err)) from None
        if len(self.names) > MAX_NAMES:
            raise ConfigError("names", f"at most {MAX_NAMES} names per check instance")
        seen: set[str] = set()
        for i, spec in enumerate(self.names):
            key = dnswire.normalise(spec.name)
            if key in seen:
                raise ConfigError(f"names[{i}].name", f"{spec.name} is listed twice")
            seen.add(key)
            for j, address in enumerate(spec.addresses):
                family = "AAAA" if ":" in address else "A"
                if family not in self.record_types:
                    raise ConfigError(
                        f"names[{i}].addresses[{j}]",
                        f"{address} needs {family} in record_types",
                    )
        if not self.record_types:
            raise ConfigError("record_types", "must name A, AAAA or both")
        if len(set(self.record_types)) != len(self.record_types):
            raise ConfigError("record_types", "lists a type twice")
        if self.query_timeout <= 0:
            raise ConfigError("query_timeout", "must be more than 0 seconds")
        if (
            self.response_time_warn is not None
            and self.response_time_crit is not None
            and self.response_time_warn > self.response_time_crit
        ):
            raise ConfigError("response_time_warn", "must not be above response_time_crit")


class Condition(StrEnum):
    """What is wrong with one name at one resolver, most telling first."""

    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    BAD_ANSWER = "bad_answer"
    NOT_ASKED = "not_asked"
    NXDOMAIN = "nxdomain"
    NO_ADDRESS = "no_address"
    MISMATCH = "mismatch"
    PTR_MISSING = "ptr_missing"
    PTR_MISMATCH = "ptr_mismatch"
    PTR_UNCONFIRMED = "ptr_unconfirmed"
    SLOW = "slow"
    OK = "ok"


_ORDER = {c: i for i, c in enumerate(Condition)}


class Question(StrEnum):
    """Which resolution a problem is about: the name's addresses, or an address's name."""

    FORWARD = "forward"
    REVERSE = "reverse"


class Failure(StrEnum):
    """Why a query got no DNS answer at all."""

    TIMEOUT = "timeout"
    CONNECTION_REFUSED = "connection_refused"
    MALFORMED = "malformed"
    NETWORK = "network"
    NOT_ASKED = "not_asked"


# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Outcome:
    """One question and what came back: an answer (``rcode``) or a ``failure``."""

    qname: str
    qtype: str
    rcode: str | None = None
    values: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    elapsed: float | None = None
    over_tcp: bool = False
    failure: Failure | None = None
    message: str = ""
    skipped: bool = False
    """Not sent: the resolver had already failed in this run (``failure`` is that failure)."""

    @property
    def answered(self) -> bool:
        """A DNS answer came back (whatever its rcode)."""
        return self.failure is None and self.rcode is not None


@dataclass(frozen=True, slots=True)
class NameFacts:
    """Everything one resolver said about one name and its addresses."""

    resolver: str
    name: str
    expected: tuple[str, ...]
    reverse: bool
    forward: tuple[Outcome, ...]
    ptr: tuple[tuple[str, Outcome], ...] = ()
    """(address, PTR outcome) for each address checked in reverse."""
    route_address: str | None = None
    """This host's source address toward the resolver, when the name is the host's own."""
    query_timeout: float = 2.0
    """The configured wait per question, for the words of a timeout."""
    budget: float = 0.0
    """The run's time budget in seconds, for the words of ``not_asked``."""
    reverse_skipped: tuple[str, ...] = ()
    """Addresses beyond ``MAX_REVERSE_PER_NAME`` whose PTR was not asked."""


def forward_addresses(facts_forward: Sequence[Outcome]) -> tuple[str, ...]:
    """Every address answered for the name, canonical, in answer order, once each."""
    found: dict[str, None] = {}
    for outcome in facts_forward:
        if outcome.answered:
            for value in outcome.values:
                found[dnswire.canonical_address(value)] = None
    return tuple(found)


def reverse_candidates(
    expected: Sequence[str], forward: Sequence[Outcome], route_address: str | None
) -> tuple[str, ...]:
    """Addresses whose PTR is checked: expected ones, then answered ones, then the route's."""
    ordered = dict.fromkeys([*expected, *forward_addresses(forward)])
    if route_address:
        ordered[route_address] = None
    return tuple(ordered)


# ---------------------------------------------------------------------------- judgement


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, with the status it earns."""

    condition: Condition
    status: Status
    text: str
    question: Question

    def to_wire(self) -> dict[str, str]:
        """Plain JSON form for ``details.problems``."""
        return {"condition": str(self.condition), "status": self.status.name, "text": self.text,
                "question": str(self.question)}


def _level(level: Level) -> Status:
    return Status.CRITICAL if level == "critical" else Status.WARNING


def _query_problem(outcome: Outcome, what: str, resolver: str, status: Status,
                   facts: NameFacts, question: Question) -> Problem | None:
    """A problem for a query that got no usable answer; None for NOERROR and NXDOMAIN."""
    if outcome.failure is Failure.NOT_ASKED:
        return Problem(Condition.NOT_ASKED, Status.UNKNOWN,
                       f"{what} not asked: the run's budget of {facts.budget:g}s was used up",
                       question)
    if outcome.failure is Failure.TIMEOUT:
        if outcome.skipped:
            text = f"{resolver} did not answer earlier queries; {what} not asked"
        else:
            text = f"{resolver} did not answer {what} within {facts.query_timeout:g}s"
        return Problem(Condition.TIMEOUT, status, text, question)
    if outcome.failure is Failure.CONNECTION_REFUSED:
        return Problem(Condition.CONNECTION_REFUSED, status,
                       f"{resolver} port closed (connection refused) for {what}", question)
    if outcome.failure is Failure.MALFORMED:
        return Problem(Condition.BAD_ANSWER, status,
                       f"{what}: malformed answer from {resolver}: {outcome.message}", question)
    if outcome.failure is not None:
        return Problem(Condition.BAD_ANSWER, status,
                       f"{what}: cannot reach {resolver}: {outcome.message}", question)
    if outcome.rcode == "SERVFAIL":
        return Problem(Condition.SERVFAIL, status, f"{what} SERVFAIL at {resolver}", question)
    if outcome.rcode == "REFUSED":
        return Problem(Condition.REFUSED, status, f"{resolver} REFUSED {what}", question)
    if outcome.rcode not in ("NOERROR", "NXDOMAIN"):
        return Problem(Condition.BAD_ANSWER, status, f"{what}: {outcome.rcode} from {resolver}",
                       question)
    return None


_NO_CONTACT = (Failure.TIMEOUT, Failure.CONNECTION_REFUSED, Failure.NETWORK)


def _resolver_silent(facts: NameFacts) -> bool:
    """No question of this result got a DNS answer: the resolver, not a zone, is at fault."""
    return not any(o.answered for o in (*facts.forward, *(o for _, o in facts.ptr)))


def judge_forward(facts: NameFacts, config: DnsConfig) -> list[Problem]:
    """Problems of the forward lookups: failures, NXDOMAIN, no address, mismatch."""
    status = _level(config.forward_failure)
    resolver, name = facts.resolver, facts.name
    forward = Question.FORWARD
    problems = []
    for outcome in facts.forward:
        problem = _query_problem(outcome, f"{name} {outcome.qtype}", resolver, status, facts,
                                 forward)
        if problem is not None:
            problems.append(problem)
    got = forward_addresses(facts.forward)
    # Some servers (dnsmasq among them) say NXDOMAIN for the AAAA of a name that has only
    # an A record; the name exists, and a client asking for both still gets its address.
    if not got and any(o.answered and o.rcode == "NXDOMAIN" for o in facts.forward):
        problems.append(Problem(Condition.NXDOMAIN, status,
                                f"{name} does not exist (NXDOMAIN) at {resolver}", forward))
    if problems:
        return problems
    types = "/".join(o.qtype for o in facts.forward)
    if not got:
        text = f"{name} has no {types} record at {resolver}"
        return [Problem(Condition.NO_ADDRESS, status, text, forward)]
    if facts.expected and set(got) != set(facts.expected):
        return [Problem(Condition.MISMATCH, status,
                        f"{name} resolves to {_list(got)}, expected {_list(facts.expected)} "
                        f"at {resolver}", forward)]
    route = facts.route_address
    if route and config.expect_route_address and route not in got:
        family = "AAAA" if ":" in route else "A"
        if any(o.qtype == family for o in facts.forward):
            return [Problem(Condition.MISMATCH, status,
                            f"{name} -> {_list(got)}, not the host's {route} "
                            f"at {resolver}", forward)]
    return []


def judge_reverse(facts: NameFacts, config: DnsConfig) -> list[Problem]:
    """Problems of the PTR lookups: missing, naming another host, not forward-confirmed.

    A PTR question the resolver never answered, in a result none of whose questions it
    answered, is the resolver's failure rather than the reverse zone's: a forward problem,
    at the forward level (the host cannot resolve names at all through it).
    """
    status = _level(config.reverse_failure)
    resolver, name = facts.resolver, facts.name
    reverse = Question.REVERSE
    silent = _resolver_silent(facts)
    forward_ok = bool(facts.forward) and all(
        o.answered and o.rcode in ("NOERROR", "NXDOMAIN") for o in facts.forward
    )
    answered = set(forward_addresses(facts.forward))
    problems = []
    for address, outcome in facts.ptr:
        if silent and outcome.failure in _NO_CONTACT:
            problem = _query_problem(outcome, f"PTR of {address}", resolver,
                                     _level(config.forward_failure), facts, Question.FORWARD)
        else:
            problem = _query_problem(outcome, f"PTR of {address}", resolver, status, facts,
                                     reverse)
        if problem is not None:
            problems.append(problem)
            continue
        if outcome.rcode == "NXDOMAIN" or not outcome.values:
            why = "NXDOMAIN" if outcome.rcode == "NXDOMAIN" else "no PTR record"
            problems.append(Problem(Condition.PTR_MISSING, status,
                                    f"{address} has no PTR ({why}) at {resolver}", reverse))
            continue
        names = {dnswire.normalise(v) for v in outcome.values}
        if dnswire.normalise(name) not in names:
            problems.append(Problem(Condition.PTR_MISMATCH, status,
                                    f"PTR of {address} is {_list(outcome.values)}, not {name} "
                                    f"at {resolver}", reverse))
            continue
        family = "AAAA" if ":" in address else "A"
        asked = any(o.qtype == family for o in facts.forward)
        if forward_ok and asked and address not in answered:
            problems.append(Problem(Condition.PTR_UNCONFIRMED, status,
                                    f"PTR of {address} is {name}, which does not resolve back "
                                    f"to it at {resolver}", reverse))
    return problems


def _slowest_answer(facts: NameFacts) -> tuple[float, Question] | None:
    """The longest answer time and which question it answered (forward on a tie)."""
    asked = [*((o, Question.FORWARD) for o in facts.forward),
             *((o, Question.REVERSE) for _, o in facts.ptr)]
    timed = [(o.elapsed, question) for o, question in asked
             if o.answered and o.elapsed is not None]
    return max(timed, key=lambda pair: pair[0]) if timed else None


def _slowest(facts: NameFacts) -> float | None:
    slowest = _slowest_answer(facts)
    return slowest[0] if slowest is not None else None


def judge_speed(facts: NameFacts, config: DnsConfig) -> list[Problem]:
    """WARNING/CRITICAL when the slowest answer is at or above a response-time threshold.

    The problem is about the question whose answer was the slowest: a slow PTR answer is
    a slow reverse zone, not a name that cannot be resolved.
    """
    slowest_answer = _slowest_answer(facts)
    if slowest_answer is None:
        return []
    slowest, question = slowest_answer
    for limit, status in ((config.response_time_crit, Status.CRITICAL),
                          (config.response_time_warn, Status.WARNING)):
        if limit is not None and slowest >= limit:
            return [Problem(Condition.SLOW, status,
                            f"{facts.resolver} took {_ms(slowest)} for {facts.name} "
                            f"(limit {_ms(limit)})", question)]
    return []


def evaluate_name(facts: NameFacts, config: DnsConfig, *, check: str) -> CheckResult:
    """The result of one name at one resolver."""
    problems = [
        *judge_forward(facts, config),
        *(judge_reverse(facts, config) if facts.reverse else []),
        *judge_speed(facts, config),
    ]
    status = worst(p.status for p in problems)
    # Worst first; between problems of the same status a forward one first, as the more
    # serious (the support policy ranks forward failures above reverse ones), then by how
    # telling the condition is. The head decides the result: summary, condition, question.
    ranked = _once_per_resolver_failure(sorted(
        problems,
        key=lambda p: (-p.status.severity, p.question is not Question.FORWARD,
                       _ORDER[p.condition]),
    ))
    if ranked:
        head = ranked[0]
        condition = head.condition
        more = f" (+{len(ranked) - 1} more)" if len(ranked) > 1 else ""
        summary = _fit(head.text, 80 - len(more)) + more
    else:
        condition = Condition.OK
        summary = _fit(_ok_summary(facts), 80)
    slowest = _slowest(facts)
    metrics: tuple[Metric, ...] = ()
    if slowest is not None:
        metrics = (Metric("response_time", round(slowest, 6), "s",
                          config.response_time_warn, config.response_time_crit, 0),)
    details: dict[str, Any] = {
        "resolver": facts.resolver,
        "name": facts.name,
        "condition": str(condition),
        "problems": [p.to_wire() for p in ranked],
        "forward": {o.qtype: _outcome_details(o) for o in facts.forward},
        "reverse": {address: _outcome_details(o) for address, o in facts.ptr},
    }
    if ranked:
        details["question"] = str(ranked[0].question)
    if facts.expected:
        details["expected_addresses"] = list(facts.expected)
    if facts.route_address:
        details["route_address"] = facts.route_address
    if facts.reverse_skipped:
        details["reverse_not_checked"] = list(facts.reverse_skipped)
    target = f"{facts.name}@{facts.resolver}"
    return CheckResult(check, target, status, summary, metrics, details)


_RESOLVER_FAILURES = (Condition.TIMEOUT, Condition.CONNECTION_REFUSED, Condition.NOT_ASKED)


def _once_per_resolver_failure(problems: Sequence[Problem]) -> list[Problem]:
    # A dead resolver fails every query of the run the same way; saying so once per
    # result (the most severe, i.e. the forward one) is the whole story.
    kept: list[Problem] = []
    for problem in problems:
        if problem.condition in _RESOLVER_FAILURES and any(
            k.condition is problem.condition for k in kept
        ):
            continue
        kept.append(problem)
    return kept


def evaluate(facts: Sequence[NameFacts], config: DnsConfig, *, check: str) -> list[CheckResult]:
    """One result per (name, resolver), in the order of the facts."""
    return [evaluate_name(f, config, check=check) for f in facts]


def _ok_summary(facts: NameFacts) -> str:
    got = forward_addresses(facts.forward)
    ptr = ", PTR ok" if facts.reverse and facts.ptr else ""
    slowest = _slowest(facts)
    took = f" ({_ms(slowest)})" if slowest is not None else ""
    return f"{facts.name} -> {_list(got, limit=2)}{ptr} at {facts.resolver}{took}"


def _outcome_details(outcome: Outcome) -> dict[str, Any]:
    out: dict[str, Any] = {"qname": outcome.qname}
    if outcome.answered:
        out["rcode"] = outcome.rcode
        out["values"] = list(outcome.values)
        if outcome.cnames:
            out["cnames"] = list(outcome.cnames)
        if outcome.over_tcp:
            out["tcp"] = True
    else:
        out["error"] = str(outcome.failure)
        out["message"] = outcome.message
        if outcome.skipped:
            out["not_sent"] = True
    if outcome.elapsed is not None:
        out["ms"] = round(outcome.elapsed * 1000, 2)
    return out


def _list(values: Sequence[str], limit: int = 3) -> str:
    shown = ",".join(values[:limit])
    return shown + (f" +{len(values) - limit}" if len(values) > limit else "")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.0095 else f"{seconds * 1000:.1f} ms"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- I/O


def read_resolv_conf(path: Path) -> tuple[str, ...]:
    """The first three usable ``nameserver`` addresses of a resolv.conf, as glibc takes them.

    A line whose address does not parse is skipped and does not count towards the three.
    """
    found: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver" or len(found) >= RESOLV_CONF_MAXNS:
            continue
        try:
            dnswire.canonical_address(fields[1].split("%", 1)[0])
        except ValueError:
            continue
        found.append(fields[1])
    return tuple(found)


def route_source_address(host: str, port: int) -> str | None:
    """This host's source address toward ``host`` (a UDP connect; nothing is sent).

    For a loopback resolver (a local cache such as systemd-resolved) the route toward a
    documentation address stands for the default route instead. Loopback, link-local and
    unspecified sources are no host address worth checking: None.
    """
    try:
        family, sockaddr = dnswire.server_address(host, port)
        if dnswire.is_loopback(host):
            probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
            family, sockaddr = dnswire.server_address(probe, 53)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            source = str(sock.getsockname()[0]).split("%", 1)[0]
    except (OSError, dnswire.DnsError):
        return None
    return dnswire.canonical_address(source) if dnswire.is_host_address(source) else None


QueryFunction = Callable[..., dnswire.Answer]


@dataclass(frozen=True, slots=True)
class _Target:
    name: str
    expected: tuple[str, ...]
    reverse: bool
    own_name: bool


@dataclass
class _ResolverRun:
    """Asks one resolver everything, in order; stops asking once it failed to answer."""

    host: str
    port: int
    label: str
    deadline: float
    query_timeout: float
    query: QueryFunction
    dead: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)
    facts: list[NameFacts] = field(default_factory=list)
    error: str = ""

    def ask(self, qname: str, qtype: str) -> Outcome:
        """One question under the run's deadline; no answer is an Outcome, not an error."""
        if self.dead is not None:
            return Outcome(qname, qtype, failure=self.dead.failure, message=self.dead.message,
                           skipped=True)
        left = self.deadline - time.monotonic()
        if left <= 0.01:
            return Outcome(qname, qtype, failure=Failure.NOT_ASKED, message="out of time")
        wait = min(self.query_timeout, left)
        started = time.monotonic()
        code = dnswire.TYPE_PTR if qtype == "PTR" else _QTYPES[qtype]
        try:
            answer = self.query(self.host, self.port, qname, code,
                                deadline=started + wait, resend_after=wait / 2)
        except dnswire.QueryTimeout:
            failure, message = Failure.TIMEOUT, f"no answer within {wait:g}s"
            if wait < self.query_timeout:
                failure, message = Failure.NOT_ASKED, "the run's time budget ran out"
        except dnswire.ConnectionRefused as err:
            failure, message = Failure.CONNECTION_REFUSED, str(err)
        except dnswire.FormatError as err:
            return Outcome(qname, qtype, failure=Failure.MALFORMED, message=str(err),
                           elapsed=time.monotonic() - started)
        except (OSError, dnswire.DnsError) as err:
            failure, message = Failure.NETWORK, str(err)
        else:
            return Outcome(qname, qtype, dnswire.rcode_name(answer.rcode), answer.values,
                           answer.cnames, answer.elapsed, answer.over_tcp)
        outcome = Outcome(qname, qtype, failure=failure, message=message,
                          elapsed=time.monotonic() - started)
        if failure is Failure.TIMEOUT:
            # Another wait would only spend the budget on a resolver known to be silent;
            # a refused or unreachable one fails at once, so it is simply asked again.
            self.dead = outcome
        return outcome

    def run(self, targets: Sequence[_Target], record_types: Sequence[str],
            route: str | None, budget: float) -> None:
        """Every target in order (the thread's body); sets ``done`` whatever happens."""
        try:
            for target in targets:
                forward = tuple(self.ask(target.name, t) for t in record_types)
                route_address = route if target.own_name else None
                ptr: list[tuple[str, Outcome]] = []
                skipped: tuple[str, ...] = ()
                if target.reverse:
                    candidates = reverse_candidates(target.expected, forward, route_address)
                    skipped = candidates[MAX_REVERSE_PER_NAME:]
                    for address in candidates[:MAX_REVERSE_PER_NAME]:
                        ptr.append((address, self.ask(dnswire.reverse_name(address), "PTR")))
                self.facts.append(NameFacts(
                    self.label, target.name, target.expected, target.reverse, forward,
                    tuple(ptr), route_address, self.query_timeout, budget, skipped,
                ))
        except Exception as err:  # reported as UNKNOWN for the names left, never lost
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.done.set()


class DnsCheck:
    """The host's names forward and reverse through each resolver, one result per pair."""

    type_name: ClassVar[str] = "dns"
    Config: ClassVar[type[DnsConfig]] = DnsConfig

    def __init__(
        self,
        config: DnsConfig,
        context: CheckContext,
        *,
        resolv_conf: Path = Path("/etc/resolv.conf"),
        fqdn: Callable[[], str] = socket.getfqdn,
        query: QueryFunction = dnswire.query,
        route_source: Callable[[str, int], str | None] = route_source_address,
    ) -> None:
        self.config = config
        self.context = context
        self.resolv_conf = resolv_conf
        self.fqdn = fqdn
        self.query = query
        self.route_source = route_source

    @property
    def budget(self) -> float:
        """Seconds one run may spend asking: 80% of the run's timeout."""
        return 0.8 * self.context.timeout

    def resolvers(self) -> tuple[tuple[str, ...], str]:
        """The resolvers to ask, or none and the reason why."""
        if self.config.resolvers:
            return self.config.resolvers, ""
        try:
            found = read_resolv_conf(self.resolv_conf)
        except OSError as err:
            return (), f"cannot read {self.resolv_conf}: {err.strerror or err}"
        if not found:
            return (), f"no usable nameserver line in {self.resolv_conf}"
        return found, ""

    def targets(self) -> tuple[list[_Target], str]:
        """The names to check; by default this host's FQDN (or a reason it has none)."""
        if self.config.names:
            return [_Target(s.name, s.addresses, s.reverse, False) for s in self.config.names], ""
        name = self.fqdn().rstrip(".")
        if "." not in name or dnswire.normalise(name).startswith("localhost"):
            return [], (f"host name {name!r} is not fully qualified; "
                        "set names in this check's config")
        try:
            dnswire.encode_name(name)
        except dnswire.FormatError as err:
            return [], f"host name cannot be asked: {err}"
        return [_Target(name, (), True, True)], ""

    def run(self) -> list[CheckResult]:
        """Ask every resolver in its own thread, all under one deadline, and judge."""
        check = self.context.name
        resolvers, why = self.resolvers()
        if not resolvers:
            return [unknown(check, "", why)]
        targets, why = self.targets()
        if not targets:
            return [unknown(check, "", why)]
        deadline = time.monotonic() + self.budget
        grace = 0.1 * self.context.timeout
        runs = []
        for text in resolvers:
            host, port = parse_resolver(text)
            label = resolver_label(host, port)
            route = self.route_source(host, port) if any(t.own_name for t in targets) else None
            run = _ResolverRun(host, port, label, deadline, float(self.config.query_timeout),
                               self.query)
            threading.Thread(
                target=run.run,
                args=(targets, self.config.record_types, route, self.budget),
                name=f"dns {label}",
                daemon=True,
            ).start()
            runs.append(run)
        facts: list[NameFacts] = []
        results_unfinished: list[CheckResult] = []
        for run in runs:
            # Every query has its own deadline inside the budget; the grace (a tenth of
            # the run's timeout) covers the bookkeeping after the last one and keeps the
            # whole run inside the runner's timeout.
            run.done.wait(max(0.0, deadline + grace - time.monotonic()))
            finished = run.done.is_set()
            done_names = {f.name for f in run.facts} if finished else set()
            facts.extend(run.facts if finished else ())
            for target in targets:
                if target.name in done_names:
                    continue
                reason = (f"{run.label} still being asked after {self.budget:g}s"
                          if not finished else f"{run.label}: {run.error or 'no facts'}")
                results_unfinished.append(
                    unknown(check, f"{target.name}@{run.label}", reason[:200])
                )
        return evaluate(facts, self.config, check=check) + results_unfinished
