"""GET /: the overview, what the NOC watches all day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from collector.dashboard.web import LoginDep, render
from collector.runtime import get_session
from collector.state.service import list_problems

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, login: LoginDep,
             session: Annotated[Session, Depends(get_session)]) -> HTMLResponse:
    """Open problems of what this user may see."""
    problems = list_problems(session=session, customer_id=login.principal.scope)
    return render(request, "dashboard/overview.html", login, problems=problems)
