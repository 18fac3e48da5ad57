"""Outcome classification, per-batch counting, the collector's output (checked by promtool)."""

from __future__ import annotations

import subprocess
from bisect import bisect_left

from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from prometheus_client import generate_latest

from dnsd.metrics.collector import HealthFacts, Sources, build_registry, repair_kind
from dnsd.metrics.counters import (
    HOLD_REPLIES,
    LATENCY_BOUNDS,
    SETTLE_AFTER,
    ApiStats,
    QueryStats,
    StatsBook,
    UpstreamStats,
    primary_networks,
)
from dnsd.metrics.outcome import (
    CACHED,
    FORWARDED,
    LOCAL,
    NODATA,
    OUTCOMES,
    kind_of,
    outcome_of,
    qtype_index,
    split_kind,
)
from netcore.model import Snapshot
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from tests.support.requires import require_binary


def reply(name: str, qtype: str = "A", rcode: str = "NOERROR", answers: int = 1) -> bytes:
    record = DNSRecord.question(name, qtype).reply()
    record.header.rcode = getattr(RCODE, rcode)
    for i in range(answers):
        record.add_answer(RR(name, QTYPE.A, rdata=A(f"10.0.0.{i + 1}")))
    return bytes(record.pack())


def test_outcome_comes_from_the_rcode_first_then_from_where_the_answer_came_from():
    assert OUTCOMES[outcome_of(reply("web"), 2, LOCAL)] == "local"
    assert OUTCOMES[outcome_of(reply("web")[2:], 0, CACHED)] == "cached"
    assert OUTCOMES[outcome_of(reply("x.test"), 2, FORWARDED)] == "forwarded"
    assert OUTCOMES[outcome_of(reply("web", "MX", answers=0), 2, LOCAL)] == "nodata"
    assert OUTCOMES[outcome_of(reply("x", rcode="NXDOMAIN", answers=0), 2, CACHED)] == "nxdomain"
    assert OUTCOMES[outcome_of(reply("x", rcode="SERVFAIL", answers=0), 2, LOCAL)] == "servfail"
    assert OUTCOMES[outcome_of(reply("x", rcode="REFUSED", answers=0), 2, LOCAL)] == "refused"
    assert OUTCOMES[outcome_of(reply("x", rcode="FORMERR", answers=0), 2, LOCAL)] == "error"
    assert OUTCOMES[outcome_of(b"\x00\x01", 2, LOCAL)] == "error"  # too short to read


def test_query_types_fold_to_a_bounded_set():
    assert split_kind(kind_of(reply("web", "AAAA", answers=0), 2, LOCAL)) == ("AAAA", "nodata")
    assert split_kind(kind_of(reply("s", "SRV", answers=0), 2, LOCAL))[0] == "SRV"
    assert split_kind(kind_of(reply("w", "TYPE65280", answers=0), 2, LOCAL))[0] == "other"
    assert qtype_index(b"\x00" * 12) == qtype_index(b"\x00\x01\x81\x80\x00\x01")  # no question


def test_a_batch_counts_hits_fresh_replies_and_drops_with_the_batch_latency():
    book = StatsBook()
    stats = book.open("a" * 64)
    stats.network = "app"
    hit = reply("web")[2:]
    stats.batch([hit, hit, hit], [reply("web", "MX", answers=0)], 2, 0.0003)
    stats.batch([hit], [], 0, 0.00002)
    assert sum(stats.counts) == 2  # only drops are counted at once; the rest when settled
    stats.settle()
    by_label = {split_kind(k): n for k, n in enumerate(stats.counts) if n}
    assert by_label == {("A", "cached"): 4, ("MX", "nodata"): 1, ("other", "dropped"): 2}
    assert stats.cache_hits == 4
    assert sum(stats.latency[CACHED].buckets) == 4
    # 0.0003 s: the 3 hits share their bucket with the fresh NODATA reply, by count
    assert abs(stats.latency[CACHED].sum - (3 * 0.0003 + 0.00002)) < 1e-12
    assert abs(stats.latency[NODATA].sum - 0.0003) < 1e-12
    assert stats.latency[CACHED].buckets[bisect_left(LATENCY_BOUNDS, 0.00002)] == 1


def test_answers_from_the_forward_cache_count_as_cached():
    stats = QueryStats("d" * 64)
    ext, gone = reply("ext.test")[2:], reply("gone.test", rcode="NXDOMAIN")[2:]
    stats.batch([], [], 0, 0.0001, [ext, gone, ext])
    stats.batch([], [], 0, 0.0001, [ext] * 6)
    stats.settle()
    by_label = {split_kind(k): n for k, n in enumerate(stats.counts) if n}
    assert by_label == {("A", "cached"): 8, ("A", "nxdomain"): 1}
    assert stats.cache_hits == 0  # the reply cache's count: these came from the forward cache


