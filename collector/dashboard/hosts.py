"""GET /hosts: every host, worst first, paged; GET /hosts/{fqdn}: one host in full.

A host page shows the host's facts, each check's current state with its metric values and
evidence, the last status changes and the host's tickets. A viewer asking for another
customer's host gets the same 404 page as for a host that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from collector.dashboard import queries
from collector.dashboard.overview import chosen_customers
from collector.dashboard.web import LoginDep, Page, epoch, page_number, query_value, render
from collector.hosts.service import host_detail
from collector.runtime import get_runtime, get_session
from collector.state.models import SILENCE_CHECK, SILENCE_TARGET

router = APIRouter(include_in_schema=False)

HOST_TICKETS = 20
MAX_NAME_FILTER = 255


@router.get("/hosts", response_class=HTMLResponse)
def hosts(request: Request, login: LoginDep,
          session: Annotated[Session, Depends(get_session)]) -> HTMLResponse:
    """The hosts of what this login may see, worst state first, then by name."""
    runtime = get_runtime(request)
    params = request.query_params
    state = query_value(params, "status", queries.HOST_STATES)
    name = params.get("q", "").strip()[:MAX_NAME_FILTER]
    number = page_number(params.get("page"))
    conn = session.connection()
    visible, ids, picked = chosen_customers(request, conn, login.principal)
    size = runtime.settings.dashboard.page_size

    def page_of(number: int) -> tuple[list[queries.HostRow], int]:
        return queries.list_hosts(conn, customer_ids=ids, state=state, name_contains=name,
                                  limit=size, offset=(number - 1) * size)

    rows, total = page_of(number)
    if number > (last := Page(1, size, total).count):
        # past the end (the list shrank while the page was open): the last page
        number = last
        rows, total = page_of(number)
    return render(request, "dashboard/hosts.html", login, customers=list(visible.values()),
                  picked=picked, chosen_status=state or "", q=name, statuses=queries.HOST_STATES,
                  hosts=rows, page=Page(number, size, total))


@router.get("/hosts/{fqdn}", response_class=HTMLResponse)
def host(request: Request, fqdn: str, login: LoginDep,
         session: Annotated[Session, Depends(get_session)]) -> HTMLResponse:
    """One host: facts, checks with evidence, recent status changes, its tickets."""
    scope = login.principal.scope
    detail = host_detail(session=session, fqdn=fqdn, customer_id=scope)
    tickets, ticket_total = queries.host_tickets(session.connection(), host=fqdn, scope=scope,
                                                 limit=HOST_TICKETS)
    silence = next((c for c in detail.checks
                    if (c.check, c.target) == (SILENCE_CHECK, SILENCE_TARGET)), None)
    silent_since = epoch(silence.last_change_at) if detail.silent and silence else None
    state = "SILENT" if detail.silent else detail.worst_status_name
    # the worst first, as on every list of the dashboard; by name among equals
    checks = sorted(detail.checks, key=lambda c: (
        -queries.state_rank(queries.status_label(c.check, c.target, c.status)),
        c.check, c.target))
    return render(request, "dashboard/host.html", login, host=detail, checks=checks,
                  state=state,
                  silent_since=silent_since, tickets=tickets, ticket_total=ticket_total,
                  label=queries.status_label)
