"""Install, upgrade and uninstall the watchkeeper agent from its offline bundle.

Run through ``install.sh`` and ``uninstall.sh`` (docs/bundle.md); standard library only,
with the host's ``python3`` (3.11 or newer). Nothing is downloaded: the agent and its
dependencies are installed from the bundle's wheelhouse with the pip wheel it carries.

What lives where (the defaults; ``--root DIR`` puts every one under DIR):

- ``/opt/watchkeeper/venvs/<version>-<digest>/``: one virtual environment per bundle, and
  ``/opt/watchkeeper/venv``, a symbolic link to the current one. A venv cannot be renamed
  (its scripts name their interpreter by its path), so an upgrade builds the new one
  beside the old and swaps the link with one rename: the agent is always started from a
  complete environment, the old or the new.
- ``/opt/watchkeeper/install.json``: the paths and user of this installation, which
  ``uninstall.sh`` reads; ``uninstall.sh`` and this file beside it; the documentation
  under ``share/doc``.
- ``/etc/watchkeeper/agent.toml`` and the token (root:watchkeeper 0640): kept on upgrade.
- ``/var/lib/watchkeeper`` (watchkeeper 0700): check state and the spool, kept on upgrade.
- ``/etc/systemd/system/watchkeeper-agent.service``: the bundle's unit, with the paths and
  user of this installation.

A second run with the same bundle and options changes nothing (no file is written, no
service restarted) and ends with ``watchkeeper-agent <version>: unchanged``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

NAME = "watchkeeper-agent"
UNIT = f"{NAME}.service"
DEFAULT_PREFIX = "/opt/watchkeeper"
DEFAULT_CONFIG_DIR = "/etc/watchkeeper"
DEFAULT_STATE_DIR = "/var/lib/watchkeeper"
DEFAULT_USER = "watchkeeper"
UNIT_DIR = "/etc/systemd/system"
USER_COMMENT = "watchkeeper agent"
"""The comment of the user install.sh creates; uninstall --purge removes only that user."""
PLACEHOLDER_URL = "https://collector.example.net"
SHARED_DIRS = frozenset({"/", "/etc", "/opt", "/var", "/var/lib", "/usr", "/usr/local", "/srv",
                         "/tmp", "/home", "/root", "/run"})
"""Directories of the whole system: install.sh would set their modes and owners."""
DOCS = ("bundle.md", "agent.md", "systemd.md")
COMMAND_TIMEOUT = 300.0


class InstallError(Exception):
    """The installation cannot go on; the message says what is wrong and what to do."""


# -- where things go ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The paths and user of one installation, as the host sees them."""

    prefix: Path
    config_dir: Path
    state_dir: Path
    unit_dir: Path
    user: str
    systemd: bool
    root: str

    @classmethod
    def from_options(cls, args: argparse.Namespace, recorded: dict[str, str] | None = None
                     ) -> Layout:
        """The layout from the command line; unset options from ``recorded`` (an earlier
        install's install.json), else the defaults."""
        known = recorded or {}
        root = args.root  # what the options given are under
        effective_root = root or known.get("root", "")

        def path(option: str | None, key: str, default: str) -> Path:
            if option:
                return Path(root + os.path.abspath(option))
            return Path(known[key]) if key in known else Path(root + default)

        return cls(
            prefix=path(args.prefix, "prefix", DEFAULT_PREFIX),
            config_dir=path(args.config_dir, "config_dir", DEFAULT_CONFIG_DIR),
            state_dir=path(args.state_dir, "state_dir", DEFAULT_STATE_DIR),
            unit_dir=path(args.unit_dir, "unit_dir", UNIT_DIR),
            user=args.user or known.get("user", DEFAULT_USER),
            systemd=not args.no_systemd and not effective_root
            and known.get("systemd", "true") != "false",
            root=effective_root,
        )

    def check(self) -> None:
        """InstallError for a directory option that names a directory of the system."""
        for option, path in (("--prefix", self.prefix), ("--config-dir", self.config_dir),
                             ("--state-dir", self.state_dir)):
            inside = "/" + str(path)[len(self.root):].strip("/")
            if inside in SHARED_DIRS:
                raise InstallError(f"{option} {inside}: give the agent a directory of its "
                                   f"own, such as {inside.rstrip('/')}/watchkeeper")

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def venvs(self) -> Path:
        return self.prefix / "venvs"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "agent.toml"

    @property
    def unit_file(self) -> Path:
        return self.unit_dir / UNIT

    @property
    def record(self) -> Path:
        return self.prefix / "install.json"

    def recorded(self) -> dict[str, str]:
        """What install.json keeps: every path, the user, whether systemd runs the agent."""
        data = {key: str(value) for key, value in asdict(self).items()}
        data["systemd"] = "true" if self.systemd else "false"
        return data