def test_much_pending_is_settled_without_a_scrape():
    stats = QueryStats("c" * 64)
    hit = reply("web")[2:]
    for _ in range(SETTLE_AFTER // 64 + 1):
        stats.batch([hit] * 64, [], 0, 0.0001)
    assert sum(stats.counts) > SETTLE_AFTER


def test_whole_replies_are_settled_before_many_are_held():
    stats = QueryStats("d" * 64)
    for _ in range(HOLD_REPLIES // 16 + 1):
        stats.batch([], [reply("web")] * 16, 0, 0.0001)
    assert sum(stats.counts) > HOLD_REPLIES
    assert stats._held <= HOLD_REPLIES


def test_stopped_listeners_keep_their_counts_under_their_network():
    book = StatsBook()
    first = book.open("a" * 64)
    book.follow({"a" * 64: "app"})
    first.batch([], [reply("web")], 0, 0.001)
    book.retire(first)
    book.retire(first)  # twice is harmless
    second = book.open("a" * 64)  # the sandbox reconnected: a new listener
    second.batch([], [reply("web")], 0, 0.001)
    totals = {}
    for stats in book.all():
        totals[stats.network] = totals.get(stats.network, 0) + sum(stats.counts)
    assert totals == {"app": 2}


def test_queries_count_under_the_network_of_the_default_route(engine):
    assert primary_networks(Snapshot()) == {}
    engine.create_network(NetworkRequest(name="front", subnet="10.70.0.0/24"))
    engine.create_network(NetworkRequest(name="back", subnet="10.71.0.0/24"))
    box = engine.create_sandbox(SandboxRequest(name="box"))
    engine.connect("back", "box", ConnectRequest())
    engine.connect("front", "box", ConnectRequest())
    assert primary_networks(engine.registry.snapshot()) == {box.id: "back"}


def test_repair_kinds():
    assert repair_kind("bridge br-1 of network app was missing: recreated") == "bridge"
    assert repair_kind("veth of web on app was missing: recreated") == "veth"
    assert repair_kind("sandbox web: namespace /run/netns/web vanished; removed web") == (
        "sandbox_vanished"
    )
    assert repair_kind("connect web to app: rolled back") == "interrupted_change"


def test_exposition_is_valid_for_promtool_and_carries_every_family():
    promtool = require_binary("promtool", "apt-get install prometheus")
    book, api, upstreams = StatsBook(), ApiStats(), UpstreamStats()
    stats = book.open("b" * 64)
    stats.network = "app"
    stats.batch([reply("web")[2:]], [reply("x", rcode="NXDOMAIN", answers=0)], 1, 0.0001)
    stats.forwarded(reply("ext.test"), 0.02, "198.51.100.53:53")
    key = ("198.51.100.53", 53, "sandbox")
    upstreams.ask(key)
    upstreams.answer(key, reply("ext.test"), 0.02)
    upstreams.fail(("2001:db8::1", 53, "host"))
    upstreams.refused["rate"] += 3
    api.count("/networks", "GET", 200)
    sources = Sources(
        book=book,
        api=api,
        upstreams=upstreams,
        upstream_keys=lambda: [key, ("2001:db8::1", 53, "host")],
        upstream_healthy=lambda k: k == key,
        inflight=lambda: 2,
        objects=lambda: {"listeners": 1, "networks": 2, "sandboxes": 1, "endpoints": 1},
        repairs=lambda: ["bridge br0 of network app was missing: recreated"],
        version="9.9",
        health=lambda: HealthFacts(2, {"healthy": 4, "unhealthy": 3}, 70, 1),
    )
    text = generate_latest(build_registry(sources)).decode()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr + text
    for line in (
        'dnsd_dns_queries_total{network="app",outcome="cached",qtype="A"} 1.0',
        'dnsd_dns_queries_total{network="app",outcome="nxdomain",qtype="A"} 1.0',
        'dnsd_dns_queries_total{network="app",outcome="forwarded",qtype="A"} 1.0',
        'dnsd_dns_queries_total{network="app",outcome="dropped",qtype="other"} 1.0',
        'dnsd_dns_answer_seconds_count{outcome="forwarded"} 1.0',
        'dnsd_upstream_healthy{upstream="198.51.100.53:53",via="sandbox"} 1.0',
        'dnsd_upstream_healthy{upstream="[2001:db8::1]:53",via="host"} 0.0',
        'dnsd_upstream_failures_total{upstream="[2001:db8::1]:53",via="host"} 1.0',
        'dnsd_upstream_responses_total{rcode="NOERROR",upstream="198.51.100.53:53",'
        'via="sandbox"} 1.0',
        'dnsd_forwards_refused_total{reason="rate"} 3.0',
        "dnsd_forwards_inflight 2.0",
        "dnsd_networks 2.0",
        'dnsd_reconcile_repairs_total{kind="bridge"} 1.0',
        'dnsd_api_requests_total{method="GET",route="/networks",status="200"} 1.0',
        'dnsd_build{version="9.9"} 1.0',
        "dnsd_query_log_dropped_total 0.0",
        'dnsd_dns_reply_cache_hits_total{network="app"} 1.0',
        "dnsd_health_fail_open_names 2.0",
        'dnsd_health_checks{status="unhealthy"} 3.0',
        'dnsd_health_checks{status="starting"} 0.0',
        "dnsd_health_probes_total 70.0",
        "dnsd_health_worker_restarts_total 1.0",
    ):  # fmt: skip
        assert line in text, line
    assert "process_cpu_seconds_total" in text and "python_info" in text
