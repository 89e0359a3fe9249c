"""Dashboard page: maintenance windows, active now, upcoming and recently over.

Everyone sees the windows of the customers they may see (a viewer: its own). A TSE or
admin creates a window from the page's form (start and end are read in the window's time
zone unless they carry an offset) and deletes one; both run collector.maintenance.service
as the API does. A refused window comes back with 422, the error naming the field, and
everything typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from collector.dashboard.queries import customers
from collector.dashboard.sessions import Login
from collector.dashboard.web import (
    LoginDep,
    may_work_tickets,
    query_value,
    read_form,
    redirect,
    render,
)
from collector.db import write_transaction
from collector.errors import Forbidden, NotFound
from collector.maintenance.models import ONCE, RECURRENCES
from collector.maintenance.service import (
    Window,
    WindowError,
    create_window,
    delete_window,
    get_window,
    list_windows,
    zone_named,
)
from collector.runtime import Runtime, get_runtime

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

RECENT_PAST = 20  # windows over already, the latest first
FIELDS = ("customer", "host", "check", "starts_at", "ends_at", "recurrence", "timezone",
          "until", "reason")


@dataclass(frozen=True, slots=True)
class Shown:
    """A window with the occurrence the page shows: the current one, else the next."""

    window: Window
    starts_at: float | None
    ends_at: float | None


@dataclass(slots=True)
class Windows:
    active: list[Shown] = field(default_factory=list)
    upcoming: list[Shown] = field(default_factory=list)
    past: list[Shown] = field(default_factory=list)
    older: int = 0  # windows over longer ago than the recent ones shown


def sort_windows(windows: list[Window], now: float) -> Windows:
    """Active now (ending first), upcoming (starting first), and the latest ones over."""
    found = Windows()
    for window in windows:
        span = window.upcoming(now)
        if span is None:
            found.past.append(Shown(window, None, None))
        elif span[0] <= now:
            found.active.append(Shown(window, *span))
        else:
            found.upcoming.append(Shown(window, *span))
    found.active.sort(key=lambda s: (s.ends_at or 0.0, s.window.id))
    found.upcoming.sort(key=lambda s: (s.starts_at or 0.0, s.window.id))
    found.past.sort(key=lambda s: (_last_end(s.window), s.window.id), reverse=True)
    found.older = max(0, len(found.past) - RECENT_PAST)
    del found.past[RECENT_PAST:]
    return found


def _last_end(window: Window) -> float:
    return window.ends_at if window.recurrence == ONCE or window.until is None else window.until


def local(at: float | None, timezone: str) -> str:
    """An instant as the wall-clock time of the window's zone: ``2026-11-28 02:00``."""
    if at is None:
        return ""
    return datetime.fromtimestamp(at, zone_named(timezone)).strftime("%Y-%m-%d %H:%M")


@router.get("/maintenance", response_class=HTMLResponse)
def maintenance_page(request: Request, login: LoginDep, runtime: RuntimeDep) -> HTMLResponse:
    """The windows of what the login may see; the form to add one for a TSE or admin."""
    return _page(request, login, runtime)


@router.post("/maintenance", response_class=HTMLResponse)
async def create(request: Request, login: LoginDep, runtime: RuntimeDep) -> Response:
    """Add a window from the form; the page again with 422 when it is refused."""
    _may_change(login)
    fields = await read_form(request, login)
    typed = {name: fields.get(name, "") for name in FIELDS}
    try:
        window_id = await run_in_threadpool(_create, runtime, login, typed)
    except WindowError as exc:
        return await run_in_threadpool(_page, request, login, runtime, typed=typed,
                                       error=exc)
    return redirect(f"/maintenance?done=created&window={window_id}")


@router.post("/maintenance/{window_id}/delete")
async def delete(window_id: int, request: Request, login: LoginDep,
                 runtime: RuntimeDep) -> Response:
    """Delete a window at once (the audit log records who)."""
    _may_change(login)
    await read_form(request, login)
    await run_in_threadpool(_delete, runtime, login, window_id)
    return redirect(f"/maintenance?done=deleted&window={window_id}")


def _may_change(login: Login) -> None:
    if not may_work_tickets(login):
        raise Forbidden(f"role {login.principal.role} may not change maintenance windows: "
                        "an admin or tse may")


def _create(runtime: Runtime, login: Login, typed: dict[str, str]) -> int:
    customer = typed["customer"].strip()
    if not customer:
        raise WindowError("customer", "choose the customer the window is for")
    timezone = typed["timezone"].strip() or runtime.policy.calendar_for(customer).timezone
    zone = zone_named(timezone)
    recurrence = typed["recurrence"].strip() or ONCE
    until = typed["until"].strip()
    with write_transaction(runtime.engine) as conn:
        return create_window(
            conn, customer=customer, host=typed["host"].strip() or None,
            check=typed["check"].strip() or None,
            starts_at=_moment(typed["starts_at"], "starts_at", zone),
            ends_at=_moment(typed["ends_at"], "ends_at", zone), recurrence=recurrence,
            timezone=timezone, until=_moment(until, "until", zone) if until else None,
            reason=typed["reason"], created_by=login.principal.name, now=runtime.clock(),
            known_customers=runtime.settings.customers.keys())


def _moment(value: str, name: str, zone: ZoneInfo) -> float:
    """A date and time from the form, read in ``zone`` unless it carries an offset."""
    text = value.strip()
    if not text:
        raise WindowError(name, "a date and time is required")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(name, f"expected a date and time such as 2026-11-28 02:00, "
                          f"not {text!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return at.timestamp()


def _delete(runtime: Runtime, login: Login, window_id: int) -> None:
    with write_transaction(runtime.engine) as conn:
        window = get_window(conn, window_id)
        if not login.principal.can_see(window.customer_id):
            raise NotFound(f"no maintenance window {window_id}")
        delete_window(conn, window_id, actor=login.principal.name, now=runtime.clock())


def _page(request: Request, login: Login, runtime: Runtime, *,
          typed: dict[str, str] | None = None, error: WindowError | None = None) -> HTMLResponse:
    now = runtime.clock()
    scope = login.principal.scope
    with runtime.engine.connect() as conn:
        visible = customers(conn, scope=scope)
        names = [name for _, name in visible]
        picked = query_value(request.query_params, "customer", tuple(names))
        customer_id = scope if picked is None else {n: i for i, n in visible}[picked]
        windows = sort_windows(list_windows(conn, customer_id=customer_id), now)
    choices = sorted({*names, *runtime.settings.customers.keys()}) if scope is None else names
    return render(request, "dashboard/maintenance.html", login,
                  status=422 if error else 200, windows=windows, customers=names,
                  picked=picked or "", choices=choices, recurrences=RECURRENCES,
                  typed=typed or {**dict.fromkeys(FIELDS, ""), "recurrence": ONCE,
                                  "customer": picked or ""},
                  error=error, flash=None if error else _done(request), local=local)


def _done(request: Request) -> str | None:
    done = request.query_params.get("done")
    number = request.query_params.get("window", "")
    what = f"Maintenance window {number}" if number.isdigit() else "Maintenance window"
    return {"created": f"{what} created.", "deleted": f"{what} deleted."}.get(done or "")
