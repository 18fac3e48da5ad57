"""Following the cluster: etcd's watch on the global keys, turned into registry operations.

One thread per daemon. Events become `(Op, revision)` pairs; the registry applies a pair only
when its revision is newer than what it holds for that object, so events delivered twice or
out of order (a resumed watch, a resync racing the watch) change nothing. A broken stream is
resumed from the next revision; a compacted one is replaced by a full resync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from .base import Delete, Op, Put
from .etcd_client import Compacted, EtcdUnavailable, KeyValue, prefix_end

if TYPE_CHECKING:
    from .base import RemoteChange
    from .etcd import EtcdStore

log = logging.getLogger(__name__)

RETRY_S = 0.5  # between attempts to re-open a broken watch


def translate(store: EtcdStore, kv: KeyValue, *, deleted: bool) -> list[RemoteChange]:
    """The registry operations one global key stands for; this host's own keys stand for
    none (the registry already has them)."""
    rest = kv.key[len(store.glob) :] if kv.key.startswith(store.glob) else ""
    section, _, tail = rest.partition("/")
    rev = kv.mod_revision
    ops: list[Op] = []
    if section == "networks" and tail:
        if deleted:
            store.globals.pop(tail, None)
            ops.append(Delete("network", tail))
        else:
            body = json.loads(kv.value)
            store.globals[tail] = body
            ops.append(Put("network", tail, body))
    elif section == "endpoints" and "/" in tail:
        endpoint_id = tail.partition("/")[2]
        if deleted:
            if endpoint_id not in store.own_endpoints:
                ops.append(Delete("remote_endpoint", endpoint_id))
        else:
            value = json.loads(kv.value)
            if value.get("host") != store.host_id:
                ops.append(Put("remote_endpoint", endpoint_id, value))
    elif section == "records":
        ops += store.records.translate(tail, kv.value, deleted=deleted)
    elif section == "ips" and "/" in tail:
        if deleted:
            ops.append(Delete("remote_claim", tail))
        elif json.loads(kv.value).get("host") != store.host_id:
            ops.append(Put("remote_claim", tail, {}))
    return [(op, rev) for op in ops]


class Follower:
    """The watch thread: events to the registry, within milliseconds of etcd's commit."""

    def __init__(self, store: EtcdStore, start_revision: int) -> None:
        self.store = store
        self.next_revision = start_revision
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=3)

    def _opened(self, sock: socket.socket) -> None:
        self._sock = sock

    def _run(self) -> None:
        glob = self.store.glob
        down_since: float | None = None
        failures = 0  # in a row: the first retry goes at once (a stream cut, etcd is likely up)
        while not self._stop.is_set():
            try:
                stream = self.store.client.watch(
                    glob, prefix_end(glob), self.next_revision, self._opened
                )
                for revision, events in stream:
                    if down_since is not None:
                        log.warning(
                            "etcd watch resumed at revision %d after %.1f s",
                            self.next_revision,
                            time.monotonic() - down_since,
                        )
                        down_since = None
                    self.connected.set()
                    failures = 0
                    changes = [
                        c
                        for e in events
                        for c in translate(self.store, e.kv, deleted=e.kind == "DELETE")
                    ]
                    self.store.deliver(changes, revision)
                    self.next_revision = max(self.next_revision, revision + 1)
            except Compacted as exc:
                log.warning("etcd watch: %s: reloading the cluster's state", exc)
                self._resync()
            except EtcdUnavailable as exc:
                if self._stop.is_set():
                    return
                self.connected.clear()
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("etcd watch lost: %s: answering from the last view", exc)
                failures += 1
                if failures > 1:
                    self._stop.wait(RETRY_S)
            except Exception:
                log.exception("etcd watch failed; restarting it")
                self._stop.wait(RETRY_S)

    def _resync(self) -> None:
        try:
            self.store.resync()
            self.next_revision = self.store.seen_revision + 1
        except EtcdUnavailable as exc:
            log.warning("etcd resync: %s", exc)
            self._stop.wait(RETRY_S)
