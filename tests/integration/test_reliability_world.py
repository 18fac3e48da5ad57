"""The world changing under the daemon (issue 6): vanished namespaces, links and rules deleted
by hand, and upstreams that are dead, slow, truncating or lying.

The daemon runs with `--reconcile-interval 1`; every repair must show within a few intervals,
and the daemon's log must say what it repaired.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.fakes.upstream import Behaviour, FakeUpstream, slow, spoof

from .harness import HostNamespace, run
from .probes import ping

pytestmark = pytest.mark.integration

INTERVAL_S = 1
WAIT_S = 5 * INTERVAL_S + 5  # a few reconcile rounds, on a busy machine
DEADLINE_S = 5.0  # the forwarder's: a client always hears back within it


@pytest.fixture
def world(host) -> HostNamespace:
    host.start_upstream()
    host.start_daemon("--reconcile-interval", str(INTERVAL_S))
    return host


def eventually(what: str, check: Callable[[], bool], host: HostNamespace) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}\n{host.log()}"
        time.sleep(0.2)


def logged(host: HostNamespace, fragment: str) -> Callable[[], bool]:
    return lambda: fragment in (host.tmp / "daemon.log").read_text(errors="replace")


def containers(host: HostNamespace, network: str) -> dict[str, str]:
    """name -> IPv4 address of every sandbox on `network`, as the API reports it."""
    entries = host.ok("GET", f"/networks/{network}")["Containers"].values()
    return {e["Name"]: e["IPv4Address"].split("/")[0] for e in entries}


def fds(host: HostNamespace) -> int:
    """The daemon's open descriptors, at rest: the least of a few samples, because a
    reconcile round briefly holds netlink sockets and nft pipes."""
    samples = []
    for _ in range(6):
        samples.append(len(os.listdir(f"/proc/{host.daemon.pid}/fd")))
        time.sleep(0.1)
    return min(samples)


def host_veths(host: HostNamespace) -> set[str]:
    out = run("ip", "-n", host.name, "-j", "link", "show", "type", "veth").stdout
    return {link["ifname"] for link in json.loads(out or "[]")}


def test_deleted_namespace_is_cleaned_up_and_its_address_returns(world):
    h = world
    h.network("tiny", IPAM={"Config": [{"Subnet": "10.97.0.0/29"}]})  # 5 addresses
    for i in range(1, 6):
        h.sandbox(f"w{i}", "tiny")
    assert containers(h, "tiny")[h.sandbox_name("w3")] == "10.97.0.4"
    veths, after = host_veths(h), []
    # Twice: the first round may open a socket the daemon keeps; a leak grows every round.
    for gone, new in (("w3", "w6"), ("w6", "w7")):
        name = h.sandbox_name(gone)
        run("ip", "netns", "del", name)
        eventually(f"the API forgets {gone}", lambda n=name: n not in containers(h, "tiny"), h)
        eventually("the log reports it", logged(h, f"{name}: namespace"), h)
        assert h.api("GET", f"/sandboxes/{name}")[0] == 404
        assert len(host_veths(h)) == len(veths) - 1
        assert not os.path.exists(f"/etc/netns/{name}")
        h.sandbox(new, "tiny")  # the only free address is the one just left
        assert containers(h, "tiny")[h.sandbox_name(new)] == "10.97.0.4"
        out = h.sandbox_exec("w1", "dig", "+short", "+tries=2", h.sandbox_name(new)).stdout
        assert out.split() == ["10.97.0.4"]
        after.append(fds(h))
    # A leak stays; a descriptor held for a moment (a reconcile round slowed by a loaded
    # machine: CI saw 29 vs 28 once) goes away.
    eventually(
        f"no descriptor left behind by a vanished sandbox: {after}", lambda: fds(h) <= after[0], h
    )


def test_process_namespace_gone_with_its_process(world):
    h = world
    h.network("one", IPAM={"Config": [{"Subnet": "10.97.1.0/30"}]})  # a single address
    veths, after = host_veths(h), []
    for short in ("p1", "p2"):  # twice, for the same reason as above
        sleeper = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        try:
            netns = f"/proc/{sleeper.pid}/ns/net"
            deadline = time.monotonic() + 5
            while os.stat(netns).st_ino == os.stat("/proc/self/ns/net").st_ino:
                assert time.monotonic() < deadline, "unshare never entered its namespace"
                time.sleep(0.01)
            h.ok("POST", "/sandboxes", {"Name": h.sandbox_name(short), "NetNS": netns,
                                        "NetworkMode": "one"})  # fmt: skip
            out = run("nsenter", f"--net={netns}", "dig", "+short", "@127.0.0.11",
                      h.sandbox_name(short)).stdout  # fmt: skip
            assert out.split() == ["10.97.1.2"]  # the one address, back in the pool each time
        finally:
            sleeper.send_signal(signal.SIGKILL)
            sleeper.wait()
        eventually(f"the API forgets {short}", lambda: not containers(h, "one"), h)
        eventually("the log reports it", logged(h, f"{h.sandbox_name(short)}: namespace"), h)
        eventually("its veth is gone", lambda: host_veths(h) == veths, h)
        after.append(fds(h))
    # A leak stays; a descriptor held for a moment (a reconcile round slowed by a loaded
    # machine: CI saw 29 vs 28 once) goes away.
    eventually(
        f"no descriptor left behind by a vanished sandbox: {after}", lambda: fds(h) <= after[0], h
    )


def test_hand_deleted_links_and_flushed_rules_are_restored(world):
    h = world
    h.network("wr", IPAM={"Config": [{"Subnet": "10.97.2.0/24"}]},
              Options={"com.docker.network.bridge.name": "wbr"})  # fmt: skip
    h.network("wx", IPAM={"Config": [{"Subnet": "10.97.3.0/24"}]})
    h.sandbox("r1", "wr")
    h.sandbox("r2", "wr")
    h.sandbox("x1", "wx")
    rules = h.exec("nft", "list", "ruleset").stdout
    r2 = h.ok("GET", f"/sandboxes/{h.sandbox_name('r2')}")["Networks"]["wr"]
    assert ping(h, "r1", "10.97.2.3") and not ping(h, "r1", "10.97.3.2")

    h.exec("ip", "link", "del", f"veth{r2['EndpointID'][:11]}")
    eventually("r2's veth is back", lambda: ping(h, "r1", "10.97.2.3"), h)
    assert logged(h, f"veth of {h.sandbox_name('r2')} on wr was missing: recreated")()
    assert containers(h, "wr")[h.sandbox_name("r2")] == "10.97.2.3"

    h.exec("ip", "link", "del", "wbr")
    eventually("the bridge is back", lambda: ping(h, "r1", "10.97.2.3"), h)
    assert logged(h, "bridge wbr of network wr was missing: recreated")()
    assert ping(h, "r1", "10.97.2.1") and ping(h, "r2", "10.97.2.2")

    h.exec("nft", "flush", "ruleset")
    eventually("the rules are back", lambda: h.exec("nft", "list", "ruleset").stdout == rules, h)
    eventually("the log reports it", logged(h, "reconcile: firewall"), h)
    assert not ping(h, "r1", "10.97.3.2"), "isolation between networks was not restored"
    assert h.daemon.poll() is None


LIARS: dict[str, tuple[Behaviour | None, bool]] = {  # behaviour (None: no server), answered
    "normal": (Behaviour(), True),
    "dead": (None, False),  # nothing listens: port unreachable
    "silent": (Behaviour("silent"), False),
    "slow": (slow(1.0), True),
    "too_slow": (slow(DEADLINE_S + 2), False),
    "truncating": (Behaviour("truncate"), True),  # the client retries over TCP
    "wrong_id": (spoof("wrong_id", then_answer=False), False),
    "wrong_id_then_right": (spoof("wrong_id", then_answer=True), True),
    "wrong_question": (spoof("wrong_question", then_answer=False), False),
    "wrong_question_then_right": (spoof("wrong_question", then_answer=True), True),
    "other_source": (spoof("other_source", then_answer=False), False),
    "other_source_then_right": (spoof("other_source", then_answer=True), True),
}
SPOOF_FROM = "198.51.100.99"  # where "other_source" replies come from


async def dig_timed(host: HostNamespace, short: str, qname: str) -> tuple[str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", host.sandbox_name(short),
        "dig", "+tries=1", "+time=10", "@127.0.0.11", qname,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode(), time.monotonic() - started


@pytest.mark.asyncio
async def test_lying_and_broken_upstreams_give_the_truth_or_servfail_in_time(world):
    h = world
    h.network("up", IPAM={"Config": [{"Subnet": "10.97.4.0/24"}]})
    h.exec("ip", "addr", "add", f"{SPOOF_FROM}/32", "dev", "lo")
    h.exec("ip", "route", "add", "blackhole", "192.0.2.99/32")
    fakes: dict[str, FakeUpstream] = {}
    addresses = {"blackholed": "192.0.2.99"}
    for i, kind in enumerate(LIARS):
        addresses[kind] = f"198.51.100.{60 + i}"
        h.exec("ip", "addr", "add", f"{addresses[kind]}/32", "dev", "lo")
    for kind, address in addresses.items():
        h.sandbox(f"u-{kind.replace('_', '-')}", "up", Dns=[address])
    try:
        for kind, (behaviour, _) in LIARS.items():
            if behaviour is not None:
                fake = FakeUpstream(behaviour=behaviour, host=addresses[kind], port=53,
                                    netns=h.path, spoof_host=SPOOF_FROM)  # fmt: skip
                fakes[kind] = await fake.__aenter__()
        kinds = list(addresses)
        results = await asyncio.gather(
            *(dig_timed(h, f"u-{k.replace('_', '-')}", "ext.anchors.test") for k in kinds)
        )
    finally:
        for fake in fakes.values():
            await fake.__aexit__(None, None, None)
    summary = []
    for kind, (out, took) in zip(kinds, results, strict=True):
        answered = LIARS.get(kind, (None, False))[1]
        summary.append(f"{kind} {took:.1f}s")
        assert took < DEADLINE_S + 0.7, f"{kind}: the client waited {took:.1f}s\n{out}"
        assert "spoofed.invalid" not in out and "mismatch" not in out, f"{kind}: relayed\n{out}"
        if answered:
            assert "status: NOERROR" in out and "198.51.100.200" in out, f"{kind}:\n{out}"
        else:
            assert "status: SERVFAIL" in out and "ANSWER: 0" in out, f"{kind}:\n{out}"
        if kind in fakes:
            assert fakes[kind].qnames(), f"{kind}: the upstream was never asked"
    print(f"\nissue6 upstreams: {', '.join(summary)}")
