"""A small DNS stub client on the standard library: one question, A/AAAA/PTR/CNAME answers.

Just enough of RFC 1035 for the ``dns`` check, without dnspython (whose import alone costs
the agent 5 to 10 MB of resident memory): build a query, send it over UDP on a connected
socket (so an ICMP port-unreachable surfaces at once as ``ConnectionRefusedError``), accept
only an answer with our id and question, parse the header, the question and the answer
section (with name compression, guarded against pointer loops), and retry over TCP when the
answer is truncated. Every operation runs under an absolute ``time.monotonic()`` deadline.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass
from enum import IntEnum

from checks.net import lookup_name

TYPE_A = 1
TYPE_CNAME = 5
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1
TYPE_NAMES = {TYPE_A: "A", TYPE_CNAME: "CNAME", TYPE_PTR: "PTR", TYPE_AAAA: "AAAA"}

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_MAX_POINTER_JUMPS = 64
_MAX_CNAME_CHAIN = 16
_UDP_MAX = 4096


class Rcode(IntEnum):
    """Response codes of RFC 1035 4.1.1 (others are kept as plain integers)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


def rcode_name(rcode: int) -> str:
    """``NXDOMAIN`` for 3, ``RCODE11`` for a code this module has no name for."""
    try:
        return Rcode(rcode).name
    except ValueError:
        return f"RCODE{rcode}"


class DnsError(Exception):
    """Base of the errors a query can end with."""


class FormatError(DnsError):
    """A packet (or a name to put in one) is malformed."""


class QueryTimeout(DnsError):
    """No acceptable answer before the deadline."""


class ConnectionRefused(DnsError):
    """The resolver's port is closed (ICMP port unreachable on UDP, RST on TCP)."""


# ---------------------------------------------------------------------------- names


def normalise(name: str) -> str:
    """A name for comparison: lower case, no trailing dot (``"."`` for the root)."""
    name = name.rstrip(".").lower()
    return name or "."


def encode_name(name: str) -> bytes:
    """The wire form of a dotted ASCII name; refuses empty or oversized labels and names."""
    text = name[:-1] if name.endswith(".") and name != "." else name
    if text in ("", "."):
        return b"\0"
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise FormatError(f"{name!r} is not an ASCII name (write it in its xn-- form)") from None
    out = bytearray()
    for label in raw.split(b"."):
        if not label:
            raise FormatError(f"{name!r} has an empty label")
        if len(label) > 63:
            raise FormatError(f"{name!r} has a label longer than 63 bytes")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > 255:
        raise FormatError(f"{name!r} is longer than 255 bytes on the wire")
    return bytes(out)


def read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end: int | None = None  # where the name ends in the record, before the first jump
    jumps = 0
    length_on_wire = 1
    position = offset
    while True:
        if position >= len(packet):
            raise FormatError(f"name at offset {offset} runs past the end of the packet")
        length = packet[position]
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= len(packet):
                raise FormatError(f"compression pointer at offset {position} is cut off")
            target = ((length & 0x3F) << 8) | packet[position + 1]
            if end is None:
                end = position + 2
            jumps += 1
            # A pointer must go backwards to a name already seen; a forward or
            # self-pointing one is how a hostile packet would make us loop.
            if jumps > _MAX_POINTER_JUMPS or target >= position:
                raise FormatError(f"compression pointer loop at offset {position}")
            position = target
            continue
        if kind != 0:
            raise FormatError(f"unsupported label type 0x{kind:02x} at offset {position}")
        if length == 0:
            return (".".join(labels) or "."), (end if end is not None else position + 1)
        label = packet[position + 1 : position + 1 + length]
        if len(label) != length:
            raise FormatError(f"label at offset {position} runs past the end of the packet")
        length_on_wire += length + 1
        if length_on_wire > 255:
            raise FormatError(f"name at offset {offset} is longer than 255 bytes")
        labels.append(label.decode("ascii", errors="backslashreplace").replace(".", "\\."))
        position += 1 + length


# ---------------------------------------------------------------------------- messages


