"""The dashboard's own read queries: customer cards, the problem list, the host list.

A host's state is the worst of its current check states, ranked SILENT > CRITICAL >
UNKNOWN > WARNING > OK: a silent host (its ``collector``/``silence`` state CRITICAL) is
SILENT whatever its other, stale, states say. Counting and ranking hosts happen in SQL
over the non-OK states only (a host with none is OK).

A problem's priority (the problem list's first sort key) comes from, in this order:

1. its live ticket (``tickets.live_key`` is the problem key while the ticket is new, open
   or stalled): the priority people work it at, including a manual change;
2. otherwise the priority policy's answer for the state as it is now
   (``collector.tickets.policy.priority_for`` with the configured ``[priority]`` rules,
   the default table, the fallbacks), which is what the ticket engine would open it at.
   ``problem_states`` holds no priority of its own: the engine decides one only when it
   opens a ticket, so a soft, held or not-opened problem has none stored.

The second needs the policy, which is Python (globs, tags, the check's details), so the
problem list reads the non-OK states of the wanted customers (narrow columns; a state's
details only when it has no live ticket), ranks them in Python and cuts the page there.
Non-OK states are a small share of a store's states; every other list is paged in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    Text,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
)
from sqlalchemy import cast as sql_cast

from checks.result import Status
from collector.hosts.models import Customer, Host
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET, CheckState
from collector.tickets.models import ACTIVE_STATES, Ticket
from collector.tickets.policy import PriorityPolicy, priority_for

STATES = cast(Table, CheckState.__table__)
HOSTS = cast(Table, Host.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
TICKETS = cast(Table, Ticket.__table__)

SILENT = "SILENT"
HOST_STATES = ("CRITICAL", "WARNING", "UNKNOWN", SILENT, "OK")
"""A host's state as the dashboard shows and filters it (cards list them in this order)."""
PROBLEM_STATES = ("CRITICAL", "WARNING", "UNKNOWN", SILENT)
PRIORITIES = ("P1", "P2", "P3", "P4")
_RANKS = {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3, SILENT: 4}
_NAMES = {rank: name for name, rank in _RANKS.items()}


def state_rank(name: str) -> int:
    """How bad a host state is: 4 for SILENT down to 0 for OK."""
    return _RANKS[name]


def status_label(check: str, target: str, status: int) -> str:
    """A state's status as the dashboard names it: SILENT for a silent host's silence."""
    if (check, target) == (SILENCE_CHECK, SILENCE_TARGET) and status == Status.CRITICAL:
        return SILENT
    return Status(status).name


def _not_ok() -> Any:
    # a literal 0, not a bound parameter: the planner can then read the problems from
    # the partial index of non-OK states, where there is one
    return STATES.c.status != literal_column("0")


def _is_silence() -> Any:
    return and_(STATES.c.check == SILENCE_CHECK, STATES.c.target == SILENCE_TARGET,
                STATES.c.status == int(Status.CRITICAL))


def _rank() -> Any:
    """The rank of one state (as ``_RANKS``), for the worst per host."""
    return case((_is_silence(), _RANKS[SILENT]),
                (STATES.c.status == int(Status.CRITICAL), _RANKS["CRITICAL"]),
                (STATES.c.status == int(Status.UNKNOWN), _RANKS["UNKNOWN"]),
                (STATES.c.status == int(Status.WARNING), _RANKS["WARNING"]), else_=0)


def _of(column: Any, customer_ids: Sequence[int] | None) -> ColumnElement[bool]:
    """SQL: ``column`` is one of these customers (None: every customer)."""
    return true() if customer_ids is None else column.in_(list(customer_ids))


def _worst_by_host(customer_ids: Sequence[int] | None) -> Any:
    """Subquery (host_id, rank) of the hosts with a non-OK state (of these customers)."""
    query = (select(STATES.c.host_id, func.max(_rank()).label("rank"))
             .where(_not_ok()).group_by(STATES.c.host_id))
    if customer_ids is not None:
        query = query.where(STATES.c.host_id.in_(
            select(HOSTS.c.id).where(_of(HOSTS.c.customer_id, customer_ids))))
    return query.subquery("worst")


# ---------------------------------------------------------------------------- customers


