"""What every dashboard page shares: the login, forms, rendering, paging, time formatting.

A page is a GET route that takes ``LoginDep`` (no login: the browser is sent to
``/login``) and returns ``render(request, template, login, ...)``. Its template extends
``dashboard/base.html`` and puts what changes in ``{% block live %}``: the page's script
asks for the same URL every ``dashboard.refresh`` seconds with ``X-Live: 1`` and gets that
block alone, which replaces the old one in place (forms stay outside the block, so nothing
a user is typing is lost). Every answer carries ``X-Server-Time``, so countdowns in the
browser run on the collector's clock, not the workstation's.

A form posts ``application/x-www-form-urlencoded`` with the session's ``csrf`` field
(``read_form`` checks it) and answers with a redirect (post/redirect/get).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from collector.dashboard.sessions import SEEN_RESOLUTION, Login, session_login, touch_session
from collector.db import write_transaction
from collector.errors import CollectorError, Forbidden, InvalidRequest
from collector.people.models import ADMIN, NOC, TSE
from collector.people.service import Refused
from collector.runtime import get_runtime

COOKIE = "wk_session"
MAX_FORM_BYTES = 64 * 1024

# Pages and fragments are never cached; scripts and styles come from this origin only.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class LoginNeeded(Exception):
    """No valid login cookie: a page redirects to /login, a live refresh answers 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(InvalidRequest):
    """A filter, page number or form field the dashboard does not understand."""


class BadForm(Forbidden):
    """A form without the session's CSRF token, or from another site."""


# ---------------------------------------------------------------------------------- login


def page_login(request: Request) -> Login:
    """FastAPI dependency: the dashboard login of this request, or LoginNeeded.

    Sync on purpose: FastAPI runs it in a worker thread (a store read, sometimes a write).
    """
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginNeeded("not logged in")
    runtime = get_runtime(request)
    now = runtime.clock()
    settings = runtime.settings.dashboard
    try:
        with runtime.engine.connect() as conn:
            login = session_login(conn, token, now=now, idle=settings.session_idle)
    except Refused as exc:
        raise LoginNeeded(str(exc)) from None
    if now - login.seen_at >= SEEN_RESOLUTION:
        with write_transaction(runtime.engine) as conn:
            touch_session(conn, login.session_id, now=now)
    return login


LoginDep = Annotated[Login, Depends(page_login)]


def may_work_tickets(login: Login) -> bool:
    """Reply, comment, change priority, resolve: a TSE or an admin."""
    return login.principal.role in (TSE, ADMIN)


def may_see_everything(login: Login) -> bool:
    """Staff (admin, TSE, NOC) see every customer and internal notes; a viewer does not."""
    return login.principal.role in (ADMIN, TSE, NOC)


def login_needed_response(request: Request, exc: LoginNeeded) -> Response:
    """A page: 303 to the login page (coming back here after). A live refresh or a form:
    401, and the page's script sends the browser to the login page itself."""
    if request.method == "GET" and request.headers.get("x-live") != "1":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303,
                                headers=SECURITY_HEADERS)
    return Response(f"login needed: {exc.reason}\n", status_code=401,
                    media_type="text/plain", headers=SECURITY_HEADERS)


def safe_next(value: str | None) -> str:
    """Where to go after the login: a path on this collector only (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


# ---------------------------------------------------------------------------------- forms


async def read_form(request: Request, login: Login) -> dict[str, str]:
    """The fields of a posted form (one value each), after checking that it comes from a
    page of this dashboard: the session's CSRF token, and the Origin when the browser
    sends one. A repeated field keeps its last value."""
    origin = request.headers.get("origin")
    if origin and origin != _own_origin(request):
        raise BadForm(f"a form from {origin} may not act on this collector")
    fields = await _fields(request)
    if not hmac.compare_digest(fields.get("csrf", ""), login.csrf):
        raise BadForm("the form has no valid CSRF token (an old page or another login): "
                      "reload the page and send it again")
    return fields


async def read_login_form(request: Request) -> dict[str, str]:
    """The login form's fields (there is no session yet, so no CSRF token)."""
    origin = request.headers.get("origin")
    if origin and origin != _own_origin(request):
        raise BadForm(f"a login form from {origin} is refused")
    return await _fields(request)


