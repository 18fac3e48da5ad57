"""Security (issue 6): no listener outside sandboxes, nothing learned across networks, a noisy
sandbox cannot starve a quiet one, forwarded queries rate-limited per sandbox."""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import UPSTREAM, HostNamespace, run

pytestmark = pytest.mark.integration

CLIENTS = str(Path(__file__).with_name("hostile_clients.py"))
STARVED_MEDIAN_MS = 50.0
STARVED_P99_MS = 500.0


def daemon_sockets(host: HostNamespace, netns: str | None = None) -> list[str]:
    """Listening TCP/UDP sockets of the daemon's process in a namespace (default: the host)."""
    cmd = ("ss", "-Hlnptu")
    out = run("ip", "netns", "exec", netns, *cmd).stdout if netns else host.exec(*cmd).stdout
    return [line for line in out.splitlines() if f"pid={host.daemon.pid}," in line]


def local_address(line: str) -> str:
    return line.split()[4].rpartition(":")[0]


def dig(host: HostNamespace, short: str, *args: str) -> str:
    out = host.sandbox_exec(short, "dig", "+tries=1", "+time=2", *args, check=False)
    return out.stdout


def tcp_refused(host: HostNamespace, short: str, address: str) -> bool:
    code = (
        "import socket,sys\n"
        "try: socket.create_connection((sys.argv[1], 53), timeout=2); print('open')\n"
        "except OSError: print('closed')\n"
    )
    return host.sandbox_exec(short, sys.executable, "-c", code, address).stdout.strip() == "closed"


@pytest.fixture
def two_networks(daemon) -> HostNamespace:
    """sa: a1; sb: b1 (alias secret, hostname bhost)."""
    daemon.network("sa", IPAM={"Config": [{"Subnet": "10.98.0.0/24"}]})
    daemon.network("sb", IPAM={"Config": [{"Subnet": "10.98.1.0/24"}]})
    daemon.sandbox("a1", "sa")
    daemon.sandbox("b1", "sb", Hostname="bhost", EndpointConfig={"Aliases": ["secret"]})
    daemon.sandbox("lone")  # on no network: no listener at all
    return daemon


def test_nothing_listens_outside_the_sandboxes(two_networks):
    h = two_networks
    assert daemon_sockets(h) == [], "the daemon listens in the host namespace"
    unix = h.exec("ss", "-Hlxp").stdout.splitlines()
    mine = [line.split()[4] for line in unix if f"pid={h.daemon.pid}," in line]
    assert mine == [h.socket], f"unix listeners: {mine}"
    for short in ("a1", "b1"):
        inside = daemon_sockets(h, h.sandbox_name(short))
        assert len(inside) == 2 and {local_address(s) for s in inside} == {"127.0.0.11"}, inside
    assert daemon_sockets(h, h.sandbox_name("lone")) == []
    # No shared resolver address: no gateway, host or sandbox address answers DNS.
    targets = ["10.98.0.1", "10.98.1.1", "10.98.0.2", "10.98.1.2", "172.17.0.1"]
    for target in targets:
        out = dig(h, "a1", f"@{target}", h.sandbox_name("a1"))
        assert "no servers could be reached" in out, f"{target} answered DNS:\n{out}"
        assert tcp_refused(h, "a1", target), f"{target}:53 accepts TCP"
    out = dig(h, "lone", "@127.0.0.11", h.sandbox_name("a1"))
    assert "no servers could be reached" in out, out