def customers(conn: Connection, *, scope: int | None) -> list[tuple[int, str]]:
    """(id, name) of the customers a login may see, by name."""
    query = select(CUSTOMERS.c.id, CUSTOMERS.c.name).order_by(CUSTOMERS.c.name)
    if scope is not None:
        query = query.where(CUSTOMERS.c.id == scope)
    return [(r[0], r[1]) for r in conn.execute(query)]


@dataclass(slots=True)
class CustomerCard:
    """One customer at a glance: hosts by state, active tickets by priority, breaches."""

    name: str
    hosts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HOST_STATES, 0))
    tickets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRIORITIES, 0))
    breached: int = 0
    """SLA clocks of active tickets past due: first responses not given, updates late."""

    @property
    def worst(self) -> str:
        """The worst state any of its hosts is in (OK without hosts)."""
        bad = [name for name, count in self.hosts.items() if count]
        return max(bad, key=state_rank, default="OK")

    @property
    def host_total(self) -> int:
        return sum(self.hosts.values())

    @property
    def ticket_total(self) -> int:
        return sum(self.tickets.values())


def breached_clocks(now: float) -> tuple[Any, Any]:
    """SQL: 1 when a ticket's first-response clock / update clock is past due at ``now``."""
    first = case((and_(TICKETS.c.first_response_at.is_(None),
                       TICKETS.c.first_response_due < now), 1), else_=0)
    update = case((TICKETS.c.next_update_due < now, 1), else_=0)
    return first, update


def customer_cards(conn: Connection, *, customer_ids: Sequence[int] | None,
                   names: dict[int, str], now: float) -> list[CustomerCard]:
    """The cards of these customers (None: of every one in ``names``), in the order of
    ``names``; every figure counted in SQL."""
    ids = list(names) if customer_ids is None else list(customer_ids)
    wanted = set(ids)
    cards = {cid: CustomerCard(names[cid]) for cid in names if cid in wanted}
    if not cards:
        return []
    worst = _worst_by_host(customer_ids)
    rank = func.coalesce(worst.c.rank, 0)
    for customer_id, host_rank, count in conn.execute(
        select(HOSTS.c.customer_id, rank, func.count())
        .select_from(HOSTS.outerjoin(worst, worst.c.host_id == HOSTS.c.id))
        .where(_of(HOSTS.c.customer_id, customer_ids))
        .group_by(HOSTS.c.customer_id, rank)
    ):
        if customer_id in cards:
            cards[customer_id].hosts[_NAMES[int(host_rank)]] += count
    first, update = breached_clocks(now)
    for customer_id, priority, count, late_first, late_update in conn.execute(
        select(TICKETS.c.customer_id, TICKETS.c.priority, func.count(), func.sum(first),
               func.sum(update))
        .where(TICKETS.c.state.in_(ACTIVE_STATES), _of(TICKETS.c.customer_id, customer_ids))
        .group_by(TICKETS.c.customer_id, TICKETS.c.priority)
    ):
        card = cards.get(customer_id)
        if card is None:
            continue
        card.tickets[priority] = card.tickets.get(priority, 0) + count
        card.breached += int(late_first or 0) + int(late_update or 0)
    return list(cards.values())


# ---------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class ProblemRow:
    """One non-OK current state as the problem list shows it."""

    customer: str
    host: str
    check: str
    target: str
    status: str  # CRITICAL, WARNING, UNKNOWN or SILENT
    priority: str  # P1..P4
    summary: str
    since: float  # when the state began
    last_result_at: float
    ticket_id: int | None


