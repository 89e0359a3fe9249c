"""The collector's errors, drawn once; the app factory maps them to HTTP in one handler.

Service code raises these; views never build HTTP errors themselves.
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error the collector answers with; ``code`` is the JSON ``error``."""

    status_code = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotAuthenticated(CollectorError):
    """No token, or a token no host owns."""

    status_code = 401
    code = "not_authenticated"


class Forbidden(CollectorError):
    """A valid token used for something it may not do (another host's batch)."""

    status_code = 403
    code = "forbidden"


class NotFound(CollectorError):
    """The named host (or other object) does not exist."""

    status_code = 404
    code = "not_found"


class PayloadTooLarge(CollectorError):
    """The body is over the limit, as sent or after decompression."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedEncoding(CollectorError):
    """A Content-Encoding other than gzip or identity."""

    status_code = 415
    code = "unsupported_encoding"


class InvalidPayload(CollectorError):
    """Malformed JSON, a missing or wrong field, or too many results."""

    status_code = 422
    code = "invalid_payload"


class InvalidRequest(CollectorError):
    """A parameter, filter or form field the collector does not understand; the detail
    names it."""

    status_code = 422
    code = "invalid_request"


class StoreUnavailable(CollectorError):
    """The database could not be reached or the collector is shutting down."""

    status_code = 503
    code = "store_unavailable"


class AlreadyEnrolled(CollectorError):
    """``enroll`` for a host that has a token already, without ``--rotate``."""

    status_code = 409
    code = "already_enrolled"
