"""Hosts-file lines of Docker's legacy links: on the default `bridge` network, where Docker
has no embedded DNS, a link also writes the target into the linking sandbox's /etc/hosts.

Docker writes `IP<TAB>alias hostname name` (the name only when the alias differs from it),
among the extra hosts, before the sandbox's own lines.
"""

from __future__ import annotations

from netcore.engine import DEFAULT_NETWORK
from netcore.model import Snapshot

HostLine = tuple[str, str]  # (address, space-separated names)


def link_host_lines(snapshot: Snapshot) -> dict[str, tuple[HostLine, ...]]:
    """Linking sandbox id -> the hosts lines of its links on the default network."""
    default = next((n.id for n in snapshot.networks if n.name == DEFAULT_NETWORK), None)
    if default is None:
        return {}
    on_default = [ep for ep in snapshot.endpoints if ep.network_id == default]
    if not any(ep.links for ep in on_default):
        return {}
    sandboxes = {s.id: s for s in snapshot.sandboxes}
    by_sandbox = {ep.sandbox_id: ep for ep in on_default}
    out: dict[str, tuple[HostLine, ...]] = {}
    for ep in on_default:
        lines: list[HostLine] = []
        for target_id, alias in ep.links:
            target = sandboxes.get(target_id)
            if target is None:
                continue
            owner = target.joined_to if target.mode == "container" else target.id
            found = by_sandbox.get(owner or "")
            if found is None:
                continue
            names = [alias, target.hostname or target.short_id]
            if alias != target.name:
                names.append(target.name)
            joined = " ".join(dict.fromkeys(names))
            lines.append((str(found.ipv4), joined))
            if found.ipv6 is not None:
                lines.append((str(found.ipv6), joined))
        if lines:
            out[ep.sandbox_id] = tuple(lines)
    return out
