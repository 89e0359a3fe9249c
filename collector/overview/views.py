"""GET /: a read-only overview page (hosts with their worst status, open problems)."""

from __future__ import annotations

from typing import Annotated

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from collector.hosts.service import list_hosts
from collector.people.auth import AuthRoute, PrincipalDep
from collector.runtime import get_runtime, get_session
from collector.state.service import list_problems
from collector.timefmt import iso

router = APIRouter(include_in_schema=False, route_class=AuthRoute)


def make_templates() -> jinja2.Environment:
    """The page templates; autoescape on, so every user string is escaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("collector", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, session: Annotated[Session, Depends(get_session)], principal: PrincipalDep
) -> HTMLResponse:
    """Hosts and problems, refreshed by the browser every 15 seconds; any user (the browser
    asks for a login), a viewer sees its customer's only."""
    runtime = get_runtime(request)
    template = request.app.state.templates.get_template("overview.html")
    html = template.render(
        hosts=list_hosts(session=session, customer_id=principal.scope),
        problems=list_problems(session=session, customer_id=principal.scope),
        generated_at=iso(runtime.clock()),
    )
    return HTMLResponse(html)
