"""``run`` from the command line executes itself once more: a lean daemon, and glibc's
allocator set for a small daemon.

The command line has been parsed (argparse and its gettext: 0.6 MB that the daemon would
carry for nothing) and the configuration file read (tomllib: 0.25 MB more) when
``launch_daemon`` executes the same command line again (same process id, same ``ps``
line) with the configuration path in ``DAEMON_CONFIG`` and the file's tables as JSON in an
in-memory file it inherits (``CONFIG_TABLES_FD``; a token in the file stays out of the
environment); the executed image takes both (``daemon_config``) and builds its
configuration from them. Tables that JSON cannot carry (a TOML date) are not passed: the
daemon then reads the file itself.

glibc reads its tunables only when a program starts, so this is also when they are set,
unless the host set its own (``GLIBC_TUNABLES`` in the environment): one arena and a fixed
mmap threshold of 128 KiB (which also keeps the trim threshold at 128 KiB). glibc's defaults
suit a busy server. In the agent each check run is a thread, and each thread that allocates
while another does gets an arena of its own (up to eight per core), each keeping freed memory
at its top and in holes below it; and after a check frees a block of 1 MiB (a backup's read
and decompression buffers) glibc raises its mmap threshold to that size and its trim
threshold to twice that, so later large blocks stay resident after they are freed. With
all ten check types at 60 s (the footprint benchmark) glibc held 5.5 MB in seven arenas,
1.3 MB of it free; with the tunables 4.3 MB in one, 0.1 MB free. (``ctypes`` for
``mallopt`` would cost 0.5 MB.) The commands the checks start get the host's settings:
the executed image removes the tunables from its environment again.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

TUNABLES = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=131072"
"""One arena for all threads; blocks from 128 KiB up mapped on their own (a fixed
threshold also stops glibc from raising it, and the trim threshold, after a large free)."""

DAEMON_CONFIG = "WATCHKEEPER_AGENT_DAEMON_CONFIG"
"""Set for the executed image only: the configuration path ``run`` was given."""

CONFIG_TABLES_FD = "WATCHKEEPER_AGENT_CONFIG_FD"
"""Set for the executed image only: the inherited descriptor of the configuration's tables."""

Execve = Callable[[str, list[str], dict[str, str]], object]


def is_glibc() -> bool:
    """Whether this Python runs on glibc (its tunables mean nothing to musl)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def launch_daemon(
    config_path: str,
    tables: Mapping[str, Any] | None = None,
    *,
    environ: MutableMapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
    executable: str | None = None,
    execve: Execve = os.execve,
    glibc: Callable[[], bool] = is_glibc,
) -> None:
    """Execute this command line (``sys.orig_argv``) again as the daemon for
    ``config_path`` (whose ``tables`` were read); returns only if that cannot be done (the
    caller then runs the daemon itself)."""
    environ = os.environ if environ is None else environ
    argv = list(sys.orig_argv if argv is None else argv)
    executable = sys.executable if executable is None else executable
    if not argv or not executable:
        return
    env = {**environ, DAEMON_CONFIG: config_path}
    if "GLIBC_TUNABLES" not in environ and glibc():
        env["GLIBC_TUNABLES"] = TUNABLES
    tables_fd = None if tables is None else _inheritable_json(tables)
    if tables_fd is not None:
        env[CONFIG_TABLES_FD] = str(tables_fd)
    try:
        execve(executable, argv, env)
    except OSError:
        pass  # the interpreter cannot be executed again: this process is the daemon
    if tables_fd is not None:
        os.close(tables_fd)


def daemon_config(
    environ: MutableMapping[str, str] | None = None,
) -> tuple[str, dict[str, Any] | None] | None:
    """In the image ``launch_daemon`` executed: the configuration path and its tables
    (``None`` when they were not passed or cannot be read), all removed from ``environ``
    together with the tunables it set; ``None`` in any other process."""
    environ = os.environ if environ is None else environ
    config_path = environ.pop(DAEMON_CONFIG, None)
    tables_fd = environ.pop(CONFIG_TABLES_FD, None)
    if config_path is None:
        return None
    if environ.get("GLIBC_TUNABLES") == TUNABLES:
        del environ["GLIBC_TUNABLES"]
    tables = None
    if tables_fd is not None:
        try:
            with open(int(tables_fd), "rb") as file:  # closes the descriptor
                tables = json.load(file)
        except (ValueError, OSError):
            tables = None  # the daemon reads the file itself
    return config_path, tables if isinstance(tables, dict) else None


def _inheritable_json(tables: Mapping[str, Any]) -> int | None:
    """A descriptor, inherited across ``execve``, of an in-memory file holding ``tables``
    as JSON; ``None`` when JSON cannot hold them or the system has no in-memory files."""
    try:
        data = json.dumps(tables).encode()
    except (TypeError, ValueError):  # a TOML date or time
        return None
    try:
        fd = os.memfd_create("watchkeeper-agent-config", 0)
    except (AttributeError, OSError):
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
        os.set_inheritable(fd, True)
    except OSError:
        os.close(fd)
        return None
    return fd
