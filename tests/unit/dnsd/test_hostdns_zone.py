"""The host's zone: what `--host-dns` answers, through the same answer core as the sandboxes."""

from __future__ import annotations

import random

import dnslib
import pytest

from dnsd.core import answer
from dnsd.core.answer import Forward, Reply
from dnsd.hostdns.zone import HOST_ASKER, HostView, build_host_view, refusal
from tests.support.dns import query, rcode, reply_addresses
from tests.support.snapshots import endpoint, network, sandbox, snapshot

APP = network("a" * 64, "app", "br-app", "10.1.0.0/24", v6="fd00:1::/64")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24")
WEB = sandbox("1" * 64, "web", hostname="webhost")
API = sandbox("2" * 64, "api")
SIDE = sandbox("3" * 64, "side", mode="container", joined_to=WEB.id)


def _view(domain: str | None = None) -> HostView:
    return build_host_view(
        snapshot(
            [APP, DB],
            [WEB, API, SIDE],
            [
                endpoint("e1" * 32, APP, WEB.id, 2, v6_host=2, aliases=["www"]),
                endpoint("e2" * 32, DB, WEB.id, 2, aliases=["svc"]),
                endpoint("e3" * 32, APP, API.id, 3, aliases=["svc"]),
                endpoint("e4" * 32, DB, API.id, 3, aliases=["svc"]),
            ],
        ),
        domain,
    )


def ask(host: HostView, name: str, qtype: str = "A") -> bytes:
    """The bytes the host listener sends back (a refusal where the core says Forward)."""
    decision = answer(query(name, qtype), HOST_ASKER, host.view, rng=random.Random(1))
    if isinstance(decision, Forward):
        return refusal(decision.query, host)[0]
    assert isinstance(decision, Reply)
    return decision.data


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("web.app", ["10.1.0.2"]),
        ("WEB.App.", ["10.1.0.2"]),
        ("webhost.app", ["10.1.0.2"]),
        ("www.app", ["10.1.0.2"]),
        ("111111111111.app", ["10.1.0.2"]),
        ("web.db", ["10.2.0.2"]),
        ("side.app", ["10.1.0.2"]),  # a container-mode sandbox answers with its owner's address
        ("svc.db", ["10.2.0.2", "10.2.0.3"]),  # Docker: an alias may be shared on a network
        ("web", ["10.1.0.2", "10.2.0.2"]),  # one sandbox on two networks: unambiguous
        ("api", ["10.1.0.3", "10.2.0.3"]),
    ],
)
def test_names_of_every_network(name, addresses):
    got = ask(_view(), name)
    assert rcode(got) == "NOERROR" and reply_addresses(got) == addresses


def test_aaaa_and_nodata():
    assert reply_addresses(ask(_view(), "web.app", "AAAA")) == ["fd00:1::2"]
    nodata = ask(_view(), "web.db", "AAAA")
    assert rcode(nodata) == "NOERROR" and reply_addresses(nodata) == []


def test_ptr_of_sandbox_addresses():
    ptr = dnslib.DNSRecord.parse(ask(_view(), "2.0.1.10.in-addr.arpa", "PTR"))
    assert [str(rr.rdata) for rr in ptr.rr] == ["web.app."]
    assert rcode(ask(_view(), "9.9.9.10.in-addr.arpa", "PTR")) == "REFUSED"


def test_domain_adds_qualified_names_and_keeps_the_short_ones():
    host = _view("Corp.Example.")
    assert reply_addresses(ask(host, "web.app.corp.example")) == ["10.1.0.2"]
    assert reply_addresses(ask(host, "web.app")) == ["10.1.0.2"]
    ptr = dnslib.DNSRecord.parse(ask(host, "3.0.2.10.in-addr.arpa", "PTR"))
    assert [str(rr.rdata) for rr in ptr.rr] == ["api.db.corp.example."]
    assert rcode(ask(host, "nobody.app.corp.example")) == "NXDOMAIN"
    assert rcode(ask(_view(), "web.app.corp.example")) == "REFUSED"


def test_ambiguous_bare_label_is_nxdomain_and_says_so():
    host = _view()
    decision = answer(query("svc"), HOST_ASKER, host.view, rng=random.Random(1))
    assert isinstance(decision, Forward)  # not in the zone at all
    data, ambiguous = refusal(decision.query, host)
    assert ambiguous and rcode(data) == "NXDOMAIN"
    assert reply_addresses(ask(host, "svc.app")) == ["10.1.0.3"]  # qualified still works


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.com", "REFUSED"),
        ("nobody", "REFUSED"),
        ("nobody.app", "NXDOMAIN"),  # under a network we serve: authoritative no
        ("a.b.app", "NXDOMAIN"),
        ("app", "NXDOMAIN"),
        ("xapp", "REFUSED"),
        ("web.app.evil.test", "REFUSED"),
    ],
)
def test_everything_else_is_refused_or_nxdomain(name, expected):
    assert rcode(ask(_view(), name)) == expected


def test_a_removed_sandbox_stops_answering_in_the_next_view():
    gone = build_host_view(
        snapshot([APP], [API], [endpoint("e3" * 32, APP, API.id, 3)], revision=2)
    )
    assert rcode(ask(gone, "web.app")) == "NXDOMAIN"
    assert reply_addresses(ask(gone, "api.app")) == ["10.1.0.3"]


def test_empty_registry_refuses_everything():
    host = build_host_view(snapshot([], [], []))
    assert rcode(ask(host, "web.app")) == "REFUSED"
