"""``watchkeeper-collector`` commands for users and API tokens.

    user add NAME --role admin|tse|noc|viewer [--customer C] [--email E] [--password-stdin]
    user list | user disable NAME | user enable NAME | user password NAME (from stdin)
    token create --user NAME [--name N] [--expires 90d]   (prints the token once)
    token list [--user NAME] | token revoke ID
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from checks.config import ConfigError, parse_duration
from collector.commands import fail, in_store
from collector.errors import CollectorError
from collector.people import service
from collector.people.models import ROLES
from collector.settings import Settings
from collector.timefmt import iso, iso_or_none


def add_commands(sub: Any) -> None:
    """Add this domain's subcommands to the collector's command line."""
    user = sub.add_parser("user", help="manage the people who use the API and the dashboard")
    user_sub = user.add_subparsers(dest="user_command", required=True)

    add = user_sub.add_parser("add", help="add a user")
    add.add_argument("name", help="the login name")
    add.add_argument("--role", required=True, choices=ROLES,
                     help="admin: everything; tse: works tickets; noc: reads everything; "
                          "viewer: reads one customer")
    add.add_argument("--customer", help="the customer a viewer may see (viewers only)")
    add.add_argument("--email", help="the user's email address")
    add.add_argument("--password-stdin", action="store_true",
                     help="read a password for HTTP Basic login from the first line of stdin")
    _common(add, _user_add)

    _common(user_sub.add_parser("list", help="list the users"), _user_list)
    for verb, text in (("disable", "refuse the user's tokens and password from now on"),
                       ("enable", "let a disabled user in again")):
        cmd = user_sub.add_parser(verb, help=text)
        cmd.add_argument("name", help="the login name")
        _common(cmd, _user_disable if verb == "disable" else _user_enable)
    pw = user_sub.add_parser("password", help="set a user's password from the first line of stdin")
    pw.add_argument("name", help="the login name")
    _common(pw, _user_password)

    token = sub.add_parser("token", help="manage API tokens (Authorization: Bearer)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--user", required=True, help="the user the token acts as")
    create.add_argument("--name", help="what the token is for (shown in 'token list')")
    create.add_argument("--expires", help='lifetime such as "90d" or "12h" (default: never)')
    _common(create, _token_create)
    listing = token_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--user", help="only this user's tokens")
    _common(listing, _token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="the token's id (see 'token list')")
    _common(revoke, _token_revoke)


def _common(parser: argparse.ArgumentParser, handler: Callable[..., int]) -> None:
    parser.add_argument("--config", help="TOML config file")
    parser.set_defaults(handler=handler)




def _read_password() -> str:
    line = sys.stdin.readline()
    if not line:
        raise service.PeopleError("--password-stdin: no password on stdin")
    return line.rstrip("\r\n")


def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        password = _read_password() if args.password_stdin else None
        if password is not None:
            service.hash_password(password)  # refuse a bad password before touching the store
        in_store(settings, lambda conn: service.create_user(
            conn, name=args.name, role=args.role, customer=args.customer, email=args.email,
            password=password, known_customers=settings.customers.keys(), now=time.time()))
    except CollectorError as exc:
        return fail(_argument(exc.detail))
    print(f"added user {args.name} ({args.role}"
          f"{', customer ' + args.customer if args.customer else ''})", file=sys.stderr)
    return 0


def _argument(detail: str, user: str = "--user") -> str:
    """Errors of the service name a field (``customer: ...``); the CLI names the option
    (``user``: how this command names the user)."""
    field, sep, rest = detail.partition(": ")
    options = {"customer": "--customer", "password": "--password-stdin", "role": "--role",
               "expires": "--expires", "user": user, "name": "NAME", "token": "ID"}
    return f"{options[field]}: {rest}" if sep and field in options else detail


def _user_list(args: argparse.Namespace, settings: Settings) -> int:
    del args
    for u in in_store(settings, service.list_users):
        flags = ["disabled"] if u.disabled else []
        if u.has_password:
            flags.append("password")
        print(f"{u.name}\t{u.role}\t{u.customer or '-'}\t{u.email or '-'}\t"
              f"{','.join(flags) or '-'}")
    return 0


def _user_disable(args: argparse.Namespace, settings: Settings) -> int:
    return _set_disabled(args.name, settings, disabled=True)


def _user_enable(args: argparse.Namespace, settings: Settings) -> int:
    return _set_disabled(args.name, settings, disabled=False)


def _set_disabled(name: str, settings: Settings, *, disabled: bool) -> int:
    try:
        in_store(settings, lambda conn: service.set_disabled(conn, name, disabled=disabled))
    except CollectorError as exc:
        return fail(_argument(exc.detail, user="NAME"))
    print(f"user {name} {'disabled' if disabled else 'enabled'}", file=sys.stderr)
    return 0


def _user_password(args: argparse.Namespace, settings: Settings) -> int:
    try:
        password = _read_password()
        service.hash_password(password)
        in_store(settings, lambda conn: service.set_password(conn, args.name, password))
    except CollectorError as exc:
        return fail(_argument(exc.detail, user="NAME"))
    print(f"password of {args.name} set", file=sys.stderr)
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    now = time.time()
    expires_at = None
    if args.expires is not None:
        try:
            lifetime = parse_duration(args.expires, "--expires")
        except ConfigError as exc:
            return fail(str(exc))
        if lifetime <= 0:
            return fail("--expires: must be a positive duration such as \"90d\"")
        expires_at = now + lifetime
    try:
        token_id, token = in_store(settings, lambda conn: service.create_token(
            conn, user=args.user, name=args.name, expires_at=expires_at, now=now))
    except CollectorError as exc:
        return fail(_argument(exc.detail))
    print(token)
    sys.stdout.flush()
    until = f", valid until {iso(expires_at)}" if expires_at is not None else ""
    print(f"Token {token_id} for {args.user}{until}. It is shown only once and only its hash "
          "is stored: send it as 'Authorization: Bearer <token>'.", file=sys.stderr)
    return 0


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        tokens = in_store(settings, lambda conn: service.list_tokens(conn, user=args.user))
    except CollectorError as exc:
        return fail(_argument(exc.detail))
    for t in tokens:
        print(f"{t.id}\t{t.user}\t{t.name}\tcreated {iso(t.created_at)}\t"
              f"expires {iso_or_none(t.expires_at) or 'never'}\t"
              f"last used {iso_or_none(t.last_used_at) or 'never'}")
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    try:
        token_id = int(args.id)
    except ValueError:
        return fail(f"ID: a token id is a number, got {args.id!r}")
    try:
        in_store(settings, lambda conn: service.revoke_token(conn, token_id))
    except CollectorError as exc:
        return fail(_argument(exc.detail))
    print(f"token {token_id} revoked", file=sys.stderr)
    return 0
