"""`dnsd status`: the daemon's `/info`, for people (or `--format json` for scripts)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .api_client import ApiClient


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h{minutes:02d}m")
    else:
        parts.append(f"{minutes}m")
    return "".join([*parts, f"{secs:02d}s"])


def status_lines(info: dict[str, Any]) -> list[str]:
    """The human summary of a `/info` body."""
    dnsd = info.get("Dnsd") or {}
    lines = [
        f"dnsd {info.get('ServerVersion', '?')}"
        + (f", pid {dnsd['Pid']}" if "Pid" in dnsd else "")
        + (f", up {_duration(dnsd['UptimeSeconds'])}" if "UptimeSeconds" in dnsd else ""),
        f"store:        {dnsd.get('Store', '?')}",
        f"objects:      {dnsd.get('Networks', 0)} networks, {dnsd.get('Sandboxes', 0)} sandboxes, "
        f"{dnsd.get('Endpoints', 0)} endpoints, {dnsd.get('Listeners', 0)} dns listeners",
    ]
    upstreams = dnsd.get("Upstreams") or []
    if not upstreams:
        lines.append("upstreams:    none (forwarded queries get SERVFAIL)")
    for i, up in enumerate(upstreams):
        health = "healthy" if up.get("Healthy") else "FAILING (asked last)"
        lines.append(
            f"{'upstreams:' if i == 0 else '':<14}{up['Address']} via {up['Via']}: {health}, "
            f"{up.get('Queries', 0)} queries, {up.get('Failures', 0)} failures"
        )
    lines.append(f"reply cache:  {dnsd.get('ReplyCacheEntries', 0)} entries")
    lines.append(f"in flight:    {dnsd.get('ForwardsInFlight', 0)} forwarded queries")
    if not dnsd.get("Metrics", True):
        metrics = "off"
    elif dnsd.get("MetricsListen"):
        metrics = f"/metrics on the API and http://{dnsd['MetricsListen']}/metrics"
    else:
        metrics = "/metrics on the API"
    lines.append(f"metrics:      {metrics}")
    lines.append(f"query log:    {dnsd.get('QueryLog') or 'off'}")
    if "UdpLoop" in dnsd:
        loop = dnsd["UdpLoop"]
        if loop == "C":
            lines.append("udp loop:     C accelerator")
        else:
            lines.append(
                f"udp loop:     {loop} (slower: install gcc and python3-dev, reinstall dnsd)"
            )
    if "HostDns" in dnsd:
        lines.append(f"host dns:     {', '.join(dnsd['HostDns']) or 'off'}")
    health = dnsd.get("Health")
    if health:
        checks = health.get("Checks") or {}
        worker = health.get("WorkerPid")
        lines.append(
            f"health:       {sum(checks.values())} checks ("
            + ", ".join(f"{checks.get(s, 0)} {s}" for s in ("healthy", "unhealthy", "starting"))
            + f"), {health.get('FailOpenNames', 0)} names failing open, probe worker "
            + (f"pid {worker}" if worker else "not running")
            + f", {health.get('WorkerRestarts', 0)} restarts"
        )
    return lines


def cmd_status(client: ApiClient, args: argparse.Namespace) -> int:
    info = client.request("GET", "/info")
    if args.format == "json":
        print(json.dumps(info, indent=4))
    else:
        print("\n".join(status_lines(info)))
    return 0
