"""The stdlib DNS client: encoding, parsing with compression, and the UDP/TCP exchange.

The exchange tests use a small scripted server on a loopback socket, because the cases
they need (a wrong id first, a packet lost, a truncated answer, a compression loop) are
exactly what a real resolver does not produce on demand. The real dnsmasq is used in
test_dns_real.py.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest

from checks import dnswire
from checks.dnswire import (
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_PTR,
    FormatError,
    Rcode,
    build_query,
    encode_name,
    parse_message,
    read_name,
)

# ---------------------------------------------------------------------------- packets


def rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    """A resource record with an already encoded owner name."""
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


QNAME_POINTER = b"\xc0\x0c"  # the question name always starts right after the header


def response(
    query: bytes,
    records: Sequence[bytes] = (),
    *,
    rcode: int = 0,
    truncated: bool = False,
    query_id: int | None = None,
    question: bytes | None = None,
) -> bytes:
    """An answer to ``query``: same id and question unless told otherwise."""
    qid = struct.unpack("!H", query[:2])[0] if query_id is None else query_id
    flags = 0x8180 | rcode | (0x0200 if truncated else 0)
    body = query[12:] if question is None else question
    header = struct.pack("!HHHHHH", qid, flags, 1 if body else 0, len(records), 0, 0)
    return header + body + b"".join(records)


def a_record(address: str, owner: bytes = QNAME_POINTER) -> bytes:
    return rr(owner, TYPE_A, socket.inet_aton(address))


# ---------------------------------------------------------------------------- names


def test_encode_name() -> None:
    assert encode_name("web1.example.net") == b"\x04web1\x07example\x03net\x00"
    assert encode_name("web1.example.net.") == encode_name("web1.example.net")
    assert encode_name(".") == b"\x00"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a..b", "empty label"),
        ("a" * 64 + ".net", "longer than 63"),
        (".".join(["a" * 63] * 4), "longer than 255"),
        ("bücher.example", "not an ASCII name"),
    ],
)
def test_encode_name_refuses(name: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        encode_name(name)


def test_longest_legal_name_is_accepted() -> None:
    name = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters, 255 bytes on the wire
    assert len(encode_name(name)) == 255


def test_build_query_sets_rd_and_one_question() -> None:
    packet = build_query("web1.ci.test", TYPE_AAAA, 0xBEEF)
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", packet[:12])
    assert (qid, flags, qd, an, ns, ar) == (0xBEEF, 0x0100, 1, 0, 0, 0)
    assert packet[12:] == encode_name("web1.ci.test") + struct.pack("!HH", TYPE_AAAA, 1)
    with pytest.raises(ValueError):
        build_query("x.test", TYPE_A, 70000)


def test_query_ids_vary() -> None:
    assert len({dnswire.new_query_id() for _ in range(50)}) > 40


def test_read_name_follows_a_compression_pointer() -> None:
    packet = b"\x00" * 12 + b"\x07example\x03net\x00" + b"\x04web1\xc0\x0c"
    assert read_name(packet, 12) == ("example.net", 25)
    # The name continues at the pointer; the record goes on right after the pointer.
    assert read_name(packet, 25) == ("web1.example.net", 32)


@pytest.mark.parametrize(
    ("packet", "offset"),
    [
        (b"\x00" * 12 + b"\xc0\x0c", 12),  # points at itself
        (b"\x00" * 12 + b"\xc0\x0e\x01a\x00", 12),  # points forward
        (b"\x00" * 12 + b"\x01a\xc0\x0c", 12),  # label then back to its own start
        (b"\x00" * 12 + b"\x01a\xc0\x10\x01b\xc0\x0c", 16),  # two names pointing at each other
    ],
)
def test_read_name_refuses_pointer_loops(packet: bytes, offset: int) -> None:
    with pytest.raises(FormatError, match="loop"):
        read_name(packet, offset)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"\x05abc", "runs past the end"),
        (b"\x03abc", "runs past the end"),  # no terminating zero
        (b"\xc0", "cut off"),
        (b"\x40abc\x00", "unsupported label type"),
    ],
)
def test_read_name_refuses_truncated_or_strange_names(packet: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        read_name(packet, 0)


def test_reverse_names() -> None:
    assert dnswire.reverse_name("192.0.2.10") == "10.2.0.192.in-addr.arpa"
    assert dnswire.reverse_name("2001:db8::10") == (
        "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )


# ---------------------------------------------------------------------------- messages


def test_parse_answers_of_every_known_type() -> None:
    query = build_query("www.ci.test", TYPE_A, 7)
    target = b"\x04web1\x02ci\x04test\x00"
    records = [
        rr(QNAME_POINTER, TYPE_CNAME, target),
        a_record("192.0.2.10", owner=b"\xc0\x29"),  # points at the CNAME target
        rr(QNAME_POINTER, TYPE_AAAA, socket.inet_pton(socket.AF_INET6, "2001:db8::10")),
        rr(QNAME_POINTER, TYPE_PTR, b"\x04host\xc0\x10"),  # PTR target compressed
        rr(QNAME_POINTER, 16, b"\x04text"),  # TXT: kept, no value
    ]
    message = parse_message(response(query, records))
    assert message.query_id == 7 and message.is_response and not message.truncated
    assert message.question == ("www.ci.test", TYPE_A, 1)
    assert [(r.name, r.rtype, r.value) for r in message.answers] == [
        ("www.ci.test", TYPE_CNAME, "web1.ci.test"),
        ("web1.ci.test", TYPE_A, "192.0.2.10"),
        ("www.ci.test", TYPE_AAAA, "2001:db8::10"),
        ("www.ci.test", TYPE_PTR, "host.ci.test"),
        ("www.ci.test", 16, None),
    ]
    values, chain = dnswire.answer_values(message, "www.ci.test", TYPE_A)
    assert (values, chain) == (("192.0.2.10",), ("web1.ci.test",))


def test_rcode_is_read_from_the_header() -> None:
    query = build_query("nosuch.ci.test", TYPE_A, 9)
    message = parse_message(response(query, rcode=Rcode.NXDOMAIN))
    assert message.rcode == Rcode.NXDOMAIN
    assert dnswire.rcode_name(message.rcode) == "NXDOMAIN"
    assert dnswire.rcode_name(11) == "RCODE11"


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (5, "shorter than a DNS header"),
        (14, "runs past the end"),  # inside the question name
        (12 + 13 + 2, "question is cut off"),
        (12 + 13 + 4 + 5, "record header is cut off"),
        (12 + 13 + 4 + 12 + 2, "record data is cut off"),
    ],
)
def test_truncated_packets_are_refused(cut: int, message: str) -> None:
    query = build_query("web1.ci.test", TYPE_A, 1)
    packet = response(query, [a_record("192.0.2.10")])
    with pytest.raises(FormatError, match=message):
        parse_message(packet[:cut])


def test_wrong_rdata_length_is_refused() -> None:
    query = build_query("web1.ci.test", TYPE_A, 1)
    with pytest.raises(FormatError, match="A record of 3 bytes"):
        parse_message(response(query, [rr(QNAME_POINTER, TYPE_A, b"\x01\x02\x03")]))


def test_cname_loop_in_the_answer_is_refused() -> None:
    query = build_query("a.ci.test", TYPE_A, 1)
    records = [
        rr(QNAME_POINTER, TYPE_CNAME, b"\x01b\x02ci\x04test\x00"),
        rr(b"\x01b\x02ci\x04test\x00", TYPE_CNAME, QNAME_POINTER),
    ]
    with pytest.raises(FormatError, match="CNAME loop"):
        dnswire.answer_values(parse_message(response(query, records)), "a.ci.test", TYPE_A)


def test_records_of_other_owners_are_not_answers() -> None:
    query = build_query("web1.ci.test", TYPE_A, 1)
    records = [a_record("192.0.2.66", owner=b"\x05other\x02ci\x04test\x00"),
               a_record("192.0.2.10")]
    message = parse_message(response(query, records))
    assert dnswire.answer_values(message, "WEB1.ci.test.", TYPE_A) == (("192.0.2.10",), ())


# ---------------------------------------------------------------------------- exchange

Handler = Callable[[bytes, int], Sequence[bytes]]
"""Given a query and how many queries came before it, the packets to send back."""


@contextmanager
def scripted_server(handler: Handler, tcp_handler: Handler | None = None) -> Iterator[int]:
    """A loopback UDP (and optionally TCP) server answering from ``handler``; its port."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = None
    if tcp_handler is not None:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))
        tcp.listen(1)
    stop = threading.Event()

    def serve_udp() -> None:
        udp.settimeout(0.05)
        seen = 0
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(4096)
            except TimeoutError:
                continue
            for packet in handler(data, seen):
                udp.sendto(packet, peer)
            seen += 1

    def serve_tcp() -> None:
        assert tcp is not None and tcp_handler is not None
        tcp.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                length = struct.unpack("!H", conn.recv(2))[0]
                data = conn.recv(length)
                for packet in tcp_handler(data, 0):
                    conn.sendall(struct.pack("!H", len(packet)) + packet)

    threads = [threading.Thread(target=serve_udp, daemon=True)]
    if tcp is not None:
        threads.append(threading.Thread(target=serve_tcp, daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield port
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
        udp.close()
        if tcp is not None:
            tcp.close()


def ask(port: int, name: str = "web1.ci.test", qtype: int = TYPE_A, *,
        timeout: float = 2.0, resend_after: float | None = None) -> dnswire.Answer:
    return dnswire.query("127.0.0.1", port, name, qtype,
                         deadline=time.monotonic() + timeout, resend_after=resend_after)


def test_answers_with_a_wrong_id_or_question_are_ignored() -> None:
    def handler(query: bytes, _: int) -> list[bytes]:
        qid = struct.unpack("!H", query[:2])[0]
        other_question = encode_name("evil.ci.test") + struct.pack("!HH", TYPE_A, 1)
        return [
            response(query, [a_record("192.0.2.66")], query_id=(qid + 1) % 65536),
            response(query, [a_record("192.0.2.67")], question=other_question),
            b"\x00",  # garbage too short to carry an id
            response(query, [a_record("192.0.2.10")]),
        ]

    with scripted_server(handler) as port:
        answer = ask(port)
    assert answer.values == ("192.0.2.10",)
    assert answer.rcode == Rcode.NOERROR


def test_silence_ends_at_the_deadline() -> None:
    with scripted_server(lambda query, seen: []) as port:
        started = time.monotonic()
        with pytest.raises(dnswire.QueryTimeout):
            ask(port, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 0.6


def test_a_lost_datagram_is_sent_again() -> None:
    def handler(query: bytes, seen: int) -> list[bytes]:
        return [] if seen == 0 else [response(query, [a_record("192.0.2.10")])]

    with scripted_server(handler) as port:
        answer = ask(port, timeout=1.0, resend_after=0.2)
    assert answer.values == ("192.0.2.10",)
    assert 0.2 <= answer.elapsed < 0.8


def test_closed_port_is_connection_refused_at_once() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(dnswire.ConnectionRefused):
        ask(port, timeout=2.0)
    assert time.monotonic() - started < 0.5


def test_truncated_answer_is_asked_again_over_tcp() -> None:
    def udp(query: bytes, _: int) -> list[bytes]:
        return [response(query, truncated=True)]

    def tcp(query: bytes, _: int) -> list[bytes]:
        return [response(query, [a_record(f"192.0.2.{n}") for n in range(1, 40)])]

    with scripted_server(udp, tcp) as port:
        answer = ask(port)
    assert answer.over_tcp
    assert len(answer.values) == 39


def test_malformed_answer_with_our_id_is_an_error() -> None:
    def handler(query: bytes, _: int) -> list[bytes]:
        return [response(query, [a_record("192.0.2.10")])[:-2]]

    with scripted_server(handler) as port, pytest.raises(FormatError):
        ask(port)


def test_error_answer_without_a_question_is_accepted() -> None:
    def handler(query: bytes, _: int) -> list[bytes]:
        return [response(query, rcode=Rcode.REFUSED, question=b"")]

    with scripted_server(handler) as port:
        assert ask(port).rcode == Rcode.REFUSED


def test_resolver_must_be_numeric() -> None:
    with pytest.raises(dnswire.DnsError, match="not a numeric address"):
        dnswire.query("resolver.example", 53, "x.test", TYPE_A, deadline=time.monotonic() + 1)
