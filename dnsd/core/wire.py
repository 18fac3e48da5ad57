"""Hand-written DNS wire format for the hot path: one query in, pre-packed bytes out.

Only what the embedded server needs: the 12-byte header, exactly one uncompressed question,
an optional OPT record, builders for replies and A/AAAA/PTR/SRV resource records, and the check
the forwarder makes that an upstream's reply answers the query. dnslib is far too slow for
~150k queries/s and is used only by the tests and their oracle (`tests/oracle/slow.py`).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from netcore.errors import InvalidArgument

# RR types, classes and rcodes this module speaks (RFC 1035, 2782, 3596, 6891).
TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41
CLASS_IN = 1

NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5
RCODE_MASK = 0x000F
# Question-less replies a server may send when it could not parse what it was sent
# (dnspython's `is_response` accepts these too).
QUESTIONLESS_RCODES = frozenset({FORMERR, SERVFAIL, NOTIMP, REFUSED})

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4

# Header flag bits.
FLAG_QR = 0x8000
FLAG_OPCODE = 0x7800
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_CD = 0x0010
# What an error reply keeps of the query's flags: everything but QR, Z and the rcode, like
# Docker (miekg/dns echoes the header it could parse, even garbage bits: row M05).
_ERROR_ECHO_MASK = 0x7FB0

OUR_UDP_SIZE = 1232  # the EDNS buffer size we advertise (DNS flag day 2020)
PLAIN_UDP_LIMIT = 512  # RFC 1035 limit without EDNS; also the floor of a smaller EDNS size
MAX_MESSAGE = 65535  # any DNS message: TCP frames it with a 16-bit length
TCP_LIMIT = MAX_MESSAGE
MAX_NAME_WIRE = 255  # RFC 1035 2.3.4, counting length octets and the root
MAX_LABEL = 63
EDNS_DO = 0x8000  # the DO bit in the OPT record's TTL field

HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_SRV_FIXED = struct.Struct("!HHH")  # priority, weight, port
# Every local answer is owned by the question name: a pointer to offset 12 echoes the query's
# own case (rows L02/L03) and keeps each record small.
POINTER_TO_QUESTION = b"\xc0\x0c"


class MalformedQuery(InvalidArgument):
    """A packet that is not an acceptable query.

    `rcode` is what to answer (FORMERR or NOTIMP), or None to stay silent (too short, or a
    response: answering responses would let anyone make us loop or amplify). `question_end` is
    the offset after the question when that much parsed, so the reply can echo it.
    """

    def __init__(self, message: str, *, rcode: int | None, question_end: int | None = None):
        super().__init__(message)
        self.rcode = rcode
        self.question_end = question_end


class Query(NamedTuple):
    """The parsed header and question of a query, plus its EDNS parameters.

    A NamedTuple, not a frozen dataclass: it is built for every packet, and a frozen
    dataclass's `__init__` (one `object.__setattr__` per field) costs ~2 us here, ~40% of the
    per-query budget. It is just as immutable.
    """

    id: int
    flags: int  # the whole 16-bit flags word, as received
    opcode: int
    rd: bool
    qname_wire: bytes  # the question name as received: labels, original case, root octet
    qname_lower: bytes  # the same, ASCII lower-cased: the lookup key (RFC 4343)
    qtype: int
    qclass: int
    edns_size: int | None  # the client's UDP payload size; None without an OPT record
    do_bit: bool
    question_end: int  # offset after QTYPE/QCLASS
    question: bytes  # the question section verbatim (name, type, class), echoed in replies

    @property
    def is_single_label(self) -> bool:
        """One label (`web`), not the root and not `web.netA`."""
        wire = self.qname_wire
        return len(wire) > 1 and wire[0] + 2 == len(wire)


def parse_query(packet: bytes) -> Query:
    """Parse header, question and OPT of `packet`; raise MalformedQuery when not a valid query.

    Trailing bytes after the last counted record are ignored (row M13). A compression pointer
    in the question is refused: a query has nothing earlier to point to.
    """
    if packet.__class__ is not bytes:  # bytearray/memoryview from a buffer: keys must hash
        packet = bytes(packet)
    if len(packet) < 12:
        raise MalformedQuery("shorter than a DNS header", rcode=None)
    ident, flags, qdcount, ancount, nscount, arcount = _unpack_header(packet)
    if flags & FLAG_QR:
        raise MalformedQuery("a response, not a query", rcode=None)
    opcode = flags >> 11 & 0xF
    if opcode != OPCODE_QUERY and opcode != OPCODE_NOTIFY:
        raise MalformedQuery(f"opcode {opcode} is not implemented", rcode=NOTIMP)
    if qdcount != 1:
        raise MalformedQuery(f"{qdcount} questions, expected exactly 1", rcode=FORMERR)
    name_end = 12
    try:
        length = packet[12]
        while length:
            if length > MAX_LABEL:  # a compression pointer or an obsolete extended label type
                raise MalformedQuery("compressed or invalid label in the question", rcode=FORMERR)
            name_end += length + 1
            length = packet[name_end]
    except IndexError:
        raise MalformedQuery("question name runs past the end", rcode=FORMERR) from None
    name_end += 1
    if name_end - 12 > MAX_NAME_WIRE:
        raise MalformedQuery("question name longer than 255 octets", rcode=FORMERR)
    question_end = name_end + 4
    if question_end > len(packet):
        raise MalformedQuery("question type/class missing", rcode=FORMERR)
    if ancount or nscount:
        raise MalformedQuery(
            "a query carries no answer or authority records",
            rcode=FORMERR,
            question_end=question_end,
        )
    edns_size = None
    do_bit = False
    if arcount:
        edns_size, do_bit = _parse_additional(packet, question_end, arcount)
    qname_wire = packet[12:name_end]
    qtype, qclass = _unpack_type_class(packet, name_end)
    # tuple.__new__ skips NamedTuple's Python-level __new__ (~0.2 us): this runs per packet.
    return _new_tuple(
        Query,
        (
            ident,
            flags,
            opcode,
            bool(flags & FLAG_RD),
            qname_wire,
            qname_wire.lower(),  # label lengths are <= 63, so lower() only touches A-Z
            qtype,
            qclass,
            edns_size,
            do_bit,
            question_end,
            packet[12:question_end],
        ),
    )


_unpack_header = HEADER.unpack_from
_unpack_type_class = _TYPE_CLASS.unpack_from
_new_tuple = tuple.__new__


def _parse_additional(packet: bytes, question_end: int, count: int) -> tuple[int | None, bool]:
    """Walk the additional records; return the OPT's (UDP size, DO) or (None, False)."""

    def bad(message: str) -> MalformedQuery:
        # The question parsed, so the FORMERR echoes it.
        return MalformedQuery(message, rcode=FORMERR, question_end=question_end)

    size = len(packet)
    pos = question_end
    edns: tuple[int | None, bool] = (None, False)
    seen_opt = False
    for _ in range(count):
        owner_start = pos
        while True:  # skip the owner name; a pointer ends it (we never need to follow it)
            if pos >= size:
                raise bad("additional record owner runs past the end")
            length = packet[pos]
            if length >= 0xC0:
                pos += 2
                break
            if length > MAX_LABEL:
                raise bad("invalid label in an additional record")
            pos += length + 1
            if length == 0:
                break
        if pos + 10 > size:
            raise bad("additional record truncated")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(packet, pos)
        pos += 10 + rdlength
        if pos > size:
            raise bad("additional record data runs past the end")
        if rtype == TYPE_OPT:
            if seen_opt:
                raise bad("more than one OPT record (RFC 6891 6.1.1)")
            if packet[owner_start] != 0:
                raise bad("the OPT record's owner must be the root")
            seen_opt = True
            edns = (rclass, bool(ttl & EDNS_DO))
    return edns


