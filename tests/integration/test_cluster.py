"""Several hosts on one etcd: overlays listed everywhere, names and pings across hosts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_overlay_listed_everywhere_and_names_ping_across_hosts(cluster):
    cluster.overlay("a", "ov", "10.50.0.0/24")
    for letter in "bc":
        names = lambda h=cluster.hosts[letter]: [n["Name"] for n in h.ok("GET", "/networks")]
        assert "ov" in cluster.wait_for(names, timeout=2) or "ov" in names(), cluster.describe()
        shape = cluster.hosts[letter].ok("GET", "/networks/ov")
        assert shape["Scope"] == "global" and shape["Driver"] == "overlay"
    web = cluster.sandbox("a", "web", "ov", "web")
    cli = cluster.sandbox("b", "cli", "ov", "cli")
    web_ip = web["Networks"]["ov"]["IPAddress"] if "Networks" in web else None
    got = cluster.wait_for(lambda: cluster.dig("b", "cli", "web"), timeout=2)
    assert got, cluster.describe()
    assert cluster.dig("a", "web", "cli"), cluster.describe()
    ping = cluster.hosts["b"].sandbox_exec("cli", "ping", "-c1", "-W2", "web", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr + cluster.describe()
    ping = cluster.hosts["a"].sandbox_exec("web", "ping", "-c1", "-W2", "cli", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr + cluster.describe()
    del web_ip, cli
