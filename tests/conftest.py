"""Fixtures shared by every test package: the services that are slow to start, once."""

from __future__ import annotations

import pytest

from tests.services.rt import CONNECTOR_USER, RtServer, make_token, rt_session

# One Request Tracker 5 for the session (tests/services/rt.py); a missing RT fails.
rt_server = pytest.fixture(scope="session")(rt_session)


@pytest.fixture(scope="session")
def rt_token(rt_server: RtServer) -> str:
    """An auth token of the connector user, made once (RT's Perl API takes ~2 s)."""
    return make_token(rt_server, CONNECTOR_USER)
