"""GET /api/v1/hosts and /api/v1/hosts/{host}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from collector.hosts.models import HostDetail, HostSummary
from collector.hosts.service import host_detail, list_hosts
from collector.runtime import get_session

router = APIRouter(prefix="/api/v1/hosts", tags=["hosts"])
SessionDep = Annotated[Session, Depends(get_session)]


@router.get("", response_model=list[HostSummary])
def hosts(session: SessionDep) -> list[HostSummary]:
    """Every host with its worst status, counts by status and silence flag."""
    return list_hosts(session=session)


@router.get("/{host}", response_model=HostDetail)
def host(host: str, session: SessionDep) -> HostDetail:
    """One host: every check's current state and the recent status changes."""
    return host_detail(session=session, fqdn=host)
