"""Mass silence in the engine: one site ticket when most of a customer's hosts fall silent.

Each pass takes a snapshot of every customer with a silent host (or a site problem or own
silences settled before): its hosts and since when each silent one is silent (the time the
collector marked it silent). ``decide_mass_silence`` gives each silent host a verdict, kept
in the pass's context for the host-silence problems, and the site's events. The site
problem has its own key (customer, ``*``, ``silence``, ``site``) and its own problem state,
advanced as if the site were a check: CRITICAL when it falls silent, OK when it recovers,
so its ticket opens, reopens and resolves like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from checks.result import Status
from collector.problems.context import Context, Subject
from collector.problems.keys import HOST_SILENCE_CHECK, HOST_SILENCE_TARGET, ProblemKey
from collector.problems.mass_silence import (
    HostSilence,
    MassSilenceDecision,
    MassSilenceState,
    SiteEventKind,
    decide_mass_silence,
)
from collector.problems.records import (
    CUSTOMERS,
    HOSTS,
    STATES,
    delete_engine_state,
    engine_states,
    load_record,
    save_engine_state,
    save_record,
)
from collector.problems.service import audit, handle_events
from collector.problems.states import advance
from collector.tickets import service as tickets
from collector.tickets.policy import SILENCE_CHECK_TYPE

STATE_PREFIX = "mass_silence/"


def state_name(customer: str) -> str:
    """The engine_states name of a customer's mass-silence state."""
    return f"{STATE_PREFIX}{customer}"


class _Customer:
    def __init__(self, customer_id: int) -> None:
        self.id = customer_id
        self.hosts: list[HostSilence] = []
        self.critical: set[str] = set()


def settle_mass_silence(ctx: Context) -> None:
    """Decide every customer's silences; fill ``ctx.verdicts``; act on the site's events."""
    conn = ctx.conn
    rows = conn.execute(
        select(HOSTS.c.fqdn, HOSTS.c.critical, HOSTS.c.customer_id,
               CUSTOMERS.c.name, STATES.c.status, STATES.c.last_change_at)
        .select_from(HOSTS.join(CUSTOMERS, CUSTOMERS.c.id == HOSTS.c.customer_id).outerjoin(
            STATES, and_(STATES.c.host_id == HOSTS.c.id, STATES.c.check == HOST_SILENCE_CHECK,
                         STATES.c.target == HOST_SILENCE_TARGET)))
        .order_by(HOSTS.c.id)
    ).all()
    customers: dict[str, _Customer] = {}
    for fqdn, critical, cid, name, status, since in rows:
        entry = customers.get(name) or customers.setdefault(name, _Customer(cid))
        silent = status is not None and status != Status.OK
        entry.hosts.append(HostSilence(
            fqdn, datetime.fromtimestamp(since, UTC) if silent else None))
        if critical:
            entry.critical.add(fqdn)
    stored = engine_states(conn, STATE_PREFIX)
    now = datetime.fromtimestamp(ctx.now, UTC)
    for name, entry in sorted(customers.items()):
        previous_json = stored.get(state_name(name))
        if previous_json is None and all(h.silent_since is None for h in entry.hosts):
            continue
        try:
            previous = None if previous_json is None else MassSilenceState.from_json(
                previous_json)
        except ValueError:
            previous = None
        decision = decide_mass_silence(customer=name, hosts=entry.hosts, previous=previous,
                                       now=now, rules=ctx.policy.problems.mass_silence)
        for verdict in decision.verdicts:
            ctx.verdicts[ProblemKey.host_silence(customer=name, host=verdict.host)] = verdict
        settled = decision.state.site is not None or bool(decision.state.own)
        if not settled:
            delete_engine_state(conn, state_name(name))
        elif decision.state.to_json() != previous_json:
            save_engine_state(conn, state_name(name), decision.state.to_json(), now=ctx.now)
        if decision.events:
            _site_events(ctx, name, entry, decision)


def mass_silence_due(conn: Connection) -> bool:
    """Whether a pass has silences to decide: a silent host, or a customer's stored state
    (read only; when False, ``settle_mass_silence`` would neither write nor decide)."""
    silent = conn.scalar(select(STATES.c.host_id).where(
        STATES.c.check == HOST_SILENCE_CHECK, STATES.c.target == HOST_SILENCE_TARGET,
        STATES.c.status != int(Status.OK)).limit(1))
    return silent is not None or bool(engine_states(conn, STATE_PREFIX))


def site_subject(customer: str, customer_id: int,
                 state: MassSilenceState | None, critical: set[str], total: int) -> Subject:
    """The site problem's Subject: which hosts, and how many of the customer's."""
    members = () if state is None or state.site is None else state.site.members
    summary = (f"{len(members)} of {total} hosts not reporting since "
               f"{state.site.since.isoformat()}: {', '.join(members)}"
               if state is not None and state.site is not None else "the site reports again")
    return Subject(key=ProblemKey.site_silence(customer=customer), customer_id=customer_id,
                   host_id=None, check_type=SILENCE_CHECK_TYPE,
                   host_critical=bool(critical & set(members)),
                   status=int(Status.CRITICAL if members else Status.OK), summary=summary,
                   details={"hosts": list(members), "total": total})


def _site_events(ctx: Context, customer: str, entry: _Customer,
                 decision: MassSilenceDecision) -> None:
    key = ProblemKey.site_silence(customer=customer)
    record = load_record(ctx.conn, key, check_type=SILENCE_CHECK_TYPE)
    subject = site_subject(customer, entry.id, decision.state, entry.critical,
                           len(entry.hosts))
    at = datetime.fromtimestamp(ctx.now, UTC)
    for event in decision.events:
        data: dict[str, Any] = {"hosts": list(event.hosts), "event": str(event.kind)}
        if event.kind in (SiteEventKind.SITE_SILENT, SiteEventKind.SITE_RECOVERED):
            status = Status.CRITICAL if event.kind is SiteEventKind.SITE_SILENT else Status.OK
            step = advance(state=record.state, status=status, at=at,
                           rules=ctx.policy.problems, check_type=SILENCE_CHECK_TYPE)
            record.state = step.state
            audit(ctx, subject, ticket_id=None, kind=str(event.kind),
                  text=f"{event.kind}: {event.reason}", data=data)
            handle_events(ctx, record, subject, list(step.events))
        else:
            live = tickets.live_ticket(ctx.conn, key)
            verb = "joined" if event.kind is SiteEventKind.JOINED else "left"
            audit(ctx, subject, ticket_id=live, kind=f"site_{verb}",
                  text=f"{', '.join(event.hosts)} {verb}: {event.reason}", data=data)
    save_record(ctx.conn, record, now=ctx.now)


def load_site_subject(ctx: Context, customer: str) -> Subject | None:
    """The site problem's Subject for a held site key (from the stored state)."""
    data = engine_states(ctx.conn, state_name(customer)).get(state_name(customer))
    rows = ctx.conn.execute(
        select(HOSTS.c.fqdn, HOSTS.c.critical, HOSTS.c.customer_id)
        .join(CUSTOMERS, CUSTOMERS.c.id == HOSTS.c.customer_id)
        .where(CUSTOMERS.c.name == customer)).all()
    if not rows:
        return None
    try:
        state = None if data is None else MassSilenceState.from_json(data)
    except ValueError:
        state = None
    critical = {fqdn for fqdn, is_critical, _ in rows if is_critical}
    return site_subject(customer, rows[0][2], state, critical, len(rows))