def opt_record(do_bit: bool) -> bytes:
    """Our OPT record: root owner, UDP size 1232, version 0, only DO (echoed) set."""
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, OUR_UDP_SIZE, EDNS_DO if do_bit else 0, 0)


OPT_PLAIN = opt_record(False)
OPT_DO = opt_record(True)


def reply_flags(query_flags: int, rcode: int = NOERROR) -> int:
    """Flags of a reply to a valid query: QR, the opcode, RD and CD copied, RA, never AA.

    RD and CD are copied only for opcode QUERY, like miekg/dns `SetReply` (NOTIFY: row M07).
    """
    opcode_bits = query_flags & FLAG_OPCODE
    copied = query_flags & (FLAG_RD | FLAG_CD) if opcode_bits == 0 else 0
    return FLAG_QR | FLAG_RA | opcode_bits | copied | rcode


def empty_reply(query: Query, rcode: int = NOERROR) -> bytes:
    """A reply with no records (NODATA, SERVFAIL, REFUSED): question echoed, OPT if asked."""
    opt = b"" if query.edns_size is None else (OPT_DO if query.do_bit else OPT_PLAIN)
    header = HEADER.pack(query.id, reply_flags(query.flags, rcode), 1, 0, 0, 1 if opt else 0)
    return header + query.question + opt


