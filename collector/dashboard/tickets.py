"""Dashboard pages: the tickets list, one ticket, and a support engineer's actions on it.

``GET /tickets`` lists what the login may see in the API's order (most urgent first, then
the oldest), filtered and paged in SQL. ``GET /tickets/{id}`` shows one ticket exactly as
the API gives it to this login (a viewer: the public history only, no notices).

A TSE or admin acts through forms that post to ``/tickets/{id}/<action>`` and run the
API's own code (collector.tickets.work), then come back to the ticket with
``?done=<action>``. A refused action (an empty text, no reason, a ticket resolved already)
shows the ticket again with 422, the error in the form, and what was typed still in it.

With ``[request_tracker]`` set, the list has an RT column (the RT ticket's number, a link
into RT) and a ticket's page the same link and, for staff, the ticket's changes that are
not in RT yet (waiting or given up). Without it nothing about RT is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from collector.dashboard.queries import customers
from collector.dashboard.sessions import Login
from collector.dashboard.web import (
    LoginDep,
    Page,
    may_see_everything,
    may_work_tickets,
    page_number,
    query_value,
    read_form,
    redirect,
    render,
)
from collector.errors import Forbidden, NotFound
from collector.people.service import Principal
from collector.rt.queries import WaitingChange, rt_numbers, ticket_url, waiting_changes
from collector.runtime import Runtime, get_runtime
from collector.tickets import work
from collector.tickets.models import ACTIVE_STATES, STALLED, STATES, TicketDetail, TicketView
from collector.tickets.queries import (
    ALL_STATES,
    QueryError,
    count_tickets,
    list_tickets,
    ticket_detail,
)
from collector.tickets.service import TicketError

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

PRIORITIES = ("P1", "P2", "P3", "P4")
STATE_FILTERS = (*STATES, ALL_STATES)

Action = Callable[[Runtime, Principal, int, Mapping[str, str]], TicketDetail]

# Each form's action: the fields it reads, and the same code the API runs.
ACTIONS: dict[str, Action] = {
    "reply": lambda runtime, who, number, form: work.reply(
        runtime, who, number, text=form.get("text")),
    "comment": lambda runtime, who, number, form: work.comment(
        runtime, who, number, text=form.get("text")),
    "priority": lambda runtime, who, number, form: work.change_priority(
        runtime, who, number, priority=form.get("priority"), reason=form.get("reason")),
    "resolve": lambda runtime, who, number, form: work.set_state(
        runtime, who, number, state="resolved", reason=work.required(form.get("text"), "text")),
    "state": lambda runtime, who, number, form: work.set_state(
        runtime, who, number, state=form.get("state", ""), reason=form.get("reason")),
    "assign": lambda runtime, who, number, form: work.assign(
        runtime, who, number, assignee=form.get("assignee")),
}


@dataclass(frozen=True, slots=True)
class Refused:
    """An action the service refused: which form, why, and what the user had typed."""

    action: str
    error: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def named_field(self) -> str:
        """The form field the error names ("text: must not be empty"), or ""."""
        name = self.error.partition(":")[0]
        return name if name in self.fields else ""


@dataclass(frozen=True, slots=True)
class Clock:
    """What ``ui.clock`` is given for one of a ticket's SLA clocks."""

    due: str | None
    done_at: str | None = None
    stopped: str | None = None


def first_response_clock(ticket: TicketView) -> Clock:
    """Runs until the first public reply ("done ..."); stops with the ticket unanswered."""
    if ticket.first_response_at:
        return Clock(ticket.first_response_due, done_at=ticket.first_response_at)
    if ticket.state not in ACTIVE_STATES:
        return Clock(None, stopped=f"{ticket.state}, no response")
    return Clock(ticket.first_response_due)


def next_update_clock(ticket: TicketView) -> Clock:
    """Runs after the first response until the next update; stopped while stalled or
    once the ticket is resolved or rejected."""
    if ticket.state == STALLED:
        return Clock(None, stopped="stalled")
    if ticket.state not in ACTIVE_STATES:
        return Clock(None, stopped=ticket.state)
    return Clock(ticket.next_update_due)


def done_message(action: str, ticket: TicketDetail) -> str | None:
    """The words of the ``.flash`` after an action (None for an unknown one)."""
    messages = {
        "reply": "Reply sent to the customer.",
        "comment": "Internal comment added.",
        "priority": f"Priority set to {ticket.priority}.",
        "resolve": "Ticket resolved; the customer is told.",
        "state": f"Ticket is {ticket.state} now.",
        "assign": f"Ticket assigned to {ticket.assignee or 'nobody'}.",
    }
    return messages.get(action)


