"""`python3 -m bench`: run the suite, write bench/results/<timestamp>-<sha>.{json,md}, print
the markdown. `--smoke` is the short CI run of every part; see bench/README.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import cluster, dns, scale
from .lab import REPO_ROOT, BenchError, check_environment, cpu_plan
from .peers import AARDVARK
from .report import RESULTS_DIR, render, write
from .targets import evaluate

SMOKE_DNS = dns.DnsOptions(rounds=1, duration_s=1, new_names=60_000, cache_names=50_000)
SMOKE_SCALE = scale.ScaleOptions(
    rounds=1,
    duration_s=1,
    name_levels=(10, 100, 1_000),
    samples=20,
    sandboxes=20,
    late_samples=5,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="short run of every part (CI, < 2 min)")
    p.add_argument(
        "--only",
        choices=("dns", "scale", "cluster"),
        help="run one part (cluster: several hosts on etcd; only run when asked)",
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds per comparison (default 4)")
    p.add_argument("--duration", type=float, help="seconds per dnsperf run (default 4)")
    p.add_argument("--sandboxes", type=int, help="sandboxes on one daemon (default 1000)")
    p.add_argument("--samples", type=int, help="network creates / connects timed (default 200)")
    p.add_argument(
        "--late-samples",
        type=int,
        help="connects timed with all the sandboxes in place (default 20)",
    )
    p.add_argument(
        "--dnsd-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `dnsd serve` argument for the dns part, e.g. --dnsd-arg=--no-metrics",
    )
    p.add_argument(
        "--cases",
        type=lambda text: tuple(c for c in text.split(",") if c),
        default=(),
        metavar="A,B",
        help=f"dns part: run only these comparisons ({','.join(dns.CASES)}); default all",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where to write")
    p.add_argument("--render", type=Path, metavar="JSON", help="print the table of a past run")
    args = p.parse_args(argv)
    for flag in ("rounds", "duration", "sandboxes", "samples", "late_samples"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive")
    return args


def options(args: argparse.Namespace) -> tuple[dns.DnsOptions, scale.ScaleOptions]:
    """The defaults (or smoke's), overridden by the flags given."""
    dns_opts = SMOKE_DNS if args.smoke else dns.DnsOptions()
    scale_opts = SMOKE_SCALE if args.smoke else scale.ScaleOptions()
    common = {}
    if args.rounds is not None:
        common["rounds"] = args.rounds
    if args.duration is not None:
        common["duration_s"] = args.duration
    dns_opts = dataclasses.replace(
        dns_opts, **common, daemon_args=tuple(args.dnsd_arg), cases=args.cases
    )
    extra = {
        k: getattr(args, k) for k in ("sandboxes", "samples", "late_samples") if getattr(args, k)
    }
    return dns_opts, dataclasses.replace(scale_opts, **common, **extra)


def _output(*argv: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout + proc.stderr).strip()


def _version_line(text: str, marker: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if marker in ln), "absent")


def meta(
    args: argparse.Namespace,
    dns_opts: dns.DnsOptions,
    scale_opts: scale.ScaleOptions,
    now: datetime,
) -> dict:
    sha = _output("git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD") or "nogit"
    dirty = bool(
        _output("git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "dnsd", "netcore")
    )
    cpu = _version_line(Path("/proc/cpuinfo").read_text(), "model name").partition(":")[2]
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = "absent"
    aardvark = _version_line(_output(AARDVARK, "--version"), "aardvark-dns ")
    return {
        "timestamp": now.isoformat(timespec="seconds"),
        "file_timestamp": now.strftime("%Y%m%dT%H%M%SZ"),
        "git": sha + ("-dirty" if dirty else ""),
        "machine": f"{os.cpu_count()} cpus ({cpu.strip()}), Linux {platform.release()}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        "versions": {
            "python": platform.python_version(),
            "uvloop": uv,
            "dnsperf": _version_line(_output("dnsperf", "-h"), "Version").split()[-1],
            "dnsmasq": _version_line(_output("dnsmasq", "--version"), "version").split()[2],
            "aardvark-dns": aardvark.split()[-1],
        },
        "options": {
            "smoke": args.smoke,
            "only": args.only,
            "dns": dataclasses.asdict(dns_opts),
            "scale": dataclasses.asdict(scale_opts),
        },
    }


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: every lab's finally runs


def run_parts(
    args: argparse.Namespace, dns_opts: dns.DnsOptions, scale_opts: scale.ScaleOptions
) -> dict:
    """Each part in its own lab; a failed part is recorded and the others still run."""
    gen_cpu, server_cpu = cpu_plan()
    results: dict = {"meta": meta(args, dns_opts, scale_opts, datetime.now(UTC))}
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    parts = [
        ("dns", lambda: results.__setitem__("dns", dns.run(dns_opts, gen_cpu, server_cpu))),
        (
            "scale names",
            lambda: results.setdefault("scale", {}).__setitem__(
                "names", scale.run_names(scale_opts, gen_cpu, server_cpu)
            ),
        ),
        (
            "scale sandboxes",
            lambda: results.setdefault("scale", {}).__setitem__(
                "sandboxes", scale.run_sandboxes(scale_opts, server_cpu)
            ),
        ),
    ]
    if args.only == "cluster":
        opts = cluster.ClusterBenchOptions(
            samples=args.samples or (10 if args.smoke else 60),
            rounds=args.rounds or (1 if args.smoke else 4),
            duration_s=args.duration or (1 if args.smoke else 4),
        )
        parts.append(
            ("cluster", lambda: results.__setitem__("cluster", cluster.run(opts, gen_cpu, None)))
        )
    for name, part in parts:
        if args.only and not name.startswith(args.only):
            continue
        started = time.monotonic()
        try:
            part()
        except BenchError as exc:
            errors[name] = str(exc)
            print(f"bench: {name} failed: {exc}", file=sys.stderr)
        timings[name] = time.monotonic() - started
    results["meta"]["part_seconds"] = timings
    results["meta"]["load_average_at_end"] = os.getloadavg()[0]
    results["errors"] = errors
    results["targets"] = [v.to_dict() for v in evaluate(results)]
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(json.loads(args.render.read_text())), end="")
        return 0
    try:
        check_environment()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    dns_opts, scale_opts = options(args)
    try:
        dns.selected_cases(dns_opts.cases)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        results = run_parts(args, dns_opts, scale_opts)
    except KeyboardInterrupt:
        print("bench: interrupted; its namespaces and processes were removed", file=sys.stderr)
        return 130
    json_path, md_path = write(results, args.results_dir)
    print(render(results), end="")
    print(f"bench: wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
