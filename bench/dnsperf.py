"""dnsperf: the command line for one run, and the parse of what it prints.

This dnsperf (2.10, Debian) has no latency histogram: per-query latencies come from `-v`, one
`> RCODE name type seconds` line per answer, which the latency runs ask for. Throughput runs
read only the summary, so printing cannot slow the load generator down.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .lab import BenchError
from .stats import latency_summary

DNSPERF = "dnsperf"
# Seconds dnsperf waits for an answer: a query answered later than this is "lost". Short, so a
# run ends soon after its time limit, yet 1000x any latency a healthy server shows here.
QUERY_TIMEOUT_S = 2


@dataclass(frozen=True, slots=True)
class DnsperfResult:
    """dnsperf's summary of one run (plus per-query latencies when run with `-v`)."""

    sent: int
    completed: int
    lost: int
    qps: float
    run_time_s: float
    avg_latency_s: float
    min_latency_s: float
    max_latency_s: float
    stddev_latency_s: float
    rcodes: tuple[tuple[str, int], ...] = ()
    latencies_s: tuple[float, ...] = field(default=(), repr=False)
    timeouts: int = 0  # "T" lines of -v

    @property
    def noerror(self) -> int:
        return dict(self.rcodes).get("NOERROR", 0)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sent": self.sent,
            "completed": self.completed,
            "lost": self.lost,
            "qps": self.qps,
            "run_time_s": self.run_time_s,
            "avg_latency_ms": self.avg_latency_s * 1000,
            "min_latency_ms": self.min_latency_s * 1000,
            "max_latency_ms": self.max_latency_s * 1000,
            "stddev_latency_ms": self.stddev_latency_s * 1000,
            "rcodes": dict(self.rcodes),
        }
        if self.latencies_s:
            out["latency"] = latency_summary(self.latencies_s)
            out["timeouts"] = self.timeouts
        return out


_COUNT = r"\s*([0-9]+)"
_FLOAT = r"\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)"
_FIELDS = {
    "sent": re.compile(r"Queries sent:" + _COUNT),
    "completed": re.compile(r"Queries completed:" + _COUNT),
    "lost": re.compile(r"Queries lost:" + _COUNT),
    "run_time_s": re.compile(r"Run time \(s\):" + _FLOAT),
    "qps": re.compile(r"Queries per second:" + _FLOAT),
    "stddev_latency_s": re.compile(r"Latency StdDev \(s\):" + _FLOAT),
}
_AVERAGE = re.compile(
    r"Average Latency \(s\):" + _FLOAT + r"\s*\(min" + _FLOAT + r",\s*max" + _FLOAT
)
_RCODES = re.compile(r"Response codes:\s*(.*)")
_RCODE_ITEM = re.compile(r"([A-Z][A-Z0-9_]*)\s+([0-9]+)\s*\(")


def parse_summary(text: str) -> DnsperfResult:
    """The `Statistics:` block of dnsperf's output (the TCP `Connection Statistics:` block,
    which repeats "Average Latency" for connects, is ignored)."""
    start = text.find("Statistics:")
    if start < 0:
        raise BenchError(f"dnsperf printed no statistics; its output was:\n{text[-2000:]}")
    block = text[start:].split("Connection Statistics:", 1)[0]
    values: dict[str, float] = {}
    for key, pattern in _FIELDS.items():
        match = pattern.search(block)
        if match is None and key in ("sent", "completed", "qps"):
            raise BenchError(f"dnsperf output lacks {pattern.pattern!r}:\n{block[:2000]}")
        values[key] = float(match.group(1)) if match else 0.0
    average = _AVERAGE.search(block)
    avg, low, high = (float(g) for g in average.groups()) if average else (0.0, 0.0, 0.0)
    rcodes_line = _RCODES.search(block)
    rcodes = (
        tuple((m.group(1), int(m.group(2))) for m in _RCODE_ITEM.finditer(rcodes_line.group(1)))
        if rcodes_line
        else ()
    )
    return DnsperfResult(
        sent=int(values["sent"]),
        completed=int(values["completed"]),
        lost=int(values["lost"]),
        qps=values["qps"],
        run_time_s=values["run_time_s"],
        avg_latency_s=avg,
        min_latency_s=low,
        max_latency_s=high,
        stddev_latency_s=values["stddev_latency_s"],
        rcodes=rcodes,
    )


