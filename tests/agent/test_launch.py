"""``run`` from the command line executes itself once more: the daemon runs without the
command-line parser and the TOML parser, and with glibc's allocator set for it (one arena,
large blocks given back); the commands its checks start get the host's own settings."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.launch import CONFIG_TABLES_FD, DAEMON_CONFIG, TUNABLES, daemon_config, launch_daemon
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3.11"
ARGV = [PYTHON, "-m", "agent", "run", "--config", "/etc/watchkeeper/agent.toml"]


class Exec:
    """Stands in for ``os.execve``: records the call instead of replacing the process."""

    def __init__(self, error: OSError | None = None) -> None:
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []
        self.error = error

        self.passed: list[tuple[bool, object]] = []

    def __call__(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.calls.append((path, argv, env))
        if CONFIG_TABLES_FD in env:  # what the executed image would inherit
            fd = int(env[CONFIG_TABLES_FD])
            self.passed.append((os.get_inheritable(fd),
                                json.loads(os.pread(fd, 1 << 20, 0))))
        if self.error is not None:
            raise self.error


def test_the_command_line_is_executed_again_with_the_config_and_the_tunables() -> None:
    environ = {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    execve = Exec()
    launch_daemon("/etc/watchkeeper/agent.toml", environ=environ, argv=ARGV,
                  executable=PYTHON, execve=execve, glibc=lambda: True)
    assert execve.calls == [(PYTHON, ARGV, {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "GLIBC_TUNABLES": TUNABLES,
        DAEMON_CONFIG: "/etc/watchkeeper/agent.toml"})]
    assert environ == {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    assert "glibc.malloc.arena_max=1" in TUNABLES.split(":")


@pytest.mark.parametrize("tunables", ["glibc.malloc.arena_max=4", ""])
def test_tunables_the_host_set_are_kept(tunables: str) -> None:
    execve = Exec()
    launch_daemon("agent.toml", environ={"GLIBC_TUNABLES": tunables}, argv=ARGV,
                  executable=PYTHON, execve=execve, glibc=lambda: True)
    assert execve.calls[0][2] == {"GLIBC_TUNABLES": tunables, DAEMON_CONFIG: "agent.toml"}


def test_on_another_c_library_the_daemon_is_executed_without_tunables() -> None:
    execve = Exec()
    launch_daemon("agent.toml", environ={}, argv=ARGV, executable=PYTHON, execve=execve,
                  glibc=lambda: False)
    assert execve.calls[0][2] == {DAEMON_CONFIG: "agent.toml"}


def test_without_an_interpreter_to_execute_the_caller_runs_the_daemon_itself() -> None:
    execve = Exec()
    launch_daemon("agent.toml", environ={}, argv=[], executable=PYTHON, execve=execve)
    launch_daemon("agent.toml", environ={}, argv=ARGV, executable="", execve=execve)
    assert execve.calls == []
    failing = Exec(PermissionError(13, "Permission denied"))
    launch_daemon("agent.toml", environ={}, argv=ARGV, executable=PYTHON, execve=failing)
    assert len(failing.calls) == 1  # and it returned


def test_the_executed_daemon_takes_its_config_and_hides_the_tunables_from_commands() -> None:
    environ = {"PATH": "/usr/bin", "GLIBC_TUNABLES": TUNABLES, DAEMON_CONFIG: "agent.toml"}
    assert daemon_config(environ) == ("agent.toml", None)
    assert environ == {"PATH": "/usr/bin"}
    hosts = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4", DAEMON_CONFIG: "agent.toml"}
    assert daemon_config(hosts) == ("agent.toml", None)
    assert hosts == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}
    assert daemon_config({"PATH": "/usr/bin"}) is None


def test_the_tables_read_travel_to_the_daemon_in_an_inherited_file() -> None:
    tables = {"agent": {"host": "db1.example.net"}, "collector": {"token": "s3cret"},
              "checks": {"disk": {"interval": 60, "space_warn_pct": 85.5, "enabled": True}}}
    execve = Exec()
    launch_daemon("agent.toml", tables, environ={}, argv=ARGV, executable=PYTHON,
                  execve=execve, glibc=lambda: False)
    [(_, _, env)] = execve.calls
    assert "s3cret" not in "".join(env.values())  # the token is not in the environment
    assert execve.passed == [(True, tables)]  # inheritable, and what the daemon reads


def test_the_daemon_reads_the_tables_from_the_descriptor_it_inherited() -> None:
    tables = {"agent": {"host": "db1.example.net"}, "spool": {"max_bytes": "50MB"}}
    read, write = os.pipe()
    os.write(write, json.dumps(tables).encode())
    os.close(write)
    environ = {DAEMON_CONFIG: "agent.toml", CONFIG_TABLES_FD: str(read),
               "GLIBC_TUNABLES": TUNABLES}
    assert daemon_config(environ) == ("agent.toml", tables)
    assert environ == {}
    with pytest.raises(OSError):
        os.fstat(read)  # closed once read


def test_tables_json_cannot_carry_are_read_again_by_the_daemon() -> None:
    execve = Exec()
    launch_daemon("agent.toml", {"agent": {"since": datetime.date(2026, 11, 26)}},
                  environ={}, argv=ARGV, executable=PYTHON, execve=execve, glibc=lambda: False)
    assert execve.calls[0][2] == {DAEMON_CONFIG: "agent.toml"}


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith("PYTHON") and k not in ("GLIBC_TUNABLES", DAEMON_CONFIG)},
            "PYTHONPATH": str(ROOT), **extra}


def _run_daemon(tmp_path: Path, env: dict[str, str]) -> tuple[list[str], dict[str, list[str]]]:
    """``run`` from the command line: the daemon's environment as it was started, and what
    one of its checks saw (the environment of a command it started, the loaded modules)."""
    facts = tmp_path / "facts.json"
    config = tmp_path / "agent.toml"
    config.write_text(
        f"[agent]\nhost = 'db1.example.net'\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://127.0.0.1:9'\ntoken = 't'\n"
        f"[checks.facts]\ntype = 'process_facts'\noutput = '{facts}'\ninterval = 60\n"
        "jitter = 0\n"
    )
    script = ("from agent.cli import main\nfrom tests.agent import fakes\n"
              "fakes.TYPES['process_facts'] = fakes.ProcessFactsCheck\n"
              "raise SystemExit(main(lookup=fakes.lookup))")
    agent = subprocess.Popen([sys.executable, "-c", script, "run", "--config", str(config)],
                             stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        wait_until(facts.exists, 30, "the check to run")
        started_with = Path(f"/proc/{agent.pid}/environ").read_bytes().decode().split("\0")
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err[-3000:]
    assert "stopped; spool closed" in err
    return started_with, json.loads(facts.read_text())


def test_the_daemon_runs_with_the_tunables_without_argparse(tmp_path: Path) -> None:
    started_with, seen = _run_daemon(tmp_path, _env())
    # glibc cuts the variable after the first tunable it applied, in place
    assert any(v.startswith("GLIBC_TUNABLES=glibc.malloc.arena_max=1") for v in started_with)
    assert any(v.startswith(f"{DAEMON_CONFIG}=") for v in started_with)
    assert not {"argparse", "gettext", "tomllib"} & set(seen["modules"])
    assert "agent.scheduler" in seen["modules"]  # the list is the daemon's
    command_env = "\n".join(seen["command_env"])
    assert "GLIBC_TUNABLES" not in command_env and DAEMON_CONFIG not in command_env
    assert "PATH=" in command_env


def test_the_daemon_keeps_the_hosts_tunables_for_itself_and_its_commands(
    tmp_path: Path,
) -> None:
    started_with, seen = _run_daemon(tmp_path, _env(GLIBC_TUNABLES="glibc.malloc.arena_max=4"))
    assert "GLIBC_TUNABLES=glibc.malloc.arena_max=4" in started_with
    assert "GLIBC_TUNABLES=glibc.malloc.arena_max=4" in seen["command_env"]
    assert not any(v.startswith(DAEMON_CONFIG) for v in seen["command_env"])
    assert "argparse" not in seen["modules"]


def test_a_config_error_is_reported_by_the_daemon_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nhost = 'db1.example.net'\n[collector]\nurl = 'ftp://x'\n")
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
    assert done.returncode == 2
    assert done.stderr.startswith("config error: agent.toml: collector."), done.stderr


def test_a_file_that_cannot_be_read_is_reported_before_the_launch(tmp_path: Path) -> None:
    missing = tmp_path / "agent.toml"
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(missing)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())
    assert done.returncode == 2
    assert done.stderr == f"config error: {missing}: no such file\n"
