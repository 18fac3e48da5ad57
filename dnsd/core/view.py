"""The zone view: what each sandbox's 127.0.0.11 answers, pre-packed once per registry snapshot.

Built off the hot path whenever the registry changes; the daemon swaps the reference atomically
(aardvark's ArcSwap), so queries never take a lock. Records are indexed per network and merged
per distinct *set* of networks, so 1,000 sandboxes on one network share one table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from netcore.errors import InvalidArgument
from netcore.model import Endpoint, Network, Record, Sandbox, Snapshot

from . import wire
from .fitness import EXCLUDED, TYPE_MASK, Part, fit_records, health_rank
from .zone_records import Statics, cname_bases, link_cnames, network_statics, overlay, pack_node

# Pre-packed answer records of one (name, type), in canonical order (sorted by rdata): the
# answer shuffles a copy, so the oracle can reproduce it with the same seeded rng.
RecordSet = tuple[bytes, ...]
# Lower-cased wire name -> {qtype: records}. The inner dicts are never mutated after build; a
# name with a CNAME has a `zone_records.CnameNode`, whose values are `Chain`s.
NameTable = Mapping[bytes, dict[int, RecordSet]]

_VALID_NDOTS = re.compile(r"ndots:[0-9]+")  # same rule as dnsd.sandbox_files.resolvconf
_MAX_TTL = 2**31 - 1  # RFC 2181 8: TTLs are 31-bit
_NO_ZONE_MODES = ("none", "host", "remote")  # remote: asks its own host
NO_HEALTH: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SandboxZone:
    """What one sandbox may see: the merged table of its networks, and its forwarding rules."""

    sandbox_id: str
    names: NameTable
    network_ids: frozenset[str]
    internal_only: bool  # every network is internal: never forward through the host
    explicit_ndots: bool  # single-label A/AAAA it does not own get an empty NOERROR


@dataclass(frozen=True, slots=True)
class ZoneView:
    """Read-only index of every sandbox's zone, for one registry revision."""

    revision: int
    zones: Mapping[str, SandboxZone]
    snapshot: Snapshot  # kept for the oracle and for debugging; not read on the hot path
    host_explicit_ndots: bool = False
    # sandbox id -> the status the answers were built with
    health: Mapping[str, str] = field(default_factory=lambda: NO_HEALTH)
    fail_open: int = 0  # (network, name) pairs answered with every member: none is fit


def build_view(
    snapshot: Snapshot,
    *,
    host_explicit_ndots: bool = False,
    health: Mapping[str, str] = NO_HEALTH,
) -> ZoneView:
    """Index `snapshot` for answering (from scratch; the daemon uses the incremental
    `dnsd.core.incremental.ViewBuilder`, which gives the same view).

    `host_explicit_ndots`: the host's resolv.conf sets ndots, which sandboxes without their own
    `dns_options` inherit (see dnsd.sandbox_files.resolvconf.explicit_ndots). `health` (sandbox
    id -> starting/healthy/unhealthy) leaves unfit members out of shared names (core.fitness).
    """
    index = index_snapshot(snapshot)
    per_network = {
        nid: _network_records(index.networks[nid], eps, index.sandboxes, index.joiners, health)
        for nid, eps in index.endpoints_by_network.items()
    }
    statics = {
        nid: network_statics(index.networks[nid], index.records_by_network.get(nid, ()))
        for nid in per_network
    }
    interned: dict[bytes, bytes] = {}
    tables: dict[frozenset[str], NameTable] = {}

    def table_for(network_ids: frozenset[str]) -> NameTable:
        table = tables.get(network_ids)
        if table is None:
            members = sorted(network_ids)
            records = _merge(
                [per_network[nid][:2] for nid in members], [statics[nid] for nid in members]
            )
            table = tables[network_ids] = _pack_table(records, interned)
        return table

    fail_open = sum(failed for _, _, failed in per_network.values())
    return assemble_view(
        snapshot, index, table_for, host_explicit_ndots, health=health, fail_open=fail_open
    )


@dataclass(frozen=True, slots=True)
class SnapshotIndex:
    """A snapshot's objects by id, and who is where."""

    networks: dict[str, Network]
    sandboxes: dict[str, Sandbox]
    endpoints_by_network: dict[str, list[Endpoint]]
    networks_by_sandbox: dict[str, set[str]]
    roots: dict[str, Sandbox | None]
    joiners: dict[str, list[Sandbox]]
    records_by_network: dict[str, list[Record]] = field(default_factory=dict)


_last_index: tuple[Snapshot, SnapshotIndex] | None = None


def index_snapshot(snapshot: Snapshot) -> SnapshotIndex:
    """The snapshot's index (read-only for callers). The last one is kept: the registry hands
    the same snapshot to each subscriber in turn (the sandboxes' views, the host's)."""
    global _last_index
    last = _last_index
    if last is not None and last[0] is snapshot:
        return last[1]
    index = _index(snapshot)
    _last_index = (snapshot, index)
    return index


