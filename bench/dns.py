"""`dns`: dnsd against dnsmasq and aardvark-dns on the same names, interleaved round by round.

dnsd is asked exactly as a user's process asks it: from inside a sandbox, at 127.0.0.11:53,
through the nft redirect to the daemon's socket in that namespace. The peers run in a second
sandbox on the same network and are asked on an address of that sandbox's lo, so every server
is reached over the loopback of a namespace the daemon made.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.integration.harness import UPSTREAM

from .cache_rss import run as cache_rss
from .dnsperf import Load, write_query_file
from .lab import BenchError, BenchHost, lab_session, sample
from .peers import NEW_NAMES_ZONE, start_aardvark, start_dnsmasq, start_quiet_upstream
from .probe import resolve_once
from .servers import Target, measure
from .stats import paired_ratios, summarize

NETWORK = "bench"
SUBNET = "10.91.0.0/16"
RESOLVER = "127.0.0.11"


@dataclass(frozen=True, slots=True)
class DnsOptions:
    rounds: int = 4
    duration_s: float = 4.0
    sandboxes: int = 10  # answering sandboxes on the network
    aliases: int = 4  # per sandbox: names = sandboxes * (1 + aliases)
    forwarded: int = 50  # names only the fake upstream knows (the mixed run)
    outstanding: int = 100  # dnsperf -q
    tcp_clients: int = 4  # connections, each with `outstanding` queries in flight
    # dnsmasq's best TCP case (a process per connection, one query at a time each): many
    # connections, few queries in flight on each; run as a second, non-target comparison
    tcp_many_clients: int = 16
    tcp_many_per_connection: int = 10
    new_names: int = 300_000  # per run of "every name new": more than any server answers in it
    cache_names: int = 1_000_000  # distinct names through the forward cache (its RSS bound)
    daemon_args: tuple[str, ...] = ()  # extra `dnsd serve` flags (e.g. --no-metrics)
    cases: tuple[str, ...] = ()  # run only these of CASES (`--cases`); empty: all of them


# The comparisons of the part, in the order they run; `--cases` picks some (short iterations).
CASES = ("udp", "tcp", "tcp-many", "half-load", "mixed", "half-load-cached", "fwd-new", "cache-rss")
NEEDS_UDP = ("half-load", "half-load-cached")  # their rate is half of dnsd's UDP saturation


def selected_cases(cases: Sequence[str]) -> tuple[str, ...]:
    """The cases to run, in CASES order; raises BenchError naming an unknown one."""
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise BenchError(
            f"unknown dns case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}"
        )
    picked = set(cases or CASES)
    if picked & set(NEEDS_UDP):
        picked.add("udp")
    return tuple(c for c in CASES if c in picked)


Log = Callable[[str], None]


def _log(message: str) -> None:
    print(f"bench dns: {message}", file=sys.stderr, flush=True)


def run(opts: DnsOptions, gen_cpu: int | None, server_cpu: int | None, log: Log = _log) -> dict:
    """The whole `dns` part in a lab of its own; the lab is removed even on failure."""
    with lab_session("dns", server_cpu) as lab:
        return _run(lab, opts, gen_cpu, server_cpu, log)


def _run(
    lab: BenchHost, opts: DnsOptions, gen_cpu: int | None, server_cpu: int | None, log: Log
) -> dict:
    cases = selected_cases(opts.cases)
    forwarded = {f"f{i}.fwd.test": f"198.51.100.{100 + i % 150}" for i in range(opts.forwarded)}
    start_quiet_upstream(lab, UPSTREAM, forwarded)
    lab.start_daemon(*opts.daemon_args)
    lab.network(NETWORK, IPAM={"Config": [{"Subnet": SUBNET}]})
    log(f"creating {opts.sandboxes} sandboxes with {opts.aliases} aliases each")
    records = _populate(lab, opts)
    lab.sandbox("asker", NETWORK)
    lab.sandbox("peers", NETWORK)
    rng = random.Random(5)
    local_names = list(records)
    rng.shuffle(local_names)
    local = str(write_query_file(lab.tmp / "local.txt", local_names))
    mixed = str(write_query_file(lab.tmp / "mixed.txt", alternate(local_names, list(forwarded))))

    dnsd = Target("dnsd", lab.sandbox_name("asker"), RESOLVER, lab.daemon_pid)
    _check_answers(lab.netns_path("asker"), RESOLVER, "", records, "dnsd")
    targets = [dnsd]
    skipped: dict[str, str] = {}
    peers_ns = lab.sandbox_name("peers")
    first = local_names[0]
    dnsmasq = start_dnsmasq(
        lab, peers_ns, records, cpu=server_cpu, probe_name=first, upstream=UPSTREAM
    )
    targets.append(Target("dnsmasq", peers_ns, dnsmasq.address, dnsmasq.pid, dnsmasq.source))
    if {"udp", "half-load"} & set(cases):  # the only comparisons aardvark-dns is in
        try:
            aardvark = start_aardvark(lab, peers_ns, records, cpu=server_cpu, probe_name=first)
            targets.append(
                Target(
                    "aardvark-dns",
                    peers_ns,
                    aardvark.address,
                    aardvark.pid,
                    aardvark.source,
                    udp_only=True,
                )
            )
        except BenchError as exc:
            skipped["aardvark-dns"] = str(exc)
            log(f"aardvark-dns skipped: {exc}")
    for target in targets[1:]:
        _check_answers(
            lab.netns_path("peers"), target.address, target.source or "", records, target.name
        )
    some_forwarded = dict(list(forwarded.items())[:3])  # the mixed run's other half
    _check_answers(lab.netns_path("asker"), RESOLVER, "", some_forwarded, "dnsd (forwarding)")
    _check_answers(
        lab.netns_path("peers"),
        dnsmasq.address,
        dnsmasq.source or "",
        some_forwarded,
        "dnsmasq (forwarding)",
    )

    def go(target: Target, query_file: str, load: Load) -> dict:
        return measure(target, query_file, load, cpu=gen_cpu)

    # Every run with -v: per-query latencies give a p99 (dnsperf 2.10 has no histogram); the
    # output goes to a file, fully buffered, and cost no measurable rate against dnsmasq.
    udp = Load(opts.duration_s, "udp", 1, opts.outstanding, verbose=True)
    tcp_outstanding = opts.outstanding * opts.tcp_clients
    tcp = Load(opts.duration_s, "tcp", opts.tcp_clients, tcp_outstanding, verbose=True)
    many = opts.tcp_many_clients
    many_outstanding = many * opts.tcp_many_per_connection
    tcp_many = Load(opts.duration_s, "tcp", many, many_outstanding, verbose=True)
    out: dict = {
        "setup": {
            "local_names": len(records),
            "forwarded_names": len(forwarded),
            "servers": {t.name: {"address": t.address, "pid": t.pid} for t in targets},
            "load_cpu": gen_cpu,
            "server_cpu": server_cpu,
            "udp_load": _load_dict(udp),
            "tcp_load": _load_dict(tcp),
            "tcp_many_load": _load_dict(tcp_many),
        },
        "skipped": skipped,
        "cases": list(cases),
    }
    tcp_targets = [t for t in targets if not t.udp_only]
    mixed_targets = [t for t in targets if t.name in ("dnsd", "dnsmasq")]
    if "udp" in cases:
        log(f"UDP, {opts.rounds} rounds x {len(targets)} servers x {opts.duration_s:g} s")
        out["udp"] = _interleaved(targets, opts.rounds, lambda t: go(t, local, udp), log)
    if "tcp" in cases:
        log(f"TCP pipelined, {opts.rounds} rounds x {len(tcp_targets)} servers")
        out["tcp"] = _interleaved(tcp_targets, opts.rounds, lambda t: go(t, local, tcp), log)
    if "tcp-many" in cases:
        log(f"TCP, {many} connections with few queries in flight each")
        out["tcp_many"] = _interleaved(
            tcp_targets, opts.rounds, lambda t: go(t, local, tcp_many), log
        )
    half = max(1, int(out["udp"]["summary"]["dnsd"]["qps"]["median"] / 2)) if "udp" in out else 0
    half_load = Load(opts.duration_s, "udp", 1, opts.outstanding, max_qps=half, verbose=True)
    if "half-load" in cases:
        log(f"half load: {half} queries/s to every server, per-query latencies")
        out["half_load"] = _interleaved(
            targets, opts.rounds, lambda t: go(t, local, half_load), log
        )
        out["half_load"]["offered_qps"] = half
    if "mixed" in cases:
        log("mixed: half local names, half forwarded to the fake upstream (repeating: cached)")
        out["mixed"] = _interleaved(mixed_targets, opts.rounds, lambda t: go(t, mixed, udp), log)
    if "half-load-cached" in cases:
        cached = str(write_query_file(lab.tmp / "forwarded.txt", list(forwarded)))
        log(f"half load of forwarded names that repeat (cached): {half} queries/s")
        out["half_load_cached"] = _interleaved(
            mixed_targets, opts.rounds, lambda t: go(t, cached, half_load), log
        )
        out["half_load_cached"]["offered_qps"] = half
    runs = iter(range(1_000_000))

    def new_names(target: Target) -> dict:
        path = lab.tmp / "new.txt"
        prefix = f"r{next(runs)}"
        write_query_file(path, (f"{prefix}-{i}.{NEW_NAMES_ZONE}" for i in range(opts.new_names)))
        result = go(target, str(path), udp)
        result["repeated"] = max(0, result["sent"] - opts.new_names)  # the file wrapped
        return result

    if "fwd-new" in cases:
        log(f"forwarded only, every name new ({opts.new_names:,} per run)")
        out["forwarded_new"] = _interleaved(mixed_targets, opts.rounds, new_names, log)
    out["daemon_rss_mib"] = sample(lab.daemon_pid).rss_kib / 1024
    if "cache-rss" in cases:
        log(f"forward cache RSS: {opts.cache_names:,} distinct names in a fresh process")
        out["cache_rss"] = cache_rss(opts.cache_names)
    return out


def alternate(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """a1 b1 a2 b2 ..., the shorter list repeated, until both have been used whole."""
    count = max(len(first), len(second)) if first and second else 0
    return [n for i in range(count) for n in (first[i % len(first)], second[i % len(second)])]


def _populate(lab: BenchHost, opts: DnsOptions) -> dict[str, str]:
    """Sandboxes with aliases on the bench network; every name (sandbox name and aliases)
    mapped to its address, the same table every server is given."""
    records: dict[str, str] = {}
    for i in range(opts.sandboxes):
        aliases = [f"svc{i}-{j}" for j in range(opts.aliases)]
        info = lab.sandbox(f"t{i}", NETWORK, EndpointConfig={"Aliases": aliases})
        address = info["Networks"][NETWORK]["IPAddress"]
        for name in (lab.sandbox_name(f"t{i}"), *aliases):
            records[name] = address
    return records


def _check_answers(
    netns_path: str, server: str, source: str, records: dict[str, str], label: str
) -> None:
    """Every name must answer with its address before a server is measured: a fast server
    answering NXDOMAIN would otherwise win."""
    for name, address in records.items():
        reply = resolve_once(netns_path, server, name, source=source)
        if reply.addresses != (address,):
            raise BenchError(f"{label} answers {name} with {reply}, expected {address}")


def _interleaved(
    targets: Sequence[Target], rounds: int, run_one: Callable[[Target], dict], log: Log
) -> dict:
    """A B C, C B A, A B C...: every server runs once per round, the order alternating so no
    server always runs right after the same one; ratios are then taken round by round."""
    runs: dict[str, list[dict]] = {t.name: [] for t in targets}
    for r in range(rounds):
        order = targets if r % 2 == 0 else list(reversed(targets))
        for target in order:
            result = run_one(target)
            runs[target.name].append(result)
            log(
                f"  round {r + 1}/{rounds} {target.name}: {result['qps']:.0f} q/s, "
                f"lost {result['lost']}, avg {result['avg_latency_ms']:.3f} ms"
            )
    return {"runs": runs, "summary": summarize_runs(runs), "ratios": ratios_vs_dnsd(runs)}


def summarize_runs(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per server: median and spread of queries/s, latency, lost, CPU per query, RSS."""
    out = {}
    for name, results in runs.items():

        def col(key: str, results: list[dict] = results) -> dict:
            return summarize([r[key] for r in results if r.get(key) is not None]).to_dict()

        def latency(key: str, results: list[dict] = results) -> dict:
            return summarize([r["latency"][key] for r in results if "latency" in r]).to_dict()

        out[name] = {
            "qps": col("qps"),
            "avg_latency_ms": col("avg_latency_ms"),
            **{key: latency(key) for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms")},
            "lost": sum(r["lost"] for r in results),
            "sent": sum(r["sent"] for r in results),
            "not_noerror": sum(r["completed"] - r["rcodes"].get("NOERROR", 0) for r in results),
            "cpu_us_per_query": col("server_cpu_us_per_query"),
            "cpu_pct": col("server_cpu_pct"),
            "kernel_pct": col("server_kernel_pct"),
            "rss_mib": col("server_rss_mib"),
        }
    return out


def ratios_vs_dnsd(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """dnsd's queries/s over each peer's, round by round: median and spread."""
    if "dnsd" not in runs:
        return {}
    dnsd = [r["qps"] for r in runs["dnsd"]]
    return {
        f"dnsd/{name}": summarize(paired_ratios(dnsd, [r["qps"] for r in results])).to_dict()
        for name, results in runs.items()
        if name != "dnsd"
    }


def _load_dict(load: Load) -> dict:
    return {
        "mode": load.mode,
        "clients": load.clients,
        "outstanding": load.outstanding,
        "duration_s": load.duration_s,
    }
