"""Collector settings: a TOML file, then the environment, into one frozen model.

Built once (by the CLI or a test) and passed to ``create_app``; nothing reads settings
at import time. Every key is described in ``docs/collector.md``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from checks.config import ConfigError

ENV_PREFIX = "WATCHKEEPER_"
# Short names for the settings an operator sets most; the generic form
# WATCHKEEPER_<SECTION>__<KEY> reaches every other key.
ENV_ALIASES: Mapping[str, tuple[str, str]] = {
    "WATCHKEEPER_DATABASE_URL": ("database", "url"),
    "WATCHKEEPER_DATABASE_URL_FILE": ("database", "url_file"),
    "WATCHKEEPER_LISTEN_HOST": ("server", "host"),
    "WATCHKEEPER_LISTEN_PORT": ("server", "port"),
}
DEFAULT_DATABASE_URL = "sqlite:///var/watchkeeper.db"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3,
    "GiB": 1024**3,
}


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string such as ``"90s"``, ``"3m"``, ``"7d"``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30, '90s', '3m', '7d')")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    return value


def parse_size(value: Any) -> Any:
    """Bytes from a number or a string such as ``"1MiB"``, ``"512KiB"``."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"not a size: {value!r} (use e.g. 1048576, '512KiB', '1MiB')")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Bytes = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # HTTPS served by the collector itself (PEM files); else plain HTTP, e.g. behind a proxy.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("give both tls_cert_file and tls_key_file, or neither")
        return self


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL
    url_file: Path | None = None
    # FULL: a 202 promises the batch is durable, and in WAL mode NORMAL may lose the
    # last commits on power loss. Group commit pays one fsync per group, not per push.
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    sqlite_busy_timeout: Seconds = 10.0
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)


class IngestSettings(_Section):
    max_body_bytes: Bytes = 1024 * 1024
    max_batch_results: int = Field(default=500, ge=1)
    result_retention: Seconds = 7 * 86400.0
    prune_every: Seconds = 600.0
    token_cache_ttl: Seconds = 10.0
    max_group_batches: int = Field(default=256, ge=1)
    store: Literal["process", "thread"] = "process"


class SilenceSettings(_Section):
    min_silence: Seconds = 180.0
    intervals: float = Field(default=3, gt=0)
    startup_grace: Seconds = 300.0
    check_every: Seconds = Field(default=15.0, gt=0)
    default_interval: Seconds = Field(default=60.0, gt=0)


class TicketSettings(_Section):
    # How often the ticket engine folds new results into problems and tickets, and runs
    # the SLA and escalation clocks.
    engine_every: Seconds = Field(default=5.0, gt=0)
    # A recovered ticket nobody worked on is resolved after the check stayed OK this long.
    recovery_hold: Seconds = 900.0
    # A problem that comes back within this time after its ticket was resolved reopens it.
    reopen_window: Seconds = 86400.0


Role = Literal["tsm", "crm", "cto", "customer"]


class CustomerSettings(_Section):
    # The business calendar (a name under [calendars]); "default" when not given.
    calendar: str | None = None
    # The customer's contacts: told the request number of every ticket opened for them.
    contacts: list[str] = []
    # Recipients per role for this customer, instead of [notifications.recipients].
    recipients: dict[Role, list[str]] = {}
    # Request Tracker: the queue of this customer's tickets (else request_tracker.queue)
    # and their requestors (else the contacts).
    rt_queue: str | None = None
    rt_requestors: list[str] | None = None


class SmtpSettings(_Section):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded with STARTTLS (refused if the server lacks it);
    # tls: TLS from the first byte (port 465); none: plain text, for a local relay only.
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    sender: str = "watchkeeper@localhost"
    timeout: Seconds = 30.0

    @model_validator(mode="after")
    def _credentials(self) -> SmtpSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.username is not None and self.password is None and self.password_file is None:
            raise ValueError("username needs password or password_file")
        if self.username is None and (self.password is not None
                                      or self.password_file is not None):
            raise ValueError("a password needs a username")
        return self


class WebhookSettings(_Section):
    url: str
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _token(self) -> WebhookSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        return self