def _index(snapshot: Snapshot) -> SnapshotIndex:
    networks = {network.id: network for network in snapshot.networks}
    sandboxes = {sandbox.id: sandbox for sandbox in snapshot.sandboxes}
    endpoints_by_network: dict[str, list[Endpoint]] = defaultdict(list)
    networks_by_sandbox: dict[str, set[str]] = defaultdict(set)
    for endpoint in snapshot.endpoints:
        if endpoint.network_id in networks and endpoint.sandbox_id in sandboxes:
            endpoints_by_network[endpoint.network_id].append(endpoint)
            networks_by_sandbox[endpoint.sandbox_id].add(endpoint.network_id)
    roots = {sid: root_sandbox(sandbox, sandboxes) for sid, sandbox in sandboxes.items()}
    joiners: dict[str, list[Sandbox]] = defaultdict(list)
    for sid, root in roots.items():
        if root is not None and root.id != sid:
            joiners[root.id].append(sandboxes[sid])
    records_by_network: dict[str, list[Record]] = defaultdict(list)
    for record in snapshot.records:
        records_by_network[record.network_id].append(record)
    return SnapshotIndex(
        networks,
        sandboxes,
        endpoints_by_network,
        networks_by_sandbox,
        roots,
        joiners,
        records_by_network,
    )


def assemble_view(
    snapshot: Snapshot,
    index: SnapshotIndex,
    table_for: Callable[[frozenset[str]], NameTable],
    host_explicit_ndots: bool,
    *,
    health: Mapping[str, str] = NO_HEALTH,
    fail_open: int = 0,
) -> ZoneView:
    """One zone per sandbox with a listener: the table of its set of networks (under its link
    aliases, if it has any), its flags."""
    from .links import link_tables  # links.py builds on this module

    links = link_tables(index)
    zones: dict[str, SandboxZone] = {}
    for sid, sandbox in index.sandboxes.items():
        root = index.roots[sid]
        network_ids = frozenset(index.networks_by_sandbox.get(root.id, ())) if root else None
        zone = sandbox_zone(
            sid, sandbox, root, network_ids, index.networks, table_for, links, host_explicit_ndots
        )
        if zone is not None:
            zones[sid] = zone
    return ZoneView(
        snapshot.revision,
        MappingProxyType(zones),
        snapshot,
        host_explicit_ndots,
        health,
        fail_open,
    )


def sandbox_zone(
    sid: str,
    sandbox: Sandbox,
    root: Sandbox | None,
    network_ids: frozenset[str] | None,
    networks: Mapping[str, Network],
    table_for: Callable[[frozenset[str]], NameTable],
    links: Mapping[str, NameTable],
    host_explicit_ndots: bool,
) -> SandboxZone | None:
    """The zone of one sandbox (`root`: whose namespace it uses, on `network_ids`), or None
    when no listener of ours serves it."""
    if sandbox.mode in _NO_ZONE_MODES or root is None or root.mode in _NO_ZONE_MODES:
        return None  # no listener of ours; answer() forwards if asked anyway
    if not network_ids:
        return None
    from .links import with_links  # links.py builds on this module

    options = root.dns_options
    return SandboxZone(
        sandbox_id=sid,
        names=with_links(table_for(network_ids), links.get(root.id)),
        network_ids=network_ids,
        internal_only=all(networks[nid].internal for nid in network_ids),
        explicit_ndots=host_explicit_ndots
        if options is None
        else any(_VALID_NDOTS.fullmatch(option) for option in options),
    )


def root_sandbox(sandbox: Sandbox, sandboxes: Mapping[str, Sandbox]) -> Sandbox | None:
    """The sandbox whose namespace `sandbox` uses: itself, or the end of its `joined_to` chain.

    None when the chain is broken (joined to a sandbox that is gone) or loops.
    """
    seen = {sandbox.id}
    while sandbox.mode == "container":
        target = sandboxes.get(sandbox.joined_to or "")
        if target is None or target.id in seen:
            return None
        seen.add(target.id)
        sandbox = target
    return sandbox


def sandbox_names(sandbox: Sandbox, aliases: tuple[str, ...], network_name: str) -> Iterator[str]:
    """Every name of `sandbox` on a network: name, hostname, aliases, 12-hex id, and each + `.net`.

    The network suffix is matched case-insensitively like every other label (RFC 4343); Docker
    20.10 matches it case-sensitively (row L10): a deliberate difference.
    """
    for base in sandbox_bases(sandbox, aliases):
        yield base
        yield f"{base}.{network_name}"


def sandbox_bases(sandbox: Sandbox, aliases: tuple[str, ...]) -> Iterator[str]:
    """The names of `sandbox` without a network: name, hostname, `aliases`, 12-hex id."""
    for name in (sandbox.name, sandbox.hostname, *aliases, sandbox.id[:12]):
        base = name[:-1] if name.endswith(".") else name
        if base:
            yield base


# Lower-cased name -> {type: {rdata}} of one network; all with the network's dns_ttl.
_Raw = dict[bytes, dict[int, set[bytes]]]


