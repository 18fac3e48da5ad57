"""Bad packets against a running daemon (issue 6): a UDP storm and hostile TCP connections.

During the storm real queries keep being answered; afterwards the daemon's memory (VmRSS) and
open descriptors return to where they were. CI runs 10,000 packets and 300 connections; with
`--full`, 100,000 and 1,000. Figures go to stdout (`-s` shows them) for the issue's closing note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnsd.serve.tcp import IDLE_S, MAX_CONNECTIONS

from .harness import HostNamespace

pytestmark = pytest.mark.integration

CLIENTS = str(Path(__file__).with_name("hostile_clients.py"))
RSS_MARGIN_KB = 8 * 1024  # allocator arenas may keep a little; a leak per packet would not fit
SAMPLING_SLACK = 8
# Kept on purpose: up to one batch (16) of fresh UDP sockets per listener for forwards
# (listeners.SocketPool) and a few netlink sockets opened on first use. Bounded, unlike a
# leak, which grows with the packets: thousands of them are forwarded here.
FORWARD_POOL = 20
SETTLE_S = 20.0  # forwards end within their 5 s deadline, TCP connections within IDLE_S


@dataclass(frozen=True, slots=True)
class Usage:
    rss_kb: int
    fds: int


def usage(pid: int) -> Usage:
    """VmRSS and the number of open descriptors of a process."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return Usage(rss, len(os.listdir(f"/proc/{pid}/fd")))


def resting(pid: int) -> Usage:
    """Usage without the moment's noise: the least of a few samples."""
    samples = []
    for _ in range(6):
        samples.append(usage(pid))
        time.sleep(0.1)
    return Usage(min(u.rss_kb for u in samples), min(u.fds for u in samples))


def settled(pid: int, baseline: Usage, fd_margin: int = 0) -> Usage:
    """Usage once descriptors are back to the baseline (or SETTLE_S passed)."""
    deadline = time.monotonic() + SETTLE_S
    now = usage(pid)
    while time.monotonic() < deadline:
        now = usage(pid)
        if now.fds <= baseline.fds + fd_margin and now.rss_kb <= baseline.rss_kb + RSS_MARGIN_KB:
            break
        time.sleep(0.25)
    return now


def client(host: HostNamespace, sandbox: str, *args: str, timeout: float = 300) -> dict:
    out = host.sandbox_exec(sandbox, sys.executable, CLIENTS, *args, timeout=timeout)
    return json.loads(out.stdout)


def answered(host: HostNamespace, sandbox: str, name: str, address: str, *flags: str) -> bool:
    out = host.sandbox_exec(
        sandbox, "dig", "+short", "+tries=2", "+time=2", *flags, "@127.0.0.11", name, check=False
    )
    return out.stdout.split() == [address]


@pytest.fixture
def target(daemon) -> tuple[HostNamespace, str, str]:
    """(host, sandbox short name, its address): one sandbox on one network, warmed up."""
    daemon.network("storm", IPAM={"Config": [{"Subnet": "10.91.0.0/24"}]})
    daemon.sandbox("s1", "storm")
    name, address = daemon.sandbox_name("s1"), "10.91.0.2"
    assert answered(daemon, "s1", name, address)
    assert answered(daemon, "s1", name, address, "+tcp")
    return daemon, name, address


