"""The benchmark's pure parts: dnsperf output, /proc readings, DNS probes, peer configs,
statistics, target verdicts and the markdown report. No root, no processes."""

from __future__ import annotations

import json
import math
import struct

import pytest

from bench.__main__ import SMOKE_SCALE, options, parse_args
from bench.dns import CASES, alternate, ratios_vs_dnsd, selected_cases, summarize_runs
from bench.dnsperf import Load, dnsperf_command, parse_output, parse_summary
from bench.lab import BenchError, parse_proc_stat, parse_vm_rss_kib
from bench.peers import aardvark_config_text, dnsmasq_argv, hosts_file_text
from bench.probe import build_query, parse_reply
from bench.report import render, write
from bench.scale import latency_dict, sandbox_sizes
from bench.stats import latency_summary, paired_ratios, percentile, summarize
from bench.targets import evaluate

UDP_OUTPUT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.11 -d /tmp/q.txt -l 3 -q 100
[Status] Sending queries (to 127.0.0.11:53)
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         99481
  Queries completed:    99470 (99.99%)
  Queries lost:         11 (0.01%)

  Response codes:       NOERROR 99400 (99.92%), NXDOMAIN 70 (0.08%)
  Average packet size:  request 23, response 39
  Run time (s):         3.005665
  Queries per second:   33097.833591

  Average Latency (s):  0.002802 (min 0.000074, max 0.014983)
  Latency StdDev (s):   0.001963

"""

TCP_TAIL = """\
Statistics:

  Queries sent:         360365
  Queries completed:    360365 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 360365 (100.00%)
  Average packet size:  request 23, response 39
  Run time (s):         3.002377
  Queries per second:   120026.565618

  Average Latency (s):  0.000750 (min 0.000046, max 0.007180)
  Latency StdDev (s):   0.000704

Connection Statistics:

  Reconnections:        0

  Average Latency (s):  0.000584 (min 0.000584, max 0.000584)
