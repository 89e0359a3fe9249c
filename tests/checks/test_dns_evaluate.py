"""The pure judgement of the dns check: every failure kind, level and threshold boundary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest

from checks.config import Seconds
from checks.dns import (
    DnsConfig,
    Failure,
    NameFacts,
    Outcome,
    evaluate,
    evaluate_name,
    reverse_candidates,
)
from checks.result import CheckResult, Status

R = "10.0.0.53"
NAME = "web1.example.net"
ADDR = "192.0.2.10"
REV = "10.2.0.192.in-addr.arpa"


def fwd(qtype: str = "A", *values: str, rcode: str = "NOERROR", elapsed: float = 0.003,
        failure: Failure | None = None, skipped: bool = False) -> Outcome:
    """A forward outcome: an answer, or a failure when ``failure`` is given."""
    if failure is not None:
        return Outcome(NAME, qtype, failure=failure, message=str(failure), skipped=skipped)
    return Outcome(NAME, qtype, rcode, tuple(values), elapsed=elapsed)


def ptr(*names: str, rcode: str = "NOERROR", elapsed: float = 0.002,
        failure: Failure | None = None, skipped: bool = False) -> Outcome:
    if failure is not None:
        return Outcome(REV, "PTR", failure=failure, message=str(failure), skipped=skipped)
    return Outcome(REV, "PTR", rcode, tuple(names), elapsed=elapsed)


GOOD_FORWARD = (fwd("A", ADDR), fwd("AAAA"))
GOOD_PTR = ((ADDR, ptr(NAME)),)


def facts(
    forward: tuple[Outcome, ...] = GOOD_FORWARD,
    reverse: tuple[tuple[str, Outcome], ...] = GOOD_PTR,
    *,
    expected: tuple[str, ...] = (ADDR,),
    route: str | None = None,
    check_reverse: bool = True,
) -> NameFacts:
    return NameFacts(R, NAME, expected, check_reverse, forward, reverse, route,
                     query_timeout=2.0, budget=24.0)


@dataclass(frozen=True)
class Case:
    name: str
    facts: NameFacts
    status: Status
    condition: str
    config: DnsConfig = field(default_factory=DnsConfig)
    summary: str | None = None


WARN_CRIT = DnsConfig(response_time_warn=Seconds(0.5), response_time_crit=Seconds(1.0))


def timed(seconds: float) -> NameFacts:
    return facts((fwd("A", ADDR, elapsed=seconds), fwd("AAAA", elapsed=0.001)))


CASES = [
    Case("forward and PTR agree", facts(), Status.OK, "ok",
         summary=f"{NAME} -> {ADDR}, PTR ok at {R} (3.0 ms)"),
    Case("no expected addresses: any answer", facts(expected=()), Status.OK, "ok"),
    Case("PTR with trailing dot and other case", facts(reverse=((ADDR, ptr("WEB1.Example.NET.")),)),
         Status.OK, "ok"),
    Case("several PTR names, one is ours", facts(reverse=((ADDR, ptr("alias.example.net", NAME)),)),
         Status.OK, "ok"),
    Case("reverse not checked", facts(reverse=(), check_reverse=False), Status.OK, "ok",
         summary=f"{NAME} -> {ADDR} at {R} (3.0 ms)"),
    # ---- forward failures: CRITICAL by default
    Case("NXDOMAIN", facts((fwd("A", rcode="NXDOMAIN"), fwd("AAAA", rcode="NXDOMAIN")), ()),
         Status.CRITICAL, "nxdomain", summary=f"{NAME} does not exist (NXDOMAIN) at {R}"),
    Case("NXDOMAIN as warning", facts((fwd("A", rcode="NXDOMAIN"),), ()), Status.WARNING,
         "nxdomain", DnsConfig(forward_failure="warning")),
    Case("AAAA NXDOMAIN beside an A answer (dnsmasq does this)",
         facts((fwd("A", ADDR), fwd("AAAA", rcode="NXDOMAIN"))), Status.OK, "ok"),
    Case("no A nor AAAA (NODATA)", facts((fwd("A"), fwd("AAAA")), ()), Status.CRITICAL,
         "no_address", summary=f"{NAME} has no A/AAAA record at {R}"),
    Case("only AAAA answers", facts((fwd("A"), fwd("AAAA", "2001:db8::10")), (),
                                    expected=()), Status.OK, "ok"),
    Case("other address", facts((fwd("A", "192.0.2.11"), fwd("AAAA")), ()), Status.CRITICAL,
         "mismatch", summary=f"{NAME} resolves to 192.0.2.11, expected {ADDR} at {R}"),
    Case("an extra address", facts((fwd("A", ADDR, "192.0.2.11"), fwd("AAAA"))),
         Status.CRITICAL, "mismatch"),
    Case("IPv6 spelled differently still matches",
         facts((fwd("A"), fwd("AAAA", "2001:db8:0:0::10")), (), expected=("2001:db8::10",)),
         Status.OK, "ok"),
    Case("mismatch as warning", facts((fwd("A", "192.0.2.11"), fwd("AAAA")), ()),
         Status.WARNING, "mismatch", DnsConfig(forward_failure="warning")),
    Case("host's own address missing from the answer",
         facts(expected=(), route="192.0.2.99",
               reverse=((ADDR, ptr(NAME)), ("192.0.2.99", ptr(NAME)))),
         Status.CRITICAL, "mismatch",
         summary=f"{NAME} -> {ADDR}, not the host's 192.0.2.99 at {R} (+1 more)"),
    Case("host's own address, check turned off: PTR not confirmed",
         facts(expected=(), route="192.0.2.99",
               reverse=((ADDR, ptr(NAME)), ("192.0.2.99", ptr(NAME)))),
         Status.WARNING, "ptr_unconfirmed", DnsConfig(expect_route_address=False)),
    Case("host's own address in the answer", facts(expected=(), route=ADDR), Status.OK, "ok"),
    Case("host's IPv6 address, AAAA not asked",
         facts((fwd("A", ADDR),), expected=(), route="2001:db8::99"), Status.OK, "ok",
         DnsConfig(record_types=("A",))),
    # ---- resolver failures on the forward queries
    Case("timeout", facts((fwd(failure=Failure.TIMEOUT),
                           fwd("AAAA", failure=Failure.TIMEOUT, skipped=True)), ()),
         Status.CRITICAL, "timeout", summary=f"{R} did not answer {NAME} A within 2s"),
    Case("every query skipped after an earlier timeout",
         facts((fwd(failure=Failure.TIMEOUT, skipped=True),), ()), Status.CRITICAL, "timeout",
         summary=f"{R} did not answer earlier queries; {NAME} A not asked"),
    Case("connection refused", facts((fwd(failure=Failure.CONNECTION_REFUSED),
                                      fwd("AAAA", failure=Failure.CONNECTION_REFUSED)),
                                     ((ADDR, ptr(failure=Failure.CONNECTION_REFUSED)),)),
         Status.CRITICAL, "connection_refused",
         summary=f"{R} port closed (connection refused) for {NAME} A"),
    Case("SERVFAIL", facts((fwd(rcode="SERVFAIL"), fwd("AAAA")), ()), Status.CRITICAL,
         "servfail", summary=f"{NAME} A SERVFAIL at {R}"),
    Case("REFUSED", facts((fwd(rcode="REFUSED"), fwd("AAAA", rcode="REFUSED")), ()),
         Status.CRITICAL, "refused", summary=f"{R} REFUSED {NAME} A (+1 more)"),
    Case("FORMERR", facts((fwd(rcode="FORMERR"),), ()), Status.CRITICAL, "bad_answer"),
    Case("malformed answer", facts((fwd(failure=Failure.MALFORMED),), ()), Status.CRITICAL,
         "bad_answer", summary=f"{NAME} A: malformed answer from {R}: malformed"),
    Case("network error", facts((fwd(failure=Failure.NETWORK),), ()), Status.CRITICAL,
         "bad_answer", summary=f"{NAME} A: cannot reach {R}: network"),
    Case("out of time", facts((fwd(failure=Failure.NOT_ASKED),), ()), Status.UNKNOWN,
         "not_asked", summary=f"{NAME} A not asked: the run's budget of 24s was used up"),
    # ---- reverse: WARNING by default
    Case("PTR missing (NXDOMAIN)", facts(reverse=((ADDR, ptr(rcode="NXDOMAIN")),)),
         Status.WARNING, "ptr_missing", summary=f"{ADDR} has no PTR (NXDOMAIN) at {R}"),
    Case("PTR missing (NODATA)", facts(reverse=((ADDR, ptr()),)), Status.WARNING, "ptr_missing",
         summary=f"{ADDR} has no PTR (no PTR record) at {R}"),
    Case("PTR missing as critical", facts(reverse=((ADDR, ptr(rcode="NXDOMAIN")),)),
         Status.CRITICAL, "ptr_missing", DnsConfig(reverse_failure="critical")),
    Case("PTR names another host", facts(reverse=((ADDR, ptr("wrong-host.example.net")),)),
         Status.WARNING, "ptr_mismatch",
         summary=f"PTR of {ADDR} is wrong-host.example.net, not {NAME} at {R}"),
    Case("PTR timeout", facts(reverse=((ADDR, ptr(failure=Failure.TIMEOUT)),)), Status.WARNING,
         "timeout"),
    Case("PTR SERVFAIL", facts(reverse=((ADDR, ptr(rcode="SERVFAIL")),)), Status.WARNING,
         "servfail"),
    Case("PTR REFUSED", facts(reverse=((ADDR, ptr(rcode="REFUSED")),)), Status.WARNING,
         "refused"),
    Case("PTR problems ignored when reverse is off",
         facts(reverse=((ADDR, ptr(rcode="NXDOMAIN")),), check_reverse=False), Status.OK, "ok"),
    Case("forward mismatch beats the unconfirmed PTR",
         facts((fwd("A", "192.0.2.11"), fwd("AAAA")), ((ADDR, ptr(NAME)),)),
         Status.CRITICAL, "mismatch"),
    Case("out of time beats a missing PTR",
         facts((fwd("A", ADDR), fwd("AAAA", failure=Failure.NOT_ASKED)),
               ((ADDR, ptr(rcode="NXDOMAIN")),)),
         Status.UNKNOWN, "not_asked"),
    # ---- response time: at or above the thresholds
    Case("no thresholds, slow is fine", timed(5.0), Status.OK, "ok"),
    Case("just below warn", timed(0.499), Status.OK, "ok", WARN_CRIT),
    Case("at warn", timed(0.5), Status.WARNING, "slow", WARN_CRIT,
         summary=f"{R} took 500 ms for {NAME} (limit 500 ms)"),
    Case("just below crit", timed(0.999), Status.WARNING, "slow", WARN_CRIT),
    Case("at crit", timed(1.0), Status.CRITICAL, "slow", WARN_CRIT),
    Case("only crit set", timed(0.9), Status.OK, "ok",
         DnsConfig(response_time_crit=Seconds(1.0))),
    Case("only warn set", timed(3.0), Status.WARNING, "slow",
         DnsConfig(response_time_warn=Seconds(0.5))),
    Case("slow PTR counts too",
         facts(reverse=((ADDR, ptr(NAME, elapsed=0.7)),)), Status.WARNING, "slow", WARN_CRIT),
    Case("a forward failure outranks slowness",
         facts((fwd("A", "192.0.2.11", elapsed=0.6), fwd("AAAA")), ()),
         Status.CRITICAL, "mismatch", WARN_CRIT),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_status_and_condition(case: Case) -> None:
    result = evaluate_name(case.facts, case.config, check="dns")
    assert (result.status, result.details["condition"]) == (case.status, case.condition), (
        result.summary
    )
    assert result.check == "dns"
    assert result.target == f"{NAME}@{R}"
    assert len(result.summary) <= 80
    if case.summary is not None:
        assert result.summary == case.summary
    json.dumps(result.to_wire())  # the details travel as JSON


def problems(result: CheckResult) -> list[tuple[str, str]]:
    return [(p["condition"], p["status"]) for p in result.details["problems"]]


def test_a_dead_resolver_is_reported_once_per_result() -> None:
    dead = facts((fwd(failure=Failure.TIMEOUT), fwd("AAAA", failure=Failure.TIMEOUT,
                                                     skipped=True)),
                 ((ADDR, ptr(failure=Failure.TIMEOUT, skipped=True)),))
    result = evaluate_name(dead, DnsConfig(), check="dns")
    assert problems(result) == [("timeout", "CRITICAL")]
    assert "(+" not in result.summary
    assert result.metrics == ()  # nothing answered, nothing timed


def test_every_problem_is_in_the_details_worst_first() -> None:
    both = facts((fwd("A", "192.0.2.11"), fwd("AAAA")),
                 ((ADDR, ptr("wrong-host.example.net")), ("192.0.2.11", ptr(rcode="NXDOMAIN"))))
    result = evaluate_name(both, DnsConfig(), check="dns")
    assert problems(result) == [
        ("mismatch", "CRITICAL"), ("ptr_missing", "WARNING"), ("ptr_mismatch", "WARNING"),
    ]
    assert result.summary.endswith("(+2 more)")


def test_details_carry_the_evidence() -> None:
    chained = Outcome(NAME, "A", "NOERROR", (ADDR,), ("edge.example.net",), 0.004, True)
    result = evaluate_name(facts((chained, fwd("AAAA")), route="192.0.2.10"), DnsConfig(),
                           check="dns")
    assert result.details["forward"]["A"] == {
        "qname": NAME, "rcode": "NOERROR", "values": [ADDR], "cnames": ["edge.example.net"],
        "tcp": True, "ms": 4.0,
    }
    assert result.details["reverse"][ADDR]["values"] == [NAME]
    assert result.details["expected_addresses"] == [ADDR]
    assert result.details["route_address"] == "192.0.2.10"
    assert result.details["resolver"] == R and result.details["name"] == NAME
    failed = evaluate_name(facts((fwd(failure=Failure.CONNECTION_REFUSED),), ()), DnsConfig(),
                           check="dns")
    assert failed.details["forward"]["A"]["error"] == "connection_refused"


def test_response_time_metric() -> None:
    result = evaluate_name(timed(0.25), WARN_CRIT, check="dns")
    assert result.perfdata() == "'response_time'=0.25s;0.5;1;0"


def test_long_names_keep_the_summary_short() -> None:
    long_name = "a-very-long-host-name-for-a-billing-node." * 2 + "example.net"
    case = replace(facts((fwd("A", rcode="NXDOMAIN"),), ()), name=long_name)
    result = evaluate_name(case, DnsConfig(), check="dns")
    assert len(result.summary) <= 80 and result.summary.endswith("...")
    assert result.target == f"{long_name}@{R}"


def test_evaluate_keeps_the_order_of_the_facts() -> None:
    other = replace(facts(), resolver="10.0.0.54")
    results = evaluate([facts(), other], DnsConfig(), check="dns")
    assert [r.target for r in results] == [f"{NAME}@{R}", f"{NAME}@10.0.0.54"]


def test_reverse_candidates_expected_then_answered_then_route() -> None:
    forward = (fwd("A", "192.0.2.11", ADDR), fwd("AAAA", "2001:db8:0::1"))
    assert reverse_candidates((ADDR,), forward, "192.0.2.99") == (
        ADDR, "192.0.2.11", "2001:db8::1", "192.0.2.99",
    )
    failed = (fwd(failure=Failure.TIMEOUT),)
    assert reverse_candidates((), failed, None) == ()


# ---- forward or reverse: which question each problem, and the result, is about


@dataclass(frozen=True)
class QuestionCase:
    name: str
    facts: NameFacts
    question: str
    """``details.question``: the question of the problem that decided the status."""
    problems: list[tuple[str, str, str]]
    """(condition, status, question) of every entry of ``details.problems``, in order."""
    config: DnsConfig = field(default_factory=DnsConfig)


FORWARD_WARNING = DnsConfig(forward_failure="warning")
REVERSE_CRITICAL = DnsConfig(reverse_failure="critical")
DEAD = (fwd(failure=Failure.TIMEOUT), fwd("AAAA", failure=Failure.TIMEOUT, skipped=True))

QUESTION_CASES = [
    QuestionCase("forward NXDOMAIN", facts((fwd("A", rcode="NXDOMAIN"),), ()), "forward",
                 [("nxdomain", "CRITICAL", "forward")]),
    QuestionCase("forward SERVFAIL", facts((fwd(rcode="SERVFAIL"), fwd("AAAA")), ()),
                 "forward", [("servfail", "CRITICAL", "forward")]),
    QuestionCase("forward mismatch", facts((fwd("A", "192.0.2.11"), fwd("AAAA")), ()),
                 "forward", [("mismatch", "CRITICAL", "forward")]),
    QuestionCase("PTR SERVFAIL", facts(reverse=((ADDR, ptr(rcode="SERVFAIL")),)), "reverse",
                 [("servfail", "WARNING", "reverse")]),
    QuestionCase("PTR SERVFAIL at the critical level",
                 facts(reverse=((ADDR, ptr(rcode="SERVFAIL")),)), "reverse",
                 [("servfail", "CRITICAL", "reverse")], REVERSE_CRITICAL),
    QuestionCase("PTR REFUSED", facts(reverse=((ADDR, ptr(rcode="REFUSED")),)), "reverse",
                 [("refused", "WARNING", "reverse")]),
    QuestionCase("PTR FORMERR", facts(reverse=((ADDR, ptr(rcode="FORMERR")),)), "reverse",
                 [("bad_answer", "WARNING", "reverse")]),
    QuestionCase("malformed answer to the PTR",
                 facts(reverse=((ADDR, ptr(failure=Failure.MALFORMED)),)), "reverse",
                 [("bad_answer", "WARNING", "reverse")]),
    QuestionCase("PTR unanswered by a resolver that answered the name",
                 facts(reverse=((ADDR, ptr(failure=Failure.TIMEOUT)),
                                ("192.0.2.11", ptr(failure=Failure.TIMEOUT, skipped=True)))),
                 "reverse", [("timeout", "WARNING", "reverse")]),
    QuestionCase("PTR missing", facts(reverse=((ADDR, ptr(rcode="NXDOMAIN")),)), "reverse",
                 [("ptr_missing", "WARNING", "reverse")]),
    QuestionCase("PTR names another host", facts(reverse=((ADDR, ptr("other.example.net")),)),
                 "reverse", [("ptr_mismatch", "WARNING", "reverse")]),
    QuestionCase("PTR does not resolve back",
                 facts(expected=(), route="192.0.2.99",
                       reverse=((ADDR, ptr(NAME)), ("192.0.2.99", ptr(NAME)))),
                 "reverse", [("ptr_unconfirmed", "WARNING", "reverse")],
                 DnsConfig(expect_route_address=False)),
    # A resolver that answers nothing: the host cannot resolve names through it.
    QuestionCase("dead resolver, PTR not sent", facts(DEAD, ((ADDR, ptr(
        failure=Failure.TIMEOUT, skipped=True)),)), "forward",
        [("timeout", "CRITICAL", "forward")]),
    QuestionCase("closed port for every question",
                 facts((fwd(failure=Failure.CONNECTION_REFUSED),),
                       ((ADDR, ptr(failure=Failure.CONNECTION_REFUSED)),)),
                 "forward", [("connection_refused", "CRITICAL", "forward")]),
    QuestionCase("dead resolver stays at the forward level when reverse is the higher",
                 facts(DEAD, ((ADDR, ptr(failure=Failure.TIMEOUT, skipped=True)),)),
                 "forward", [("timeout", "WARNING", "forward")],
                 DnsConfig(forward_failure="warning", reverse_failure="critical")),
    QuestionCase("unreachable for every question",
                 facts((fwd(failure=Failure.NETWORK),),
                       ((ADDR, ptr(failure=Failure.NETWORK)),)),
                 "forward", [("bad_answer", "CRITICAL", "forward"),
                             ("bad_answer", "CRITICAL", "forward")]),
    # A tie of status: the forward problem decides, though servfail ranks above mismatch.
    QuestionCase("forward and reverse at the same level: forward first",
                 facts((fwd("A", "192.0.2.11"), fwd("AAAA")),
                       (("192.0.2.11", ptr(rcode="SERVFAIL")),)),
                 "forward", [("mismatch", "WARNING", "forward"),
                             ("servfail", "WARNING", "reverse")], FORWARD_WARNING),
    QuestionCase("a worse reverse problem decides over a forward warning",
                 facts((fwd("A", "192.0.2.11"), fwd("AAAA")),
                       (("192.0.2.11", ptr(rcode="SERVFAIL")),)),
                 "reverse", [("servfail", "CRITICAL", "reverse"),
                             ("mismatch", "WARNING", "forward")],
                 DnsConfig(forward_failure="warning", reverse_failure="critical")),
    QuestionCase("slow forward answer", timed(0.6), "forward",
                 [("slow", "WARNING", "forward")], WARN_CRIT),
    QuestionCase("slow PTR answer", facts(reverse=((ADDR, ptr(NAME, elapsed=0.7)),)),
                 "reverse", [("slow", "WARNING", "reverse")], WARN_CRIT),
    QuestionCase("slow forward beside a missing PTR: forward first",
                 facts((fwd("A", ADDR, elapsed=0.6), fwd("AAAA")),
                       ((ADDR, ptr(rcode="NXDOMAIN")),)),
                 "forward", [("slow", "WARNING", "forward"),
                             ("ptr_missing", "WARNING", "reverse")], WARN_CRIT),
    QuestionCase("PTR not asked for lack of time",
                 facts(reverse=((ADDR, ptr(failure=Failure.NOT_ASKED)),)), "reverse",
                 [("not_asked", "UNKNOWN", "reverse")]),
]


@pytest.mark.parametrize("case", QUESTION_CASES, ids=lambda c: c.name)
def test_question_of_each_problem_and_of_the_result(case: QuestionCase) -> None:
    result = evaluate_name(case.facts, case.config, check="dns")
    assert result.details["question"] == case.question, result.details["problems"]
    assert [(p["condition"], p["status"], p["question"]) for p in result.details["problems"]] == (
        case.problems
    )
    head = result.details["problems"][0]
    assert (head["condition"], head["status"]) == (result.details["condition"],
                                                   result.status.name)


def test_ok_result_has_no_question() -> None:
    result = evaluate_name(facts(), DnsConfig(), check="dns")
    assert result.status is Status.OK
    assert "question" not in result.details
    assert result.details["problems"] == []
