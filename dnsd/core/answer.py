"""The decision for one packet: a local reply, forward it upstream, or stay silent.

Pure and fast: no sockets, no clock, no asyncio. A local answer is the header, the query's own
question bytes and pre-packed records from the view: no parsing beyond the question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import wire
from .view import RecordSet, SandboxZone, ZoneView
from .wire import MalformedQuery, Query
from .zone_records import Chain

_SINGLE_LABEL_EMPTY_TYPES = (wire.TYPE_A, wire.TYPE_AAAA)  # Docker rule 10 (rows U03-U05)


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `data` back to the client."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Forward:
    """Not ours: forward the original packet upstream and relay the answer."""

    query: Query


@dataclass(frozen=True, slots=True)
class Drop:
    """Send nothing (too short to answer, or a response)."""


Decision = Reply | Forward | Drop
DROP = Drop()


def answer(
    packet: bytes, sandbox_id: str, view: ZoneView, *, tcp: bool = False, rng: random.Random
) -> Decision:
    """Decide what the DNS server of sandbox `sandbox_id` does with `packet`.

    Never raises for any input: a malformed packet gets FORMERR/NOTIMP when its header parsed,
    silence otherwise. `rng` shuffles the order of several records (Docker: Fisher-Yates per
    answer); pass a seeded one to make answers reproducible.
    """
    try:
        query = wire.parse_query(packet)
    except MalformedQuery as exc:
        if exc.rcode is None:
            return DROP
        return Reply(wire.error_reply(packet, exc.rcode, exc.question_end))
    zone = view.zones.get(sandbox_id)
    if zone is None:  # mode none/host, no networks, or unknown to this revision
        return Forward(query)
    node = zone.names.get(query.qname_lower)
    if node is None:
        return _not_ours(query, zone)
    records = node.get(query.qtype)
    if records is None:
        # The name is ours but has no record of this type: NODATA, never forwarded, or the
        # client might get an upstream NXDOMAIN for a name whose A exists (Docker T10-T17).
        return Reply(wire.empty_reply(query))
    if records.__class__ is Chain:  # a CNAME (RFC 1034 4.3.2): the chain, then the target's
        return Reply(_records_reply(query, records.records, tcp, rng, records.head))
    return Reply(_records_reply(query, records, tcp, rng))


def _not_ours(query: Query, zone: SandboxZone) -> Decision:
    """A name (or address) the sandbox's networks do not own, including other networks' names."""
    if zone.explicit_ndots and query.qtype in _SINGLE_LABEL_EMPTY_TYPES and query.is_single_label:
        return Reply(wire.empty_reply(query))
    if zone.internal_only:
        # An internal network must not reach the outside, not even through our forwarder
        # (CVE-2024-29018): fail fast instead of leaking the query via the host.
        return Reply(wire.empty_reply(query, wire.SERVFAIL))
    return Forward(query)


def _records_reply(
    query: Query, records: RecordSet, tcp: bool, rng: random.Random, head: RecordSet = ()
) -> bytes:
    flags = query.flags
    if flags & wire.FLAG_OPCODE:  # NOTIFY: RD and CD are not copied (miekg/dns, row M07)
        flags = wire.FLAG_QR | wire.FLAG_RA | (flags & wire.FLAG_OPCODE)
    else:
        flags = wire.FLAG_QR | wire.FLAG_RA | (flags & _COPIED_FLAGS)
    if len(records) == 1:
        body = records[0]
    else:
        shuffled = list(records)
        rng.shuffle(shuffled)  # every reader starts at a different member (rows L07, B01)
        records = tuple(shuffled)
        body = b"".join(records)
    if head:  # the CNAME chain comes first, in order
        records = head + records
        body = b"".join(records)
    edns_size = query.edns_size
    if edns_size is None:
        opt = b""
        limit = wire.PLAIN_UDP_LIMIT
    else:
        opt = wire.OPT_DO if query.do_bit else wire.OPT_PLAIN
        limit = edns_size if edns_size > wire.PLAIN_UDP_LIMIT else wire.PLAIN_UDP_LIMIT
    if tcp:
        limit = wire.TCP_LIMIT
    question = query.question
    count = len(records)
    if 12 + len(question) + len(opt) + len(body) > limit:
        # Keep the longest prefix that fits and set TC: the client retries over TCP for all.
        size = 12 + len(question) + len(opt)
        count = 0
        for record in records:
            size += len(record)
            if size > limit:
                break
            count += 1
        body = b"".join(records[:count])
        flags |= wire.FLAG_TC
    return _pack_header(query.id, flags, 1, count, 0, 1 if opt else 0) + question + body + opt


_COPIED_FLAGS = wire.FLAG_RD | wire.FLAG_CD
_pack_header = wire.HEADER.pack
