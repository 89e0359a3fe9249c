"""Deciding a notice: who is told, over which channel, stored once in the outbox.

``notify`` runs inside the transaction that made the decision (a ticket opened, an
escalation due, a breach noticed): the notice is committed with the decision or not at
all, and the sender (``collector.notify.scheduled``) delivers it afterwards. Each row's
``dedup_key`` is unique, so deciding the same notice twice - two collectors, a retried
transaction, a restart - stores it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select

from collector.db import upsert_insert
from collector.notify.models import DEAD, EMAIL, PENDING, SENT, WEBHOOK, Notification
from collector.settings import Settings

CUSTOMER, TSM, CRM, CTO = "customer", "tsm", "crm", "cto"
ROLES = (CUSTOMER, TSM, CRM, CTO)
# The escalation matrix names roles in full (collector.tickets.escalation.Role); the
# settings and the outbox use the short names.
ROLE_ALIASES = {
    "technical_support_manager": TSM,
    "customer_relations_manager": CRM,
}
ROLE_TITLES = {
    CUSTOMER: "customer contacts",
    TSM: "Technical Support Manager",
    CRM: "Customer Relations Manager",
    CTO: "CTO",
}
DEDUP_KEY_MAX = 255
SUBJECT_PREFIX = "[watchkeeper #{ticket}]"


def role_name(role: str) -> str:
    """The short role name (``tsm``, ``crm``, ``cto``, ``customer``) of a role in any form.

    ValueError names the role when it is none of them.
    """
    value = str(getattr(role, "value", role)).strip().lower()
    value = ROLE_ALIASES.get(value, value)
    if value not in ROLES:
        raise ValueError(f"unknown notification role {role!r} (use {', '.join(ROLES)})")
    return value


def recipients_for(settings: Settings, *, customer: str, role: str) -> list[str]:
    """The addresses that get ``role``'s notices about ``customer``.

    ``customer``: the customer's ``contacts``. Other roles: the customer's own
    ``[customers.<name>.recipients]`` entry for the role if it has one (an empty list
    there means nobody), else ``[notifications.recipients]``.
    """
    role = role_name(role)
    own = settings.customers.get(customer)
    if role == CUSTOMER:
        return list(own.contacts) if own is not None else []
    if own is not None and role in own.recipients:
        return list(cast(Mapping[str, list[str]], own.recipients)[role])
    return list(cast(Mapping[str, list[str]], settings.notifications.recipients).get(role, []))


def with_request_number(subject: str, ticket_id: int | None) -> str:
    """``"[watchkeeper #123] subject"``: the request number first, as people search for it."""
    if ticket_id is None:
        return subject
    prefix = SUBJECT_PREFIX.format(ticket=ticket_id)
    return subject if subject.startswith(prefix) else f"{prefix} {subject}"


def dedup_key(key: str, channel: str, recipient: str) -> str:
    """``key/channel/recipient``; over 255 characters, shortened with a hash of the whole."""
    full = f"{key}/{channel}/{recipient}"
    if len(full) <= DEDUP_KEY_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()
    return f"{full[:DEDUP_KEY_MAX - len(digest) - 1]}#{digest}"


def notify(
    conn: Connection,
    *,
    key: str,
    kind: str,
    roles: Sequence[str],
    customer: str,
    ticket_id: int | None,
    subject: str,
    body: str,
    data: dict[str, Any],
    settings: Settings,
    now: float,
) -> int:
    """Store the notice for ``roles`` in the outbox; returns the rows inserted.

    One email row per address when ``[notifications.smtp]`` is set (an address that
    several roles share gets one mail); one webhook row when ``[notifications.webhook]``
    is set, whose payload carries the roles for the receiver to route on. Rows already
    stored under the same key are left alone. No channel, or no address and no webhook:
    nothing is stored and 0 is returned.
    """
    if not key:
        raise ValueError("a notice needs a key")
    names = [role_name(r) for r in roles]
    if not names:
        raise ValueError("a notice needs at least one role")
    config = settings.notifications
    full_subject = with_request_number(subject, ticket_id)
    rows: list[dict[str, Any]] = []
    if config.smtp is not None:
        addresses: dict[str, list[str]] = {}
        for role in names:
            for address in recipients_for(settings, customer=customer, role=role):
                address = address.strip()
                if address and role not in addresses.setdefault(address, []):
                    addresses[address].append(role)
        for address, its_roles in addresses.items():
            rows.append(_row(
                key=dedup_key(key, EMAIL, address), channel=EMAIL, recipient=address,
                kind=kind, subject=full_subject, body=body, ticket_id=ticket_id, now=now,
                payload={"roles": its_roles, "customer": customer, "data": data},
            ))
    if config.webhook is not None:
        rows.append(_row(
            key=dedup_key(key, WEBHOOK, config.webhook.url), channel=WEBHOOK,
            recipient=config.webhook.url, kind=kind, subject=full_subject, body=body,
            ticket_id=ticket_id, now=now,
            payload={"kind": kind, "roles": names, "customer": customer,
                     "ticket": ticket_id, "subject": full_subject, "body": body,
                     "data": data},
        ))
    inserted = 0
    table = cast(Table, Notification.__table__)
    for row in rows:
        stmt = upsert_insert(conn, table).values(**row).on_conflict_do_nothing(
            index_elements=["dedup_key"]).returning(table.c.id)
        inserted += conn.execute(stmt).first() is not None
    return inserted


def _row(
    *, key: str, channel: str, recipient: str, kind: str, subject: str, body: str,
    ticket_id: int | None, now: float, payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dedup_key": key, "channel": channel, "recipient": recipient, "kind": kind[:32],
        "subject": subject, "body": body, "payload": payload, "ticket_id": ticket_id,
        "created_at": now, "state": PENDING, "attempts": 0, "next_attempt_at": now,
        "lease_until": None, "sent_at": None, "last_error": None,
    }


@dataclass(frozen=True)
class OutboxSummary:
    """The outbox at a glance, for ``/metrics`` and the overview."""

    pending: int  # not sent yet (due or waiting for a retry)
    due: int  # pending and due now
    sent: int
    dead: int  # given up: max_attempts reached, or refused for good
    oldest_due_seconds: float  # how long the oldest due notice has waited; 0 when none


def outbox_summary(conn: Connection, *, now: float) -> OutboxSummary:
    """Counts of the outbox by state, and the age of the oldest due notice."""
    table = cast(Table, Notification.__table__)
    c = table.c
    counts: dict[str, int] = {}
    for state, n in conn.execute(select(c.state, func.count()).group_by(c.state)):
        counts[state] = int(n)
    due, oldest = conn.execute(
        select(func.count(), func.min(c.next_attempt_at))
        .where(c.state == PENDING, c.next_attempt_at <= now)).one()
    return OutboxSummary(
        pending=int(counts.get(PENDING, 0)), due=int(due), sent=int(counts.get(SENT, 0)),
        dead=int(counts.get(DEAD, 0)),
        oldest_due_seconds=max(0.0, now - float(oldest)) if oldest is not None else 0.0)
