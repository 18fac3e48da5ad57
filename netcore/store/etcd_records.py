"""DNS records of overlay networks: the cluster's, under `global/records/<network>/<record>`.

A record (dnsd/records.py) of a `bridge` network is this host's object, like its sandboxes. A
record of an overlay belongs to the cluster, like the overlay itself: any host adds, lists,
answers and removes it, and it is on no host's lease (it outlives the host that added it).

Adding one is a compare-and-swap in the commit's transaction: its key must be absent, its
network must still exist, and no record of that network may have changed since this host last
saw them (what the checks of dnsd/records.py were made against: the same record twice, a CNAME
beside other data). A failed compare is an `AllocationConflict`: the engine plans again from
the updated registry. This host's own writes come back through the watch; those at or below the
revision it wrote them at are dropped, since the registry already reflects a newer state (an
old echo must not bring back a record removed since).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .base import Delete, Op, Put, RemoteChange
from .etcd_client import absent, delete_op, present, put_op, unchanged_since

if TYPE_CHECKING:
    from .etcd import EtcdStore


class OverlayRecords:
    """The store's bookkeeping of overlay records (one per `EtcdStore`)."""

    def __init__(self, store: EtcdStore) -> None:
        self.store = store
        self.network_of: dict[str, str] = {}  # record id -> its overlay's id, as etcd has it
        # Overlay id -> the revision up to which this host's own transactions prove it knew
        # every record of that overlay (the watch's `seen_revision` may lag behind).
        self._known: dict[str, int] = {}
        self._written: dict[str, int] = {}  # record id -> revision of this host's last write
        self._batch: list[str] = []  # record ids the transaction in flight writes
        self._compared: set[str] = set()  # overlays whose records it compares

    def prefix(self, network_id: str) -> str:
        return f"{self.store.glob}records/{network_id}/"

    def owns(self, op: Op) -> bool:
        """Whether `op` is a record of an overlay (a key of the cluster, not of this host)."""
        if op.kind != "record":
            return False
        if isinstance(op, Put):
            return op.body.get("network_id") in self.store.globals
        return op.id in self.network_of

    # --- writing ---

    def begin(self) -> None:
        self._batch, self._compared = [], set()

    def add_ops(self, op: Op, compare: list, success: list, after: list[Callable[[], None]]):
        """The transaction's part for a record op that `owns` accepted."""
        if isinstance(op, Put):
            network_id = op.body["network_id"]
            key = self.prefix(network_id) + op.id
            if network_id not in self._compared:
                self._compared.add(network_id)
                compare.append(present(f"{self.store.glob}networks/{network_id}"))
                compare.append(unchanged_since(self.prefix(network_id), self.known(network_id)))
            compare.append(absent(key))
            success.append(put_op(key, json.dumps(op.body, sort_keys=True)))
            after.append(lambda: self.network_of.__setitem__(op.id, network_id))
        else:
            success.append(delete_op(self.prefix(self.network_of[op.id]) + op.id))
            after.append(lambda: self.network_of.pop(op.id, None))
        self._batch.append(op.id)

    def committed(self, revision: int) -> None:
        """The transaction in flight succeeded at `revision`."""
        for record_id in self._batch:
            self._written[record_id] = revision
        for network_id in self._compared:  # nobody else changed its records meanwhile
            self._known[network_id] = max(self._known.get(network_id, 0), revision)
        self.begin()

    def known(self, network_id: str) -> int:
        """The revision up to which the registry holds every record of the overlay."""
        return max(self.store.seen_revision, self._known.get(network_id, 0))

    def forget(self, network_id: str) -> None:
        """The overlay was removed (its records' keys went in the same transaction)."""
        self._known.pop(network_id, None)
        for record_id in [r for r, n in self.network_of.items() if n == network_id]:
            del self.network_of[record_id]

    # --- following ---

    def translate(self, tail: str, value: bytes, *, deleted: bool) -> list[Op]:
        """The registry op for the key `records/<tail>` (`<network id>/<record id>`)."""
        network_id, _, record_id = tail.partition("/")
        if not record_id:
            return []
        if deleted:
            self.network_of.pop(record_id, None)
            return [Delete("record", record_id)]
        body: dict[str, Any] = json.loads(value)
        self.network_of[record_id] = network_id
        return [Put("record", record_id, body)]

    def drop_echoes(self, changes: Sequence[RemoteChange]) -> list[RemoteChange]:
        """`changes` (from the watch) without those this host's own writes supersede."""
        kept = []
        for op, revision in changes:
            written = self._written.get(op.id, 0) if op.kind == "record" else 0
            if revision > written:
                kept.append((op, revision))
            elif revision == written:  # the echo of the last write: nothing older follows
                del self._written[op.id]
        return kept