def test_udp_storm_keeps_answering_and_leaks_nothing(target, full):
    host, name, address = target
    pid = host.daemon.pid
    count = 100_000 if full else 10_000
    rest = resting(pid)
    # Warm-up: the first storm grows allocator pools and caches once; a leak grows every time.
    client(host, "s1", "udp-storm", "--name", name, "--address", address, "--count", "2000")
    baseline = Usage(settled(pid, rest, FORWARD_POOL).rss_kb, rest.fds)
    started = time.monotonic()
    result = client(
        host, "s1", "udp-storm", "--name", name, "--address", address,
        "--count", str(count), "--seed", "6", "--check-every", "200",
    )  # fmt: skip
    took = time.monotonic() - started
    assert host.daemon.poll() is None, f"the daemon died in the storm:\n{host.log()}"
    assert result["sent"] >= count * 0.99, result
    assert result["real_failed"] == [], f"real queries unanswered during the storm: {result}"
    assert result["bad_replies"] == 0, f"replies that are not DNS responses: {result}"
    assert answered(host, "s1", name, address)
    assert answered(host, "s1", name, address, "+tcp")
    after = settled(pid, baseline, FORWARD_POOL)
    print(
        f"\nissue6 udp storm: {result['sent']} packets in {took:.1f}s survived, "
        f"{result['real_ok']} real queries all answered (slowest {result['slowest_real_ms']} ms), "
        f"{result['replies']} replies to garbage, all well-formed; "
        f"rss {baseline.rss_kb} -> {after.rss_kb} KiB, fds {baseline.fds} -> {after.fds}"
    )
    assert after.fds <= baseline.fds + FORWARD_POOL, f"descriptors leaked: {baseline} -> {after}"
    assert after.rss_kb <= baseline.rss_kb + RSS_MARGIN_KB, f"memory grew: {baseline} -> {after}"


def held_by_listener(host: HostNamespace, sandbox: str) -> int:
    """TCP connections the sandbox's DNS listener (127.0.0.11:<random>) has accepted and keeps:
    established server-side sockets minus those still waiting in its accept queue."""
    listening = host.sandbox_exec(sandbox, "ss", "-Hltn", "src", "127.0.0.11").stdout.split()
    # Columns: State Recv-Q Send-Q Local Peer; for a listener Recv-Q is the accept queue.
    queued, local = int(listening[1]), listening[3]
    rows = host.sandbox_exec(sandbox, "ss", "-Htn", "state", "established", "src", local).stdout
    return len(rows.splitlines()) - queued


def test_hostile_tcp_connections_are_capped_timed_out_and_forgotten(target, full):
    host, name, address = target
    pid = host.daemon.pid
    count = 1000 if full else 300
    baseline = resting(pid)
    attack = subprocess.Popen(
        ["ip", "netns", "exec", host.sandbox_name("s1"), sys.executable, CLIENTS, "tcp-attack",
         "--name", name, "--count", str(count), "--seed", "6", "--hold", str(IDLE_S + 6)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        peak = 0
        deadline = time.monotonic() + IDLE_S
        while time.monotonic() < deadline and attack.poll() is None:
            peak = max(peak, held_by_listener(host, "s1"))
            # UDP keeps being answered while every TCP slot is taken.
            assert answered(host, "s1", name, address), "UDP unanswered during the TCP attack"
            time.sleep(0.3)
        out, _ = attack.communicate(timeout=120)
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait()
    result = json.loads(out)
    assert host.daemon.poll() is None, f"the daemon died:\n{host.log()}"
    # Sampled, not atomic: a connection over the cap is closed on the loop's next turn and
    # may be counted as established for that moment.
    assert 0 < peak <= MAX_CONNECTIONS + SAMPLING_SLACK, f"{peak} connections held at once"
    assert result["still_open"] == {}, f"connections the daemon never closed: {result}"
    assert result["slowest_close_s"] <= IDLE_S + 3, result
    assert answered(host, "s1", name, address, "+tcp"), "TCP does not answer after the attack"
    after = settled(pid, baseline)
    print(
        f"\nissue6 tcp attack: {result['opened']} hostile connections "
        f"({result['refused']} refused at connect), at most {peak} held at once "
        f"(cap {MAX_CONNECTIONS}), all closed by the daemon within {result['slowest_close_s']}s; "
        f"rss {baseline.rss_kb} -> {after.rss_kb} KiB, fds {baseline.fds} -> {after.fds}"
    )
    assert after.fds <= baseline.fds, f"descriptors leaked: {baseline} -> {after}"
    assert after.rss_kb <= baseline.rss_kb + RSS_MARGIN_KB, f"memory grew: {baseline} -> {after}"
