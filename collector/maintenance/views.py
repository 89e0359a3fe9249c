"""/api/v1/maintenance: create (admin, tse), list and read (any user; a viewer sees its
customer's windows only), delete (admin, tse)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select

from collector.db import write_transaction
from collector.errors import NotFound
from collector.hosts.models import Customer
from collector.maintenance import service
from collector.people.auth import TSE, AuthRoute, Principal, PrincipalDep, require_role
from collector.runtime import Runtime, get_runtime
from collector.timefmt import iso, iso_or_none

router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"], route_class=AuthRoute)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
WorkerDep = Annotated[Principal, Depends(require_role(TSE))]


class WindowIn(BaseModel):
    """A new window: a customer's, one host's, or one check's of one host."""

    model_config = ConfigDict(extra="forbid")

    customer: str = Field(min_length=1)
    host: str | None = Field(default=None, description="only this host (FQDN) of the customer")
    check: str | None = Field(default=None, description="only this check of the host")
    starts_at: AwareDatetime = Field(description="first start, ISO 8601 with a UTC offset")
    ends_at: AwareDatetime = Field(description="first end (exclusive)")
    recurrence: Literal["once", "daily", "weekly"] = "once"
    timezone: str | None = Field(default=None, description=(
        "IANA zone whose wall-clock time a daily or weekly window keeps; default: the "
        "customer's business calendar's"))
    until: AwareDatetime | None = Field(default=None, description=(
        "the last time a repetition may start"))
    reason: str = Field(min_length=1)


class OccurrenceView(BaseModel):
    starts_at: str
    ends_at: str
    active: bool


class WindowView(BaseModel):
    """A window, with the occurrence covering now or else the next one (null when over)."""

    id: int
    customer: str
    host: str | None
    check: str | None
    scope: str
    starts_at: str
    ends_at: str
    recurrence: str
    timezone: str
    until: str | None
    reason: str
    created_by: str
    created_at: str
    occurrence: OccurrenceView | None


def window_view(window: service.Window, now: float) -> WindowView:
    """The API shape of a window at ``now``."""
    span = window.upcoming(now)
    occurrence = None if span is None else OccurrenceView(
        starts_at=iso(span[0]), ends_at=iso(span[1]), active=span[0] <= now)
    return WindowView(
        id=window.id, customer=window.customer, host=window.host, check=window.check,
        scope=window.scope, starts_at=iso(window.starts_at), ends_at=iso(window.ends_at),
        recurrence=window.recurrence, timezone=window.timezone,
        until=iso_or_none(window.until), reason=window.reason, created_by=window.created_by,
        created_at=iso(window.created_at), occurrence=occurrence)


@router.post("", response_model=WindowView, status_code=201)
def create(body: WindowIn, runtime: RuntimeDep, principal: WorkerDep) -> WindowView:
    """Add a window; 422 naming the field that is wrong."""
    now = runtime.clock()
    timezone = body.timezone or runtime.policy.calendar_for(body.customer).timezone
    with write_transaction(runtime.engine) as conn:
        window_id = service.create_window(
            conn, customer=body.customer, host=body.host, check=body.check,
            starts_at=body.starts_at.timestamp(), ends_at=body.ends_at.timestamp(),
            recurrence=body.recurrence, timezone=timezone,
            until=None if body.until is None else body.until.timestamp(),
            reason=body.reason, created_by=principal.name, now=now,
            known_customers=runtime.settings.customers.keys())
        window = service.get_window(conn, window_id)
    return window_view(window, now)


@router.get("", response_model=list[WindowView])
def windows(
    runtime: RuntimeDep, principal: PrincipalDep,
    customer: Annotated[str | None, Query(description="only this customer's windows")] = None,
    active: Annotated[bool, Query(description="only windows covering now")] = False,
) -> list[WindowView]:
    """Windows by customer and start; a viewer gets its own customer's only."""
    now = runtime.clock()
    with runtime.engine.connect() as conn:
        customer_id = principal.scope
        if customer is not None:
            named = conn.scalar(select(Customer.id).where(Customer.name == customer))
            if named is None or not principal.can_see(named):
                raise NotFound(f"no customer {customer!r}")
            customer_id = named
        found = service.list_windows(conn, customer_id=customer_id,
                                     active_at=now if active else None)
    return [window_view(w, now) for w in found]


@router.get("/{window_id}", response_model=WindowView)
def window(window_id: int, runtime: RuntimeDep, principal: PrincipalDep) -> WindowView:
    """One window (404 for one of a customer the user may not see, as for an unknown one)."""
    with runtime.engine.connect() as conn:
        found = service.get_window(conn, window_id)
    if not principal.can_see(found.customer_id):
        raise NotFound(f"no maintenance window {window_id}")
    return window_view(found, runtime.clock())


@router.delete("/{window_id}", response_model=WindowView)
def remove(window_id: int, runtime: RuntimeDep, principal: WorkerDep) -> WindowView:
    """Delete a window at once (the audit log records who); the deleted window is returned."""
    now = runtime.clock()
    with write_transaction(runtime.engine) as conn:
        deleted = service.delete_window(conn, window_id, actor=principal.name, now=now)
    return window_view(deleted, now)
