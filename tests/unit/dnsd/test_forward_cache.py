"""The forward cache (issue 13): TTLs, negative caching, LRU, scopes, the asker's id and case,
DO/CD keys, serve-stale, and what is never cached."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, SOA, A, DNSRecord

from dnsd.core.wire import is_answer_to, parse_query
from dnsd.forward.cache import STALE_TTL, ForwardCache, cache_key
from netcore.errors import InvalidArgument

SCOPE = ("198.51.100.53",)


def query(name: str = "ext.example", qtype: str = "A", *, ident: int = 1, **kw: bool) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = ident
    if kw.get("cd"):
        record.header.cd = 1
    if kw.get("edns") or kw.get("do"):
        record.add_ar(EDNS0(udp_len=1232, flags="do" if kw.get("do") else ""))
    return record.pack()


def reply_to(packet: bytes, *, ttl: int = 120, rcode: int = RCODE.NOERROR, **kw: object) -> bytes:
    request = DNSRecord.parse(packet)
    reply = request.reply()
    reply.header.rcode = rcode
    if rcode == RCODE.NOERROR and not kw.get("nodata"):
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("198.51.100.7"), ttl=ttl))
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("198.51.100.8"), ttl=ttl + 50))
    soa = kw.get("soa")
    if soa is not None:
        soa_ttl, minimum = soa  # type: ignore[misc]
        rdata = SOA("ns.example", "admin.example", (1, 3600, 600, 86400, minimum))
        reply.add_auth(RR("example", QTYPE.SOA, rdata=rdata, ttl=soa_ttl))
    if kw.get("tc"):
        reply.header.tc = 1
    if request.ar:
        reply.add_ar(EDNS0(udp_len=1232))
    data = reply.pack()
    assert is_answer_to(data, parse_query(packet))
    return data


def ttls(data: bytes) -> list[int]:
    record = DNSRecord.parse(data)
    return [rr.ttl for rr in record.rr + record.auth]


def fill(cache: ForwardCache, packet: bytes, now: float = 100.0, **kw: object) -> bytes:
    parsed = parse_query(packet)
    return cache.store(cache_key(SCOPE, parsed), parsed, reply_to(packet, **kw), now)


def ask(cache: ForwardCache, packet: bytes, now: float, scope: object = SCOPE) -> bytes | None:
    parsed = parse_query(packet)
    return cache.lookup(cache_key(scope, parsed), parsed, now)


def test_positive_answer_ttls_count_down_and_expire_at_the_least_ttl() -> None:
    cache = ForwardCache()
    fill(cache, query(), ttl=120)
    assert ttls(ask(cache, query(), 100.0)) == [120, 170]
    assert ttls(ask(cache, query(), 100.9)) == [120, 170]
    assert ttls(ask(cache, query(), 130.2)) == [90, 140]
    assert ttls(ask(cache, query(), 219.9)) == [1, 51]
    assert ask(cache, query(), 220.0) is None
    assert len(cache) == 0


def test_positive_ttl_is_capped_by_max_ttl() -> None:
    cache = ForwardCache(max_ttl=30)
    fill(cache, query(), ttl=3600)
    assert ttls(ask(cache, query(), 110.0)) == [20, 20]
    assert ask(cache, query(), 130.0) is None


def test_ttl_zero_and_truncated_answers_are_not_cached() -> None:
    cache = ForwardCache()
    fill(cache, query("zero.example"), ttl=0)
    fill(cache, query("tc.example"), tc=True)
    assert ask(cache, query("zero.example"), 100.0) is None
    assert ask(cache, query("tc.example"), 100.0) is None
    assert len(cache) == 0


@pytest.mark.parametrize("nodata", [False, True])
def test_negative_ttl_is_the_soa_minimum_capped(nodata: bool) -> None:
    rcode = RCODE.NOERROR if nodata else RCODE.NXDOMAIN
    cache = ForwardCache(max_negative_ttl=60)
    fill(cache, query("a.example"), rcode=rcode, nodata=nodata, soa=(3600, 20))
    fill(cache, query("b.example"), rcode=rcode, nodata=nodata, soa=(10, 900))
    fill(cache, query("c.example"), rcode=rcode, nodata=nodata, soa=(3600, 900))
    assert ttls(ask(cache, query("a.example"), 105.0)) == [15]
    assert ask(cache, query("a.example"), 120.0) is None
    assert ask(cache, query("b.example"), 109.0) is not None
    assert ask(cache, query("b.example"), 110.0) is None
    assert ask(cache, query("c.example"), 159.0) is not None
    assert ask(cache, query("c.example"), 160.0) is None


def test_negative_answer_without_soa_is_not_cached() -> None:
    cache = ForwardCache()
    fill(cache, query(), rcode=RCODE.NXDOMAIN)
    assert ask(cache, query(), 100.0) is None


def test_servfail_is_cached_five_seconds_at_most_and_refused_never() -> None:
    cache = ForwardCache()
    fill(cache, query("sf.example"), rcode=RCODE.SERVFAIL)
    fill(cache, query("rf.example"), rcode=RCODE.REFUSED)
    assert ask(cache, query("sf.example"), 104.9) is not None
    assert ask(cache, query("sf.example"), 105.0) is None
    assert ask(cache, query("rf.example"), 100.0) is None


def test_the_asker_gets_its_own_id_and_question_case() -> None:
    cache = ForwardCache()
    fill(cache, query("Ext.Example", ident=7))
    got = ask(cache, query("eXT.examPLE", ident=4242), 101.0)
    assert got is not None
    record = DNSRecord.parse(got)
    assert record.header.id == 4242
    assert str(record.q.qname) == "eXT.examPLE."
    assert is_answer_to(got, parse_query(query("eXT.examPLE", ident=4242)))
    same = ask(cache, query("Ext.Example", ident=9), 101.0)
    assert DNSRecord.parse(same).header.id == 9 and same[2:] == got[2:12] + same[12:]


@pytest.mark.parametrize("bits", [{"do": True}, {"cd": True}, {"edns": True}])
def test_do_cd_and_edns_are_part_of_the_key(bits: dict[str, bool]) -> None:
    cache = ForwardCache()
    fill(cache, query())
    assert ask(cache, query(**bits), 100.0) is None
    fill(cache, query(**bits), ttl=50)
    assert ttls(ask(cache, query(**bits), 100.0))[:2] == [50, 100]
    assert ttls(ask(cache, query(), 100.0)) == [120, 170]


def test_qtype_and_scope_are_part_of_the_key() -> None:
    cache = ForwardCache()
    fill(cache, query())
    assert ask(cache, query(qtype="AAAA"), 100.0) is None
    assert ask(cache, query(), 100.0, scope=("192.0.2.1",)) is None


def test_lru_bound_evicts_the_least_recently_used() -> None:
    cache = ForwardCache(size=3)
    for name in ("a", "b", "c"):
        fill(cache, query(f"{name}.example"))
    assert ask(cache, query("a.example"), 100.0) is not None  # a is now the most recent
    fill(cache, query("d.example"))
    assert len(cache) == 3
    assert ask(cache, query("b.example"), 100.0) is None
    for name in ("a", "c", "d"):
        assert ask(cache, query(f"{name}.example"), 100.0) is not None


def test_size_zero_turns_it_off() -> None:
    cache = ForwardCache(size=0)
    assert not cache.enabled
    fill(cache, query())
    assert ask(cache, query(), 100.0) is None and len(cache) == 0


def test_retain_drops_the_entries_of_upstream_sets_nobody_uses() -> None:
    cache = ForwardCache()
    fill(cache, query())
    other = parse_query(query())
    cache.store(cache_key(("192.0.2.1",), other), other, reply_to(query()), 100.0)
    assert cache.retain({SCOPE}) == 1
    assert ask(cache, query(), 100.0) is not None
    assert ask(cache, query(), 100.0, scope=("192.0.2.1",)) is None


def test_serve_stale_answers_ttl_30_when_every_upstream_fails() -> None:
    cache = ForwardCache(stale_s=3600)
    fill(cache, query(), ttl=60)
    assert ask(cache, query(), 161.0) is None  # expired: asked again
    parsed = parse_query(query(ident=77))
    servfail = reply_to(query(ident=77), rcode=RCODE.SERVFAIL)
    got = cache.store(cache_key(SCOPE, parsed), parsed, servfail, 161.0)
    record = DNSRecord.parse(got)
    assert record.header.rcode == RCODE.NOERROR and record.header.id == 77
    assert ttls(got) == [STALE_TTL, STALE_TTL]
    assert ttls(ask(cache, query(), 170.0)) == [STALE_TTL, STALE_TTL]  # no retry for 30 s
    assert ask(cache, query(), 191.5) is None  # then the upstreams are asked again
    assert cache.stale_answers == 2


def test_serve_stale_only_within_its_window_and_off_by_default() -> None:
    for cache, at in ((ForwardCache(stale_s=10), 175.0), (ForwardCache(), 161.0)):
        fill(cache, query(), ttl=60)
        parsed = parse_query(query())
        servfail = reply_to(query(), rcode=RCODE.SERVFAIL)
        got = cache.store(cache_key(SCOPE, parsed), parsed, servfail, at)
        assert DNSRecord.parse(got).header.rcode == RCODE.SERVFAIL


def test_garbage_after_the_header_is_not_cached() -> None:
    cache = ForwardCache()
    packet = query()
    parsed = parse_query(packet)
    bad = reply_to(packet)[:-3]
    assert cache.store(cache_key(SCOPE, parsed), parsed, bad, 100.0) == bad
    assert len(cache) == 0


def test_negative_settings_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        ForwardCache(size=-1)
    with pytest.raises(InvalidArgument):
        ForwardCache(max_negative_ttl=-5)
