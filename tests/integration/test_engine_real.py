"""The netcore engine on real Linux, driven through the daemon's API (issue 2)."""

from __future__ import annotations

import signal
import textwrap

import pytest

from .harness import HostNamespace, run
from .probes import ping

pytestmark = pytest.mark.integration


def address(host: HostNamespace, network: str, short: str) -> str:
    """A sandbox's IPv4 address on a network, from `GET /networks/{name}` (Docker's shape)."""
    net = host.ok("GET", f"/networks/{network}")
    for entry in net["Containers"].values():
        if entry["Name"] == host.sandbox_name(short):
            return entry["IPv4Address"].split("/")[0]
    raise AssertionError(f"{short} is not on {network}: {net['Containers']}")


def test_same_network_pings_other_network_cannot(daemon):
    daemon.network("neta", IPAM={"Config": [{"Subnet": "10.71.0.0/24"}]})
    daemon.network("netb", IPAM={"Config": [{"Subnet": "10.72.0.0/24"}]})
    daemon.sandbox("a1", "neta")
    daemon.sandbox("a2", "neta")
    daemon.sandbox("b1", "netb")
    a2 = address(daemon, "neta", "a2")
    assert a2 == "10.71.0.3"
    assert ping(daemon, "a1", a2)
    assert ping(daemon, "a1", "10.71.0.1")  # the gateway
    assert not ping(daemon, "b1", a2), "isolation between networks failed"
    assert not ping(daemon, "a1", address(daemon, "netb", "b1"))


def test_icc_off_blocks_traffic_inside_the_network(daemon):
    daemon.network(
        "quiet",
        IPAM={"Config": [{"Subnet": "10.73.0.0/24"}]},
        Options={"com.docker.network.bridge.enable_icc": "false"},
    )
    daemon.sandbox("q1", "quiet")
    daemon.sandbox("q2", "quiet")
    assert not ping(daemon, "q1", address(daemon, "quiet", "q2"))
    assert ping(daemon, "q1", "10.73.0.1")


def _outside(host: HostNamespace) -> str:
    """A namespace one hop behind the host (203.0.113.0/24): the "internet" of the test."""
    name = host.sandbox_name("outside")
    run("ip", "netns", "add", name)
    run(
        "ip",
        "link",
        "add",
        f"{host.prefix}o",
        "netns",
        host.name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        name,
    )
    host.exec("ip", "addr", "add", "203.0.113.1/24", "dev", f"{host.prefix}o")
    host.exec("ip", "link", "set", f"{host.prefix}o", "up")
    run("ip", "-n", name, "addr", "add", "203.0.113.2/24", "dev", "eth0")
    run("ip", "-n", name, "link", "set", "eth0", "up")
    run("ip", "-n", name, "link", "set", "lo", "up")
    return name