def parse_verbose_lines(lines: Iterable[str]) -> tuple[list[float], int]:
    """Per-query latencies (seconds) and the count of timeouts from `-v` output lines."""
    latencies: list[float] = []
    timeouts = 0
    for line in lines:
        if not line.startswith("> "):
            continue
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "T":
            timeouts += 1
            continue
        try:
            latencies.append(float(parts[-1]))
        except (ValueError, IndexError):
            continue  # an "I" (interrupted) line or a format this parser does not know
    return latencies, timeouts


def parse_output(text: str) -> DnsperfResult:
    """Summary and, when present, the `-v` per-query latencies of one dnsperf run."""
    result = parse_summary(text)
    latencies, timeouts = parse_verbose_lines(text.splitlines())
    if not latencies and not timeouts:
        return result
    return _with_latencies(result, latencies, timeouts)


def _with_latencies(result: DnsperfResult, latencies: list[float], timeouts: int) -> DnsperfResult:
    fields_ = {name: getattr(result, name) for name in DnsperfResult.__slots__}
    fields_.update(latencies_s=tuple(latencies), timeouts=timeouts)
    return DnsperfResult(**fields_)


@dataclass(frozen=True, slots=True)
class Load:
    """What one dnsperf run sends: transport, concurrency, rate and length."""

    duration_s: float
    mode: str = "udp"  # or "tcp"
    clients: int = 1  # sockets (TCP: connections)
    outstanding: int = 100  # queries in flight across the clients
    max_qps: int | None = None  # None: as fast as the server answers
    verbose: bool = False  # per-query latencies


def dnsperf_command(
    server: str,
    query_file: str,
    load: Load,
    *,
    port: int = 53,
    source: str | None = None,
    cpu: int | None = None,
) -> list[str]:
    """The argv of one dnsperf run (pinned to `cpu` with taskset when given)."""
    argv = [] if cpu is None else ["taskset", "-c", str(cpu)]
    argv += [DNSPERF, "-s", server, "-p", str(port), "-d", query_file, "-m", load.mode]
    argv += ["-l", _seconds(load.duration_s), "-c", str(load.clients)]
    argv += ["-q", str(load.outstanding), "-t", str(QUERY_TIMEOUT_S)]
    if load.max_qps is not None:
        argv += ["-Q", str(int(load.max_qps))]
    if source is not None:
        argv += ["-a", source]
    if load.verbose:
        argv.append("-v")
    return argv


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


class DnsperfFailed(BenchError):
    """dnsperf exited non-zero (2.10 sometimes dies when a server closes a TCP connection
    under it: "failed to receive packet: Bad file descriptor"); worth one more try."""


def run_dnsperf(netns: str, argv: Sequence[str]) -> DnsperfResult:
    """Run dnsperf inside the named namespace (`ip netns exec`) and parse its output.

    Output goes to a file rather than a pipe: a `-v` run writes a line per query and must
    never block on a reader that is not keeping up.
    """
    returncode, text = _run_once(netns, argv)
    if returncode != 0:
        problem = "\n".join(ln for ln in text.splitlines() if not ln.startswith("> "))
        raise DnsperfFailed(f"dnsperf in {netns} failed ({returncode}):\n{problem[-1500:]}")
    return parse_output(text)


def _run_once(netns: str, argv: Sequence[str]) -> tuple[int, str]:
    limit = _time_limit(argv)
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
        try:
            proc = subprocess.run(
                ["ip", "netns", "exec", netns, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=limit + QUERY_TIMEOUT_S + 30,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"dnsperf in {netns} did not finish: {' '.join(argv)}") from exc
        out.seek(0)
        return proc.returncode, out.read()


def _time_limit(argv: Sequence[str]) -> float:
    try:
        return float(argv[list(argv).index("-l") + 1])
    except (ValueError, IndexError):
        return 60.0


def write_query_file(path: Path, names: Iterable[str], qtype: str = "A") -> Path:
    """dnsperf's input: one `name type` per line."""
    path.write_text("".join(f"{name} {qtype}\n" for name in names), encoding="ascii")
    return path
