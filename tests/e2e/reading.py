"""Reading a collector process's API as one of its users (the read API wants a login)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.processes import Collector, collector_command


def reader(collector: Collector, name: str = "e2e-noc") -> Callable[[str], httpx.Response]:
    """``get(path)`` as a new NOC user of ``collector``, made with the collector's commands
    (``user add``, ``token create``) as an administrator would."""
    for args in (("user", "add", name, "--role", "noc"), ("token", "create", "--user", name)):
        done = subprocess.run(collector_command(*args, "--config", str(collector.config)),
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}
    verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(collector.ca))
                                     if isinstance(collector.ca, Path) else collector.ca)

    def get(path: str) -> httpx.Response:
        return httpx.get(f"{collector.url}{path}", headers=headers, timeout=5, verify=verify)

    return get
