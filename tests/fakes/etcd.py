"""An in-memory etcd for unit tests of the etcd store: the `EtcdClient` calls the store makes
(range, txn with etcd's compares, leases), one revision per write, and the event history that a
watch would deliver (`FakeEtcd.pump` hands it to a store as its watch thread does)."""

from __future__ import annotations

import base64
import threading
from typing import Any

from netcore.store.etcd_client import KeyValue, WatchEvent


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode()


class DuplicateKey(Exception):
    """etcd refuses a transaction that puts a key twice, or puts one it also deletes."""


class FakeEtcd:
    def __init__(self) -> None:
        self.kvs: dict[str, KeyValue] = {}
        self.revision = 1
        self.history: list[tuple[int, WatchEvent]] = []
        self.leases: dict[int, int] = {}  # id -> TTL
        self._lock = threading.Lock()

    # --- the EtcdClient interface ---

    def range(self, key: str, range_end: str | None = None) -> tuple[list[KeyValue], int]:
        with self._lock:
            return self._range(key, range_end), self.revision

    def txn(self, compare: list, success: list, failure=()) -> tuple[bool, list, int]:
        with self._lock:
            ok = all(self._holds(c) for c in compare)
            ops = success if ok else list(failure)
            self._check_duplicates(ops)
            responses, wrote = [], False
            for op in ops:
                ((kind, body),) = op.items()
                if kind == "requestRange":
                    kvs = self._range(_text(body["key"]), None)
                    responses.append({"response_range": {"kvs": [_wire(kv) for kv in kvs]}})
                    continue
                if not wrote:
                    self.revision += 1
                    wrote = True
                if kind == "requestPut":
                    self._put(_text(body["key"]), base64.b64decode(body["value"]), body)
                else:
                    end = _text(body["range_end"]) if "range_end" in body else None
                    for kv in self._range(_text(body["key"]), end):
                        del self.kvs[kv.key]
                        self.history.append((self.revision, WatchEvent("DELETE", _gone(kv, self))))
                responses.append({})
            return ok, responses, self.revision

    def lease_grant(self, ttl: int) -> int:
        with self._lock:
            lease = len(self.leases) + 1
            self.leases[lease] = ttl
            return lease

    def lease_keepalive(self, lease: int) -> int:
        return self.leases.get(lease, 0)

    def lease_revoke(self, lease: int) -> None:
        with self._lock:
            self.leases.pop(lease, None)
            for kv in [kv for kv in self.kvs.values() if kv.lease == lease]:
                self.revision += 1
                del self.kvs[kv.key]
                self.history.append((self.revision, WatchEvent("DELETE", _gone(kv, self))))

    # --- for tests ---

    def pump(self, store, since: int, until: int | None = None) -> int:
        """Deliver the events after revision `since` (up to `until`) to `store` as its watch
        would, one batch per revision; returns the last revision delivered."""
        from netcore.store.etcd_follow import translate

        last = self.revision if until is None else until
        for revision in sorted({r for r, _ in self.history if since < r <= last}):
            events = [e for r, e in self.history if r == revision]
            changes = [
                c for e in events for c in translate(store, e.kv, deleted=e.kind == "DELETE")
            ]
            store.deliver(changes, revision)
            since = revision
        return since

    # --- inside ---

    def _range(self, key: str, end: str | None) -> list[KeyValue]:
        if end is None:
            return [self.kvs[key]] if key in self.kvs else []
        return [kv for k, kv in sorted(self.kvs.items()) if key <= k < end]

    def _put(self, key: str, value: bytes, body: dict[str, Any]) -> None:
        old = self.kvs.get(key)
        created = old.create_revision if old else self.revision
        kv = KeyValue(key, value, created, self.revision, int(body.get("lease", 0)))
        self.kvs[key] = kv
        self.history.append((self.revision, WatchEvent("PUT", kv)))

    def _holds(self, compare: dict[str, Any]) -> bool:
        end = _text(compare["range_end"]) if "range_end" in compare else None
        kvs = self._range(_text(compare["key"]), end)
        target, result = compare["target"], compare["result"]
        if target == "VALUE":
            return bool(kvs) and kvs[0].value == base64.b64decode(compare["value"])
        field, wanted = {
            "CREATE": ("create_revision", int(compare.get("create_revision", 0))),
            "MOD": ("mod_revision", int(compare.get("mod_revision", 0))),
        }[target]
        values = [getattr(kv, field) for kv in kvs] or [0]  # a missing key compares as 0
        test = {"EQUAL": int.__eq__, "GREATER": int.__gt__, "LESS": int.__lt__}[result]
        return all(test(v, wanted) for v in values)

    @staticmethod
    def _check_duplicates(ops: list) -> None:
        puts: set[str] = set()
        deletes: list[tuple[str, str | None]] = []
        for op in ops:
            ((kind, body),) = op.items()
            if kind == "requestDeleteRange":
                end = _text(body["range_end"]) if "range_end" in body else None
                deletes.append((_text(body["key"]), end))
        for op in ops:
            ((kind, body),) = op.items()
            if kind != "requestPut":
                continue
            key = _text(body["key"])
            deleted = any(k == key if e is None else k <= key < e for k, e in deletes)
            if key in puts or deleted:
                raise DuplicateKey(f"etcdserver: duplicate key given in txn request: {key}")
            puts.add(key)


def _wire(kv: KeyValue) -> dict[str, Any]:
    return {
        "key": base64.b64encode(kv.key.encode()).decode(),
        "value": base64.b64encode(kv.value).decode(),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "lease": kv.lease,
    }


def _gone(kv: KeyValue, etcd: FakeEtcd) -> KeyValue:
    """A delete event's key-value: no value, the deleting revision."""
    return KeyValue(kv.key, b"", 0, etcd.revision)