class NotificationSettings(_Section):
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None
    # Who is told, per role, when the customer has no recipients of its own for it.
    recipients: dict[Role, list[str]] = {}
    send_every: Seconds = Field(default=2.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    retry_first: Seconds = 30.0
    retry_max: Seconds = 3600.0
    # A sender that claimed a notice and died: another may send it after this long.
    lease: Seconds = Field(default=120.0, gt=0)
    # The collector's address as people reach it, for links in notices.
    public_url: str = "http://127.0.0.1:8080"

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> NotificationSettings:
        for name, channel in (("smtp", self.smtp), ("webhook", self.webhook)):
            if channel is not None and self.lease <= channel.timeout:
                raise ValueError(f"lease ({self.lease:g} s) must be longer than "
                                 f"{name}.timeout ({channel.timeout:g} s): a send must end "
                                 f"before another collector may take the notice over")
        return self


class RequestTrackerSettings(_Section):
    """The Request Tracker 5 connector (REST2); absent: tickets stay in the collector."""

    # RT's web address; REST2 is at <url>/REST/2.0.
    url: str
    # The RT user the connector acts as. Its own transactions are not read back as staff
    # work; with basic authentication it is also the login.
    user: str
    # An RT authentication token of that user (preferred), or its password.
    token: str | None = None
    token_file: Path | None = None
    password: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: Seconds = Field(default=10.0, gt=0)
    # Where tickets go unless the customer names its own rt_queue.
    queue: str = "General"
    # The ticket custom field that carries "<problem key> #<request number>".
    key_field: str = "Watchkeeper Key"
    # How often the collector sends waiting changes, and reads RT for staff work.
    sync_every: Seconds = Field(default=2.0, gt=0)
    poll_every: Seconds = Field(default=30.0, gt=0)
    # Retries of a change RT did not take: retry_first doubled up to retry_max; a change
    # RT refuses for good (not a create) is given up after max_attempts.
    retry_first: Seconds = Field(default=5.0, gt=0)
    retry_max: Seconds = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    # A collector that took a ticket's changes and died: another goes on after this long.
    lease: Seconds = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _credentials(self) -> RequestTrackerSettings:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        given = [name for name in ("token", "token_file", "password", "password_file")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of token, token_file, password, password_file"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.lease <= self.timeout * 4:
            raise ValueError(f"lease ({self.lease:g} s) must be longer than four RT calls "
                             f"(timeout {self.timeout:g} s)")
        return self


class EnrollmentSettings(_Section):
    """Hosts that enroll themselves (``POST /api/v1/enroll``) with a secret; no secret
    configured: only ``watchkeeper-collector enroll`` enrolls hosts."""

    # A file holding the secret that enrolls hosts of any customer (the customer is
    # created on its first host).
    secret_file: Path | None = None
    # Files holding each customer's own secret, which enrolls hosts of that customer only.
    secret_files: dict[str, Path] = {}


class DashboardSettings(_Section):
    # How often an open page asks the collector for fresh data.
    refresh: Seconds = Field(default=2.0, ge=0.5, le=60)
    # A login ends after this long without a request, or this long after it began.
    session_idle: Seconds = Field(default=12 * 3600.0, gt=0)
    session_max: Seconds = Field(default=7 * 86400.0, gt=0)
    # Rows per page of the long lists (problems, hosts, tickets).
    page_size: int = Field(default=50, ge=10, le=500)
    # Send the login cookie only over HTTPS (on by default when server.tls_cert_file is
    # set; set it when a TLS-terminating proxy stands in front of the collector).
    secure_cookie: bool | None = None


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    silence: SilenceSettings = SilenceSettings()
    tickets: TicketSettings = TicketSettings()
    customers: dict[str, CustomerSettings] = {}
    notifications: NotificationSettings = NotificationSettings()
    dashboard: DashboardSettings = DashboardSettings()
    request_tracker: RequestTrackerSettings | None = None
    enrollment: EnrollmentSettings = EnrollmentSettings()
    # The support policy's tables, parsed by their own modules (collector.policy):
    # a wrong key is named by the ConfigError that build_policy raises.
    problems: dict[str, Any] = {}
    priority: dict[str, Any] = {}
    sla: dict[str, Any] = {}
    calendars: dict[str, Any] = {}
    escalation: dict[str, Any] = {}
    agent_versions: dict[str, Any] = {}

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, with ``postgresql://`` mapped to the psycopg 3 driver."""
        return normalize_database_url(self.database.url)


def normalize_database_url(url: str) -> str:
    """Map plain ``postgresql://``/``postgres://`` URLs to the psycopg 3 driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (if any), apply the environment, validate; ConfigError names the key."""
    file = str(path) if path is not None else None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError("", f"cannot read: {exc.strerror}", file) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"not valid TOML: {exc}", file) from None
    env_keys = _apply_environment(data, os.environ if environ is None else environ)
    _resolve_url_file(data, env_keys, file)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        source = env_keys.get(key)
        message = err["msg"]
        if source:
            raise ConfigError(key, f"{message} (from environment {source})") from None
        raise ConfigError(key, message, file) from None
    from collector.policy import build_policy  # the policy modules import this one

    try:
        build_policy(settings)
    except ConfigError as exc:
        raise exc.in_file(file) if file else exc from None
    return settings


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Overlay WATCHKEEPER_* variables; return {dotted key: variable name}."""
    applied: dict[str, str] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            section, key = ENV_ALIASES[name]
        elif name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        else:
            continue
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table")
        table[key] = value
        applied[f"{section}.{key}"] = name
    return applied


def _resolve_url_file(data: dict[str, Any], env_keys: Mapping[str, str], file: str | None) -> None:
    """Read ``database.url_file`` into ``database.url``; the environment wins over the file."""
    table = data.get("database")
    if not isinstance(table, dict):
        return
    if "database.url" in env_keys and "database.url_file" not in env_keys:
        table.pop("url_file", None)
    elif "database.url_file" in env_keys and "database.url" not in env_keys:
        table.pop("url", None)
    if "url_file" not in table:
        return
    if "url" in table:
        raise ConfigError("database.url_file", "give database.url or database.url_file, not both",
                          file)
    where = env_keys.get("database.url_file")
    try:
        url = Path(str(table["url_file"])).read_text().strip()
    except OSError as exc:
        raise ConfigError(
            "database.url_file",
            f"cannot read {table['url_file']}: {exc.strerror}"
            + (f" (from environment {where})" if where else ""),
            None if where else file,
        ) from None
    if not url:
        raise ConfigError("database.url_file", f"{table['url_file']} is empty", file)
    table["url"] = url
