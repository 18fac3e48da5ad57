"""The UDP (batched) and TCP adapters on loopback sockets: bytes in, the core's answers out."""

from __future__ import annotations

import asyncio
import socket

import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord

from dnsd.core.answer import Forward
from dnsd.core.view import build_view
from dnsd.serve.tcp import TcpServer
from dnsd.serve.udp import UdpServer
from tests.support import snapshots as build

NET = build.network("a" * 64, "neta", "br-a", "10.1.0.0/24")
WEB = build.sandbox("b" * 64, "web")
CLI = build.sandbox("c" * 64, "cli", netns_path="/y")
SNAP = build.snapshot(
    [NET],
    [CLI, WEB],
    [
        build.endpoint(
            s.id[::-1], NET, s.id, i, host_ifname="v" + s.name, mac=f"02:42:0a:01:00:0{i}"
        )
        for i, s in ((2, WEB), (3, CLI))
    ],
)


class FakeHandler:
    def __init__(self) -> None:
        self.view = build_view(SNAP)
        self.forwarded: list[bytes] = []
        self.hits: dict[bytes, bytes] = {}  # qname_lower -> cached reply (id replaced)

    def hit_table(self, sandbox_id: str, view: object) -> None:
        return None

    def cached(self, decision: Forward, sandbox_id: str, packet: bytes = b"") -> bytes | None:
        reply = self.hits.get(decision.query.qname_lower)
        return None if reply is None else decision.query.id.to_bytes(2, "big") + reply[2:]

    async def forward(self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp: bool):
        self.forwarded.append(packet)
        reply = DNSRecord.parse(packet).reply()
        reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    def forward_soon(self, packet: bytes, decision: Forward, sandbox_id: str, *, tcp, reply_to):
        task = asyncio.ensure_future(self.forward(packet, decision, sandbox_id, tcp=tcp))
        task.add_done_callback(lambda task: reply_to(task.result()))


@pytest.mark.asyncio
async def test_udp_batches_local_answers_and_forwards_the_rest():
    handler = FakeHandler()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server = UdpServer(sock, CLI.id, handler)
    server.start(asyncio.get_running_loop())
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        queries = [DNSRecord.question("web" if i % 2 else "WEB.neta") for i in range(200)]
        queries.append(DNSRecord.question("elsewhere.example", "AAAA"))
        for i, q in enumerate(queries):  # random ids would collide (birthday) and hide replies
            q.header.id = i + 1
        for q in queries:  # a burst: the server reads it in batches
            client.sendto(q.pack(), sock.getsockname())
        replies = {}
        async with asyncio.timeout(5):
            while len(replies) < len(queries):
                data = await loop.sock_recv(client, 4096)
                reply = DNSRecord.parse(data)
                replies[reply.header.id] = reply
        for q in queries[:-1]:
            reply = replies[q.header.id]
            assert [str(rr.rdata) for rr in reply.rr] == ["10.1.0.2"]
            assert reply.q.qname == q.q.qname  # case echoed
        last = replies[queries[-1].header.id]
        assert last.header.rcode == RCODE.NXDOMAIN and len(handler.forwarded) == 1
    finally:
        server.close()
        client.close()


@pytest.mark.asyncio
async def test_udp_answers_forward_cache_hits_in_its_loop_without_forwarding():
    handler = FakeHandler()
    cached = DNSRecord.question("hit.example").reply()
    cached.add_answer(*RR.fromZone("hit.example. 60 A 192.0.2.7"))
    handler.hits[b"\x03hit\x07example\x00"] = cached.pack()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server = UdpServer(sock, CLI.id, handler)
    server.start(asyncio.get_running_loop())
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        names = ["hit.example", "web", "miss.example", "hit.example"]
        for i, name in enumerate(names):
            query = DNSRecord.question(name)
            query.header.id = 100 + i
            client.sendto(query.pack(), sock.getsockname())
        replies = {}
        async with asyncio.timeout(5):
            while len(replies) < len(names):
                reply = DNSRecord.parse(await loop.sock_recv(client, 4096))
                replies[reply.header.id] = reply
        assert [str(rr.rdata) for rr in replies[100].rr] == ["192.0.2.7"]
        assert [str(rr.rdata) for rr in replies[103].rr] == ["192.0.2.7"]
        assert [str(rr.rdata) for rr in replies[101].rr] == ["10.1.0.2"]
        assert replies[102].header.rcode == RCODE.NXDOMAIN
        assert [DNSRecord.parse(p).q.qname for p in handler.forwarded] == ["miss.example."]
    finally:
        server.close()
        client.close()


@pytest.mark.asyncio
async def test_tcp_pipelined_queries_and_framing_errors():
    handler = FakeHandler()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = TcpServer(sock, CLI.id, handler, idle_s=1.0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        queries = [DNSRecord.question("web", "A" if i % 3 else "AAAA") for i in range(500)]
        queries.append(DNSRecord.question("nosuch.example"))
        for i, q in enumerate(queries):
            q.header.id = i + 1
        writer.write(b"".join(len(p).to_bytes(2, "big") + p for p in (q.pack() for q in queries)))
        await writer.drain()
        seen = {}
        async with asyncio.timeout(5):
            while len(seen) < len(queries):
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = DNSRecord.parse(await reader.readexactly(size))
                seen[reply.header.id] = reply
        for q in queries[:-1]:
            want = ["10.1.0.2"] if q.q.qtype == QTYPE.A else []
            assert [str(rr.rdata) for rr in seen[q.header.id].rr] == want
        # idle: the server closes the connection after idle_s
        async with asyncio.timeout(3):
            assert await reader.read() == b""
        writer.close()
        # a zero-length message closes at once
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"\x00\x00")
        async with asyncio.timeout(3):
            assert await reader.read() == b""
        writer.close()
    finally:
        server.close()