@dataclass(frozen=True)
class Owner:
    """Who owns the files the agent reads (group) and writes (user); None: leave as is."""

    uid: int | None
    gid: int | None

    @classmethod
    def of(cls, layout: Layout) -> Owner:
        if layout.root:
            return cls(None, None)  # a throw-away root: the host's users are not its users
        try:
            entry = pwd.getpwnam(layout.user)
        except KeyError:
            return cls(None, None)
        return cls(entry.pw_uid, entry.pw_gid)


class Changes:
    """What this run changed, said as it happens."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, what: str) -> None:
        self.made.append(what)
        print(what, flush=True)

    def __bool__(self) -> bool:
        return bool(self.made)


# -- small idempotent file operations ----------------------------------------------------------


def ensure_dir(path: Path, mode: int, changes: Changes, *, uid: int | None = None,
               gid: int | None = None) -> None:
    """``path`` exists with ``mode`` (and owner, when given); touched only if it differs."""
    if not path.is_dir():
        path.mkdir(parents=True, mode=mode)
        changes(f"created {path}")
    ensure_mode(path, mode, changes, uid=uid, gid=gid)


def ensure_mode(path: Path, mode: int, changes: Changes, *, uid: int | None = None,
                gid: int | None = None) -> None:
    """``path`` has ``mode`` and the owner given; changed (and said) only where it differs."""
    st = path.stat()
    if st.st_mode & 0o7777 != mode:
        path.chmod(mode)
        changes(f"mode of {path} set to {mode:04o}")
    want_uid = st.st_uid if uid is None else uid
    want_gid = st.st_gid if gid is None else gid
    if (st.st_uid, st.st_gid) != (want_uid, want_gid):
        os.chown(path, want_uid, want_gid)
        changes(f"owner of {path} set to {want_uid}:{want_gid}")


def ensure_file(path: Path, content: bytes, mode: int, changes: Changes, *,
                uid: int | None = None, gid: int | None = None) -> bool:
    """``path`` holds ``content``; written atomically only if it differs. True if written."""
    try:
        same = path.read_bytes() == content
    except FileNotFoundError:
        same = False
    if not same:
        write_atomic(path, content, mode)
        changes(f"wrote {path}")
    ensure_mode(path, mode, changes, uid=uid, gid=gid)
    return not same


def write_atomic(path: Path, content: bytes, mode: int) -> None:
    """Write a temporary file beside ``path`` with ``mode``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def locked(prefix: Path) -> Iterator[None]:
    """One install or uninstall at a time on this prefix."""
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError(f"another install.sh or uninstall.sh is running on {prefix}"
                               ) from None
        yield


