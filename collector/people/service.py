"""The rules for people: users, roles, passwords, API tokens, and who a credential belongs to.

Passwords are stored as scrypt hashes with a per-user salt; API tokens are 32 random bytes
(``wkp_`` + urlsafe base64), shown once and stored as their sha256 (as host tokens are: a
random token of that length needs no slow hash, and the fast hash allows an index).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, or_, select, update

from collector.errors import InvalidRequest, NotFound
from collector.hosts.models import Customer
from collector.people.models import ROLES, VIEWER, ApiToken, User

USERS = cast(Table, User.__table__)
TOKENS = cast(Table, ApiToken.__table__)
CUSTOMERS = cast(Table, Customer.__table__)

TOKEN_PREFIX = "wkp_"
TOKEN_BYTES = 32
LAST_USED_RESOLUTION = 60.0  # last_used_at is written at most once a minute per token
MAX_PASSWORD = 1024

# scrypt: 16 MiB and about 50 ms per hash; the parameters are stored with each hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
_SCHEME = "scrypt"


class PeopleError(InvalidRequest):
    """A user or token request that cannot be done; the message names what is wrong."""


class UserExists(PeopleError):
    status_code = 409
    code = "conflict"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user with a role; a viewer sees only ``customer_id``."""

    user_id: int
    name: str
    role: str
    customer_id: int | None  # set for a viewer: the only customer it may see

    def can_see(self, customer_id: int) -> bool:
        """True when this user may read things of ``customer_id``."""
        return self.role != VIEWER or self.customer_id == customer_id

    @property
    def scope(self) -> int | None:
        """The one customer this user may see (a viewer), or None for every customer."""
        return self.customer_id if self.role == VIEWER else None


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: str
    customer: str | None
    email: str | None
    disabled: bool
    has_password: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    user: str
    name: str
    created_at: float
    expires_at: float | None
    last_used_at: float | None


# ----------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash urlsafe base64) for a new password."""
    _check_password(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join((_SCHEME, str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P),
                     _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; constant time in the comparison.

    With no stored hash (a user without a password) the same work is done, so the answer
    takes as long for an unknown or password-less user as for a wrong password.
    """
    if stored is None or len(password) > MAX_PASSWORD:
        _scrypt(password[:MAX_PASSWORD], b"\0" * _SALT_BYTES, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = _scrypt(password, base64.urlsafe_b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=_HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise PeopleError("password: must be at least 8 characters")
    if len(password) > MAX_PASSWORD:
        raise PeopleError(f"password: must be at most {MAX_PASSWORD} characters")


# ----------------------------------------------------------------------------- users


def create_user(
    conn: Connection, *, name: str, role: str, customer: str | None = None,
    email: str | None = None, password: str | None = None,
    known_customers: Collection[str] = (), now: float,
) -> int:
    """Add a user; return its id.

    A viewer needs ``customer`` (an enrolled customer, or one named in ``known_customers``,
    the configured ``[customers.*]``, which is then created); other roles refuse one.
    """
    name = name.strip()
    if not name or len(name) > 128 or ":" in name:
        raise PeopleError("name: must be 1 to 128 characters without ':'")
    if role not in ROLES:
        raise PeopleError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
    customer_id: int | None = None
    if role == VIEWER:
        if not customer:
            raise PeopleError("customer: a viewer needs the customer it may see")
        customer_id = _customer_id(conn, customer, known_customers, now)
    elif customer:
        raise PeopleError(f"customer: only a viewer is bound to a customer, not a {role}")
    password_hash = None if password is None else hash_password(password)
    if conn.execute(select(USERS.c.id).where(USERS.c.name == name)).first() is not None:
        raise UserExists(f"name: a user {name!r} exists already")
    inserted = conn.execute(USERS.insert().values(
        name=name, role=role, customer_id=customer_id, email=email,
        password_hash=password_hash, created_at=now, disabled=False,
    ).returning(USERS.c.id)).scalar_one()
    return int(inserted)


def _customer_id(conn: Connection, name: str, known: Collection[str], now: float) -> int:
    found = conn.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.name == name)).scalar()
    if found is not None:
        return int(found)
    if name not in known:
        raise PeopleError(f"customer: no customer {name!r} (neither enrolled nor configured)")
    return int(conn.execute(CUSTOMERS.insert().values(name=name, created_at=now)
                            .returning(CUSTOMERS.c.id)).scalar_one())


def user_id(conn: Connection, name: str) -> int:
    """The id of the user named ``name``; NotFound naming it."""
    found = conn.execute(select(USERS.c.id).where(USERS.c.name == name)).scalar()
    if found is None:
        raise NotFound(f"user: no user {name!r}")
    return int(found)


def set_disabled(conn: Connection, name: str, *, disabled: bool = True) -> None:
    """Disable (or enable again) a user: its tokens and password stop working at once."""
    conn.execute(update(USERS).where(USERS.c.id == user_id(conn, name))
                 .values(disabled=disabled))


def set_password(conn: Connection, name: str, password: str) -> None:
    """Give a user a new password."""
    conn.execute(update(USERS).where(USERS.c.id == user_id(conn, name))
                 .values(password_hash=hash_password(password)))


def list_users(conn: Connection) -> list[UserRow]:
    """Every user, by name."""
    rows = conn.execute(
        select(USERS, CUSTOMERS.c.name.label("customer_name"))
        .select_from(USERS.outerjoin(CUSTOMERS, CUSTOMERS.c.id == USERS.c.customer_id))
        .order_by(USERS.c.name)
    ).mappings()
    return [UserRow(id=r["id"], name=r["name"], role=r["role"], customer=r["customer_name"],
                    email=r["email"], disabled=bool(r["disabled"]),
                    has_password=r["password_hash"] is not None, created_at=r["created_at"])
            for r in rows]


# ----------------------------------------------------------------------------- tokens


def hash_token(token: str) -> str:
    """The stored form of an API token: sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    conn: Connection, *, user: str, name: str | None = None, expires_at: float | None = None,
    now: float,
) -> tuple[int, str]:
    """A new API token for ``user``: (its id, the token). Only the hash is stored."""
    owner = user_id(conn, user)
    if expires_at is not None and expires_at <= now:
        raise PeopleError("expires: must be in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token_id = conn.execute(TOKENS.insert().values(
        user_id=owner, name=(name or "api")[:128], token_hash=hash_token(token),
        created_at=now, expires_at=expires_at, last_used_at=None,
    ).returning(TOKENS.c.id)).scalar_one()
    return int(token_id), token


