"""Several hosts on one etcd: overlays everywhere, names and pings across hosts, liveness,
outages. Each test builds its own underlay, etcd and three hosts (tests/integration/cluster.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .cluster import HOST_TTL_S, new_cluster, require_etcd

pytestmark = pytest.mark.integration


def _networks(host) -> list[str]:
    return [n["Name"] for n in host.ok("GET", "/networks")]


def _address(sandbox: dict, network: str) -> str:
    return sandbox["Networks"][network]["IPAddress"]


def test_overlay_listed_everywhere_names_and_pings_cross_hosts(cluster):
    cluster.overlay("a", "ov", "10.50.0.0/24")
    for letter in "bc":
        host = cluster.hosts[letter]
        assert cluster.wait_for(lambda h=host: "ov" in _networks(h), 2), cluster.describe()
        shape = host.ok("GET", "/networks/ov")
        assert (shape["Scope"], shape["Driver"], shape["Attachable"]) == ("global", "overlay", True)
    web = cluster.sandbox("a", "web", "ov", "web")
    cli = cluster.sandbox("b", "cli", "ov", "cli")
    web_ip, cli_ip = _address(web, "ov"), _address(cli, "ov")
    assert web_ip != cli_ip
    assert cluster.wait_for(lambda: cluster.dig("b", "cli", "web"), 2) == [web_ip]
    assert cluster.dig("a", "web", "cli.ov") == [cli_ip]  # name.network
    ptr = cluster.dig("a", "web", f"{cli_ip.split('.')[-1]}.0.50.10.in-addr.arpa", "PTR")
    assert ptr == [f"{cluster.hosts['b'].sandbox_name('cli')}.ov."]
    for letter, src, dst in (("b", "cli", "web"), ("a", "web", "cli")):
        ping = cluster.hosts[letter].sandbox_exec(src, "ping", "-c1", "-W2", dst, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr + cluster.describe()
    # One VXLAN device (VNI from etcd, MTU 50 under the underlay's), its peer programmed
    # statically: FDB entry to B's underlay address, permanent neighbour entry.
    vx = cluster.hosts["a"].exec("ip", "-d", "-o", "link", "show", "type", "vxlan").stdout
    assert "vxlan id 4096" in vx and "mtu 1450" in vx and "proxy" in vx, vx
    device = vx.split(":")[1].strip().partition("@")[0]
    fdb = cluster.hosts["a"].exec("bridge", "fdb", "show", "dev", device).stdout
    assert f"dst {cluster.addresses['b']}" in fdb, fdb
    neigh = cluster.hosts["a"].exec("ip", "neigh", "show", "dev", device).stdout
    assert f"{cli_ip} lladdr" in neigh and "PERMANENT" in neigh, neigh


def test_fifty_concurrent_connects_across_hosts_get_distinct_addresses(cluster):
    cluster.overlay("a", "wide", "10.52.0.0/24")
    for letter in "bc":
        assert cluster.wait_for(lambda h=cluster.hosts[letter]: "wide" in _networks(h), 2)

    def one(i: int) -> str:
        letter = "abc"[i % 3]
        host = cluster.hosts[letter]
        host.sandbox(f"s{i}")
        host.connect("wide", f"s{i}")
        return _address(host.ok("GET", f"/sandboxes/{host.sandbox_name(f's{i}')}"), "wide")

    with ThreadPoolExecutor(12) as pool:
        addresses = list(pool.map(one, range(50)))
    assert len(set(addresses)) == 50, sorted(addresses)
    claims = cluster.keys("/global/ips/")
    assert len(claims) == 50


def test_bridge_network_stays_local(cluster):
    cluster.hosts["a"].network("local", IPAM={"Config": [{"Subnet": "10.60.0.0/24"}]})
    cluster.overlay("a", "ov", "10.50.0.0/24")
    cluster.sandbox("a", "priv", "local", "priv")
    cluster.hosts["a"].connect("ov", "priv", Aliases=["priv"])
    cluster.sandbox("b", "cli", "ov", "cli")
    assert "local" in _networks(cluster.hosts["a"])
    assert "local" not in _networks(cluster.hosts["b"])
    assert cluster.hosts["b"].api("GET", "/networks/local")[0] == 404
    assert cluster.wait_for(lambda: cluster.dig("b", "cli", "priv"), 2)  # its overlay name
    assert cluster.dig("b", "cli", "priv.local") == []  # never its bridge name


def test_killed_host_leaves_answers_after_ttl_and_returns_with_same_address(cluster):
    cluster.overlay("a", "ov", "10.50.0.0/24")
    cluster.sandbox("a", "web", "ov", "web")
    db = cluster.sandbox("b", "db", "ov", "db")
    db_ip = _address(db, "ov")
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "db"), 2) == [db_ip]
    cluster.hosts["b"].stop_daemon(signal.SIGKILL)
    killed = time.monotonic()
    assert cluster.dig("a", "web", "db") == [db_ip]  # the lease still runs
    assert cluster.wait_for(lambda: not cluster.dig("a", "web", "db"), HOST_TTL_S + 5)
    gone_after = time.monotonic() - killed
    assert gone_after <= HOST_TTL_S + 3, gone_after
    neigh = cluster.hosts["a"].exec("ip", "neigh", "show", db_ip).stdout
    assert "PERMANENT" not in neigh, neigh
    cluster.start("b")
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "db"), 3) == [db_ip], cluster.describe()
    again = cluster.hosts["b"].ok("GET", f"/sandboxes/{cluster.hosts['b'].sandbox_name('db')}")
    assert _address(again, "ov") == db_ip
    ping = cluster.hosts["a"].sandbox_exec("web", "ping", "-c1", "-W2", "db", check=False)
    assert ping.returncode == 0, ping.stdout + cluster.describe()


def test_etcd_outage_keeps_answers_fails_writes_fast_and_recovers(cluster):
    cluster.overlay("a", "ov", "10.50.0.0/24")
    web = cluster.sandbox("a", "web", "ov", "web")
    db = cluster.sandbox("b", "db", "ov", "db")
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "db"), 2)
    cluster.stop_member(cluster.members[0])
    assert cluster.dig("a", "web", "db") == [_address(db, "ov")]  # remote name
    assert cluster.dig("a", "web", "web") == [_address(web, "ov")]  # local name
    started = time.monotonic()
    status, body = cluster.hosts["a"].api(
        "POST", "/networks/create", {"Name": "late", "Driver": "bridge"}
    )
    took = time.monotonic() - started
    assert status == 503 and "etcd is unreachable" in body["message"], body
    assert took < 5, took
    assert "late" not in _networks(cluster.hosts["a"])
    cluster.start_member(cluster.members[0])
    cluster.wait_etcd()
    # The daemons resume their watch without a restart: a new connect on C resolves on A.
    host_c = cluster.hosts["c"]
    deadline = time.monotonic() + 10
    while True:  # C may still be reconnecting when etcd is back
        status, _ = host_c.api("POST", "/sandboxes", {"Name": host_c.sandbox_name("late")})
        if status == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    host_c.connect("ov", "late", Aliases=["late"])
    assert cluster.wait_for(lambda: cluster.dig("a", "web", "late"), 3), cluster.describe()


def test_two_overlays_are_isolated(cluster):
    cluster.overlay("a", "ov1", "10.50.0.0/24")
    cluster.overlay("a", "ov2", "10.51.0.0/24")
    one = cluster.sandbox("a", "one", "ov1", "one")
    two = cluster.sandbox("b", "two", "ov2", "two")
    peer = cluster.sandbox("b", "peer", "ov1", "peer")
    assert cluster.wait_for(lambda: cluster.dig("a", "one", "peer"), 2) == [_address(peer, "ov1")]
    assert cluster.dig("a", "one", "two") == []
    ping = cluster.hosts["a"].sandbox_exec(
        "one", "ping", "-c1", "-W1", _address(two, "ov2"), check=False
    )
    assert ping.returncode != 0, ping.stdout
    ok = cluster.hosts["a"].sandbox_exec("one", "ping", "-c1", "-W2", "peer", check=False)
    assert ok.returncode == 0, ok.stdout + cluster.describe()
    assert _address(one, "ov1") != _address(peer, "ov1")


def test_same_host_id_refused_and_unreachable_etcd_exits(cluster):
    twin = cluster.add_host("d", start=False)
    argv = twin.daemon_argv(*cluster.daemon_args("d"))
    argv[argv.index("--host-id") + 1] = "a"  # A is alive: its lease is renewed
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "another dnsd holds --host-id a" in proc.stderr
    argv = twin.daemon_argv(*cluster.daemon_args("d"))
    argv[argv.index("--store") + 1] = "etcd://10.231.0.99:2379"
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "etcd is unreachable" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 10


def test_three_member_etcd_survives_one_member_killed(tmp_path):
    require_etcd()
    c = new_cluster(tmp_path)
    try:
        c.start_etcd(members=3)
        for letter in "ab":
            c.add_host(letter)
        c.overlay("a", "ov", "10.50.0.0/24")
        c.sandbox("a", "web", "ov", "web")
        c.stop_member(c.members[0], signal.SIGKILL)  # the member both hosts try first
        db = c.sandbox("b", "db", "ov", "db")
        assert c.wait_for(lambda: c.dig("a", "web", "db"), 5) == [_address(db, "ov")], c.describe()
    finally:
        c.cleanup()
