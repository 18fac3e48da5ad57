"""What the host-facing listener answers: every network's names, as the host asks for them.

The host is one more asker of the pure answer core (`dnsd.core.answer`), with a zone of its
own in a one-zone `ZoneView`: `<name>.<network>` (name, hostname, aliases, short id) for every
network, `<name>.<network>.<domain>` with a domain, PTR of sandbox addresses, and a bare
single label when exactly one sandbox carries it across all networks. What the zone does not
hold the core hands back as "forward"; the host listener never forwards: it answers NXDOMAIN
under a network it knows (and for an ambiguous bare label), REFUSED for everything else.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from types import MappingProxyType

from netcore.errors import InvalidArgument
from netcore.model import Snapshot

from ..core import wire
from ..core.view import (
    SandboxZone,
    SnapshotIndex,
    ZoneView,
    _add,
    _merge,
    _pack_table,
    _Raw,
    index_snapshot,
    sandbox_bases,
)
from ..core.wire import Query

HOST_ASKER = "host"  # the host's scope in its view (sandbox ids are 64 hex: no clash)


@dataclass(frozen=True, slots=True)
class HostView:
    """The host's one-zone view of a snapshot, and what decides its refusals."""

    view: ZoneView
    ambiguous: frozenset[bytes]  # bare labels (wire, lower-case) that several sandboxes carry
    zones: frozenset[tuple[bytes, ...]]  # label tuples under which a miss is NXDOMAIN


def build_host_view(snapshot: Snapshot, domain: str | None = None) -> HostView:
    """Index `snapshot` for the host listener; `domain` adds `<name>.<network>.<domain>`."""
    index = index_snapshot(snapshot)
    suffix = f".{domain.rstrip('.').lower()}" if domain else ""
    owners = _bare_owners(index)
    ambiguous = {label for label, sandbox_ids in owners.items() if len(sandbox_ids) > 1}
    parts = [_network_records(index, nid, suffix, ambiguous) for nid in index.endpoints_by_network]
    table = _pack_table(_merge(parts), {})
    zone = SandboxZone(
        sandbox_id=HOST_ASKER,
        names=table,
        network_ids=frozenset(index.endpoints_by_network),
        internal_only=False,  # never read: the host listener never forwards
        explicit_ndots=False,
    )
    zones = {_labels(f"{n.name}{suffix}") for n in snapshot.networks}
    if suffix:
        zones |= {_labels(n.name) for n in snapshot.networks}
    return HostView(
        view=ZoneView(snapshot.revision, MappingProxyType({HOST_ASKER: zone}), snapshot),
        ambiguous=frozenset(key for key in map(_key, ambiguous) if key is not None),
        zones=frozenset(zones),
    )


def refusal(query: Query, host: HostView) -> tuple[bytes, bool]:
    """The reply to a query the host's zone does not answer, and whether it was an ambiguous
    bare label (worth a log line)."""
    if query.qname_lower in host.ambiguous:
        return wire.empty_reply(query, wire.NXDOMAIN), True
    labels = wire_labels(query.qname_lower)
    if any(labels[-len(z) :] == z for z in host.zones if 0 < len(z) <= len(labels)):
        return wire.empty_reply(query, wire.NXDOMAIN), False
    return wire.empty_reply(query, wire.REFUSED), False


def _bare_owners(index: SnapshotIndex) -> dict[str, set[str]]:
    """Single-label names (lower-case) -> the sandboxes whose addresses they would answer."""
    owners: dict[str, set[str]] = defaultdict(set)
    for endpoints in index.endpoints_by_network.values():
        for endpoint in endpoints:
            owner = index.sandboxes[endpoint.sandbox_id]
            for member in (owner, *index.joiners.get(owner.id, ())):
                aliases = endpoint.aliases if member is owner else ()
                for base in sandbox_bases(member, aliases):
                    if "." not in base:
                        owners[base.lower()].add(owner.id)
    return owners


def _network_records(
    index: SnapshotIndex, network_id: str, suffix: str, ambiguous: set[str]
) -> tuple[_Raw, int]:
    network = index.networks[network_id]
    raw: _Raw = defaultdict(lambda: defaultdict(set))
    for endpoint in index.endpoints_by_network[network_id]:
        owner = index.sandboxes[endpoint.sandbox_id]
        records = [(wire.TYPE_A, wire.pack_a(endpoint.ipv4))]
        if endpoint.ipv6 is not None:
            records.append((wire.TYPE_AAAA, wire.pack_aaaa(endpoint.ipv6)))
        for member in (owner, *index.joiners.get(owner.id, ())):
            aliases = endpoint.aliases if member is owner else ()
            for base in sandbox_bases(member, aliases):
                names = [f"{base}.{network.name}{suffix}"]
                if suffix:
                    names.append(f"{base}.{network.name}")
                if "." not in base and base.lower() not in ambiguous:
                    names.append(base)
                for name in names:
                    for rtype, rdata in records:
                        _add(raw, name, rtype, rdata)
        try:
            target = wire.encode_name(f"{owner.name}.{network.name}{suffix}")
        except InvalidArgument:  # an odd name from an old store: no PTR rather than no DNS
            continue
        for address in (endpoint.ipv4, endpoint.ipv6):
            if address is not None:
                _add(raw, wire.reverse_name(address), wire.TYPE_PTR, target)
    return raw, network.dns_ttl


def _key(name: str) -> bytes | None:
    try:
        return wire.encode_name(name).lower()
    except InvalidArgument:
        return None


def _labels(name: str) -> tuple[bytes, ...]:
    return tuple(label.encode().lower() for label in name.split(".") if label)


def wire_labels(qname: bytes) -> tuple[bytes, ...]:
    """The labels of a wire-format name."""
    labels: list[bytes] = []
    offset = 0
    while offset < len(qname) and qname[offset]:
        size = qname[offset]
        labels.append(qname[offset + 1 : offset + 1 + size])
        offset += 1 + size
    return tuple(labels)
