"""The rules for hosts: enrolment and tokens, and the host views built from current state."""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from checks.result import Status, worst
from collector.errors import AlreadyEnrolled, NotFound
from collector.hosts.models import (
    CheckView,
    Customer,
    Host,
    HostDetail,
    HostSummary,
    StatusChangeView,
)
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET, CheckState, StatusChange
from collector.timefmt import iso, iso_or_none

TOKEN_BYTES = 32
RECENT_CHANGES = 50


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """Who a valid token belongs to."""

    host_id: int
    fqdn: str


def hash_token(token: str) -> str:
    """The stored form of a host token: sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def enroll(
    *, session: Session, customer: str, fqdn: str, critical: bool, rotate: bool, now: float,
    tags: Sequence[str] | None = None,
) -> str:
    """Create (or with ``rotate`` re-key) a host; return its new token, which is not stored.

    ``tags`` (labels the priority rules match on) replace the host's tags when given.
    """
    labels = None if tags is None else sorted({t.strip() for t in tags if t.strip()})
    token = secrets.token_urlsafe(TOKEN_BYTES)
    host = session.scalars(select(Host).where(Host.fqdn == fqdn)).one_or_none()
    if host is not None:
        owner = session.get(Customer, host.customer_id)
        owner_name = owner.name if owner else "?"
        if not rotate:
            raise AlreadyEnrolled(
                f"host {fqdn!r} is already enrolled (customer {owner_name!r}); "
                "use --rotate to replace its token"
            )
        if owner_name != customer:
            raise AlreadyEnrolled(
                f"host {fqdn!r} belongs to customer {owner_name!r}, not {customer!r}"
            )
        host.token_hash = hash_token(token)
        host.critical = critical
        if labels is not None:
            host.tags = labels
        session.commit()
        return token
    owner = session.scalars(select(Customer).where(Customer.name == customer)).one_or_none()
    if owner is None:
        owner = Customer(name=customer, created_at=now)
        session.add(owner)
        session.flush()
    session.add(Host(customer_id=owner.id, fqdn=fqdn, token_hash=hash_token(token),
                     enrolled_at=now, critical=critical, tags=labels or []))
    session.commit()
    return token


def host_for_token(*, session: Session, token_hash: str) -> HostIdentity | None:
    """The host a token hash belongs to, if any (an indexed lookup)."""
    row = session.execute(
        select(Host.id, Host.fqdn).where(Host.token_hash == token_hash)
    ).one_or_none()
    return None if row is None else HostIdentity(row[0], row[1])


def list_hosts(*, session: Session, customer_id: int | None = None) -> list[HostSummary]:
    """Every host (of ``customer_id``, if given) with its worst current status and counts by
    status, by customer and name."""
    query = (select(Host, Customer.name).join(Customer, Customer.id == Host.customer_id)
             .order_by(Customer.name, Host.fqdn))
    state_query = select(CheckState.host_id, CheckState.check, CheckState.target,
                         CheckState.status)
    if customer_id is not None:
        query = query.where(Host.customer_id == customer_id)
        state_query = state_query.join(Host, Host.id == CheckState.host_id).where(
            Host.customer_id == customer_id)
    hosts = session.execute(query).all()
    statuses: dict[int, list[tuple[str, str, int]]] = {}
    for host_id, check, target, status in session.execute(state_query):
        statuses.setdefault(host_id, []).append((check, target, status))
    return [_summary(host, customer, statuses.get(host.id, [])) for host, customer in hosts]


def host_detail(*, session: Session, fqdn: str, customer_id: int | None = None) -> HostDetail:
    """One host: its summary, every check's current state, and its recent status changes.

    With ``customer_id``, a host of another customer is NotFound, as an unknown one is
    (a viewer learns nothing about other customers' host names).
    """
    row = session.execute(
        select(Host, Customer.name).join(Customer, Customer.id == Host.customer_id)
        .where(Host.fqdn == fqdn)
    ).one_or_none()
    if row is None or (customer_id is not None and row[0].customer_id != customer_id):
        raise NotFound(f"no host {fqdn!r}")
    host, customer = row
    states = session.scalars(
        select(CheckState).where(CheckState.host_id == host.id)
        .order_by(CheckState.check, CheckState.target)
    ).all()
    changes = session.scalars(
        select(StatusChange).where(StatusChange.host_id == host.id)
        .order_by(StatusChange.at.desc(), StatusChange.id.desc()).limit(RECENT_CHANGES)
    ).all()
    summary = _summary(host, customer, [(s.check, s.target, s.status) for s in states])
    return HostDetail(
        **summary.model_dump(),
        agent_started_at=iso_or_none(host.agent_started_at),
        checks=[
            CheckView(
                check=s.check, target=s.target, type=s.type, status=s.status,
                status_name=Status(s.status).name, summary=s.summary, metrics=s.metrics,
                details=s.details, last_result_at=iso(s.last_result_at),
                last_change_at=iso(s.last_change_at), previous_status=s.previous_status,
            )
            for s in states
        ],
        changes=[
            StatusChangeView(check=c.check, target=c.target, from_status=c.from_status,
                             to_status=c.to_status, at=iso(c.at), summary=c.summary)
            for c in changes
        ],
    )


def _summary(host: Host, customer: str, states: list[tuple[str, str, int]]) -> HostSummary:
    codes = [Status(status) for _, _, status in states]
    silent = any(
        check == SILENCE_CHECK and target == SILENCE_TARGET and status == Status.CRITICAL
        for check, target, status in states
    )
    worst_status = worst(codes)
    counts = Counter(code.name for code in codes)
    return HostSummary(
        fqdn=host.fqdn,
        customer=customer,
        critical=host.critical,
        tags=list(host.tags or []),
        enrolled_at=iso(host.enrolled_at),
        last_seen_at=iso_or_none(host.last_seen_at),
        agent_version=host.agent_version,
        expected_interval=host.expected_interval,
        silent=silent,
        worst_status=int(worst_status),
        worst_status_name=worst_status.name,
        counts={status.name: counts.get(status.name, 0) for status in Status},
    )
