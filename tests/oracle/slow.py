"""The oracle: the same rules as `answer`, written plainly with dnslib, straight from a Snapshot.

Slow on purpose (it scans every endpoint per query) and written without the view's tables, so
the fast path can be checked against it byte for byte. Tests only: production code never
imports it.

Where dnslib's own choices would differ from the fast path's, this module makes dnslib agree:
PTR targets are packed uncompressed (dnslib would point into an earlier PTR target), and error
headers are built from the query's bitmap.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
from collections.abc import Callable

from dnslib import (
    AAAA,
    CNAME,
    EDNS0,
    PTR,
    QTYPE,
    RD,
    RR,
    SRV,
    A,
    DNSError,
    DNSHeader,
    DNSQuestion,
    DNSRecord,
)
from dnslib.label import DNSBuffer, DNSLabel

from dnsd.core.answer import DROP, Decision, Forward, Reply
from dnsd.core.view import ZoneView
from dnsd.core.wire import Query
from netcore.model import Endpoint, Network, Record, Sandbox, Snapshot

_LIMIT_PLAIN, _LIMIT_TCP, _OUR_EDNS = 512, 65535, 1232
_FORMERR, _SERVFAIL, _NOTIMP = 1, 2, 4
_NDOTS = re.compile(r"ndots:[0-9]+")
_HOST_NAMES = ("host.docker.internal", "host.containers.internal")
_MAX_CHAIN = 8


class _UncompressedPTR(PTR):
    def pack(self, buffer: DNSBuffer) -> None:
        buffer.encode_name_nocompress(self.label)


class _UncompressedCNAME(CNAME):
    def pack(self, buffer: DNSBuffer) -> None:
        buffer.encode_name_nocompress(self.label)


class _OwnedRR(RR):
    """A record owned by a CNAME target: its owner name written out, not compressed."""

    def pack(self, buffer: DNSBuffer) -> None:
        buffer.encode_name_nocompress(self.rname)
        buffer.pack("!HHI", self.rtype, self.rclass, self.ttl)
        length_at = buffer.offset
        buffer.pack("!H", 0)
        start = buffer.offset
        self.rdata.pack(buffer)
        buffer.update(length_at, "!H", buffer.offset - start)


def answer_slow(
    packet: bytes,
    sandbox_id: str,
    view_or_snapshot: ZoneView | Snapshot,
    *,
    tcp: bool = False,
    rng: random.Random,
) -> Decision:
    """What `answer.answer` must decide for the same input (and the same rng state)."""
    if isinstance(view_or_snapshot, ZoneView):
        snapshot, host_ndots = view_or_snapshot.snapshot, view_or_snapshot.host_explicit_ndots
    else:
        snapshot, host_ndots = view_or_snapshot, False
    if len(packet) < 12:
        return DROP
    header = DNSHeader.parse(DNSBuffer(packet))
    if header.qr:
        return DROP
    if header.opcode not in (0, 4):  # QUERY, NOTIFY
        return Reply(_error(header, _NOTIMP, None))
    if header.q != 1:
        return Reply(_error(header, _FORMERR, None))
    buffer = DNSBuffer(packet)
    buffer.offset = 12
    try:
        question = DNSQuestion.parse(buffer)
    except DNSError:
        return Reply(_error(header, _FORMERR, None))
    labels = question.qname.label
    name_wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    if packet[12 : 12 + len(name_wire)] != name_wire or len(name_wire) > 255:
        return Reply(_error(header, _FORMERR, None))  # compressed, or not a name
    if any(len(label) > 63 for label in labels):
        return Reply(_error(header, _FORMERR, None))
    if header.a or header.auth:
        return Reply(_error(header, _FORMERR, question))
    try:
        additional = [RR.parse(buffer) for _ in range(header.ar)]
    except DNSError:
        return Reply(_error(header, _FORMERR, question))
    opts = [rr for rr in additional if rr.rtype == QTYPE.OPT]
    if len(opts) > 1 or (opts and opts[0].rname.label != ()):
        return Reply(_error(header, _FORMERR, question))
    question_end = 12 + len(name_wire) + 4
    query = Query(
        id=header.id,
        flags=header.bitmap,
        opcode=header.opcode,
        rd=bool(header.rd),
        qname_wire=name_wire,
        qname_lower=b"".join(bytes([len(label)]) + label.lower() for label in labels) + b"\0",
        qtype=question.qtype,
        qclass=question.qclass,
        edns_size=opts[0].rclass if opts else None,
        do_bit=bool(opts[0].ttl & 0x8000) if opts else False,
        question_end=question_end,
        question=packet[12:question_end],
    )
    return _decide(query, question, sandbox_id, snapshot, host_ndots, tcp, rng)


# rtype -> every (packed rdata, dnslib rdata, TTL of the network it came from) found so far
_Found = dict[int, list[tuple[bytes, RD, int]]]


def _decide(
    query: Query,
    question: DNSQuestion,
    sandbox_id: str,
    snapshot: Snapshot,
    host_ndots: bool,
    tcp: bool,
    rng: random.Random,
) -> Decision:
    sandboxes = {s.id: s for s in snapshot.sandboxes}
    me = sandboxes.get(sandbox_id)
    root = _root(me, sandboxes) if me is not None else None
    if me is None or root is None or {me.mode, root.mode} & {"none", "host"}:
        return Forward(query)
    mine = [
        net
        for net in snapshot.networks
        if any(e.sandbox_id == root.id and e.network_id == net.id for e in snapshot.endpoints)
    ]
    if not mine:
        return Forward(query)
    asked = tuple(label.lower() for label in question.qname.label)
    roots = {s.id: _root(s, sandboxes) for s in snapshot.sandboxes}

    def lookup(name: tuple[bytes, ...]) -> _Found:
        return _lookup(name, mine, snapshot, sandboxes, roots)

    found = lookup(asked)
    if QTYPE.CNAME in found and query.qtype != QTYPE.CNAME:
        return Reply(_chain(query, question, found, lookup, tcp, rng))
    if query.qtype in found:
        return Reply(_records(query, question, found[query.qtype], tcp, rng))
    if found:
        return Reply(_empty(query, question, 0))
    options = root.dns_options
    ndots = host_ndots if options is None else any(_NDOTS.fullmatch(o) for o in options)
    if ndots and query.qtype in (QTYPE.A, QTYPE.AAAA) and len(asked) == 1:
        return Reply(_empty(query, question, 0))
    if all(net.internal for net in mine):
        return Reply(_empty(query, question, _SERVFAIL))
    return Forward(query)


def _lookup(
    asked: tuple[bytes, ...],
    mine: list[Network],
    snapshot: Snapshot,
    sandboxes: dict[str, Sandbox],
    roots: dict[str, Sandbox | None],
) -> _Found:
    """Every record of `asked` on the asker's networks, a CNAME beside other data dropped."""
    found: _Found = {}
    for net in mine:
        for ep in snapshot.endpoints:
            owner = sandboxes.get(ep.sandbox_id)
            if ep.network_id != net.id or owner is None:
                continue
            joined = [s for s in snapshot.sandboxes if s is not owner and roots[s.id] is owner]
            _collect(found, asked, owner, ep, net, ep.aliases)
            for member in joined:
                _collect(found, asked, member, ep, net, ())
            target = _target(owner, net)
            for address in (ep.ipv4, ep.ipv6):
                if target and address is not None and _labels(address.reverse_pointer) == asked:
                    _found(found, QTYPE.PTR, _UncompressedPTR(target), net.dns_ttl)
        if any(e.network_id == net.id for e in snapshot.endpoints):
            records = [r for r in snapshot.records if r.network_id == net.id]
            _collect_records(found, asked, net, records)
    cnames = found.get(QTYPE.CNAME)
    if cnames and len(found) > 1:
        del found[QTYPE.CNAME]
    elif cnames:  # one CNAME per name: the smallest target, with the RRset's TTL
        ttl = min(entry[2] for entry in cnames)
        found[QTYPE.CNAME] = [(*min(cnames, key=lambda entry: entry[0])[:2], ttl)]
    return found


