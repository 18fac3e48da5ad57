"""One DNS exchange with one upstream server: send the client's bytes, take back the answer.

Following dnspython's `asyncquery`: one deadline for the whole exchange (connect, send and
receive), and a UDP datagram is accepted only if it comes from the server's address and port,
carries the query's id and repeats its question (qname case-insensitively, qtype, qclass).
Anything else is ignored and we keep waiting, so a spoofed answer is never relayed. Each
exchange uses a fresh socket (a fresh random source port); the client's id is kept, because the
client checks it and our own check is source + id + question.

The forwarder uses this for TCP (a connection per query anyway); its UDP queries share
connected sockets and get ids of their own (`udp_pool`), under the same checks.

The query arrives parsed (`core.wire.Query`, from the listener's decision) and the reply is
matched against it by `core.wire.is_answer_to`; the rest of the reply is opaque.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import struct
from collections.abc import Callable

from netcore.errors import NetcoreError, Unavailable

from ..core.wire import MAX_MESSAGE, Query, is_answer_to
from .health import UpstreamLike

SockFactory = Callable[[int, int], socket.socket]  # (family, type) -> socket, e.g. in a netns


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


@functools.lru_cache(maxsize=256)
def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def describe(upstream: UpstreamLike, tcp: bool) -> str:
    where = " from the daemon's namespace" if upstream.host_loopback else ""
    host = f"[{upstream.address}]" if ":" in upstream.address else upstream.address
    return f"upstream {host}:{upstream.port}/{'tcp' if tcp else 'udp'}{where}"


async def exchange(
    packet: bytes,
    upstream: UpstreamLike,
    *,
    query: Query,
    tcp: bool,
    deadline: float,
    sock_factory: SockFactory = socket.socket,
) -> bytes:
    """Send `packet` (the client's bytes, unchanged) to `upstream` and return its answer.

    `query` is `core.wire.parse_query(packet)`, as the listener parsed it. `deadline` is
    absolute, on the running loop's clock (`loop.time()`). Raises UpstreamTimeout,
    UpstreamUnreachable or UpstreamBadReply; a cancelled exchange closes its socket.
    """
    name = describe(upstream, tcp)
    try:
        family = family_of(upstream.address)
        sock = sock_factory(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    except (OSError, ValueError, NetcoreError) as exc:  # e.g. the sandbox's netns is gone
        raise UpstreamUnreachable(f"{name}: cannot open a socket: {exc}", upstream) from exc
    try:
        sock.setblocking(False)
        async with asyncio.timeout_at(deadline):
            if tcp:
                return await _exchange_tcp(sock, packet, query, upstream, name)
            return await _exchange_udp(sock, packet, query, upstream)
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
    sock: socket.socket, packet: bytes, query: Query, upstream: UpstreamLike
) -> bytes:
    loop = asyncio.get_running_loop()
    # A connected UDP socket: the kernel drops datagrams from any other address or port
    # (the source check), and ICMP port unreachable surfaces as ConnectionRefusedError.
    sock.connect((upstream.address, upstream.port))
    await loop.sock_sendall(sock, packet)
    while True:
        reply = await loop.sock_recv(sock, MAX_MESSAGE)
        if is_answer_to(reply, query):
            return reply
        # Wrong id or question: a spoof or a late answer to someone else. Keep waiting.


async def _exchange_tcp(
    sock: socket.socket, packet: bytes, query: Query, upstream: UpstreamLike, name: str
) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (upstream.address, upstream.port))
    await loop.sock_sendall(sock, struct.pack("!H", len(packet)) + packet)
    (length,) = struct.unpack("!H", await _recv_exactly(loop, sock, 2, upstream, name))
    reply = await _recv_exactly(loop, sock, length, upstream, name)
    # TCP cannot be spoofed off-path: a mismatch is the server's bug, not noise to wait out.
    if not is_answer_to(reply, query):
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
