"""`cluster`: dnsd on several hosts sharing etcd, against one host on SQLite.

- remote-resolvable latency: a sandbox connected on host B, polled from a sandbox on host A
  (127.0.0.11, every 2 ms) until its alias answers; from the end of B's connect call.
- connect latency: `POST /networks/{net}/connect` on a cluster host (etcd) and on a single
  host (SQLite), same network size.
- local-name UDP rate: dnsperf from a sandbox at its 127.0.0.11 for names of its own host, on
  a cluster host and on a single host, in interleaved rounds (a cluster must cost the hot path
  nothing: the target is within 5 %).

The cluster is the integration tests' (tests/integration/cluster.py): an underlay namespace
with one etcd member, two host namespaces with their own daemons.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.cluster import Cluster, new_cluster

from .dnsperf import Load, dnsperf_command, run_dnsperf, write_query_file
from .lab import BenchError, lab_session
from .probe import Prober
from .scale import latency_dict
from .stats import paired_ratios, summarize

RESOLVER = "127.0.0.11"
SUBNET = "10.93.0.0/16"
LOCAL_NAMES = 10  # sandboxes on the asker's host, each one name


@dataclass(frozen=True, slots=True)
class ClusterBenchOptions:
    samples: int = 60  # remote-resolvable and connect latencies
    rounds: int = 4  # interleaved dnsperf rounds per host kind
    duration_s: float = 4.0


def log(message: str) -> None:
    print(f"bench cluster: {message}", flush=True)


def run(opts: ClusterBenchOptions, gen_cpu: int | None, server_cpu: int | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="dnsd-bench-cluster-"))
    cluster = new_cluster(tmp)
    try:
        cluster.start_etcd()
        for letter in "ab":
            cluster.add_host(letter, start=False)
            cluster.hosts[letter].start_daemon(
                *cluster.daemon_args(letter, ttl=10), "--log-level", "warning"
            )
        cluster.overlay("a", "bov", SUBNET)
        remote = _remote_latency(cluster, opts.samples)
        connect_etcd = _connect_latency(cluster.hosts["a"], "bov", opts.samples)
        with lab_session("cluster-single", server_cpu) as single:
            single.start_daemon()
            single.network("bov", IPAM={"Config": [{"Subnet": SUBNET}]})
            connect_sqlite = _connect_latency(single, "bov", opts.samples)
            udp = _udp_rates(cluster, single, opts, gen_cpu)
    except BenchError:
        raise
    except Exception as exc:  # the lab's own failures, reported as this part's error
        raise BenchError(f"cluster bench: {exc}\n{cluster.describe()[-3000:]}") from exc
    finally:
        cluster.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "remote_resolvable_ms": remote,
        "connect": {"etcd": connect_etcd, "sqlite": connect_sqlite},
        "udp_local_names": udp,
    }


def _remote_latency(cluster: Cluster, samples: int) -> dict:
    a, b = cluster.hosts["a"], cluster.hosts["b"]
    cluster.sandbox("a", "asker", "bov", "asker")
    prober = Prober(f"/run/netns/{a.sandbox_name('asker')}", RESOLVER)
    waits = []
    try:
        for i in range(samples):
            b.sandbox(f"r{i}")
            b.connect("bov", f"r{i}", Aliases=[f"remote{i}"])
            waited, _ = prober.wait_for_address(f"remote{i}", 10.0)
            waits.append(waited)
    finally:
        prober.close()
    log(f"remote resolvable: {len(waits)} samples")
    return latency_dict(waits)


def _connect_latency(host, network: str, samples: int) -> dict:
    """Seconds per connect call (sandboxes made first, so only the connect is timed)."""
    for i in range(samples):
        host.sandbox(f"c{i}")
    took = []
    for i in range(samples):
        started = time.perf_counter()
        host.ok("POST", f"/networks/{network}/connect", {"Container": host.sandbox_name(f"c{i}")})
        took.append(time.perf_counter() - started)
    return latency_dict(took)


def _udp_rates(cluster: Cluster, single, opts: ClusterBenchOptions, gen_cpu: int | None) -> dict:
    """dnsperf at names local to the asker's host, cluster host and single host in turn."""
    targets = {}
    for kind, host in (("cluster", cluster.hosts["a"]), ("single", single)):
        names = []
        for i in range(LOCAL_NAMES):
            host.sandbox(f"l{i}")
            host.connect("bov", f"l{i}", Aliases=[f"local{i}"])
            names.append(f"local{i}")
        if kind == "single":
            host.sandbox("asker")
            host.connect("bov", "asker")
        query_file = write_query_file(host.tmp / f"names-{kind}.txt", names)
        targets[kind] = (host.sandbox_name("asker"), str(query_file))
    rates: dict[str, list[float]] = {"cluster": [], "single": []}
    load = Load(duration_s=opts.duration_s)
    for round_ in range(opts.rounds):
        for kind in ("cluster", "single") if round_ % 2 == 0 else ("single", "cluster"):
            netns, query_file = targets[kind]
            result = run_dnsperf(netns, dnsperf_command(RESOLVER, query_file, load, cpu=gen_cpu))
            rates[kind].append(result.qps)
        log(f"udp round {round_ + 1}: {rates['cluster'][-1]:.0f} vs {rates['single'][-1]:.0f} qps")
    ratios = paired_ratios(rates["cluster"], rates["single"])
    return {
        "cluster_qps": summarize(rates["cluster"]).to_dict(),
        "single_qps": summarize(rates["single"]).to_dict(),
        "ratio": summarize(ratios).to_dict(),
        "runs": rates,
        "elapsed_note": f"{opts.rounds} rounds of {opts.duration_s:g} s each",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
