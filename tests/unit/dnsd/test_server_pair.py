"""`ServerPair`: the UDP and TCP servers of one address, shared by the sandbox and host
listeners (loopback sockets only)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dnsd.core import wire
from dnsd.core.view import build_view
from dnsd.serve.pair import ServerPair
from netcore.model import Snapshot
from tests.support.dns import query, rcode


class _Refuser:
    """A handler with an empty view: every query is handed to `forward`, which refuses."""

    view = build_view(Snapshot())

    def cached(self, decision, sandbox_id, packet=b""):
        return None

    def hit_table(self, sandbox_id, view):
        return None

    async def forward(self, packet, decision, sandbox_id, *, tcp):
        return wire.empty_reply(decision.query, wire.REFUSED)

    def forward_soon(self, packet, decision, sandbox_id, *, tcp, reply_to):
        reply_to(wire.empty_reply(decision.query, wire.REFUSED))


def _pair_sockets() -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    return udp, tcp


def test_a_pair_that_never_served_closes_both_sockets():
    udp, tcp = _pair_sockets()
    ServerPair(udp, tcp, "x", _Refuser()).close()
    assert udp.fileno() == -1 and tcp.fileno() == -1


@pytest.mark.asyncio
async def test_serves_udp_and_tcp_then_closes():
    udp, tcp = _pair_sockets()
    udp_addr, tcp_addr = udp.getsockname(), tcp.getsockname()
    pair = ServerPair(udp, tcp, "x", _Refuser())
    await pair.serve()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setblocking(False)
        await loop.sock_sendto(client, query("a.test"), udp_addr)
        reply = await asyncio.wait_for(loop.sock_recv(client, 512), 5)
    assert rcode(reply) == "REFUSED"
    reader, writer = await asyncio.open_connection(*tcp_addr)
    packet = query("b.test")
    writer.write(len(packet).to_bytes(2, "big") + packet)
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
    assert rcode(await reader.readexactly(size)) == "REFUSED"
    writer.close()
    pair.close()
    await asyncio.sleep(0)
    assert udp.fileno() == -1 and tcp.fileno() == -1
