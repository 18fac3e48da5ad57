"""The run's results as markdown tables, and both files under bench/results/.

`render` is a pure function of the results dict (the JSON written next to it), so a past run's
table can be re-rendered from its JSON: `python3 -m bench --render bench/results/X.json`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .targets import evaluate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVERS = ("dnsd", "dnsmasq", "aardvark-dns")


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _spread(summary: dict | None, digits: int = 0, unit: str = "") -> str:
    """`median (min-max)` of a per-round summary."""
    if not summary or summary.get("median") is None or math.isnan(summary["median"]):
        return "-"
    med = f"{_num(summary['median'], digits)}{unit}"
    if len(summary.get("samples", ())) < 2:
        return med
    return f"{med} ({_num(summary['min'], digits)}-{_num(summary['max'], digits)})"


def _table(headers: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


SERVER_HEADERS = [
    "server",
    "queries/s (median, min-max)",
    "avg latency ms",
    "p99 ms",
    "lost / sent",
    "not NOERROR",
    "server CPU us/query",
    "server CPU %",
    "of it in the kernel %",
    "RSS MiB",
    "dnsd / server",
]
HALF_HEADERS = [
    "server",
    "queries/s",
    "avg ms",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "lost",
    "server CPU %",
]
NAMES_HEADERS = [
    "names",
    "registered",
    "queries/s",
    "vs fewest (paired rounds)",
    "lost",
    "CPU us/query",
    "RSS MiB",
]
LATENCY_HEADERS = ["operation", "n", "median ms", "p99 ms", "max ms"]
LATENCIES = (
    ("network_create", "network create"),
    ("network_remove", "network remove"),
    ("sandbox_create", "sandbox create (no network)"),
    ("connect", "connect"),
    ("connect_to_resolvable", "connect -> first answer inside"),
    ("resolvable_after_return", "API return -> first answer"),
    ("disconnect", "disconnect"),
    ("sandbox_remove", "sandbox remove"),
)


def _servers_table(part: dict) -> list[str]:
    rows = []
    for name in [s for s in SERVERS if s in part["summary"]]:
        s = part["summary"][name]
        ratio = part["ratios"].get(f"dnsd/{name}")
        lost = f"{_num(s['lost'])} / {_num(s['sent'])}"
        latency = [_spread(s["avg_latency_ms"], 3), _spread(s.get("p99_ms"), 3)]
        rows.append([name, _spread(s["qps"]), *latency, lost, _num(s.get("not_noerror"))])
        rows[-1] += [_spread(s["cpu_us_per_query"], 1), _spread(s["cpu_pct"])]
        rows[-1] += [_spread(s.get("kernel_pct")), _spread(s["rss_mib"], 1)]
        rows[-1] += [_spread(ratio, 2, "x") if ratio else ""]
    return _table(SERVER_HEADERS, rows)


def _half_load_row(name: str, s: dict) -> list[str]:
    keys = ("avg_latency_ms", "p50_ms", "p99_ms", "p999_ms", "max_ms")
    cells = [_spread(s.get(k), 3) for k in keys]
    return [name, _spread(s["qps"]), *cells, _num(s["lost"]), _spread(s["cpu_pct"])]


def _dns_section(dns: dict) -> list[str]:
    setup = dns["setup"]
    udp, tcp = setup["udp_load"], setup["tcp_load"]
    many = setup["tcp_many_load"]
    first = next((dns[k] for k in ("udp", "mixed", "forwarded_new") if k in dns), None)
    rounds = len(first["runs"]["dnsd"]) if first else 0
    per_conn = tcp["outstanding"] // max(1, tcp["clients"])
    out = [
        f"## DNS: {setup['local_names']} local names, {rounds} interleaved rounds x "
        f"{udp['duration_s']:g} s; dnsperf on cpu {setup['load_cpu']}, servers on cpu "
        f"{setup['server_cpu']}",
        "",
    ]
    if "cases" in dns:  # a run of some cases only (`--cases`)
        out += [f"Cases run: {', '.join(dns['cases'])}.", ""]
    if "udp" in dns:
        out += [
            f"### UDP (dnsperf -c {udp['clients']} -q {udp['outstanding']})",
            "",
            *_servers_table(dns["udp"]),
        ]
    if "tcp" in dns:
        out += [
            f"### TCP pipelined (dnsperf -m tcp -c {tcp['clients']} -q {tcp['outstanding']}: "
            f"~{per_conn} in flight per connection)",
            "",
            *_servers_table(dns["tcp"]),
        ]
    if "tcp_many" in dns:
        out += [
            f"### TCP, many connections (dnsperf -m tcp -c {many['clients']} -q "
            f"{many['outstanding']}: dnsmasq's best case, a process per connection)",
            "",
            *_servers_table(dns["tcp_many"]),
        ]
    if "half_load" in dns:
        half = dns["half_load"]
        out += [
            f"### Fixed half load: {_num(half['offered_qps'])} queries/s (half of dnsd's "
            "median UDP saturation) to every server",
            "",
            *_table(
                HALF_HEADERS,
                [_half_load_row(n, half["summary"][n]) for n in SERVERS if n in half["summary"]],
            ),
        ]
    if "mixed" in dns:
        out += [
            "### Mixed: half local names, half forwarded to the fake upstream "
            f"({setup['forwarded_names']} names)",
            "",
            *_servers_table(dns["mixed"]),
        ]
    if "half_load_cached" in dns:
        cached = dns["half_load_cached"]
        out += [
            f"### Fixed half load, forwarded names that repeat (cached): "
            f"{_num(cached['offered_qps'])} queries/s",
            "",
            *_table(
                HALF_HEADERS,
                [
                    _half_load_row(n, cached["summary"][n])
                    for n in SERVERS
                    if n in cached["summary"]
                ],
            ),
        ]
    if "forwarded_new" in dns:
        repeated = sum(
            r.get("repeated", 0) for rs in dns["forwarded_new"]["runs"].values() for r in rs
        )
        out += [
            "### Forwarded only, every name new (no cache hit possible)",
            "",
            *_servers_table(dns["forwarded_new"]),
            f"Names asked twice because a run outran its query file: {repeated:,}.",
            "",
        ]
    rss = dns.get("cache_rss")
    if rss:
        out += [
            f"Forward cache ({rss['size']:,} entries) fed {rss['names']:,} distinct names in a "
            f"fresh process: RSS {rss['rss_before_mib']:.1f} MiB empty, "
            f"{rss['rss_full_mib']:.1f} MiB full, {rss['rss_end_mib']:.1f} MiB at the end "
            f"({rss['us_per_store']:.1f} us per name, building the answer included).",
            "",
        ]
    for name, reason in dns.get("skipped", {}).items():
        out += [f"- {name} skipped: {reason}", ""]
    return out


def _names_section(names: dict) -> list[str]:
    rows = []
    for key, v in names["levels"].items():
        versus = _spread(v.get("vs_lowest"), 2, "x")
        rows.append([key, _num(v["registered"]), _spread(v["qps"]), versus, _num(v["lost"])])
        rows[-1] += [_spread(v["cpu_us_per_query"], 1), _num(v["rss_mib"], 1)]
    return [
        "## Scale: registered names (UDP, one asker; a daemon per level, interleaved rounds)",
        "",
        *_table(NAMES_HEADERS, rows),
    ]


def _latency_row(label: str, v: dict) -> list[str]:
    cells = [_num(v[k], 1) for k in ("median_ms", "p99_ms", "max_ms")]
    return [label, _num(v["n"]), *cells]


def _sandboxes_section(sb: dict) -> list[str]:
    rows = [_latency_row(label, sb[key]) for key, label in LATENCIES if key in sb]
    many = sb.get("many")
    if not many:
        return ["## Scale: API latencies", "", *_table(LATENCY_HEADERS, rows)]
    count = many["sandboxes"]
    rows.append(
        _latency_row(f"create+connect while filling to {count}", many["create_and_connect"])
    )
    rows.append(_latency_row("... the last 100 of them", many["create_and_connect_last_100"]))
    for key, v in many["at_scale"].items():
        rows.append(_latency_row(f"{key.replace('_', ' ')} with {count} sandboxes", v))
    states = [
        ("empty daemon", sb["baseline"]),
        (f"{count} sandboxes on {many['networks']} networks", many["loaded"]),
        ("after a restart", many["after_restart"]),
    ]
    usage = [
        [label, _num(s["rss_mib"], 1), _num(s["fds"]), _num(s["sockets"]), _num(s["threads"])]
        for label, s in states
    ]
    return [
        "## Scale: API latencies",
        "",
        *_table(LATENCY_HEADERS, rows),
        "## Scale: one daemon, many sandboxes",
        "",
        *_table(["daemon", "RSS MiB", "open fds", "sockets", "threads"], usage),
        f"Filled in {many['fill_s']:.1f} s. Restart: stopped in {many['stop_s']:.2f} s; after "
        f"exec the API answered in {many['restart_api_s']:.2f} s and DNS in the last sandbox in "
        f"{many['restart_resolvable_s']:.2f} s ({many['restart_checked']} random sandboxes "
        "checked after).",
        "",
    ]


def render(results: dict) -> str:
    """The markdown report of one run."""
    meta = results["meta"]
    out = [
        f"# dnsd benchmark {meta['timestamp']} ({meta['git']})",
        "",
        f"{meta['machine']}; {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}; "
        f"options: {meta['options']}",
        "",
        "## Targets (issues 13 and 5)",
        "",
    ]
    rows = []
    for v in evaluate(results):
        met = {True: "met", False: "**not met**", None: "not measured"}[v.met]
        margin = "" if v.margin is None else f"{v.margin:.2f}"
        rows.append([v.target, v.measured, met, margin])
    out += _table(["target", "measured", "verdict", "measured/required"], rows)
    if "dns" in results:
        out += _dns_section(results["dns"])
    if "names" in results.get("scale", {}):
        out += _names_section(results["scale"]["names"])
    if "sandboxes" in results.get("scale", {}):
        out += _sandboxes_section(results["scale"]["sandboxes"])
    if "cluster" in results:
        out += _cluster_section(results["cluster"])
    for part, error in results.get("errors", {}).items():
        out += [f"- **{part} failed**: {error}", ""]
    return "\n".join(out).rstrip() + "\n"


def _cluster_section(part: dict) -> list[str]:
    """Issue 17: several hosts on etcd against one host on SQLite."""
    out = ["## Cluster (etcd, two hosts) vs a single host (SQLite)", ""]
    rows = [_latency_row("connected on B -> resolvable on A", part["remote_resolvable_ms"])]
    rows += [_latency_row(f"connect ({k})", v) for k, v in part["connect"].items()]
    out += _table(["what", "n", "median ms", "p99 ms", "max ms"], rows)
    udp = part["udp_local_names"]
    out += _table(
        ["local-name UDP qps", "cluster host", "single host", "cluster/single"],
        [
            [
                "median (spread)",
                _spread(udp["cluster_qps"]),
                _spread(udp["single_qps"]),
                _spread(udp["ratio"], 3),
            ]
        ],
    )
    return out


def _finite(value: Any) -> Any:
    """NaN and infinity as null: strict JSON readers refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write(results: dict, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """`<timestamp>-<git sha>.json` and `.md` under `directory`; written via a temporary name
    so a crash never leaves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{results['meta']['file_timestamp']}-{results['meta']['git']}"
    paths = (directory / f"{stem}.json", directory / f"{stem}.md")
    texts = (json.dumps(_finite(results), indent=1, default=str) + "\n", render(results))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
