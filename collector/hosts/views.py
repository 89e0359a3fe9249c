"""GET /api/v1/hosts and /api/v1/hosts/{host}: any user; a viewer sees its customer's only.
POST /api/v1/enroll: a host enrolls itself with an enrollment secret (no user)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from collector.errors import NotAuthenticated
from collector.hosts import enrollment
from collector.hosts.models import HostDetail, HostSummary
from collector.hosts.service import host_detail, list_hosts
from collector.ingest.views import error_response
from collector.people.auth import AuthRoute, PrincipalDep
from collector.runtime import get_runtime, get_session

SessionDep = Annotated[Session, Depends(get_session)]
_hosts = APIRouter(prefix="/api/v1/hosts", tags=["hosts"], route_class=AuthRoute)
# What the app factory includes: the hosts' read API and the enrollment route, which is
# not behind a user's login (the secret is its credential).
router = APIRouter()


@_hosts.get("", response_model=list[HostSummary])
def hosts(session: SessionDep, principal: PrincipalDep) -> list[HostSummary]:
    """Every host with its worst status, counts by status and silence flag."""
    return list_hosts(session=session, customer_id=principal.scope)


@_hosts.get("/{host}", response_model=HostDetail)
def host(host: str, session: SessionDep, principal: PrincipalDep) -> HostDetail:
    """One host: every check's current state and the recent status changes (404 for a host
    the user may not see, as for an unknown one)."""
    return host_detail(session=session, fqdn=host, customer_id=principal.scope)


@router.post(enrollment.ENROLL_PATH, tags=["hosts"], status_code=201,
             response_model=enrollment.EnrollAnswer)
def enroll(
    body: enrollment.EnrollRequest, request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> enrollment.EnrollAnswer | JSONResponse:
    """Enroll a host with an enrollment secret; its push token is in the answer, once.

    401 for no or a wrong secret, 403 for another customer's secret or when enrollment by
    secret is off, 409 when the host has a token already.
    """
    runtime = get_runtime(request)
    client = request.client.host if request.client else "unknown"
    try:
        return enrollment.enroll_with_secret(
            engine=runtime.engine, settings=runtime.settings.enrollment,
            authorization=authorization, request=body, client=client, now=runtime.clock())
    except NotAuthenticated as exc:
        answer = error_response(exc)
        answer.headers["WWW-Authenticate"] = 'Bearer realm="watchkeeper enrollment"'
        return answer


router.include_router(_hosts)
