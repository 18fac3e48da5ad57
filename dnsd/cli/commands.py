"""`dnsd network ...` and `dnsd sandbox ...`: requests to the daemon, tables or JSON back."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from netcore.requests import OPT_DNS_TTL

from . import health_flags
from .api_client import ApiClient, ApiError


class UsageError(Exception):
    """A command line that cannot work; printed with exit status 2."""


def host_port(value: str, flag: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) from a flag's value."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{flag} {value!r}: use HOST:PORT, e.g. 127.0.0.1:2375")
    return host.strip("[]"), int(port)


def api_client(args: argparse.Namespace) -> ApiClient:
    """The client that `--api-socket` (or `--api-tcp` with `--api-token`) asks for."""
    if args.api_tcp:
        return ApiClient(tcp=host_port(args.api_tcp, "--api-tcp"), token=args.api_token)
    return ApiClient(socket_path=args.api_socket, token=args.api_token)


# --- output ---


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Docker-style columns: left-aligned, three spaces apart."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = [
        "   ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip()
        for line in (headers, *rows)
    ]
    return "\n".join(lines)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=4))


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"{flag} {item!r}: use KEY=VALUE")
        out[key] = value if sep else ""
    return out


def _filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--filter {item!r}: use KEY=VALUE, e.g. name=web")
        out.setdefault(key, []).append(value)
    return out


# --- network commands ---


def cmd_network_create(client: ApiClient, args: argparse.Namespace) -> int:
    options = _pairs(args.opt, "--opt")
    if args.dns_ttl is not None:
        options[OPT_DNS_TTL] = str(args.dns_ttl)
    network_id = client.create_network(
        args.name,
        subnet=args.subnet,
        ip_range=args.ip_range,
        gateway=args.gateway,
        ipv6=args.ipv6,
        subnet6=args.subnet6,
        ip_range6=args.ip_range6,
        gateway6=args.gateway6,
        internal=args.internal,
        options=options,
        labels=_pairs(args.label, "--label"),
        driver=args.driver,
    )
    _print_json({"Id": network_id}) if args.format == "json" else print(network_id)
    return 0


def _subnets(network: dict[str, Any]) -> str:
    return ",".join(c.get("Subnet", "") for c in (network.get("IPAM") or {}).get("Config") or [])


def cmd_network_ls(client: ApiClient, args: argparse.Namespace) -> int:
    networks = client.networks(_filters(args.filter))
    if args.format == "json":
        _print_json(networks)
    elif args.quiet:
        print("\n".join(n["Id"][:12] for n in networks))
    else:
        rows = [
            (
                n["Id"][:12],
                n["Name"],
                n["Driver"],
                n["Scope"],
                _subnets(n),
                str(len(n["Containers"])),
            )
            for n in networks
        ]
        print(table(("NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "SANDBOXES"), rows))
    return 0


def _each(refs: list[str], action: Callable[[str], Any]) -> int:
    """Run `action` on every ref like docker does: report each failure, keep going."""
    status = 0
    for ref in refs:
        try:
            action(ref)
        except ApiError as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            status = 1
    return status


def show_each(fetch: Callable[[str], dict[str, Any]], refs: list[str]) -> int:
    found: list[dict[str, Any]] = []
    status = _each(refs, lambda ref: found.append(fetch(ref)))
    _print_json(found)
    return status


def remove_each(remove: Callable[[str], None], refs: list[str]) -> int:
    return _each(refs, lambda ref: (remove(ref), print(ref)))


def cmd_network_connect(client: ApiClient, args: argparse.Namespace) -> int:
    client.connect(
        args.network,
        args.sandbox,
        aliases=args.alias,
        ipv4=args.ip,
        ipv6=args.ip6,
        mac=args.mac,
        links=args.link,
    )
    return 0


def cmd_network_prune(client: ApiClient, args: argparse.Namespace) -> int:
    if not args.force and sys.stdin.isatty():
        answer = input("This removes every network no sandbox uses. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    removed = client.prune_networks(_filters(args.filter))
    if args.format == "json":
        _print_json({"NetworksDeleted": removed})
    elif removed:
        print("Deleted Networks:\n" + "\n".join(removed))
    return 0


# --- sandbox commands ---


def cmd_sandbox_create(client: ApiClient, args: argparse.Namespace) -> int:
    try:
        check = health_flags.healthcheck(args)
    except health_flags.HealthFlagError as exc:
        raise UsageError(str(exc)) from None
    try:
        sandbox_id = client.create_sandbox(
            args.name,
            netns=args.netns,
            hostname=args.hostname,
            dns=args.dns,
            dns_search=args.dns_search or None,
            dns_options=args.dns_option or None,
            extra_hosts=args.add_host,
            publish=args.publish,
            network=args.network,
            aliases=args.alias,
            ipv4=args.ip,
            links=args.link,
            healthcheck=check,
            labels=_pairs(args.label, "--label"),
        )
    except ValueError as exc:  # a --publish spec the client could not read
        raise UsageError(f"--publish {exc}") from None
    _print_json({"Id": sandbox_id}) if args.format == "json" else print(sandbox_id)
    return 0


def _addresses(sandbox: dict[str, Any]) -> str:
    nets = sandbox.get("Networks") or {}
    return ",".join(f"{name}={ep['IPAddress']}" for name, ep in nets.items())


def _health(sandbox: dict[str, Any]) -> str:
    """starting / healthy / unhealthy; `-` without a check (Docker's ps shows nothing)."""
    state = (sandbox.get("State") or {}).get("Health")
    return state["Status"] if state else "-"


def cmd_sandbox_ls(client: ApiClient, args: argparse.Namespace) -> int:
    sandboxes = client.sandboxes()
    if args.format == "json":
        _print_json(sandboxes)
    elif args.quiet:
        print("\n".join(s["Id"][:12] for s in sandboxes))
    else:
        rows = [
            (s["Id"][:12], s["Name"], s["NetworkMode"], _addresses(s), _health(s), s["NetNS"])
            for s in sandboxes
        ]
        print(table(("SANDBOX ID", "NAME", "MODE", "NETWORKS", "HEALTH", "NETNS"), rows))
    return 0


# Bind-mount the sandbox's files over /etc in a private mount namespace, then run the command;
# `&&` so a failed mount stops the command instead of running it with the host's resolver.
_EXEC_SCRIPT = (
    'if [ -n "$1" ]; then mount --bind "$1" /etc/resolv.conf || exit 125; fi; '
    'if [ -n "$2" ]; then mount --bind "$2" /etc/hosts || exit 125; fi; '
    'shift 2 && exec "$@"'
)


def exec_argv(sandbox: dict[str, Any], command: Sequence[str]) -> list[str]:
    """The argv that runs `command` in a sandbox's namespace with its resolv.conf and hosts."""
    if not command:
        raise UsageError("give the command to run after --, e.g. dnsd sandbox exec web -- sh")
    if sandbox["NetworkMode"] == "host":
        return list(command)  # the host's own namespace and files
    resolv = sandbox.get("ResolvConfPath") or ""
    hosts = sandbox.get("HostsPath") or ""
    return [
        "nsenter", f"--net={sandbox['NetNS']}",
        "unshare", "--mount", "--propagation", "private",
        "sh", "-c", _EXEC_SCRIPT, "dnsd-exec",
        resolv if os.path.exists(resolv) else "",
        hosts if os.path.exists(hosts) else "",
        *command,
    ]  # fmt: skip


def cmd_sandbox_exec(client: ApiClient, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    argv = exec_argv(client.sandbox(args.sandbox), command)
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"Error: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process
