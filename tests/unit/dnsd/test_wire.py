"""Edge cases of the hand-written wire format (dnsd.core.wire)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from dnsd.core import wire
from dnsd.core.wire import MalformedQuery, Query, parse_query
from netcore.errors import InvalidArgument


def header(*, ident: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:  # fmt: skip
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(name: bytes = b"\x04Web1\x04netA\x00", qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def opt(size: int = 1232, ttl: int = 0, rdata: bytes = b"", owner: bytes = b"\x00") -> bytes:
    return owner + struct.pack("!HHIH", 41, size, ttl, len(rdata)) + rdata


def rejected(packet: bytes) -> MalformedQuery:
    with pytest.raises(MalformedQuery) as caught:
        parse_query(packet)
    return caught.value


def test_parses_header_and_question_keeping_case() -> None:
    packet = header(flags=0x0110) + question(qtype=28, qclass=3)
    query = parse_query(packet)
    assert query == Query(
        id=0x1234,
        flags=0x0110,
        opcode=0,
        rd=True,
        qname_wire=b"\x04Web1\x04netA\x00",
        qname_lower=b"\x04web1\x04neta\x00",
        qtype=28,
        qclass=3,
        edns_size=None,
        do_bit=False,
        question_end=len(packet),
        question=packet[12:],
    )


def test_agrees_with_dnslib_on_a_plain_query() -> None:
    record = DNSRecord.question("Some.Host.example", "MX")
    record.add_ar(EDNS0(udp_len=4096, flags="do"))
    packet = bytes(record.pack())
    query = parse_query(packet)
    assert (query.id, query.qtype, query.qclass) == (record.header.id, QTYPE.MX, 1)
    assert query.qname_wire == b"\x04Some\x04Host\x07example\x00"
    assert (query.edns_size, query.do_bit) == (4096, True)


def test_lower_case_touches_only_ascii_letters() -> None:
    name = b"\x03A\xc4Z\x02_-\x00"  # a non-ASCII byte stays as it is
    assert parse_query(header() + question(name)).qname_lower == b"\x03a\xc4z\x02_-\x00"


def test_accepts_bytearray_and_memoryview() -> None:
    packet = header() + question()
    assert parse_query(bytearray(packet)) == parse_query(memoryview(packet)) == parse_query(packet)


@pytest.mark.parametrize("size", range(12))
def test_shorter_than_a_header_is_dropped(size: int) -> None:
    assert rejected((header() + question())[:size]).rcode is None


def test_a_response_is_dropped() -> None:
    assert rejected(header(flags=0x8100) + question()).rcode is None


@pytest.mark.parametrize("opcode", [1, 2, 3, 5, 6, 15])
def test_opcodes_other_than_query_and_notify_are_not_implemented(opcode: int) -> None:
    error = rejected(header(flags=opcode << 11) + question())
    assert (error.rcode, error.question_end) == (wire.NOTIMP, None)


def test_notify_parses_like_a_query() -> None:
    assert parse_query(header(flags=4 << 11) + question()).opcode == 4


@pytest.mark.parametrize("qd", [0, 2, 65535])
def test_question_count_other_than_one_is_formerr_without_question(qd: int) -> None:
    error = rejected(header(qd=qd) + question() + question())
    assert (error.rcode, error.question_end) == (wire.FORMERR, None)


@pytest.mark.parametrize(
    "body",
    [
        b"",  # M04: header promises a question
        b"\x3fabc",  # M12: label overruns the packet
        b"\xc0\x0c\x00\x01\x00\x01",  # M11: compression pointer (here a loop)
        b"\x03web\xc0\x0c\x00\x01\x00\x01",  # pointer after a label
        b"\x40" + bytes(70),  # obsolete extended label type 01
        b"\x04web1\x00\x00\x01\x00",  # QCLASS cut short
        b"\x04web1",  # no root label
    ],
)
def test_broken_question_is_formerr_without_question(body: bytes) -> None:
    error = rejected(header() + body)
    assert (error.rcode, error.question_end) == (wire.FORMERR, None)


def test_name_length_limit_is_255_octets() -> None:
    label = b"\x3f" + b"a" * 63
    longest = label * 3 + b"\x3d" + b"a" * 61 + b"\x00"  # 255 octets
    assert len(longest) == 255
    assert parse_query(header() + question(longest)).qname_wire == longest
    too_long = label * 3 + b"\x3e" + b"a" * 62 + b"\x00"
    assert rejected(header() + question(too_long)).rcode == wire.FORMERR


def test_root_name_is_a_valid_question() -> None:
    query = parse_query(header() + question(b"\x00", qtype=2))
    assert (query.qname_wire, query.is_single_label) == (b"\x00", False)


@pytest.mark.parametrize(("an", "ns"), [(1, 0), (0, 1), (3, 2)])
def test_answer_or_authority_records_are_formerr_with_question(an: int, ns: int) -> None:
    packet = header(an=an, ns=ns) + question() + b"\x01\x02"
    error = rejected(packet)
    assert (error.rcode, error.question_end) == (wire.FORMERR, len(question()) + 12)


def test_trailing_garbage_is_ignored() -> None:  # M13
    packet = header() + question()
    assert parse_query(packet + bytes(100)) == parse_query(packet)


@pytest.mark.parametrize(
    ("ttl", "rdata", "expected"),
    [
        (0, b"", (1232, False)),
        (0x8000, b"", (1232, True)),
        (0x00008000, b"\x00\x0a\x00\x08" + bytes(8), (1232, True)),  # with a client cookie
    ],
)
def test_opt_record_gives_size_and_do(ttl: int, rdata: bytes, expected: tuple) -> None:
    query = parse_query(header(ar=1) + question() + opt(1232, ttl, rdata))
    assert (query.edns_size, query.do_bit) == expected


def test_small_edns_size_is_kept_as_sent() -> None:
    assert parse_query(header(ar=1) + question() + opt(100)).edns_size == 100


@pytest.mark.parametrize(
    "additional",
    [
        opt() + opt(),  # two OPT records (RFC 6891 6.1.1)
        opt(owner=b"\x03web\x00"),  # OPT not owned by the root
        opt()[:-3],  # fixed part cut short
        opt(rdata=b"\x00\x0a\x00\x08")[:-2],  # rdata runs past the end
        b"\xff",  # an invalid label in the owner
    ],
)
def test_bad_additional_section_is_formerr_with_question(additional: bytes) -> None:
    count = 2 if additional == opt() + opt() else 1
    error = rejected(header(ar=count) + question() + additional)
    assert (error.rcode, error.question_end) == (wire.FORMERR, 12 + len(question()))


def test_arcount_without_a_record_is_formerr() -> None:
    assert rejected(header(ar=1) + question()).rcode == wire.FORMERR


def test_other_additional_records_are_skipped() -> None:
    tsig_like = b"\xc0\x0c" + struct.pack("!HHIH", 250, 255, 0, 3) + b"abc"
    query = parse_query(header(ar=2) + question() + tsig_like + opt(4096))
    assert query.edns_size == 4096


@pytest.mark.parametrize(
    ("name", "single"),
    [(b"\x03web\x00", True), (b"\x03web\x04netA\x00", False), (b"\x00", False)],
)
def test_single_label(name: bytes, single: bool) -> None:
    assert parse_query(header() + question(name)).is_single_label is single


def test_error_reply_bare_header_echoes_bits_like_docker() -> None:  # M05
    packet = header(ident=0x79C4, flags=0x121F) + b"junk"  # opcode STATUS, TC, CD, rcode 15
    reply = wire.error_reply(packet, wire.NOTIMP)
    assert reply == struct.pack("!HHHHHH", 0x79C4, 0x9214, 0, 0, 0, 0)


def test_error_reply_clears_z_and_echoes_the_question() -> None:
    packet = header(flags=0x0140, an=1) + question() + b"\x01\x02"
    reply = wire.error_reply(packet, wire.FORMERR, 12 + len(question()))
    assert reply == struct.pack("!HHHHHH", 0x1234, 0x8101, 1, 0, 0, 0) + question()


def test_empty_reply_sets_ra_copies_rd_cd_and_echoes_opt() -> None:
    packet = header(flags=0x0530, ar=1) + question() + opt(4096, 0x8000)  # AA, RD, AD, CD
    reply = wire.empty_reply(parse_query(packet), wire.SERVFAIL)
    flags = wire.FLAG_QR | wire.FLAG_RD | wire.FLAG_RA | wire.FLAG_CD | wire.SERVFAIL
    expected = struct.pack("!HHHHHH", 0x1234, flags, 1, 0, 0, 1) + question() + wire.OPT_DO
    assert reply == expected
    parsed = DNSRecord.parse(reply)
    assert (parsed.ar[0].rclass, parsed.ar[0].edns_do) == (1232, 1)


def test_notify_reply_does_not_copy_rd() -> None:
    assert wire.reply_flags(0x2100) == wire.FLAG_QR | wire.FLAG_RA | 0x2000


def test_forward_error_reply_has_no_opt_and_copies_rd_cd() -> None:
    # The forwarder's SERVFAIL/REFUSED: id and question echoed, opcode/RD/CD copied, RA set.
    packet = header(flags=0x0530, ar=1) + question() + opt(4096, 0x8000)  # AA, RD, AD, CD
    reply = wire.forward_error_reply(parse_query(packet), wire.REFUSED)
    flags = wire.FLAG_QR | wire.FLAG_RD | wire.FLAG_RA | wire.FLAG_CD | wire.REFUSED
    assert reply == struct.pack("!HHHHHH", 0x1234, flags, 1, 0, 0, 0) + question()
    notify = header(flags=0x2100) + question()
    reply = wire.forward_error_reply(parse_query(notify), wire.SERVFAIL)
    assert reply[2:4] == struct.pack("!H", wire.FLAG_QR | 0x2100 | wire.FLAG_RA | wire.SERVFAIL)


# --- matching an upstream's answer to its query (the forwarder's spoofing check) ---


def _fixed(name: str = "ext.anchors.test", qtype: str = "A") -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = 0x1234
    return bytes(record.pack())


def _reply_to(query: bytes, **changes: object) -> bytes:
    record = DNSRecord.parse(query).reply()
    for key, value in changes.items():
        setattr(record.header, key, value)
    return bytes(record.pack())


def test_answer_matching_is_case_insensitive_on_the_qname() -> None:
    query = parse_query(_fixed("ExT.Anchors.TEST"))
    assert wire.is_answer_to(_reply_to(_fixed("ext.anchors.test")), query)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(_reply_to(_fixed(), id=0x1235), id="id"),
        pytest.param(_fixed(), id="not-a-response"),
        pytest.param(_reply_to(_fixed(), opcode=4), id="opcode"),
        pytest.param(_reply_to(_fixed("ext.anchors.test", "AAAA")), id="qtype"),
        pytest.param(_reply_to(_fixed("other.anchors.test")), id="qname"),
        pytest.param(_reply_to(_fixed())[:11], id="short"),
        pytest.param(_reply_to(_fixed())[:-1], id="truncated-question"),
        pytest.param(_reply_to(_fixed("ext.anchors.tes")), id="qname-prefix"),
        pytest.param(
            _reply_to(_fixed())[:4] + b"\x00\x02" + _reply_to(_fixed())[6:], id="two-questions"
        ),
        pytest.param(
            _reply_to(_fixed())[:12] + b"\xc0\x0c" + _reply_to(_fixed())[-4:], id="compressed"
        ),
    ],
)
def test_answer_matching_rejects(reply: bytes) -> None:
    query = parse_query(_fixed())
    assert wire.is_answer_to(_reply_to(_fixed()), query)  # the unchanged reply matches
    assert not wire.is_answer_to(reply, query)


def test_answer_matching_does_not_lower_case_type_or_class() -> None:
    # Type 65 (HTTPS) is 0x0041, an ASCII "A": only the name is compared case-insensitively.
    query = parse_query(_fixed("ext.anchors.test", "HTTPS"))
    reply = _reply_to(_fixed("ext.anchors.test", "HTTPS"))  # no records: the question ends it
    assert wire.is_answer_to(reply, query)
    assert not wire.is_answer_to(reply[:-4] + b"\x00\x61\x00\x01", query)  # type 97, "a"


def test_questionless_error_reply_is_accepted_only_for_error_rcodes() -> None:
    packet = bytes(DNSRecord.question("ext.anchors.test", "A").pack())
    query = parse_query(packet)
    header_ = bytearray(packet[:12])
    header_[2] |= 0x80  # QR
    header_[4:6] = b"\x00\x00"  # QDCOUNT 0
    refused, noerror = bytearray(header_), bytearray(header_)
    refused[3] = (refused[3] & 0xF0) | RCODE.REFUSED
    assert wire.is_answer_to(bytes(refused), query)
    assert not wire.is_answer_to(bytes(noerror), query)


def test_question_parse_rejects_compression_and_truncation() -> None:
    # What the forwarder's own question parser refused, the wire layer's refuses too.
    packet = bytes(DNSRecord.question("ext.anchors.test", "A").pack())
    with pytest.raises(MalformedQuery):
        parse_query(packet[:-1])
    with pytest.raises(MalformedQuery):
        parse_query(packet[:12] + b"\xc0\x0c" + packet[-4:])
    parsed = parse_query(packet)
    assert parsed.question_end == len(packet) and parsed.qtype == QTYPE.A


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("web1.netA", b"\x04web1\x04netA\x00"),
        ("web1.netA.", b"\x04web1\x04netA\x00"),
        ("_80._tcp.x", b"\x03_80\x04_tcp\x01x\x00"),
        ("", b"\x00"),
    ],
)
def test_encode_name(name: str, encoded: bytes) -> None:
    assert wire.encode_name(name) == encoded


@pytest.mark.parametrize("name", ["a..b", ".a", "x" * 64, "caf\u00e9", ".".join(["a" * 63] * 4)])
def test_encode_name_refuses_what_is_not_a_dns_name(name: str) -> None:
    with pytest.raises(InvalidArgument):
        wire.encode_name(name)


def test_packed_records_parse_with_dnslib() -> None:
    packet = header() + question(b"\x03WeB\x00", qtype=33)
    rdata = wire.pack_srv(0, 0, 80, "web1.netA")
    rr = wire.pack_rr(wire.TYPE_SRV, 30, rdata)
    reply = struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0) + packet[12:] + rr
    parsed = DNSRecord.parse(reply)
    assert str(parsed.rr[0].rname) == "WeB."  # the pointer echoes the query's case
    assert (parsed.rr[0].ttl, str(parsed.rr[0].rdata)) == (30, "0 0 80 web1.netA.")


def test_reverse_names() -> None:
    assert wire.reverse_name(ipaddress.IPv4Address("172.17.0.2")) == "2.0.17.172.in-addr.arpa"
    v6 = wire.reverse_name(ipaddress.IPv6Address("fd6e:a1b2:c3d4:1::3"))
    assert v6 == "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.4.d.3.c.2.b.1.a.e.6.d.f.ip6.arpa"  # V03
    assert wire.pack_ptr("db.netA") == b"\x02db\x04netA\x00"
    assert wire.pack_aaaa(ipaddress.IPv6Address("::1"))[-1] == 1
