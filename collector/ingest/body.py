"""Reading a push body under hard limits: size as sent, gzip with a cap, JSON into the schema."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from pydantic import ValidationError

from collector.errors import InvalidPayload, PayloadTooLarge, UnsupportedEncoding
from collector.ingest.models import WireBatch

_IDENTITY = {"", "identity"}
_GZIP = {"gzip", "x-gzip"}
MAX_ERRORS_SHOWN = 5


async def read_capped(
    stream: AsyncIterator[bytes], *, content_length: str | None, limit: int
) -> bytes:
    """The whole body, refused as soon as it is known to exceed ``limit`` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise InvalidPayload(f"Content-Length: not a number: {content_length!r}") from None
        if declared > limit:
            raise PayloadTooLarge(_too_large(declared, limit, "as sent"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_large(size, limit, "as sent", at_least=True))
        chunks.append(chunk)
    return b"".join(chunks)


def decode(body: bytes, *, content_encoding: str | None, limit: int) -> bytes:
    """Undo the Content-Encoding; gzip is inflated only up to ``limit`` bytes (zip bombs)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in _IDENTITY:
        return body
    if encoding not in _GZIP:
        raise UnsupportedEncoding(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip or identity"
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidPayload(f"body: not valid gzip: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLarge(_too_large(len(data), limit, "after decompression", at_least=True))
    if not inflater.eof:
        raise InvalidPayload("body: the gzip stream is truncated")
    return data


def parse_batch(data: bytes) -> WireBatch:
    """Validate the JSON against the push schema; the error names each field path."""
    try:
        return WireBatch.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """``results.3.status: Input should be less than or equal to 3; ...``"""
    parts = []
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "; ".join(parts)


def _too_large(size: int, limit: int, when: str, *, at_least: bool = False) -> str:
    amount = f"more than {limit}" if at_least else str(size)
    return f"body is {amount} bytes {when}; the limit is {limit} bytes (ingest.max_body_bytes)"
