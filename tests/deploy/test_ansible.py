"""The Ansible role watchkeeper_agent, run for real against localhost.

The playbook shipped in deploy/ansible (site.yml, ansible.cfg, the role) runs with a local
connection, without become, into a throw-away root under tmp_path and with the service
unmanaged, so nothing of this machine's /etc, /opt, /var, systemd or users is touched:

- ``--check`` on a fresh root succeeds, reports what it would change and writes nothing;
- a real run installs the bundle and the installed agent validates and runs its checks;
- a second run, and ``--check`` after it, change nothing (read from the PLAY RECAP);
- a changed variable rewrites agent.toml, reports the change and notifies the restart;
- a host without a token enrolls itself with a real collector's enrollment secret, once.

The agent bundle comes from deploy/bundle/build.sh. ``ansible-playbook`` missing fails
naming the Debian package ansible-core; nothing here skips.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agent import __version__
from tests.support.processes import Collector, collector_command

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "deploy" / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "watchkeeper_agent"
BUILD_SH = ROOT / "deploy" / "bundle" / "build.sh"
TOKEN = "wk-test-token-0123456789"
ENROLL_SECRET = "wk-test-enrollment-secret-9876543210"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.MULTILINE)


@dataclass(frozen=True)
class PlayRun:
    """One ansible-playbook run: its exit code, output and the PLAY RECAP of localhost."""

    returncode: int
    output: str
    ok: int
    changed: int
    failed: int

    def explain(self) -> str:
        return f"ansible-playbook exited {self.returncode}:\n{self.output[-6000:]}"

    def task(self, name: str) -> str:
        """What the role's task ``name`` did: ok, changed, skipping or failed."""
        found = re.search(rf"^TASK \[watchkeeper_agent : {re.escape(name)}\][^\n]*\n+"
                          r"(?:--- before[\s\S]*?\n\n)?(?P<status>[a-z]+)(?::| =>)",
                          self.output, re.MULTILINE)
        assert found is not None, f"no task {name!r} in:\n{self.output[-6000:]}"
        return found["status"]


def ansible_playbook() -> str:
    found = shutil.which("ansible-playbook")
    if found is None:
        pytest.fail("ansible-playbook not found: install the Debian package ansible-core")
    return found


# ----------------------------------------------------------------------------- the bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent bundle from deploy/bundle/build.sh, built once for this module.

    The project's Python builds it (it has pip's wheel support); a wheel cache named by
    WATCHKEEPER_WHEELHOUSE_CACHE is reused.
    """
    out = tmp_path_factory.mktemp("bundle")
    done = subprocess.run(["bash", str(BUILD_SH), str(out)], capture_output=True, text=True,
                          timeout=300, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, f"build.sh failed:\n{done.stdout}\n{done.stderr}"
    built = sorted(out.glob("watchkeeper-agent-*.tar.gz"))
    assert [b.name for b in built] == [f"watchkeeper-agent-{__version__}.tar.gz"], built
    return built[0]


# ----------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Target:
    """localhost as the role's target: a throw-away root and the variables for it."""

    root: Path
    work: Path
    bundle: Path

    @property
    def config_file(self) -> Path:
        return self.root / "etc" / "watchkeeper" / "agent.toml"

    @property
    def agent(self) -> Path:
        return self.root / "opt" / "watchkeeper" / "venv" / "bin" / "watchkeeper-agent"

    def play(self, *options: str, **overrides: Any) -> PlayRun:
        """Run site.yml against localhost with the test's variables (and ``overrides``)."""
        variables: dict[str, Any] = {
            "watchkeeper_bundle": str(self.bundle),
            "watchkeeper_root": str(self.root),
            "watchkeeper_manage_service": False,
            "watchkeeper_collector_url": "https://collector.example.net",
            "watchkeeper_token": TOKEN,
            "watchkeeper_agent_host": "db1.acme.example",
            "watchkeeper_checks": {"disk": {"include_mounts": ["/"], "space_warn_pct": 99,
                                            "space_crit_pct": 100}},
            **overrides,
        }
        extra = self.work / "vars.json"
        extra.write_text(json.dumps(variables))
        inventory = self.work / "inventory.ini"
        inventory.write_text(
            "[watchkeeper_agents]\n"
            "localhost ansible_connection=local ansible_become=false "
            "ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n")
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
               "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-local"),
               "ANSIBLE_REMOTE_TEMP": str(self.work / "ansible-remote"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(self.work / "ansible-home")}
        done = subprocess.run(
            [ansible_playbook(), "-i", str(inventory), "-e", f"@{extra}", *options,
             str(ANSIBLE_DIR / "site.yml")],
            cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=180, check=False)
        output = done.stdout + done.stderr
        recap = RECAP.search(output)
        if recap is None:
            pytest.fail(f"no PLAY RECAP for localhost; ansible-playbook exited "
                        f"{done.returncode}:\n{output[-6000:]}")
        return PlayRun(done.returncode, output, int(recap["ok"]), int(recap["changed"]),
                       int(recap["failed"]))

    def run_agent(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.agent), *args, "--config", str(self.config_file)],
                              capture_output=True, text=True, timeout=60, check=False)


