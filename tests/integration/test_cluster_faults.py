"""Cluster faults that leave no trace on the wire: a watch connection that dies silently (etcd
loses the connection while the network between it and a host is cut), and a host restarted
after another one took its address."""

from __future__ import annotations

import signal
import time

import pytest

from .cluster import HOST_TTL_S

pytestmark = pytest.mark.integration

CUT_TABLE = "inet dnsdtestcut"


def _address(sandbox: dict, network: str) -> str:
    return sandbox["Networks"][network]["IPAddress"]


def _sandbox_veths(host) -> list[str]:
    """The host's veths but its underlay link (eth1)."""
    out = host.exec("ip", "-o", "link", "show", "type", "veth").stdout
    names = [line.split(":")[1].strip().partition("@")[0] for line in out.splitlines()]
    return [n for n in names if n != "eth1"]


def _full_log(host) -> str:
    return (host.tmp / "daemon.log").read_text(errors="replace")


def _cut(cluster, letter: str) -> None:
    """Drop everything between the etcd namespace and one host, then make etcd forget its
    connections to it (its resets are dropped too): what a power-cycled etcd host or a
    forgetful middlebox leaves behind. Traffic between the hosts is bridged, untouched."""
    addr = cluster.addresses[letter]
    cluster.ul("nft", "add", "table", *CUT_TABLE.split())
    for chain, hook, match in (("in", "input", "saddr"), ("out", "output", "daddr")):
        spec = f"{{ type filter hook {hook} priority 0; }}"
        cluster.ul("nft", "add", "chain", *CUT_TABLE.split(), chain, spec)
        cluster.ul("nft", "add", "rule", *CUT_TABLE.split(), chain, "ip", match, addr, "drop")
    cluster.ul("ss", "-K", "-t", "dst", addr)


def _heal(cluster) -> None:
    cluster.ul("nft", "delete", "table", *CUT_TABLE.split())


def test_silent_watch_is_noticed_and_resumed_after_a_partition(cluster):
    cluster.overlay("a", "ov", "10.58.0.0/24")
    web = cluster.sandbox("a", "web", "ov", "web")
    db = cluster.sandbox("b", "db", "ov", "db")
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "db"), 2) == [_address(db, "ov")]
    host_a = cluster.hosts["a"]
    lost_before = _full_log(host_a).count("etcd watch lost")
    _cut(cluster, "a")
    cut_at = time.monotonic()
    try:
        late = cluster.sandbox("b", "late", "ov", "late")  # B still reaches etcd
        # A notices its silent watch (progress requests unanswered) within a few seconds...
        noticed = cluster.wait_for(
            lambda: _full_log(host_a).count("etcd watch lost") > lost_before, 10
        )
        detected_after = time.monotonic() - cut_at
        assert noticed, cluster.describe()
        assert detected_after < 8, detected_after
        # ...and keeps answering from its last view meanwhile.
        assert cluster.dig("a", "web", "db") == [_address(db, "ov")]
        assert cluster.dig("a", "web", "web") == [_address(web, "ov")]
        assert cluster.dig("a", "web", "late") == []
    finally:
        _heal(cluster)
    healed_at = time.monotonic()
    # What changed during the cut arrives once it heals.
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "late"), 10) == [
        _address(late, "ov")
    ], cluster.describe()
    caught_up_after = time.monotonic() - healed_at
    # A's lease ran out during the cut (TTL 3 s): it re-publishes web, B sees it again.
    assert cluster.wait_for(lambda: cluster.dig("b", "db", "web"), 10), cluster.describe()
    print(f"silent watch noticed after {detected_after:.1f} s; caught up {caught_up_after:.1f} s")


def test_restarted_host_whose_address_was_taken_drops_the_endpoint_and_its_veth(cluster):
    cluster.overlay("a", "ov", "10.59.0.0/24")
    cluster.sandbox("a", "web", "ov", "web")
    db = cluster.sandbox("b", "db", "ov", "db")
    taken = _address(db, "ov")
    host_b = cluster.hosts["b"]
    assert len(_sandbox_veths(host_b)) == 1  # db's
    host_b.stop_daemon(signal.SIGKILL)
    assert cluster.wait_for(lambda: not cluster.dig("a", "web", "db"), HOST_TTL_S + 5)
    # A takes B's address while B is down.
    cluster.hosts["a"].sandbox("thief")
    cluster.hosts["a"].connect("ov", "thief", IPAMConfig={"IPv4Address": taken}, Aliases=["t"])
    cluster.start("b")
    log = _full_log(host_b)
    assert f"address {taken} of endpoint" in log and "endpoint dropped" in log, log[-3000:]
    assert "veth" in log and "removed" in log, log[-3000:]
    assert _sandbox_veths(host_b) == []
    inside = host_b.sandbox_exec("db", "ip", "-o", "-4", "addr", "show").stdout
    assert taken not in inside, inside
    shape = host_b.ok("GET", f"/sandboxes/{host_b.sandbox_name('db')}")
    assert "ov" not in shape["Networks"], shape
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "t"), 3) == [taken]
    assert cluster.dig("a", "web", "db") == []