def run(args: Sequence[str | Path], what: str, *, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; InstallError naming ``what`` with its output when it fails."""
    try:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              env=env, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InstallError(f"{what}: {err}") from None
    if check and done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise InstallError(f"{what} failed (exit {done.returncode}): {output}")
    return done


# -- the bundle and the installed agent --------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """An unpacked bundle: its directory and manifest."""

    path: Path
    version: str
    digest: str

    @classmethod
    def at(cls, path: Path) -> Bundle:
        try:
            manifest = json.loads((path / "MANIFEST.json").read_text(encoding="utf-8"))
            return cls(path, str(manifest["version"]), str(manifest["wheelhouse_sha256"]))
        except (OSError, ValueError, KeyError) as err:
            raise InstallError(f"{path} is not an unpacked watchkeeper-agent bundle "
                               f"(MANIFEST.json: {err})") from None

    @property
    def venv_name(self) -> str:
        return f"{self.version}-{self.digest[:12]}"


def installed(layout: Layout) -> tuple[str, str] | None:
    """(version, wheelhouse digest) of the current venv, or None when there is none."""
    if layout.venv.exists() and not layout.venv.is_symlink():
        raise InstallError(f"{layout.venv} is not the link install.sh makes; move it away")
    try:
        manifest = json.loads((layout.venv / "MANIFEST.json").read_text(encoding="utf-8"))
        return str(manifest["version"]), str(manifest["wheelhouse_sha256"])
    except (OSError, ValueError, KeyError):
        return None


def build_venv(layout: Layout, bundle: Bundle, changes: Changes) -> Path:
    """A new venv for ``bundle`` under venvs/, installed offline and proved to start."""
    target = layout.venvs / bundle.venv_name
    if target.exists():
        shutil.rmtree(target)  # left by an interrupted install: never the current one
    layout.venvs.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", "--without-pip", target], f"python3 -m venv {target}")
    wheelhouse = bundle.path / "wheelhouse"
    pips = sorted(wheelhouse.glob("pip-*.whl"))
    if not pips:
        raise InstallError(f"{wheelhouse} has no pip wheel: rebuild the bundle")
    # Offline, whatever pip configuration the host has: no index, no user or site config.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PIP_NO_INDEX": "1",
           "PIP_CONFIG_FILE": os.devnull, "PYTHONNOUSERSITE": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    run([target / "bin" / "python", f"{pips[-1]}/pip", "install", "--quiet", "--no-index",
         "--find-links", wheelhouse, f"watchkeeper=={bundle.version}"],
        f"installing watchkeeper {bundle.version} from {wheelhouse}", env=env)
    agent = target / "bin" / NAME
    said = run([agent, "--version"], f"{agent} --version").stdout.split()
    if said[-1:] != [bundle.version]:
        raise InstallError(f"{agent} --version says {' '.join(said)!r}, not {bundle.version}")
    shutil.copyfile(bundle.path / "MANIFEST.json", target / "MANIFEST.json")
    changes(f"built {target} (watchkeeper-agent {bundle.version})")
    return target


def swap_venv(layout: Layout, target: Path) -> None:
    """Point the venv link at ``target`` with one rename."""
    link = layout.prefix / ".venv.new"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(target.relative_to(layout.prefix))
    os.replace(link, layout.venv)


def remove_other_venvs(layout: Layout, keep: Path, changes: Changes) -> None:
    for venv in sorted(layout.venvs.iterdir()):
        if venv.name != keep.name:
            shutil.rmtree(venv)
            changes(f"removed {venv}")


# -- configuration, token, unit ----------------------------------------------------------------


def config_text(layout: Layout, bundle: Bundle, collector: str | None) -> bytes:
    """The example configuration with this installation's paths and collector."""
    template = (bundle.path / "agent.toml").read_text(encoding="utf-8")
    values = {
        "@CONFIG_FILE@": str(layout.config_file),
        "@STATE_DIR@": str(layout.state_dir),
        "@TOKEN_FILE@": str(layout.config_dir / "token"),
        "@COLLECTOR_URL@": collector or PLACEHOLDER_URL,
    }
    for placeholder, value in values.items():
        template = template.replace(placeholder, value.replace("\\", "\\\\").replace('"', '\\"'))
    return template.encode()


def read_config(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InstallError(f"cannot read {path}: {err}") from None


def token_file_of(config_file: Path) -> Path | None:
    """The config's ``collector.token_file`` (relative to the config's directory)."""
    collector = read_config(config_file).get("collector", {})
    value = collector.get("token_file") if isinstance(collector, dict) else None
    return None if not isinstance(value, str) else config_file.parent / value


def unit_text(layout: Layout, bundle: Bundle) -> bytes:
    """The bundle's unit with this installation's paths and user."""
    text = (bundle.path / UNIT).read_text(encoding="utf-8")
    for default, actual in ((DEFAULT_PREFIX, layout.prefix),
                            (DEFAULT_CONFIG_DIR, layout.config_dir),
                            (DEFAULT_STATE_DIR, layout.state_dir)):
        text = text.replace(default, str(actual))
    for key in ("User", "Group"):
        text = text.replace(f"\n{key}={DEFAULT_USER}\n", f"\n{key}={layout.user}\n")
    return text.encode()


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["systemctl", *args], f"systemctl {' '.join(args)}", check=check)


def service_active() -> bool:
    return systemctl("is-active", "--quiet", UNIT, check=False).returncode == 0


def ensure_user(layout: Layout, create: bool, changes: Changes) -> None:
    """The agent's user, created as a system user (no login, no home) if missing."""
    if layout.root:
        return
    try:
        pwd.getpwnam(layout.user)
        return
    except KeyError:
        pass
    if not create:
        print(f"warning: user {layout.user} does not exist (--no-user): the files stay "
              "owned by the installing user", file=sys.stderr)
        return
    run(["useradd", "--system", "--user-group", "--home-dir", layout.state_dir,
         "--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", USER_COMMENT,
         layout.user], f"creating the user {layout.user}")
    changes(f"created the system user {layout.user}")


# -- install -----------------------------------------------------------------------------------


def install(args: argparse.Namespace) -> int:
    """install.sh: put the bundle in place; see the module's docstring."""
    bundle = Bundle.at(Path(args.bundle).resolve())
    layout = Layout.from_options(args)
    layout.check()
    secret_file = Path(args.enroll_secret_file) if args.enroll_secret_file else None
    if args.token_file and secret_file:
        raise InstallError("give --token-file or --enroll-secret-file, not both")
    if secret_file and not args.customer:
        raise InstallError("--enroll-secret-file needs --customer")
    given_config = Path(args.config).read_bytes() if args.config else None
    given_token = Path(args.token_file).read_text(encoding="utf-8").strip() \
        if args.token_file else None
    if args.token_file and not given_token:
        raise InstallError(f"{args.token_file} is empty")
    changes = Changes()
    ensure_user(layout, not args.no_user, changes)
    owner = Owner.of(layout)
    ensure_dir(layout.prefix, 0o755, changes)
    with locked(layout.prefix):
        ensure_dir(layout.config_dir, 0o750, changes, gid=owner.gid)
        ensure_dir(layout.state_dir, 0o700, changes, uid=owner.uid, gid=owner.gid)
        before = installed(layout)
        fresh = before is None or before[1] != bundle.digest
        new_venv = build_venv(layout, bundle, changes) if fresh else None

        config = layout.config_file
        if given_config is not None:
            ensure_file(config, given_config, 0o640, changes, gid=owner.gid)
        elif not config.exists():
            ensure_file(config, config_text(layout, bundle, args.collector), 0o640, changes,
                        gid=owner.gid)
            if not args.collector:
                print(f"warning: {config} names no collector: set collector.url",
                      file=sys.stderr)
        elif args.collector:
            print(f"note: {config} is kept as it is; --collector applies to a new "
                  "configuration only", file=sys.stderr)
        token_file = token_file_of(config)

        was_active = layout.systemd and new_venv is not None and before is not None \
            and service_active()
        if was_active:
            systemctl("stop", UNIT)
            changes(f"stopped {UNIT}")
        if new_venv is not None:
            swap_venv(layout, new_venv)
            changes(f"{layout.venv} now points to {new_venv.name}")

        unit_changed = False
        if layout.systemd or layout.root:
            unit_changed = ensure_file(layout.unit_file, unit_text(layout, bundle), 0o644,
                                       changes)
        for script in ("uninstall.sh", "installer.py"):
            ensure_file(layout.prefix / script, (bundle.path / script).read_bytes(),
                        0o755 if script.endswith(".sh") else 0o644, changes)
        for doc in DOCS:
            if (bundle.path / "doc" / doc).is_file():
                ensure_dir(layout.prefix / "share" / "doc", 0o755, changes)
                ensure_file(layout.prefix / "share" / "doc" / doc,
                            (bundle.path / "doc" / doc).read_bytes(), 0o644, changes)
        ensure_file(layout.record, (json.dumps(layout.recorded(), indent=2) + "\n").encode(),
                    0o644, changes)

        token = install_token(layout, token_file, given_token, secret_file, args, owner,
                              changes)
        if layout.systemd:
            if unit_changed:
                systemctl("daemon-reload")
            if systemctl("is-enabled", "--quiet", UNIT, check=False).returncode != 0:
                systemctl("enable", UNIT)
                changes(f"enabled {UNIT}")
            # Started again after an upgrade; started first when a token arrives (or came
            # with the first install); otherwise left as the operator left it.
            wanted = was_active or token == "new" or (before is None and token == "kept")
            if wanted and not service_active():
                systemctl("start", UNIT)
                changes(f"started {UNIT}")
            elif token == "none":
                print(f"note: {UNIT} is not started: no token yet (install.sh "
                      "--enroll-secret-file or --token-file)", file=sys.stderr)
        if new_venv is not None:
            remove_other_venvs(layout, new_venv, changes)
    if new_venv is not None and before is not None:
        outcome = f"upgraded from {before[0]}"
    else:
        outcome = "installed" if changes else "unchanged"
    print(f"{NAME} {bundle.version}: {outcome}")
    return 0


def install_token(layout: Layout, token_file: Path | None, given: str | None,
                  secret_file: Path | None, args: argparse.Namespace, owner: Owner,
                  changes: Changes) -> str:
    """Copy the given token, or enroll when there is none yet: ``"new"`` (the token is
    new), ``"kept"`` (it was there) or ``"none"``."""
    if token_file is None:
        if given or secret_file:
            raise InstallError(f"{layout.config_file} has no collector.token_file to keep "
                               "the token in")
        return "kept"  # an inline token, or none: `validate` says which
    present = token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else ""
    if given is not None:
        written = ensure_file(token_file, (given + "\n").encode(), 0o640, changes,
                              gid=owner.gid)
        return "new" if written else "kept"
    if present:
        ensure_mode(token_file, 0o640, changes, gid=owner.gid)
        return "kept"
    if secret_file is not None:
        command: list[str | Path] = [
            layout.venv / "bin" / NAME, "enroll", "--config", layout.config_file,
            "--secret-file", secret_file, "--customer", args.customer]
        if args.fqdn:
            command += ["--fqdn", args.fqdn]
        for tag in args.tags:
            command += ["--tag", tag]
        done = run(command, "enrolling with the collector")
        changes(done.stdout.strip() or "enrolled")
        ensure_mode(token_file, 0o640, changes, gid=owner.gid)
        return "new"
    return "none"


# -- uninstall ---------------------------------------------------------------------------------


def uninstall(args: argparse.Namespace) -> int:
    """uninstall.sh: remove the agent; with --purge its configuration, state and user too."""
    record = Path(args.installed) / "install.json" if args.installed \
        else Layout.from_options(args).record
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    probe = Layout.from_options(args)
    layout = Layout.from_options(args, recorded) if recorded else probe
    version = (installed(layout) or ("?", ""))[0]
    changes = Changes()
    if not layout.prefix.is_dir() and not args.purge:
        print(f"{NAME}: nothing installed under {layout.prefix}")
        return 0
    if layout.systemd and layout.unit_file.exists():
        systemctl("disable", "--now", UNIT, check=False)
        changes(f"stopped and disabled {UNIT}")
    if layout.unit_file.exists():
        layout.unit_file.unlink()
        changes(f"removed {layout.unit_file}")
        if layout.systemd:
            systemctl("daemon-reload")
    if layout.prefix.is_dir():
        with locked(layout.prefix):
            for name in ("venv", ".venv.new", "uninstall.sh", "installer.py", "install.json"):
                path = layout.prefix / name
                if path.is_symlink() or path.is_file():
                    path.unlink()
                    changes(f"removed {path}")
            if layout.venvs.is_dir():
                shutil.rmtree(layout.venvs)
                changes(f"removed {layout.venvs}")
            for doc in DOCS:
                remove(layout.prefix / "share" / "doc" / doc, changes)
            remove_empty(layout.prefix / "share" / "doc", layout.prefix / "share")
            (layout.prefix / ".lock").unlink(missing_ok=True)
        remove_empty(layout.prefix)
    if args.purge:
        purge(layout, changes)
    print(f"{NAME} {version}: {'purged' if args.purge else 'uninstalled'}"
          + ("" if args.purge else f" (kept {layout.config_dir} and {layout.state_dir})"))
    return 0


def purge(layout: Layout, changes: Changes) -> None:
    """The configuration, the token, the check state, the spool and the user install.sh
    created; anything else in those directories stays (and keeps its directory)."""
    config = layout.config_file
    if config.is_file():
        token = token_file_of(config)
        if token is not None and token.parent == layout.config_dir:
            remove(token, changes)
        remove(config, changes)
    remove(layout.config_dir / "token", changes)
    for name in ("spool", "checks"):
        path = layout.state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            changes(f"removed {path}")
    remove_empty(layout.config_dir, layout.state_dir)
    if layout.root:
        return
    try:
        entry = pwd.getpwnam(layout.user)
    except KeyError:
        return
    if entry.pw_gecos != USER_COMMENT:
        print(f"note: user {layout.user} is kept: install.sh did not create it",
              file=sys.stderr)
        return
    run(["userdel", layout.user], f"removing the user {layout.user}")
    with contextlib.suppress(KeyError):
        grp.getgrnam(layout.user)
        run(["groupdel", layout.user], f"removing the group {layout.user}", check=False)
    changes(f"removed the user {layout.user}")


def remove(path: Path, changes: Changes) -> None:
    if path.is_file() or path.is_symlink():
        path.unlink()
        changes(f"removed {path}")


def remove_empty(*directories: Path) -> None:
    for directory in directories:
        with contextlib.suppress(FileNotFoundError, OSError):
            directory.rmdir()  # only when empty: what others put there stays


# -- command line ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="installer.py")
    commands = top.add_subparsers(dest="command", required=True)
    for name in ("install", "uninstall"):
        sub = commands.add_parser(name, prog=f"{name}.sh")
        sub.add_argument("--prefix", help=f"where the agent goes (default {DEFAULT_PREFIX})")
        sub.add_argument("--config-dir", help=f"default {DEFAULT_CONFIG_DIR}")
        sub.add_argument("--state-dir", help=f"default {DEFAULT_STATE_DIR}")
        sub.add_argument("--unit-dir", help=f"where the unit goes (default {UNIT_DIR})")
        sub.add_argument("--user", help=f"the agent's user (default {DEFAULT_USER})")
        sub.add_argument("--no-systemd", action="store_true",
                         help="no unit and no systemctl (another supervisor runs the agent)")
        sub.add_argument("--root", default="",
                         help="a throw-away root: every path under it, no user, no systemctl")
        if name == "uninstall":
            sub.add_argument("--purge", action="store_true",
                             help="also the configuration, token, state, spool and user")
            sub.add_argument("--installed", help=argparse.SUPPRESS)  # uninstall.sh's own
            continue
        sub.add_argument("--bundle", required=True, help=argparse.SUPPRESS)
        sub.add_argument("--collector", metavar="URL", help="the collector's URL (for a new "
                         "configuration)")
        sub.add_argument("--token-file", metavar="FILE", help="the host's token, to copy")
        sub.add_argument("--enroll-secret-file", metavar="FILE",
                         help="enroll with this secret when there is no token yet")
        sub.add_argument("--customer", help="the customer to enroll for")
        sub.add_argument("--fqdn", help="the host name to enroll (default: the config's)")
        sub.add_argument("--tag", action="append", dest="tags", default=[],
                         help="a label for the collector's priority rules (repeatable)")
        sub.add_argument("--config", metavar="FILE", help="the agent.toml to install "
                         "(default: keep the present one, or write the example)")
        sub.add_argument("--no-user", action="store_true", help="do not create the user")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.root:
        args.root = os.path.abspath(args.root).rstrip("/")
    try:
        return install(args) if args.command == "install" else uninstall(args)
    except InstallError as err:
        print(f"{args.command}.sh: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{args.command}.sh: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
