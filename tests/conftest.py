"""Fixtures shared by every test package: the services that are slow to start, once."""

from __future__ import annotations

import pytest

from tests.services.rt import rt_session

# One Request Tracker 5 for the session (tests/services/rt.py); a missing RT fails.
rt_server = pytest.fixture(scope="session")(rt_session)
