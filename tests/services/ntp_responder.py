"""A small NTP server for tests that answers with its clock plus a chosen offset.

This is the one fake peer of the NTP tests, and on purpose: a real chronyd serves the
system clock, and making it serve a wrong time would mean changing the clock of the
machine running the tests. The responder answers NTP client packets (mode 3) with a
server packet (mode 4) whose receive and transmit timestamps are ``time.time() + offset``
and whose originate timestamp echoes the client's, as RFC 5905 asks, so a client computes
an offset of ``offset`` (server minus local: positive means the local clock is behind).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

NTP_EPOCH_DELTA = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
PACKET = struct.Struct("!B B b b I I I 8s 8s 8s 8s")


def ntp_timestamp(unix_seconds: float) -> bytes:
    """64-bit NTP timestamp (seconds since 1900, 32-bit fraction)."""
    ntp = unix_seconds + NTP_EPOCH_DELTA
    seconds = int(ntp)
    fraction = int((ntp - seconds) * 2**32) & 0xFFFFFFFF
    return struct.pack("!II", seconds & 0xFFFFFFFF, fraction)


@dataclass
class NtpResponder:
    """A running responder; ``stop()`` closes it."""

    offset: float
    stratum: int = 2
    leap: int = 0
    sock: socket.socket = field(init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    answered: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)

    @property
    def port(self) -> int:
        """The UDP port it answers on (loopback)."""
        return int(self.sock.getsockname()[1])

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as the ntp check's ``servers`` takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> NtpResponder:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._serve, name="ntp-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            received = time.time() + self.offset
            if len(data) < PACKET.size or data[0] & 0x7 != 3:
                continue  # only client requests get an answer
            version = (data[0] >> 3) & 0x7
            client_transmit = data[40:48]
            reply = PACKET.pack(
                (self.leap << 6) | (version << 3) | 4,
                self.stratum,
                6,  # poll
                -20,  # precision (~1 us)
                0,  # root delay
                1 << 10,  # root dispersion (1/64 s)
                0x7F000001,  # reference id
                ntp_timestamp(received - 16),
                client_transmit,
                ntp_timestamp(received),
                ntp_timestamp(time.time() + self.offset),
            )
            self.sock.sendto(reply, peer)
            self.answered += 1


def start_responder(offset: float, *, stratum: int = 2, leap: int = 0) -> NtpResponder:
    """A responder on a free loopback port, answering with its clock plus ``offset``."""
    return NtpResponder(offset, stratum, leap).start()


def dead_server_address() -> str:
    """``127.0.0.1:<port>`` of a UDP port that was free a moment ago: nothing answers there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
