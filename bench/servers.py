"""One server under load: run dnsperf against it and read its CPU and memory around the run."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .dnsperf import DnsperfFailed, DnsperfResult, Load, dnsperf_command, run_dnsperf
from .lab import BenchError, sample

# Answers that cost at least several clock ticks (10 ms) of CPU in any server: fewer may
# legitimately show no CPU at all.
MIN_QUERIES_FOR_CPU_CHECK = 20_000


@dataclass(frozen=True, slots=True)
class Target:
    """Where dnsperf runs and what it asks: a server as the benchmark sees it."""

    name: str  # "dnsd", "dnsmasq", "aardvark-dns"
    netns: str  # `ip netns` name of the asking namespace
    address: str
    pid: int  # the process whose CPU and RSS are read
    source: str | None = None  # dnsperf -a
    udp_only: bool = False


def measure(target: Target, query_file: str, load: Load, *, cpu: int | None) -> dict[str, object]:
    """One dnsperf run against `target`: dnsperf's numbers plus the server's CPU per query,
    CPU use (percent of one core), the kernel's share of it, and RSS, from /proc before and
    after."""
    argv = dnsperf_command(target.address, query_file, load, source=target.source, cpu=cpu)
    for attempt in range(2):
        before = sample(target.pid)
        try:
            result: DnsperfResult = run_dnsperf(target.netns, argv)
            break
        except DnsperfFailed as exc:
            if attempt:
                raise
            print(f"bench: {target.name}: {exc}; running it once more", file=sys.stderr)
    after = sample(target.pid)
    cpu_s = after.cpu_s - before.cpu_s
    if result.completed >= MIN_QUERIES_FOR_CPU_CHECK and cpu_s <= 0:
        raise BenchError(
            f"{target.name} (pid {target.pid}) used no CPU for {result.completed} answers: "
            f"another process answers on {target.address} in {target.netns}; stop it"
        )
    out = result.to_dict()
    out.update(
        server=target.name,
        mode=load.mode,
        server_cpu_s=cpu_s,
        server_cpu_pct=cpu_s / result.run_time_s * 100 if result.run_time_s else None,
        server_cpu_us_per_query=cpu_s / result.completed * 1e6 if result.completed else None,
        server_kernel_pct=(after.kernel_s - before.kernel_s) / cpu_s * 100 if cpu_s > 0 else None,
        server_rss_mib=after.rss_kib / 1024,
    )
    if load.max_qps is not None:
        out["offered_qps"] = load.max_qps
    return out
