"""Health-aware records: which members of a shared name are fit to take traffic.

Applied when a network's table is packed (never per query). Each record of a name carries the
rank of the sandbox whose address it is (no check counts as healthy); for A, AAAA and SRV only
the records of the best rank present are answered: healthy ones, else starting ones, else
(nobody fit) all of them: fail open, so a broken checker cannot black-hole a service. The left-
out records stay in the node under `rtype | EXCLUDED`, for `tasks.<name>`, which answers every
member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netcore.model import Sandbox

from . import wire

HEALTHY, STARTING, UNHEALTHY = 0, 1, 2
RANKS = {"healthy": HEALTHY, "starting": STARTING, "unhealthy": UNHEALTHY}
HEALTH_AWARE_TYPES = frozenset({wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV})
# A node key above every 16-bit qtype: the records of `key & 0xFFFF` left out for health.
EXCLUDED = 0x10000
TYPE_MASK = 0xFFFF
TASKS_LABEL = b"\x05tasks"  # Docker Swarm's `tasks.<service>`: every member, health ignored

# One endpoint's contribution to one name: its rank and {rtype: rdatas}.
Part = tuple[int, Mapping[int, set[bytes]]]


def health_rank(sandbox: Sandbox, health: Mapping[str, str]) -> int:
    """The rank of a sandbox's records: no (or a NONE) check is healthy; a check that has no
    result yet is starting (the daemon reports statuses after the registry commits)."""
    check = sandbox.healthcheck
    if check is None or check.disabled:
        return HEALTHY
    return RANKS.get(health.get(sandbox.id, "starting"), STARTING)


def fit_records(parts: Iterable[Part]) -> tuple[dict[int, set[bytes]], bool]:
    """The node of one name from its members' parts, and whether it failed open (two or more
    records of a health-aware type, none of them fit)."""
    parts = list(parts)
    if all(rank == HEALTHY for rank, _ in parts):  # the common case: a plain union
        node: dict[int, set[bytes]] = {}
        for _, types in parts:
            for rtype, rdatas in types.items():
                node.setdefault(rtype, set()).update(rdatas)
        return node, False
    ranked: dict[int, dict[bytes, int]] = {}
    for rank, types in parts:
        for rtype, rdatas in types.items():
            seen = ranked.setdefault(rtype, {})
            for rdata in rdatas:  # one address from two members: the better one counts
                if seen.get(rdata, UNHEALTHY + 1) > rank:
                    seen[rdata] = rank
    node = {}
    failed_open = False
    for rtype, seen in ranked.items():
        best = min(seen.values())
        if rtype not in HEALTH_AWARE_TYPES or best == UNHEALTHY:
            node[rtype] = set(seen)
            failed_open |= best == UNHEALTHY and rtype in HEALTH_AWARE_TYPES and len(seen) > 1
            continue
        node[rtype] = {rdata for rdata, rank in seen.items() if rank == best}
        if len(node[rtype]) < len(seen):
            node[rtype | EXCLUDED] = {rdata for rdata, rank in seen.items() if rank != best}
    return node, failed_open