def list_problems(
    conn: Connection, *, policy: PriorityPolicy, customer_ids: Sequence[int] | None,
    priority: str | None = None, status: str | None = None, limit: int, offset: int = 0,
) -> tuple[list[ProblemRow], int]:
    """One page of the problems of these customers (None: of every customer), most
    urgent priority first, then the oldest; and how many there are in all (with the same
    filters)."""
    if customer_ids is not None and not customer_ids:
        return [], 0
    live_key = (CUSTOMERS.c.name + "/" + HOSTS.c.fqdn + "/" + STATES.c.check + "/"
                + STATES.c.target)
    query: Select[Any] = (
        select(STATES.c.status, STATES.c.last_change_at, CUSTOMERS.c.name, HOSTS.c.fqdn,
               STATES.c.check, STATES.c.target, STATES.c.summary, STATES.c.last_result_at,
               TICKETS.c.id, TICKETS.c.priority,
               # what the policy judges, as stored text (decoded once per distinct value),
               # and the evidence only where the policy has to judge it
               STATES.c.type, HOSTS.c.critical, sql_cast(HOSTS.c.tags, Text),
               case((TICKETS.c.id.is_(None), sql_cast(STATES.c.details, Text)), else_=null()))
        .select_from(
            STATES.join(HOSTS, HOSTS.c.id == STATES.c.host_id)
            .join(CUSTOMERS, CUSTOMERS.c.id == HOSTS.c.customer_id)
            .outerjoin(TICKETS, TICKETS.c.live_key == live_key))
        .where(_not_ok(), _of(HOSTS.c.customer_id, customer_ids))
    )
    if status == SILENT:
        query = query.where(_is_silence())
    elif status is not None:
        query = query.where(STATES.c.status == int(Status[status]), ~_is_silence())
    judged: dict[tuple[Any, ...], str] = {}
    ranked: list[tuple[Any, ...]] = []
    for r in conn.execute(query):
        wanted = r[9]
        if wanted is None:
            facts = (r[10], r[0], r[5], r[2], r[12], bool(r[11]), r[13])
            wanted = judged.get(facts)
            if wanted is None:
                wanted = judged[facts] = _policy_priority(policy, *facts)
        if priority is None or wanted == priority:
            ranked.append((wanted, *r[1:9], r[0]))
    # priority, since, customer, host, check, target: P1 first, then the oldest
    ranked.sort(key=lambda item: item[:6])
    return [
        ProblemRow(priority=wanted, since=since, customer=customer, host=host, check=check,
                   target=target, status=status_label(check, target, code), summary=summary,
                   last_result_at=last_result, ticket_id=ticket_id)
        for wanted, since, customer, host, check, target, summary, last_result, ticket_id, code
        in ranked[offset:offset + limit]
    ], len(ranked)


def _policy_priority(policy: PriorityPolicy, check_type: str, status: int, target: str,
                     customer: str, tags: str | None, critical: bool,
                     details: str | None) -> str:
    evidence = json.loads(details) if details else {}
    decision = priority_for(policy=policy, check_type=check_type, status=Status(status),
                            target=target, customer=customer,
                            host_tags=json.loads(tags) if tags else (),
                            host_critical=critical,
                            details=evidence if isinstance(evidence, dict) else {})
    assert decision is not None  # only non-OK states are problems
    return decision.priority.value


