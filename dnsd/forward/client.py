"""One DNS exchange with one upstream server: send the client's bytes, take back the answer.

Following dnspython's `asyncquery`: one deadline for the whole exchange (connect, send and
receive), and a UDP datagram is accepted only if it comes from the server's address and port,
carries the query's id and repeats its question (qname case-insensitively, qtype, qclass).
Anything else is ignored and we keep waiting, so a spoofed answer is never relayed. Each
exchange uses a fresh socket (a fresh random source port); the client's id is kept, because the
client checks it and our own check is source + id + question.

No dnslib here: the header and question are parsed by hand, the rest of the reply is opaque.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from netcore.errors import NetcoreError, Unavailable

from .health import UpstreamLike

SockFactory = Callable[[int, int], socket.socket]  # (family, type) -> socket, e.g. in a netns

MAX_MESSAGE = 65535  # largest DNS message over UDP or TCP
_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_QR = 0x8000
_OPCODE_MASK = 0x7800
# Question-less replies a server may send when it could not parse what we sent (dnspython's
# `is_response` accepts these too): FORMERR, SERVFAIL, NOTIMP, REFUSED.
_QUESTIONLESS_RCODES = frozenset({1, 2, 4, 5})


class UpstreamError(Unavailable):
    """An upstream server gave no usable answer; the forwarder tries the next one."""

    def __init__(self, message: str, upstream: UpstreamLike) -> None:
        super().__init__(message)
        self.upstream = upstream


class UpstreamTimeout(UpstreamError):
    """No acceptable answer before the deadline."""


class UpstreamUnreachable(UpstreamError):
    """ICMP port/host unreachable, connection refused or reset, or no route."""


class UpstreamBadReply(UpstreamError):
    """The server answered, but with something that is not an answer to our query."""


@dataclass(frozen=True, slots=True)
class Question:
    """What identifies a query on the wire: header id and flags, and its one question."""

    id: int
    flags: int  # the 16-bit flags word of the header
    qname_key: bytes  # the qname in wire format, ASCII lower-cased: the comparison key
    qtype: int
    qclass: int
    end: int  # offset just past the question section

    @property
    def opcode(self) -> int:
        return (self.flags & _OPCODE_MASK) >> 11


def parse_question(message: bytes) -> Question | None:
    """The id, flags and single question of a DNS message; None if it has not exactly one
    well-formed question (no compression pointers: nothing precedes the question to point at)."""
    if len(message) < _HEADER.size:
        return None
    msg_id, flags, qdcount, _, _, _ = _HEADER.unpack_from(message)
    if qdcount != 1:
        return None
    end = _skip_qname(message, _HEADER.size)
    if end is None or end + _QTAIL.size > len(message):
        return None
    qtype, qclass = _QTAIL.unpack_from(message, end)
    # bytes.lower() only touches A-Z; label length octets are <= 63, so they are never changed.
    qname_key = message[_HEADER.size : end].lower()
    return Question(msg_id, flags, qname_key, qtype, qclass, end + _QTAIL.size)


def _skip_qname(message: bytes, offset: int) -> int | None:
    """Offset just past an uncompressed wire-format name starting at `offset`, or None."""
    start = offset
    while offset < len(message):
        length = message[offset]
        if length == 0:
            return offset + 1 if offset + 1 - start <= 255 else None
        if length > 63:  # a compression pointer or a reserved label type
            return None
        offset += 1 + length
    return None


def is_answer_to(reply: bytes, question: Question) -> bool:
    """True when `reply` is a response to the query `question` was parsed from: QR set, same
    id and opcode, and the same question (or none at all with an error rcode)."""
    if len(reply) < _HEADER.size:
        return False
    msg_id, flags, qdcount, _, _, _ = _HEADER.unpack_from(reply)
    if msg_id != question.id or not flags & _QR:
        return False
    if flags & _OPCODE_MASK != question.flags & _OPCODE_MASK:
        return False
    if qdcount == 0:
        return flags & 0x000F in _QUESTIONLESS_RCODES
    theirs = parse_question(reply)
    return theirs is not None and (theirs.qname_key, theirs.qtype, theirs.qclass) == (
        question.qname_key,
        question.qtype,
        question.qclass,
    )


@functools.lru_cache(maxsize=256)
def _family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _describe(upstream: UpstreamLike, tcp: bool) -> str:
    where = " from the daemon's namespace" if upstream.host_loopback else ""
    host = f"[{upstream.address}]" if ":" in upstream.address else upstream.address
    return f"upstream {host}:{upstream.port}/{'tcp' if tcp else 'udp'}{where}"


async def exchange(
    query: bytes,
    upstream: UpstreamLike,
    *,
    tcp: bool,
    deadline: float,
    sock_factory: SockFactory = socket.socket,
    question: Question | None = None,
) -> bytes:
    """Send `query` (the client's bytes, unchanged) to `upstream` and return its answer.

    `deadline` is absolute, on the running loop's clock (`loop.time()`). `question` is
    `parse_question(query)`, passed in to save parsing it again. Raises UpstreamTimeout,
    UpstreamUnreachable or UpstreamBadReply; a cancelled exchange closes its socket.
    """
    if question is None:
        question = parse_question(query)
        if question is None:
            raise ValueError("exchange: the query has no single well-formed question")
    name = _describe(upstream, tcp)
    try:
        family = _family_of(upstream.address)
        sock = sock_factory(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    except (OSError, ValueError, NetcoreError) as exc:  # e.g. the sandbox's netns is gone
        raise UpstreamUnreachable(f"{name}: cannot open a socket: {exc}", upstream) from exc
    try:
        sock.setblocking(False)
        async with asyncio.timeout_at(deadline):
            if tcp:
                return await _exchange_tcp(sock, query, question, upstream, name)
            return await _exchange_udp(sock, query, question, upstream)
    except TimeoutError as exc:
        raise UpstreamTimeout(
            f"{name} did not answer in time; check that it is reachable from the sandbox",
            upstream,
        ) from exc
    except OSError as exc:
        # ConnectionRefusedError on UDP is ICMP port unreachable, on TCP a RST.
        raise UpstreamUnreachable(f"{name} is unreachable: {exc}", upstream) from exc
    finally:
        sock.close()


async def _exchange_udp(
    sock: socket.socket, query: bytes, question: Question, upstream: UpstreamLike
) -> bytes:
    loop = asyncio.get_running_loop()
    # A connected UDP socket: the kernel drops datagrams from any other address or port
    # (the source check), and ICMP port unreachable surfaces as ConnectionRefusedError.
    sock.connect((upstream.address, upstream.port))
    await loop.sock_sendall(sock, query)
    while True:
        reply = await loop.sock_recv(sock, MAX_MESSAGE)
        if is_answer_to(reply, question):
            return reply
        # Wrong id or question: a spoof or a late answer to someone else. Keep waiting.


async def _exchange_tcp(
    sock: socket.socket, query: bytes, question: Question, upstream: UpstreamLike, name: str
) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (upstream.address, upstream.port))
    await loop.sock_sendall(sock, struct.pack("!H", len(query)) + query)
    (length,) = struct.unpack("!H", await _recv_exactly(loop, sock, 2, upstream, name))
    reply = await _recv_exactly(loop, sock, length, upstream, name)
    # TCP cannot be spoofed off-path: a mismatch is the server's bug, not noise to wait out.
    if not is_answer_to(reply, question):
        raise UpstreamBadReply(f"{name} answered a different query (id or question)", upstream)
    return reply


async def _recv_exactly(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    count: int,
    upstream: UpstreamLike,
    name: str,
) -> bytes:
    buffer = bytearray()
    while len(buffer) < count:
        chunk = await loop.sock_recv(sock, count - len(buffer))
        if not chunk:
            raise UpstreamBadReply(f"{name} closed the connection before answering", upstream)
        buffer += chunk
    return bytes(buffer)