def forward_error_reply(query: Query, rcode: int) -> bytes:
    """The forwarder's SERVFAIL/REFUSED: `empty_reply` without an OPT, RD/CD copied even for
    NOTIFY. Byte for byte what the forwarder has always sent; the listener's use `empty_reply`.
    """
    flags = reply_flags(query.flags, rcode) | query.flags & (FLAG_RD | FLAG_CD)
    return HEADER.pack(query.id, flags, 1, 0, 0, 0) + query.question


def error_reply(packet: bytes, rcode: int, question_end: int | None = None) -> bytes:
    """FORMERR/NOTIMP (or any rcode) for a packet whose header parsed (>= 12 bytes).

    Like Docker: the query's header bits are echoed (minus Z) with QR and the rcode set; the
    question is echoed when it parsed (`question_end`), else the reply is a bare 12-byte header
    (rows M03, M05, M08-M12, M14). No OPT: the OPT may be what was wrong.
    """
    ident, flags = struct.unpack_from("!HH", packet)
    flags = FLAG_QR | (flags & _ERROR_ECHO_MASK) | (rcode & 0xF)
    if question_end is None:
        return HEADER.pack(ident, flags, 0, 0, 0, 0)
    return HEADER.pack(ident, flags, 1, 0, 0, 0) + packet[12:question_end]


def refused_reply(packet: bytes) -> bytes | None:
    """REFUSED for a query this listener will not answer for its sender (question echoed
    when it parses); None for what gets no reply at all (too short, or a response)."""
    try:
        return empty_reply(parse_query(packet), REFUSED)
    except MalformedQuery as exc:
        return None if exc.rcode is None else error_reply(packet, REFUSED)


def is_answer_to(reply: bytes, query: Query) -> bool:
    """True when `reply` is a response to `query`: QR set, same id and opcode, and the same one
    question (qname case-insensitively, qtype, qclass), or none at all with an error rcode.

    The reply's question must be uncompressed like the query's (nothing precedes it to point
    at): its bytes are compared with the query's, so no second parser is needed. Lower-casing
    keeps label length octets (<= 63) as they are, so equal bytes mean an equal name.
    """
    if len(reply) < 12:
        return False
    ident, flags, qdcount = _unpack_id_flags_qdcount(reply)
    if ident != query.id or not flags & FLAG_QR or (flags ^ query.flags) & FLAG_OPCODE:
        return False
    if qdcount == 0:
        return flags & RCODE_MASK in QUESTIONLESS_RCODES
    if qdcount != 1:
        return False
    name_end = 12 + len(query.qname_wire)
    return (
        reply[12:name_end].lower() == query.qname_lower
        and reply[name_end : query.question_end] == query.question[-4:]
    )


_unpack_id_flags_qdcount = struct.Struct("!HHH").unpack_from


# --- resource records, packed once per registry snapshot ---


def encode_name(name: str) -> bytes:
    """`web1.netA` (trailing dot optional) as uncompressed wire labels, case kept.

    Raise InvalidArgument for what cannot be a DNS name: empty labels, labels over 63 octets,
    non-ASCII, or more than 255 octets in all.
    """
    text = name[:-1] if name.endswith(".") else name
    try:
        labels = [label.encode("ascii") for label in text.split(".")] if text else []
    except UnicodeEncodeError:
        raise InvalidArgument(f"{name!r} is not ASCII; use letters, digits, - and _") from None
    if any(not 0 < len(label) <= MAX_LABEL for label in labels):
        raise InvalidArgument(f"{name!r} has an empty label or one over 63 octets")
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > MAX_NAME_WIRE:
        raise InvalidArgument(f"{name!r} is longer than 255 octets on the wire")
    return wire


def reverse_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The in-addr.arpa / ip6.arpa name of an address (no trailing dot)."""
    return address.reverse_pointer


def pack_a(address: ipaddress.IPv4Address) -> bytes:
    return address.packed


def pack_aaaa(address: ipaddress.IPv6Address) -> bytes:
    return address.packed


def pack_ptr(target: str) -> bytes:
    """PTR rdata: the target uncompressed (pre-packed records cannot point at each other)."""
    return encode_name(target)


def pack_srv_fixed(priority: int, weight: int, port: int) -> bytes:
    """The fixed part of SRV rdata; the (uncompressed, RFC 2782) target name follows."""
    return _SRV_FIXED.pack(priority, weight, port)


def pack_srv(priority: int, weight: int, port: int, target: str) -> bytes:
    """SRV rdata with its target uncompressed."""
    return pack_srv_fixed(priority, weight, port) + encode_name(target)


def pack_rr(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """One answer record owned by the question name (pointer to offset 12), class IN."""
    return POINTER_TO_QUESTION + _RR_FIXED.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata
