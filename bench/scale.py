"""`scale`: answers as names grow, API latencies, and one daemon serving many sandboxes.

Everything goes through the daemon's HTTP API, as a user would drive it; the daemon's memory,
descriptors and threads are read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .dnsperf import Load, write_query_file
from .lab import BenchError, BenchHost, lab_session, sample
from .probe import Prober, resolve_once
from .servers import Target, measure
from .stats import paired_ratios, percentile, summarize

RESOLVER = "127.0.0.11"
NAMES_PER_SANDBOX = 100  # a sandbox's own name + 99 aliases: 10,000 names in ~100 sandboxes
SANDBOXES_PER_NETWORK = 250  # each fill network is a /24
RESOLVE_DEADLINE_S = 10.0
RESTART_DEADLINE_S = 300.0  # a restart with 1,000 sandboxes opens 1,000 listeners


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    rounds: int = 4
    duration_s: float = 4.0
    name_levels: tuple[int, ...] = (10, 1_000, 10_000)
    samples: int = 200  # network creates, connects, disconnects
    sandboxes: int = 1_000  # attached to networks of one daemon
    late_samples: int = 20  # connects measured once all the sandboxes exist
    outstanding: int = 100


Log = Callable[[str], None]


def _log(message: str) -> None:
    print(f"bench scale: {message}", file=sys.stderr, flush=True)


def run_sandboxes(opts: ScaleOptions, server_cpu: int | None, log: Log = _log) -> dict:
    """API latencies, then many sandboxes on one daemon and its restart, in a lab of its own."""
    with lab_session("scale", server_cpu) as lab:
        lab.start_daemon()
        out: dict = {"baseline": _daemon_sample(lab)}
        log(f"network create/remove x {opts.samples}")
        out.update(_network_latency(lab, opts.samples))
        log(f"sandbox create, connect (to resolvable), disconnect x {opts.samples}")
        out.update(_connect_latency(lab, "lat", "10.94.0.0/16", opts.samples, "c"))
        log(f"{opts.sandboxes} sandboxes on {_networks_for(opts.sandboxes)} networks")
        out["many"] = _many_sandboxes(lab, opts, log)
        return out


# --- names ---


def run_names(
    opts: ScaleOptions, gen_cpu: int | None, server_cpu: int | None, log: Log = _log
) -> dict:
    """Queries/s with 10, 1,000 and 10,000 registered names: one daemon per level, measured in
    interleaved rounds like the peers, with every daemon but the measured one frozen
    (SIGSTOP), so idle timers of the others never share its core."""
    levels = sorted(opts.name_levels)
    for level in levels:
        sandbox_sizes(level)  # refuse bad levels before building anything
    if len(set(levels)) != len(levels):
        raise BenchError(f"name levels must be distinct: {levels}")
    load = Load(opts.duration_s, "udp", 1, opts.outstanding)
    with contextlib.ExitStack() as stack:
        labs: dict[int, tuple[BenchHost, Target, str, int]] = {}
        for level in levels:
            lab = stack.enter_context(lab_session(f"names{level}", server_cpu))
            labs[level] = (lab, *_names_lab(lab, level, log))
            lab.add_cleanup(lambda lab=lab: _thaw(lab))  # a stopped daemon ignores SIGTERM
            _freeze(lab)
        runs: dict[int, list[dict]] = {level: [] for level in levels}
        for r in range(opts.rounds):
            for level in levels if r % 2 == 0 else reversed(levels):
                lab, target, query_file, _ = labs[level]
                _thaw(lab)
                try:
                    result = measure(target, query_file, load, cpu=gen_cpu)
                finally:
                    _freeze(lab)
                runs[level].append(result)
                log(
                    f"  round {r + 1}/{opts.rounds} {level} names: {result['qps']:.0f} q/s, "
                    f"lost {result['lost']}"
                )
        for lab, *_ in labs.values():
            _thaw(lab)
        low = levels[0]
        out = {}
        for level, (lab, _, _, registered) in labs.items():
            out[str(level)] = _level_summary(runs[level], registered, lab)
            ratios = paired_ratios([r["qps"] for r in runs[level]], [r["qps"] for r in runs[low]])
            out[str(level)]["vs_lowest"] = summarize(ratios).to_dict()
        return {"levels": out}


def _freeze(lab: BenchHost) -> None:
    os.kill(lab.daemon_pid, signal.SIGSTOP)


def _thaw(lab: BenchHost) -> None:
    if lab.daemon is not None and lab.daemon.poll() is None:
        os.kill(lab.daemon.pid, signal.SIGCONT)


def sandbox_sizes(level: int) -> list[int]:
    """Names per sandbox (its own name + aliases, at most 100) for exactly `level` names:
    1000 -> [100] * 10, 250 -> [100, 100, 50]."""
    if level <= 0:
        raise BenchError(f"a name level must be positive, not {level}")
    full, rest = divmod(level, NAMES_PER_SANDBOX)
    return [NAMES_PER_SANDBOX] * full + ([rest] if rest else [])


def _names_lab(lab: BenchHost, level: int, log: Log) -> tuple[Target, str, int]:
    """A daemon with `level` names on one network and an asker there: (target, query file
    holding every name once in random order, registered count)."""
    started = time.monotonic()
    lab.start_daemon()
    lab.network("names", IPAM={"Config": [{"Subnet": "10.92.0.0/16"}]})
    records: dict[str, str] = {}
    for k, size in enumerate(sandbox_sizes(level)):
        aliases = [f"n{k}-a{j}" for j in range(size - 1)]
        info = lab.sandbox(f"n{k}", "names", EndpointConfig={"Aliases": aliases})
        address = info["Networks"]["names"]["IPAddress"]
        for name in (lab.sandbox_name(f"n{k}"), *aliases):
            records[name] = address
    lab.sandbox("asker", "names")
    rng = random.Random(level)
    names = list(records)
    rng.shuffle(names)
    query_file = str(write_query_file(lab.tmp / "names.txt", names))
    for name in rng.sample(names, min(20, len(names))):  # right answers, not just fast ones
        reply = resolve_once(lab.netns_path("asker"), RESOLVER, name)
        if reply.addresses != (records[name],):
            raise BenchError(f"dnsd answers {name} with {reply}, expected {records[name]}")
    log(f"{level} names registered in {time.monotonic() - started:.1f} s")
    target = Target("dnsd", lab.sandbox_name("asker"), RESOLVER, lab.daemon_pid)
    return target, query_file, len(records)


def _level_summary(runs: list[dict], registered: int, lab: BenchHost) -> dict:
    return {
        "registered": registered,
        "qps": summarize([r["qps"] for r in runs]).to_dict(),
        "lost": sum(r["lost"] for r in runs),
        "cpu_us_per_query": summarize([r["server_cpu_us_per_query"] for r in runs]).to_dict(),
        "rss_mib": sample(lab.daemon_pid).rss_kib / 1024,
        "runs": runs,
    }


# --- API latencies ---


def latency_dict(seconds: Sequence[float]) -> dict:
    """Median, p99 and max in milliseconds of API call durations."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": summarize(ms).median,
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


