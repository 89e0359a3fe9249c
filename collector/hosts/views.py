"""GET /api/v1/hosts and /api/v1/hosts/{host}: any user; a viewer sees its customer's only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from collector.hosts.models import HostDetail, HostSummary
from collector.hosts.service import host_detail, list_hosts
from collector.people.auth import AuthRoute, PrincipalDep
from collector.runtime import get_session

router = APIRouter(prefix="/api/v1/hosts", tags=["hosts"], route_class=AuthRoute)
SessionDep = Annotated[Session, Depends(get_session)]


@router.get("", response_model=list[HostSummary])
def hosts(session: SessionDep, principal: PrincipalDep) -> list[HostSummary]:
    """Every host with its worst status, counts by status and silence flag."""
    return list_hosts(session=session, customer_id=principal.scope)


@router.get("/{host}", response_model=HostDetail)
def host(host: str, session: SessionDep, principal: PrincipalDep) -> HostDetail:
    """One host: every check's current state and the recent status changes (404 for a host
    the user may not see, as for an unknown one)."""
    return host_detail(session=session, fqdn=host, customer_id=principal.scope)
