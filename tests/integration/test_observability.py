"""Metrics, the query log, readiness and the state-dir lock, on real daemons in a lab namespace.

Queries of every outcome come from real sandboxes through 127.0.0.11; the metrics are checked
by value and by `promtool check metrics`, the query log line by line, and a 100,000-query flood
with the log on must keep answering while the log stays under its cap.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.requires import in_ci, require_binary

from .harness import HostNamespace, run

pytestmark = pytest.mark.integration

PROMTOOL = require_binary("promtool", "apt-get install prometheus")
DNSPERF = require_binary("dnsperf", "apt-get install dnsperf")
METRICS_PORT = 9153
GARBAGE = "import socket; socket.socket(2, 2).sendto(b'\\x00\\x01\\x02', ('127.0.0.11', 53))"


def dig(host: HostNamespace, sandbox: str, *args: str) -> str:
    out = host.sandbox_exec(
        sandbox, "dig", "+tries=1", "+time=3", "+noedns", "@127.0.0.11", *args, check=False
    )
    return out.stdout


def status_of(output: str) -> str:
    match = re.search(r"status: (\w+)", output)
    return match.group(1) if match else "none"


def scrape(host: HostNamespace, url: str | None = None) -> str:
    """/metrics from the API socket, or from `url` inside the lab namespace."""
    if url is None:
        status, text = host.api("GET", "/metrics")
        assert status == 200, text
        return text
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    return host.exec(sys.executable, "-c", code).stdout


def samples(text: str, name: str) -> dict[frozenset, float]:
    """{labels: value} of one metric in the text format."""
    out = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            out[labels] = float(match.group(2))
    return out


def count(text: str, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in samples(text, name).items() if want <= k)


@pytest.fixture
def observed(host: HostNamespace) -> tuple[HostNamespace, Path]:
    """A daemon with the query log and a metrics listener; the forward rate lets each sandbox
    forward once (burst 1), so a second forward is REFUSED."""
    host.start_upstream()
    qlog = host.tmp / "queries.jsonl"
    host.start_daemon(
        "--query-log", str(qlog), "--metrics-listen", f"127.0.0.1:{METRICS_PORT}",
        "--forward-rate", "0.01",
    )  # fmt: skip
    return host, qlog


def test_every_outcome_is_counted_logged_and_promtool_clean(observed):
    host, qlog = observed
    host.network("app", IPAM={"Config": [{"Subnet": "10.61.0.0/24"}]})
    host.network("sealed", Internal=True, IPAM={"Config": [{"Subnet": "10.62.0.0/24"}]})
    host.sandbox("web", "app")
    host.sandbox("cli", "app")
    host.sandbox("nx", "app")
    host.sandbox("lim", "app")
    host.sandbox("in", "sealed")
    web = host.sandbox_name("web")

    assert "10.61.0.2" in dig(host, "cli", "+short", web)  # local
    assert "10.61.0.2" in dig(host, "cli", "+short", web)  # the same bytes again: cached
    assert status_of(dig(host, "cli", web, "MX")) == "NOERROR"  # nodata
    assert "198.51.100.200" in dig(host, "cli", "+short", "ext.anchors.test")  # forwarded
    assert status_of(dig(host, "nx", "nothere.anchors.test")) == "NXDOMAIN"
    assert status_of(dig(host, "in", "ext.anchors.test")) == "SERVFAIL"  # internal network
    assert status_of(dig(host, "lim", "ext.anchors.test")) == "NOERROR"
    assert status_of(dig(host, "lim", "www.example.test")) == "REFUSED"  # over the rate
    host.sandbox_exec("cli", sys.executable, "-c", GARBAGE)  # dropped
    time.sleep(0.5)

    text = scrape(host)
    for outcome, network in (
        ("local", "app"), ("cached", "app"), ("nodata", "app"), ("forwarded", "app"),
        ("nxdomain", "app"), ("servfail", "sealed"), ("refused", "app"), ("dropped", "app"),
    ):  # fmt: skip
        assert count(text, "dnsd_dns_queries_total", outcome=outcome, network=network) >= 1, (
            outcome,
            [line for line in text.splitlines() if "queries_total" in line],
        )
    assert count(text, "dnsd_dns_queries_total", outcome="nodata", qtype="MX") == 1
    assert count(text, "dnsd_forwards_refused_total", reason="rate") == 1
    assert count(text, "dnsd_upstream_queries_total", upstream="198.51.100.53:53") >= 3
    assert count(text, "dnsd_upstream_healthy", upstream="198.51.100.53:53") == 1
    assert count(text, "dnsd_upstream_responses_total", rcode="NXDOMAIN") >= 1
    assert count(text, "dnsd_dns_answer_seconds_count", outcome="forwarded") >= 1
    assert count(text, "dnsd_sandboxes") == 5 and count(text, "dnsd_listeners") == 5
    assert count(text, "dnsd_api_requests_total", route="/sandboxes", method="POST") == 5
    assert count(text, "process_resident_memory_bytes") > 0
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The same numbers on the listener of its own, without a token.
    other = scrape(host, f"http://127.0.0.1:{METRICS_PORT}/metrics")
    assert count(other, "dnsd_dns_queries_total", outcome="refused") == 1

    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in qlog.read_text().splitlines()] if qlog.exists() else []
        if {x.get("outcome") for x in lines} >= {"refused", "dropped"} - {"dropped"}:
            break
        time.sleep(0.2)
    by_outcome = {x["outcome"]: x for x in lines}
    assert set(by_outcome) >= {"local", "cached", "nodata", "forwarded", "nxdomain", "servfail",
                               "refused"}, lines  # fmt: skip
    assert by_outcome["forwarded"]["upstream"] == "198.51.100.53:53"
    assert by_outcome["forwarded"]["qname"] == "ext.anchors.test."
    assert by_outcome["nodata"]["qtype"] == "MX" and by_outcome["nodata"]["rcode"] == "NOERROR"
    assert by_outcome["nxdomain"]["sandbox"] == host.sandbox_name("nx")
    assert by_outcome["servfail"]["network"] == "sealed"
    local = by_outcome["local"]
    assert local["qname"] == f"{web}." and local["network"] == "app" and local["upstream"] is None
    assert set(local) == {"time", "sandbox", "network", "qname", "qtype", "rcode", "outcome",
                          "upstream", "latency_ms"}  # fmt: skip

    # dnsd status and docker-shaped /info describe the same daemon.
    status = run(sys.executable, "-m", "dnsd", "status", "--api-socket", host.socket).stdout
    assert "5 sandboxes" in status and "198.51.100.53:53 via sandbox: healthy" in status, status
    assert f"query log:    {qlog}" in status
    if in_ci():  # CI installs gcc and python3-dev (.ci/install-deps): the C loop must be built
        assert "udp loop:     C accelerator" in status, status


def test_query_log_flood_keeps_answering_and_stays_under_its_cap(host):
    host.start_upstream()
    qlog = host.tmp / "flood.jsonl"
    host.start_daemon("--query-log", str(qlog), "--query-log-max-mb", "1", "--log-level", "info")
    host.network("flood", IPAM={"Config": [{"Subnet": "10.63.0.0/24"}]})
    host.sandbox("f1", "flood")
    name = host.sandbox_name("f1")
    queries = host.tmp / "queries.txt"
    queries.write_text(f"{name} A\n{name} AAAA\nnothere A\n{name} MX\n")
    total = 100_000
    out = host.sandbox_exec(
        "f1", DNSPERF, "-s", "127.0.0.11", "-d", str(queries), "-n", str(total // 4),
        "-q", "100", "-t", "2", timeout=300,
    ).stdout  # fmt: skip
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    assert sent == total and completed >= total * 0.99, out
    assert "10.63.0.2" in dig(host, "f1", "+short", name)  # still answering at once
    cap = 1024 * 1024
    time.sleep(1.0)  # the writer catches up
    text = scrape(host)
    written = count(text, "dnsd_query_log_lines_total")
    dropped = count(text, "dnsd_query_log_dropped_total")
    rotations = count(text, "dnsd_query_log_rotations_total")
    print(
        f"\nquery log flood: {completed}/{sent} answered, {written:.0f} lines written, "
        f"{dropped:.0f} dropped, {rotations:.0f} rotations"
    )
    assert qlog.stat().st_size <= cap and Path(f"{qlog}.1").stat().st_size <= cap
    assert rotations >= 1
    assert written + dropped >= total  # every query either logged or counted as dropped
    if dropped:
        notes = [x for x in qlog.read_text().splitlines() if '"note"' in x]
        notes += [x for x in Path(f"{qlog}.1").read_text().splitlines() if '"note"' in x]
        assert notes or rotations > 1  # the note may be in an older, overwritten file
    assert host.daemon.poll() is None


def test_second_daemon_on_the_same_state_dir_exits_and_the_first_keeps_answering(daemon):
    host = daemon
    host.network("lock", IPAM={"Config": [{"Subnet": "10.64.0.0/24"}]})
    host.sandbox("l1", "lock")
    name = host.sandbox_name("l1")
    assert "10.64.0.2" in dig(host, "l1", "+short", name)
    argv = host.daemon_argv()
    argv[argv.index("--api-socket") + 1] = str(host.tmp / "second.sock")
    second = run(*argv, check=False, timeout=60)
    assert second.returncode == 1, second.stderr
    assert f"another dnsd (pid {host.daemon.pid}) uses {host.state_dir}" in second.stderr
    assert not os.path.exists(host.tmp / "second.sock")
    # A fresh state dir, but the first daemon's socket: refused before a store is created.
    argv = host.daemon_argv()
    argv[argv.index("--state-dir") + 1] = str(host.tmp / "fresh-state")
    third = run(*argv, check=False, timeout=60)
    assert third.returncode == 1 and "another daemon is listening" in third.stderr
    assert not os.path.exists(host.tmp / "fresh-state" / "state.db")
    # The first one never noticed.
    assert "10.64.0.2" in dig(host, "l1", "+short", name)
    assert host.api("GET", "/_ping")[0] == 200


def test_ready_is_notified_once_the_api_answers(host, monkeypatch):
    path = str(host.tmp / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        host.start_upstream()
        host.start_daemon()
        message = sock.recv(4096).decode()
        assert message.startswith("READY=1\n") and f"MAINPID={host.daemon.pid}" in message
        assert host.api("GET", "/_ping")[0] == 200
        assert host.stop_daemon() == 0
        assert sock.recv(4096).decode() == "STOPPING=1"