def _collect_records(
    found: _Found, asked: tuple[bytes, ...], net: Network, records: list[Record]
) -> None:
    """A network's records (read by dnslib's zone parser) and its host names."""
    taken = set()
    for record in records:
        parsed = RR.fromZone(f"x 0 IN {record.type} {record.value}")[0]
        rdata = parsed.rdata
        if parsed.rtype == QTYPE.CNAME:
            rdata = _UncompressedCNAME(rdata.label)
        ttl = net.dns_ttl if record.ttl is None else record.ttl
        names = (_strip_dot(record.name), f"{_strip_dot(record.name)}.{net.name}")
        taken |= {_labels(name) for name in names}
        if asked in {_labels(name) for name in names}:
            _found(found, parsed.rtype, rdata, ttl)
        if parsed.rtype in (QTYPE.A, QTYPE.AAAA):
            address = ipaddress.ip_address(record.value)
            subnets = [net.ipv4.subnet, *([net.ipv6.subnet] if net.ipv6 else [])]
            inside = any(address in subnet for subnet in subnets)
            if inside and _labels(names[1]) and _labels(address.reverse_pointer) == asked:
                ptr = _UncompressedPTR(DNSLabel([p.encode() for p in names[1].split(".")]))
                _found(found, QTYPE.PTR, ptr, ttl)
    off = dict(net.options).get("dnsd.host_names", "").lower() in ("false", "0", "no", "off")
    if off or asked not in {_labels(name) for name in _HOST_NAMES} or asked in taken:
        return
    _found(found, QTYPE.A, A(str(net.ipv4.gateway)), net.dns_ttl)
    if net.ipv6 is not None:
        _found(found, QTYPE.AAAA, AAAA(str(net.ipv6.gateway)), net.dns_ttl)


