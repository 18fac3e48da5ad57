"""A listener's table of forward cache hits by query bytes answers exactly what the cache
would, and nothing once the cache, the view or the route's plans no longer would."""

from __future__ import annotations

import pytest
from dnslib import DNSRecord

from dnsd.core.answer import Forward
from dnsd.core.wire import parse_query

from .test_forward_route_cache import A_ID, B_ID, HOST, make_route


def question(name: str = "ext.example", ident: int = 1) -> tuple[bytes, Forward]:
    record = DNSRecord.question(name)
    record.header.id = ident
    packet = bytes(record.pack())  # as the listener receives it
    return packet, Forward(parse_query(packet))


async def warm(route, sandbox_id: str = A_ID, name: str = "ext.example"):
    packet, decision = question(name)
    await route.forward(packet, decision, sandbox_id, tcp=False)
    table = route.hit_table(sandbox_id, VIEW)
    assert route.cached(decision, sandbox_id, packet) is not None  # remembered from here on
    return table, packet, decision


VIEW = object()


@pytest.mark.asyncio
async def test_a_hit_by_bytes_equals_the_cache_answer_as_ttls_count_down() -> None:
    route, forwarder, clock = make_route()
    table, packet, decision = await warm(route)
    for step in (0.0, 0.4, 1.0, 30.2):
        clock.now += step
        from_table = packet[:2] + table.get(packet[2:])
        assert from_table == route.cached(decision, A_ID)
    assert len(forwarder.asked) == 1
    clock.now += 30  # 60 s TTL gone: the table falls through (serve-stale is the cache's)
    assert table.get(packet[2:]) is None


@pytest.mark.asyncio
async def test_another_case_is_left_to_the_cache() -> None:
    route, _, _ = make_route()
    table, _, _ = await warm(route)
    packet, decision = question("EXT.example")
    assert route.cached(decision, A_ID, packet) is not None
    assert table.get(packet[2:]) is None


@pytest.mark.asyncio
async def test_an_entry_out_of_the_cache_is_not_answered() -> None:
    route, _, _ = make_route()
    table, packet, _ = await warm(route)
    route.cache.clear()
    assert table.get(packet[2:]) is None
    table, packet, decision = await warm(route)
    route.cache.store(next(iter(route.cache._entries)), decision.query, _reply(packet), 2000.0)
    assert table.get(packet[2:]) is None  # replaced by a newer answer


@pytest.mark.asyncio
async def test_a_new_view_or_new_plans_empty_the_table() -> None:
    route, _, _ = make_route()
    _, packet, _ = await warm(route)
    assert route.hit_table(A_ID, object()).get(packet[2:]) is None  # a new view
    _, packet, _ = await warm(route)
    route.update(route._sandboxes, HOST, frozenset({A_ID}))  # opted out now
    assert route.hit_table(A_ID, VIEW).get(packet[2:]) is None
    assert route.hit_table(B_ID, VIEW) is not None


def _reply(packet: bytes) -> bytes:
    from dnslib import RR, A

    reply = DNSRecord.parse(packet).reply()
    reply.add_answer(RR("ext.example", rdata=A("192.0.2.7"), ttl=60))
    return reply.pack()