def revoke_token(conn: Connection, token_id: int) -> None:
    """Delete a token: it stops working at once. NotFound naming the id."""
    gone = conn.execute(delete(TOKENS).where(TOKENS.c.id == token_id)).rowcount
    if not gone:
        raise NotFound(f"token: no token with id {token_id}")


def list_tokens(conn: Connection, *, user: str | None = None) -> list[TokenRow]:
    """Every token (of ``user``, if given), by id; never the token itself."""
    query = (select(TOKENS, USERS.c.name.label("user_name"))
             .join(USERS, USERS.c.id == TOKENS.c.user_id).order_by(TOKENS.c.id))
    if user is not None:
        query = query.where(TOKENS.c.user_id == user_id(conn, user))
    return [TokenRow(id=r["id"], user=r["user_name"], name=r["name"],
                     created_at=r["created_at"], expires_at=r["expires_at"],
                     last_used_at=r["last_used_at"])
            for r in conn.execute(query).mappings()]


# ----------------------------------------------------------------------------- authentication


class Refused(Exception):
    """A credential that does not authenticate; the message says why (never which part)."""


def principal_for_token(conn: Connection, token: str, *, now: float) -> tuple[Principal, int]:
    """The user an API token belongs to, and the token's id if it is due to be marked used
    (``touch_token``; 0 when not); Refused when unknown, expired, or its user disabled."""
    if not token.startswith(TOKEN_PREFIX):
        raise Refused("not an API token (a host token only pushes results)")
    row = conn.execute(
        select(TOKENS.c.id.label("token_id"), TOKENS.c.expires_at, TOKENS.c.last_used_at,
               USERS.c.id, USERS.c.name, USERS.c.role, USERS.c.customer_id, USERS.c.disabled)
        .join(USERS, USERS.c.id == TOKENS.c.user_id)
        .where(TOKENS.c.token_hash == hash_token(token))
    ).mappings().first()
    if row is None:
        raise Refused("unknown or revoked API token")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        raise Refused("the API token has expired")
    last_used = row["last_used_at"]
    due = last_used is None or now - last_used >= LAST_USED_RESOLUTION
    return principal_from_row(row), int(row["token_id"]) if due else 0


def touch_token(conn: Connection, token_id: int, *, now: float) -> None:
    """Mark a token used at ``now``, unless another request did within the last minute."""
    conn.execute(update(TOKENS).where(
        TOKENS.c.id == token_id,
        or_(TOKENS.c.last_used_at.is_(None),
            TOKENS.c.last_used_at <= now - LAST_USED_RESOLUTION),
    ).values(last_used_at=now))


class _VerifiedPasswords:
    """Passwords verified lately, so a browser's Basic login on every dashboard refresh does
    not cost a scrypt each time. The key is an HMAC (with a per-process secret) of the name,
    the password and the stored hash: a new password or a changed hash misses at once.
    Entries live ``ttl`` seconds (monotonic clock); the user row is still read on every
    request, so disabling a user takes effect at once."""

    def __init__(self, ttl: float = 300.0, size: int = 1024) -> None:
        self._secret = secrets.token_bytes(32)
        self._ttl, self._size = ttl, size
        self._until: dict[bytes, float] = {}

    def _key(self, name: str, password: str, stored: str) -> bytes:
        message = "\0".join((name, password, stored)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def known(self, name: str, password: str, stored: str) -> bool:
        until = self._until.get(self._key(name, password, stored))
        return until is not None and until > time.monotonic()

    def remember(self, name: str, password: str, stored: str) -> None:
        if len(self._until) >= self._size:
            self._until.clear()
        self._until[self._key(name, password, stored)] = time.monotonic() + self._ttl


_verified = _VerifiedPasswords()


def principal_for_password(conn: Connection, name: str, password: str) -> Principal:
    """The user ``name`` if ``password`` is its password; Refused otherwise (same message)."""
    row = conn.execute(select(USERS).where(USERS.c.name == name)).mappings().first()
    stored = None if row is None else row["password_hash"]
    if row is None or stored is None or not _verified.known(name, password, stored):
        if not verify_password(password, stored) or row is None or stored is None:
            raise Refused("wrong user name or password")
        _verified.remember(name, password, stored)
    return principal_from_row(row)


def principal_from_row(row: Any) -> Principal:
    """The Principal of a users row (id, name, role, customer_id, disabled); Refused when
    the user is disabled."""
    if row["disabled"]:
        raise Refused(f"user {row['name']!r} is disabled")
    return Principal(user_id=row["id"], name=row["name"], role=row["role"],
                     customer_id=row["customer_id"])
