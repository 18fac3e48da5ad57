"""Properties of `answer` over arbitrary bytes and mutated queries (hypothesis).

Whatever arrives, `answer` returns a Reply, a Forward or a Drop and never raises; a reply parses
with dnslib, echoes the id, is a response, fits the client's UDP size, and FORMERR/NOTIMP come
only for packets whose header parsed.
"""

from __future__ import annotations

import random
import struct

from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsd.core import Drop, Forward, MalformedQuery, Reply, answer, build_view, parse_query
from netcore.model import Network, PortBinding, Snapshot
from tests.support import snapshots as build

CROWD = 45  # more A records than fit in 512 bytes


def _network(index: int, name: str, *, internal: bool = False) -> Network:
    subnet = f"10.{index}.0.0/16"
    return build.network(
        f"{index:064x}", name, f"br{index}", subnet, internal=internal, dns_ttl=index
    )


def _snapshot() -> Snapshot:
    networks = (_network(1, "front"), _network(2, "back", internal=True))
    sandboxes, endpoints = [], []
    for index in range(CROWD + 3):
        sid = f"{index + 100:064x}"
        options = ("ndots:2",) if index == CROWD + 2 else None
        ports = (PortBinding(80, 8000 + index),) if index < 3 else ()
        sandboxes.append(build.sandbox(sid, f"s{index}", dns_options=options, ports=ports))
        net = networks[1] if index == CROWD + 1 else networks[0]
        aliases = ("crowd",) if index < CROWD else ()
        endpoints.append(
            build.endpoint(
                f"{index + 500:064x}", net, sid, 2 + index, host_ifname=f"v{index}", aliases=aliases
            )
        )
    return build.snapshot(networks, sandboxes, endpoints)


VIEW = build_view(_snapshot())
ASKERS = [f"{100:064x}", f"{CROWD + 101:064x}", f"{CROWD + 102:064x}", "nobody"]
NAMES = [b"\x05crowd", b"\x02s1\x05front", b"\x03_80\x04_tcp\x02s1", b"\x06nosuch", b"\x01x\x01y"]
SEEDS = [
    struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, ar) + name + b"\x00" + struct.pack("!HH", t, 1) + opt
    for name in NAMES
    for t in (1, 28, 33, 12, 255)
    for ar, opt in ((0, b""), (1, b"\x00\x00\x29\x02\x58\x00\x00\x80\x00\x00\x00"))
] + [
    struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\x012\x011\x012\x0210\x07in-addr\x04arpa\x00"
    b"\x00\x0c\x00\x01"
]


def check(packet: bytes, asker: str, tcp: bool) -> None:
    decision = answer(packet, asker, VIEW, tcp=tcp, rng=random.Random(3))
    assert isinstance(decision, Reply | Forward | Drop)
    if len(packet) < 12 or packet[2] & 0x80:
        assert isinstance(decision, Drop)  # no header, or a response: never answered
        return
    if isinstance(decision, Drop):
        raise AssertionError("a packet with a query header must get a reply or be forwarded")
    if isinstance(decision, Forward):
        assert decision.query == parse_query(packet)
        return
    data = decision.data
    assert isinstance(data, bytes)
    reply = DNSRecord.parse(_utf8_question(data))
    assert data[:2] == packet[:2]  # id always echoed
    assert reply.header.qr == 1
    assert len(reply.questions) <= 1
    if reply.questions:  # echoed verbatim, original case
        length = _question_length(data)
        assert data[12 : 12 + length] == packet[12 : 12 + length]
    try:
        query = parse_query(packet)
    except MalformedQuery as exc:
        assert reply.header.rcode == exc.rcode and reply.rr == []
        return
    limit = 65535 if tcp else max(512, query.edns_size or 0)
    assert len(data) <= limit
    assert reply.header.rcode in (0, 2)  # NOERROR, or SERVFAIL on an internal network
    assert all(rr.rclass == 1 and rr.rtype == query.qtype for rr in reply.rr)


def _utf8_question(reply: bytes) -> bytes:
    """`reply` with non-ASCII octets of the echoed question name replaced by `x`.

    DNS names are 8-bit clean (RFC 2181 11) and we echo them verbatim, but dnslib refuses labels
    that are not UTF-8; the rest of the reply is still checked by dnslib's parser.
    """
    if reply[5] == 0:  # no question echoed
        return reply
    end = 12 + _question_length(reply) - 5
    name = bytes(octet if octet < 0x80 else 0x78 for octet in reply[12:end])
    return reply[:12] + name + reply[end:]


def _question_length(reply: bytes) -> int:
    end = 12
    while reply[end]:
        end += reply[end] + 1
    return end + 5 - 12  # root octet, QTYPE, QCLASS


PROPERTY_SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(packet=st.binary(max_size=300), asker=st.sampled_from(ASKERS), tcp=st.booleans())
def test_any_bytes(packet: bytes, asker: str, tcp: bool) -> None:
    check(packet, asker, tcp)


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(packet)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and position < len(packet):
            packet[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            packet[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del packet[position : position + draw(st.integers(1, 4))]
        elif action == "truncate":
            del packet[position:]
    return bytes(packet)


@PROPERTY_SETTINGS
@given(packet=mutated_queries(), asker=st.sampled_from(ASKERS), tcp=st.booleans())
def test_mutated_queries(packet: bytes, asker: str, tcp: bool) -> None:
    check(packet, asker, tcp)


def test_seed_queries_exercise_every_outcome() -> None:
    """The mutation seeds reach local answers, truncation, NODATA, SERVFAIL and forwarding."""
    seen = set()
    for packet in SEEDS:
        for asker in ASKERS:
            decision = answer(packet, asker, VIEW, rng=random.Random(1))
            if isinstance(decision, Reply):
                reply = DNSRecord.parse(decision.data)
                seen.add((reply.header.rcode, bool(reply.rr), bool(reply.header.tc)))
            else:
                seen.add(type(decision).__name__)
    assert {(0, True, False), (0, True, True), (0, False, False), (2, False, False)} <= seen
    assert "Forward" in seen