def _network_records(
    network: Network,
    endpoints: list[Endpoint],
    sandboxes: Mapping[str, Sandbox],
    joiners: Mapping[str, list[Sandbox]],
    health: Mapping[str, str],
) -> tuple[_Raw, int, int]:
    """The network's records, its TTL, and how many of its names failed open."""
    parts: dict[bytes, list[Part]] = defaultdict(list)
    for endpoint in endpoints:
        owner = sandboxes[endpoint.sandbox_id]
        rank = health_rank(owner, health)
        part = endpoint_records(network, endpoint, owner, tuple(joiners.get(owner.id, ())))
        for key, types in part.items():
            parts[key].append((rank, types))
    raw: _Raw = {}
    failed = 0
    for key, members in parts.items():
        raw[key], failed_open = fit_records(members)
        failed += failed_open
    return raw, network.dns_ttl, failed


def endpoint_records(
    network: Network, endpoint: Endpoint, owner: Sandbox, joiners: tuple[Sandbox, ...]
) -> _Raw:
    """The records one endpoint contributes to its network's table."""
    raw: _Raw = defaultdict(lambda: defaultdict(set))
    # A sandbox in container mode shares the owner's namespace: its names resolve to the
    # owner's addresses on the owner's networks; the reverse names stay the owner's.
    for member in (owner, *joiners):
        aliases = endpoint.aliases if member is owner else ()
        _add_member(raw, network, endpoint, member, aliases)
    owner_target = _try_encode(f"{owner.name}.{network.name}")
    if owner_target is not None:
        for address in (endpoint.ipv4, endpoint.ipv6):
            if address is not None:
                _add(raw, wire.reverse_name(address), wire.TYPE_PTR, owner_target)
    return raw


def _add_member(
    raw: _Raw, network: Network, endpoint: Endpoint, member: Sandbox, aliases: tuple[str, ...]
) -> None:
    target = _try_encode(f"{member.name}.{network.name}")
    for name in sandbox_names(member, aliases, network.name):
        _add(raw, name, wire.TYPE_A, wire.pack_a(endpoint.ipv4))
        if endpoint.ipv6 is not None:
            _add(raw, name, wire.TYPE_AAAA, wire.pack_aaaa(endpoint.ipv6))
        if target is None:
            continue
        for port in member.ports:
            srv = wire.pack_srv_fixed(0, 0, port.container_port) + target
            _add(raw, f"_{port.container_port}._{port.proto}.{name}", wire.TYPE_SRV, srv)


def _try_encode(name: str) -> bytes | None:
    """Wire form of `name`, or None when it cannot be a DNS name.

    Names are validated at the API edge; skipping odd ones here keeps one bad name (say, from
    an old store) from taking every sandbox's DNS down.
    """
    try:
        return wire.encode_name(name)
    except InvalidArgument:
        return None


def _add(raw: _Raw, name: str, rtype: int, rdata: bytes) -> None:
    key = _try_encode(name)
    if key is not None:
        raw[key.lower()][rtype].add(rdata)


def _merge(
    parts: list[tuple[_Raw, int]], statics: list[Statics] | tuple[()] = ()
) -> dict[bytes, dict[int, tuple[set[bytes], int]]]:
    """Union of the networks' records, with their statics laid over; an RRset's TTL is the
    minimum of the networks (and statics) in it.

    Statics have no health: they are answered as they are. Records one network left out for
    health but another network (or a static) answers are answered; the left-out rest takes the
    answered RRset's TTL (`tasks.<name>` answers both as one RRset)."""
    merged: dict[bytes, dict[int, tuple[set[bytes], int]]] = {}
    with_excluded: list[bytes] = []
    for raw, ttl in parts:
        for key, types in raw.items():
            node = merged.setdefault(key, {})
            for rtype, rdatas in types.items():
                if rtype & EXCLUDED:
                    with_excluded.append(key)
                known = node.get(rtype)
                if known is None:
                    node[rtype] = (set(rdatas), ttl)
                else:
                    node[rtype] = (known[0] | rdatas, min(known[1], ttl))
    for static in statics:
        overlay(merged, static)
    for key in with_excluded:
        settle_excluded(merged[key])
    return merged


def settle_excluded(node: dict[int, tuple[set[bytes], int]]) -> None:
    """Drop from each left-out set (`rtype | EXCLUDED`) what the node answers anyway, and give
    the rest the answered RRset's TTL (in place)."""
    for rtype in [t for t in node if t & EXCLUDED]:
        answered = node[rtype & TYPE_MASK]
        rest = node[rtype][0] - answered[0]
        if rest:
            node[rtype] = (rest, answered[1])
        else:
            del node[rtype]


def _pack_table(
    merged: dict[bytes, dict[int, tuple[set[bytes], int]]], interned: dict[bytes, bytes]
) -> NameTable:
    # Interning shares identical keys and records between the tables of overlapping network
    # sets: with many sets, memory then grows with the distinct records, not with the sets.
    table: dict[bytes, dict[int, RecordSet]] = {
        interned.setdefault(key, key): pack_node(types, interned) for key, types in merged.items()
    }
    link_cnames(table, cname_bases(table))
    return MappingProxyType(table)
