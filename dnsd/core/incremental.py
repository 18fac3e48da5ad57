"""Successive zone views, re-packing only what a registry change touched.

`build_view` packs every name of every network: 0.2 s for 1,000 sandboxes, paid on each
connect. The daemon keeps one `ViewBuilder` instead: each network remembers what every endpoint
contributed, and a change re-packs only the names of the endpoints that came, went or changed.
Tables are copied on write, so a view already handed out never changes under a query. The
result equals `build_view` of the same snapshot (tests compare them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from types import MappingProxyType

from netcore.model import Endpoint, Network, Record, Sandbox, Snapshot

from .fitness import HEALTHY, fit_records, health_rank
from .rdata import TYPE_CNAME
from .view import (
    _MAX_TTL,
    NO_HEALTH,
    NameTable,
    ZoneView,
    _merge,
    _pack_table,
    _Raw,
    assemble_view,
    endpoint_records,
    index_snapshot,
    settle_excluded,
)
from .zone_records import Statics, link_cnames, network_statics, overlay, pack_node

# What one endpoint adds to its network's names: the sandboxes' naming scheme by default
# (`endpoint_records`); the host listener's is another (`dnsd.hostdns.zone.host_records`).
Contribute = Callable[[Network, Endpoint, Sandbox, tuple[Sandbox, ...]], _Raw]
# What an endpoint's records depend on; the health rank too: a health change re-packs its names.
_Key = tuple[Endpoint, Sandbox, tuple[Sandbox, ...], int]


class NetworkRecords:
    """One network's raw records, kept up to date endpoint by endpoint."""

    def __init__(self, network: Network, contribute: Contribute = endpoint_records) -> None:
        self.network = network
        self.contribute = contribute
        # endpoint id -> (key, records, health rank)
        self.contributions: dict[str, tuple[_Key, _Raw, int]] = {}
        self.owners: dict[bytes, set[str]] = defaultdict(set)  # name -> endpoint ids
        self.raw: _Raw = {}  # health applied (core.fitness)
        self.fail_open: set[bytes] = set()  # names answered with every member: none fit

    def update_endpoints(
        self,
        endpoints: list[Endpoint],
        sandboxes: dict[str, Sandbox],
        joiners: dict[str, list[Sandbox]],
        health: Mapping[str, str] | None = NO_HEALTH,
    ) -> set[bytes]:
        """Take the network's endpoints now; the names whose records may have changed.
        `health`: sandbox id -> status, or None to answer every member as it is."""
        fresh: dict[str, tuple[_Key, _Raw, int]] = {}
        gone: list[tuple[str, _Raw]] = []  # contributions to unindex
        came: list[tuple[str, _Raw]] = []  # contributions to index
        for endpoint in endpoints:
            owner = sandboxes[endpoint.sandbox_id]
            members = tuple(joiners.get(owner.id, ()))
            rank = HEALTHY if health is None else health_rank(owner, health)
            key = (endpoint, owner, members, rank)
            old = self.contributions.get(endpoint.id)
            if old is not None and old[0] == key:
                fresh[endpoint.id] = old
                continue
            records = self.contribute(self.network, endpoint, owner, members)
            fresh[endpoint.id] = (key, records, rank)
            came.append((endpoint.id, records))
            if old is not None:
                gone.append((endpoint.id, old[1]))
        gone += [(eid, old[1]) for eid, old in self.contributions.items() if eid not in fresh]
        self.contributions = fresh
        touched: set[bytes] = set()
        for endpoint_id, records in gone:
            touched.update(records)
            for name in records:
                self.owners[name].discard(endpoint_id)
        for endpoint_id, records in came:
            touched.update(records)
            for name in records:
                self.owners[name].add(endpoint_id)
        for name in touched:
            parts = [(fresh[eid][2], fresh[eid][1][name]) for eid in self.owners.get(name, ())]
            merged, failed_open = fit_records(parts)
            if failed_open:
                self.fail_open.add(name)
            else:
                self.fail_open.discard(name)
            if merged:
                self.raw[name] = merged
            else:
                self.raw.pop(name, None)
                self.owners.pop(name, None)
        return touched

    def sandbox_of(self, endpoint_id: str) -> str:
        """The id of the sandbox an indexed endpoint belongs to."""
        return self.contributions[endpoint_id][0][0].sandbox_id


