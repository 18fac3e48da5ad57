"""Docker's legacy links in the zone view: a link alias answers only for the linking sandbox.

Docker's resolver checks a container's link aliases before any other name, so an alias hides
a name of the network that is spelt the same. Each linking sandbox gets a small table of its
aliases, laid over the shared table of its networks; sandboxes without links share tables as
before.
"""

from __future__ import annotations

from collections import ChainMap
from types import MappingProxyType

from netcore.errors import InvalidArgument
from netcore.model import Endpoint

from . import wire
from .view import _MAX_TTL, NameTable, SnapshotIndex

_Records = dict[bytes, dict[int, set[bytes]]]


def link_tables(index: SnapshotIndex) -> dict[str, NameTable]:
    """Linking sandbox id -> the records of its link aliases. A target no longer on the
    network, or an alias that cannot be a DNS name, is left out."""
    endpoints = [ep for eps in index.endpoints_by_network.values() for ep in eps]
    linking = [ep for ep in endpoints if ep.links]
    if not linking:
        return {}
    on_network = {(ep.network_id, ep.sandbox_id): ep for ep in endpoints}
    per_sandbox: dict[str, _Records] = {}
    for ep in linking:
        ttl = max(0, min(index.networks[ep.network_id].dns_ttl, _MAX_TTL))
        records = per_sandbox.setdefault(ep.sandbox_id, {})
        for target_id, alias in ep.links:
            target = index.sandboxes.get(target_id)
            if target is None:
                continue
            owner = target.joined_to if target.mode == "container" else target.id
            found = on_network.get((ep.network_id, owner or ""))
            if found is not None:
                _add_target(records, alias, found, ttl)
    return {
        sid: MappingProxyType(
            {
                name: {rtype: tuple(sorted(rrs)) for rtype, rrs in types.items()}
                for name, types in records.items()
            }
        )
        for sid, records in per_sandbox.items()
        if records
    }


def _add_target(records: _Records, alias: str, target: Endpoint, ttl: int) -> None:
    try:
        key = wire.encode_name(alias).lower()
    except InvalidArgument:
        return
    node = records.setdefault(key, {})
    node.setdefault(wire.TYPE_A, set()).add(
        wire.pack_rr(wire.TYPE_A, ttl, wire.pack_a(target.ipv4))
    )
    if target.ipv6 is not None:
        node.setdefault(wire.TYPE_AAAA, set()).add(
            wire.pack_rr(wire.TYPE_AAAA, ttl, wire.pack_aaaa(target.ipv6))
        )


def with_links(table: NameTable, links: NameTable | None) -> NameTable:
    """`table` with `links` looked up first (the table itself when there are none)."""
    if not links:
        return table
    return ChainMap(links, table)  # type: ignore[arg-type]
