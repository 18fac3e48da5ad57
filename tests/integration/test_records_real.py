"""Records that are not sandboxes, and host.docker.internal, asked with dig in real sandboxes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import UPSTREAM, HostNamespace
from .probes import dig, dig_short

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def cli(h: HostNamespace, *args: str) -> str:
    """`python3 -m dnsd ARGS` against the daemon's socket (this checkout's code)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNSD_")}
    result = subprocess.run(
        [sys.executable, "-m", "dnsd", *args, "--api-socket", h.socket],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def lab(daemon):
    """recA: web (alias api), cli; recB: other; quiet (dnsd.host_names=false): off."""
    h = daemon
    h.network("recA", IPAM={"Config": [{"Subnet": "10.91.0.0/24"}]})
    h.network("recB", IPAM={"Config": [{"Subnet": "10.92.0.0/24"}]})
    h.network(
        "quiet",
        Options={"dnsd.host_names": "false"},
        IPAM={"Config": [{"Subnet": "10.93.0.0/24"}]},
    )
    h.sandbox("web")
    h.connect("recA", "web", Aliases=["api"])
    h.sandbox("cli", "recA")
    h.sandbox("other", "recB")
    h.sandbox("off", "quiet")
    web = h.sandbox_name("web")
    for body in (
        {"Name": "db", "Type": "A", "Value": "10.91.0.50"},
        {"Name": "www", "Type": "CNAME", "Value": f"{web}."},
        {"Name": "ext", "Type": "CNAME", "Value": "ext.anchors.test."},
        {"Name": "_pg._tcp.db", "Type": "SRV", "Value": "10 5 5432 db.recA.", "TTL": 30},
    ):
        h.ok("POST", "/networks/recA/records", body)
    cli(h, "network", "record", "add", "recA", "db", "TXT", '"v=1" "two words"')
    return h


def _answered_on_rec_a(h: HostNamespace) -> None:
    web = h.sandbox_name("web")
    assert dig_short(h, "cli", "db") == ["10.91.0.50"]
    assert dig_short(h, "cli", "DB.recA.") == ["10.91.0.50"]
    # A CNAME to a local name: the CNAME and the target's address, in that order.
    out = dig(h, "cli", "+noall", "+answer", "www").split("\n")
    assert out[0].split()[3:] == ["CNAME", f"{web}."], out
    assert out[1].split()[0] == f"{web}." and out[1].split()[3:] == ["A", "10.91.0.2"], out
    assert dig_short(h, "cli", "SRV", "_pg._tcp.db") == ["10", "5", "5432", "db.recA."]
    ttl = dig(h, "cli", "+noall", "+answer", "SRV", "_pg._tcp.db").split()[1]
    assert ttl == "30"
    assert dig(h, "cli", "+short", "TXT", "db").strip() == '"v=1" "two words"'
    assert dig_short(h, "cli", "-x", "10.91.0.50") == ["db.recA."]


def test_records_are_answered_on_their_network_only(lab):
    h = lab
    _answered_on_rec_a(h)
    # NODATA for a type the name lacks, never forwarded
    out = dig(h, "cli", "db", "AAAA")
    assert "status: NOERROR" in out and "ANSWER: 0" in out
    assert not h.upstream_saw(UPSTREAM, "db")
    # An outside target: the CNAME alone (dnsd does not chase it upstream).
    assert dig_short(h, "cli", "ext") == ["ext.anchors.test."]
    # Another network's sandbox does not see recA's records: they go upstream (NXDOMAIN).
    for name in ("db", "www"):
        assert "status: NXDOMAIN" in dig(h, "other", name)
    assert "status: NXDOMAIN" in dig(h, "other", "SRV", "_pg._tcp.db")
    listed = cli(h, "network", "record", "ls", "recA")
    assert listed.splitlines()[0].split() == ["NAME", "TYPE", "TTL", "VALUE"]
    assert len(listed.splitlines()) == 6, listed
    # Removing a record takes it out of the answers at once.
    cli(h, "network", "record", "rm", "recA", "db", "A")
    out = dig(h, "cli", "db")
    assert "status: NOERROR" in out and "ANSWER: 0" in out  # its TXT is still there


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_records_survive_a_restart(lab, sig):
    h = lab
    before = h.ok("GET", "/networks/recA/records")
    h.stop_daemon(sig)
    h.start_daemon()
    assert h.ok("GET", "/networks/recA/records") == before
    _answered_on_rec_a(h)


def test_host_names_answer_the_askers_gateway_unless_turned_off(lab):
    h = lab
    assert dig_short(h, "cli", "host.docker.internal") == ["10.91.0.1"]
    assert dig_short(h, "cli", "HOST.containers.internal") == ["10.91.0.1"]
    assert dig_short(h, "other", "host.docker.internal") == ["10.92.0.1"]
    # the host really is there: the gateway answers a ping from the sandbox
    assert h.sandbox_exec("other", "ping", "-c1", "-W1", "host.docker.internal").returncode == 0
    # dnsd.host_names=false: not ours, forwarded (the fake upstream has no such name)
    assert "status: NXDOMAIN" in dig(h, "off", "host.docker.internal")
    assert h.upstream_saw(UPSTREAM, "host.docker.internal")