async def _fields(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest(f"a form must be sent as application/x-www-form-urlencoded, "
                         f"not {kind or 'nothing'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None
    return {name: values[-1] for name, values in parsed.items()}


def _own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def redirect(url: str) -> RedirectResponse:
    """Post/redirect/get: the answer to a form that did its work."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


# ---------------------------------------------------------------------------------- paging


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a long list: 1-based ``number``, rows per page, rows in all."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def count(self) -> int:
        """How many pages there are (at least one, even for an empty list)."""
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def page_number(value: str | None) -> int:
    """The ``page`` query parameter: a whole number from 1; BadRequest naming it otherwise."""
    if value is None or value == "":
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BadRequest(f"page must be a whole number from 1, not {value!r}")
    return int(value)


def with_query(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params: dict[str, str] = dict(request.query_params)
    for name, value in changes.items():
        if value is None or value == "":
            params.pop(name, None)
        else:
            params[name] = str(value)
    query = urlencode(sorted(params.items()))
    return request.url.path + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------------- rendering


def make_templates() -> jinja2.Environment:
    """The page templates; autoescape on, so every user string is escaped. The shared
    macros (``dashboard/macros.html``) are the global ``ui`` in every template."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("collector", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = age
    env.filters["utc"] = utc
    env.filters["epoch"] = epoch
    env.globals["ui"] = env.get_template("dashboard/macros.html").module
    return env


def render(request: Request, name: str, login: Login | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """The page ``name``; only its ``live`` block when the page's script asks (X-Live)."""
    runtime = get_runtime(request)
    now = runtime.clock()
    env: jinja2.Environment = request.app.state.templates
    template = env.get_template(name)
    values: dict[str, Any] = {
        "request": request,
        "login": login,
        "user": login.principal if login else None,
        "csrf": login.csrf if login else "",
        "may_work": login is not None and may_work_tickets(login),
        "staff": login is not None and may_see_everything(login),
        "now": now,
        "refresh_ms": int(runtime.settings.dashboard.refresh * 1000),
        "path": request.url.path,
        "url": lambda **changes: with_query(request, **changes),
        **context,
    }
    if request.headers.get("x-live") == "1" and "live" in template.blocks:
        html = "".join(template.blocks["live"](template.new_context(values)))
    else:
        html = template.render(values)
    headers = {**SECURITY_HEADERS, "X-Server-Time": f"{now:.3f}"}
    return HTMLResponse(html, status_code=status, headers=headers)


def render_error(request: Request, exc: CollectorError) -> Response:
    """A collector error met by a page: the same status, as a page that says what is wrong."""
    env: jinja2.Environment = request.app.state.templates
    html = env.get_template("dashboard/error.html").render(
        status=exc.status_code, detail=exc.detail, request=request)
    return HTMLResponse(html, status_code=exc.status_code, headers=SECURITY_HEADERS)


def wants_html(request: Request) -> bool:
    """True for a dashboard page (not the API, not a script asking for JSON)."""
    path = request.url.path
    if path.startswith("/api/") or path in ("/metrics", "/healthz"):
        return False
    return request.headers.get("x-live") == "1" or "text/html" in request.headers.get(
        "accept", "")


# ---------------------------------------------------------------------------------- time


def age(seconds: float | None) -> str:
    """A duration as people read it at a glance: ``45s``, ``12m 05s``, ``3h 07m``, ``2d 4h``."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def utc(value: float | str | None, now: float | None = None) -> str:
    """A moment in UTC: ``09:12:03 UTC`` on the day of ``now``, ``Nov 25 09:12 UTC`` before."""
    if value is None:
        return ""
    at = datetime.fromtimestamp(epoch(value), UTC)
    if now is not None and at.date() == datetime.fromtimestamp(now, UTC).date():
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%Y-%m-%d %H:%M UTC")


def epoch(value: float | str) -> float:
    """Epoch seconds from epoch seconds or from an ISO 8601 text (as the API writes them)."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def query_value(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    """A filter parameter that must be one of ``allowed`` (empty: no filter)."""
    value = params.get(name, "")
    if value == "":
        return None
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
