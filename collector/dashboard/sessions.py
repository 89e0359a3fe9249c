"""Dashboard logins: a random token in an HttpOnly cookie, its sha256 in ``web_sessions``.

A session is checked against its user on every request, so disabling a user or removing
it ends its logins at once. ``seen_at`` is written at most once a minute per session (an
open page asks every few seconds; that must not become a write every few seconds).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, delete, or_, select, update

from collector.people.models import User, WebSession
from collector.people.service import Principal, Refused, principal_from_row

SESSIONS = cast(Table, WebSession.__table__)
USERS = cast(Table, User.__table__)

SEEN_RESOLUTION = 60.0


@dataclass(frozen=True, slots=True)
class Login:
    """A valid dashboard session: who, the CSRF token its forms carry, and its row."""

    principal: Principal
    csrf: str
    session_id: int
    seen_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, principal: Principal, *, now: float, max_age: float) -> str:
    """A new session for ``principal``; returns the token for the cookie (shown only here)."""
    token = secrets.token_urlsafe(32)
    conn.execute(SESSIONS.insert().values(
        user_id=principal.user_id, token_hash=_hash(token), csrf=secrets.token_urlsafe(32),
        created_at=now, seen_at=now, expires_at=now + max_age,
    ))
    return token


def session_login(conn: Connection, token: str, *, now: float, idle: float) -> Login:
    """The login a cookie's token stands for; Refused when unknown, ended, idle too long,
    or its user disabled."""
    row = conn.execute(
        select(SESSIONS.c.id.label("session_id"), SESSIONS.c.csrf, SESSIONS.c.seen_at,
               SESSIONS.c.expires_at, USERS.c.id, USERS.c.name, USERS.c.role,
               USERS.c.customer_id, USERS.c.disabled)
        .join(USERS, USERS.c.id == SESSIONS.c.user_id)
        .where(SESSIONS.c.token_hash == _hash(token))
    ).mappings().first()
    if row is None:
        raise Refused("not logged in, or logged out")
    if row["expires_at"] <= now or row["seen_at"] + idle <= now:
        raise Refused("the login has expired")
    return Login(principal=principal_from_row(row), csrf=row["csrf"], session_id=row["session_id"],
                 seen_at=row["seen_at"])


def touch_session(conn: Connection, session_id: int, *, now: float) -> None:
    """Mark a session used at ``now`` (its idle clock starts again)."""
    conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(seen_at=now))


def end_session(conn: Connection, token: str) -> None:
    """Log out: the session's row goes (the cookie is worthless from now on)."""
    conn.execute(delete(SESSIONS).where(SESSIONS.c.token_hash == _hash(token)))


def prune_sessions(conn: Connection, *, now: float, idle: float) -> int:
    """Remove ended sessions; returns how many."""
    result = conn.execute(delete(SESSIONS).where(
        or_(SESSIONS.c.expires_at <= now, SESSIONS.c.seen_at <= now - idle)))
    return int(result.rowcount or 0)
