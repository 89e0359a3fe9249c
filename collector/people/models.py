"""Users, their roles and API tokens."""

from __future__ import annotations

from sqlalchemy import Boolean, Double, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base

ADMIN, TSE, NOC, VIEWER = "admin", "tse", "noc", "viewer"
ROLES = (ADMIN, TSE, NOC, VIEWER)


class User(Base):
    """A person (or a system) using the API or the dashboard.

    admin: everything; tse: works tickets; noc: reads everything; viewer: reads one
    customer (``customer_id``) and nothing else.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Double)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A bearer token of a user; only its sha256 is stored (as for host tokens)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float | None] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)


class WebSession(Base):
    """A dashboard login: the browser holds the token in a cookie, the store its sha256.

    ``csrf`` is the token every form of the session must carry (a page of another site
    cannot read it). A session ends at logout, after ``dashboard.session_idle`` without a
    request, or ``dashboard.session_max`` after the login, whichever comes first.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double)
    seen_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
