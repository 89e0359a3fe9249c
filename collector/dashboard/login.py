"""GET/POST /login, POST /logout: the dashboard's login with the collector's users.

A wrong name or password answers 401 with the same words for both (nothing tells which
was wrong); the password check (scrypt) runs in a worker thread, not on the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from collector.dashboard.sessions import end_session, start_session
from collector.dashboard.web import (
    COOKIE,
    LoginDep,
    read_form,
    read_login_form,
    redirect,
    render,
    safe_next,
)
from collector.db import write_transaction
from collector.people.service import Principal, Refused, principal_for_password
from collector.runtime import Runtime, get_runtime

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    """The login form."""
    return render(request, "dashboard/login.html", None, next=safe_next(next), error=None,
                  user_name="")


@router.post("/login", response_class=HTMLResponse)
async def log_in(request: Request, runtime: RuntimeDep) -> Response:
    """Check the name and password; on success set the session cookie and go on."""
    fields = await read_login_form(request)
    name, password = fields.get("name", "").strip(), fields.get("password", "")
    target = safe_next(fields.get("next"))
    try:
        principal = await run_in_threadpool(_authenticate, runtime, name, password)
    except Refused as exc:
        return render(request, "dashboard/login.html", None, status=401, next=target,
                      error=str(exc), user_name=name)
    settings = runtime.settings.dashboard
    with write_transaction(runtime.engine) as conn:
        token = start_session(conn, principal, now=runtime.clock(),
                              max_age=settings.session_max)
    response = redirect(target)
    secure = settings.secure_cookie
    if secure is None:
        secure = runtime.settings.server.tls_cert_file is not None
    response.set_cookie(COOKIE, token, max_age=int(settings.session_max), httponly=True,
                        samesite="lax", secure=secure, path="/")
    return response


def _authenticate(runtime: Runtime, name: str, password: str) -> Principal:
    if not name or not password:
        raise Refused("wrong user name or password")
    with runtime.engine.connect() as conn:
        return principal_for_password(conn, name, password)


@router.post("/logout")
async def log_out(request: Request, login: LoginDep, runtime: RuntimeDep) -> Response:
    """End this login (the session row goes) and clear the cookie."""
    await read_form(request, login)
    token = request.cookies.get(COOKIE, "")
    with write_transaction(runtime.engine) as conn:
        end_session(conn, token)
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response
