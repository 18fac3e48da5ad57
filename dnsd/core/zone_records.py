"""Names of a network that are not sandboxes: its records, and host.docker.internal.

Pure, and run when the view is built, never per query. A network's *statics* are its records
(`POST /networks/{ref}/records`) and the host names (its gateway), by lower-cased wire name;
the view lays them over the sandboxes' names. Packing a node applies the one rule the union of
several sources can break, a CNAME beside other data (RFC 1034 3.6.2): the other data wins.
Then every CNAME is linked to its target (RFC 1034 4.3.2): a query of any type gets the CNAME
chain and, when the target is a name of the same zone, the target's records of that type.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netcore.errors import InvalidArgument
from netcore.model import Network, Record
from netcore.requests import host_names_enabled

from . import wire
from .rdata import TYPE_CNAME, parse_rdata

log = logging.getLogger(__name__)

HOST_NAMES = ("host.docker.internal", "host.containers.internal")
MAX_CHAIN = 8  # CNAMEs followed in one answer; a loop or a longer chain stops there
_MAX_TTL = 2**31 - 1

# Lower-cased wire name -> {type: (rdatas, TTL)}: one network's records, or a merge of several.
Statics = dict[bytes, dict[int, tuple[frozenset[bytes], int]]]
Merged = dict[bytes, dict[int, tuple[set[bytes], int]]]
RecordSet = tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """The answer to a name with a CNAME: `head` (the CNAME chain, in order) then `records`
    (the final target's records of the asked type, owned by the target's name; shuffled)."""

    head: RecordSet
    records: RecordSet


class CnameNode(dict):
    """The node of a name with a CNAME: the CNAME for type CNAME, a `Chain` for every other
    type (a type the target has not gets the chain alone)."""

    __slots__ = ("any",)

    def __init__(self, entries: Mapping[int, RecordSet | Chain], any_type: Chain) -> None:
        super().__init__(entries)
        self.any = any_type

    def get(self, qtype: int, default: object = None) -> RecordSet | Chain:  # type: ignore[override]
        found = dict.get(self, qtype)
        return self.any if found is None else found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CnameNode) and dict.__eq__(self, other) and self.any == other.any

    __hash__ = None  # type: ignore[assignment]


def _host_names(network: Network) -> bool:
    """The network's option `dnsd.host_names` (checked at create; a bad stored one is on)."""
    try:
        return host_names_enabled(network.options)
    except InvalidArgument:
        return True


def record_names(record_name: str, network_name: str) -> tuple[str, str]:
    """The names a record answers to: its own, and `<name>.<network>` (as sandbox names)."""
    base = record_name.rstrip(".")
    return base, f"{base}.{network_name}"


def network_statics(network: Network, records: Iterable[Record]) -> Statics:
    """The records of `network` and its host names, ready to lay over its sandboxes' names."""
    out: dict[bytes, dict[int, tuple[set[bytes], int]]] = {}
    taken: set[bytes] = set()
    for record in records:
        try:
            rdata = parse_rdata(record.type, record.value)
        except InvalidArgument as exc:  # from an older or hand-edited store: skip, keep DNS up
            log.warning(
                "record %s %s on %s skipped: %s", record.name, record.type, network.name, exc
            )
            continue
        ttl = network.dns_ttl if record.ttl is None else record.ttl
        for name in record_names(record.name, network.name):
            key = _key(name)
            if key is not None:
                taken.add(key)
                _add(out, key, rdata.rtype, rdata.wire, ttl)
        if rdata.rtype in (wire.TYPE_A, wire.TYPE_AAAA):
            _add_reverse(out, network, record, ttl)
    if _host_names(network):
        gateways = [(wire.TYPE_A, network.ipv4.gateway.packed)]
        if network.ipv6 is not None:
            gateways.append((wire.TYPE_AAAA, network.ipv6.gateway.packed))
        for name in HOST_NAMES:
            key = _key(name)
            if key is not None and key not in taken:  # a record of that name replaces it
                for rtype, rdata_wire in gateways:
                    _add(out, key, rtype, rdata_wire, network.dns_ttl)
    return {
        key: {rtype: (frozenset(rdatas), ttl) for rtype, (rdatas, ttl) in types.items()}
        for key, types in out.items()
    }