def files_under(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under ``root`` with its size and mtime, to tell that a run wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def target(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Target:
    ansible_playbook()
    work = tmp_path_factory.mktemp("ansible")
    return Target(root=work / "root", work=work, bundle=bundle)


@pytest.fixture(scope="module")
def fresh_check(target: Target) -> PlayRun:
    """``--check --diff`` before anything is installed."""
    return target.play("--check", "--diff")


@pytest.fixture(scope="module")
def first_run(target: Target, fresh_check: PlayRun) -> PlayRun:
    return target.play()


@pytest.fixture(scope="module")
def second_run(target: Target, first_run: PlayRun) -> PlayRun:
    assert first_run.returncode == 0, first_run.explain()
    return target.play()


# ----------------------------------------------------------------------------- the tests


def test_check_mode_on_a_fresh_root_says_what_it_would_do_and_writes_nothing(
        target: Target, fresh_check: PlayRun) -> None:
    assert fresh_check.returncode == 0, fresh_check.explain()
    assert fresh_check.failed == 0
    assert fresh_check.changed >= 3, fresh_check.explain()  # agent.toml, token, install
    assert f"would install watchkeeper-agent {__version__}" in fresh_check.output
    assert 'host = "db1.acme.example"' in fresh_check.output  # the diff of agent.toml
    assert TOKEN not in fresh_check.output
    assert not target.root.exists() or files_under(target.root) == {}


def test_a_real_run_installs_an_agent_that_validates_and_checks(
        target: Target, first_run: PlayRun) -> None:
    assert first_run.returncode == 0, first_run.explain()
    assert first_run.changed >= 3, first_run.explain()
    assert first_run.task("Run install.sh") == "changed"
    assert TOKEN not in first_run.output
    config = tomllib.loads(target.config_file.read_text())
    assert config["agent"]["host"] == "db1.acme.example"
    assert config["collector"]["url"] == "https://collector.example.net"
    assert config["checks"]["disk"] == {"include_mounts": ["/"], "space_warn_pct": 99,
                                        "space_crit_pct": 100}
    token_file = Path(config["collector"]["token_file"])
    assert token_file.is_relative_to(target.root)
    assert token_file.read_text().strip() == TOKEN
    assert oct(token_file.stat().st_mode & 0o777) == "0o640"

    validated = target.run_agent("validate")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.strip() == "config OK: 2 checks (agent, disk)"
    checked = target.run_agent("check", "--json")
    assert checked.returncode in (0, 1, 2), checked.stdout + checked.stderr
    rows = json.loads(checked.stdout)
    assert {(row["check"], row["target"]) for row in rows} >= {("disk", "/")}


def test_a_second_run_changes_nothing(target: Target, second_run: PlayRun) -> None:
    assert second_run.returncode == 0, second_run.explain()
    assert second_run.changed == 0, second_run.explain()
    assert second_run.task("Run install.sh") == "skipping"  # the installed version is the bundle's
    before = files_under(target.root)
    again = target.play("--check")
    assert again.returncode == 0, again.explain()
    assert again.changed == 0, again.explain()
    assert files_under(target.root) == before


def test_a_changed_variable_rewrites_the_config_and_notifies_the_restart(
        target: Target, second_run: PlayRun) -> None:
    changed = target.play(watchkeeper_log_level="debug")
    assert changed.returncode == 0, changed.explain()
    assert changed.changed >= 1, changed.explain()
    assert changed.task("Write agent.toml") == "changed"
    assert changed.task("Run install.sh") == "skipping"  # a config change is not an upgrade
    assert "RUNNING HANDLER [watchkeeper_agent : Say that the agent needs a restart]" \
        in changed.output, changed.explain()
    assert "restart the agent to load it" in changed.output
    assert tomllib.loads(target.config_file.read_text())["agent"]["log_level"] == "debug"
    assert target.run_agent("validate").returncode == 0


def test_missing_variables_fail_naming_them(target: Target) -> None:
    refused = target.play("--check", watchkeeper_collector_url="", watchkeeper_token="")
    assert refused.returncode != 0
    assert refused.failed == 1
    assert "watchkeeper_collector_url" in refused.output
    assert "watchkeeper_enroll_secret" in refused.output


def test_a_host_without_a_token_enrolls_itself_once(
        target: Target, second_run: PlayRun, tmp_path: Path) -> None:
    secret_file = tmp_path / "enrollment-secret"
    secret_file.write_text(ENROLL_SECRET + "\n")
    collector = Collector(tmp_path, extra_config=f'[enrollment]\nsecret_file = "{secret_file}"\n')
    collector.start()
    try:
        token_file = target.root / "etc" / "watchkeeper" / "token"
        token_file.unlink()  # the host as it was installed, before it had a token
        enrollment = {"watchkeeper_collector_url": collector.url, "watchkeeper_token": "",
                      "watchkeeper_enroll_secret": ENROLL_SECRET,
                      "watchkeeper_customer": "acme"}
        would = target.play("--check", **enrollment)
        assert would.returncode == 0, would.explain()
        assert "would enroll db1.acme.example in acme" in would.output, would.explain()
        assert not token_file.exists()

        enrolled = target.play(**enrollment)
        assert enrolled.returncode == 0, enrolled.explain()
        assert enrolled.task("Run install.sh") == "skipping"  # same version: no install
        assert enrolled.task("Enroll") == "changed"
        assert ENROLL_SECRET not in enrolled.output
        token = token_file.read_text().strip()
        assert token and token != TOKEN
        assert oct(token_file.stat().st_mode & 0o777) == "0o640"
        hosts = subprocess.run(collector_command("hosts", "--config", str(collector.config)),
                               capture_output=True, text=True, timeout=60, check=False)
        assert "db1.acme.example" in hosts.stdout, hosts.stdout + hosts.stderr
        assert not list(target.root.glob("watchkeeper-enroll.*")), "the secret was left behind"
        assert target.run_agent("validate").returncode == 0

        again = target.play(**enrollment)
        assert again.returncode == 0, again.explain()
        assert again.changed == 0, again.explain()
        assert again.task("Enroll") == "skipping"  # it has its token
        assert token_file.read_text().strip() == token
    finally:
        collector.stop()


# ----------------------------------------------------------------------------- the TOML filter


def toml_filter() -> Callable[[Any], str]:
    path = ROLE / "filter_plugins" / "watchkeeper_toml.py"
    spec = importlib.util.spec_from_file_location("watchkeeper_toml", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    filters: dict[str, Callable[[Any], str]] = module.FilterModule().filters()
    return filters["watchkeeper_toml"]


@pytest.mark.parametrize("document", [
    {"agent": {"host": "db1", "log_level": "info"}, "checks": {"disk": {}}},
    {"checks": {"backup": {"interval": "15m", "sets": [
        {"name": "a", "directory": "/b", "nested": {"x": 1}}, {"name": "c"}]}}},
    {"text": 'quote " backslash \\ newline \n tab \t bell \x07 del \x7f é ✓',
     "odd key.with dots": [1, 2.5, True, "x", [], {"inline": "table"}]},
    {"numbers": {"big": 2**62, "negative": -3, "small": 1e-9, "inf": math.inf}},
    {"empty_list": [], "list_of_lists": [[1, 2], ["a"]]},
])
def test_the_toml_filter_writes_what_tomllib_reads_back(document: dict[str, Any]) -> None:
    assert tomllib.loads(toml_filter()(document)) == document


def test_the_toml_filter_names_a_value_toml_cannot_hold() -> None:
    with pytest.raises(ValueError, match=r"checks\.disk\.space_warn_pct is null"):
        toml_filter()({"checks": {"disk": {"space_warn_pct": None}}})
