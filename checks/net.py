"""Host names for ``getaddrinfo`` without the idna codec.

Given a ``str`` host, CPython's ``socket.getaddrinfo`` encodes it with the idna codec,
which imports ``encodings.idna``, ``stringprep`` and ``unicodedata`` (about 0.3 MB of
resident memory) even for ``127.0.0.1``. An ASCII name given as bytes skips the codec;
only an internationalised name still needs it.
"""

from __future__ import annotations


def lookup_name(host: str) -> bytes | str:
    """``host`` as ``getaddrinfo`` should get it: ASCII as bytes, anything else unchanged."""
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host
