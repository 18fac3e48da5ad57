"""The embedded DNS server inside real sandboxes: dig, getent and ping (issue 3)."""

from __future__ import annotations

import sys
import time

import pytest

from .harness import UPSTREAM, HostNamespace
from .probes import dig, dig_short

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(daemon):
    """netA: web1, web2 (alias web), db (alias database, hostname dbhost), cli; netB: other
    (alias web), multi on both; netI internal: int1, int2."""
    h = daemon
    h.network("netA", IPAM={"Config": [{"Subnet": "10.81.0.0/24"}]})
    h.network("netB", IPAM={"Config": [{"Subnet": "10.82.0.0/24"}]})
    h.network("netI", Internal=True, IPAM={"Config": [{"Subnet": "10.83.0.0/24"}]})
    for sb in ("web1", "web2"):
        h.sandbox(sb)
        h.connect("netA", sb, Aliases=["web"])
    h.sandbox("db", Hostname="dbhost")
    h.connect("netA", "db", Aliases=["database"])
    h.sandbox("cli", "netA")
    h.sandbox("other")
    h.connect("netB", "other", Aliases=["web"])
    h.sandbox("multi", "netA")
    h.connect("netB", "multi", Aliases=["mb"])
    h.sandbox("int1", "netI")
    h.sandbox("int2", "netI")
    return h


def name(h: HostNamespace, sb: str) -> str:
    return h.sandbox_name(sb)


def test_names_aliases_ids_and_network_forms(lab):
    h = lab
    web1 = h.ok("GET", f"/sandboxes/{name(h, 'web1')}")
    assert dig_short(h, "cli", name(h, "web1")) == ["10.81.0.2"]
    assert dig_short(h, "cli", name(h, "web1").upper()) == ["10.81.0.2"]
    assert dig_short(h, "cli", name(h, "web1") + ".netA") == ["10.81.0.2"]
    assert dig_short(h, "cli", "web") == ["10.81.0.2", "10.81.0.3"]  # only netA's, not netB's
    assert dig_short(h, "cli", "database") == ["10.81.0.4"]
    assert dig_short(h, "cli", "dbhost") == ["10.81.0.4"]
    assert dig_short(h, "cli", web1["Id"][:12]) == ["10.81.0.2"]
    assert dig_short(h, "cli", "database.netA.") == ["10.81.0.4"]


def test_ptr_nodata_and_isolation(lab):
    h = lab
    assert dig_short(h, "cli", "-x", "10.81.0.4") == [f"{name(h, 'db')}.netA."]
    out = dig(h, "cli", name(h, "web1"), "AAAA")
    assert "status: NOERROR" in out and "ANSWER: 0" in out
    assert not h.upstream_saw(UPSTREAM, name(h, "web1"))
    out = dig(h, "cli", name(h, "web1"), "MX")
    assert "status: NOERROR" in out and "ANSWER: 0" in out
    # another network's names and addresses: forwarded like unknown names, never answered
    out = dig(h, "cli", name(h, "other"))
    assert "status: NXDOMAIN" in out
    assert h.upstream_saw(UPSTREAM, name(h, "other"))
    assert "status: NXDOMAIN" in dig(h, "cli", "-q", "mb")  # bare "mb" is a record type to dig
    assert "status: NXDOMAIN" in dig(h, "cli", "-x", "10.82.0.2")
    # a sandbox on both networks sees the union
    assert dig_short(h, "multi", "web") == ["10.81.0.2", "10.81.0.3", "10.82.0.2"]
    assert dig_short(h, "other", "-q", "mb") == ["10.82.0.3"]


