"""`--host-dns gateways`: the daemon starts with no user network; a network created afterwards
answers on its gateway (UDP and TCP, IPv4 and IPv6) as soon as the API returns, and its
listener goes with it (nothing answers, the port is free) and comes back with it."""

from __future__ import annotations

import os
import time

import pytest

from .harness import HostNamespace
from .test_hostdns_real import _start_with_env, host_dig, host_short

pytestmark = pytest.mark.integration

SUBNET, GATEWAY = "10.97.0.0/24", "10.97.0.1"
SUBNET6, GATEWAY6 = "fd97:5eed:0:1::/64", "fd97:5eed:0:1::1"


@pytest.fixture
def gateways(host, tmp_path) -> HostNamespace:
    host.start_upstream()
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    _start_with_env(host, env, "--host-dns", "gateways")
    return host


def _listening(h: HostNamespace, address: str) -> list[str]:
    """The UDP and TCP sockets bound to `address` port 53 in the daemon's namespace."""
    lines = []
    for flag in ("-lnu", "-lnt"):
        out = h.exec("ss", "-H", flag, "sport", "= :53").stdout
        lines += [line for line in out.splitlines() if address in line]
    return lines


def test_gateway_of_a_network_created_after_start_answers_and_goes_with_it(gateways):
    h = gateways
    assert _listening(h, GATEWAY) == []  # no user network yet
    bridge = h.ok("GET", "/networks/bridge")["IPAM"]["Config"][0]["Gateway"]
    default = f"{bridge}:53"
    assert h.ok("GET", "/info")["Dnsd"]["HostDns"] == [default]
    for round_ in range(2):  # created, removed, created again
        h.network("app", IPAM={"Config": [{"Subnet": SUBNET}]})
        h.sandbox("web", "app")
        connected = time.monotonic()
        web = f"{h.sandbox_name('web')}.app"
        # one try with a one-second budget, right after the connect returned
        assert host_short(h, "+time=1", web, server=GATEWAY) == ["10.97.0.2"], round_
        assert time.monotonic() - connected < 1.5  # dig's own start-up included
        assert host_short(h, "+tcp", web, server=GATEWAY) == ["10.97.0.2"]
        assert "status: REFUSED" in host_dig(h, "example.com", server=GATEWAY)
        # a sandbox reaches the gateway too, but it is no host: it has its own 127.0.0.11
        udp = h.sandbox_exec("web", "dig", "+time=1", "+tries=1", f"@{GATEWAY}", web).stdout
        assert "status: REFUSED" in udp and "ANSWER SECTION" not in udp, udp
        tcp = h.sandbox_exec(
            "web", "dig", "+tcp", "+time=1", "+tries=1", f"@{GATEWAY}", web, check=False
        ).stdout
        assert "ANSWER SECTION" not in tcp and "10.97.0.2" not in tcp, tcp
        assert len(_listening(h, GATEWAY)) == 2  # UDP and TCP, opened once
        open_now = h.ok("GET", "/info")["Dnsd"]["HostDns"]
        assert open_now == [default, f"{GATEWAY}:53"]  # the default bridge is one too
        h.ok("DELETE", f"/sandboxes/{h.sandbox_name('web')}")
        h.ok("DELETE", "/networks/app")
        assert _listening(h, GATEWAY) == []  # closed when the API answered: the port is free
        assert h.ok("GET", "/info")["Dnsd"]["HostDns"] == [default]
        assert "status: NOERROR" not in host_dig(h, "+time=1", web, server=GATEWAY)
    assert h.log().count(f"host dns listening on {GATEWAY}:53") == 2


def test_ipv6_gateway_and_a_network_present_at_start(gateways):
    h = gateways
    h.network(
        "six",
        EnableIPv6=True,
        IPAM={"Config": [{"Subnet": "10.98.0.0/24"}, {"Subnet": SUBNET6}]},
    )
    h.sandbox("web6", "six")
    name = f"{h.sandbox_name('web6')}.six"
    assert host_short(h, name, "AAAA", server=GATEWAY6) == ["fd97:5eed:0:1::2"]
    assert host_short(h, "+tcp", name, server=GATEWAY6) == ["10.98.0.2"]
    assert host_short(h, name, server="10.98.0.1") == ["10.98.0.2"]
    # A restart finds the network there: both gateways open again at start.
    assert h.stop_daemon() == 0
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={h.tmp / 'no-bus'}"}
    _start_with_env(h, env, "--host-dns", "gateways", "--host-dns", "10.98.0.1")
    assert host_short(h, name, "AAAA", server=GATEWAY6) == ["fd97:5eed:0:1::2"]
    assert len(_listening(h, "10.98.0.1")) == 2  # static and a gateway: one listener
    h.ok("DELETE", f"/sandboxes/{h.sandbox_name('web6')}")
    h.ok("DELETE", "/networks/six")
    assert _listening(h, GATEWAY6) == []
    assert len(_listening(h, "10.98.0.1")) == 2  # the static one stays, as without gateways