def _add_reverse(out: Merged, network: Network, record: Record, ttl: int) -> None:
    """PTR `<name>.<network>` for an address of the network's own subnets: a VIP in the lab.
    Addresses outside (a database elsewhere) keep their real reverse names upstream."""
    address = ipaddress.ip_address(record.value)
    subnets = [network.ipv4.subnet] + ([network.ipv6.subnet] if network.ipv6 else [])
    target = _encode(record_names(record.name, network.name)[1])
    key = _key(wire.reverse_name(address))
    if target is not None and key is not None and any(address in net for net in subnets):
        _add(out, key, wire.TYPE_PTR, target, ttl)


def _encode(name: str) -> bytes | None:
    try:
        return wire.encode_name(name)
    except InvalidArgument:
        return None


def _key(name: str) -> bytes | None:
    encoded = _encode(name)
    return None if encoded is None else encoded.lower()


def _add(out: Merged, key: bytes, rtype: int, rdata: bytes, ttl: int) -> None:
    known = out.setdefault(key, {}).get(rtype)
    if known is None:
        out[key][rtype] = ({rdata}, ttl)
    else:
        known[0].add(rdata)
        out[key][rtype] = (known[0], min(known[1], ttl))


def overlay(merged: Merged, statics: Statics) -> None:
    """Add `statics` to `merged` (in place): sets united, an RRset's TTL the smallest."""
    for key, types in statics.items():
        node = merged.setdefault(key, {})
        for rtype, (rdatas, ttl) in types.items():
            known = node.get(rtype)
            node[rtype] = (
                (set(rdatas), ttl) if known is None else (known[0] | rdatas, min(known[1], ttl))
            )


def pack_node(
    types: Mapping[int, tuple[set[bytes] | frozenset[bytes], int]],
    interned: dict[bytes, bytes] | None = None,
) -> dict[int, RecordSet]:
    """The answer records of one name, by type, in canonical (sorted) order.

    A CNAME beside other data loses (a sandbox or another network's record was there first or
    too); of several CNAMEs (two networks) the smallest target stays.
    """
    if TYPE_CNAME in types and len(types) > 1:
        types = {rtype: entry for rtype, entry in types.items() if rtype != TYPE_CNAME}
    node: dict[int, RecordSet] = {}
    for rtype, (rdatas, ttl) in types.items():
        ttl = max(0, min(ttl, _MAX_TTL))
        chosen = sorted(rdatas)[:1] if rtype == TYPE_CNAME else sorted(rdatas)
        packed = (wire.pack_rr(rtype, ttl, rdata) for rdata in chosen)
        node[rtype] = tuple(
            packed if interned is None else (interned.setdefault(r, r) for r in packed)
        )
    return node


def cname_bases(table: Mapping[bytes, dict[int, RecordSet]]) -> dict[bytes, dict[int, RecordSet]]:
    """The nodes of `table` that are CNAMEs (before linking)."""
    return {key: node for key, node in table.items() if TYPE_CNAME in node}


def link_cnames(table: dict[bytes, dict], bases: Mapping[bytes, dict[int, RecordSet]]) -> None:
    """Replace each CNAME node of `table` (given unlinked in `bases`) by its `CnameNode`."""
    for key, base in bases.items():
        record = base[TYPE_CNAME][0]
        head = [record]
        seen = {key}
        target = _rdata(record)
        node = None
        while len(head) <= MAX_CHAIN:
            lower = target.lower()
            if lower in seen:
                node = None  # a loop: the chain so far, nothing more
                break
            seen.add(lower)
            node = bases.get(lower)
            if node is None:
                node = table.get(lower)  # the final target, when it is a name of this zone
                break
            step = node[TYPE_CNAME][0]
            head.append(target + step[2:])  # owned by the previous target, uncompressed
            target = _rdata(step)
            node = None
        chain = tuple(head)
        entries: dict[int, RecordSet | Chain] = {TYPE_CNAME: (record,)}
        if node is not None:
            for rtype, records in node.items():
                entries[rtype] = Chain(chain, tuple(target + rr[2:] for rr in records))
        table[key] = CnameNode(entries, Chain(chain, ()))


def _rdata(record: bytes) -> bytes:
    """The rdata of a packed answer record (owner pointer, type, class, TTL, length, rdata)."""
    return record[12:]
