"""What a sandbox sees of the network: name lookups with dig and reachability with ping."""

from __future__ import annotations

from .harness import HostNamespace

RESOLVER = "@127.0.0.11"  # the embedded DNS server, as the sandbox's resolv.conf names it


def dig(host: HostNamespace, short: str, *args: str, server: str = RESOLVER) -> str:
    """`dig` inside sandbox `short` (server "" for resolv.conf's); returns its full output."""
    cmd = ["dig", "+tries=1", "+time=6"]
    if server:
        cmd.append(server)
    return host.sandbox_exec(short, *cmd, *args, check=False, timeout=30).stdout


def dig_short(host: HostNamespace, short: str, *args: str, server: str = RESOLVER) -> list[str]:
    """The answers of `dig +short`, sorted."""
    return sorted(dig(host, short, "+short", *args, server=server).split())


def ping(host: HostNamespace, short: str, address: str) -> bool:
    """One ping from sandbox `short` to `address` is answered within a second."""
    return host.sandbox_exec(short, "ping", "-c1", "-W1", address, check=False).returncode == 0
