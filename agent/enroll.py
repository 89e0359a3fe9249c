"""``watchkeeper-agent enroll``: this host enrolls itself with the collector's enrollment
secret and keeps the push token it receives in ``collector.token_file``.

The token is written once: atomically (a temporary file beside it, then a rename) with
mode 0600, and never over a token already there, because the collector answers a token
only once and refuses to replace one by secret. The request goes through the agent's own
transport with the TLS settings of ``[collector]`` (``ca_file``, ``verify_tls``, and the
client certificate for a proxy that requires mutual TLS).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from agent.config import AgentConfig, check_client_certificate
from agent.transport import Client, Timeout, Transport, TransportError, tls_context
from checks.config import ConfigError

ENROLL_PATH = "/api/v1/enroll"


class EnrollError(Exception):
    """Enrollment did not happen; the message says why and what to do."""


def read_secret(path: str | Path) -> str:
    """The enrollment secret in the file at ``path`` (surrounding white space dropped)."""
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise EnrollError(f"cannot read the enrollment secret file {path}: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    if not secret:
        raise EnrollError(f"the enrollment secret file {path} is empty")
    return secret


def token_path(config: AgentConfig) -> Path:
    """Where the token goes: ``collector.token_file``, which must be configured and empty."""
    collector = config.collector
    if collector.url is None:
        raise EnrollError(f"{config.file}: collector.url is not set (where to enroll)")
    if collector.token is not None:
        raise EnrollError(f"{config.file}: collector.token is given inline; enroll writes "
                          "the token to collector.token_file instead")
    if collector.token_file is None:
        raise EnrollError(f"{config.file}: collector.token_file is not set (where to keep "
                          "the token)")
    path = Path(collector.token_file)
    try:
        present = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        present = ""
    except (OSError, UnicodeDecodeError) as err:
        raise EnrollError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") \
            from None
    if present:
        raise EnrollError(f"{path} holds a token already; this host is enrolled (to enroll "
                          "again, an operator rotates its token: watchkeeper-collector "
                          "enroll --rotate)")
    return path


def enroll(
    config: AgentConfig, *, secret: str, customer: str, fqdn: str | None = None,
    tags: Sequence[str] = (), transport: Transport | None = None,
) -> tuple[str, Path]:
    """Enroll this host (``fqdn``, default the config's host name) for ``customer``;
    write the token; return the host name and the token file."""
    path = token_path(config)
    host = fqdn or config.host
    collector = config.collector
    assert collector.url is not None  # token_path made sure
    context = None
    if transport is None and collector.url.startswith("https://"):
        try:
            check_client_certificate(collector)
        except ConfigError as err:
            raise EnrollError(f"{config.file}: {err}") from None
        context = tls_context(verify=collector.verify_tls, ca_file=collector.ca_file,
                              client_cert_file=collector.client_cert_file,
                              client_key_file=collector.client_key_file)
    client = Client(timeout=Timeout(connect=min(collector.timeout, 10.0),
                                    read=collector.timeout),
                    ssl_context=context, transport=transport)
    url = collector.url.rstrip("/") + ENROLL_PATH
    body = json.dumps({"customer": customer, "fqdn": host, "tags": list(tags)}).encode()
    try:
        answer = client.post(url, content=body, headers={
            "Authorization": f"Bearer {secret}", "Content-Type": "application/json",
            "Accept": "application/json"})
    except TransportError as err:
        raise EnrollError(f"cannot reach the collector at {collector.url}: {err}") from None
    finally:
        client.close()
    if answer.status_code != 201:
        raise EnrollError(f"the collector refused to enroll {host} for customer {customer!r}"
                          f" (HTTP {answer.status_code}): {_detail(answer.content)}")
    try:
        token = answer.json()["token"]
        if not isinstance(token, str) or not token:
            raise ValueError("no token")
    except (ValueError, KeyError, TypeError):
        raise EnrollError(f"the collector at {collector.url} answered 201 without a token: "
                          f"{answer.text[:200]!r}") from None
    write_token(path, token)
    return host, path


def write_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` atomically, mode 0600, unless a token got there first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (token + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        # A token that appeared meanwhile is kept (it is the one the collector knows).
        if path.exists() and path.read_text(encoding="utf-8").strip():
            raise EnrollError(f"{path} got a token while enrolling; it is kept, the new "
                              "token is dropped")
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as err:
        raise EnrollError(f"enrolled, but cannot write the token to {path}: "
                          f"{err.strerror or err} (an operator must rotate the host's "
                          "token: watchkeeper-collector enroll --rotate)") from None
    finally:
        temporary.unlink(missing_ok=True)


def _detail(content: bytes) -> str:
    """The collector's ``detail`` (its error shape), else the start of the answer."""
    try:
        answer = json.loads(content)
        return f"{answer['detail']} ({answer['error']})"
    except (ValueError, KeyError, TypeError):
        return content[:200].decode("utf-8", errors="replace") or "no detail"