class _NetworkTable(NetworkRecords):
    """One network's packed table for the sandboxes: its raw records and its statics."""

    def __init__(self, network: Network) -> None:
        super().__init__(network)
        self.ttl = max(0, min(network.dns_ttl, _MAX_TTL))
        self.names: dict[bytes, dict] = {}  # never changed once handed out: copied on write
        self.table: NameTable = MappingProxyType(self.names)
        self.version = 0
        self.records: tuple[Record, ...] | None = None  # None: statics not built yet
        self.statics: Statics = {}  # records and host names, laid over `raw`
        self.cnames: dict[bytes, dict] = {}  # names with a CNAME, unlinked

    def set_records(self, records: tuple[Record, ...]) -> set[bytes]:
        """Take the network's records; the names whose statics changed."""
        if records == self.records:
            return set()
        statics = network_statics(self.network, records)
        changed = {
            key
            for key in self.statics.keys() | statics.keys()
            if self.statics.get(key) != statics.get(key)
        }
        self.records, self.statics = records, statics
        return changed

    def update(
        self,
        endpoints: list[Endpoint],
        sandboxes: dict[str, Sandbox],
        joiners: dict[str, list[Sandbox]],
        records: tuple[Record, ...] = (),
        health: Mapping[str, str] = NO_HEALTH,
    ) -> None:
        touched = self.set_records(records) | self.update_endpoints(
            endpoints, sandboxes, joiners, health
        )
        if not touched:
            return  # nothing changed: the same table object, the same version
        table = self.names.copy()  # copy on write: earlier views keep theirs
        for name in touched:
            node = self._pack(name, self.raw.get(name, {}))
            if node:
                table[name] = node
            else:
                table.pop(name, None)
            if TYPE_CNAME in node:
                self.cnames[name] = node
            else:
                self.cnames.pop(name, None)
        if self.cnames:  # a target's records may have changed: link every CNAME again
            link_cnames(table, self.cnames)
        self.names, self.table = table, MappingProxyType(table)
        self.version += 1

    def _pack(self, name: bytes, sandbox_records: dict[int, set[bytes]]) -> dict:
        """The packed node of `name`: its sandboxes' records (health applied, core.fitness)
        with the network's statics laid over, which have no health."""
        types = {rtype: (rdatas, self.ttl) for rtype, rdatas in sandbox_records.items()}
        static = self.statics.get(name)
        if static:
            merged = {name: types}
            overlay(merged, {name: static})
            types = merged[name]
            settle_excluded(types)
        return pack_node(types) if types else {}


class ViewBuilder:
    """Builds the view of each new snapshot from the previous one's work (not thread-safe)."""

    def __init__(self) -> None:
        self._networks: dict[str, _NetworkTable] = {}
        self._merged: dict[frozenset[str], tuple[tuple[tuple[int, int], ...], NameTable]] = {}

    def build(
        self,
        snapshot: Snapshot,
        *,
        host_explicit_ndots: bool = False,
        health: Mapping[str, str] = NO_HEALTH,
    ) -> ZoneView:
        index = index_snapshot(snapshot)
        tables: dict[str, _NetworkTable] = {}
        for nid, endpoints in index.endpoints_by_network.items():
            state = self._networks.get(nid)
            if state is None or state.network != index.networks[nid]:
                state = _NetworkTable(index.networks[nid])  # renamed, new TTL...: from scratch
            records = tuple(index.records_by_network.get(nid, ()))
            state.update(endpoints, index.sandboxes, index.joiners, records, health)
            tables[nid] = state
        self._networks = tables
        merged: dict[frozenset[str], tuple[tuple[tuple[int, int], ...], NameTable]] = {}

        def table_for(network_ids: frozenset[str]) -> NameTable:
            members = sorted(network_ids)
            if len(members) == 1:
                return tables[members[0]].table
            versions = tuple((id(tables[n]), tables[n].version) for n in members)
            cached = merged.get(network_ids) or self._merged.get(network_ids)
            if cached is None or cached[0] != versions:
                parts = [(tables[n].raw, tables[n].network.dns_ttl) for n in members]
                records = _merge(parts, [tables[n].statics for n in members])
                cached = (versions, _pack_table(records, {}))
            merged[network_ids] = cached
            return cached[1]

        fail_open = sum(len(table.fail_open) for table in tables.values())
        view = assemble_view(
            snapshot, index, table_for, host_explicit_ndots, health=health, fail_open=fail_open
        )
        self._merged = merged
        return view
