"""The collector serving HTTPS itself, and an agent pushing to it over TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.processes import Collector, Proc, agent_command, collector_command, wait_until
from tests.support.tls import self_signed

pytestmark = pytest.mark.e2e

HOST = "tls-agent.example.net"


def _agent_config(workdir: Path, collector: Collector, token: str, ca_file: Path | None) -> Path:
    (workdir / "token").write_text(token + "\n")
    config = workdir / "agent.toml"
    ca = f'ca_file = "{ca_file}"\n' if ca_file else ""
    config.write_text(
        f'[agent]\nhost = "{HOST}"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{collector.url}"\ntoken_file = "{workdir / "token"}"\n{ca}'
        'push_interval = "0.3s"\nbackoff_initial = "0.2s"\nbackoff_max = "0.5s"\n\n'
        '[checks.agent]\ninterval = "0.5s"\n'
    )
    return config


def test_an_agent_pushes_over_https_and_one_that_does_not_trust_the_certificate_waits(
    tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path / "tls")
    collector = Collector(tmp_path, tls=(cert, key))
    token = collector.enroll("acme", HOST)
    collector.start()
    read = collector.get
    assert collector.url.startswith("https://")
    untrusting = tmp_path / "untrusting"
    untrusting.mkdir()
    agent = Proc(agent_command("run", "--config",
                               str(_agent_config(untrusting, collector, token, None))),
                 untrusting / "agent.log").start()
    try:
        # Without the collector's CA the agent refuses the connection and keeps its results.
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in agent.tail(), 30,
                   f"a certificate error in the agent's log\n{agent.tail()}")
        assert read(f"/api/v1/hosts/{HOST}").json()["checks"] == []
    finally:
        agent.stop()
    trusting = tmp_path / "trusting"
    trusting.mkdir()
    config = _agent_config(trusting, collector, token, cert)
    # The untrusting agent's spooled results are delivered by the same state directory.
    config.write_text(config.read_text().replace(str(trusting / "state"),
                                                 str(untrusting / "state")))
    agent = Proc(agent_command("run", "--config", str(config)), trusting / "agent.log").start()
    try:
        wait_until(lambda: read(f"/api/v1/hosts/{HOST}").json()["checks"], 30,
                   f"the host's results at the collector\n{agent.tail()}")
        checks = read(f"/api/v1/hosts/{HOST}").json()["checks"]
        assert {c["check"] for c in checks} == {"agent"}
    finally:
        agent.stop()
        collector.stop()


@pytest.mark.parametrize(("table", "key"), [
    ('tls_cert_file = "{cert}"\ntls_key_file = "{missing}"\n', "server.tls_key_file"),
    ('tls_cert_file = "{cert}"\ntls_key_file = "{other_key}"\n', "server.tls_cert_file"),
])
def test_serve_refuses_a_certificate_it_cannot_use_and_names_the_key(
    tmp_path: Path, table: str, key: str
) -> None:
    cert, _ = self_signed(tmp_path / "one")
    _, other_key = self_signed(tmp_path / "two")
    config = tmp_path / "collector.toml"
    tls = table.format(cert=cert, missing=tmp_path / "nope.pem", other_key=other_key)
    database = f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
    config.write_text(f"[server]\nport = 1\n{tls}{database}")
    done = subprocess.run(collector_command("serve", "--config", str(config)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr and str(config) in done.stderr
