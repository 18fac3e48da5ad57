"""`view_cost`: what one connect costs the daemon's views, at N sandboxes (in process, no root).

    python3 -m bench.view_cost 1000 10000

For each N: N sandboxes on networks of 250 (like `scale`), then one more sandbox connected;
reports the best time the registry's subscribers spend on views for that connect and the
disconnect after it: the sandboxes' view alone (`ViewBuilder`), with the host's view of
`--host-dns` (`HostViewBuilder`) after it on the same snapshot, the host's view alone, and
`build_host_view` (the host view from scratch) for reference.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from functools import partial
from ipaddress import IPv4Network

from dnsd.core.incremental import ViewBuilder
from dnsd.hostdns.incremental import HostViewBuilder
from dnsd.hostdns.zone import build_host_view
from netcore.model import Endpoint, Network, Sandbox, Snapshot, Subnet4

PER_NETWORK = 250
ROUNDS = 7


def populated(count: int) -> Snapshot:
    """`count` sandboxes, 250 to a /24 network, each with one alias."""
    networks, sandboxes, endpoints = [], [], []
    for n in range((count + PER_NETWORK - 1) // PER_NETWORK + 1):  # + 1: room for the newcomer
        subnet = IPv4Network(f"10.{n // 256}.{n % 256}.0/24")
        networks.append(
            Network(f"{n:064x}", f"net{n}", f"br{n}", Subnet4(subnet, subnet.network_address + 1))
        )
    for i in range(count):
        network = networks[i // PER_NETWORK]
        sid = f"{i + 1:064x}"
        sandboxes.append(Sandbox(sid, f"box{i}", netns_path="/x", owned=True))
        endpoints.append(_endpoint(f"e{i:063x}", network, sid, i % PER_NETWORK + 2))
    return Snapshot(1, tuple(networks), tuple(sandboxes), tuple(endpoints))


def _endpoint(eid: str, network: Network, sid: str, host: int) -> Endpoint:
    return Endpoint(
        eid, network.id, sid, "eth0", "veth0", "02:00:00:00:00:01",
        network.ipv4.subnet.network_address + host, aliases=("svc",),
    )  # fmt: skip


def measure(count: int) -> dict[str, float]:
    """Milliseconds (best of 14) the views cost per connect (and per disconnect), at `count`
    sandboxes: without --host-dns, with it, and with the host view built from scratch."""
    base = populated(count)
    newcomer = Sandbox("f" * 64, "newcomer", netns_path="/x", owned=True)
    joined = replace(
        base,
        sandboxes=(*base.sandboxes, newcomer),
        endpoints=(*base.endpoints, _endpoint("f" * 64, base.networks[-1], newcomer.id, 200)),
    )
    out: dict[str, float] = {}
    for label, builds in (
        ("without_host_dns_ms", lambda: [ViewBuilder().build]),
        ("with_host_dns_ms", lambda: [ViewBuilder().build, HostViewBuilder("example").build]),
        ("host_view_alone_ms", lambda: [HostViewBuilder("example").build]),
        ("host_from_scratch_ms", lambda: [partial(build_host_view, domain="example")]),
    ):
        subscribers = builds()
        for build in subscribers:
            build(base)  # the daemon's state before the connect
        times = []
        for r in range(ROUNDS):
            for step in (joined, base):
                snap = replace(step, revision=2 * r + (step is base) + 2)
                start = time.perf_counter()
                for build in subscribers:  # as the registry calls its subscribers
                    build(snap)
                times.append(time.perf_counter() - start)
        out[label] = min(times) * 1000  # best of: the machine may be busy
    return out


def main(argv: list[str]) -> int:
    for count in [int(a) for a in argv] or [1000, 10000]:
        costs = measure(count)
        print(f"{count:>6} sandboxes: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
