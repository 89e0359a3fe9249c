"""Delivering one notice: an email over SMTP, or a JSON POST to a webhook.

Each function either returns (the receiver accepted it) or raises ``SendError``, whose
``permanent`` says whether trying again could help. Both carry the notice's dedup key:
the email as its Message-ID, the webhook call as its ``Idempotency-Key`` header, so a
notice sent twice (a sender that died after the receiver accepted it and before the
outbox recorded it) is recognisable as the same notice.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

from collector.settings import SmtpSettings, WebhookSettings


class SendError(Exception):
    """A notice not delivered; ``permanent``: the receiver refused it for good."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def message_id(dedup_key: str, sender: str) -> str:
    """A Message-ID that is the same for every send of one notice."""
    domain = sender.rpartition("@")[2] or "watchkeeper"
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def read_secret(value: str | None, file: Path | None, key: str) -> str | None:
    """The inline secret, or the first line of its file; SendError names the key."""
    if value is not None:
        return value
    if file is None:
        return None
    try:
        return file.read_text().strip("\r\n")
    except OSError as exc:
        raise SendError(f"{key}: cannot read {file}: {exc.strerror}") from None


def tls_context(ca_file: Path | None, key: str) -> ssl.SSLContext:
    """The system's trust store, or only ``ca_file``'s certificates when it is given."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise SendError(f"{key}: cannot load {ca_file}: {exc}") from None


def build_email(
    smtp: SmtpSettings, *, to: str, subject: str, body: str, dedup_key: str, now: float,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A plain-text mail with a Message-ID derived from the notice's key."""
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = message_id(dedup_key, smtp.sender)
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def send_email(smtp: SmtpSettings, msg: EmailMessage) -> None:
    """Deliver ``msg`` to the configured server; SendError when it was not accepted.

    ``security = "starttls"`` refuses to go on (no credentials, no mail) when the server
    does not offer STARTTLS; ``"tls"`` speaks TLS from the first byte; ``"none"`` is
    plain text. The server's certificate is verified against ``ca_file`` or the system's
    trust store. A recipient refused with a 5xx answer is a permanent failure; every
    other failure (connection, TLS, authentication, a 4xx answer) may be retried.
    """
    where = f"SMTP {smtp.host}:{smtp.port}"
    password = read_secret(smtp.password, smtp.password_file, "notifications.smtp.password_file")
    if smtp.username is not None and password is None:
        raise SendError("notifications.smtp.username is set but neither password nor "
                        "password_file")
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout,
                context=tls_context(smtp.ca_file, "notifications.smtp.ca_file"))
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                if not client.has_extn("starttls"):
                    raise SendError(f"{where} does not offer STARTTLS (security = "
                                    "\"starttls\"): nothing sent, no credentials given")
                client.starttls(context=tls_context(smtp.ca_file, "notifications.smtp.ca_file"))
                client.ehlo()
            if smtp.username is not None and password is not None:
                client.login(smtp.username, password)
            client.send_message(msg)
    except SendError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{rcpt}: {code} {_text(text)}"
                           for rcpt, (code, text) in exc.recipients.items())
        raise SendError(f"{where} refused the recipient: {detail}",
                        permanent=all(500 <= c < 600 for c in codes)) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"{where} refused the login of {smtp.username!r}: "
                        f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
    except smtplib.SMTPResponseException as exc:
        raise SendError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        raise SendError(f"{where}: {type(exc).__name__}: {exc}") from None


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def send_webhook(
    webhook: WebhookSettings, *, payload: dict[str, Any], dedup_key: str,
    client: httpx.Client | None = None,
) -> None:
    """POST ``payload`` as JSON with ``Idempotency-Key: dedup_key`` (and the bearer token).

    A 2xx answer is delivered; a 4xx other than 408 and 429 is permanent (the receiver
    will not take this notice); anything else (5xx, 408, 429, no connection, a timeout)
    may be retried.
    """
    token = read_secret(webhook.token, webhook.token_file, "notifications.webhook.token_file")
    headers = {"Idempotency-Key": dedup_key, "User-Agent": "watchkeeper-collector"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    own = client is None
    if client is None:
        verify: ssl.SSLContext | bool = True
        if webhook.url.startswith("https:"):
            verify = tls_context(webhook.ca_file, "notifications.webhook.ca_file")
        client = httpx.Client(timeout=webhook.timeout, verify=verify)
    try:
        response = client.post(webhook.url, json=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise SendError(f"webhook {webhook.url}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            client.close()
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = response.text[:300].strip()
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise SendError(f"webhook {webhook.url} answered {status}"
                    + (f": {detail}" if detail else ""), permanent=permanent)
