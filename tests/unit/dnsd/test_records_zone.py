"""Records and host names in the zone view, and the zone-file rdata parser: expected answers."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from dnslib import QTYPE, DNSRecord

from dnsd.core import answer, build_view
from dnsd.core.answer import Forward, Reply
from dnsd.core.incremental import ViewBuilder
from dnsd.core.rdata import parse_rdata
from netcore.errors import InvalidArgument
from netcore.model import Record, Snapshot
from tests.support import snapshots as build

NET_A = build.network("a".ljust(64, "0"), "netA", "brA", "10.1.0.0/24", v6="fd00:1::/64")
NET_B = build.network("b".ljust(64, "0"), "netB", "brB", "10.2.0.0/24", dns_ttl=60)
QUIET = build.network(
    "c".ljust(64, "0"), "quiet", "brC", "10.3.0.0/24", options=(("dnsd.host_names", "off"),)
)
WEB = build.sandbox("1".ljust(64, "0"), "web")
CLI = build.sandbox("2".ljust(64, "0"), "cli")
BOTH = build.sandbox("3".ljust(64, "0"), "both")
OFF = build.sandbox("4".ljust(64, "0"), "off")


def _record(net, name: str, rtype: str, value: str, ttl: int | None = None) -> Record:
    rid = f"{net.id[:1]}{name}{rtype}{value}".encode().hex()[:64].ljust(64, "0")
    return Record(rid, net.id, name, rtype, parse_rdata(rtype, value).text, ttl)  # type: ignore[arg-type]


def _snapshot(*records: Record) -> Snapshot:
    endpoints = [
        build.endpoint("e1".ljust(64, "0"), NET_A, WEB.id, 2, v6_host=2),
        build.endpoint("e2".ljust(64, "0"), NET_A, CLI.id, 3),
        build.endpoint("e3".ljust(64, "0"), NET_A, BOTH.id, 4, host_ifname="v3"),
        build.endpoint("e4".ljust(64, "0"), NET_B, BOTH.id, 4, ifname="eth1", host_ifname="v4"),
        build.endpoint("e5".ljust(64, "0"), QUIET, OFF.id, 2, host_ifname="v5"),
    ]
    base = build.snapshot([NET_A, NET_B, QUIET], [WEB, CLI, BOTH, OFF], endpoints)
    return replace(base, records=records)


def ask(snapshot: Snapshot, asker, name: str, qtype: str = "A") -> DNSRecord | None:
    """The reply of `asker` to `name`, or None when it is forwarded; the incremental view
    must give the same bytes."""
    packet = DNSRecord.question(name, qtype).pack()
    decision = answer(packet, asker.id, build_view(snapshot), rng=random.Random(1))
    again = answer(packet, asker.id, ViewBuilder().build(snapshot), rng=random.Random(1))
    assert decision == again
    if isinstance(decision, Forward):
        return None
    assert isinstance(decision, Reply)
    return DNSRecord.parse(decision.data)


def rrs(reply: DNSRecord | None) -> list[tuple[str, str, int, str]]:
    assert reply is not None, "forwarded"
    return [(str(r.rname), QTYPE[r.rtype], r.ttl, str(r.rdata)) for r in reply.rr]


def test_records_answer_both_name_forms_with_their_ttl_and_a_ptr_inside_the_subnet():
    snap = _snapshot(
        _record(NET_A, "db", "A", "10.1.0.50", ttl=30),
        _record(NET_A, "db", "A", "192.0.2.9"),
        _record(NET_A, "_pg._tcp.db", "SRV", "10 5 5432 db.netA."),
        _record(NET_A, "db", "TXT", '"v=1" two'),
    )
    assert sorted(rrs(ask(snap, CLI, "DB.netA"))) == [
        ("DB.netA.", "A", 0, "10.1.0.50"),  # an RRset has one TTL: the smallest
        ("DB.netA.", "A", 0, "192.0.2.9"),
    ]
    assert rrs(ask(snap, CLI, "_pg._tcp.db", "SRV")) == [
        ("_pg._tcp.db.", "SRV", 0, "10 5 5432 db.netA.")
    ]
    assert rrs(ask(snap, CLI, "db", "TXT")) == [
        ("db.", "TXT", 0, '"v=1","two"')
    ]  # dnslib's rendering
    assert rrs(ask(snap, CLI, "50.0.1.10.in-addr.arpa", "PTR")) == [
        ("50.0.1.10.in-addr.arpa.", "PTR", 30, "db.netA.")
    ]
    assert ask(snap, CLI, "9.2.0.192.in-addr.arpa", "PTR") is None  # outside: its owner's
    nodata = ask(snap, CLI, "db", "AAAA")
    assert nodata is not None and nodata.header.rcode == 0 and rrs(nodata) == []
    assert ask(snap, OFF, "db") is None  # another network's record: not ours


def test_a_cname_brings_its_local_target_and_stops_at_outside_names_and_loops():
    snap = _snapshot(
        _record(NET_A, "www", "CNAME", "Alias."),
        _record(NET_A, "alias", "CNAME", "web.netA."),
        _record(NET_A, "ext", "CNAME", "db.example."),
        _record(NET_A, "loop1", "CNAME", "loop2"),
        _record(NET_A, "loop2", "CNAME", "loop1"),
    )
    assert rrs(ask(snap, CLI, "www")) == [
        ("www.", "CNAME", 0, "Alias."),
        ("Alias.", "CNAME", 0, "web.netA."),
        ("web.netA.", "A", 0, "10.1.0.2"),
    ]
    assert rrs(ask(snap, CLI, "www", "AAAA"))[-1] == ("web.netA.", "AAAA", 0, "fd00:1::2")
    assert rrs(ask(snap, CLI, "www", "CNAME")) == [("www.", "CNAME", 0, "Alias.")]
    assert rrs(ask(snap, CLI, "www", "MX")) == [
        ("www.", "CNAME", 0, "Alias."),
        ("Alias.", "CNAME", 0, "web.netA."),
    ]
    assert rrs(ask(snap, CLI, "ext")) == [("ext.", "CNAME", 0, "db.example.")]
    assert rrs(ask(snap, CLI, "loop1")) == [
        ("loop1.", "CNAME", 0, "loop2."),
        ("loop2.", "CNAME", 0, "loop1."),
    ]


def test_a_cname_beside_other_data_gives_way():
    # Stored before the sandbox took the name (the API refuses it afterwards): the sandbox wins.
    snap = _snapshot(_record(NET_A, "web", "CNAME", "elsewhere.example."))
    assert rrs(ask(snap, CLI, "web")) == [("web.", "A", 0, "10.1.0.2")]
    # Two networks with CNAMEs of one name: the smallest target, for a sandbox on both.
    snap = _snapshot(
        _record(NET_A, "svc", "CNAME", "z.example."), _record(NET_B, "svc", "CNAME", "a.example.")
    )
    assert rrs(ask(snap, BOTH, "svc")) == [("svc.", "CNAME", 0, "a.example.")]
    assert rrs(ask(snap, CLI, "svc")) == [("svc.", "CNAME", 0, "z.example.")]


def test_host_names_answer_the_gateways_of_the_askers_networks():
    snap = _snapshot()
    assert rrs(ask(snap, CLI, "host.docker.internal")) == [
        ("host.docker.internal.", "A", 0, "10.1.0.1")
    ]
    assert rrs(ask(snap, CLI, "host.containers.internal", "AAAA")) == [
        ("host.containers.internal.", "AAAA", 0, "fd00:1::1")
    ]
    assert sorted(r[3] for r in rrs(ask(snap, BOTH, "host.docker.internal"))) == [
        "10.1.0.1",
        "10.2.0.1",
    ]
    assert ask(snap, OFF, "host.docker.internal") is None  # dnsd.host_names=off
    # A record of that name replaces the gateway on its network.
    snap = _snapshot(_record(NET_A, "host.docker.internal", "A", "192.0.2.7"))
    assert rrs(ask(snap, CLI, "host.docker.internal")) == [
        ("host.docker.internal.", "A", 0, "192.0.2.7")
    ]


def test_incremental_view_follows_record_changes():
    builder = ViewBuilder()
    first = _snapshot(_record(NET_A, "www", "CNAME", "db."))
    second = replace(
        first, revision=2, records=(*first.records, _record(NET_A, "db", "A", "10.1.0.9"))
    )
    packet = DNSRecord.question("www").pack()
    for snapshot, expected in ((first, 1), (second, 2), (first, 1)):
        decision = answer(packet, CLI.id, builder.build(snapshot), rng=random.Random(1))
        assert isinstance(decision, Reply)
        assert len(DNSRecord.parse(decision.data).rr) == expected


@pytest.mark.parametrize(
    ("rtype", "text", "canonical"),
    [
        ("A", " 10.0.0.5 ", "10.0.0.5"),
        ("aaaa", "FD00:0::5", "fd00::5"),
        ("CNAME", "DB.example", "DB.example."),
        ("SRV", "10  5 5432 db.example", "10 5 5432 db.example."),
        ("SRV", "0 0 0 .", "0 0 0 ."),
        ("TXT", 'bare "q\\"x" "\\065\\\\"', '"bare" "q\\"x" "A\\\\"'),
        ("TXT", '""', '""'),
    ],
)
def test_rdata_canonical_forms(rtype, text, canonical):
    parsed = parse_rdata(rtype, text)
    assert parsed.text == canonical
    assert parse_rdata(rtype, parsed.text) == parsed  # canonical text reads back the same


@pytest.mark.parametrize(
    ("rtype", "text", "fragment"),
    [
        ("SRV", "10 5 db.example.", "the port 'db.example.' is not a number"),
        ("SRV", "10 5 5432", "target missing"),
        ("SRV", "10 5 70000 x.", "70000"),
        ("SRV", "1 2 3 x. y.", "too many fields"),
        ("CNAME", ".", "not the root"),
        ("CNAME", "-x.example", "invalid DNS name"),
        ("TXT", '"a', "not closed"),
        ("TXT", '"a""b"', "space between"),
        ("TXT", "x" * 256, "at most 255"),
        ("TXT", "caf\u00e9", "ASCII"),
        ("TXT", "\\256", "not an octet"),
        ("TXT", "a\\", "backslash"),
        ("A", "fd00::1", "IPv4"),
        ("A", "  ", "needs a value"),
    ],
)
def test_rdata_refusals_name_the_value_and_say_what_is_wrong(rtype, text, fragment):
    with pytest.raises(InvalidArgument) as caught:
        parse_rdata(rtype, text)
    assert caught.value.field == "Value" and fragment in str(caught.value)
