"""Bearer token -> host, with a short cache so a push does not pay a lookup each time.

Trade-off (documented in docs/collector.md): a rotated token keeps working in a running
collector for at most ``ingest.token_cache_ttl`` seconds; 0 turns the cache off.
Unknown tokens are never cached, so a newly enrolled host can push at once.
"""

from __future__ import annotations

import time

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from collector.errors import NotAuthenticated
from collector.hosts.service import HostIdentity, hash_token, host_for_token

MAX_ENTRIES = 100_000


class TokenAuthenticator:
    """Resolve ``Authorization: Bearer <token>`` to the host that owns the token."""

    def __init__(self, sessions: sessionmaker[Session], *, ttl: float) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._cache: dict[str, tuple[HostIdentity, float]] = {}

    async def authenticate(self, authorization: str | None) -> HostIdentity:
        """The host, or NotAuthenticated naming what is wrong."""
        if not authorization:
            raise NotAuthenticated("no host token: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
        digest = hash_token(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        host = await anyio.to_thread.run_sync(self._lookup, digest)
        if host is None:
            raise NotAuthenticated("unknown host token")
        if self._ttl > 0:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (host, time.monotonic() + self._ttl)
        return host

    def _lookup(self, digest: str) -> HostIdentity | None:
        with self._sessions() as session:
            return host_for_token(session=session, token_hash=digest)
