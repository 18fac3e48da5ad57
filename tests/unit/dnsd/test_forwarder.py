"""Forwarding to upstream servers, against FakeUpstream on loopback sockets (no root).

Row ids (O04, F08, ...) are the reference's (/work/shared/reference/docker-dns.md). Where we
differ from Docker on purpose (SERVFAIL within the deadline instead of silence, failed servers
asked last) the test says so.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from dnsd.core import Reply, answer, build_view
from dnsd.core.wire import parse_query
from dnsd.forward import (
    Forwarder,
    UpstreamBadReply,
    UpstreamHealth,
    UpstreamTimeout,
    UpstreamUnreachable,
    exchange,
)
from dnsd.sandbox_files.resolvconf import Upstream
from netcore.errors import InvalidArgument, VanishedNamespace
from netcore.model import Snapshot
from tests.fakes.upstream import BIG_TXT, FakeUpstream, slow, spoof

SHORT = 0.6  # deadline for tests where everything times out


def plain(_upstream: object) -> Callable[[int, int], socket.socket]:
    return socket.socket


def make_query(name: str = "ext.anchors.test", qtype: str = "A", *, edns: bool = False) -> bytes:
    record = DNSRecord.question(name, qtype)
    if edns:
        record.add_ar(EDNS0(udp_len=1232, flags="do"))
    return record.pack()


def dead_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (UDP: ICMP port unreachable; TCP: RST)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def fakes(*behaviours: object, **kwargs: object) -> AsyncIterator[list[FakeUpstream]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(FakeUpstream(behaviour=b, **kwargs))  # type: ignore[arg-type]
            for b in behaviours
        ]


async def ask(
    forwarder: Forwarder,
    upstreams: list[Upstream],
    query: bytes | None = None,
    *,
    tcp: bool = False,
    sandbox: str = "sb1",
) -> tuple[DNSRecord, float, bytes]:
    query = make_query() if query is None else query
    loop = asyncio.get_running_loop()
    start = loop.time()
    raw = await forwarder.forward(
        query, parse_query(query), upstreams, tcp=tcp, sandbox_key=sandbox, sock_factory_for=plain
    )
    return DNSRecord.parse(raw), loop.time() - start, raw


def answers(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


# --- failover order and timing ---


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_first_server_down_answer_from_second_at_once(tcp: bool) -> None:  # O01
    async with fakes("normal") as (up,):
        down = Upstream("127.0.0.1", dead_port())
        reply, elapsed, _ = await ask(Forwarder(UpstreamHealth()), [down, up.upstream], tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert answers(reply) == ["198.51.100.200"]
    assert elapsed < 0.3  # Docker too (64 ms); no waiting on a refused server
    assert up.qnames("tcp" if tcp else "udp") == ["ext.anchors.test"]


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_first_server_silent_answer_from_second_within_two_seconds(tcp: bool) -> None:
    # O02/O03: Docker answers after 4 s; we hand over after a third of the 5 s budget.
    async with fakes("silent", "normal") as (silent, up):
        forwarder = Forwarder(UpstreamHealth(), deadline_s=5.0)
        reply, elapsed, _ = await ask(forwarder, [silent.upstream, up.upstream], tcp=tcp)
    assert answers(reply) == ["198.51.100.200"]
    assert 1.5 < elapsed < 2.0
    assert len(silent.queries) == len(up.queries) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_all_silent_servfail_at_the_deadline(tcp: bool) -> None:
    # Deliberate difference: Docker sends nothing (U10/U11); we answer SERVFAIL in time.
    async with fakes("silent", "silent", "silent") as ups:
        query = make_query("nosuch.anchors.test", "AAAA")
        forwarder = Forwarder(UpstreamHealth(), deadline_s=SHORT)
        reply, elapsed, raw = await ask(forwarder, [u.upstream for u in ups], query, tcp=tcp)
    assert reply.header.rcode == RCODE.SERVFAIL
    assert SHORT - 0.05 <= elapsed < SHORT + 0.25
    assert [len(u.queries) for u in ups] == [1, 1, 1]  # every server got its chance
    assert raw[:2] == query[:2]  # id echoed
    assert (reply.header.qr, reply.header.rd, reply.header.ra, reply.header.aa) == (1, 1, 1, 0)
    assert str(reply.q.qname) == "nosuch.anchors.test." and reply.q.qtype == QTYPE.AAAA
    assert not reply.rr


@pytest.mark.asyncio
async def test_all_down_servfail_at_once() -> None:
    # Deliberate difference: Docker gives up in 0.3 ms but never answers (U07).
    down = [Upstream("127.0.0.1", dead_port()), Upstream("127.0.0.1", dead_port())]
    reply, elapsed, _ = await ask(Forwarder(UpstreamHealth(), deadline_s=5.0), down)
    assert reply.header.rcode == RCODE.SERVFAIL
    assert elapsed < 0.3


@pytest.mark.asyncio
async def test_no_upstreams_servfail_at_once() -> None:
    query = DNSRecord.question("ext.anchors.test", "A")
    query.header.rd = 0
    reply, elapsed, _ = await ask(Forwarder(UpstreamHealth()), [], query.pack())
    assert reply.header.rcode == RCODE.SERVFAIL
    assert (reply.header.rd, reply.header.ra) == (0, 1)  # RD copied (here: clear)
    assert elapsed < 0.05


@pytest.mark.asyncio
async def test_fourth_server_is_never_asked() -> None:  # O09
    async with fakes("silent", "silent", "silent", "normal") as ups:
        forwarder = Forwarder(UpstreamHealth(), deadline_s=SHORT)
        reply, _, _ = await ask(forwarder, [u.upstream for u in ups])
    assert reply.header.rcode == RCODE.SERVFAIL
    assert [len(u.queries) for u in ups] == [1, 1, 1, 0]


@pytest.mark.asyncio
async def test_slow_first_server_still_wins_after_the_next_was_asked() -> None:
    # Staggered tries: the first socket stays open after its slot, so a slow server's late
    # answer is taken even though the second server was already asked.
    async with fakes(slow(0.45), "silent") as (slow_up, silent):
        forwarder = Forwarder(UpstreamHealth(), deadline_s=1.2)  # slot 0.4 s
        reply, elapsed, _ = await ask(forwarder, [slow_up.upstream, silent.upstream])
    assert answers(reply) == ["198.51.100.200"]
    assert 0.4 < elapsed < 0.8
    assert len(silent.queries) == 1


# --- next-server rules (rule 12) ---


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "second", "name", "rcode", "asked_second"),
    [
        ("refused", "normal", "nosuch.anchors.test", RCODE.NXDOMAIN, True),  # O06
        ("nxdomain", "refused", "ext.anchors.test", RCODE.REFUSED, True),  # O08: the last one
        ("nxdomain", "normal", "ext.anchors.test", RCODE.NOERROR, True),  # O04
        ("refused", "normal", "ext.anchors.test", RCODE.NOERROR, True),  # O05
        ("servfail", "normal", "ext.anchors.test", RCODE.NOERROR, True),
        ("servfail", "servfail", "ext.anchors.test", RCODE.SERVFAIL, True),
        ("nxdomain_aa", "normal", "ext.anchors.test", RCODE.NXDOMAIN, False),  # authoritative
        ("normal", "normal", "nosuch.anchors.test", RCODE.NXDOMAIN, True),  # F04, not aa
        ("normal", "normal", "ext.anchors.test", RCODE.NOERROR, False),  # F02
    ],
)
async def test_next_server_rules(
    first: str, second: str, name: str, rcode: int, asked_second: bool
) -> None:
    async with fakes(first, second) as (up1, up2):
        forwarder = Forwarder(UpstreamHealth())
        reply, elapsed, _ = await ask(forwarder, [up1.upstream, up2.upstream], make_query(name))
    assert reply.header.rcode == rcode
    assert len(up1.queries) == 1
    assert len(up2.queries) == (1 if asked_second else 0)
    assert elapsed < 0.3  # replies hand over at once, no slot is waited out


@pytest.mark.asyncio
async def test_only_refused_relays_refused() -> None:  # O07
    async with fakes("refused") as (up,):
        reply, _, _ = await ask(Forwarder(UpstreamHealth()), [up.upstream])
    assert reply.header.rcode == RCODE.REFUSED


@pytest.mark.asyncio
async def test_refusals_do_not_reorder_servers() -> None:
    # REFUSED is an answer from a live server: O06's outcome must not change on the next query.
    async with fakes("refused", "normal") as (up2, up1):
        forwarder = Forwarder(UpstreamHealth())
        for _ in range(2):
            reply, _, _ = await ask(
                forwarder, [up2.upstream, up1.upstream], make_query("nosuch.anchors.test")
            )
            assert reply.header.rcode == RCODE.NXDOMAIN
    assert len(up2.queries) == len(up1.queries) == 2


# --- what is relayed ---


@pytest.mark.asyncio
async def test_tc_reply_is_relayed_as_is() -> None:  # F08
    async with fakes("truncate", "normal") as (up1, up2):
        reply, _, _ = await ask(
            Forwarder(UpstreamHealth()), [up1.upstream, up2.upstream], make_query("x", "TXT")
        )
    assert reply.header.tc == 1
    assert not up2.queries  # the client retries over TCP itself


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_big_answer_relayed_whole(tcp: bool) -> None:  # F10 (TCP); UDP beyond 512 too
    async with fakes("big") as (up,):
        query = make_query("bigtxt.anchors.test", "TXT")
        reply, _, raw = await ask(Forwarder(UpstreamHealth()), [up.upstream], query, tcp=tcp)
    assert len(raw) > 1500
    assert [b"".join(rr.rdata.data).decode() for rr in reply.rr] == list(BIG_TXT)


@pytest.mark.asyncio
async def test_tcp_forwarding_uses_tcp_upstream() -> None:  # P04
    async with fakes("normal") as (up,):
        query = make_query("mx.anchors.test", "MX")
        reply, _, _ = await ask(Forwarder(UpstreamHealth()), [up.upstream], query, tcp=True)
    assert [q.transport for q in up.queries] == ["tcp"]
    assert reply.rr[0].rdata.preference == 10


@pytest.mark.asyncio
async def test_edns_passes_through_unchanged() -> None:  # F07, F13
    async with fakes("normal") as (up,):
        query = make_query(edns=True)
        reply, _, raw = await ask(Forwarder(UpstreamHealth()), [up.upstream], query)
    # The client's bytes, OPT included, under an id of our own (random, per query; the shared
    # upstream socket tells its queries apart by it); the client gets its id back.
    assert up.queries[0].data[2:] == query[2:]
    assert raw[:2] == query[:2]
    assert up.queries[0].edns_size == 1232
    assert any(rr.rtype == QTYPE.OPT for rr in reply.ar)


@pytest.mark.asyncio
async def test_fresh_source_port_per_exchange() -> None:
    async with fakes("normal") as (up,):
        forwarder = Forwarder(UpstreamHealth())
        for _ in range(3):
            await ask(forwarder, [up.upstream])
    assert len({q.source[1] for q in up.queries}) > 1


@pytest.mark.asyncio
async def test_ipv6_upstream() -> None:
    async with fakes("normal", host="::1") as (up,):
        reply, _, _ = await ask(Forwarder(UpstreamHealth()), [up.upstream], tcp=False)
        reply_tcp, _, _ = await ask(Forwarder(UpstreamHealth()), [up.upstream], tcp=True)
    assert answers(reply) == answers(reply_tcp) == ["198.51.100.200"]


# --- spoofing: wrong id, question or source is never relayed ---


SPOOFS = ["wrong_id", "wrong_question", "other_source"]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", SPOOFS)
async def test_spoofed_reply_ignored_right_one_accepted(kind: str) -> None:
    async with fakes(spoof(kind, then_answer=True)) as (up,):  # type: ignore[arg-type]
        reply, elapsed, _ = await ask(Forwarder(UpstreamHealth(), deadline_s=SHORT), [up.upstream])
    assert answers(reply) == ["198.51.100.200"]
    assert str(reply.q.qname) == "ext.anchors.test."
    assert elapsed < SHORT - 0.1


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", SPOOFS)
async def test_only_spoofed_replies_servfail_at_deadline(kind: str) -> None:
    async with fakes(spoof(kind, then_answer=False)) as (up,):  # type: ignore[arg-type]
        reply, elapsed, _ = await ask(Forwarder(UpstreamHealth(), deadline_s=SHORT), [up.upstream])
    assert reply.header.rcode == RCODE.SERVFAIL
    assert elapsed >= SHORT - 0.05


@pytest.mark.asyncio
async def test_reply_from_another_loopback_address_ignored() -> None:
    async with fakes(spoof("other_source", then_answer=False), spoof_host="127.0.0.2") as (up,):
        reply, _, _ = await ask(Forwarder(UpstreamHealth(), deadline_s=SHORT), [up.upstream])
    assert reply.header.rcode == RCODE.SERVFAIL


# --- per-sandbox limits ---


@pytest.mark.asyncio
async def test_inflight_cap_refuses_past_it_per_sandbox() -> None:
    async with fakes(slow(0.3)) as (up,):
        forwarder = Forwarder(UpstreamHealth(), max_inflight=2)
        first = [asyncio.create_task(ask(forwarder, [up.upstream])) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert forwarder.inflight("sb1") == 2
        refused, elapsed, _ = await ask(forwarder, [up.upstream])
        other, _, _ = await ask(forwarder, [up.upstream], sandbox="sb2")
        results = await asyncio.gather(*first)
    assert refused.header.rcode == RCODE.REFUSED and elapsed < 0.05
    assert str(refused.q.qname) == "ext.anchors.test."
    assert other.header.rcode == RCODE.NOERROR  # another sandbox is not affected
    assert [r.header.rcode for r, _, _ in results] == [RCODE.NOERROR] * 2
    assert forwarder.inflight("sb1") == 0
    assert len(up.queries) == 3


@pytest.mark.asyncio
async def test_rate_limit_refuses_when_exceeded() -> None:
    async with fakes("normal") as (up,):
        forwarder = Forwarder(UpstreamHealth(), rate_limit=(1.0, 3.0))
        rcodes = [(await ask(forwarder, [up.upstream]))[0].header.rcode for _ in range(5)]
        other, _, _ = await ask(forwarder, [up.upstream], sandbox="sb2")
    assert rcodes == [RCODE.NOERROR] * 3 + [RCODE.REFUSED] * 2
    assert other.header.rcode == RCODE.NOERROR
    assert len(up.queries) == 4


@pytest.mark.asyncio
async def test_rate_limit_refills_over_time() -> None:
    async with fakes("normal") as (up,):
        forwarder = Forwarder(UpstreamHealth(), rate_limit=(20.0, 1.0))
        first, _, _ = await ask(forwarder, [up.upstream])
        second, _, _ = await ask(forwarder, [up.upstream])
        await asyncio.sleep(0.1)  # 20 qps: one token back after 50 ms
        third, _, _ = await ask(forwarder, [up.upstream])
    assert [r.header.rcode for r in (first, second, third)] == [
        RCODE.NOERROR,
        RCODE.REFUSED,
        RCODE.NOERROR,
    ]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="deadline_s"):
        Forwarder(UpstreamHealth(), deadline_s=0)
    with pytest.raises(InvalidArgument, match="max_inflight"):
        Forwarder(UpstreamHealth(), max_inflight=0)
    with pytest.raises(InvalidArgument, match="rate_limit"):
        Forwarder(UpstreamHealth(), rate_limit=(0, 5))


# --- health ---


@pytest.mark.asyncio
async def test_failed_server_is_tried_last_on_the_next_query() -> None:
    async with fakes("silent", "normal") as (silent, up):
        health = UpstreamHealth()
        forwarder = Forwarder(health, deadline_s=SHORT)
        await ask(forwarder, [silent.upstream, up.upstream])
        loop = asyncio.get_running_loop()
        assert health.is_penalised(silent.upstream, loop.time())
        reply, elapsed, _ = await ask(forwarder, [silent.upstream, up.upstream])
    assert answers(reply) == ["198.51.100.200"]
    assert elapsed < 0.1  # the live server was asked first
    assert len(silent.queries) == 1


@pytest.mark.asyncio
async def test_answer_clears_a_penalty() -> None:
    async with fakes("normal") as (up,):
        health = UpstreamHealth()
        loop = asyncio.get_running_loop()
        health.record_failure(up.upstream, loop.time())
        await ask(Forwarder(health), [up.upstream])
        assert not health.is_penalised(up.upstream, loop.time())


# --- cancellation and robustness ---


@pytest.mark.asyncio
async def test_cancelled_forward_stops_waiting_and_close_closes_its_sockets() -> None:
    opened: list[socket.socket] = []

    def recording(family: int, kind: int) -> socket.socket:
        opened.append(socket.socket(family, kind))
        return opened[-1]

    async with fakes("silent", "silent") as ups:
        forwarder = Forwarder(UpstreamHealth(), deadline_s=5.0)
        query = make_query()
        task = asyncio.create_task(
            forwarder.forward(
                query,
                parse_query(query),
                [u.upstream for u in ups],
                tcp=False,
                sandbox_key="sb1",
                sock_factory_for=lambda _up: recording,
            )
        )
        await asyncio.sleep(0.05)
        assert len(opened) == 1 and opened[0].fileno() != -1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert forwarder.inflight("sb1") == 0
        (pool,) = forwarder.pools._owners["sb1"].values()
        assert not any(conn.pending for conn in pool.conns if conn is not None)
        assert len(forwarder.deadlines(asyncio.get_running_loop())) <= 1  # its wake-up skipped
        forwarder.forget("sb1")  # the sandbox goes: its sockets with it
    assert all(sock.fileno() == -1 for sock in opened)


@pytest.mark.asyncio
@pytest.mark.parametrize("failing", ["factory", "factory_for"])
async def test_socket_factory_failure_costs_one_try(failing: str) -> None:
    # The sandbox's namespace may vanish while a query is in flight: that server is skipped.
    def broken(_family: int, _kind: int) -> socket.socket:
        raise OSError(2, "namespace is gone")

    async with fakes("normal", "normal") as (gone, up):

        def factory_for(upstream: object) -> Callable[[int, int], socket.socket]:
            if upstream != gone.upstream:
                return socket.socket
            if failing == "factory_for":
                raise VanishedNamespace("sandbox sb1: /run/netns/x is gone")
            return broken

        query = make_query()
        reply = await Forwarder(UpstreamHealth()).forward(
            query,
            parse_query(query),
            [gone.upstream, up.upstream],
            tcp=False,
            sandbox_key="sb1",
            sock_factory_for=factory_for,
        )
    assert answers(DNSRecord.parse(reply)) == ["198.51.100.200"]
    assert not gone.queries


def test_unparsable_question_gets_formerr() -> None:
    # The forwarder takes the listener's parsed query: a question that does not parse gets
    # its FORMERR from the listener's decision and never reaches the forwarder.
    header_only = bytes(DNSRecord.question("x", "A").pack()[:12])
    decision = answer(header_only, "sb1", build_view(Snapshot()), rng=random.Random(1))
    assert isinstance(decision, Reply)
    reply = decision.data
    assert reply[:2] == header_only[:2] and DNSRecord.parse(reply).header.rcode == RCODE.FORMERR


# --- exchange() on its own ---


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_exchange_unreachable(tcp: bool) -> None:
    loop = asyncio.get_running_loop()
    down = Upstream("127.0.0.1", dead_port())
    query = make_query()
    with pytest.raises(UpstreamUnreachable, match=rf"127\.0\.0\.1:{down.port}/"):
        await exchange(query, down, query=parse_query(query), tcp=tcp, deadline=loop.time() + 1.0)


@pytest.mark.asyncio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_exchange_timeout_names_the_server(tcp: bool) -> None:
    async with fakes("silent") as (up,):
        loop = asyncio.get_running_loop()
        query = make_query()
        with pytest.raises(UpstreamTimeout, match=f"{up.port}/"):
            await exchange(
                query, up.upstream, query=parse_query(query), tcp=tcp, deadline=loop.time() + 0.2
            )


@pytest.mark.asyncio
async def test_exchange_tcp_wrong_id_is_a_bad_reply() -> None:
    async with fakes(spoof("wrong_id", then_answer=True)) as (up,):
        loop = asyncio.get_running_loop()
        query = make_query()
        with pytest.raises(UpstreamBadReply, match="different query"):
            await exchange(
                query, up.upstream, query=parse_query(query), tcp=True, deadline=loop.time() + 1.0
            )


@pytest.mark.asyncio
async def test_exchange_uses_the_socket_factory() -> None:
    made: list[tuple[int, int]] = []

    def factory(family: int, kind: int) -> socket.socket:
        made.append((family, kind))
        return socket.socket(family, kind)

    async with fakes("normal") as (up,):
        loop = asyncio.get_running_loop()
        query = make_query()
        for tcp in (False, True):
            await exchange(
                query,
                up.upstream,
                query=parse_query(query),
                tcp=tcp,
                deadline=loop.time() + 1,
                sock_factory=factory,
            )
    assert made == [
        (socket.AF_INET, socket.SOCK_DGRAM),
        (socket.AF_INET, socket.SOCK_STREAM),
    ]