def _chain(
    query: Query,
    question: DNSQuestion,
    found: _Found,
    lookup: Callable[[tuple[bytes, ...]], _Found],
    tcp: bool,
    rng: random.Random,
) -> bytes:
    """RFC 1034 4.3.2: the CNAME, the CNAMEs it leads to, then the target's records."""
    _, rdata, ttl = found[QTYPE.CNAME][0]
    head = [RR(question.qname, QTYPE.CNAME, 1, ttl, rdata)]
    seen = {tuple(label.lower() for label in question.qname.label)}
    target = rdata.label
    entries: list[tuple[bytes, RD, int]] = []
    while len(head) <= _MAX_CHAIN:
        name = tuple(label.lower() for label in target.label)
        if name in seen:
            break
        seen.add(name)
        there = lookup(name)
        if QTYPE.CNAME in there:
            _, rdata, ttl = there[QTYPE.CNAME][0]
            head.append(_OwnedRR(target, QTYPE.CNAME, 1, ttl, rdata))
            target = rdata.label
            continue
        entries = there.get(query.qtype, [])
        break
    return _records(query, question, entries, tcp, rng, head=head, owner=target)


def _root(sandbox: Sandbox, sandboxes: dict[str, Sandbox]) -> Sandbox | None:
    seen = set()
    current: Sandbox | None = sandbox
    while current is not None and current.mode == "container":
        seen.add(current.id)
        current = sandboxes.get(current.joined_to or "")
        if current is not None and current.id in seen:
            return None
    return current


