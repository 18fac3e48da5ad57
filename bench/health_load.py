"""Local-answer latency with 1,000 active health checks vs none (issue 14).

`python3 -m bench.health_load [--checks 1000] [--interval 1] [--duration 8] [--qps 2000]`
(root). One lab (tests/integration/harness.py): the daemon, a network with a sandbox asking
50 local names (some shared, health-aware) at a fixed rate with dnsperf -v at 127.0.0.11, and
`--checks` host-mode sandboxes whose TCP checks connect every `--interval` to a listener on the
daemon's loopback (real connects, every check healthy). Phases alternate: no checks, checks on
(all created, then all healthy), checks switched off (Test ["NONE"]), checks on again. Each
phase reports p50/p99/p99.9/max of the local answers, the daemon's CPU and the probe worker's
(dnsd.health.worker). Results are printed and written to bench/results/health-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from .dnsperf import Load, write_query_file
from .lab import BenchHost, check_environment, cpu_plan, lab_session, sample
from .servers import Target, measure

RESULTS = Path(__file__).parent / "results"
PORT = 7070
SECOND = 1_000_000_000
LISTENER = (
    "import socket\n"
    "s = socket.create_server(('127.0.0.1', %d), backlog=4096)\n"
    "while True:\n"
    "    s.accept()[0].close()\n"
)


def _checks(lab: BenchHost, count: int, test: list[str], interval_s: float, create: bool) -> float:
    """Create (or update) `count` host-mode sandboxes with `test`; seconds it took."""
    check = {"Test": test, "Interval": int(interval_s * SECOND), "Timeout": SECOND}

    def one(index: int) -> None:
        name = f"{lab.prefix}hc{index}"
        if create:
            lab.ok(
                "POST", "/sandboxes", {"Name": name, "NetworkMode": "host", "Healthcheck": check}
            )
        else:
            lab.ok("POST", f"/sandboxes/{name}/update", {"Healthcheck": check})

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def _healthy(lab: BenchHost) -> int:
    sandboxes = lab.ok("GET", "/sandboxes")
    assert isinstance(sandboxes, list)
    return sum(
        1
        for s in sandboxes
        if ((s.get("State") or {}).get("Health") or {}).get("Status") == "healthy"
    )


def run(opts: argparse.Namespace) -> dict:
    check_environment()
    gen_cpu, server_cpu = cpu_plan()
    out: dict = {"options": vars(opts), "phases": []}
    with lab_session("health", server_cpu) as lab:
        lab.start_daemon()
        lab.ok(
            "POST",
            "/networks/create",
            {"Name": "hb", "IPAM": {"Config": [{"Subnet": "10.94.0.0/24"}]}},
        )
        names = []
        for index in range(10):
            short = f"web{index}"
            lab.ok("POST", "/sandboxes", {"Name": lab.sandbox_name(short)})
            lab.connect("hb", short, Aliases=[f"svc{index % 3}", f"w{index}a", f"w{index}b"])
            names += [lab.sandbox_name(short), f"w{index}a", f"w{index}b", f"svc{index % 3}"]
        lab.ok("POST", "/sandboxes", {"Name": lab.sandbox_name("asker"), "NetworkMode": "hb"})
        listener = subprocess.Popen(
            ["nsenter", f"--net={lab.path}", sys.executable, "-c", LISTENER % PORT],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        lab.extra.append(listener)
        query_file = str(write_query_file(lab.tmp / "names.txt", names))
        target = Target("dnsd", lab.sandbox_name("asker"), "127.0.0.11", lab.daemon_pid)
        load = Load(opts.duration, "udp", 1, 20, max_qps=opts.qps, verbose=True)

        def phase(label: str, **extra: object) -> None:
            # The probes run in a worker process (dnsd.health.worker): its CPU too, apart.
            worker = (lab.ok("GET", "/info")["Dnsd"].get("Health") or {}).get("WorkerPid")  # type: ignore[index]
            before = sample(worker).cpu_s if worker else 0.0
            result = measure(target, query_file, load, cpu=gen_cpu)
            worker_cpu = (sample(worker).cpu_s - before) if worker else 0.0
            extra["worker_cpu_pct"] = worker_cpu / opts.duration * 100
            row = {"phase": label, **extra, **result}
            out["phases"].append(row)
            lat = result.get("latency") or {}
            print(
                f"{label:>22}: p50 {lat.get('p50_ms', float('nan')):.3f} ms  "
                f"p99 {lat.get('p99_ms', float('nan')):.3f} ms  "
                f"p99.9 {lat.get('p999_ms', float('nan')):.3f} ms  "
                f"max {result['max_latency_ms']:.2f} ms  lost {result['lost']}  "
                f"daemon cpu {result['server_cpu_pct']:.0f}%  "
                f"worker cpu {extra['worker_cpu_pct']:.0f}%",
                flush=True,
            )

        tcp = ["TCP", str(PORT)]
        phase("no checks")
        took = _checks(lab, opts.checks, tcp, opts.interval, create=True)
        deadline = time.monotonic() + 120
        while (healthy := _healthy(lab)) < opts.checks and time.monotonic() < deadline:
            time.sleep(1)
        print(f"{opts.checks} checks created in {took:.1f} s, {healthy} healthy", flush=True)
        phase(f"{opts.checks} checks", created_s=took, healthy=healthy)
        _checks(lab, opts.checks, ["NONE"], opts.interval, create=False)
        phase("checks off")
        _checks(lab, opts.checks, tcp, opts.interval, create=False)
        time.sleep(opts.interval * 2)
        phase(f"{opts.checks} checks again", healthy=_healthy(lab))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.health_load", description=__doc__)
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--qps", type=int, default=2000, help="local queries per second")
    opts = parser.parse_args(argv)
    out = run(opts)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"health-{stamp}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
