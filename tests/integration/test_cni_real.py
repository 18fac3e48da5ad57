"""`dnsd-cni` driven exactly as a runtime drives it (CNI_* environment, config on stdin), from
the test's host namespace, against a real daemon, bridges and container namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .harness import HostNamespace, run

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cni(host: HostNamespace, command: str, container: str, *, ifname="eth0", netns=None, **conf):
    """One plugin run in the host namespace; (exit status, parsed stdout)."""
    netns = f"/run/netns/{host.sandbox_name(container)}" if netns is None else netns
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": ROOT,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container.encode().hex().ljust(64, "0"),
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={host.sandbox_name(container)}",
        "CNI_PATH": "/opt/cni/bin",
    }
    body = {"cniVersion": "1.0.0", "name": "app", "type": "dnsd", "socket": host.socket, **conf}
    proc = subprocess.run(
        ["nsenter", f"--net={host.path}", sys.executable, "-m", "dnsd.cni"],
        input=json.dumps(body),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None


def container(host: HostNamespace, short: str) -> str:
    """A namespace made by 'the runtime' (not by dnsd)."""
    name = host.sandbox_name(short)
    run("ip", "netns", "add", name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    return name


def veths(host: HostNamespace) -> list[str]:
    out = host.exec("ip", "-o", "link", "show", "type", "veth").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_add_check_del_del_and_del_after_the_namespace_is_gone(daemon):
    h = daemon
    h.network("app", IPAM={"Config": [{"Subnet": "10.77.0.0/24"}]})
    web, cli = container(h, "web"), container(h, "cli")

    status, result = cni(h, "ADD", "web", runtimeConfig={"aliases": {"app": ["api"]}})
    assert status == 0, result
    host_if, sandbox_if = result["interfaces"]
    assert sandbox_if["name"] == "eth0" and sandbox_if["sandbox"] == f"/run/netns/{web}"
    assert result["ips"] == [{"address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}]
    assert result["dns"]["nameservers"] == ["127.0.0.11"]
    # What the Result says is what the kernel has, on both sides of the veth.
    inside = json.loads(run("ip", "-n", web, "-j", "addr", "show", "eth0").stdout)[0]
    assert inside["address"] == sandbox_if["mac"]
    assert "10.77.0.2" in [a["local"] for a in inside["addr_info"]]
    outside = json.loads(h.exec("ip", "-j", "link", "show", host_if["name"]).stdout)[0]
    assert outside["address"] == host_if["mac"]

    status, result = cni(h, "ADD", "cli", ifname="net0", cniVersion="0.4.0")
    assert status == 0, result
    assert result["ips"][0]["version"] == "4" and result["interfaces"][1]["name"] == "net0"
    for name in (h.sandbox_name("web"), "api"):
        dig = run("ip", "netns", "exec", cli, "dig", "+short", "+tries=1", "+time=5",
                  "@127.0.0.11", name)  # fmt: skip
        assert dig.stdout.split() == ["10.77.0.2"], (name, dig.stdout, h.log())
    run("ip", "netns", "exec", cli, "ping", "-c1", "-W2", "10.77.0.2")

    assert cni(h, "CHECK", "web") == (0, None)
    run("ip", "-n", web, "addr", "flush", "dev", "eth0")
    status, err = cni(h, "CHECK", "web")
    assert status == 1 and err["code"] == 101
    assert err["details"] == f"interface eth0 in /run/netns/{web} has no address, not 10.77.0.2"

    assert cni(h, "DEL", "web") == (0, None)
    assert cni(h, "DEL", "web") == (0, None)  # the spec: DEL of what is gone succeeds
    assert host_if["name"] not in veths(h)
    assert "eth0" not in run("ip", "-n", web, "-o", "link").stdout

    run("ip", "netns", "delete", cli)  # the runtime lost the namespace before DEL
    assert cni(h, "DEL", "cli", ifname="net0") == (0, None)
    assert h.ok("GET", "/sandboxes") == []
    assert veths(h) == []

    status, err = cni(h, "CHECK", "web")
    assert status == 1 and err["details"] == f"dnsd has no sandbox {h.sandbox_name('web')}"


def test_errors_from_a_real_daemon(daemon):
    h = daemon
    container(h, "lone")
    status, err = cni(h, "ADD", "lone", network="absent")
    assert status == 1 and (err["code"], err["msg"]) == (7, "unknown network absent")
    status, err = cni(h, "ADD", "lone", socket=str(h.tmp / "no.sock"))
    assert status == 1 and err["msg"] == f"cannot reach dnsd at {h.tmp / 'no.sock'}"
    assert h.ok("GET", "/sandboxes") == []


def test_status_and_gc_of_cni_1_1(daemon):
    h = daemon
    h.network("app", IPAM={"Config": [{"Subnet": "10.78.0.0/24"}]})
    container(h, "keep")
    container(h, "leak")
    assert cni(h, "STATUS", "keep", cniVersion="1.1.0") == (0, None)
    status, err = cni(h, "STATUS", "keep", cniVersion="1.1.0", socket=str(h.tmp / "no.sock"))
    assert status == 1 and err["code"] == 50, err
    for short in ("keep", "leak"):
        status, result = cni(h, "ADD", short, cniVersion="1.1.0")
        assert status == 0, result
    assert len(veths(h)) == 2
    # The runtime lost track of "leak" (no DEL ever came): GC with the one it still has.
    keep_id = b"keep".hex().ljust(64, "0")
    valid = [{"containerID": keep_id, "ifname": "eth0"}]
    status, out = cni(h, "GC", "keep", cniVersion="1.1.0", **{"cni.dev/valid-attachments": valid})
    assert (status, out) == (0, None)
    assert [s["Name"] for s in h.ok("GET", "/sandboxes")] == [h.sandbox_name("keep")]
    assert len(veths(h)) == 1
    leak = h.sandbox_name("leak")
    assert "eth0" not in run("ip", "-n", leak, "-o", "link").stdout
    dig = run("ip", "netns", "exec", h.sandbox_name("keep"), "dig", "+short", "+tries=1",
              "+time=5", "@127.0.0.11", leak, check=False)  # fmt: skip
    assert dig.stdout.split() == [], dig.stdout
