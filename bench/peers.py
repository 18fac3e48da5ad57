"""The servers dnsd is compared with (dnsmasq, aardvark-dns) and the fake upstream.

Each peer runs inside a namespace of the same kind as the asker of dnsd (a sandbox the daemon
made on the same network), listening on an address of that namespace's lo, and is given exactly
the names dnsd serves, so the query file is the same for every server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .lab import BenchError, BenchHost, kill_pid
from .probe import resolve_once

AARDVARK = "/usr/lib/podman/aardvark-dns"
# Documentation addresses (TEST-NET-1) on the peer namespace's lo: each peer listens on its own
# (for aardvark, the network's "gateway"; one shared address would let the first bound server
# answer for both), dnsperf sends from PEER_ASKER (aardvark answers only askers it finds in its
# config, by source address).
DNSMASQ_LISTEN = "192.0.2.53"
AARDVARK_LISTEN = "192.0.2.54"
PEER_ASKER = "192.0.2.10"
ASKER_NAME = "bench-asker"
# dnsmasq forwards at most this many queries at once (150 by default): the mixed run keeps
# ~100 in flight, so the default is not what limits it.
DNSMASQ_FORWARD_MAX = 1000


@dataclass(frozen=True, slots=True)
class Peer:
    """A running peer server: how to reach it and which process to measure."""

    name: str
    netns: str  # `ip netns` name to run dnsperf in
    address: str
    source: str | None  # dnsperf's -a
    pid: int
    udp_only: bool = False


def hosts_file_text(records: Mapping[str, str]) -> str:
    """An /etc/hosts-style file (`address name...`), one line per address."""
    by_address: dict[str, list[str]] = {}
    for name, address in records.items():
        by_address.setdefault(address, []).append(name)
    return "".join(f"{address} {' '.join(names)}\n" for address, names in by_address.items())


def aardvark_config_text(listen: str, asker: str, records: Mapping[str, str]) -> str:
    """One network's aardvark-dns config: the listen address(es), then per container
    `<64-hex id> <ipv4s> <ipv6s> <names>` (comma-separated; ipv6s empty here)."""
    lines = [listen]
    lines.append(f"{secrets.token_hex(32)} {asker}  {ASKER_NAME}")
    by_address: dict[str, list[str]] = {}
    for name, address in records.items():
        by_address.setdefault(address, []).append(name)
    for address, names in by_address.items():
        lines.append(f"{secrets.token_hex(32)} {address}  {','.join(names)}")
    return "\n".join(lines) + "\n"


def dnsmasq_argv(
    listen: str,
    hosts_file: str,
    pid_file: str,
    *,
    upstream: str | None = None,
    local_only: bool = False,
    ttl: int = 0,
    wildcard: str | None = None,
) -> list[str]:
    """dnsmasq answering `hosts_file` on `listen`:53 (forwarding the rest to `upstream`), its
    own names with `ttl`; `wildcard` (`new.test/192.0.2.9`): every name under it answers."""
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={listen}",
        "--port=53",
        "--user=root",
        f"--pid-file={pid_file}",
        f"--addn-hosts={hosts_file}",
        f"--local-ttl={ttl}",
        f"--dns-forward-max={DNSMASQ_FORWARD_MAX}",
    ]
    if upstream is not None:
        argv.append(f"--server={upstream}")
    if wildcard is not None:
        argv.append(f"--address=/{wildcard}")
    if local_only:
        argv.append("--local=/#/")  # NXDOMAIN for everything else, like the harness upstream
    return argv


def add_lo_addresses(host: BenchHost, netns_name: str, *addresses: str) -> None:
    for address in addresses:
        subprocess.run(
            ["ip", "-n", netns_name, "addr", "replace", f"{address}/32", "dev", "lo"],
            check=True,
            capture_output=True,
        )


def _pinned(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def start_dnsmasq(
    host: BenchHost,
    netns_name: str,
    records: Mapping[str, str],
    *,
    cpu: int | None,
    probe_name: str,
    upstream: str | None = None,
    label: str = "dnsmasq",
) -> Peer:
    """dnsmasq inside the sandbox `netns_name`, on DNSMASQ_LISTEN; stopped by the harness."""
    add_lo_addresses(host, netns_name, DNSMASQ_LISTEN, PEER_ASKER)
    hosts = host.tmp / f"{label}.hosts"
    hosts.write_text(hosts_file_text(records))
    pid_file = str(host.tmp / f"{label}.pid")
    argv = dnsmasq_argv(DNSMASQ_LISTEN, str(hosts), pid_file, upstream=upstream)
    proc = subprocess.Popen(
        [*_pinned(cpu), "ip", "netns", "exec", netns_name, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host.extra.append(proc)  # taskset and ip netns exec exec: this pid is dnsmasq
    _wait_ready(f"/run/netns/{netns_name}", DNSMASQ_LISTEN, probe_name, PEER_ASKER, label, proc)
    return Peer(label, netns_name, DNSMASQ_LISTEN, PEER_ASKER, proc.pid)


def start_aardvark(
    host: BenchHost,
    netns_name: str,
    records: Mapping[str, str],
    *,
    cpu: int | None,
    probe_name: str,
) -> Peer:
    """aardvark-dns inside the sandbox `netns_name`; it always daemonises (1.4 has no
    foreground flag), so its pid comes from the pid file it writes in the config directory."""
    if not os.access(AARDVARK, os.X_OK):
        raise BenchError(f"{AARDVARK} not found: apt-get install aardvark-dns")
    add_lo_addresses(host, netns_name, AARDVARK_LISTEN, PEER_ASKER)
    config_dir = host.tmp / "aardvark"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "bench").write_text(aardvark_config_text(AARDVARK_LISTEN, PEER_ASKER, records))
    pid_file = config_dir / "aardvark.pid"
    proc = subprocess.run(
        [
            *_pinned(cpu),
            "ip",
            "netns",
            "exec",
            netns_name,
            AARDVARK,
            "--config",
            str(config_dir),
            "-p",
            "53",
            "run",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    pid = _read_pid(pid_file)
    if pid is None:
        raise BenchError(f"aardvark-dns did not start ({proc.returncode}): {proc.stderr[-1000:]}")
    host.add_cleanup(lambda: kill_pid(pid, "aardvark-dns"))
    _wait_ready(f"/run/netns/{netns_name}", AARDVARK_LISTEN, probe_name, PEER_ASKER, "aardvark-dns")
    return Peer("aardvark-dns", netns_name, AARDVARK_LISTEN, PEER_ASKER, pid, udp_only=True)


def _read_pid(path: Path, timeout_s: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.05)
    return None


def _wait_ready(
    netns_path: str,
    server: str,
    name: str,
    source: str,
    label: str,
    proc: subprocess.Popen | None = None,
) -> None:
    deadline = time.monotonic() + 10
    while True:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{label} exited {proc.returncode} at start: check its arguments")
        try:
            reply = resolve_once(netns_path, server, name, source=source)
        except BenchError:
            reply = None
        if reply is not None and reply.addresses:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{label} on {server} does not answer {name} (last reply: {reply})")
        time.sleep(0.1)


UPSTREAM_TTL = 300  # a real zone's TTL: the forwarded answers are worth caching
NEW_NAMES_ZONE = "new.test"  # any name under it answers: every query a new name
NEW_NAMES_ADDRESS = "198.51.100.9"


def start_quiet_upstream(host: BenchHost, address: str, records: Mapping[str, str]) -> int:
    """The fake upstream (dnsmasq on `address`, lo of the host namespace), like the harness's
    but without query logging: the mixed run sends it tens of thousands of queries a second.
    Its names have a TTL of 300 s, and every name under NEW_NAMES_ZONE answers."""
    subprocess.run(
        ["ip", "-n", host.name, "addr", "replace", f"{address}/32", "dev", "lo"],
        check=True,
        capture_output=True,
    )
    hosts = host.tmp / "upstream.hosts"
    hosts.write_text(hosts_file_text(records))
    argv = dnsmasq_argv(
        address,
        str(hosts),
        str(host.tmp / "upstream.pid"),
        local_only=True,
        ttl=UPSTREAM_TTL,
        wildcard=f"{NEW_NAMES_ZONE}/{NEW_NAMES_ADDRESS}",
    )
    proc = subprocess.Popen(
        ["nsenter", f"--net={host.path}", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host.extra.append(proc)
    _wait_ready(host.path, address, next(iter(records)), "", "upstream dnsmasq", proc)
    return proc.pid