def test_api_over_tcp_only_with_a_token(host):
    host.start_upstream()
    token = secrets.token_hex(16)
    host.start_daemon("--api-tcp", "127.0.0.1:23750", "--api-token", token)
    listening = daemon_sockets(host)
    assert [local_address(s) + ":" + s.split()[4].rpartition(":")[2] for s in listening] == [
        "127.0.0.1:23750"
    ], listening
    probe = (
        "import http.client,sys\n"
        "c=http.client.HTTPConnection('127.0.0.1',23750,timeout=5)\n"
        "h={'Authorization':'Bearer '+sys.argv[1]} if sys.argv[1] else {}\n"
        "c.request('GET','/networks',headers=h); print(c.getresponse().status)\n"
    )
    assert host.exec(sys.executable, "-c", probe, "").stdout.strip() == "401"
    assert host.exec(sys.executable, "-c", probe, "wrong").stdout.strip() == "401"
    assert host.exec(sys.executable, "-c", probe, token).stdout.strip() == "200"
    refused = host.exec(
        sys.executable, "-m", "dnsd", "serve", "--api-tcp", "127.0.0.1:23751",
        "--state-dir", str(host.tmp / "other"), "--api-socket", str(host.tmp / "other.sock"),
        check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "--api-token" in refused.stderr, refused.stderr


def test_a_sandbox_learns_nothing_about_other_networks(two_networks):
    h = two_networks
    b1 = h.ok("GET", f"/sandboxes/{h.sandbox_name('b1')}")
    secret_address, secret_name = "10.98.1.2", h.sandbox_name("b1")
    asks = [
        (secret_name,),
        (secret_name.upper(),),
        (f"{secret_name}.sb",),
        ("-q", "secret"),
        ("bhost",),
        (b1["Id"][:12],),
        (secret_name, "ANY"),
        (secret_name, "+tcp"),
        ("-x", secret_address),
        ("-q", "2.1.98.10.in-addr.arpa", "-t", "PTR", "+tcp"),
    ]
    for ask in asks:
        out = dig(h, "a1", "@127.0.0.11", *ask)
        assert "status: NXDOMAIN" in out and "ANSWER: 0," in out, f"{ask}:\n{out}"
        # Every section after the question (which echoes what we asked) holds nothing of b1.
        records = out.partition(";; QUESTION SECTION:")[2].partition("\n\n")[2]
        assert secret_address not in records and "bhost" not in records, f"{ask}:\n{out}"
    hosts = h.sandbox_exec("a1", "cat", "/etc/hosts").stdout
    assert secret_address not in hosts and secret_name not in hosts
    # b1 itself does know all of them: the refusals above are isolation, not breakage.
    assert dig(h, "b1", "+short", "-q", "secret").split() == [secret_address]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def probe(host: HostNamespace, short: str, address: str, count: int) -> dict:
    out = host.sandbox_exec(
        short, sys.executable, CLIENTS, "probe", "--name", host.sandbox_name(short),
        "--address", address, "--count", str(count), "--interval", "0.005", timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def flood(host: HostNamespace, short: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", host.sandbox_name(short), sys.executable, CLIENTS, *args],
        stdout=subprocess.PIPE,
        text=True,
    )


FLOODS = {  # one sender saturates the daemon already (two CPUs)
    "udp": ("flood", "--seconds", "6"),
    "tcp": ("tcp-flood", "--count", "20", "--seconds", "6"),  # 20 pipelining connections
}


@pytest.mark.parametrize("transport", FLOODS)
def test_a_noisy_sandbox_cannot_starve_a_quiet_one(daemon, transport):
    h = daemon
    h.network("nn", IPAM={"Config": [{"Subnet": "10.98.2.0/24"}]})
    h.sandbox("noisy", "nn")
    h.sandbox("quiet", "nn")
    quiet = probe(h, "quiet", "10.98.2.3", 200)
    names = f"{h.sandbox_name('noisy')},unknown.anchors.test,{h.sandbox_name('quiet')}"
    noisy = flood(h, "noisy", *FLOODS[transport], "--name", names)
    try:
        loud = probe(h, "quiet", "10.98.2.3", 400)
    finally:
        done = json.loads(noisy.communicate(timeout=60)[0])
    assert h.daemon.poll() is None
    calm, busy = quiet["latencies_ms"], loud["latencies_ms"]
    print(
        f"\nissue6 noisy neighbour ({transport} flood {done}): quiet sandbox median/p99 "
        f"{statistics.median(calm):.2f}/{percentile(calm, 0.99):.2f} ms alone, "
        f"{statistics.median(busy):.2f}/{percentile(busy, 0.99):.2f} ms during the flood, "
        f"{loud['lost']} of 400 lost"
    )
    # Starving would be timeouts and seconds; a saturated 2-CPU machine shows tens of ms.
    assert loud["lost"] <= 4, f"{loud['lost']} of 400 quiet queries lost"
    assert statistics.median(busy) < STARVED_MEDIAN_MS, "the quiet sandbox is starved"
    assert percentile(busy, 0.99) < STARVED_P99_MS, "the quiet sandbox is starved"


def upstream_queries_from(host: HostNamespace, address: str) -> int:
    text = (host.tmp / f"upstream-{UPSTREAM}.log").read_text()
    return sum(" ext.anchors.test from " + address in line for line in text.splitlines())


def test_forwarded_queries_are_rate_limited_per_sandbox(host):
    host.start_upstream()
    # Without the cache: 300 identical questions would be one upstream query (merged in
    # flight, then cached), and the limit is about queries that reach the upstream.
    host.start_daemon("--forward-rate", "20", "--cache-size", "0")
    host.network("rl", IPAM={"Config": [{"Subnet": "10.98.3.0/24"}]})
    host.sandbox("r1", "rl")
    host.sandbox("r2", "rl")
    out = host.sandbox_exec(
        "r1", sys.executable, CLIENTS, "burst", "--name", "ext.anchors.test", "--count", "300",
        timeout=60,
    )  # fmt: skip
    burst = json.loads(out.stdout)
    allowed = 20 + 20 * burst["took_s"] + 5  # the bucket, refilled while the burst was sent
    noerror, refused = burst["rcodes"].get("0", 0), burst["rcodes"].get("5", 0)
    assert burst["answered"] == 300, burst
    assert 20 <= noerror <= allowed and refused >= 300 - allowed, burst
    assert upstream_queries_from(host, "10.98.3.2") <= allowed
    # Local answers are never limited, and another sandbox has its own bucket.
    assert dig(host, "r1", "+short", host.sandbox_name("r2")).split() == ["10.98.3.3"]
    assert dig(host, "r2", "+short", "ext.anchors.test").split() == ["198.51.100.200"]
    print(
        f"\nissue6 rate limit 20/s: a burst of 300 forwards -> {noerror} relayed, {refused} REFUSED"
    )
