"""Running a host's own tools from a check: one command, a timeout, the C locale.

Shared by the checks that ask a program (chronyc, ntpq, nft, iptables-save, apt-get, dnf,
journalctl): every run has its own timeout that fits inside the check's, a program that
cannot be started is an answer (exit status 127 with the reason), never an exception, and
``subprocess`` is imported only by hosts whose checks run commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """What a command printed; ``returncode`` None when it did not finish in time."""

    returncode: int | None
    stdout: str
    stderr: str


CommandRunner = Callable[[Sequence[str], float], CommandOutput]
"""The seam tests replace: ``(argv, timeout) -> CommandOutput``."""


def run_command(argv: Sequence[str], timeout: float) -> CommandOutput:
    """Run a command with a timeout, without a shell, in the C locale."""
    import subprocess

    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, env=env, stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return CommandOutput(None, "", f"no answer within {timeout:g}s")
    except OSError as err:
        return CommandOutput(127, "", f"cannot run {argv[0]}: {err.strerror or err}")
    return CommandOutput(done.returncode, done.stdout, done.stderr)


def find_program(name: str) -> str | None:
    """An absolute path for ``name``: as given when it has a slash, else on PATH or sbin."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    path = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/usr/bin", "/sbin"]
    for directory in path:
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def first_line(output: CommandOutput, *, last: bool = False) -> str:
    """The line of a failed command's output to quote: its first (or ``last``) non-blank
    line of stderr, else of stdout, at most 160 characters."""
    lines = [line for line in (output.stderr.strip() or output.stdout.strip()).splitlines()
             if line.strip()]
    if not lines:
        return f"exit status {output.returncode}"
    return (lines[-1] if last else lines[0])[:160]
