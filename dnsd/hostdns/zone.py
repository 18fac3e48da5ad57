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
    """Index `snapshot` for the host listener; `domain` adds `<name>.<network>.<domain>`."""
    return HostViewBuilder(domain).build(snapshot)


class HostViewBuilder:
    """Successive host views: each endpoint's records are encoded once and kept while the
    endpoint, its sandbox and its network stay the same (not thread-safe)."""

    def __init__(self, domain: str | None = None) -> None:
        self.suffix = f".{domain.rstrip('.').lower()}" if domain else ""
        self._made: dict[str, tuple[object, _Raw, _Raw]] = {}  # endpoint id -> key, records

    def build(self, snapshot: Snapshot) -> HostView:
        index = index_snapshot(snapshot)
        made: dict[str, tuple[object, _Raw, _Raw]] = {}
        parts: list[tuple[_Raw, int]] = []
        bare_parts: list[tuple[_Raw, int]] = []
        owners: dict[bytes, set[str]] = defaultdict(set)  # bare label -> sandboxes
        for network_id, endpoints in index.endpoints_by_network.items():
            network = index.networks[network_id]
            for endpoint in endpoints:
                owner = index.sandboxes[endpoint.sandbox_id]
                members = tuple(index.joiners.get(owner.id, ()))
                key = (network, endpoint, owner, members)
                entry = self._made.get(endpoint.id)
                if entry is None or entry[0] != key:
                    entry = (
                        key,
                        *_endpoint_records(network, endpoint, owner, members, self.suffix),
                    )
                made[endpoint.id] = entry
                parts.append((entry[1], network.dns_ttl))
                bare_parts.append((entry[2], network.dns_ttl))
                for label in entry[2]:
                    owners[label].add(owner.id)
        self._made = made
        ambiguous = frozenset(label for label, ids in owners.items() if len(ids) > 1)
        for bare, ttl in bare_parts:
            parts.append(({k: v for k, v in bare.items() if k not in ambiguous}, ttl))
        zone = SandboxZone(
            sandbox_id=HOST_ASKER,
            names=_pack_table(_merge(parts), {}),
            network_ids=frozenset(index.endpoints_by_network),
            internal_only=False,  # never read: the host listener never forwards
            explicit_ndots=False,
        )
        zones = {_labels(f"{n.name}{self.suffix}") for n in snapshot.networks}
        if self.suffix:
            zones |= {_labels(n.name) for n in snapshot.networks}
        return HostView(
            view=ZoneView(snapshot.revision, MappingProxyType({HOST_ASKER: zone}), snapshot),
            ambiguous=ambiguous,
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


def _endpoint_records(
    network: Network, endpoint: Endpoint, owner: Sandbox, members: tuple[Sandbox, ...], suffix: str
) -> tuple[_Raw, _Raw]:
    """What one endpoint gives the host: `<name>.<network>[<suffix>]` and PTR records, and
    the records of its bare single labels (kept only where no other sandbox has the label)."""
    raw: _Raw = defaultdict(lambda: defaultdict(set))
    bare: _Raw = defaultdict(lambda: defaultdict(set))
    records = [(wire.TYPE_A, wire.pack_a(endpoint.ipv4))]
    if endpoint.ipv6 is not None:
        records.append((wire.TYPE_AAAA, wire.pack_aaaa(endpoint.ipv6)))
    for member in (owner, *members):
        aliases = endpoint.aliases if member is owner else ()
        for base in sandbox_bases(member, aliases):
            names = [f"{base}.{network.name}{suffix}"]
            if suffix:
                names.append(f"{base}.{network.name}")
            for rtype, rdata in records:
                for name in names:
                    _add(raw, name, rtype, rdata)
                if "." not in base:
                    _add(bare, base, rtype, rdata)
    try:
        target = wire.encode_name(f"{owner.name}.{network.name}{suffix}")
    except InvalidArgument:  # an odd name from an old store: no PTR rather than no DNS
        return raw, bare
    for address in (endpoint.ipv4, endpoint.ipv6):
        if address is not None:
            _add(raw, wire.reverse_name(address), wire.TYPE_PTR, target)
    return raw, bare


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
