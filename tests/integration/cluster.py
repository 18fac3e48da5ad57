"""A cluster in namespaces: an underlay with a bridge, hosts on it by veths, a real etcd.

    underlay namespace: bridge ul0 10.231.0.0/24, etcd member(s) on .1 (.2, .3)
    host namespaces A, B, C: eth1 = 10.231.0.11, .12, .13; each with its own dnsd
    (`nsenter --net`, own state dir and resolv.conf, `--store etcd://...`)

Sandboxes are named per run (the namespace names under /run/netns are machine-wide) and get
the short names tests use as aliases on the overlays. Everything is removed afterwards.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.requires import require_binary

from .harness import HostNamespace, run

UNDERLAY = "10.231.0"
ETCD_PORT = 2379
HOST_TTL_S = 3  # short, so that a killed host's names go quickly


@dataclass
class EtcdMember:
    name: str
    address: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen | None = None
    log_file: object = None


@dataclass
class Cluster:
    prefix: str
    tmp: Path
    hosts: dict[str, HostNamespace] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    members: list[EtcdMember] = field(default_factory=list)
    etcd_prefix: str = "/dnsd"

    @property
    def underlay(self) -> str:
        return f"{self.prefix}ul"

    @property
    def store_url(self) -> str:
        endpoints = ",".join(f"{m.address}:{ETCD_PORT}" for m in self.members)
        return f"etcd://{endpoints}{self.etcd_prefix}"

    def ul(self, *args: str, check: bool = True):
        return run("nsenter", f"--net=/run/netns/{self.underlay}", *args, check=check)

    # --- etcd ---

    def start_etcd(self, members: int = 1) -> None:
        names = [f"m{i}" for i in range(members)]
        initial = ",".join(f"{n}=http://{UNDERLAY}.{i + 1}:2380" for i, n in enumerate(names))
        for i, name in enumerate(names):
            address = f"{UNDERLAY}.{i + 1}"
            if i:
                self.ul("ip", "addr", "add", f"{address}/24", "dev", "ul0")
            member = EtcdMember(name, address, self.tmp / f"etcd-{name}", self.tmp / f"{name}.log")
            self.members.append(member)
            self.start_member(member, initial)
        self.wait_etcd()

    def start_member(self, member: EtcdMember, initial: str | None = None) -> None:
        initial = initial or ",".join(f"{m.name}=http://{m.address}:2380" for m in self.members)
        client = f"http://{member.address}:{ETCD_PORT}"
        peer = f"http://{member.address}:2380"
        if member.log_file is not None:
            member.log_file.close()
        log = member.log_file = open(member.log, "ab")  # noqa: SIM115 - closed in cleanup()
        member.proc = subprocess.Popen(
            [
                "nsenter", f"--net=/run/netns/{self.underlay}", "etcd",
                "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial, "--initial-cluster-token", self.prefix,
                "--heartbeat-interval", "50", "--election-timeout", "500",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_etcd(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [m for m in self.members if m.proc and m.proc.poll() is None]
            probe = self.ul(
                "etcdctl", "--endpoints", ",".join(f"{m.address}:{ETCD_PORT}" for m in alive),
                "--dial-timeout", "1s", "--command-timeout", "2s", "put", "/probe", "1",
                check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError("etcd did not come up: " + self.members[0].log.read_text()[-2000:])

    def stop_member(self, member: EtcdMember, sig: int = signal.SIGTERM) -> None:
        if member.proc is not None and member.proc.poll() is None:
            os.killpg(member.proc.pid, sig)
            member.proc.wait(timeout=20)

    # --- hosts ---

    def add_host(self, letter: str, *, start: bool = True, **kw) -> HostNamespace:
        tmp = self.tmp / letter
        tmp.mkdir(exist_ok=True)
        host = HostNamespace(f"{self.prefix}{letter}-", f"{self.prefix}{letter}", tmp)
        run("ip", "netns", "add", host.name)
        self.hosts[letter] = host
        host.exec("ip", "link", "set", "lo", "up")
        (tmp / "resolv.conf").write_text("nameserver 198.51.100.53\noptions timeout:1 attempts:1\n")
        address = f"{UNDERLAY}.{11 + len(self.addresses)}"
        self.addresses[letter] = address
        veth = f"{self.prefix}{letter}"[-13:] + "u"
        self.ul("ip", "link", "add", veth, "type", "veth", "peer", "eth1", "netns", host.path)
        self.ul("ip", "link", "set", veth, "master", "ul0", "up")
        host.exec("ip", "addr", "add", f"{address}/24", "dev", "eth1")
        host.exec("ip", "link", "set", "eth1", "up")
        if start:
            self.start(letter, **kw)
        return host

    def daemon_args(self, letter: str, ttl: int = HOST_TTL_S) -> list[str]:
        return [
            "--store", self.store_url, "--host-id", letter,
            "--advertise-addr", self.addresses[letter], "--host-ttl", str(ttl),
            "--no-default-network", "--reconcile-interval", "2",
        ]  # fmt: skip

    def start(self, letter: str, **kw) -> None:
        self.hosts[letter].start_daemon(*self.daemon_args(letter, **kw))

    # --- objects ---

    def overlay(self, letter: str, name: str, subnet: str, **body) -> dict:
        ipam = {"Config": [{"Subnet": subnet}]}
        return self.hosts[letter].network(name, Driver="overlay", IPAM=ipam, **body)

    def sandbox(self, letter: str, short: str, network: str, *aliases: str) -> dict:
        host = self.hosts[letter]
        host.sandbox(short)
        host.connect(network, short, Aliases=list(aliases or (short,)))
        return host.ok("GET", f"/sandboxes/{host.sandbox_name(short)}")

    def dig(self, letter: str, short: str, name: str, qtype: str = "A") -> list[str]:
        out = self.hosts[letter].sandbox_exec(
            short, "dig", "+short", "+tries=1", "+time=1", name, qtype, check=False
        )
        return sorted(line for line in out.stdout.splitlines() if _is_answer(line))

    def wait_for(self, what, timeout: float = 10, interval: float = 0.05):
        deadline = time.monotonic() + timeout
        while True:
            value = what()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(interval)

    def etcdctl(self, *args: str) -> str:
        endpoints = ",".join(f"{m.address}:{ETCD_PORT}" for m in self.members)
        return self.ul("etcdctl", "--endpoints", endpoints, *args).stdout

    def keys(self, prefix: str) -> list[str]:
        out = self.etcdctl("get", "--prefix", "--keys-only", self.etcd_prefix + prefix)
        return [k for k in out.split() if k]

    def cleanup(self) -> None:
        for host in self.hosts.values():
            host.cleanup()
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                os.killpg(member.proc.pid, signal.SIGKILL)
                member.proc.wait(timeout=10)
            if member.log_file is not None:
                member.log_file.close()
        run("ip", "netns", "delete", self.underlay, check=False)

    def describe(self) -> str:
        """The daemons' logs, for an assertion message."""
        return "\n".join(f"--- {k}:\n{h.log()[-3000:]}" for k, h in self.hosts.items())


def require_etcd() -> None:
    """Skip without etcd, but fail in CI (which installs etcd-server and etcd-client)."""
    require_binary("etcd", "apt-get install etcd-server")
    require_binary("etcdctl", "apt-get install etcd-client")


def new_cluster(tmp: Path) -> Cluster:
    cluster = Cluster(prefix=f"dc{secrets.token_hex(3)}", tmp=tmp)
    run("ip", "netns", "add", cluster.underlay)
    cluster.ul("ip", "link", "set", "lo", "up")
    cluster.ul("ip", "link", "add", "ul0", "type", "bridge")
    cluster.ul("ip", "addr", "add", f"{UNDERLAY}.1/24", "dev", "ul0")
    cluster.ul("ip", "link", "set", "ul0", "up")
    return cluster


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _is_answer(line: str) -> bool:
    """A line of `dig +short` that is a record (not one of its error messages)."""
    if line.endswith(".") and " " not in line:
        return True
    try:
        ipaddress.ip_address(line)
    except ValueError:
        return False
    return True
