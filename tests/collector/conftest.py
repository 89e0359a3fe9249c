"""Fixtures for the collector tests: both stores (SQLite file, private PostgreSQL), apps, clocks.

Storage tests take ``db_url``, parametrized over SQLite and a real PostgreSQL server that
this session starts from the installed binaries; a missing PostgreSQL fails, never skips.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from collector.app import create_app
from collector.db import create_db_engine, migrate, session_factory, write_transaction
from collector.hosts.service import enroll
from collector.people import service as people
from collector.settings import Settings

try:
    from tests.services.postgres import PostgresServer, start_postgres
except ImportError:  # run from elsewhere than the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.services.postgres import PostgresServer, start_postgres


class FakeClock:
    """A settable clock (epoch seconds) for silence and ordering tests."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "var").mkdir()
        return f"sqlite:///{tmp_path / 'var' / 'watchkeeper.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


def settings_for(url: str, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {"database": {"url": url}}
    data.update(sections)
    return Settings.model_validate(data)


@pytest.fixture
def settings(db_url: str) -> Iterator[Settings]:
    """Settings on a migrated store."""
    built = settings_for(db_url)
    engine = create_db_engine(built)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    yield built


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def enroll_host() -> Callable[..., str]:
    """enroll_host(settings, fqdn, customer="acme", critical=False) -> token."""

    def _enroll(
        settings: Settings, fqdn: str, customer: str = "acme", critical: bool = False
    ) -> str:
        engine = create_db_engine(settings)
        try:
            with session_factory(engine)() as session:
                return enroll(session=session, customer=customer, fqdn=fqdn,
                              critical=critical, rotate=False, now=time.time())
        finally:
            engine.dispose()

    return _enroll


def add_user(
    settings: Settings, name: str, role: str, *, customer: str | None = None,
    password: str | None = None, expires_at: float | None = None,
) -> str:
    """Add a user to the store and return a new API token of it."""
    engine = create_db_engine(settings)
    try:
        with write_transaction(engine) as conn:
            people.create_user(conn, name=name, role=role, customer=customer,
                               password=password, now=time.time())
            return people.create_token(conn, user=name, expires_at=expires_at,
                                       now=time.time())[1]
    finally:
        engine.dispose()


@pytest.fixture
def make_user() -> Callable[..., str]:
    """make_user(settings, name, role, customer=None, password=None) -> an API token."""
    return add_user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AppClient:
    """A blocking client for an ASGI app whose lifespan runs in a portal thread's event loop.

    (Starlette's TestClient warns about httpx being deprecated for it; this is the same
    idea on httpx.ASGITransport.)
    """

    def __init__(
        self, app: FastAPI, portal: BlockingPortal, headers: dict[str, str] | None = None
    ) -> None:
        self.app = app
        self.portal = portal
        self._others: list[AppClient] = []
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://collector.test",
            headers=headers,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def post_many(self, requests: list[tuple[str, Any, dict[str, str]]]) -> list[httpx.Response]:
        """POST (url, json, headers) requests all at once; the answers in the same order."""

        async def send_all() -> list[httpx.Response]:
            return list(await asyncio.gather(*[
                self._client.post(url, json=body, headers=headers)
                for url, body, headers in requests
            ]))

        return self.portal.call(send_all)

    def close(self) -> None:
        for other in self._others:
            other.close()
        self.portal.call(self._client.aclose)

    def browser(self, name: str | None = None, password: str | None = None) -> AppClient:
        """Another client of the same app with its own cookies and no API token, as a
        browser is; logged in to the dashboard as ``name`` when given (asserted)."""
        other = AppClient(self.app, self.portal)
        self._others.append(other)
        if name is not None:
            answer = other.post("/login", data={"name": name, "password": password or ""})
            assert answer.status_code == 303, answer.text
        return other


@pytest.fixture
def start_collector() -> Iterator[Callable[..., AppClient]]:
    """start_collector(settings, clock=..., role="admin") -> a client of an app with its
    lifespan running, sending a new user's API token with every request (role None: no
    credentials; a request's own Authorization header, a host token say, takes precedence)."""
    with ExitStack() as stack:

        def _start(
            settings: Settings, clock: Callable[[], float] = time.time, *,
            role: str | None = "admin",
        ) -> AppClient:
            headers = None
            if role is not None:
                headers = bearer(add_user(settings, f"test-{role}-{uuid.uuid4().hex[:8]}", role))
            app = create_app(settings, clock=clock, run_scheduled=False)
            portal = stack.enter_context(start_blocking_portal())
            stack.enter_context(portal.wrap_async_context_manager(app.router.lifespan_context(app)))
            client = AppClient(app, portal, headers)
            stack.callback(client.close)
            return client

        yield _start


@pytest.fixture
def make_batch() -> Callable[..., dict[str, Any]]:
    """make_batch(host, results=[...], batch_id=None) -> a push body as in docs/protocol.md."""

    def _batch(
        host: str,
        results: list[dict[str, Any]] | None = None,
        batch_id: str | None = None,
        interval: float = 60.0,
    ) -> dict[str, Any]:
        now = time.time()
        return {
            "batch_id": batch_id or str(uuid.uuid4()),
            "host": host,
            "agent": {"version": "0.1.0", "started_at": now - 100, "interval": interval},
            "sent_at": now,
            "results": results if results is not None else [make_result()],
        }

    return _batch


_seq = iter(range(1, 10**9))


def make_result(
    check: str = "disk", target: str = "/var", status: int = 0, summary: str | None = None,
    produced_at: float | None = None, **extra: Any,
) -> dict[str, Any]:
    """One result in wire form."""
    result = {
        "id": str(uuid.uuid4()),
        "seq": next(_seq),
        "type": check,
        "check": check,
        "target": target,
        "status": status,
        "summary": summary or f"{target} status {status}",
        "metrics": [{"name": "used_pct", "value": 42.0, "unit": "%", "warn": 85, "crit": 95}],
        "details": {"device": "/dev/vda2"},
        "produced_at": time.time() if produced_at is None else produced_at,
        "duration": 0.004,
        "status_changed": False,
    }
    result.update(extra)
    return result


@pytest.fixture
def result() -> Callable[..., dict[str, Any]]:
    """result(check=..., target=..., status=..., produced_at=...) -> one wire result."""
    return make_result
