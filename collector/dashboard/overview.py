"""GET /: the overview, what the NOC watches all day; GET /problems: every problem, paged.

The overview shows a card per customer (its hosts by state, its active tickets by
priority, its SLA clocks past due), the most urgent problems (the first of /problems) and
the active tickets whose SLA falls due soonest. A viewer sees its own customer only. How a
problem's priority is found: ``collector.dashboard.queries``.

With ``[request_tracker]`` set, staff also see a Request Tracker card: in step, or how
many changes wait for RT, how many failed their last try and why, how many were given up.
It counts every customer's tickets, so a viewer does not get it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from collector.dashboard import queries
from collector.dashboard.sessions import Login
from collector.dashboard.web import (
    BadRequest,
    LoginDep,
    Page,
    may_see_everything,
    page_number,
    query_value,
    render,
)
from collector.people.service import Principal
from collector.rt.models import Backlog, backlog
from collector.runtime import Runtime, get_runtime, get_session

router = APIRouter(include_in_schema=False)

OVERVIEW_PROBLEMS = 25
OVERVIEW_TICKETS = 20


def chosen_customers(request: Request, conn: Connection,
                     principal: Principal) -> tuple[dict[int, str], list[int] | None, str]:
    """The customer filter: the customers a login may pick from (id: name, by name), the
    ids it asks for (None: every customer, for staff without a filter) and the name
    picked ("" for all). An unknown or hidden name is BadRequest naming the parameter (a
    viewer learns no other customer's name)."""
    visible = dict(queries.customers(conn, scope=principal.scope))
    picked = request.query_params.get("customer", "")
    if picked == "":
        return visible, None if principal.scope is None else list(visible), ""
    ids = [cid for cid, name in visible.items() if name == picked]
    if not ids:
        raise BadRequest(f"customer: no customer named {picked!r}")
    return visible, ids, picked


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, login: LoginDep,
             session: Annotated[Session, Depends(get_session)]) -> HTMLResponse:
    """Customer cards, the most urgent problems, the tickets whose SLA is due soonest."""
    runtime = get_runtime(request)
    conn = session.connection()
    visible, ids, picked = chosen_customers(request, conn, login.principal)
    cards = queries.customer_cards(conn, customer_ids=ids, names=visible, now=runtime.clock())
    problems, problem_total = queries.list_problems(
        conn, policy=runtime.policy.priority, customer_ids=ids, limit=OVERVIEW_PROBLEMS)
    tickets, ticket_total = queries.tickets_needing_attention(
        conn, customer_ids=ids, limit=OVERVIEW_TICKETS)
    return render(request, "dashboard/overview.html", login, customers=list(visible.values()),
                  picked=picked,
                  cards=cards, host_states=queries.HOST_STATES, priorities=queries.PRIORITIES,
                  problems=problems, problem_total=problem_total, tickets=tickets,
                  ticket_total=ticket_total, rt=rt_card(runtime, conn, login))


def rt_card(runtime: Runtime, conn: Connection, login: Login) -> Backlog | None:
    """The Request Tracker backlog for staff when the connector is configured, else None."""
    if runtime.settings.request_tracker is None or not may_see_everything(login):
        return None
    return backlog(conn, now=runtime.clock())


@router.get("/problems", response_class=HTMLResponse)
def problems(request: Request, login: LoginDep,
             session: Annotated[Session, Depends(get_session)]) -> HTMLResponse:
    """Every non-OK current state (host silence included), P1 first, then the oldest."""
    runtime = get_runtime(request)
    params = request.query_params
    priority = query_value(params, "priority", queries.PRIORITIES)
    status = query_value(params, "status", queries.PROBLEM_STATES)
    number = page_number(params.get("page"))
    conn = session.connection()
    visible, ids, picked = chosen_customers(request, conn, login.principal)
    size = runtime.settings.dashboard.page_size

    def page_of(number: int) -> tuple[list[queries.ProblemRow], int]:
        return queries.list_problems(
            conn, policy=runtime.policy.priority, customer_ids=ids, priority=priority,
            status=status, limit=size, offset=(number - 1) * size)

    rows, total = page_of(number)
    if number > (last := Page(1, size, total).count):
        # past the end (the list shrank while the page was open): the last page
        number = last
        rows, total = page_of(number)
    return render(request, "dashboard/problems.html", login, customers=list(visible.values()),
                  picked=picked,
                  priority=priority or "", chosen_status=status or "",
                  priorities=queries.PRIORITIES, statuses=queries.PROBLEM_STATES,
                  problems=rows, page=Page(number, size, total))
