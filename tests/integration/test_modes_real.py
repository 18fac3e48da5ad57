"""Dual stack, sandbox modes, adopted namespaces and the watched host resolv.conf, for real."""

from __future__ import annotations

import subprocess
import time

import pytest

from .harness import run
from .probes import dig_short

pytestmark = pytest.mark.integration


def test_dual_stack_addresses_aaaa_and_ip6_ptr(daemon):
    h = daemon
    h.network(
        "net6",
        EnableIPv6=True,
        IPAM={"Config": [{"Subnet": "10.91.0.0/24"}, {"Subnet": "fd6e:a1b2:c3d4:1::/64"}]},
    )
    h.sandbox("v6a", "net6")
    h.sandbox("v6b", "net6")
    assert dig_short(h, "v6a", h.sandbox_name("v6b"), "A") == ["10.91.0.3"]
    assert dig_short(h, "v6a", h.sandbox_name("v6b"), "AAAA") == ["fd6e:a1b2:c3d4:1::3"]
    assert dig_short(h, "v6a", "-x", "fd6e:a1b2:c3d4:1::3") == [h.sandbox_name("v6b") + ".net6."]
    ping6 = h.sandbox_exec("v6a", "ping", "-6", "-c1", "-W2", "fd6e:a1b2:c3d4:1::3", check=False)
    assert ping6.returncode == 0, ping6.stdout + ping6.stderr
    hosts = h.sandbox_exec("v6a", "cat", "/etc/hosts").stdout
    assert "fd6e:a1b2:c3d4:1::2" in hosts
    gateway6 = h.sandbox_exec("v6a", "ping", "-6", "-c1", "-W2", "fd6e:a1b2:c3d4:1::1", check=False)
    assert gateway6.returncode == 0, gateway6.stdout + gateway6.stderr
    # The bridge side of each veth has no IPv6 of its own (the bridge holds the gateway): no
    # per-port routes for every later port change to walk (issue 13).
    ports = h.exec("sh", "-c", "cat /proc/sys/net/ipv6/conf/veth*/disable_ipv6").stdout.split()
    assert ports == ["1", "1"]
    assert "veth" not in h.exec("ip", "-6", "route", "show", "table", "all").stdout


def test_container_mode_shares_the_namespace_and_both_names_resolve(daemon):
    h = daemon
    h.network("shared", IPAM={"Config": [{"Subnet": "10.92.0.0/24"}]})
    h.sandbox("app", "shared")
    h.sandbox("side", None, NetworkMode=f"container:{h.sandbox_name('app')}")
    h.sandbox("peer", "shared")
    assert dig_short(h, "peer", h.sandbox_name("side")) == ["10.92.0.2"]
    assert dig_short(h, "peer", h.sandbox_name("app")) == ["10.92.0.2"]
    side = h.ok("GET", f"/sandboxes/{h.sandbox_name('side')}")
    assert "app" in str(side)  # inspect says whose namespace it shares


def test_none_and_host_modes(daemon):
    h = daemon
    h.sandbox("lonely", None, NetworkMode="none")
    links = h.sandbox_exec("lonely", "ip", "-br", "link").stdout
    assert links.split()[0] == "lo" and "eth0" not in links
    resolv = h.sandbox_exec("lonely", "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.11" not in resolv
    status, _ = h.api(
        "POST", "/sandboxes", {"Name": h.sandbox_name("hosty"), "NetworkMode": "host"}
    )
    assert status == 201
    # host mode leaves the daemon's namespace untouched: no new link appeared there
    assert "eth0" not in h.exec("ip", "-br", "link").stdout


def test_adopts_a_process_namespace_and_cleans_up_when_it_exits(daemon):
    h = daemon
    h.network("adopt", IPAM={"Config": [{"Subnet": "10.93.0.0/24"}]})
    proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        path = f"/proc/{proc.pid}/ns/net"
        for _ in range(50):  # unshare has switched namespaces once the link differs
            if run("readlink", path).stdout != run("readlink", "/proc/self/ns/net").stdout:
                break
            time.sleep(0.02)
        h.ok(
            "POST",
            "/sandboxes",
            {"Name": h.sandbox_name("proc"), "NetNS": path, "NetworkMode": "adopt"},
        )
        out = run(
            "nsenter",
            f"--net={path}",
            "dig",
            "+short",
            "+tries=1",
            "@127.0.0.11",
            h.sandbox_name("proc"),
        ).stdout.split()
        assert out == ["10.93.0.2"]
        info = h.ok("GET", f"/sandboxes/{h.sandbox_name('proc')}")
        assert str(h.state_dir) in str(info)  # its files live in the state directory
    finally:
        proc.kill()
        proc.wait()


def test_host_resolv_conf_change_reaches_running_sandboxes(daemon):
    h = daemon
    h.network("vpn", IPAM={"Config": [{"Subnet": "10.94.0.0/24"}]})
    h.sandbox("road", "vpn")
    assert dig_short(h, "road", "ext.anchors.test") == ["198.51.100.200"]
    h.start_upstream("198.51.100.60", {"ext.anchors.test": "198.51.100.66"})
    (h.tmp / "resolv.conf").write_text("nameserver 198.51.100.60\nsearch corp.test\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if dig_short(h, "road", "ext.anchors.test") == ["198.51.100.66"]:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the sandbox still forwards to the old upstream")
    assert "search corp.test" in h.sandbox_exec("road", "cat", "/etc/resolv.conf").stdout


def test_ttl_is_a_network_setting(daemon):
    h = daemon
    h.network("ttl0", IPAM={"Config": [{"Subnet": "10.95.0.0/24"}]})
    h.network(
        "ttl30", IPAM={"Config": [{"Subnet": "10.96.0.0/24"}]}, Options={"dnsd.dns_ttl": "30"}
    )
    h.sandbox("t0", "ttl0")
    h.sandbox("t30", "ttl30")
    out0 = h.sandbox_exec("t0", "dig", "+noall", "+answer", "@127.0.0.11", h.sandbox_name("t0"))
    out30 = h.sandbox_exec("t30", "dig", "+noall", "+answer", "@127.0.0.11", h.sandbox_name("t30"))
    assert out0.stdout.split()[1] == "0"
    assert out30.stdout.split()[1] == "30"


def test_mtu_option_reaches_bridge_and_sandbox(daemon):
    h = daemon
    net = h.network(
        "small",
        IPAM={"Config": [{"Subnet": "10.97.0.0/24"}]},
        Options={"com.docker.network.driver.mtu": "1400"},
    )
    h.sandbox("m1", "small")
    bridge = h.exec("ip", "-o", "link", "show", f"br-{net['Id'][:12]}").stdout
    assert "mtu 1400" in bridge
    assert "mtu 1400" in h.sandbox_exec("m1", "ip", "-o", "link", "show", "eth0").stdout
