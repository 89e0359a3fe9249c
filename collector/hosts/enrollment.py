"""Enrollment by secret: a host enrolls itself and receives its push token once.

``POST /api/v1/enroll`` with ``Authorization: Bearer <enrollment secret>`` and
``{customer, fqdn, tags?}``. The secrets live in the files named by ``[enrollment]`` and
nowhere else: they are read at each enrollment (so a new secret takes effect without a
restart) and compared in constant time with every configured secret. A global secret
enrolls hosts of any customer; a customer's secret enrolls that customer's hosts only.

A host that has a token already is refused (409): a secret never replaces a token, so a
leaked secret cannot take over an enrolled host; an operator rotates tokens with
``watchkeeper-collector enroll --rotate``. Each enrollment is written to the audit log
(kind ``host_enrolled``) with the secret that allowed it and the client's address, in the
same transaction as the host.

There is no rate limit: a secret is at least ``MIN_SECRET_LENGTH`` random characters, too
many to guess; a proxy in front of the collector may limit the rate (docs/bundle.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from collector.db import IMMEDIATE
from collector.errors import AlreadyEnrolled, CollectorError, Forbidden, NotAuthenticated
from collector.hosts.models import Customer, Host
from collector.hosts.service import enroll
from collector.settings import EnrollmentSettings
from collector.tickets.service import record_event

log = logging.getLogger(__name__)

ENROLL_PATH = "/api/v1/enroll"
MIN_SECRET_LENGTH = 16
AUDIT_KIND = "host_enrolled"
GLOBAL = "global"
"""How the audit log names the secret of ``[enrollment] secret_file``."""

# A host name: dot-separated labels of letters, digits and '-' (the length is checked apart).
_FQDN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63})*$"


class EnrollmentUnavailable(CollectorError):
    """A configured secret file cannot be read: enrollment waits for the operator."""

    status_code = 503
    code = "enrollment_unavailable"


class EnrollRequest(BaseModel):
    """The body of ``POST /api/v1/enroll``."""

    model_config = ConfigDict(extra="forbid")

    customer: str = Field(min_length=1, max_length=200)
    fqdn: str = Field(min_length=1, max_length=253, pattern=_FQDN)
    tags: list[str] = Field(default=[], max_length=50)


class EnrollAnswer(BaseModel):
    """The answer: the host's push token, shown this once (only its hash is stored)."""

    token: str
    fqdn: str
    customer: str


@dataclass(frozen=True)
class Secret:
    """One configured secret: ``customer`` None for the global one."""

    customer: str | None
    digest: bytes

    @property
    def name(self) -> str:
        """How the audit log names it: ``global`` or ``customer:<name>``."""
        return GLOBAL if self.customer is None else f"customer:{self.customer}"


def load_secrets(settings: EnrollmentSettings) -> list[Secret]:
    """The configured secrets, read now; EnrollmentUnavailable (logged with the file) when
    a file cannot be read or holds no usable secret."""
    files: list[tuple[str | None, Path]] = []
    if settings.secret_file is not None:
        files.append((None, settings.secret_file))
    files += sorted(settings.secret_files.items())
    secrets: list[Secret] = []
    for customer, path in files:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            log.error("enrollment: cannot read the secret file %s: %s", path, exc)
            raise EnrollmentUnavailable(
                "the collector cannot read its enrollment secrets; see its log") from None
        if len(secret) < MIN_SECRET_LENGTH:
            log.error("enrollment: the secret in %s is shorter than %d characters; refused",
                      path, MIN_SECRET_LENGTH)
            raise EnrollmentUnavailable(
                "the collector's enrollment secrets are not usable; see its log")
        secrets.append(Secret(customer, _digest(secret)))
    return secrets


def authorize(secrets: Sequence[Secret], presented: str | None, customer: str) -> Secret:
    """The secret that allows enrolling a host of ``customer``.

    Every configured secret is compared (in constant time, on digests of equal length),
    whatever matched first. NotAuthenticated (401) for no or a wrong secret, Forbidden
    (403) for another customer's secret or when enrollment by secret is off.
    """
    if not secrets:
        raise Forbidden("enrollment by secret is off on this collector (no [enrollment] "
                        "secret_file or secret_files); ask an operator for a token")
    if not presented:
        raise NotAuthenticated("no enrollment secret: send 'Authorization: Bearer <secret>'")
    given = _digest(presented)
    matched = [s for s in secrets if hmac.compare_digest(s.digest, given)]
    if not matched:
        raise NotAuthenticated("the enrollment secret is not valid")
    for secret in matched:
        if secret.customer is None or secret.customer == customer:
            return secret
    raise Forbidden(f"this enrollment secret does not enroll hosts of customer {customer!r}")


def enroll_with_secret(
    *, engine: Engine, settings: EnrollmentSettings, authorization: str | None,
    request: EnrollRequest, client: str, now: float,
) -> EnrollAnswer:
    """Check the secret, enroll the host and audit it in one transaction; the new token."""
    secret = authorize(load_secrets(settings), _bearer(authorization), request.customer)
    actor = f"enrollment secret {secret.name} from {client}"[:128]
    # BEGIN IMMEDIATE on SQLite: the enrollment reads, then writes.
    with Session(engine.execution_options(**{IMMEDIATE: True}),
                 expire_on_commit=False) as session:
        # The audit entry joins the enrollment's own commit (service.enroll commits).
        event.listen(session, "before_commit",
                     _auditor(request, secret, actor=actor, client=client, now=now), once=True)
        try:
            token = enroll(session=session, customer=request.customer, fqdn=request.fqdn,
                           critical=False, rotate=False, now=now, tags=request.tags)
        except (AlreadyEnrolled, IntegrityError):  # IntegrityError: enrolled meanwhile
            raise AlreadyEnrolled(
                f"host {request.fqdn!r} is enrolled already; an enrollment secret does not "
                "replace a token (an operator rotates it: watchkeeper-collector enroll "
                "--rotate)") from None
    log.info("enrolled host %s for customer %s (%s)", request.fqdn, request.customer, actor)
    return EnrollAnswer(token=token, fqdn=request.fqdn, customer=request.customer)


def _auditor(request: EnrollRequest, secret: Secret, *, actor: str, client: str,
             now: float) -> Callable[[Session], None]:
    """The audit entry of this enrollment, written just before its commit."""
    def audit(session: Session) -> None:
        customer_id = session.scalars(
            select(Customer.id).where(Customer.name == request.customer)).one()
        host_id = session.scalars(select(Host.id).where(Host.fqdn == request.fqdn)).one()
        record_event(
            session.connection(), ticket_id=None, customer_id=customer_id, problem_key=None,
            at=now, kind=AUDIT_KIND, actor=actor,
            text=f"host {request.fqdn} enrolled itself with the enrollment secret "
                 f"{secret.name}",
            data={"fqdn": request.fqdn, "host_id": host_id, "tags": sorted(request.tags),
                  "secret": secret.name, "client": client},
        )

    return audit


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <enrollment secret>'")
    return value.strip()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()
