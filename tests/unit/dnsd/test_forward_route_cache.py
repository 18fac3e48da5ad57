"""The forward route in front of the cache: shared by sandboxes with the same upstreams,
flushed when an upstream set is no longer used, the `dnsd.dns_cache=false` opt-out, a
sandbox's own loopback resolver kept private, and big answers not replayed over UDP."""

from __future__ import annotations

import asyncio
import socket

import pytest
from dnslib import EDNS0, QTYPE, RR, TXT, A, DNSRecord

from dnsd.core.answer import Forward
from dnsd.core.wire import parse_query
from dnsd.forward.cache import ForwardCache
from dnsd.forward.route import ForwardRoute, cache_opt_outs
from dnsd.sandbox_files.resolvconf import Upstream
from netcore.errors import InvalidArgument
from netcore.requests import OPT_DNS_CACHE, NetworkRequest
from tests.support import snapshots as build

HOST = (Upstream("198.51.100.53"),)
A_ID, B_ID, C_ID = "a" * 64, "b" * 64, "c" * 64


class Forwarder:
    """Answers every query with one A record (TTL 60), or a big TXT; counts the queries."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[Upstream, ...]]] = []
        self.big = False

    async def forward(self, packet: bytes, query, upstreams, **_: object) -> bytes:
        request = DNSRecord.parse(packet)
        self.asked.append((str(request.q.qname), tuple(upstreams)))
        reply = request.reply()
        if self.big:
            for i in range(4):
                reply.add_answer(
                    RR(request.q.qname, QTYPE.TXT, rdata=TXT("x" * 200 + str(i)), ttl=60)
                )
        else:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
        return reply.pack()

    def start(self, packet: bytes, query, upstreams, *, done, **kw: object) -> None:
        task = asyncio.ensure_future(self.forward(packet, query, upstreams, **kw))
        task.add_done_callback(lambda task: done(task.result()))


class Pool:
    def for_upstream(self, upstream: object) -> object:
        return socket.socket


class Listener:
    pool = Pool()


class Listeners:
    def get(self, sandbox_id: str) -> Listener:
        return Listener()


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_route(**sandbox_dns: tuple[str, ...]) -> tuple[ForwardRoute, Forwarder, Clock]:
    forwarder, clock = Forwarder(), Clock()
    route = ForwardRoute(forwarder, Listeners(), HOST, ForwardCache(100), clock)  # type: ignore[arg-type]
    sandboxes = {
        sid: build.sandbox(sid, name, dns=sandbox_dns.get(name, ()))
        for sid, name in ((A_ID, "a"), (B_ID, "b"), (C_ID, "c"))
    }
    route.update(sandboxes, HOST)
    return route, forwarder, clock


async def ask(route: ForwardRoute, sandbox_id: str, name: str = "ext.example") -> bytes:
    packet = DNSRecord.question(name).pack()
    decision = Forward(parse_query(packet))
    hit = route.cached(decision, sandbox_id)
    if hit is not None:
        return hit
    return await route.forward(packet, decision, sandbox_id, tcp=False)


@pytest.mark.asyncio
async def test_sandboxes_with_the_same_upstreams_share_answers() -> None:
    route, forwarder, _ = make_route(c=("192.0.2.9",))
    for _ in range(50):
        await ask(route, A_ID)
        await ask(route, B_ID)
    assert len(forwarder.asked) == 1
    await ask(route, C_ID)  # other upstreams: asked on its own
    assert [ups for _, ups in forwarder.asked] == [HOST, (Upstream("192.0.2.9"),)]


@pytest.mark.asyncio
async def test_expiry_asks_again() -> None:
    route, forwarder, clock = make_route()
    await ask(route, A_ID)
    clock.now += 59.5
    await ask(route, A_ID)
    assert len(forwarder.asked) == 1
    clock.now += 1
    await ask(route, A_ID)
    assert len(forwarder.asked) == 2


@pytest.mark.asyncio
async def test_a_changed_upstream_set_flushes_its_entries() -> None:
    route, forwarder, _ = make_route()
    await ask(route, A_ID)
    assert len(route.cache) == 1
    new_host = (Upstream("203.0.113.53"),)
    sandboxes = {sid: build.sandbox(sid, sid[0]) for sid in (A_ID, B_ID)}
    route.update(sandboxes, new_host)
    assert len(route.cache) == 0
    await ask(route, A_ID)
    assert forwarder.asked[-1][1] == new_host


@pytest.mark.asyncio
async def test_opted_out_sandboxes_always_ask() -> None:
    net_off = build.network("1" * 64, "nocache", "br-1", "10.5.0.0/24",
                            options=((OPT_DNS_CACHE, "false"),))  # fmt: skip
    net_on = build.network("2" * 64, "cache", "br-2", "10.6.0.0/24")
    snapshot = build.snapshot(
        [net_off, net_on],
        [build.sandbox(A_ID, "a"), build.sandbox(B_ID, "b")],
        [build.endpoint("e" * 64, net_off, A_ID, 2), build.endpoint("f" * 64, net_on, B_ID, 2)],
    )
    assert cache_opt_outs(snapshot) == {A_ID}
    route, forwarder, _ = make_route()
    route.update({s.id: s for s in snapshot.sandboxes}, HOST, cache_opt_outs(snapshot))
    for _ in range(3):
        await ask(route, A_ID)
    assert len(forwarder.asked) == 3 and len(route.cache) == 0
    await ask(route, B_ID)
    await ask(route, B_ID)
    assert len(forwarder.asked) == 4


def test_the_option_must_be_a_boolean() -> None:
    NetworkRequest.build("n", options={OPT_DNS_CACHE: "false"})
    with pytest.raises(InvalidArgument, match=OPT_DNS_CACHE):
        NetworkRequest.build("n", options={OPT_DNS_CACHE: "sometimes"})


@pytest.mark.asyncio
async def test_a_sandbox_own_loopback_resolver_is_not_shared() -> None:
    route, forwarder, _ = make_route(a=("127.0.0.1",), b=("127.0.0.1",))
    await ask(route, A_ID)
    await ask(route, A_ID)
    await ask(route, B_ID)
    assert len(forwarder.asked) == 2


@pytest.mark.asyncio
async def test_an_answer_too_big_for_the_askers_udp_size_is_asked_again() -> None:
    route, forwarder, _ = make_route()
    forwarder.big = True
    packet = DNSRecord.question("big.example", "TXT").pack()
    decision = Forward(parse_query(packet))
    await route.forward(packet, decision, A_ID, tcp=True)  # cached from a TCP exchange
    assert route.cached(decision, A_ID) is None  # > 512 bytes: not for this UDP asker
    assert len(await route.forward(packet, decision, A_ID, tcp=True)) > 512
    assert len(forwarder.asked) == 1  # TCP: the cached answer fits


class SlowForwarder(Forwarder):
    """Answers after a moment, so that several askers are in flight at once."""

    async def forward(self, packet: bytes, query, upstreams, **kw: object) -> bytes:
        await asyncio.sleep(0.05)
        return await super().forward(packet, query, upstreams, **kw)


def question(name: str, ident: int, *, tcp_size: int | None = None) -> tuple[bytes, Forward]:
    record = DNSRecord.question(name)
    record.header.id = ident
    if tcp_size is not None:
        record.add_ar(EDNS0(udp_len=tcp_size))
    packet = record.pack()
    return packet, Forward(parse_query(packet))


@pytest.mark.asyncio
async def test_identical_misses_in_flight_are_asked_once_each_answered_as_asked() -> None:
    route, _, _ = make_route()
    slow = route.forwarder = SlowForwarder()  # type: ignore[assignment]
    names = ["ext.example", "EXT.example", "eXt.ExAmPlE"]
    asks = [question(name, 100 + i) for i, name in enumerate(names)]
    asks.append(question("other.example", 200))
    replies = await asyncio.gather(
        *(
            route.forward(p, d, sid, tcp=False)
            for (p, d), sid in zip(asks, [A_ID, B_ID] * 2, strict=True)
        )
    )
    assert sorted(name for name, _ in slow.asked) == ["ext.example.", "other.example."]
    for (packet, _), raw in zip(asks, replies, strict=True):
        reply = DNSRecord.parse(raw)
        asked = DNSRecord.parse(packet)
        assert reply.header.id == asked.header.id
        assert raw[12 : 12 + len(packet) - 12] == packet[12:]  # the question, case and all
        assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1"]
    assert route.cached(asks[1][1], A_ID) is not None  # and the answer was cached once
    assert not route._flights


@pytest.mark.asyncio
async def test_misses_differing_in_transport_or_udp_size_are_not_merged() -> None:
    route, _, _ = make_route()
    slow = route.forwarder = SlowForwarder()  # type: ignore[assignment]
    plain_packet, plain = question("ext.example", 1)
    big_packet, big = question("ext.example", 2, tcp_size=4096)
    await asyncio.gather(
        route.forward(plain_packet, plain, A_ID, tcp=False),
        route.forward(plain_packet, plain, A_ID, tcp=True),
        route.forward(big_packet, big, A_ID, tcp=False),
    )
    assert len(slow.asked) == 3


@pytest.mark.asyncio
async def test_a_cancelled_asker_does_not_hold_up_the_others() -> None:
    route, _, _ = make_route()
    slow = route.forwarder = SlowForwarder()  # type: ignore[assignment]
    packet, decision = question("ext.example", 7)
    first = asyncio.ensure_future(route.forward(packet, decision, A_ID, tcp=False))
    second = asyncio.ensure_future(route.forward(packet, decision, B_ID, tcp=False))
    await asyncio.sleep(0.01)
    first.cancel()
    assert DNSRecord.parse(await second).header.id == 7
    assert len(slow.asked) == 1


@pytest.mark.asyncio
async def test_merged_askers_of_an_opted_out_sandbox_still_ask_alone() -> None:
    route, _, _ = make_route()
    slow = route.forwarder = SlowForwarder()  # type: ignore[assignment]
    route.update(route._sandboxes, HOST, frozenset({A_ID}))
    packet, decision = question("ext.example", 9)
    await asyncio.gather(*(route.forward(packet, decision, A_ID, tcp=False) for _ in range(3)))
    assert len(slow.asked) == 3