def test_forwarding_and_resolv_conf(lab):
    h = lab
    assert dig_short(h, "cli", "ext.anchors.test") == ["198.51.100.200"]
    assert h.upstream_saw(UPSTREAM, "ext.anchors.test")
    # plain dig and getent go through the written resolv.conf (ip netns exec bind-mounts it)
    resolv = h.sandbox_exec("cli", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
    assert "search anchors.test" in resolv
    assert dig_short(h, "cli", "www.example.test", server="") == ["198.51.100.201"]
    assert h.sandbox_exec("cli", "getent", "hosts", name(h, "db")).stdout.split()[0] == "10.81.0.4"
    assert h.sandbox_exec("cli", "ping", "-c1", "-W2", "database").returncode == 0
    assert h.sandbox_exec("cli", "getent", "hosts", "ext.anchors.test").stdout.startswith(
        "198.51.100.200"
    )
    hosts = h.sandbox_exec("db", "cat", "/etc/hosts").stdout
    assert "10.81.0.4\tdbhost" in hosts


def test_tcp_and_truncation(daemon):
    h = daemon
    h.network("big", IPAM={"Config": [{"Subnet": "10.84.0.0/24"}]})
    h.sandbox("asker", "big")
    for i in range(40):
        h.sandbox(f"b{i}")
        h.connect("big", f"b{i}", Aliases=["many"])
    out = dig(h, "asker", "many", "+noedns", "+ignore")
    assert " tc " in out.split("flags:")[1].split(";")[0] + " "
    udp_answers = out.count("IN\tA\t")
    assert 20 <= udp_answers < 40
    out = dig(h, "asker", "many", "+tcp")
    assert out.count("IN\tA\t") == 40
    out = dig(h, "asker", "many", "+bufsize=4096")
    assert out.count("IN\tA\t") == 40 and " tc " not in out


def test_internal_network_never_forwards(lab):
    h = lab
    assert dig_short(h, "int1", name(h, "int2")) == ["10.83.0.3"]
    started = time.monotonic()
    out = dig(h, "int1", "ext.anchors.test")
    assert "status: SERVFAIL" in out
    assert time.monotonic() - started < 2
    assert not any(
        name(h, "int1") in line
        for line in (h.tmp / f"upstream-{UPSTREAM}.log").read_text().splitlines()
        if "ext.anchors.test" in line and "10.83." in line
    )


def test_dead_upstream_gives_servfail_within_the_deadline(daemon):
    h = daemon
    h.network("lonely", IPAM={"Config": [{"Subnet": "10.85.0.0/24"}]})
    h.exec("ip", "route", "add", "blackhole", "192.0.2.99/32")
    h.exec("ip", "addr", "add", "198.51.100.54/32", "dev", "lo")  # nothing listens there
    h.sandbox("dead", "lonely", Dns=["192.0.2.99"])
    h.sandbox("refused", "lonely", Dns=["198.51.100.54"])  # port unreachable
    started = time.monotonic()
    out = dig(h, "dead", "ext.anchors.test")
    took = time.monotonic() - started
    assert "status: SERVFAIL" in out, out
    assert 4.0 <= took < 6.5, took
    started = time.monotonic()
    out = dig(h, "refused", "ext.anchors.test")
    assert "status: SERVFAIL" in out and time.monotonic() - started < 2
    # local names still answer at once
    assert dig_short(h, "dead", name(h, "refused")) == ["10.85.0.3"]


def test_sandbox_keeps_its_own_port_53_and_survives_a_storm(daemon):
    h = daemon
    h.network("storm", IPAM={"Config": [{"Subnet": "10.86.0.0/24"}]})
    h.sandbox("s1", "storm")
    code = (
        "import socket\n"
        "for addr in ('127.0.0.11', '0.0.0.0'):\n"
        "  for t in (socket.SOCK_DGRAM, socket.SOCK_STREAM):\n"
        "    s=socket.socket(socket.AF_INET,t)\n"
        "    s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "    s.bind((addr,53)); s.close()\n"
        "print('ok')\n"
    )
    assert h.sandbox_exec("s1", sys.executable, "-c", code).stdout.strip() == "ok"
    storm = (
        "import socket,random,os\n"
        "r=random.Random(7); s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "for i in range(3000):\n"
        "  n=r.randrange(0,300); s.sendto(os.urandom(n),('127.0.0.11',53))\n"
        "print('sent')\n"
    )
    assert h.sandbox_exec("s1", sys.executable, "-c", storm).stdout.strip() == "sent"
    assert dig_short(h, "s1", name(h, "s1")) == ["10.86.0.2"]


def test_listener_is_ready_when_connect_returns(daemon):
    h = daemon
    h.network("fast", IPAM={"Config": [{"Subnet": "10.87.0.0/24"}]})
    h.sandbox("f1")
    h.connect("fast", "f1")
    # the very first query after the API call returns must be answered
    assert dig_short(h, "f1", name(h, "f1")) == ["10.87.0.2"]


def test_udp_answers_through_port_53_without_conntrack_tcp_through_dnat(daemon):
    # Issue 13: UDP to 127.0.0.11:53 is rewritten statelessly to the listener's port (no
    # conntrack entry per query) and its replies' source port back to 53: dig checks that the
    # answer comes from 127.0.0.11:53. TCP keeps its DNAT. (The listener's own port is not
    # for clients: its replies leave as from port 53.)
    h = daemon
    h.network("direct", IPAM={"Config": [{"Subnet": "10.88.0.0/24"}]})
    h.sandbox("d1", "direct")
    table = h.sandbox_exec("d1", "nft", "list", "table", "ip", "dnsd-dns").stdout
    udp_port = int(table.split("udp dport set ")[1].split()[0])
    assert "udp dport 53 dnat" not in table and f"udp sport {udp_port} notrack" in table
    assert dig_short(h, "d1", name(h, "d1")) == ["10.88.0.2"]
    assert dig_short(h, "d1", "+tcp", name(h, "d1")) == ["10.88.0.2"]
    out = dig(h, "d1", "+tries=3", name(h, "d1"))
    assert "SERVER: 127.0.0.11#53" in out and "status: NOERROR" in out