@router.get("/tickets", response_class=HTMLResponse)
def tickets_page(request: Request, login: LoginDep, runtime: RuntimeDep) -> HTMLResponse:
    """Tickets of what the login may see, most urgent first; filtered and paged."""
    params = request.query_params
    scope = login.principal.scope
    size = runtime.settings.dashboard.page_size
    with runtime.engine.connect() as conn:
        names = [name for _, name in customers(conn, scope=scope)]
        state = query_value(params, "state", STATE_FILTERS)
        filters: dict[str, Any] = {
            "scope": scope,
            "customer": query_value(params, "customer", tuple(names)),
            "priority": query_value(params, "priority", PRIORITIES),
            "states": (state,) if state else (),
            "host_contains": params.get("host", "").strip() or None,
        }
        number = page_number(params.get("page"))
        total = count_tickets(conn, **filters)
        # Past the end (the list shrank while the page was open): the last page.
        page = Page(min(number, Page(1, size, total).count), size, total)
        rows = list_tickets(conn, **filters, limit=size, offset=page.offset)
        rt = rt_links(runtime, conn, [row.id for row in rows])
    return render(request, "dashboard/tickets.html", login, tickets=rows, page=page,
                  rt_on=runtime.settings.request_tracker is not None, rt=rt,
                  customers=names, picked=filters["customer"] or "",
                  chosen={"customer": filters["customer"] or "",
                          "priority": filters["priority"] or "", "state": state or "",
                          "host": filters["host_contains"] or ""},
                  priorities=PRIORITIES, states=STATE_FILTERS, **_clock_helpers())


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(ticket_id: int, request: Request, login: LoginDep,
                runtime: RuntimeDep) -> HTMLResponse:
    """One ticket: facts, clocks, escalations, breaches, history; forms for a TSE."""
    return _ticket_page(request, login, runtime, ticket_id)


@router.post("/tickets/{ticket_id}/{action}", response_class=HTMLResponse)
async def ticket_action(ticket_id: int, action: str, request: Request, login: LoginDep,
                        runtime: RuntimeDep) -> Response:
    """Run a form's action; back to the ticket when done, the page again (422) if refused."""
    run = ACTIONS.get(action)
    if run is None:
        raise NotFound(f"no action {action!r} on tickets")
    if not may_work_tickets(login):
        raise Forbidden(f"role {login.principal.role} may not act on tickets: "
                        "an admin or tse may")
    fields = await read_form(request, login)
    try:
        await run_in_threadpool(run, runtime, login.principal, ticket_id, fields)
    except (QueryError, TicketError) as exc:
        refused = Refused(action, exc.detail, {k: v for k, v in fields.items() if k != "csrf"})
        return await run_in_threadpool(_ticket_page, request, login, runtime, ticket_id,
                                       refused=refused)
    return redirect(f"/tickets/{ticket_id}?done={action}")


@router.get("/tickets/{ticket_id}/{action}", response_class=HTMLResponse)
def after_refusal(ticket_id: int, action: str, request: Request, login: LoginDep,
                  runtime: RuntimeDep) -> Response:
    """The address a refused form leaves in the browser: its live refresh gets the
    ticket's live part; opening it again goes to the ticket."""
    if action not in ACTIONS:
        raise NotFound(f"no page {request.url.path}")
    if request.headers.get("x-live") == "1":
        return _ticket_page(request, login, runtime, ticket_id)
    return redirect(f"/tickets/{ticket_id}")


def _ticket_page(request: Request, login: Login, runtime: Runtime, ticket_id: int, *,
                 refused: Refused | None = None) -> HTMLResponse:
    with runtime.engine.connect() as conn:
        ticket = ticket_detail(conn, ticket_id, scope=login.principal.scope,
                               internal=work.internal(login.principal))
        rt = rt_links(runtime, conn, [ticket_id])
        rt_changes: list[WaitingChange] = []
        if runtime.settings.request_tracker is not None and may_see_everything(login):
            rt_changes = waiting_changes(conn, ticket_id=ticket_id)
    done = request.query_params.get("done", "")
    kept = refused.fields if refused else {}

    def typed(action: str, name: str, default: str = "") -> str:
        """What the user typed into a refused form's field, else ``default``."""
        if refused is not None and refused.action == action:
            return kept.get(name, default)
        return default

    return render(request, "dashboard/ticket.html", login, status=422 if refused else 200,
                  ticket=ticket, refused=refused, typed=typed,
                  rt_on=runtime.settings.request_tracker is not None, rt=rt.get(ticket_id),
                  rt_changes=rt_changes,
                  flash=None if refused else done_message(done, ticket),
                  active=ticket.state in ACTIVE_STATES, **_clock_helpers())


@dataclass(frozen=True, slots=True)
class RtLink:
    """A collector ticket's RT ticket: its number and its page in RT."""

    number: int
    url: str


def rt_links(runtime: Runtime, conn: Connection, ticket_ids: list[int]) -> dict[int, RtLink]:
    """The RT tickets of these tickets (none when the connector is not configured)."""
    config = runtime.settings.request_tracker
    if config is None:
        return {}
    return {ticket: RtLink(number, ticket_url(config.url, number))
            for ticket, number in rt_numbers(conn, ticket_ids).items()}


def _clock_helpers() -> dict[str, Any]:
    return {"first_response_clock": first_response_clock, "next_update_clock": next_update_clock}
