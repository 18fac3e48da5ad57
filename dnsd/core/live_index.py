"""A snapshot's index for the zone view, kept up to date change by change.

`view.index_snapshot` walks every object of a snapshot; the daemon's `ViewBuilder` instead
applies each registry change (`delta.SnapshotDelta`) to this index and learns which networks
and sandboxes it touched. It holds every endpoint, also one whose sandbox or network is
missing (as a snapshot may); `endpoints_on` and `networks_of` leave those out, as
`index_snapshot` does.
"""

from __future__ import annotations

from collections import defaultdict

from netcore.model import Endpoint, Network, Record, Sandbox, Snapshot

from .delta import SnapshotDelta


class LiveIndex:
    def __init__(self, snapshot: Snapshot) -> None:
        self.networks: dict[str, Network] = {n.id: n for n in snapshot.networks}
        self.sandboxes: dict[str, Sandbox] = {s.id: s for s in snapshot.sandboxes}
        self._by_network: dict[str, dict[str, Endpoint]] = defaultdict(dict)
        self._by_sandbox: dict[str, dict[str, Endpoint]] = defaultdict(dict)
        for endpoint in snapshot.endpoints:
            self._add(endpoint)
        records: dict[str, list[Record]] = defaultdict(list)
        for record in snapshot.records:
            records[record.network_id].append(record)
        self.records = {nid: tuple(rs) for nid, rs in records.items()}

    def apply(self, delta: SnapshotDelta) -> tuple[set[str], set[str]]:
        """Apply the sandboxes and endpoints that came and went (networks and records must
        be unchanged); the networks whose members may have changed, and the sandboxes whose
        zone may have."""
        networks: set[str] = set()
        sandboxes: set[str] = set()
        for sandbox in delta.sandboxes.went:
            if self.sandboxes.get(sandbox.id) is sandbox:
                del self.sandboxes[sandbox.id]
            sandboxes.add(sandbox.id)
        for endpoint in delta.endpoints.went:
            for index, key in (
                (self._by_network, endpoint.network_id),
                (self._by_sandbox, endpoint.sandbox_id),
            ):
                held = index.get(key)
                if held is not None and held.get(endpoint.id) is endpoint:
                    del held[endpoint.id]
                    if not held:
                        del index[key]
            networks.add(endpoint.network_id)
            sandboxes.add(endpoint.sandbox_id)
        for sandbox in delta.sandboxes.came:
            self.sandboxes[sandbox.id] = sandbox
            sandboxes.add(sandbox.id)
        for endpoint in delta.endpoints.came:
            self._add(endpoint)
            networks.add(endpoint.network_id)
            sandboxes.add(endpoint.sandbox_id)
        for sid in sandboxes:  # a changed sandbox changes its names on each of its networks
            networks.update(self._networks_of_raw(sid))
        return networks, sandboxes

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        """The network's endpoints whose sandbox exists."""
        return [
            ep
            for ep in self._by_network.get(network_id, {}).values()
            if ep.sandbox_id in self.sandboxes
        ]

    def endpoints_of(self, sandbox_id: str) -> list[Endpoint]:
        """Every endpoint of a sandbox (its network known or not), by interface name."""
        return sorted(self._by_sandbox.get(sandbox_id, {}).values(), key=lambda e: e.ifname)

    def members(self, network_id: str) -> set[str]:
        return {ep.sandbox_id for ep in self.endpoints_on(network_id)}

    def networks_of(self, sandbox_id: str) -> frozenset[str]:
        """The known networks a sandbox has an endpoint on."""
        return frozenset(n for n in self._networks_of_raw(sandbox_id) if n in self.networks)

    def _networks_of_raw(self, sandbox_id: str) -> set[str]:
        return {ep.network_id for ep in self._by_sandbox.get(sandbox_id, {}).values()}

    def _add(self, endpoint: Endpoint) -> None:
        self._by_network[endpoint.network_id][endpoint.id] = endpoint
        self._by_sandbox[endpoint.sandbox_id][endpoint.id] = endpoint