def build_query(name: str, qtype: int, query_id: int) -> bytes:
    """A recursive (RD) query with one question ``name``/``qtype``/IN."""
    if not 0 <= query_id <= 0xFFFF:
        raise ValueError(f"query id {query_id} is not a 16-bit number")
    header = _HEADER.pack(query_id, _FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def new_query_id() -> int:
    """A random 16-bit id (from the OS, so answers cannot be guessed by a bystander)."""
    return int.from_bytes(os.urandom(2), "big")


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record of the answer section; ``value`` is text for known types."""

    name: str
    rtype: int
    ttl: int
    value: str | None
    """Address text for A/AAAA, the target name for PTR/CNAME, None for other types."""


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed response: header fields, the question and the answer records."""

    query_id: int
    flags: int
    rcode: int
    question: tuple[str, int, int] | None
    answers: tuple[Record, ...]

    @property
    def is_response(self) -> bool:
        """The QR bit."""
        return bool(self.flags & _FLAG_QR)

    @property
    def truncated(self) -> bool:
        """The TC bit: the answer did not fit, ask again over TCP."""
        return bool(self.flags & _FLAG_TC)


def parse_message(packet: bytes) -> Message:
    """Parse a response; raises ``FormatError`` on any malformed or truncated part."""
    if len(packet) < _HEADER.size:
        raise FormatError(f"packet of {len(packet)} bytes is shorter than a DNS header")
    query_id, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(packet)
    offset = _HEADER.size
    question = None
    for _ in range(qdcount):
        qname, offset = read_name(packet, offset)
        if offset + 4 > len(packet):
            raise FormatError("question is cut off")
        qtype, qclass = struct.unpack_from("!HH", packet, offset)
        offset += 4
        if question is None:
            question = (qname, qtype, qclass)
    answers = []
    for _ in range(ancount):
        name, offset = read_name(packet, offset)
        if offset + _RR_FIXED.size > len(packet):
            raise FormatError("answer record header is cut off")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(packet, offset)
        offset += _RR_FIXED.size
        rdata_end = offset + rdlength
        if rdata_end > len(packet):
            raise FormatError("answer record data is cut off")
        value: str | None = None
        if rclass == CLASS_IN:
            value = _rdata_text(packet, rtype, offset, rdlength)
        answers.append(Record(name, rtype, ttl, value))
        offset = rdata_end
    return Message(query_id, flags, flags & 0x000F, question, tuple(answers))


def _rdata_text(packet: bytes, rtype: int, offset: int, rdlength: int) -> str | None:
    data = packet[offset : offset + rdlength]
    if rtype == TYPE_A:
        if rdlength != 4:
            raise FormatError(f"A record of {rdlength} bytes")
        return socket.inet_ntop(socket.AF_INET, data)
    if rtype == TYPE_AAAA:
        if rdlength != 16:
            raise FormatError(f"AAAA record of {rdlength} bytes")
        return socket.inet_ntop(socket.AF_INET6, data)
    if rtype in (TYPE_PTR, TYPE_CNAME):
        target, end = read_name(packet, offset)
        if end > offset + rdlength:
            raise FormatError(f"{TYPE_NAMES[rtype]} target runs past its record")
        return target
    return None


# ---------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class Answer:
    """What one question got back, with the CNAME chain followed inside the answer."""

    rcode: int
    values: tuple[str, ...]
    """Addresses (A/AAAA) or names (PTR) of the final owner name, in answer order."""
    cnames: tuple[str, ...] = ()
    """The aliases passed through, in order (``www.example.net -> web1.example.net``)."""
    elapsed: float = 0.0
    over_tcp: bool = False

    @property
    def rcode_name(self) -> str:
        """The rcode as text."""
        return rcode_name(self.rcode)


def answer_values(
    message: Message, qname: str, qtype: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Values of type ``qtype`` for ``qname`` after its CNAME chain, and the chain itself."""
    owner = normalise(qname)
    chain: list[str] = []
    seen = {owner}
    for _ in range(_MAX_CNAME_CHAIN):
        target = next(
            (r.value for r in message.answers
             if r.rtype == TYPE_CNAME and r.value and normalise(r.name) == owner),
            None,
        )
        if target is None or qtype == TYPE_CNAME:
            break
        owner = normalise(target)
        if owner in seen:
            raise FormatError(f"CNAME loop at {target}")
        seen.add(owner)
        chain.append(target.rstrip("."))
    values = tuple(
        r.value.rstrip(".") if qtype in (TYPE_PTR, TYPE_CNAME) else r.value
        for r in message.answers
        if r.rtype == qtype and r.value is not None and normalise(r.name) == owner
    )
    return values, tuple(chain)


# ---------------------------------------------------------------------------- transport


def server_address(host: str, port: int) -> tuple[int, tuple[object, ...]]:
    """Family and socket address of a numeric resolver address (no name lookup)."""
    try:
        infos = socket.getaddrinfo(lookup_name(host), port, type=socket.SOCK_DGRAM,
                                   flags=socket.AI_NUMERICHOST)
    except socket.gaierror as err:
        raise DnsError(f"{host} is not a numeric address: {err.strerror}") from None
    family, _type, _proto, _canon, sockaddr = infos[0]
    return int(family), tuple(sockaddr)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise QueryTimeout("no answer before the deadline")
    return left


def _acceptable(packet: bytes, query_id: int, qname: str, qtype: int) -> Message | None:
    """The parsed answer if it is the response to our question, else None (ignored)."""
    if len(packet) < 2 or int.from_bytes(packet[:2], "big") != query_id:
        return None
    message = parse_message(packet)  # our id but malformed: reported, not ignored
    if not message.is_response:
        return None
    if message.question is None:
        # Some servers drop the question from an error answer (FORMERR, REFUSED).
        return message if message.rcode != Rcode.NOERROR else None
    name, rtype, rclass = message.question
    if normalise(name) != normalise(qname) or rtype != qtype or rclass != CLASS_IN:
        return None
    return message


def query(
    host: str,
    port: int,
    qname: str,
    qtype: int,
    *,
    deadline: float,
    resend_after: float | None = None,
) -> Answer:
    """Ask one question; ``Answer`` or ``QueryTimeout``/``ConnectionRefused``/``DnsError``.

    UDP first, on a connected socket. Packets with another id or another question are
    ignored (a late answer to an earlier query, or spoofing). ``resend_after`` seconds
    without an answer sends the same query once more (one lost datagram must not look
    like a dead resolver). A truncated answer is asked again over TCP under the same
    deadline.
    """
    started = time.monotonic()
    family, sockaddr = server_address(host, port)
    query_id = new_query_id()
    packet = build_query(qname, qtype, query_id)
    message = _query_udp(family, sockaddr, packet, query_id, qname, qtype, deadline,
                         resend_after)
    over_tcp = False
    if message.truncated:
        message = _query_tcp(family, sockaddr, packet, query_id, qname, qtype, deadline)
        over_tcp = True
    values, chain = answer_values(message, qname, qtype)
    return Answer(message.rcode, values, chain, time.monotonic() - started, over_tcp)


def _query_udp(
    family: int,
    sockaddr: tuple[object, ...],
    packet: bytes,
    query_id: int,
    qname: str,
    qtype: int,
    deadline: float,
    resend_after: float | None,
) -> Message:
    resend_at = time.monotonic() + resend_after if resend_after else None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(sockaddr)
            sock.send(packet)
            while True:
                wait = _remaining(deadline)
                if resend_at is not None:
                    wait = min(wait, max(0.0, resend_at - time.monotonic()))
                sock.settimeout(max(wait, 0.001))
                try:
                    reply = sock.recv(_UDP_MAX)
                except TimeoutError:
                    if resend_at is not None and time.monotonic() >= resend_at:
                        resend_at = None
                        sock.send(packet)
                    continue
                message = _acceptable(reply, query_id, qname, qtype)
                if message is not None:
                    return message
        except ConnectionRefusedError:
            raise ConnectionRefused("connection refused (nothing listens on the port)") from None


def _query_tcp(
    family: int,
    sockaddr: tuple[object, ...],
    packet: bytes,
    query_id: int,
    qname: str,
    qtype: int,
    deadline: float,
) -> Message:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            sock.settimeout(_remaining(deadline))
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            length = int.from_bytes(_recv_exactly(sock, 2, deadline), "big")
            reply = _recv_exactly(sock, length, deadline)
        except ConnectionRefusedError:
            raise ConnectionRefused("TCP connection refused after a truncated answer") from None
        except TimeoutError:
            raise QueryTimeout("no answer over TCP before the deadline") from None
    message = _acceptable(reply, query_id, qname, qtype)
    if message is None:
        raise FormatError("the TCP answer does not match the question")
    return message


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise FormatError(f"TCP connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------------------- reverse


def reverse_name(address: str) -> str:
    """``10.2.0.192.in-addr.arpa`` for 192.0.2.10; the ip6.arpa nibble name for IPv6."""
    return ipaddress.ip_address(address.split("%", 1)[0]).reverse_pointer


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1."""
    return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback


def is_host_address(address: str) -> bool:
    """An address a host is known by: not loopback, link-local, unspecified or multicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast)


def canonical_address(address: str) -> str:
    """The address in its canonical text form (``2001:db8::1``), or ValueError."""
    return str(ipaddress.ip_address(address))
