"""What RT is told of a ticket event: the create, and the calls each later event makes.

Pure functions of the ticket, the event and the settings, so the same change computed
twice (a retry, another collector) makes the same calls. Notes carry a marker in their
subject, ``[watchkeeper #<ticket>/<event>]``, by which a retry whose answer was lost finds
the note already in RT's history instead of adding it twice. Priority and status are set
with values, which RT takes twice as once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from collector.problems.keys import ProblemKey
from collector.settings import RequestTrackerSettings, Settings
from collector.tickets.models import REJECTED, RESOLVED, STALLED
from collector.tickets.priority import Priority
from collector.timefmt import human_time

Op = Literal["comment", "correspond", "update"]
EVIDENCE_MAX = 8000
# Collector states RT's default lifecycle has too. A reopened ticket is "open" in RT:
# RT does not go back from resolved to new.
_RT_STATUS = {"open": "open", "new": "open", STALLED: STALLED, RESOLVED: RESOLVED,
              REJECTED: REJECTED}


@dataclass(frozen=True)
class Call:
    """One REST2 call: a note (comment or correspond) or an update of ticket fields."""

    op: Op
    subject: str = ""
    content: str = ""
    fields: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class Create:
    """The RT ticket of a collector ticket, as REST2 creates it."""

    queue: str
    subject: str
    requestors: list[str]
    priority: int
    content: str
    key_value: str


def key_value(ticket: Mapping[Any, Any], instance: str) -> str:
    """The key field's value: ``<problem key> #<request number>@<instance>``, one per ticket.

    The problem key alone would not do: a problem that comes back after its ticket was
    closed gets a new ticket, which must not be taken for the old one; and the request
    number alone is not unique in an RT that hears from two collector databases.
    """
    return f"{problem_key(ticket)} #{ticket['id']}@{instance}"


def problem_key(ticket: Mapping[Any, Any]) -> str:
    return str(ProblemKey(ticket["customer"], ticket["host"], ticket["check"],
                          ticket["target"]))


def marker(ticket_id: int, event_id: int) -> str:
    return f"[watchkeeper #{ticket_id}/{event_id}]"


def create_for(ticket: Mapping[Any, Any], event: Mapping[Any, Any] | None,
               settings: Settings, *, instance: str, public_url: str) -> Create:
    """The create call: queue and requestors of the customer, the priority as RT's code,
    the opening text with the evidence. ``event``: the ``opened`` event, when it is the
    change being sent (otherwise the ticket is created as it is now)."""
    rt = _rt(settings)
    customer = settings.customers.get(ticket["customer"])
    queue = (customer.rt_queue if customer is not None else None) or rt.queue
    requestors: list[str] = []
    if customer is not None:
        requestors = list(customer.rt_requestors if customer.rt_requestors is not None
                          else customer.contacts)
    data: Mapping[Any, Any] = event["data"] if event is not None else {}
    priority = Priority(ticket["priority"])
    if event is not None and event["kind"] == "opened" and "priority" in data:
        priority = Priority(data["priority"])
    lines = [
        f"watchkeeper request #{ticket['id']}: {ticket['subject']}",
        "",
        f"Customer: {ticket['customer']}",
        f"Host: {ticket['host']}",
        f"Check: {ticket['check']} {ticket['target']}".rstrip(),
        f"Priority: {priority} (RT {priority.rt_code}): {ticket['priority_reason']}",
        f"Opened: {human_time(ticket['created_at'])}",
    ]
    if ticket["first_response_due"] is not None:
        lines.append(f"First response due: {human_time(ticket['first_response_due'])}")
    lines.append(f"In watchkeeper: {public_url.rstrip('/')}/tickets/{ticket['id']}")
    evidence = data.get("evidence")
    if evidence:
        text = json.dumps(evidence, indent=2, sort_keys=True, default=str)
        if len(text) > EVIDENCE_MAX:
            text = text[:EVIDENCE_MAX] + "\n... (cut; the whole evidence is in watchkeeper)"
        lines += ["", "Evidence:", text]
    return Create(queue=queue, subject=ticket["subject"], requestors=requestors,
                  priority=priority.rt_code, content="\n".join(lines) + "\n",
                  key_value=key_value(ticket, instance))


def calls_for(ticket: Mapping[Any, Any], event: Mapping[Any, Any]) -> list[Call]:
    """The calls that bring one event into RT, in order (none for ``opened``: the create)."""
    kind = event["kind"]
    data: Mapping[Any, Any] = event["data"] or {}
    mark = marker(ticket["id"], event["id"])
    text = str(event["text"])
    by = f"\n\n-- {event['actor']} (watchkeeper)\n"
    if kind == "opened":
        return []
    if kind == "reply":
        return [Call("correspond", subject=f"{mark} {ticket['subject']}",
                     content=text + by)]
    if kind in ("priority_raised", "priority_changed") and "to" in data:
        code = Priority(data["to"]).rt_code
        return [Call("update", fields={"Priority": code}),
                Call("comment", subject=f"{mark} priority {data['to']}", content=text + by)]
    if kind == "state_changed" and data.get("to") in _RT_STATUS:
        return [Call("comment", subject=f"{mark} {data['to']}", content=text + by),
                Call("update", fields={"Status": _RT_STATUS[data["to"]]})]
    if kind == "resolved":
        return [Call("comment", subject=f"{mark} resolved", content=text + by),
                Call("update", fields={"Status": RESOLVED})]
    if kind == "reopened":
        return [Call("update", fields={"Status": "open"}),
                Call("comment", subject=f"{mark} reopened", content=text + by)]
    return [Call("comment", subject=f"{mark} {kind.replace('_', ' ')}", content=text + by)]


def _rt(settings: Settings) -> RequestTrackerSettings:
    if settings.request_tracker is None:
        raise ValueError("[request_tracker] is not configured")
    return settings.request_tracker
