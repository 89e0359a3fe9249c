"""GET /api/v1/problems: any user; a viewer sees its customer's only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from collector.people.auth import AuthRoute, PrincipalDep
from collector.runtime import get_session
from collector.state.models import Problem
from collector.state.service import list_problems

router = APIRouter(prefix="/api/v1", tags=["state"], route_class=AuthRoute)


@router.get("/problems", response_model=list[Problem])
def problems(
    session: Annotated[Session, Depends(get_session)], principal: PrincipalDep
) -> list[Problem]:
    """Every non-OK current state, host silence included: worst first, then oldest change."""
    return list_problems(session=session, customer_id=principal.scope)