def _network_latency(lab: BenchHost, samples: int) -> dict:
    if samples > 250:
        raise BenchError("at most 250 network samples: each takes a /24 of 10.93.0.0/16")
    create, remove = [], []
    for i in range(samples):
        body = {"Name": f"nc{i}", "IPAM": {"Config": [{"Subnet": f"10.93.{i}.0/24"}]}}
        create.append(lab.timed("POST", "/networks/create", body))
    for i in range(samples):
        remove.append(lab.timed("DELETE", f"/networks/nc{i}"))
    return {"network_create": latency_dict(create), "network_remove": latency_dict(remove)}


def _connect_latency(lab: BenchHost, network: str, subnet: str, samples: int, stem: str) -> dict:
    """Fresh sandboxes, each connected through the API, then polled from inside with a raw
    query for its own name until it answers: connect latency and connect-to-resolvable."""
    lab.network(network, IPAM={"Config": [{"Subnet": subnet}]})
    create, connect, resolvable, after_return, polls = [], [], [], [], []
    for i in range(samples):
        short = f"{stem}{i}"
        create.append(lab.timed("POST", "/sandboxes", {"Name": lab.sandbox_name(short)}))
        prober = Prober(lab.netns_path(short), RESOLVER)
        try:
            body = {"Container": lab.sandbox_name(short), "EndpointConfig": {}}
            took = lab.timed("POST", f"/networks/{network}/connect", body)
            waited, sent = prober.wait_for_address(lab.sandbox_name(short), RESOLVE_DEADLINE_S)
        finally:
            prober.close()
        connect.append(took)
        after_return.append(waited)
        resolvable.append(took + waited)
        polls.append(sent)
    disconnect, remove = [], []
    for i in range(samples):
        body = {"Container": lab.sandbox_name(f"{stem}{i}")}
        disconnect.append(lab.timed("POST", f"/networks/{network}/disconnect", body))
    for i in range(samples):
        remove.append(lab.timed("DELETE", f"/sandboxes/{lab.sandbox_name(f'{stem}{i}')}"))
    lab.ok("DELETE", f"/networks/{network}")
    return {
        "sandbox_create": latency_dict(create),
        "connect": latency_dict(connect),
        "connect_to_resolvable": latency_dict(resolvable),
        "resolvable_after_return": latency_dict(after_return),
        "first_poll_answered": sum(1 for p in polls if p == 1),
        "disconnect": latency_dict(disconnect),
        "sandbox_remove": latency_dict(remove),
    }


