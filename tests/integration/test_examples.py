"""Every example in examples/ runs here as CI runs it, so none of them can rot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.requires import require_binary

from .harness import HostNamespace, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROMTOOL = require_binary("promtool", "apt-get install prometheus")
SYSTEMD_ANALYZE = require_binary("systemd-analyze", "apt-get install systemd")
NAMED_PANELS = ("Queries by outcome", "Latency quantiles", "Upstream health", "Cache hit ratio")


def netns_names() -> set[str]:
    return set(run("ip", "netns", "list").stdout.split()) - {"(id:"}


def test_quickstart_runs_the_readme_session_and_leaves_nothing():
    before = netns_names()
    etc_before = set(os.listdir("/etc/netns")) if os.path.isdir("/etc/netns") else set()
    env = {**os.environ, "DNSD": f"{sys.executable} -m dnsd", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "quickstart.sh")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.rstrip().endswith("quickstart: OK")
    assert "10.10.0.2" in proc.stdout and "dns listeners" in proc.stdout
    if shutil.which("docker"):
        assert "10.20.0.2" in proc.stdout
    assert {n for n in netns_names() - before if n.startswith("qs")} == set()
    after = set(os.listdir("/etc/netns")) if os.path.isdir("/etc/netns") else set()
    assert {n for n in after - etc_before if n.startswith("qs")} == set()


def test_docker_sdk_example(daemon: HostNamespace):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "docker_sdk.py"), "--socket", daemon.socket,
         "--prefix", f"{daemon.prefix}sdk-", "--subnet", "10.66.0.0/24"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with alias api" in proc.stdout and "10.66.0.2" in proc.stdout
    assert daemon.ok("GET", "/sandboxes") == []
    assert [n["Name"] for n in daemon.ok("GET", "/networks")] == ["bridge", "host", "none"]


def test_prometheus_scrape_config_is_valid():
    out = run(PROMTOOL, "check", "config", str(EXAMPLES / "prometheus" / "prometheus.yml"))
    assert "SUCCESS" in out.stdout + out.stderr


def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_grafana_dashboard_is_well_formed_and_asks_for_metrics_dnsd_exports(
    daemon: HostNamespace, tmp_path
):
    dashboard = json.loads((EXAMPLES / "prometheus" / "dnsd-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    titles = [p["title"] for p in dashboard["panels"]]
    assert set(NAMED_PANELS) <= set(titles), titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in ("timeseries", "stat", "gauge", "table")
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] < 24
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for expr in _exprs(dashboard):
        for used in re.findall(r"\$(\w+)", expr):
            assert used in variables or used.startswith("__"), (used, expr)

    # Every expression parses as PromQL (promtool checks recording rules).
    rules = tmp_path / "rules.yml"
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(_exprs(dashboard)):
        concrete = expr.replace("$__rate_interval", "5m").replace("$network", ".*")
        lines += [f"      - record: dashboard:expr{i}", f"        expr: {json.dumps(concrete)}"]
    rules.write_text("\n".join(lines) + "\n")
    out = run(PROMTOOL, "check", "rules", str(rules), check=False)
    assert out.returncode == 0, out.stdout + out.stderr

    # ...and names only series a real daemon exports.
    status, text = daemon.api("GET", "/metrics")
    assert status == 200
    families = set(re.findall(r"^# TYPE (\S+) (\w+)", text, re.M))
    exported = {name for name, _ in families}
    exported |= {f"{n}_{s}" for n, kind in families if kind == "histogram"
                 for s in ("bucket", "count", "sum")}  # fmt: skip
    for expr in _exprs(dashboard):
        for name in re.findall(r"\b(dnsd_\w+)", expr):
            assert name in exported, (name, sorted(exported))


def test_systemd_unit_verifies_and_notifies(tmp_path):
    unit = (EXAMPLES / "systemd" / "dnsd.service").read_text()
    assert "Type=notify" in unit  # the daemon sends READY=1 (test_observability checks it)
    program = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
    if not os.access(program, os.X_OK):  # not installed system-wide here: verify against ours
        unit = unit.replace(program, shutil.which("dnsd") or f"{sys.executable} -m dnsd", 1)
    checked = tmp_path / "dnsd.service"
    checked.write_text(unit)
    out = run(SYSTEMD_ANALYZE, "verify", str(checked), check=False)
    # Bad settings are only warned about ("..., ignoring"): the output must be empty too.
    assert out.returncode == 0 and "dnsd.service" not in out.stdout + out.stderr, (
        out.stdout + out.stderr
    )
    broken = tmp_path / "broken" / "dnsd.service"  # the check itself can fail
    broken.parent.mkdir()
    broken.write_text(unit.replace("Type=notify", "Type=notifyy"))
    out = run(SYSTEMD_ANALYZE, "verify", str(broken), check=False)
    assert "Failed to parse service type" in out.stdout + out.stderr


def test_multihost_lab_pings_across_hosts_and_leaves_nothing():
    require_binary("etcd", "apt-get install etcd-server")
    before = netns_names()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "multihost" / "lab.sh")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "lab works" in proc.stdout and " 0% packet loss" in proc.stdout, proc.stdout
    assert re.search(r"\bov\b", proc.stdout), proc.stdout  # C lists the overlay made on A
    assert {n for n in netns_names() - before if n.startswith("ml")} == set()
