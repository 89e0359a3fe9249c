"""Host names for ``getaddrinfo`` without the idna codec, and TCP connections made with them.

Given a ``str`` host, CPython's ``socket.getaddrinfo`` encodes it with the idna codec,
which imports ``encodings.idna``, ``stringprep`` and ``unicodedata`` (about 0.3 MB of
resident memory) even for ``127.0.0.1``. An ASCII name given as bytes skips the codec;
only an internationalised name still needs it.
"""

from __future__ import annotations

import socket
import time


def lookup_name(host: str) -> bytes | str:
    """``host`` as ``getaddrinfo`` should get it: ASCII as bytes, anything else unchanged."""
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host


def connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the first of ``host``'s addresses that accepts one, all within
    ``timeout``; the socket is left with that timeout and ``TCP_NODELAY`` (each request
    goes out in one write, so Nagle's algorithm could only delay it).

    Unlike ``socket.create_connection`` it keeps the idna codec unloaded for an ASCII name.
    Raises ``socket.gaierror`` when the name does not resolve, else the last address's
    ``OSError`` (``TimeoutError`` when the time ran out).
    """
    addresses = socket.getaddrinfo(lookup_name(host), port, type=socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    last: OSError = TimeoutError("timed out")
    for family, kind, proto, _name, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as err:
            sock.close()
            last = err
            continue
        except BaseException:
            sock.close()
            raise
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last