# --- many sandboxes ---


def _networks_for(count: int) -> int:
    return max(1, -(-count // SANDBOXES_PER_NETWORK))


def _daemon_sample(lab: BenchHost) -> dict:
    s = sample(lab.daemon_pid, descriptors=True)
    return {"rss_mib": s.rss_kib / 1024, "fds": s.fds, "sockets": s.sockets, "threads": s.threads}


def _many_sandboxes(lab: BenchHost, opts: ScaleOptions, log: Log) -> dict:
    networks = _networks_for(opts.sandboxes)
    if networks > 256:
        raise BenchError("at most 64,000 sandboxes: one /24 of 10.95.0.0/16 per 250")
    for k in range(networks):
        lab.network(f"fill{k}", IPAM={"Config": [{"Subnet": f"10.95.{k}.0/24"}]})
    created = []
    started = time.monotonic()
    for i in range(opts.sandboxes):
        body = {
            "Name": lab.sandbox_name(f"s{i}"),
            "NetworkMode": f"fill{i // SANDBOXES_PER_NETWORK}",
        }
        created.append(lab.timed("POST", "/sandboxes", body))
        if (i + 1) % 100 == 0:
            log(f"  {i + 1} sandboxes, last create {created[-1] * 1000:.0f} ms")
    fill_s = time.monotonic() - started
    out: dict = {
        "sandboxes": opts.sandboxes,
        "networks": networks,
        "fill_s": fill_s,
        "create_and_connect": latency_dict(created),
        "create_and_connect_last_100": latency_dict(created[-100:]),
        "loaded": _daemon_sample(lab),
    }
    last = f"s{opts.sandboxes - 1}"
    # the first sandbox of the last one's network: a name the last sandbox must resolve
    first = lab.sandbox_name(
        f"s{(opts.sandboxes - 1) // SANDBOXES_PER_NETWORK * SANDBOXES_PER_NETWORK}"
    )
    resolve_once(lab.netns_path(last), RESOLVER, first)  # every listener is really serving
    log(f"connect x {opts.late_samples} with {opts.sandboxes} sandboxes in place")
    late = _connect_latency(lab, "late", "10.96.0.0/16", opts.late_samples, "late")
    out["at_scale"] = {k: late[k] for k in ("connect", "connect_to_resolvable", "disconnect")}
    log("restarting the daemon")
    stop_started = time.monotonic()
    lab.stop_daemon()
    out["stop_s"] = time.monotonic() - stop_started
    prober = Prober(lab.netns_path(last), RESOLVER)
    try:
        # The API socket is claimed before the listeners start: answering /_ping is not
        # serving DNS. Ready means the last sandbox (the last listener opened) resolves.
        out["restart_api_s"] = lab.start_daemon()
        waited, _ = prober.wait_for_address(first, RESTART_DEADLINE_S)
        out["restart_resolvable_s"] = out["restart_api_s"] + waited
    finally:
        prober.close()
    out["restart_checked"] = _check_some_resolve(lab, opts.sandboxes)
    out["after_restart"] = _daemon_sample(lab)
    return out


def _check_some_resolve(lab: BenchHost, count: int, sample_size: int = 50) -> int:
    """After the restart, random sandboxes must answer the first name of their network."""
    rng = random.Random(count)
    picked = rng.sample(range(count), min(sample_size, count))
    for i in picked:
        network_first = i // SANDBOXES_PER_NETWORK * SANDBOXES_PER_NETWORK
        name = lab.sandbox_name(f"s{network_first}")
        if not resolve_once(lab.netns_path(f"s{i}"), RESOLVER, name).addresses:
            raise BenchError(f"after the restart s{i} cannot resolve {name}")
    return len(picked)