def _strip_dot(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


@functools.lru_cache(maxsize=65536)  # pure, and the oracle asks the same names again and again
def _labels(name: str) -> tuple[bytes, ...] | None:
    """Lower-cased labels of a valid ASCII DNS name, else None (such names are never served)."""
    name = _strip_dot(name)
    if not name or not name.isascii():
        return None
    labels = tuple(part.encode().lower() for part in name.split("."))
    if any(not 0 < len(label) < 64 for label in labels) or sum(len(x) + 1 for x in labels) > 254:
        return None
    return labels


def _target(member: Sandbox, net: Network) -> DNSLabel | None:
    """`<name>.<network>.` in its original case, or None when that is not a valid name."""
    full = f"{member.name}.{net.name}"
    if _labels(full) is None:
        return None
    return DNSLabel([part.encode() for part in _strip_dot(full).split(".")])


def _collect(
    found: _Found,
    asked: tuple[bytes, ...],
    member: Sandbox,
    ep: Endpoint,
    net: Network,
    aliases: tuple[str, ...],
) -> None:
    target = _target(member, net)
    for name in (member.name, member.hostname, *aliases, member.id[:12]):
        name = _strip_dot(name)
        if not name:
            continue
        for full in (name, f"{name}.{net.name}"):
            if _labels(full) == asked:
                _found(found, QTYPE.A, A(str(ep.ipv4)), net.dns_ttl)
                if ep.ipv6 is not None:
                    _found(found, QTYPE.AAAA, AAAA(str(ep.ipv6)), net.dns_ttl)
            for port in member.ports:
                srv_name = f"_{port.container_port}._{port.proto}.{full}"
                if target is not None and _labels(srv_name) == asked:
                    srv = SRV(0, 0, port.container_port, target)
                    _found(found, QTYPE.SRV, srv, net.dns_ttl)


def _found(found: _Found, rtype: int, rdata: RD, ttl: int) -> None:
    buffer = DNSBuffer()
    rdata.pack(buffer)
    found.setdefault(rtype, []).append((bytes(buffer.data), rdata, ttl))


def _reply_header(query: Query, rcode: int) -> DNSHeader:
    header = DNSHeader(id=query.id, bitmap=0)
    header.qr, header.ra, header.rcode = 1, 1, rcode
    header.opcode = query.opcode
    if query.opcode == 0:  # like miekg/dns SetReply: RD and CD only for QUERY
        header.rd = query.flags >> 8 & 1
        header.cd = query.flags >> 4 & 1
    return header


def _with_opt(record: DNSRecord, query: Query) -> DNSRecord:
    if query.edns_size is not None:
        record.add_ar(EDNS0(udp_len=_OUR_EDNS, flags="do" if query.do_bit else ""))
    return record


def _empty(query: Query, question: DNSQuestion, rcode: int) -> bytes:
    return _with_opt(DNSRecord(_reply_header(query, rcode), [question]), query).pack()


def _records(
    query: Query,
    question: DNSQuestion,
    entries: list[tuple[bytes, RD, int]],
    tcp: bool,
    rng: random.Random,
    head: list[RR] | None = None,
    owner: DNSLabel | None = None,
) -> bytes:
    rrs: list[RR] = list(head or [])
    if entries:
        ttl = max(0, min(min(entry[2] for entry in entries), 2**31 - 1))
        unique = {packed: rdata for packed, rdata, _ in entries}
        rdatas = [unique[packed] for packed in sorted(unique)]
        if len(rdatas) > 1:
            rng.shuffle(rdatas)
        if owner is None:
            rrs += [RR(question.qname, query.qtype, 1, ttl, rdata) for rdata in rdatas]
        else:
            rrs += [_OwnedRR(owner, query.qtype, 1, ttl, rdata) for rdata in rdatas]
    record = _with_opt(DNSRecord(_reply_header(query, 0), [question], rrs), query)
    if tcp:
        limit = _LIMIT_TCP
    elif query.edns_size is None:
        limit = _LIMIT_PLAIN
    else:
        limit = max(_LIMIT_PLAIN, query.edns_size)
    data = record.pack()
    while len(data) > limit:
        record.rr.pop()
        record.header.tc = 1
        data = record.pack()
    return data


def _error(header: DNSHeader, rcode: int, question: DNSQuestion | None) -> bytes:
    reply = DNSHeader(id=header.id, bitmap=header.bitmap)
    reply.qr, reply.z, reply.rcode = 1, 0, rcode
    return DNSRecord(reply, [question] if question is not None else []).pack()