# ---------------------------------------------------------------------------- hosts


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host in the host list."""

    fqdn: str
    customer: str
    state: str
    last_seen_at: float | None
    agent_version: str | None
    counts: dict[str, int]


def list_hosts(
    conn: Connection, *, customer_ids: Sequence[int] | None, state: str | None = None,
    name_contains: str | None = None, limit: int, offset: int = 0,
) -> tuple[list[HostRow], int]:
    """One page of these customers' hosts (None: every customer's), worst state first,
    then by name; and how many there are in all (with the same filters). Ranked, counted
    and paged in SQL."""
    if customer_ids is not None and not customer_ids:
        return [], 0
    worst = _worst_by_host(customer_ids)
    rank = func.coalesce(worst.c.rank, 0)
    conditions: list[ColumnElement[bool]] = [_of(HOSTS.c.customer_id, customer_ids)]
    if state is not None:
        conditions.append(rank == _RANKS[state])
    if name_contains:
        conditions.append(func.lower(HOSTS.c.fqdn).contains(name_contains.lower(),
                                                            autoescape=True))
    joined = (HOSTS.join(CUSTOMERS, CUSTOMERS.c.id == HOSTS.c.customer_id)
              .outerjoin(worst, worst.c.host_id == HOSTS.c.id))
    # without a state filter the count needs no ranking
    counted = joined if state is not None else HOSTS
    total = conn.execute(select(func.count()).select_from(counted).where(*conditions)).scalar()
    rows = conn.execute(
        select(HOSTS.c.id, HOSTS.c.fqdn, CUSTOMERS.c.name, rank.label("rank"),
               HOSTS.c.last_seen_at, HOSTS.c.agent_version)
        .select_from(joined).where(*conditions)
        .order_by(rank.desc(), HOSTS.c.fqdn).limit(limit).offset(offset)
    ).all()
    counts: dict[int, dict[str, int]] = {r[0]: dict.fromkeys(HOST_STATES, 0) for r in rows}
    if counts:
        label = case((_is_silence(), literal(SILENT)), else_=null())
        for host_id, code, silent, count in conn.execute(
            select(STATES.c.host_id, STATES.c.status, label, func.count())
            .where(STATES.c.host_id.in_(list(counts)))
            .group_by(STATES.c.host_id, STATES.c.status, label)
        ):
            counts[host_id][silent or Status(code).name] += count
    return [HostRow(fqdn=r[1], customer=r[2], state=_NAMES[int(r[3])], last_seen_at=r[4],
                    agent_version=r[5], counts=counts[r[0]]) for r in rows], int(total or 0)


# ---------------------------------------------------------------------------- tickets


@dataclass(frozen=True, slots=True)
class TicketRow:
    """A ticket as the overview and a host page list it, with its SLA clocks."""

    id: int
    customer: str
    host: str
    subject: str
    priority: str
    state: str
    status: str
    assignee: str | None
    created_at: float
    first_response_due: float | None
    first_response_at: float | None
    next_update_due: float | None
    stalled: bool


def _ticket_rows(conn: Connection, query: Select[Any]) -> list[TicketRow]:
    return [TicketRow(id=r.id, customer=r.customer, host=r.host, subject=r.subject,
                      priority=r.priority, state=r.state, status=Status(r.status).name,
                      assignee=r.assignee, created_at=r.created_at,
                      first_response_due=r.first_response_due,
                      first_response_at=r.first_response_at,
                      next_update_due=r.next_update_due, stalled=r.stalled_since is not None)
            for r in conn.execute(query)]


def _ticket_columns() -> Select[Any]:
    return (select(TICKETS.c.id, CUSTOMERS.c.name.label("customer"), TICKETS.c.host,
                   TICKETS.c.subject, TICKETS.c.priority, TICKETS.c.state, TICKETS.c.status,
                   TICKETS.c.assignee, TICKETS.c.created_at, TICKETS.c.first_response_due,
                   TICKETS.c.first_response_at, TICKETS.c.next_update_due,
                   TICKETS.c.stalled_since)
            .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id))


def tickets_needing_attention(conn: Connection, *, customer_ids: Sequence[int] | None,
                              limit: int) -> tuple[list[TicketRow], int]:
    """Active tickets of these customers (None: of every customer), the soonest SLA due
    first (a running first response or a running update clock; tickets without one last),
    and how many in all."""
    if customer_ids is not None and not customer_ids:
        return [], 0
    first_running = and_(TICKETS.c.first_response_at.is_(None),
                         TICKETS.c.first_response_due.is_not(None))
    soonest = case(
        (and_(first_running, (TICKETS.c.next_update_due.is_(None))
              | (TICKETS.c.first_response_due <= TICKETS.c.next_update_due)),
         TICKETS.c.first_response_due),
        else_=TICKETS.c.next_update_due)
    active = and_(TICKETS.c.state.in_(ACTIVE_STATES), _of(TICKETS.c.customer_id, customer_ids))
    total = conn.execute(select(func.count()).select_from(TICKETS).where(active)).scalar()
    rows = _ticket_rows(conn, _ticket_columns().where(active).order_by(
        soonest.is_(None), soonest, TICKETS.c.priority, TICKETS.c.id).limit(limit))
    return rows, int(total or 0)


def host_tickets(conn: Connection, *, host: str, scope: int | None,
                 limit: int) -> tuple[list[TicketRow], int]:
    """A host's tickets in every state, the newest first; and how many it has in all."""
    where = [TICKETS.c.host == host]
    if scope is not None:
        where.append(TICKETS.c.customer_id == scope)
    total = conn.execute(select(func.count()).select_from(TICKETS).where(*where)).scalar()
    rows = _ticket_rows(conn, _ticket_columns().where(*where).order_by(
        TICKETS.c.created_at.desc(), TICKETS.c.id.desc()).limit(limit))
    return rows, int(total or 0)
