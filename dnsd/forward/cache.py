"""The cache of forwarded answers, shared by every sandbox that uses the same upstream servers.

Pure: the caller gives the clock (`now`, seconds, monotonic) and the scope (the upstream set;
see `forward.route`). What it stores and for how long:

- positive answers for the least TTL of their records, capped by `max_ttl`;
- negative answers (NXDOMAIN, NODATA) per RFC 2308: min(SOA TTL, SOA minimum), capped by
  `max_negative_ttl`; one without an SOA is not cached (RFC 2308 section 5);
- SERVFAIL for at most `servfail_ttl` (5 s, RFC 9520's lower end, and never past the
  negative cap);
- never: truncated answers, TTL 0, other rcodes (REFUSED, FORMERR...), opcodes but QUERY,
  a reply that does not parse.

A served answer is the stored one with the asker's id and question bytes (its case) and every
TTL counted down by the whole seconds it spent here. Entries are bounded by `size` (LRU).
Serve-stale (RFC 8767): an entry expired less than `stale_s` ago stays, and when every upstream
fails it is answered with TTL 30; for the next 30 s it is answered so without asking again.

Only replies the wire layer accepted as answers to the query (`core.wire.is_answer_to`, checked
by the client before anything reaches here) are given to `store`: a spoof cannot get in.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Hashable

from netcore.errors import InvalidArgument

from ..core.wire import (
    CLASS_IN,
    FLAG_CD,
    FLAG_RD,
    FLAG_TC,
    NOERROR,
    NXDOMAIN,
    RCODE_MASK,
    SERVFAIL,
    TYPE_OPT,
    Query,
)

DEFAULT_SIZE = 10_000
DEFAULT_MAX_TTL = 300
DEFAULT_MAX_NEGATIVE_TTL = 60
SERVFAIL_TTL = 5
STALE_TTL = 30  # RFC 8767: the TTL of a stale answer, and how long it is served before a retry
TYPE_SOA = 6

Key = tuple[Hashable, bytes, int, int, int]
_TTL = struct.Struct("!I")
_RR_FIXED = struct.Struct("!HHIH")
_COUNTS = struct.Struct("!HHHH")


class Entry:
    __slots__ = ("body", "body_age", "expires", "key", "reply", "stale_until", "stored", "ttls")

    def __init__(
        self,
        key: Key,
        reply: bytes,
        ttls: tuple[tuple[int, int], ...],
        stored: float,
        lifetime: int,
    ) -> None:
        self.key = key
        self.reply = reply  # as received; the id and question are replaced when served
        self.ttls = ttls  # (offset, TTL capped by the entry's lifetime) of every record
        self.stored = stored
        self.expires = stored + lifetime
        self.stale_until = 0.0  # answered stale without asking until then (RFC 8767 recheck)
        self.body_age = -1  # the whole seconds since `stored` that `body` was rendered for
        self.body = b""  # reply[2:] with the TTLs counted down by `body_age`

    def drop(self) -> None:
        """Out of the cache: a `HitTable` holding it must not answer from it."""
        self.expires = self.stale_until = float("-inf")


def cache_key(scope: Hashable, query: Query) -> Key:
    """What an answer depends on besides the name: the upstream set (`scope`), the question
    (name case-folded, type, class) and the DO, CD and RD bits and whether EDNS was used (an
    OPT record must not go to a client that sent none, RFC 6891 section 7)."""
    bits = (
        (query.flags & (FLAG_CD | FLAG_RD))
        | (0x10000 if query.do_bit else 0)
        | (0x20000 if query.edns_size is not None else 0)
    )
    return (scope, query.qname_lower, query.qtype, query.qclass, bits)


class ForwardCache:
    """LRU of forwarded answers; not thread-safe (the event loop's thread only)."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        *,
        max_ttl: int = DEFAULT_MAX_TTL,
        max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL,
        stale_s: float = 0.0,
    ) -> None:
        for field, value in (("size", size), ("max_ttl", max_ttl), ("stale_s", stale_s)):
            if value < 0:
                raise InvalidArgument(f"must be >= 0, got {value}", field=field)
        if max_negative_ttl < 0:
            raise InvalidArgument(f"must be >= 0, got {max_negative_ttl}", field="max_negative_ttl")
        self.size = size
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.stale_s = stale_s
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self.hits = 0  # plain counters, read by metrics at scrape time
        self.misses = 0
        self.stale_answers = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: Key, query: Query, now: float) -> bytes | None:
        """The fresh cached answer to `query` (its id and question), or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if now >= entry.expires:
            if now < entry.stale_until:  # every upstream failed a moment ago: stay stale
                self.stale_answers += 1
                return _render_stale(entry, query)
            if now >= entry.expires + self.stale_s:
                del self._entries[key]
                entry.drop()
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        age = int(now - entry.stored)  # changes once a second: the TTLs are re-rendered then
        body = entry.body if entry.body_age == age else render(entry, age)
        question = query.question
        reply = entry.reply
        if reply[12 : 12 + len(question)] == question:  # the asker's case: the common case
            return query.id.to_bytes(2, "big") + body
        return query.id.to_bytes(2, "big") + body[:10] + question + body[10 + len(question) :]

    def store(self, key: Key, query: Query, reply: bytes, now: float) -> bytes:
        """Remember `reply` (an answer to `query` that passed `is_answer_to`) when cacheable;
        return what to send: `reply` itself, or a stale answer instead of a SERVFAIL."""
        if not self.size:
            return reply
        rcode = reply[3] & RCODE_MASK
        if rcode == SERVFAIL:
            stale = self._stale(key, query, now)
            if stale is not None:
                return stale
        lifetime_ttls = _lifetime(reply, self.max_ttl, self.max_negative_ttl)
        if lifetime_ttls is None:
            return reply
        lifetime, ttls = lifetime_ttls
        entries = self._entries
        old = entries.get(key)
        if old is not None:
            old.drop()
        entries[key] = Entry(key, reply, ttls, now, lifetime)
        entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)[1].drop()
        return reply

    def retain(self, scopes: set[Hashable] | frozenset[Hashable]) -> int:
        """Drop the entries of upstream sets no sandbox uses any more (a changed resolv.conf,
        a sandbox given other servers); the number dropped."""
        gone = [key for key in self._entries if key[0] not in scopes]
        for key in gone:
            self._entries.pop(key).drop()
        return len(gone)

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.drop()
        self._entries.clear()

    def entry(self, key: Key) -> Entry | None:
        """The entry `lookup` just answered from (for a `HitTable`)."""
        return self._entries.get(key)

    def touch(self, entry: Entry) -> None:
        """A hit through a `HitTable`: counted, and the entry is the most recently used."""
        self.hits += 1
        self._entries.move_to_end(entry.key)

    def _stale(self, key: Key, query: Query, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or not self.stale_s or now >= entry.expires + self.stale_s:
            return None
        if now < entry.expires:  # still fresh (asked concurrently): it is the better answer
            return self.lookup(key, query, now)
        entry.stale_until = now + STALE_TTL
        self.stale_answers += 1
        return _render_stale(entry, query)


def for_asker(reply: bytes, query: Query) -> bytes:
    """`reply`, an answer to the same question in another case or with another id, as the
    answer to `query`: its id, and its question bytes when the reply repeats the question."""
    question = query.question
    end = 12 + len(question)
    ident = query.id.to_bytes(2, "big")
    name_end = 12 + len(query.qname_wire)
    if (
        reply[4:6] == b"\x00\x01"
        and reply[12:name_end].lower() == query.qname_lower
        and reply[name_end:end] == question[-4:]
    ):
        return ident + reply[2:12] + question + reply[end:]
    return ident + reply[2:]


def render(entry: Entry, age: int) -> bytes:
    """reply[2:] with every TTL counted down by `age` seconds (each TTL is at least the
    entry's lifetime and `age` is less, so none reaches 0)."""
    buffer = bytearray(entry.reply)
    for offset, ttl in entry.ttls:
        _TTL.pack_into(buffer, offset, ttl - age)
    entry.body = bytes(buffer[2:])
    entry.body_age = age
    return entry.body


def _render_stale(entry: Entry, query: Query) -> bytes:
    buffer = bytearray(entry.reply)
    for offset, _ in entry.ttls:
        _TTL.pack_into(buffer, offset, STALE_TTL)
    buffer[0:2] = query.id.to_bytes(2, "big")
    buffer[12 : 12 + len(query.question)] = query.question
    return bytes(buffer)


def _lifetime(
    reply: bytes, max_ttl: int, max_negative_ttl: int
) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """(seconds to keep, TTL offsets with TTLs capped at that) or None when not cacheable."""
    if len(reply) < 12 or reply[2] & (FLAG_TC >> 8) or reply[2] & 0x78:  # TC, opcode not QUERY
        return None
    rcode = reply[3] & RCODE_MASK
    if rcode not in (NOERROR, NXDOMAIN, SERVFAIL):
        return None
    try:
        records = _records(reply)
    except (IndexError, struct.error, ValueError):
        return None
    ancount = _COUNTS.unpack_from(reply, 4)[1]
    if rcode == SERVFAIL:
        lifetime = min(SERVFAIL_TTL, max_negative_ttl)
    elif rcode == NOERROR and ancount:
        lifetime = min([ttl for _, rtype, ttl, _ in records if rtype != TYPE_OPT] + [max_ttl])
    else:  # NXDOMAIN or NODATA: the SOA in the authority section says how long (RFC 2308)
        soas = [min(ttl, minimum) for _, rtype, ttl, minimum in records if rtype == TYPE_SOA]
        if not soas:
            return None
        lifetime = min(soas[0], max_negative_ttl)
    if lifetime <= 0:
        return None
    # Each record keeps its own TTL (capped) and counts down from it; a negative answer's
    # records all say how long the negative answer holds (RFC 2308 section 3).
    cap = max_ttl if rcode == NOERROR and ancount else lifetime
    ttls = tuple((offset, min(ttl, cap)) for offset, rtype, ttl, _ in records if rtype != TYPE_OPT)
    return lifetime, ttls


def _records(reply: bytes) -> list[tuple[int, int, int, int]]:
    """(TTL offset, type, TTL, SOA minimum or 0) of every record after the question."""
    qdcount, ancount, nscount, arcount = _COUNTS.unpack_from(reply, 4)
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(reply, pos) + 4
    found = []
    for _ in range(ancount + nscount + arcount):
        pos = _skip_name(reply, pos)
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(reply, pos)
        end = pos + 10 + rdlength
        if end > len(reply):
            raise ValueError("record data runs past the end")
        minimum = 0
        if rtype == TYPE_SOA and rclass == CLASS_IN:
            (minimum,) = _TTL.unpack_from(reply, end - 4)
        found.append((pos + 4, rtype, ttl if rtype != TYPE_OPT else 0, minimum))
        pos = end
    return found


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length >= 0xC0:
            return pos + 2
        if length > 63:
            raise ValueError("invalid label")
        pos += length + 1
        if length == 0:
            return pos
