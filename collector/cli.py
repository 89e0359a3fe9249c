"""``watchkeeper-collector``: serve, enroll, migrate, hosts."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from checks.config import ConfigError
from collector.commands import Handler
from collector.db import create_db_engine, migrate, session_factory
from collector.errors import AlreadyEnrolled
from collector.maintenance import cli as maintenance_cli
from collector.people import cli as people_cli
from collector.rt import cli as rt_cli
from collector.settings import Settings, load_settings
from collector.timefmt import CLOCK_OFFSET_ENV, OffsetClock

EXIT_CONFIG = 2
# Domains with commands of their own: each has add_commands(subparsers), which adds its
# subcommands (each with a --config option) and sets ``handler`` (a Handler) on them.
COMMAND_MODULES = (people_cli, maintenance_cli, rt_cli)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper-collector",
        description="The watchkeeper collector: receives agent pushes, keeps host state.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP collector (migrates the store first)")
    serve.add_argument("--config", help="TOML config file (default: SQLite under ./var/)")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument("--access-log", action="store_true", help="log every request")

    enroll = sub.add_parser("enroll", help="enroll a host and print its token once")
    enroll.add_argument("--customer", required=True, help="the customer the host belongs to")
    enroll.add_argument("--host", required=True, dest="fqdn", help="the host's FQDN")
    enroll.add_argument("--config", help="TOML config file")
    enroll.add_argument("--critical", action="store_true",
                        help="mark the host as critical for the customer")
    enroll.add_argument("--rotate", action="store_true",
                        help="replace the token of an already enrolled host")
    enroll.add_argument("--tag", action="append", dest="tags", metavar="TAG",
                        help="a label the priority rules can match (repeatable; with "
                             "--rotate, replaces the host's tags)")

    mig = sub.add_parser("migrate", help="upgrade the store's schema to the latest version")
    mig.add_argument("--config", help="TOML config file")

    hosts = sub.add_parser("hosts", help="list enrolled hosts")
    hosts.add_argument("--config", help="TOML config file")
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "serve":
            server = settings.server.model_copy(update={
                k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
            })
            settings = settings.model_copy(update={"server": server})
            tls = _tls_files(settings, args.config)
    except ConfigError as exc:
        print(f"watchkeeper-collector: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.command == "serve":
            return _serve(settings, access_log=args.access_log, tls=tls)
        if args.command == "enroll":
            return _enroll(settings, args.customer, args.fqdn, args.critical, args.rotate,
                           args.tags)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "hosts":
            return _hosts(settings)
        handler: Handler = args.handler
        return handler(args, settings)
    except SQLAlchemyError as exc:
        print(f"watchkeeper-collector: database error: {exc}", file=sys.stderr)
        return 1


def _migrate(settings: Settings) -> int:
    engine = create_db_engine(settings)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    print(f"schema is up to date ({engine.url.render_as_string(hide_password=True)})",
          file=sys.stderr)
    return 0


def _enroll(settings: Settings, customer: str, fqdn: str, critical: bool, rotate: bool,
            tags: list[str] | None) -> int:
    from collector.hosts.service import enroll

    engine = create_db_engine(settings)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            token = enroll(session=session, customer=customer, fqdn=fqdn, critical=critical,
                           rotate=rotate, now=time.time(), tags=tags)
    except AlreadyEnrolled as exc:
        print(f"watchkeeper-collector: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(token)
    sys.stdout.flush()
    print(
        f"Enrolled {fqdn} for customer {customer}. The token above is shown only once and "
        "only its hash is stored: put it in the agent's config now.",
        file=sys.stderr,
    )
    return 0


def _hosts(settings: Settings) -> int:
    from collector.hosts.service import list_hosts

    engine = create_db_engine(settings)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            hosts = list_hosts(session=session)
    finally:
        engine.dispose()
    for h in hosts:
        silent = " SILENT" if h.silent else ""
        print(f"{h.customer}\t{h.fqdn}\t{h.worst_status_name}{silent}\t"
              f"last push {h.last_seen_at or 'never'}")
    return 0


def _serve(settings: Settings, *, access_log: bool, tls: tuple[str, str] | None) -> int:
    import uvicorn

    from collector.app import create_app

    engine = create_db_engine(settings)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    offset_file = os.environ.get(CLOCK_OFFSET_ENV)
    app = create_app(settings, clock=OffsetClock(offset_file)) if offset_file else \
        create_app(settings)
    _tune_garbage_collector()
    uvicorn.run(app, host=settings.server.host, port=settings.server.port,
                access_log=access_log, log_level="info",
                ssl_certfile=tls[0] if tls else None, ssl_keyfile=tls[1] if tls else None)
    return 0


def _tls_files(settings: Settings, file: str | None) -> tuple[str, str] | None:
    """The certificate and key to serve HTTPS with, proven loadable before serving."""
    cert, key = settings.server.tls_cert_file, settings.server.tls_key_file
    if cert is None or key is None:
        return None
    import ssl

    for name, path in (("server.tls_cert_file", cert), ("server.tls_key_file", key)):
        try:
            open(path, "rb").close()
        except OSError as exc:
            raise ConfigError(name, f"cannot read {path}: {exc.strerror}", file) from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError("server.tls_cert_file", f"{cert} with {key} is not a usable PEM "
                          f"certificate and key ({exc.reason or exc})", file) from None
    return str(cert), str(key)


def _tune_garbage_collector() -> None:
    """Keep the collector's start-up heap out of garbage collection, and collect less often.

    After start-up the process holds about 100k long-lived objects (FastAPI, SQLAlchemy,
    pydantic schemas); with the default thresholds every push's allocations trigger
    collections that rescan them, which profiling showed as the largest single cost of
    the ingest path. Freezing moves them to a generation that is never scanned; the
    higher first threshold lets a push's short-lived objects die by reference counting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


if __name__ == "__main__":
    sys.exit(main())
