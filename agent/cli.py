"""``watchkeeper-agent``: ``run`` the daemon, ``check`` once like a Nagios plugin, ``validate``,
``record-baseline``, ``enroll``.

Exit codes: ``check`` exits with the worst status (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN); a configuration error on any command prints the file, the key and what is
wrong on stderr and exits 2.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from agent import __version__
from agent.config import AgentConfig, CheckLookup, CheckSpec, load_config, read_config_file
from agent.scheduler import Produced, ResultSink, Scheduler, exit_status, run_once
from agent.spool import Spool, SpoolStats, peek_stats
from checks import registry
from checks.config import ConfigError
from checks.registry import CheckContext

if TYPE_CHECKING:
    import argparse

    from agent.transport import Transport

log = logging.getLogger("agent")

CONFIG_ERROR = 2
FINAL_PUSH_BUDGET = 5.0


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter at the terminal's width, found without ``shutil``.

    argparse imports ``shutil`` for the width, and ``shutil`` imports zlib, bz2 and lzma:
    0.4 MB the daemon would carry for a help text it never prints.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except (AttributeError, ValueError, OSError):  # not a terminal, or no stdout
            columns = 80
    import argparse

    return argparse.HelpFormatter(prog, width=max(columns, 40) - 2)


def main(argv: Sequence[str] | None = None, *, lookup: CheckLookup = registry.load) -> int:
    """Parse the command line and run one command; returns the exit code.

    ``run`` from the command line (``argv`` not given) executes itself once more as the
    daemon (``agent.launch``), which starts here without parsing the command line again.
    """
    from agent.launch import daemon_config, launch_daemon

    if argv is None and "run" in sys.argv[1:] and (daemon := daemon_config()) is not None:
        return _run(*daemon, lookup=lookup)
    # Imported here: the daemon does without it (0.6 MB with gettext).
    import argparse

    parser = argparse.ArgumentParser(
        prog="watchkeeper-agent", description="Check this host and push results to a collector.",
        formatter_class=_help_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, formatter_class=_help_formatter)

    run = command("run", "run the agent daemon")
    run.add_argument("--config", required=True, metavar="PATH", help="agent TOML file")
    check = command("check", "run checks once and exit with the worst status")
    check.add_argument("--config", required=True, metavar="PATH", help="agent TOML file")
    check.add_argument("--json", action="store_true", help="print results as JSON")
    check.add_argument("names", nargs="*", metavar="NAME", help="check instances (default: all)")
    validate = command("validate", "check the configuration and exit")
    validate.add_argument("--config", required=True, metavar="PATH", help="agent TOML file")
    baseline = command(
        "record-baseline",
        "record the approved state (firewall ruleset, listening sockets) of the checks "
        "that compare against one")
    baseline.add_argument("--config", required=True, metavar="PATH", help="agent TOML file")
    baseline.add_argument("names", nargs="*", metavar="NAME",
                          help="check instances (default: every one that keeps a baseline)")
    enroll = command("enroll", "enroll this host with the collector's enrollment secret and "
                               "keep its token in collector.token_file")
    enroll.add_argument("--config", required=True, metavar="PATH", help="agent TOML file")
    enroll.add_argument("--secret-file", required=True, metavar="FILE",
                        help="file holding the enrollment secret")
    enroll.add_argument("--customer", required=True, help="the customer this host belongs to")
    enroll.add_argument("--fqdn", metavar="NAME",
                        help="the host name to enroll (default: [agent] host, else this "
                             "host's FQDN)")
    enroll.add_argument("--tag", action="append", dest="tags", default=[], metavar="TAG",
                        help="a label the collector's priority rules match (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "enroll":
        return _enroll(args, lookup=lookup)
    if args.command == "run":
        tables = None
        if argv is None:
            try:
                tables = read_config_file(args.config)
            except ConfigError as err:
                print(f"config error: {err}", file=sys.stderr)
                return CONFIG_ERROR
            launch_daemon(args.config, tables)  # returns only if it could not
        return _run(args.config, tables, lookup=lookup)
    try:
        if args.command == "check":
            config = load_config(args.config, lookup=lookup)
            return check_once(config, args.names, as_json=args.json)
        if args.command == "record-baseline":
            config = load_config(args.config, lookup=lookup)
            return record_baselines(config, args.names)
        config = load_config(args.config, lookup=lookup, for_run=True)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return CONFIG_ERROR
    enabled = [c.name for c in config.checks if c.enabled]
    print(f"config OK: {len(enabled)} checks ({', '.join(enabled)})")
    return 0


def _enroll(args: argparse.Namespace, *, lookup: CheckLookup) -> int:
    """``enroll``: 0 enrolled, 1 refused or failed (said on stderr), 2 a config error."""
    # Imported here: only this command enrolls.
    from agent.enroll import EnrollError, enroll, read_secret

    try:
        config = load_config(args.config, lookup=lookup)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return CONFIG_ERROR
    try:
        host, token_file = enroll(config, secret=read_secret(args.secret_file),
                                  customer=args.customer, fqdn=args.fqdn, tags=args.tags)
    except EnrollError as err:
        print(f"enroll: {err}", file=sys.stderr)
        return 1
    print(f"enrolled {host} for customer {args.customer}; token written to {token_file}")
    return 0


def _run(config_path: str, tables: dict[str, Any] | None, *, lookup: CheckLookup) -> int:
    try:
        config = load_config(config_path, lookup=lookup, for_run=True, tables=tables)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return CONFIG_ERROR
    return run_agent(config)


# -- check -----------------------------------------------------------------------------------


def check_once(
    config: AgentConfig, names: Sequence[str], *, as_json: bool, out: IO[str] | None = None
) -> int:
    """Run the named (or all enabled) checks once in parallel; print; return the exit code."""
    out = out or sys.stdout
    specs = _select(config, names)
    state_dir = _check_state_dir(config)
    started_at = time.time()

    def agent_info() -> dict[str, Any]:
        return _agent_info(started_at, peek_stats(config.spool_dir), None)

    produced = run_once(specs, state_dir=state_dir, agent_info=agent_info)
    if as_json:
        rows = [{**p.result.to_wire(), "type": p.type_name, "duration": round(p.duration, 6)}
                for p in produced]
        json.dump(rows, out, indent=2)
        out.write("\n")
    else:
        _print_table(produced, out)
    return int(exit_status(produced))


def _select(config: AgentConfig, names: Sequence[str]) -> list[CheckSpec]:
    if not names:
        return [c for c in config.checks if c.enabled]
    by_name = {c.name: c for c in config.checks}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(by_name)
        raise ConfigError("", f"no check named {missing[0]!r} (configured: {known})",
                          config.file.name)
    return [by_name[n] for n in dict.fromkeys(names)]


def _print_table(produced: Sequence[Produced], out: IO[str]) -> None:
    rows = [("CHECK", "TARGET", "STATUS", "SUMMARY")]
    rows += [(p.result.check, p.result.target or "-", p.result.status.name, p.result.summary)
             for p in produced]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)))
        out.write(f"  {row[3]}\n")


def record_baselines(config: AgentConfig, names: Sequence[str], out: IO[str] | None = None) -> int:
    """Record the baseline of each named (default: every) check whose type keeps one.

    A check type keeps a baseline when its module has ``record_baseline(config, context)``;
    the baseline goes where the running agent's check finds it (its state directory).
    """
    import importlib

    out = out or sys.stdout
    chosen = _select(config, names) if names else [c for c in config.checks if c.enabled]
    state_dir = _check_state_dir(config)
    recorded = failed = 0
    for spec in chosen:
        module = importlib.import_module(spec.check_class.__module__)
        record = getattr(module, "record_baseline", None)
        if record is None:
            if names:
                raise ConfigError("", f"check {spec.name!r} (type {spec.type_name}) keeps no "
                                      "baseline", config.file.name)
            continue
        try:
            what = record(spec.config, CheckContext(name=spec.name, state_dir=state_dir,
                                                    timeout=spec.timeout))
        except Exception as err:  # the ruleset or the sockets could not be read: say which
            print(f"{spec.name}: cannot record the baseline: {err}", file=sys.stderr)
            failed += 1
            continue
        count = f"{len(what)} entries" if isinstance(what, list | tuple | dict) else str(what)
        out.write(f"{spec.name}: baseline recorded ({count})\n")
        recorded += 1
    if not recorded and not failed:
        out.write("no configured check keeps a baseline (firewall, intrusion)\n")
        return CONFIG_ERROR
    return 1 if failed else 0


def _check_state_dir(config: AgentConfig) -> Path:
    state_dir = config.state_dir / "checks"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        # `check` may be run by a user who cannot write the daemon's state; the checks
        # that need state will say so themselves.
        logging.getLogger("agent").debug("cannot create %s: %s", state_dir, err)
    return state_dir


def _agent_info(
    started_at: float, spool: SpoolStats | None, sender_stats: Any | None
) -> dict[str, Any]:
    return {
        "version": __version__,
        "started_at": started_at,
        "spool_depth": spool.depth if spool else 0,
        "spool_bytes": spool.bytes if spool else 0,
        "spool_oldest_age": spool.oldest_age if spool else None,
        "spool_dropped_total": spool.dropped_total if spool else 0,
        "spool_rejected_total": spool.rejected_total if spool else 0,
        "send_failures_total": sender_stats.send_failures_total if sender_stats else 0,
        "last_push_ok_at": sender_stats.last_push_ok_at if sender_stats else None,
    }


# -- run -------------------------------------------------------------------------------------


def run_agent(
    config: AgentConfig,
    *,
    transport: Transport | None = None,
    stop: threading.Event | None = None,
    install_signals: bool = True,
) -> int:
    """The daemon: schedule checks into the spool and push it until SIGTERM/SIGINT."""
    _setup_logging(config.log_level)
    stop = stop or threading.Event()
    try:
        (config.state_dir / "checks").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _startup_error(config, "agent.state_dir", f"cannot create {err.filename}: "
                              f"{err.strerror}")
    try:
        spool = Spool(config.spool_dir, max_bytes=config.spool.max_bytes,
                      max_age=config.spool.max_age)
    except OSError as err:
        return _startup_error(config, "spool.dir", f"cannot open the spool: {err}")
    except Exception as err:  # sqlite3.Error: a damaged or foreign file
        return _startup_error(config, "spool.dir", f"cannot open the spool: "
                              f"{type(err).__name__}: {err}")

    # Imported here: the sender and its HTTP client are for `run` only.
    from agent.sender import Sender, TokenSource

    started_at = time.time()
    assert config.collector.url is not None  # load_config(for_run=True) made sure
    token = TokenSource(config.collector.token, config.collector.token_file)
    sender = Sender(
        spool, config.collector, host=config.host, token=token, transport=transport,
        agent={"version": __version__, "started_at": started_at,
               "interval": config.shortest_interval},
    )

    def agent_info() -> dict[str, Any]:
        return _agent_info(started_at, spool.stats(), sender.stats)

    sink: ResultSink = spool
    metrics_server = None
    metrics_address = config.metrics.address
    if metrics_address is not None:
        # Imported only when configured: an agent without the endpoint carries none of it.
        from agent.metrics import start_endpoint

        try:
            sink, metrics_server = start_endpoint(
                metrics_address, spool=spool, spool_dir=config.spool_dir,
                sender_stats=lambda: sender.stats, started_at=started_at)
        except OSError as err:
            sender.close()
            spool.close()
            return _startup_error(config, "metrics.listen", f"cannot listen on "
                                  f"{config.metrics.listen}: {err.strerror or err}")
    scheduler = Scheduler(config.checks, state_dir=config.state_dir / "checks", sink=sink,
                          agent_info=agent_info)
    if install_signals:
        _install_signal_handlers(stop)
    enabled = [c.name for c in config.checks if c.enabled]
    log.info("watchkeeper-agent %s starting as %s: %d checks (%s), pushing to %s, spool %s "
             "(%d results waiting)", __version__, config.host, len(enabled), ", ".join(enabled),
             config.collector.url, spool.path, len(spool))
    died: list[str] = []

    def guarded(target: Any, name: str) -> threading.Thread:
        """A thread that, if it ever ends on its own, stops the agent (and says so)."""
        def run() -> None:
            try:
                target()
            except BaseException:
                log.exception("the %s thread failed", name)
            finally:
                if not stop.is_set():
                    died.append(name)
                    stop.set()
        return threading.Thread(target=run, name=name, daemon=True)

    sender_thread = guarded(
        lambda: sender.run(final_push_budget=FINAL_PUSH_BUDGET), "sender")
    scheduler_thread = guarded(scheduler.run, "scheduler")
    sender_thread.start()
    scheduler_thread.start()
    # Parsing the config and building the check models leaves cyclic garbage behind;
    # collecting it once now returns most of a megabyte that would otherwise linger until
    # a rare full collection. Freezing what survives keeps later collections short.
    gc.collect()
    gc.freeze()
    try:
        # No polling: a signal handler or a thread that died sets ``stop``. (Waking every
        # second to look cost more CPU than pushing the results.)
        while not stop.wait(3600.0):
            pass
        if died:
            log.error("the %s thread died; stopping", died[0])
    finally:
        log.info("stopping: no new check runs; last push, then closing the spool")
        scheduler.stop()
        scheduler_thread.join(5.0)
        if metrics_server is not None:
            metrics_server.stop()
        sender.stop()
        sender_thread.join(config.collector.timeout + FINAL_PUSH_BUDGET + 1.0)
        sender.close()
        spool.close()
        log.info("stopped; %s", "spool closed" if not sender_thread.is_alive()
                 else "the last push did not finish in time; results stay spooled")
    return 1 if died else 0


def _startup_error(config: AgentConfig, key: str, message: str) -> int:
    print(f"config error: {ConfigError(key, message, config.file.name)}", file=sys.stderr)
    return CONFIG_ERROR


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now; the spool is safe on disk",
                        signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
