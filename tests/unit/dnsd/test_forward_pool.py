"""Shared upstream sockets (issue 13): queries in flight share a few connected sockets per
server, each query under a random id of its own, and sockets are retired after a while."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from dnslib import DNSRecord

from dnsd.core.wire import parse_query
from dnsd.forward import Forwarder, UpstreamHealth, udp_pool
from dnsd.forward.deadlines import Deadlines
from tests.fakes.upstream import FakeUpstream, slow


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    made = Forwarder(UpstreamHealth(), deadline_s=1.0)
    yield made
    made.close()


def question(name: str, ident: int) -> bytes:
    record = DNSRecord.question(name)
    record.header.id = ident
    return record.pack()


async def ask(forwarder: Forwarder, up: FakeUpstream, packet: bytes, sandbox: str = "sb1") -> bytes:
    return await forwarder.forward(
        packet, parse_query(packet), [up.upstream], tcp=False, sandbox_key=sandbox,
        sock_factory_for=lambda _up: socket.socket,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_queries_share_a_few_sockets_under_random_ids(forwarder: Forwarder) -> None:
    async with FakeUpstream(behaviour=slow(0.05)) as up:
        packets = [question(f"n{i}.anchors.test", 0x1234) for i in range(40)]  # one client id
        replies = await asyncio.gather(*(ask(forwarder, up, p) for p in packets))
    for packet, raw in zip(packets, replies, strict=True):
        reply = DNSRecord.parse(raw)
        assert reply.header.id == 0x1234  # the client's id, back
        assert str(reply.q.qname) == str(DNSRecord.parse(packet).q.qname)  # its own answer
    assert len({q.source for q in up.queries}) == udp_pool.SOCKETS_PER_UPSTREAM
    sent_ids = [int.from_bytes(q.data[:2], "big") for q in up.queries]
    assert len(set(sent_ids)) > 30 and 0x1234 not in sent_ids[:3]
    assert forwarder.pools.open_sockets() == udp_pool.SOCKETS_PER_UPSTREAM


def _broken_then_fresh(opened: list[socket.socket], broken: int):
    """A socket factory whose first `broken` sockets cannot send (shut down for writing)."""

    def factory(family: int, kind: int) -> socket.socket:
        sock = socket.socket(family, kind)
        if len(opened) < broken:
            sock.connect(("127.0.0.1", 9))
            sock.shutdown(socket.SHUT_WR)  # stays so when the pool connects it to the server
        opened.append(sock)
        return sock

    return factory


@pytest.mark.asyncio
async def test_queries_sent_together_and_resent_once_on_a_fresh_socket(
    forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp_pool, "SOCKETS_PER_UPSTREAM", 1)
    opened: list[socket.socket] = []

    async def ask_broken(up: FakeUpstream, packet: bytes) -> bytes:
        return await forwarder.forward(
            packet, parse_query(packet), [up.upstream], tcp=False, sandbox_key="sb1",
            sock_factory_for=lambda _up: _broken_then_fresh(opened, 1),
        )  # fmt: skip

    async with FakeUpstream() as up:
        packets = [question("ext.anchors.test", i) for i in range(5)]
        replies = await asyncio.gather(*(ask_broken(up, p) for p in packets))
    assert [DNSRecord.parse(r).header.rcode for r in replies] == [0] * 5
    assert [DNSRecord.parse(r).header.id for r in replies] == list(range(5))
    assert len(opened) == 2 and opened[0].fileno() == -1  # the broken one is closed
    assert len({q.source for q in up.queries}) == 1 and len(up.queries) == 5


@pytest.mark.asyncio
async def test_queries_fail_over_when_no_socket_can_send(forwarder: Forwarder) -> None:
    opened: list[socket.socket] = []
    packet = question("ext.anchors.test", 7)
    async with FakeUpstream() as dead, FakeUpstream() as up:
        reply = await forwarder.forward(
            packet, parse_query(packet), [dead.upstream, up.upstream], tcp=False,
            sandbox_key="sb1", sock_factory_for=lambda _up: _broken_then_fresh(opened, 2),
        )  # fmt: skip
    assert DNSRecord.parse(reply).header.rcode == 0 and not dead.queries and up.queries
    assert forwarder.health.is_penalised(dead.upstream, asyncio.get_running_loop().time())


@pytest.mark.asyncio
async def test_a_socket_is_retired_after_its_queries(
    forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp_pool, "SOCKETS_PER_UPSTREAM", 1)
    monkeypatch.setattr(udp_pool, "QUERIES_PER_SOCKET", 3)
    async with FakeUpstream() as up:
        for i in range(7):
            await ask(forwarder, up, question("ext.anchors.test", i))
    ports = [q.source[1] for q in up.queries]
    assert len(set(ports[:3])) == 1 and len(set(ports[3:6])) == 1 and len(set(ports)) == 3
    assert forwarder.pools.open_sockets() == 1  # the retired ones are closed


@pytest.mark.asyncio
async def test_a_socket_is_retired_after_its_lifetime(
    forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp_pool, "SOCKETS_PER_UPSTREAM", 1)
    monkeypatch.setattr(udp_pool, "SOCKET_LIFETIME_S", 0.1)
    async with FakeUpstream() as up:
        await ask(forwarder, up, question("ext.anchors.test", 1))
        await ask(forwarder, up, question("ext.anchors.test", 2))
        await asyncio.sleep(0.15)
        await ask(forwarder, up, question("ext.anchors.test", 3))
        await asyncio.sleep(0.25)  # the sweeper closes idle sockets past their lifetime
        assert forwarder.pools.open_sockets() == 0
    ports = [q.source[1] for q in up.queries]
    assert ports[0] == ports[1] != ports[2]


@pytest.mark.asyncio
async def test_sandboxes_do_not_share_sockets(forwarder: Forwarder) -> None:
    async with FakeUpstream() as up:
        await ask(forwarder, up, question("ext.anchors.test", 1), sandbox="sb1")
        await ask(forwarder, up, question("ext.anchors.test", 2), sandbox="sb2")
        forwarder.forget("sb1")
        assert forwarder.pools.open_sockets() == 1
    assert up.queries[0].source != up.queries[1].source


@pytest.mark.asyncio
async def test_deadlines_fire_in_order_and_skip_cancelled() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[str] = []
    now = loop.time()
    deadlines.at(now + 0.06, lambda _t: fired.append("late"))
    skipped = deadlines.at(now + 0.02, lambda _t: fired.append("cancelled"))
    deadlines.at(now + 0.01, lambda t: fired.append("early") if t >= now + 0.01 else None)
    deadlines.cancel(skipped)
    await asyncio.sleep(0.1)
    assert fired == ["early", "late"]
    assert len(deadlines) == 0


@pytest.mark.asyncio
async def test_deadlines_in_order_and_out_of_order_fire_by_time() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    fired: list[int] = []
    now = loop.time()
    # 10..50 ms in order (the FIFO), then earlier ones between them (the heap), some cancelled
    delays = [10, 20, 30, 40, 50, 5, 25, 15, 45]
    entries = {d: deadlines.at(now + d / 1000, lambda _t, d=d: fired.append(d)) for d in delays}
    for cancelled in (20, 15):
        deadlines.cancel(entries[cancelled])
    assert len(deadlines) == len(delays) - 2
    await asyncio.sleep(0.07)
    assert fired == [5, 10, 25, 30, 40, 45, 50]
    assert len(deadlines) == 0
