"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording every message it accepts.

By default it offers STARTTLS (a self-signed certificate from ``tests.support.tls``; give
the sender ``server.ca_file``) and, when ``username`` is given, requires AUTH (LOGIN or
PLAIN, only after STARTTLS). ``tls=False`` serves plain text only, as a server without
STARTTLS would; ``implicit_tls=True`` speaks TLS from the first byte (SMTPS, as on port
465), with AUTH over it. ``stop()`` and ``start()`` again on the same port play an outage.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.ports import free_port
from tests.support.tls import self_signed


@dataclass
class Received:
    """One accepted message: the envelope, the parsed mail, and how it came in."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class _Controller(Controller):
    """aiosmtpd's controller; with implicit TLS, AUTH is offered on the TLS connection.

    (aiosmtpd counts only STARTTLS as TLS when it decides to offer AUTH, and warns when
    told not to require TLS for AUTH; on an SMTPS connection everything is TLS already.)
    """

    def __init__(self, handler: Any, *, implicit_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.implicit_tls = implicit_tls

    def factory(self) -> SMTP:
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        if self.implicit_tls:
            server._auth_require_tls = False
        return server


@dataclass
class _Recorder:
    implicit_tls: bool = False
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)
    lock: threading.Condition = field(default_factory=threading.Condition)
    refuse: set[str] = field(default_factory=set)  # recipients answered 550

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword) else None
        with self.lock:
            self.messages.append(Received(
                mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                tls=self.implicit_tls or session.ssl is not None, login=login))
            self.lock.notify_all()
        return "250 OK"


class SmtpServer:
    """The running server: ``port``, ``messages``, ``wait_for(n)``, ``stop()``, ``start()``."""

    def __init__(self, directory: Path, *, username: str | None, password: str | None,
                 tls: bool, implicit_tls: bool = False, port: int | None = None) -> None:
        if username is not None and not tls:
            raise ValueError("AUTH is offered only after STARTTLS: give tls=True")
        self.username, self.password, self.tls = username, password, tls
        self.implicit_tls = implicit_tls and tls
        self.port = port or free_port()
        self.ca_file: Path | None = None
        self._context: ssl.SSLContext | None = None
        if tls:
            cert, key = self_signed(directory / "smtp-tls")
            self.ca_file = cert
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(cert, key)
        self._recorder = _Recorder(implicit_tls=self.implicit_tls)
        self._controller: _Controller | None = None

    @property
    def messages(self) -> list[Received]:
        with self._recorder.lock:
            return list(self._recorder.messages)

    def refuse(self, *addresses: str) -> None:
        """Answer RCPT TO for these addresses with 550 (no such user)."""
        with self._recorder.lock:
            self._recorder.refuse.update(addresses)

    @property
    def logins(self) -> list[tuple[str, bool]]:
        """Every AUTH attempt: (user name, accepted)."""
        with self._recorder.lock:
            return list(self._recorder.logins)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, given = auth_data.login.decode(), auth_data.password.decode()
        ok = user == self.username and given == self.password
        with self._recorder.lock:
            self._recorder.logins.append((user, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> SmtpServer:
        """Listen (again) on ``port``."""
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port,
                                  "server_hostname": "smtp.test", "ready_timeout": 10.0}
        if self._context is not None and self.implicit_tls:
            kwargs.update(ssl_context=self._context)
        elif self._context is not None:
            kwargs.update(tls_context=self._context, require_starttls=True)
        if self.username is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=True)
        self._controller = _Controller(self._recorder, implicit_tls=self.implicit_tls, **kwargs)
        deadline = time.monotonic() + 10
        while True:
            try:
                self._controller.start()
                return self
            except (OSError, RuntimeError):  # the port is still held by the last run
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop listening; the recorded messages stay."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages once at least ``count`` arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._recorder.lock:
            while len(self._recorder.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} messages, got "
                                         f"{len(self._recorder.messages)}")
                self._recorder.lock.wait(left)
            return list(self._recorder.messages)


def start_smtp(directory: Path, *, username: str | None = None, password: str | None = None,
               tls: bool = True, implicit_tls: bool = False, port: int | None = None
               ) -> SmtpServer:
    """A running SMTP server on 127.0.0.1 (STARTTLS unless ``tls=False``; SMTPS with
    ``implicit_tls=True``)."""
    return SmtpServer(directory, username=username, password=password, tls=tls,
                      implicit_tls=implicit_tls, port=port).start()
