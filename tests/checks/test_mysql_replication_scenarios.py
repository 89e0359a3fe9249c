"""The scenario builders used by the end-to-end test, checked through the agent's loader.

All six scenarios are built at once, as the end-to-end test does, so the sharing of one
primary between them is exercised: the healthy scenario must stay healthy while its
neighbours break their own replicas.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from checks.registry import CheckContext
from checks.result import worst
from tests.checks import mysql_replication_scenarios as scenarios
from tests.services.mariadb import MariadbUnavailable

pytestmark = pytest.mark.integration


def test_every_scenario_through_the_agent_config(tmp_path: Path) -> None:
    built: dict[str, scenarios.Scenario] = {}
    try:
        for kind in scenarios.KINDS:
            try:
                built[kind] = scenarios.build(kind, tmp_path / kind, check_name=f"repl_{kind}")
            except MariadbUnavailable as err:
                pytest.fail(str(err))
        path = tmp_path / "agent.toml"
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n'
                        + "\n".join(s.toml for s in built.values()))
        specs = {c.name: c for c in load_config(path).checks}
        for kind, scenario in built.items():
            spec = specs[f"repl_{kind}"]
            context = CheckContext(name=spec.name, state_dir=tmp_path / "state",
                                   timeout=spec.timeout)
            results = spec.check_class(spec.config, context).run()
            assert worst(r.status for r in results) is scenario.expected, (
                kind, [r.plugin_line() for r in results])
            if kind == "duplicate_key":
                assert "1062 (duplicate key)" in results[0].summary
            if kind == "bad_password":
                assert "monitoring credentials rejected" in results[0].summary
                assert "not-the-password" not in repr([r.to_wire() for r in results])
    finally:
        for scenario in built.values():
            scenario.stop()
    assert scenarios._shared is None  # the last stop ended the shared primary