UDP_ECHO_SOURCE = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 9999)); s.settimeout(10)
    data, peer = s.recvfrom(100); s.sendto(peer[0].encode(), peer)
    """
)


def test_masquerade_hides_the_sandbox_address_from_outside(daemon):
    outside = _outside(daemon)
    daemon.network("natnet", IPAM={"Config": [{"Subnet": "10.74.0.0/24"}]})
    daemon.sandbox("n1", "natnet")
    import subprocess
    import sys

    server = subprocess.Popen(
        ["ip", "netns", "exec", outside, sys.executable, "-c", UDP_ECHO_SOURCE],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = (
            "import socket,time\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\n"
            "for _ in range(20):\n"
            "  s.sendto(b'x',('203.0.113.2',9999))\n"
            "  try: print(s.recvfrom(100)[0].decode()); break\n"
            "  except OSError: time.sleep(0.2)\n"
        )
        seen = daemon.sandbox_exec("n1", sys.executable, "-c", client).stdout.strip()
    finally:
        server.kill()
        server.wait()
    assert seen == "203.0.113.1", f"outside saw {seen!r}, not the host's address"


def test_internal_network_has_no_route_out(daemon):
    _outside(daemon)
    daemon.network("inner", Internal=True, IPAM={"Config": [{"Subnet": "10.75.0.0/24"}]})
    daemon.sandbox("i1", "inner")
    daemon.sandbox("i2", "inner")
    routes = daemon.sandbox_exec("i1", "ip", "route").stdout
    assert "default" not in routes
    assert not ping(daemon, "i1", "203.0.113.2")
    assert ping(daemon, "i1", address(daemon, "inner", "i2"))


TCP_SERVER_SOURCE = textwrap.dedent(
    """
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 80)); s.listen(16); s.settimeout(30)
    while True:
        c, peer = s.accept(); c.sendall(b"hello from web"); c.close()
    """
)

TCP_CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n"
    "print(c.recv(100).decode())\n"
)


def test_published_port_from_host_addresses_and_from_another_sandbox(daemon):
    import subprocess
    import sys

    daemon.network("pub", IPAM={"Config": [{"Subnet": "10.76.0.0/24"}]})
    daemon.sandbox("web", "pub", PortBindings={"80/tcp": [{"HostPort": "8080"}]})
    daemon.sandbox("peer", "pub")
    daemon.network("other", IPAM={"Config": [{"Subnet": "10.77.0.0/24"}]})
    daemon.sandbox("far", "other")
    server = subprocess.Popen(
        ["ip", "netns", "exec", daemon.sandbox_name("web"), sys.executable, "-c", TCP_SERVER_SOURCE]
    )
    try:
        for _ in range(50):
            probe = daemon.exec(sys.executable, "-c", TCP_CLIENT, "10.76.0.2", "80", check=False)
            if probe.returncode == 0:
                break
        for target in ("127.0.0.1", "10.76.0.1", "10.77.0.1"):
            out = daemon.exec(sys.executable, "-c", TCP_CLIENT, target, "8080").stdout
            assert "hello from web" in out, target
        for short in ("peer", "far"):
            out = daemon.sandbox_exec(short, sys.executable, "-c", TCP_CLIENT, "10.76.0.1", "8080")
            assert "hello from web" in out.stdout, short
        # hairpin: the sandbox reaches its own published port through the host address
        out = daemon.sandbox_exec("web", sys.executable, "-c", TCP_CLIENT, "10.76.0.1", "8080")
        assert "hello from web" in out.stdout
    finally:
        server.kill()
        server.wait()


def _kernel_state(host: HostNamespace) -> tuple[list[str], list[str], str]:
    """Links, addresses and our rules (not link states: an empty bridge goes from UNKNOWN to
    DOWN on its own time)."""
    links = sorted(line.split()[0] for line in host.exec("ip", "-br", "link").stdout.splitlines())
    addrs = sorted(
        f"{line.split()[0]} {' '.join(line.split()[2:])}"
        for line in host.exec("ip", "-br", "addr").stdout.splitlines()
    )
    rules = host.exec("nft", "list", "table", "inet", "dnsd", check=False).stdout
    return links, addrs, rules


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_keeps_networks_addresses_and_rules(daemon, sig):
    daemon.network("keep", IPAM={"Config": [{"Subnet": "10.78.0.0/24"}]})
    daemon.sandbox("k1", "keep")
    daemon.sandbox("k2", "keep", PortBindings={"80/tcp": [{"HostPort": "8081"}]})
    before_net = daemon.ok("GET", "/networks/keep")
    before = _kernel_state(daemon)
    redirect = daemon.sandbox_exec("k1", "nft", "list", "table", "ip", "dnsd-dns").stdout
    daemon.stop_daemon(sig)
    assert ping(daemon, "k1", "10.78.0.3"), "sandboxes lose connectivity while the daemon is down"
    daemon.start_daemon()
    after_net = daemon.ok("GET", "/networks/keep")
    assert after_net["Containers"] == before_net["Containers"]
    assert _kernel_state(daemon) == before
    # the DNS listener came back on the same port: clients' conntrack entries stay valid
    assert daemon.sandbox_exec("k1", "nft", "list", "table", "ip", "dnsd-dns").stdout == redirect
    daemon.sandbox("k3", "keep")
    assert address(daemon, "keep", "k3") == "10.78.0.4", "an address was handed out twice"


def test_disconnect_and_remove_leave_nothing_behind(daemon):
    baseline = _kernel_state(daemon)
    daemon.network("tmpnet", IPAM={"Config": [{"Subnet": "10.79.0.0/24"}]})
    daemon.sandbox("t1", "tmpnet", PortBindings={"80/tcp": [{"HostPort": "8082"}]})
    daemon.sandbox("t2", "tmpnet")
    daemon.ok("POST", "/networks/tmpnet/disconnect", {"Container": daemon.sandbox_name("t2")})
    assert daemon.sandbox_exec("t2", "ip", "-br", "link").stdout.count("eth0") == 0
    daemon.ok("DELETE", f"/sandboxes/{daemon.sandbox_name('t1')}")
    daemon.ok("DELETE", f"/sandboxes/{daemon.sandbox_name('t2')}")
    daemon.ok("DELETE", "/networks/tmpnet")
    assert _kernel_state(daemon) == baseline
    netns = run("ip", "netns", "list").stdout
    assert daemon.sandbox_name("t1") not in netns and daemon.sandbox_name("t2") not in netns
