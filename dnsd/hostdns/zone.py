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
from netcore.model import Endpoint, Network, Sandbox, Snapshot

from ..core import wire
from ..core.view import (
    NameTable,
    SandboxZone,
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
    """Index `snapshot` for the host listener, from scratch (the daemon keeps the incremental
    `dnsd.hostdns.incremental.HostViewBuilder`, which gives the same view); `domain` adds
    `<name>.<network>.<domain>`."""
    suffix = host_suffix(domain)
    index = index_snapshot(snapshot)
    parts: list[tuple[_Raw, int]] = []
    owners: dict[bytes, set[str]] = defaultdict(set)  # bare label -> sandboxes
    for network_id, endpoints in index.endpoints_by_network.items():
        network = index.networks[network_id]
        raw: _Raw = defaultdict(lambda: defaultdict(set))
        for endpoint in endpoints:
            owner = index.sandboxes[endpoint.sandbox_id]
            members = tuple(index.joiners.get(owner.id, ()))
            for name, types in host_records(network, endpoint, owner, members, suffix).items():
                if is_bare(name):
                    owners[name].add(owner.id)
                for rtype, rdatas in types.items():
                    raw[name][rtype] |= rdatas
        parts.append((raw, network.dns_ttl))
    ambiguous = frozenset(label for label, ids in owners.items() if len(ids) > 1)
    merged = _merge(parts)
    for label in ambiguous:
        del merged[label]
    network_ids = frozenset(index.endpoints_by_network)
    return host_view(snapshot, _pack_table(merged, {}), network_ids, ambiguous, suffix)


def host_view(
    snapshot: Snapshot,
    names: NameTable,
    network_ids: frozenset[str],
    ambiguous: frozenset[bytes],
    suffix: str,
) -> HostView:
    """The host's view of `snapshot`, given its table and the networks with endpoints."""
    zone = SandboxZone(
        sandbox_id=HOST_ASKER,
        names=names,
        network_ids=network_ids,
        internal_only=False,  # never read: the host listener never forwards
        explicit_ndots=False,
    )
    zones = {_labels(f"{n.name}{suffix}") for n in snapshot.networks}
    if suffix:
        zones |= {_labels(n.name) for n in snapshot.networks}
    return HostView(
        view=ZoneView(snapshot.revision, MappingProxyType({HOST_ASKER: zone}), snapshot),
        ambiguous=ambiguous,
        zones=frozenset(zones),
    )


def host_suffix(domain: str | None) -> str:
    """What `--host-dns-domain` appends to `<name>.<network>`."""
    return f".{domain.rstrip('.').lower()}" if domain else ""


def is_bare(name: bytes) -> bool:
    """Whether a wire name is one label: the host's bare names (every other host name has a
    network label, or is a reverse name)."""
    return len(name) == name[0] + 2


def refusal(query: Query, host: HostView) -> tuple[bytes, bool]:
    """The reply to a query the host's zone does not answer, and whether it was an ambiguous
    bare label (worth a log line)."""
    if query.qname_lower in host.ambiguous:
        return wire.empty_reply(query, wire.NXDOMAIN), True
    labels = wire_labels(query.qname_lower)
    if any(labels[-len(z) :] == z for z in host.zones if 0 < len(z) <= len(labels)):
        return wire.empty_reply(query, wire.NXDOMAIN), False
    return wire.empty_reply(query, wire.REFUSED), False


def host_records(
    network: Network, endpoint: Endpoint, owner: Sandbox, members: tuple[Sandbox, ...], suffix: str
) -> _Raw:
    """What one endpoint gives the host: `<name>.<network>[<suffix>]`, PTR records, and its
    bare single labels (`is_bare`: kept only where no other sandbox has the label)."""
    raw: _Raw = defaultdict(lambda: defaultdict(set))
    records = [(wire.TYPE_A, wire.pack_a(endpoint.ipv4))]
    if endpoint.ipv6 is not None:
        records.append((wire.TYPE_AAAA, wire.pack_aaaa(endpoint.ipv6)))
    for member in (owner, *members):
        aliases = endpoint.aliases if member is owner else ()
        for base in sandbox_bases(member, aliases):
            names = [f"{base}.{network.name}{suffix}"]
            if suffix:
                names.append(f"{base}.{network.name}")
            if "." not in base:
                names.append(base)
            for rtype, rdata in records:
                for name in names:
                    _add(raw, name, rtype, rdata)
    try:
        target = wire.encode_name(f"{owner.name}.{network.name}{suffix}")
    except InvalidArgument:  # an odd name from an old store: no PTR rather than no DNS
        return raw
    for address in (endpoint.ipv4, endpoint.ipv6):
        if address is not None:
            _add(raw, wire.reverse_name(address), wire.TYPE_PTR, target)
    return raw


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
