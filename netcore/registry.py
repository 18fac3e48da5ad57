"""The endpoint registry: networks, sandboxes and endpoints, persisted before they are reported.

One instance per daemon. Every change goes through `commit`, which writes the store first (so a
change reported done survives a crash) and then the in-memory maps, and bumps the revision.
Readers take an immutable `Snapshot`; the DNS side never writes here.

With a shared store (etcd), the registry also holds what other hosts published: overlay
networks (in `networks`) and their DNS records (in `records`), their endpoints with their
sandboxes' names (`remote_endpoints`) and the addresses they claimed (`remote_claims`). Those
arrive through `apply_remote`, never through `commit`, and only snapshots show remote
endpoints: the engine manages this host's objects.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import NetworkNotFound, NotFound, SandboxNotFound
from .intents import Intent
from .intents import decode as intent_from_dict
from .lineage import ChangeLog, Lineage, SortedBucket
from .model import (
    Endpoint,
    Network,
    Record,
    Sandbox,
    Snapshot,
    endpoint_from_dict,
    network_from_dict,
    record_from_dict,
    remote_endpoint_from_dict,
    sandbox_from_dict,
    to_dict,
)
from .store.base import Delete, Op, Put, Store

log = logging.getLogger(__name__)


Model = Network | Sandbox | Endpoint | Record
_KIND_OF: dict[type, str] = {
    Network: "network",
    Sandbox: "sandbox",
    Endpoint: "endpoint",
    Record: "record",
}


def put(obj: Model) -> Put:
    """The store operation that records a model object."""
    return Put(_KIND_OF[type(obj)], obj.id, to_dict(obj))


def delete(obj: Model) -> Delete:
    return Delete(_KIND_OF[type(obj)], obj.id)


Listener = Callable[[Snapshot], None]

# Store kind -> (the registry's map of it, how its stored body becomes an object).
_DECODERS: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "network": ("networks", network_from_dict),
    "sandbox": ("sandboxes", sandbox_from_dict),
    "endpoint": ("endpoints", endpoint_from_dict),
    "record": ("records", record_from_dict),
    "intent": ("intents", intent_from_dict),
    "meta": ("meta", dict),
    "remote_endpoint": ("remote_endpoints", remote_endpoint_from_dict),
    "remote_claim": ("remote_claims", dict),
    # Loaded, never stored: an endpoint the store dropped at start (its address was taken
    # meanwhile), kept until reconcile has removed what is left of it in the kernel.
    "dropped_endpoint": ("dropped_endpoints", endpoint_from_dict),
}
_REMOTE_KINDS = ("remote_endpoint", "remote_claim")

# Snapshot order of each kind a snapshot holds (ties, never expected, go by id).
_ORDER: dict[str, Callable[[Any], Any]] = {
    "network": lambda n: n.name,
    "sandbox": lambda s: s.name,
    "endpoint": lambda e: (e.sandbox_id, e.ifname),
    "record": lambda r: r.network_id,
}


class Registry:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.RLock()
        self.networks: dict[str, Network] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.records: dict[str, Record] = {}  # DNS records that are not sandboxes
        self.intents: dict[str, Intent] = {}  # changes in flight (see intents.py)
        self.meta: dict[str, dict[str, Any]] = {}
        self.remote_endpoints: dict[str, tuple[Endpoint, Sandbox]] = {}
        self.remote_claims: dict[str, dict[str, Any]] = {}  # "<network id>/<ip>" -> {}
        self.dropped_endpoints: dict[str, Endpoint] = {}
        self._remote_revisions: dict[tuple[str, str], int] = {}
        self._revision = 0
        self._snapshot: Snapshot | None = None
        self._listeners: list[Listener] = []
        self._ordered: dict[str, SortedBucket[Any]] = {}
        # Lookups the engine makes on every change, without a walk over every object.
        self._by_sandbox: dict[str, dict[str, Endpoint]] = {}
        self._by_network: dict[str, dict[str, Endpoint]] = {}
        self._sandbox_names: dict[str, Sandbox] = {}
        self._load()
        self._ordered = {
            kind: SortedBucket(key, getattr(self, _DECODERS[kind][0]).values())
            for kind, key in _ORDER.items()
        }
        # Since the last notified snapshot (see Lineage); not kept while other hosts'
        # endpoints are in the snapshots.
        self._changes = {"sandbox": ChangeLog(), "endpoint": ChangeLog()}
        self._notified: weakref.ref[Snapshot] | None = None
        self._lineage_ok = False

    def _load(self) -> None:
        for kind, objects in self._store.load().items():
            if kind in _DECODERS:  # a kind of a newer version is left alone
                for oid, body in objects.items():
                    self._apply(Put(kind, oid, body))
        self._revision = int(self.meta.get("revision", {}).get("value", 0))

    # --- writing ---

    def commit(self, ops: Sequence[Op], *, notify: bool = True) -> None:
        """Persist a batch atomically, then make it visible; listeners see the new snapshot."""
        with self._lock:
            revision = self._revision + 1
            batch = [*ops, Put("meta", "revision", {"value": revision})]
            self._store.commit(batch)  # raises StoreError, leaving memory unchanged
            for op in batch:
                self._apply(op)
            self._revision = revision
            self._snapshot = None
            if not notify:
                return
            snapshot = self._notified_snapshot()
        self._notify(snapshot)

    def _notified_snapshot(self) -> Snapshot:
        """The snapshot subscribers are about to get: the base of the next one's lineage."""
        snapshot = self.snapshot()
        self._notified = weakref.ref(snapshot)
        for log in self._changes.values():
            log.clear()
        self._lineage_ok = not self.remote_endpoints
        return snapshot

    def _notify(self, snapshot: Snapshot) -> None:
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:  # the change is committed: report it done, log the rest
                log.exception("registry listener failed at revision %d", snapshot.revision)

    def apply_remote(
        self, changes: Sequence[tuple[Op, int]], complete_at: int | None = None
    ) -> None:
        """Changes other hosts made, each with the etcd revision it reflects.

        A change older than (or as old as) what is held for its object is ignored, so a change
        delivered twice or out of order changes nothing. With `complete_at`, `changes` is the
        whole remote picture at that revision: remote objects missing from it are deleted.
        """
        with self._lock:
            changed = False
            present = set()
            for op, revision in changes:
                key = (op.kind, op.id)
                present.add(key)
                if revision <= self._remote_revisions.get(key, 0):
                    continue
                self._remote_revisions[key] = revision
                self._apply(op)
                changed = True
            if complete_at is not None:
                held = [("remote_endpoint", i) for i in self.remote_endpoints]
                held += [("remote_claim", i) for i in self.remote_claims]
                held += [("network", n.id) for n in self.networks.values() if n.vni is not None]
                held += [("record", r.id) for r in self.records.values() if self._global(r)]
                for key in held:
                    if key not in present and self._remote_revisions.get(key, 0) < complete_at:
                        self._remote_revisions[key] = complete_at
                        self._apply(Delete(*key))
                        changed = True
            if not changed:
                return
            self._revision += 1
            self._snapshot = None
            snapshot = self._notified_snapshot()
        self._notify(snapshot)

    def _global(self, record: Record) -> bool:
        """A record of an overlay (or of a network gone meanwhile): the cluster's."""
        network = self.networks.get(record.network_id)
        return network is None or network.vni is not None

    def _apply(self, op: Op) -> None:
        attribute, decode = _DECODERS[op.kind]
        bucket = getattr(self, attribute)
        old = bucket.get(op.id)
        if isinstance(op, Put):
            new = bucket[op.id] = decode(op.body)
        else:
            new = None
            bucket.pop(op.id, None)
        if op.kind == "endpoint":
            self._index_endpoint(old, new)
        elif op.kind == "sandbox":
            if old is not None and self._sandbox_names.get(old.name) is old:
                del self._sandbox_names[old.name]
            if new is not None:
                self._sandbox_names[new.name] = new
        ordered = self._ordered.get(op.kind)
        if ordered is not None:  # not while loading: the buckets are made after
            ordered.replace(old, new)
            if op.kind in self._changes:
                self._changes[op.kind].replace(old, new)
        elif op.kind == "remote_endpoint":
            self._lineage_ok = False

    def _index_endpoint(self, old: Endpoint | None, new: Endpoint | None) -> None:
        for index, key in ((self._by_sandbox, "sandbox_id"), (self._by_network, "network_id")):
            if old is not None:
                held = index.get(getattr(old, key), {})
                if held.get(old.id) is old:
                    del held[old.id]
                    if not held:
                        del index[getattr(old, key)]
            if new is not None:
                index.setdefault(getattr(new, key), {})[new.id] = new

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(snapshot)` after every commit (from the committing thread)."""
        self._listeners.append(listener)

    # --- reading ---

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def lock(self) -> threading.RLock:
        """Held while a batch or other hosts' changes are applied: a caller that checks and
        commits under it sees no remote change in between."""
        return self._lock

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            return self._snapshot

    def _build_snapshot(self) -> Snapshot:
        """Each tuple kept in order change by change (no sort), with the lineage from the
        last notified snapshot when it is known."""
        if self.remote_endpoints:  # other hosts' sandboxes and endpoints mixed in
            sandboxes = tuple(
                sorted(
                    {**self._remote_sandboxes(), **self.sandboxes}.values(), key=lambda s: s.name
                )
            )
            endpoints = tuple(
                sorted(
                    [*self.endpoints.values(), *self._remote_endpoint_list()],
                    key=lambda e: (e.sandbox_id, e.ifname),
                )
            )
        else:
            sandboxes = self._ordered["sandbox"].as_tuple()
            endpoints = self._ordered["endpoint"].as_tuple()
        lineage = None
        if self._lineage_ok and self._notified is not None and not self.remote_endpoints:
            lineage = Lineage(
                self._notified,
                self._changes["sandbox"].moves(),
                self._changes["endpoint"].moves(),
                sandboxes,
                endpoints,
            )
        return Snapshot(
            revision=self._revision,
            networks=self._ordered["network"].as_tuple(),
            sandboxes=sandboxes,
            endpoints=endpoints,
            records=self._ordered["record"].as_tuple(),
            lineage=lineage,
        )

    def _remote_sandboxes(self) -> dict[str, Sandbox]:
        return {sb.id: sb for _, sb in self.remote_endpoints.values()}

    def _remote_endpoint_list(self) -> list[Endpoint]:
        # An endpoint of a network this host no longer knows is left out, like a local one.
        return [ep for ep, _ in self.remote_endpoints.values() if ep.network_id in self.networks]

    def remote_endpoints_on(self, network_id: str) -> list[Endpoint]:
        return [ep for ep, _ in self.remote_endpoints.values() if ep.network_id == network_id]

    def find_network(self, ref: str) -> Network:
        """A network by full id, name, or unique id prefix (Docker's lookup order)."""
        return find_ref(self.networks.values(), ref, NetworkNotFound, f"network {ref} not found")

    def find_sandbox(self, ref: str) -> Sandbox:
        """A local sandbox by full id, name, or unique id prefix (thread: any)."""
        found = self.sandboxes.get(ref) or self._sandbox_names.get(ref)
        if found is not None:
            return found
        return find_ref(self.sandboxes.values(), ref, SandboxNotFound, f"No such sandbox: {ref}")

    def endpoints_of(self, sandbox_id: str) -> list[Endpoint]:
        return sorted(self._by_sandbox.get(sandbox_id, {}).values(), key=lambda e: e.ifname)

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        return list(self._by_network.get(network_id, {}).values())

    def endpoint(self, network_id: str, sandbox_id: str) -> Endpoint | None:
        for e in self._by_sandbox.get(sandbox_id, {}).values():
            if e.network_id == network_id:
                return e
        return None

    def records_on(self, network_id: str) -> list[Record]:
        with self._lock:  # other hosts' records of an overlay arrive on the watch's thread
            return [r for r in self.records.values() if r.network_id == network_id]

    def joiners_of(self, sandbox_id: str) -> list[Sandbox]:
        """Sandboxes in `container:<sandbox>` mode on this one."""
        return [s for s in self.sandboxes.values() if s.joined_to == sandbox_id]


def find_ref(items: Iterable[Any], ref: str, error: type[NotFound], missing: str) -> Any:
    """An object by full id, name, or unique id prefix (Docker's lookup order).

    Raises `error(missing)` when nothing matches, and `error` naming the ambiguity when an id
    prefix matches several objects.
    """
    items = list(items)
    for obj in items:
        if obj.id == ref:
            return obj
    for obj in items:
        if obj.name == ref:
            return obj
    matches = [o for o in items if ref and o.id.startswith(ref.lower())]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise error(
            f"{ref} is ambiguous ({len(matches)} matches found based on id prefix): "
            "give more characters or the name"
        )
    raise error(missing)
