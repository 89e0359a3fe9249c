"""Who is asking: FastAPI dependencies for the read API, the ticket actions and the dashboard.

A request authenticates with ``Authorization: Bearer <API token>`` (``wkp_...``, see
``watchkeeper-collector token create``) or HTTP Basic (``user:password``). Missing or wrong
credentials answer 401 with ``WWW-Authenticate`` (the browser then asks for a login); a
valid user without the role needed answers 403 naming the role. A host token is not an
API token: it only pushes results.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.openapi.models import HTTPBase as HTTPBaseModel
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase

from collector.db import write_transaction
from collector.errors import Forbidden, NotAuthenticated
from collector.ingest.views import error_response
from collector.people.models import ADMIN, NOC, ROLES, TSE, VIEWER
from collector.people.service import (
    Principal,
    Refused,
    principal_for_password,
    principal_for_token,
    touch_token,
)
from collector.runtime import get_runtime

__all__ = [
    "ADMIN", "NOC", "ROLES", "TSE", "VIEWER", "AuthRoute", "LoginRequired", "Principal",
    "PrincipalDep", "current_principal", "require_role",
]

REALM = "watchkeeper"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8", Bearer realm="{REALM}"'


class LoginRequired(NotAuthenticated):
    """No credentials, or wrong ones: answered 401 with ``WWW-Authenticate``."""


class _Documented(SecurityBase):
    """An authentication scheme shown in the OpenAPI document; the checking is done by
    ``current_principal`` (so every failure has the collector's error shape)."""

    def __init__(self, scheme: str, description: str) -> None:
        self.model = HTTPBaseModel(scheme=scheme, description=description)
        self.scheme_name = f"{scheme}Auth"

    async def __call__(self) -> None:
        return None


_bearer = _Documented("bearer", "An API token (wkp_...) from 'watchkeeper-collector token "
                                "create'; not a host token.")
_basic = _Documented("basic", "A user name and password ('watchkeeper-collector user add "
                              "--password-stdin').")


def current_principal(
    request: Request,
    _bearer_doc: Annotated[None, Security(_bearer)],
    _basic_doc: Annotated[None, Security(_basic)],
) -> Principal:
    """FastAPI dependency: the authenticated user, or 401 (LoginRequired) naming why.

    A sync dependency: FastAPI runs it in a worker thread, so the store lookup (and the
    scrypt of a Basic password, about 50 ms) does not block the event loop.
    """
    header = request.headers.get("authorization")
    if not header:
        raise LoginRequired("no credentials: send 'Authorization: Bearer <API token>' or "
                            "HTTP Basic user:password")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    runtime = get_runtime(request)
    now = runtime.clock()
    try:
        if scheme.lower() == "bearer" and value:
            with runtime.engine.connect() as conn:
                principal, touch = principal_for_token(conn, value, now=now)
            if touch:
                with write_transaction(runtime.engine) as conn:
                    touch_token(conn, touch, now=now)
            return principal
        if scheme.lower() == "basic" and value:
            name, password = _basic_credentials(value)
            with runtime.engine.connect() as conn:
                return principal_for_password(conn, name, password)
    except Refused as exc:
        raise LoginRequired(str(exc)) from None
    raise LoginRequired("the Authorization header must be 'Bearer <API token>' or "
                        "'Basic <base64 of user:password>'")


def _basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Refused("the Basic credentials are not base64 of UTF-8 'user:password'") from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise Refused("the Basic credentials must be 'user:password'")
    return name, password


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency that returns the principal if it has one of ``roles`` (admin always may);
    otherwise 403 naming the role needed."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = {ADMIN, *roles}
    needed = " or ".join(r for r in ROLES if r in allowed)

    def dependency(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"this needs the role {needed}; user {principal.name!r} has the "
                            f"role {principal.role}")
        return principal

    return dependency


class AuthRoute(APIRoute):
    """A route whose 401 answers carry ``WWW-Authenticate`` (so a browser asks for a login).

    The routers of the protected endpoints use it: ``APIRouter(route_class=AuthRoute)``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                response = error_response(exc)
                response.headers["WWW-Authenticate"] = CHALLENGE
                return response

        return handle
