"""Real Podman (CNI backend) on a dnsd network through `dnsd-cni`.

Podman runs in the test's host namespace (`nsenter --net`), with its own storage, runroot,
containers.conf and CNI config directory, from a busybox-static rootfs (no image pull). Two
things this machine needs, both confined to the test:

- crun refuses "cgroups in hybrid mode" when cgroup v2 (/sys/fs/cgroup/unified) has
  controllers, as here: podman runs in a mount namespace of the test's where that mount is
  made private and unmounted. /run/netns stays shared, so the namespaces podman makes there are
  visible to the daemon.
  The same namespace shows podman the test's resolv.conf (its upstream is the fake one).
- podman's default rlimits (nofile and nproc of 1048576 and more) are above this machine's
  hard limits, which crun may not raise: containers.conf sets them within.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .harness import HostNamespace, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("podman", "crun", "busybox", "unshare", "ldd")
APPLETS = ("sh", "sleep", "cat", "nslookup", "ping", "ip")


def _missing() -> str | None:
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        packages = "podman crun busybox-static util-linux"
        return f"missing {', '.join(absent)} (apt-get install {packages})"
    busybox = shutil.which("busybox") or ""
    ldd = subprocess.run(["ldd", busybox], capture_output=True, text=True, check=False)
    if "not a dynamic executable" not in ldd.stdout + ldd.stderr:
        return f"{busybox} is dynamically linked: apt-get install busybox-static"
    return None


@pytest.fixture
def podman(daemon: HostNamespace):
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Podman test must run in CI, but: {reason}")
        pytest.skip(reason)
    pod = Podman(daemon, Path(tempfile.mkdtemp(prefix="dpm-")))  # short: conmon socket paths
    try:
        pod.setup()
        yield pod
    finally:
        pod.cleanup()


class Podman:
    def __init__(self, host: HostNamespace, base: Path) -> None:
        self.host = host
        self.base = base
        self.mount_ns: subprocess.Popen | None = None
        self.netns_seen: set[str] = set()

    def setup(self) -> None:
        b = self.base
        for d in ("bin", "conf", "rootfs/bin", "rootfs/etc", "root", "runroot", "tmp"):
            (b / d).mkdir(parents=True)
        shutil.copy(shutil.which("busybox") or "", b / "rootfs/bin/busybox")
        for applet in APPLETS:
            (b / "rootfs/bin" / applet).symlink_to("busybox")
        plugin = b / "bin/dnsd"  # the plugin as a runtime finds it: `type` in a plugin dir
        plugin.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec python3 -m dnsd.cni "$@"\n')
        plugin.chmod(0o755)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        (b / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=1024:1024"]\n'
            "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{b}/bin", "/usr/lib/cni"]\n'
            f'network_config_dir = "{b}/conf"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{b}/events.log"\n'
            'runtime = "crun"\n'
            f'static_dir = "{b}/root/libpod"\n'
            f'tmp_dir = "{b}/tmp"\n'
            f'volume_path = "{b}/root/volumes"\n'
        )
        for name, version, extra in (("app", "1.0.0", {}), ("back", "0.4.0", {"create": True})):
            plugin_conf = {
                "type": "dnsd",
                "socket": self.host.socket,
                "capabilities": {"aliases": True, "portMappings": True},
                **extra,
            }
            conflist = {"cniVersion": version, "name": name, "plugins": [plugin_conf]}
            (b / "conf" / f"{name}.conflist").write_text(json.dumps(conflist))
        # Podman adds the host's nameservers after the network's: give it the test's.
        # Every mount is made private there but /run/netns (and what is under it), so
        # nothing done in it reaches the host, and podman's namespaces reach the daemon.
        script = (
            "for m in $(awk '{print $5}' /proc/self/mountinfo); do case $m in "
            "/run/netns|/run/netns/*) ;; *) mount --make-private $m ;; esac; done && "
            f"mount --bind {self.host.tmp / 'resolv.conf'} /etc/resolv.conf && "
            "if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi && "
            "exec sleep infinity"
        )
        self.mount_ns = subprocess.Popen(
            ["nsenter", f"--net={self.host.path}", "unshare", "-m", "--propagation",
             "unchanged", "sh", "-c", script],
        )  # fmt: skip
        for _ in range(100):
            if os.readlink(f"/proc/{self.mount_ns.pid}/exe").endswith("sleep"):
                break
            run("sleep", "0.05")

    def __call__(self, *args: str, check: bool = True, timeout: float = 120):
        env = {**os.environ, "CONTAINERS_CONF": str(self.base / "containers.conf")}
        argv = [
            "nsenter", f"--net={self.host.path}", f"--mount=/proc/{self.mount_ns.pid}/ns/mnt",
            "podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "runroot"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", *args,
        ]  # fmt: skip
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                f"{proc.stderr}\n--- daemon ---\n{self.host.log()}"
            )
        return proc

    def inspect(self, name: str) -> dict:
        data = json.loads(self("inspect", name).stdout)[0]
        if data["NetworkSettings"].get("SandboxKey"):
            self.netns_seen.add(data["NetworkSettings"]["SandboxKey"])
        return data

    def cleanup(self) -> None:
        if self.mount_ns is not None:
            try:
                self("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
            finally:
                self.mount_ns.terminate()
                self.mount_ns.wait(timeout=10)
        for path in self.netns_seen:  # podman's own, if it died before removing them
            if os.path.exists(path):
                run("umount", path, check=False)
                run("rm", "-f", path, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def sandboxes(host: HostNamespace) -> dict[str, dict]:
    return {s["Name"]: s for s in host.ok("GET", "/sandboxes")}


def veths(host: HostNamespace) -> list[str]:
    return host.exec("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()


def test_podman_containers_resolve_each_other_through_dnsd(podman):
    h = podman.host
    h.network("app", IPAM={"Config": [{"Subnet": "10.78.0.0/24"}]})
    rootfs = str(podman.base / "rootfs")

    podman("run", "-d", "--name", "web", "--network", "app", "--network-alias", "api",
           "--rootfs", rootfs, "sleep", "600")  # fmt: skip
    web = podman.inspect("web")
    netns = web["NetworkSettings"]["SandboxKey"]
    assert web["NetworkSettings"]["Networks"]["app"]["IPAddress"] == "10.78.0.2"
    sandbox = sandboxes(h)["web"]
    assert sandbox["NetNS"] == netns and sandbox["Owned"] is False
    endpoint = sandbox["Networks"]["app"]
    assert endpoint["InterfaceName"] == "eth0" and endpoint["IPAddress"] == "10.78.0.2"
    assert "api" in endpoint["Aliases"]

    out = podman(
        "run", "--rm", "--name", "cli", "--network", "app", "--cap-add", "NET_RAW",
        "--rootfs", rootfs, "sh", "-c",
        # Trailing dots: busybox's nslookup tries only the search domain with a bare name.
        "cat /etc/resolv.conf; nslookup web.; nslookup api.; ping -c1 -W3 web",
    ).stdout  # fmt: skip
    assert next(line for line in out.splitlines() if line.startswith("nameserver")) == (
        "nameserver 127.0.0.11"
    )
    assert out.count("Address: 10.78.0.2") == 2, out
    assert "1 packets received" in out, out
    assert list(sandboxes(h)) == ["web"] and len(veths(h)) == 1  # `cli` left nothing

    podman("network", "connect", "back", "web")
    assert {n: e["InterfaceName"] for n, e in sandboxes(h)["web"]["Networks"].items()} == {
        "app": "eth0",
        "back": "eth1",
    }
    assert sorted(podman.inspect("web")["NetworkSettings"]["Networks"]) == ["app", "back"]
    podman("network", "disconnect", "back", "web")
    assert list(sandboxes(h)["web"]["Networks"]) == ["app"] and len(veths(h)) == 1

    podman("stop", "--time", "1", "web")
    assert sandboxes(h) == {} and veths(h) == []
    podman("start", "web")
    assert sandboxes(h)["web"]["Networks"]["app"]["IPAddress"].startswith("10.78.0.")
    podman.inspect("web")
    podman("rm", "--force", "--time", "1", "web")
    assert sandboxes(h) == {} and veths(h) == []
    assert not any(os.path.exists(p) for p in podman.netns_seen)