"""


def test_parse_udp_summary():
    r = parse_summary(UDP_OUTPUT)
    assert (r.sent, r.completed, r.lost) == (99481, 99470, 11)
    assert r.qps == pytest.approx(33097.833591)
    assert r.run_time_s == pytest.approx(3.005665)
    assert (r.avg_latency_s, r.min_latency_s, r.max_latency_s) == (0.002802, 0.000074, 0.014983)
    assert r.stddev_latency_s == pytest.approx(0.001963)
    assert dict(r.rcodes) == {"NOERROR": 99400, "NXDOMAIN": 70}
    assert r.noerror == 99400
    assert r.to_dict()["avg_latency_ms"] == pytest.approx(2.802)


def test_parse_tcp_ignores_connection_latency():
    r = parse_summary("header\n" + TCP_TAIL)
    assert r.avg_latency_s == 0.000750 and r.max_latency_s == 0.007180
    assert r.qps == pytest.approx(120026.565618) and r.lost == 0


def test_parse_verbose_latencies_and_timeouts():
    lines = [f"> NOERROR web{i} A 0.000{100 + i}" for i in range(99)]
    lines += ["> T slow A", "> NOERROR big A 0.004000", "[Status] noise"]
    r = parse_output("\n".join(lines) + "\n" + UDP_OUTPUT)
    assert r.timeouts == 1
    assert len(r.latencies_s) == 100
    summary = r.to_dict()["latency"]
    assert summary["max_ms"] == pytest.approx(4.0)
    assert summary["p99_ms"] == pytest.approx(0.198)  # the 99th of 100 sorted values
    assert summary["p50_ms"] == pytest.approx(0.149)


def test_parse_refuses_output_without_statistics():
    with pytest.raises(BenchError, match="no statistics"):
        parse_summary("dnsperf: unable to open file /nope")
    with pytest.raises(BenchError, match="Queries sent"):
        parse_summary("Statistics:\n  Queries per second: 1\n")


def test_dnsperf_command():
    argv = dnsperf_command(
        "192.0.2.53",
        "/q",
        Load(5, "tcp", 4, 400, max_qps=1000.7, verbose=True),
        source="192.0.2.10",
        cpu=0,
    )
    assert argv[:3] == ["taskset", "-c", "0"]
    joined = " ".join(argv)
    for part in (
        "-s 192.0.2.53",
        "-m tcp",
        "-l 5 ",
        "-c 4",
        "-q 400",
        "-Q 1000",
        "-a 192.0.2.10",
        "-d /q",
    ):
        assert part in joined
    assert argv[-1] == "-v"
    plain = dnsperf_command("127.0.0.11", "/q", Load(1.5))
    assert plain[0] == "dnsperf" and "-Q" not in plain and "-v" not in plain and "1.500" in plain


def test_proc_stat_and_status_parsing():
    ticks = __import__("os").sysconf("SC_CLK_TCK")
    # a command name with spaces and ')' must not shift the fields
    fields = ["S", "1", "2", "3", "0", "-1", "0", "0", "0", "0", "0"]
    fields += [str(ticks * 2), str(ticks), str(ticks // 2 * 2), "0", "20", "0", "7"]
    text = "123 (a b) c) " + " ".join(fields) + " 0 0 0"
    cpu, threads, kernel = parse_proc_stat(text)
    assert cpu == pytest.approx(3 + (ticks // 2 * 2) / ticks)
    assert kernel == pytest.approx(1)  # stime 1 s, cstime 0
    assert threads == 7
    assert parse_vm_rss_kib("Name:\tx\nVmRSS:\t  54321 kB\nThreads: 2\n") == 54321
    assert parse_vm_rss_kib("Name:\tkthread\n") == 0


def _reply(qid: int, rcode: int, addresses: list[str], query: bytes) -> bytes:
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(addresses), 0, 0)
    body = query[12:]
    for address in addresses:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + bytes(map(int, address.split(".")))
    return head + body


def test_probe_query_and_reply():
    query = build_query("web.bench.", 0x1234)
    assert query[:2] == b"\x12\x34" and query[2:4] == b"\x01\x00"
    assert query[12:] == b"\x03web\x05bench\x00\x00\x01\x00\x01"
    reply = parse_reply(_reply(0x1234, 0, ["10.0.0.2", "10.0.0.3"], query))
    assert reply.qid == 0x1234 and reply.rcode == 0 and not reply.truncated
    assert reply.addresses == ("10.0.0.2", "10.0.0.3")
    assert parse_reply(_reply(7, 3, [], query)).rcode == 3
    with pytest.raises(ValueError):
        parse_reply(b"\x00\x01")
    with pytest.raises(ValueError):
        parse_reply(_reply(1, 0, ["10.0.0.2"], query)[:-3])


def test_peer_configs():
    records = {"web": "10.91.0.2", "api": "10.91.0.2", "db": "10.91.0.3"}
    assert hosts_file_text(records) == "10.91.0.2 web api\n10.91.0.3 db\n"
    lines = aardvark_config_text("192.0.2.54", "192.0.2.10", records).splitlines()
    assert lines[0] == "192.0.2.54"
    ids = [line.split(" ")[0] for line in lines[1:]]
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == 3
    # fields: id, ipv4s, ipv6s (empty), names: the empty field keeps two spaces
    assert [line.split(" ")[1:] for line in lines[1:]] == [
        ["192.0.2.10", "", "bench-asker"],
        ["10.91.0.2", "", "web,api"],
        ["10.91.0.3", "", "db"],
    ]
    argv = dnsmasq_argv("192.0.2.53", "/h", "/p", upstream="198.51.100.53")
    assert "--listen-address=192.0.2.53" in argv and "--server=198.51.100.53" in argv
    assert "--no-resolv" in argv and "--log-queries" not in argv and "--local=/#/" not in argv
    assert "--local=/#/" in dnsmasq_argv("a", "/h", "/p", local_only=True)


def test_stats():
    assert percentile([5, 1, 4, 2, 3], 50) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99.9) == 7
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)
    s = summarize([100.0, 120.0, 80.0])
    assert (s.median, s.low, s.high) == (100.0, 80.0, 120.0)
    assert s.spread_pct == pytest.approx(40.0)
    assert paired_ratios([2, 6], [1, 3]) == [2, 2]
    with pytest.raises(ValueError):
        paired_ratios([1], [1, 2])
    assert latency_summary([0.001, 0.003])["avg_ms"] == pytest.approx(2.0)
    assert latency_dict([0.010, 0.020, 0.030])["median_ms"] == pytest.approx(20.0)


def test_sandbox_sizes_reach_each_level_exactly():
    assert sandbox_sizes(10) == [10]
    assert sandbox_sizes(1_000) == [100] * 10
    assert sandbox_sizes(250) == [100, 100, 50]
    assert sum(sandbox_sizes(10_000)) == 10_000 and max(sandbox_sizes(10_000)) == 100
    with pytest.raises(BenchError):
        sandbox_sizes(0)


def test_alternate_mixes_both_lists_whole():
    assert alternate(["a", "b"], ["x", "y", "z", "w"]) == list("axbyazbw")
    assert alternate(["a", "b", "c"], ["x"]) == list("axbxcx")
    assert alternate([], ["x"]) == []


def test_smoke_options_and_overrides():
    _, scale = options(parse_args(["--smoke"]))
    assert scale == SMOKE_SCALE and scale.sandboxes < 100
    dns, scale = options(parse_args(["--rounds", "2", "--duration", "3", "--sandboxes", "50"]))
    assert (dns.rounds, dns.duration_s, scale.rounds, scale.sandboxes) == (2, 3, 2, 50)
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])
    _, scale = options(parse_args(["--late-samples", "100"]))
    assert (scale.late_samples, scale.samples) == (100, 200)
    with pytest.raises(SystemExit):
        parse_args(["--late-samples", "0"])


def test_cases_pick_comparisons_and_bring_the_udp_run_half_load_needs():
    assert options(parse_args([]))[0].cases == ()
    dns, _ = options(parse_args(["--only", "dns", "--cases", "fwd-new,mixed"]))
    assert dns.cases == ("fwd-new", "mixed")
    assert selected_cases(dns.cases) == ("mixed", "fwd-new")  # in the part's order
    assert selected_cases(()) == CASES
    assert selected_cases(("half-load-cached",)) == ("udp", "half-load-cached")
    with pytest.raises(BenchError, match=r"unknown dns case.*fwd-old.*choose from"):
        selected_cases(("fwd-old",))


def test_report_of_some_cases_shows_only_those():
    results = sample_results()
    dns = results["dns"]
    for part in ("udp", "tcp", "tcp_many", "half_load"):
        del dns[part]
    dns["forwarded_new"] = _part({"dnsd": [_run("dnsd", 9e3)], "dnsmasq": [_run("dnsmasq", 3e3)]})
    dns["cases"] = ["mixed", "fwd-new"]
    text = render(results)
    assert "Cases run: mixed, fwd-new." in text
    assert "### Mixed" in text and "### Forwarded only" in text and "| 3.00x |" in text
    assert "### UDP" not in text and "### TCP" not in text and "half load" not in text


def _run(
    server: str, qps: float, lost: int = 0, p99: float | None = None, servfail: int = 0
) -> dict:
    run = {
        "server": server,
        "qps": qps,
        "lost": lost,
        "sent": int(qps),
        "completed": int(qps) - lost,
        "avg_latency_ms": 0.5,
        "rcodes": {"NOERROR": int(qps) - lost - servfail, "SERVFAIL": servfail},
        "server_cpu_us_per_query": 7.0,
        "server_cpu_pct": 99.0,
        "server_rss_mib": 50.0,
    }
    if p99 is not None:
        run["latency"] = {
            "avg_ms": 0.2,
            "p50_ms": 0.1,
            "p99_ms": p99,
            "p999_ms": 1.0,
            "max_ms": 2.0,
        }
    return run


def _part(runs: dict[str, list[dict]]) -> dict:
    return {"runs": runs, "summary": summarize_runs(runs), "ratios": ratios_vs_dnsd(runs)}


def _level(registered: int, rounds: list[float], fewest: list[float]) -> dict:
    return {
        "registered": registered,
        "qps": summarize(rounds).to_dict(),
        "vs_lowest": summarize(paired_ratios(rounds, fewest)).to_dict(),
        "lost": 0,
        "cpu_us_per_query": summarize([7.0]).to_dict(),
        "rss_mib": 50.0,
        "runs": [],
    }


def sample_results() -> dict:
    lat = {"n": 200, "median_ms": 12.0, "p99_ms": 30.0, "max_ms": 40.0}
    usage = {"rss_mib": 140.0, "fds": 2100, "sockets": 2050, "threads": 1002}
    load = {"mode": "udp", "clients": 1, "outstanding": 100, "duration_s": 5}
    return {
        "meta": {
            "timestamp": "2026-01-01T00:00:00+00:00",
            "file_timestamp": "20260101T000000Z",
            "git": "abc1234",
            "machine": "2 cpus",
            "versions": {"dnsperf": "2.10.0"},
            "options": {},
        },
        "dns": {
            "setup": {
                "local_names": 50,
                "forwarded_names": 50,
                "load_cpu": 0,
                "server_cpu": 1,
                "udp_load": load,
                "tcp_load": {**load, "clients": 4, "outstanding": 400},
                "tcp_many_load": {**load, "clients": 16, "outstanding": 160},
            },
            "skipped": {},
            "udp": _part(
                {
                    "dnsd": [_run("dnsd", 150e3, p99=1.0), _run("dnsd", 140e3, p99=2.0)],
                    "dnsmasq": [_run("dnsmasq", 100e3), _run("dnsmasq", 100e3)],
                    "aardvark-dns": [_run("aardvark-dns", 80e3), _run("aardvark-dns", 60e3)],
                }
            ),
            "tcp": _part(
                {
                    "dnsd": [_run("dnsd", 200e3, lost=3)],
                    "dnsmasq": [_run("dnsmasq", 20e3, lost=398)],
                }
            ),
            "tcp_many": _part({"dnsd": [_run("dnsd", 100e3)], "dnsmasq": [_run("dnsmasq", 25e3)]}),
            "half_load": {
                "offered_qps": 72500,
                **_part(
                    {
                        "dnsd": [
                            _run("dnsd", 72500, p99=0.8),
                            _run("dnsd", 72400, p99=1.2),
                            _run("dnsd", 72500, p99=0.9),
                        ],
                        "dnsmasq": [_run("dnsmasq", 72500, p99=0.2)] * 3,
                    }
                ),
            },
            "mixed": _part(
                {"dnsd": [_run("dnsd", 50e3, servfail=17)], "dnsmasq": [_run("dnsmasq", 40e3)]}
            ),
        },
        "scale": {
            "names": {
                "levels": {
                    "10": _level(10, [100e3, 50e3], [100e3, 50e3]),
                    "1000": _level(1000, [99e3, 50e3], [100e3, 50e3]),
                    # the medians of the rates say 0.93x; the paired rounds say 0.85x
                    "10000": _level(10000, [80e3, 45e3], [100e3, 50e3]),
                }
            },
            "sandboxes": {
                "baseline": usage,
                "network_create": lat,
                "connect": lat,
                "connect_to_resolvable": {**lat, "median_ms": 25.0},
                "many": {
                    "sandboxes": 1000,
                    "networks": 4,
                    "fill_s": 300.0,
                    "create_and_connect": lat,
                    "create_and_connect_last_100": lat,
                    "loaded": usage,
                    "after_restart": usage,
                    "at_scale": {"connect": lat},
                    "stop_s": 0.5,
                    "restart_api_s": 9.0,
                    "restart_resolvable_s": 9.5,
                    "restart_checked": 50,
                },
            },
        },
        "errors": {},
    }


def _verdict(verdicts, start: str):
    (found,) = [v for v in verdicts if v.target.startswith(start)]
    return found


def test_targets_judge_each_issue_target():
    verdicts = evaluate(sample_results())
    udp = [v for v in verdicts if v.target.startswith("UDP")]
    assert udp[0].met is True and udp[0].margin == pytest.approx(1.45 / 1.3)  # ratios 1.5, 1.4
    # aardvark: rounds 150/80 and 140/60, median of the paired ratios (not of the rates)
    assert udp[1].met is False and udp[1].margin == pytest.approx((1.875 + 7 / 3) / 2 / 2.5)
    assert udp[1].measured.startswith("2.10x (rounds 1.88-2.33)")
    tcp = _verdict(verdicts, "TCP")
    assert tcp.met is False and "dnsd lost 3" in tcp.measured  # 10x, but it lost queries
    p99 = _verdict(verdicts, "p99 latency at half of dnsd's saturation < 1 ms, local")
    assert p99.met is True  # the median round, 0.9 ms, though one round was 1.2
    assert p99.measured == "0.900 ms (rounds 0.800-1.200) at 72,500 q/s"
    names = _verdict(verdicts, "10,000")
    assert names.met is False and names.margin == pytest.approx(0.85 / 0.9)
    assert _verdict(verdicts, "1,000 sandboxes: daemon RSS").met is True  # 140 MiB = 146.8 MB
    assert _verdict(verdicts, "connect-to-resolvable median").met is False
    assert _verdict(verdicts, "Mixed").measured.startswith("1.25x")  # the sample's mixed run
    for start in ("Forwarded only", "forward cache", "p99 latency at half of dnsd's "
                  "saturation < 1 ms, cached"):  # fmt: skip
        assert _verdict(verdicts, start).met is None  # those parts are not in this sample


def test_issue_13_targets():
    results = sample_results()
    results["dns"]["mixed"] = _part(
        {"dnsd": [_run("dnsd", 90e3)], "dnsmasq": [_run("dnsmasq", 45e3)]}
    )
    results["dns"]["forwarded_new"] = _part(
        {"dnsd": [_run("dnsd", 18e3)], "dnsmasq": [_run("dnsmasq", 20e3)]}
    )
    results["dns"]["cache_rss"] = {"names": 1_000_000, "size": 10_000, "rss_before_mib": 20.0,
                                   "rss_full_mib": 30.0, "rss_end_mib": 31.0}  # fmt: skip
    many = results["scale"]["sandboxes"]["many"]
    many.update(sandboxes=1000, restart_resolvable_s=1.5)
    many["at_scale"]["connect_to_resolvable"] = {"median_ms": 30.0}
    results["scale"]["sandboxes"]["connect_to_resolvable"] = {"median_ms": 20.0}
    verdicts = evaluate(results)
    mixed = _verdict(verdicts, "Mixed")
    assert mixed.met is True and mixed.margin == pytest.approx(2.0 / 1.5)
    new = _verdict(verdicts, "Forwarded only")
    assert new.met is False and new.margin == pytest.approx(0.9)
    assert _verdict(verdicts, "forward cache").met is True
    assert _verdict(verdicts, "1,000 sandboxes: daemon start-up").met is True
    flat = _verdict(verdicts, "connect-to-resolvable with 1,000")
    assert flat.met is False and "1.50x" in flat.measured
    results["dns"]["cache_rss"]["rss_end_mib"] = 40.0
    assert _verdict(evaluate(results), "forward cache").met is False


def test_udp_target_fails_on_any_dnsd_loss_and_smaller_runs_are_not_judged():
    results = sample_results()
    results["dns"]["udp"] = _part(
        {"dnsd": [_run("dnsd", 150e3, lost=1)], "dnsmasq": [_run("dnsmasq", 100e3)]}
    )
    results["dns"]["skipped"] = {"aardvark-dns": "not installed"}
    results["scale"]["sandboxes"]["many"]["sandboxes"] = 20
    del results["scale"]["names"]["levels"]["10000"]
    verdicts = evaluate(results)
    assert verdicts[0].met is False and verdicts[0].margin == pytest.approx(1.5 / 1.3)
    assert verdicts[1].met is None and "not installed" in verdicts[1].measured
    assert _verdict(verdicts, "10,000").met is None
    assert _verdict(verdicts, "1,000 sandboxes: daemon RSS").met is None
    assert _verdict(verdicts, "1,000 sandboxes: daemon start-up").met is None
    assert evaluate({"meta": {}})[0].met is None


def test_report_renders_and_round_trips_through_json(tmp_path):
    results = sample_results()
    text = render(results)
    assert text.startswith("# dnsd benchmark 2026-01-01T00:00:00+00:00 (abc1234)")
    row = "| dnsd | 145,000 (140,000-150,000) | 0.500 (0.500-0.500) | 1.500 (1.000-2.000) | 0 / "
    assert row in text
    assert "| dnsmasq | 100,000 (100,000-100,000) |" in text and "1.45x (1.40-1.50)" in text
    half = "| dnsd | 72,500 (72,400-72,500) | 0.500 (0.500-0.500) | 0.100 (0.100-0.100) | "
    assert half + "0.900 (0.800-1.200) |" in text
    assert "| 0 / 50,000 | 17 |" in text  # answers that were not NOERROR are shown
    assert "**not met**" in text and "| met |" in text
    assert "| 10000 | 10,000 | 62,500 (45,000-80,000) | 0.85x (0.80-0.90) |" in text
    assert "| 1000 sandboxes on 4 networks | 140.0 | 2,100 | 2,050 | 1,002 |" in text
    json_path, md_path = write(results, tmp_path)
    assert json_path.name == "20260101T000000Z-abc1234.json" and md_path.read_text() == text
    assert render(json.loads(json_path.read_text())) == text
    assert not list(tmp_path.glob("*.tmp"))


def test_json_has_no_nan(tmp_path):
    results = sample_results()
    results["dns"]["udp"]["summary"]["dnsd"]["qps"]["spread_pct"] = math.nan
    json_path, _ = write(results, tmp_path)
    assert "NaN" not in json_path.read_text()
    render(json.loads(json_path.read_text()))
