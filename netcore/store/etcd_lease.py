"""The host's etcd lease: its liveness key, its published endpoints, and their keep-alive.

Everything another host needs from this one (endpoints on overlays, their address claims) is
on the lease. A host that dies stops renewing it; etcd deletes those keys when the TTL runs out,
and every other host's watch drops the names and FDB entries. A restarted host waits for its
previous lease to run out (a live daemon with the same --host-id keeps it alive: then it
refuses to start), takes a new one and re-claims its own endpoints with the same addresses.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from ..errors import Conflict
from .etcd_client import (
    EtcdUnavailable,
    absent,
    delete_op,
    put_op,
    range_kvs,
    range_op,
    value_is,
)

if TYPE_CHECKING:
    from .etcd import EtcdStore

log = logging.getLogger(__name__)

POLL_S = 0.2  # while waiting for a previous lease to run out


class HostLease:
    def __init__(self, store: EtcdStore, ttl_s: int) -> None:
        self.store = store
        self.ttl_s = max(2, int(ttl_s))
        self.id = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="etcd-lease", daemon=True)

    @property
    def alive_key(self) -> str:
        return f"{self.store.prefix}/alive/{self.store.host_id}"

    def start(self) -> None:
        """Take the host id (or raise Conflict), then re-publish this host's endpoints."""
        self._claim_host()
        self.republish()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)
        if self.id:  # a clean stop: other hosts drop this one's names at once
            try:
                self.store.client.lease_revoke(self.id)
            except Exception as exc:
                log.warning("revoke etcd lease: %s", exc)

    def _claim_host(self) -> None:
        client = self.store.client
        value = json.dumps({"addr": self.store.vtep, "pid": os.getpid()})
        deadline = time.monotonic() + self.ttl_s + 2 * POLL_S + 1
        waited = False
        while True:
            self.id = client.lease_grant(self.ttl_s)
            ok, responses, _ = client.txn(
                [absent(self.alive_key)],
                [put_op(self.alive_key, value, self.id)],
                [range_op(self.alive_key)],
            )
            if ok:
                return
            client.lease_revoke(self.id)
            self.id = 0
            holder = _holder_addr(responses)
            # Only this host's previous run (same underlay address) is waited for: a holder at
            # another address is another host with the same id, refused at once.
            if (holder is not None and holder != self.store.vtep) or time.monotonic() > deadline:
                where = f" at {holder}" if holder else ""
                raise Conflict(
                    f"another dnsd holds --host-id {self.store.host_id}{where} (its etcd lease "
                    "stays alive): give each host its own --host-id"
                )
            if not waited:
                log.warning(
                    "host id %s is still held: waiting up to %d s for the previous lease to expire",
                    self.store.host_id,
                    self.ttl_s,
                )
                waited = True
            time.sleep(POLL_S)

    def republish(self) -> None:
        """Publish every endpoint of ours on an overlay on the current lease, with the address
        it had; one whose address another host took meanwhile is dropped (and logged)."""
        store, client = self.store, self.store.client
        kvs, _ = client.range(store.own + "endpoint/", store.own + "endpoint0")
        networks, _ = client.range(store.glob + "networks/", store.glob + "networks0")
        store.globals.update({kv.key.rsplit("/", 1)[1]: json.loads(kv.value) for kv in networks})
        sandboxes, _ = client.range(store.own + "sandbox/", store.own + "sandbox0")
        for kv in sandboxes:
            store._own_sandboxes[kv.key.rsplit("/", 1)[1]] = json.loads(kv.value)
        for kv in kvs:
            endpoint = json.loads(kv.value)
            if endpoint["network_id"] not in store.globals:
                continue
            if self._reclaim(endpoint):
                store.own_endpoints[endpoint["id"]] = endpoint
                continue
            log.error(
                "address %s of endpoint %s was taken by another host while this one was down: "
                "endpoint dropped (reconcile removes its veth)",
                " and ".join(a for a in (endpoint["ipv4"], endpoint.get("ipv6")) if a),
                endpoint["id"][:12],
            )
            client.txn([], [delete_op(kv.key)])
            store.dropped[endpoint["id"]] = endpoint

    def _reclaim(self, endpoint: dict) -> bool:
        """Publish an endpoint of ours again with its addresses; False when another host holds
        one of them. Each claim key must be free or still ours (a lease renewed in time)."""
        store, client = self.store, self.store.client
        mine = store.owner_value(endpoint["id"])
        for _attempt in range(3):  # a key that changes between the read and the write: again
            compare = []
            for key in store.ip_keys(endpoint):
                kvs, _ = client.range(key)
                if kvs and kvs[0].value.decode() != mine:
                    return False
                compare.append(value_is(key, mine) if kvs else absent(key))
            ok, _, _ = client.txn(compare, store.publish_ops(endpoint))
            if ok:
                return True
        return False

    def _keep(self) -> None:
        interval = self.ttl_s / 3
        while not self._stop.wait(interval):
            try:
                ttl = self.store.client.lease_keepalive(self.id)
            except EtcdUnavailable as exc:
                log.warning("etcd lease keep-alive: %s", exc)
                continue
            if ttl > 0:
                continue
            log.warning("etcd lease %x expired (etcd was away too long): taking a new one", self.id)
            try:
                self._claim_host()
                self.republish()
            except Exception:
                log.exception("re-publish after a lost lease")


def _holder_addr(responses: list) -> str | None:
    """The underlay address in the alive key a failed claim read back (None: unreadable)."""
    for kv in range_kvs(responses[0]) if responses else ():
        try:
            return json.loads(kv.value).get("addr")
        except (ValueError, AttributeError):
            return None
    return None
