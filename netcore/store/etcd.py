"""The shared store: this host's objects and the cluster's global ones in etcd.

Key layout under the prefix (default `/dnsd`):

    hosts/<host>/<kind>/<id>     this host's objects (durable): what `load` gives back on restart
    global/networks/<id>         overlay networks (durable), with
    global/names/<name>          ... their cluster-wide unique name and
    global/vnis/<vni>            ... VNI
    global/ips/<net>/<ip>        an address claimed on an overlay (on the host's lease)
    global/endpoints/<net>/<id>  an endpoint on an overlay, with its sandbox's names (on the lease)
    global/records/<net>/<id>    a DNS record of an overlay (durable; see etcd_records.py)
    alive/<host>                 the host's liveness key (on the lease)

Every `commit` is one etcd transaction. Claims are compare-and-swap: an address, a VNI or a
name already taken (or an overlay created since this host last looked, for the subnet overlap
check; a record of the overlay changed since, for the record checks) fails the whole
transaction with `AllocationConflict`, after the registry has been brought up to date so that
a retry picks another one. Remote changes reach the registry through
`follow` (see etcd_follow.py); the host's lease is kept by etcd_lease.py.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AllocationConflict
from .base import ApplyRemote as Apply
from .base import Delete, Op, Put, RemoteChange
from .etcd_client import (
    EtcdClient,
    EtcdOptions,
    absent,
    delete_op,
    prefix_end,
    put_op,
    unchanged_since,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/dnsd"
DEFAULT_HOST_TTL_S = 10


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    host_id: str = ""  # default: the hostname
    advertise_addr: str | None = None  # this host's underlay address: its VXLAN endpoint
    host_ttl_s: int = DEFAULT_HOST_TTL_S
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None


def parse_url_path(rest: str) -> tuple[tuple[str, ...], str]:
    """`h:p[,h:p...][/prefix]` -> (endpoints, prefix)."""
    hosts, slash, prefix = rest.partition("/")
    endpoints = tuple(e.strip() for e in hosts.split(",") if e.strip())
    from ..errors import InvalidArgument

    if not endpoints or any(":" not in e for e in endpoints):
        raise InvalidArgument(
            f"etcd://{rest}: give HOST:PORT[,HOST:PORT...][/PREFIX]", field="store"
        )
    prefix = "/" + prefix.strip("/") if slash and prefix.strip("/") else DEFAULT_PREFIX
    return endpoints, prefix


class EtcdStore:
    def __init__(self, client: EtcdClient, prefix: str, cluster: ClusterOptions) -> None:
        from .etcd_lease import HostLease
        from .etcd_records import OverlayRecords

        self.client = client
        self.prefix = prefix.rstrip("/")
        self.host_id = cluster.host_id or socket.gethostname()
        self.vtep = cluster.advertise_addr
        self.own = f"{self.prefix}/hosts/{self.host_id}/"
        self.glob = f"{self.prefix}/global/"
        self.globals: dict[str, dict[str, Any]] = {}  # overlay network id -> body
        self.own_endpoints: dict[str, dict[str, Any]] = {}  # on overlays, by id
        self._own_sandboxes: dict[str, dict[str, Any]] = {}
        self._claims: dict[str, list[str]] = {}  # connect intent id -> the ip keys it claimed
        self._published: set[str] = set()
        # Endpoints of ours whose address another host took while this one was down: their
        # records are gone; `load` hands them over once so that reconcile clears the kernel.
        self.dropped: dict[str, dict[str, Any]] = {}
        self.seen_revision = 0  # the cluster revision the registry's view reflects
        # The revision up to which this host knows every overlay network: what the subnet
        # overlap (and name, VNI) checks of its next network change were made against. Its own
        # changes advance it at once, so a create right after another is no race.
        self.networks_revision = 0
        self._networks_compared = False  # this batch carries the compare against it
        self.records = OverlayRecords(self)
        self._apply: Apply | None = None
        self._follower = None
        self.lease = HostLease(self, cluster.host_ttl_s)
        self.lease.start()  # raises when another daemon holds this host id

    @classmethod
    def from_url_path(cls, rest: str, cluster: ClusterOptions | None = None) -> EtcdStore:
        cluster = cluster or ClusterOptions()
        endpoints, prefix = parse_url_path(rest)
        options = EtcdOptions(
            endpoints,
            cacert=cluster.cacert,
            cert=cluster.cert,
            key=cluster.key,
            user=cluster.user,
            password=cluster.password,
        )
        return cls(EtcdClient(options), prefix, cluster)

    # --- keys ---

    def ip_key(self, network_id: str, ip: str) -> str:
        return f"{self.glob}ips/{network_id}/{ip}"

    def ip_keys(self, endpoint: dict[str, Any]) -> list[str]:
        """The claim keys of an endpoint's addresses: IPv4, and IPv6 on a dual-stack overlay."""
        addresses = [endpoint["ipv4"], endpoint.get("ipv6")]
        return [self.ip_key(endpoint["network_id"], a) for a in addresses if a]

    def endpoint_key(self, network_id: str, endpoint_id: str) -> str:
        return f"{self.glob}endpoints/{network_id}/{endpoint_id}"

    def owner_value(self, owner: str) -> str:
        return json.dumps({"host": self.host_id, "owner": owner})

    # --- Store ---

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        kvs, revision = self.client.range(self.prefix + "/", prefix_end(self.prefix + "/"))
        data: dict[str, dict[str, dict[str, Any]]] = {}
        from .etcd_follow import translate

        for kv in kvs:
            if kv.key.startswith(self.own):
                kind, _, oid = kv.key[len(self.own) :].partition("/")
                body = json.loads(kv.value)
                data.setdefault(kind, {})[oid] = body
                if kind == "sandbox":
                    self._own_sandboxes[oid] = body
                continue
            for op, _rev in translate(self, kv, deleted=False):
                assert isinstance(op, Put)
                data.setdefault(op.kind, {})[op.id] = op.body
        self.seen_revision = self.networks_revision = revision
        if self.dropped:
            data["dropped_endpoint"], self.dropped = self.dropped, {}
        return data

    def commit(self, ops: Sequence[Op]) -> None:
        compare: list[dict[str, Any]] = []
        success: list[dict[str, Any]] = []
        after: list[Callable[[], None]] = []  # bookkeeping once the transaction succeeded
        self._published: set[str] = set()  # ip keys an endpoint of this batch now holds
        self._networks_compared = False
        self.records.begin()
        for op in ops:
            self._translate(op, compare, success, after)
        ok, _responses, revision = self.client.txn(compare, success)
        if ok and self._networks_compared:  # nobody else touched an overlay meanwhile
            self.networks_revision = max(self.networks_revision, revision)
        if not ok:
            self.records.begin()
            self.resync()
            raise AllocationConflict(
                "another host claimed the same address, VNI, network name or DNS record (or "
                "created an overlapping overlay) at the same moment: nothing was changed; retry"
            )
        self.records.committed(revision)
        for step in after:
            step()

    def _translate(self, op: Op, compare: list, success: list, after: list) -> None:
        key = f"{self.own}{op.kind}/{op.id}"
        if op.kind == "network" and (
            (isinstance(op, Put) and op.body.get("driver") == "overlay") or op.id in self.globals
        ):
            self._network_op(op, compare, success, after)
            return
        if self.records.owns(op):
            self.records.add_ops(op, compare, success, after)
            return
        if isinstance(op, Put):
            success.append(put_op(key, json.dumps(op.body, sort_keys=True)))
        else:
            success.append(delete_op(key))
        if op.kind == "sandbox":
            if isinstance(op, Put):
                after.append(lambda: self._own_sandboxes.__setitem__(op.id, op.body))
            else:
                after.append(lambda: self._own_sandboxes.pop(op.id, None))
        elif op.kind == "intent":
            self._intent_op(op, compare, success, after)
        elif op.kind == "endpoint":
            self._endpoint_op(op, success, after)

    def _network_op(self, op: Op, compare: list, success: list, after: list) -> None:
        body = op.body if isinstance(op, Put) else self.globals[op.id]
        names = (f"{self.glob}names/{body['name']}", f"{self.glob}vnis/{body['vni']}")
        if not self._networks_compared:
            # The subnet overlap check saw the overlays up to `networks_revision`.
            compare.append(unchanged_since(f"{self.glob}networks/", self.networks_revision))
            self._networks_compared = True
        if isinstance(op, Put):
            if op.id not in self.globals:
                compare += [absent(k) for k in names]
            success.append(put_op(f"{self.glob}networks/{op.id}", json.dumps(op.body)))
            success += [put_op(k, op.id) for k in names]
            after.append(lambda: self.globals.__setitem__(op.id, op.body))
        else:
            success.append(delete_op(f"{self.glob}networks/{op.id}"))
            success += [delete_op(k) for k in names]
            success.append(delete_op(f"{self.glob}ips/{op.id}/", prefix=True))
            success.append(delete_op(self.records.prefix(op.id), prefix=True))
            after.append(lambda: self.globals.pop(op.id, None))
            after.append(lambda: self.records.forget(op.id))

    def _intent_op(self, op: Op, compare: list, success: list, after: list) -> None:
        if isinstance(op, Delete):
            claimed = self._claims.get(op.id)
            if claimed is not None:
                held = {k for e in self.own_endpoints.values() for k in self.ip_keys(e)}
                for key in claimed:
                    if key not in held | self._published:
                        success.append(delete_op(key))  # a rolled back connect: released
                after.append(lambda: self._claims.pop(op.id, None))
            return
        endpoint = op.body.get("endpoint")
        if op.body.get("op") != "connect" or endpoint["network_id"] not in self.globals:
            return
        keys = self.ip_keys(endpoint)
        compare += [absent(k) for k in keys]
        success += [put_op(k, self.owner_value(op.id), self.lease.id) for k in keys]
        after.append(lambda: self._claims.__setitem__(op.id, keys))

    def _endpoint_op(self, op: Op, success: list, after: list) -> None:
        if isinstance(op, Put):
            if op.body["network_id"] not in self.globals:
                return
            success += self.publish_ops(op.body)
            self._published.update(self.ip_keys(op.body))
            after.append(lambda: self.own_endpoints.__setitem__(op.id, op.body))
            return
        endpoint = self.own_endpoints.get(op.id)
        if endpoint is None:
            return
        success.append(delete_op(self.endpoint_key(endpoint["network_id"], op.id)))
        success += [delete_op(k) for k in self.ip_keys(endpoint)]
        after.append(lambda: self.own_endpoints.pop(op.id, None))

    def publish_ops(self, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
        """The leased keys that make an endpoint of ours visible cluster-wide."""
        sandbox = self._own_sandboxes.get(endpoint["sandbox_id"], {})
        value = {
            "host": self.host_id,
            "endpoint": endpoint,
            "sandbox": {
                "id": endpoint["sandbox_id"],
                "name": sandbox.get("name", endpoint["sandbox_id"][:12]),
                "hostname": sandbox.get("hostname", ""),
            },
        }
        net, eid = endpoint["network_id"], endpoint["id"]
        return [
            put_op(self.endpoint_key(net, eid), json.dumps(value, sort_keys=True), self.lease.id),
            *(put_op(k, self.owner_value(eid), self.lease.id) for k in self.ip_keys(endpoint)),
        ]

    # --- following the cluster ---

    def follow(self, apply: Apply) -> None:
        """Deliver remote changes to `apply(changes, complete_at)` from now on (a thread)."""
        from .etcd_follow import Follower

        self._apply = apply
        self._follower = Follower(self, self.seen_revision + 1)
        self._follower.start()

    def resync(self) -> None:
        """Read every global key and hand the registry the complete picture (after a conflict,
        a compaction, or a watch that could not resume)."""
        from .etcd_follow import translate

        if self._apply is None:
            return
        kvs, revision = self.client.range(self.glob, prefix_end(self.glob))
        changes = [c for kv in kvs for c in translate(self, kv, deleted=False)]
        self._apply(changes, revision)
        self._seen(revision)

    def deliver(self, changes: Sequence[RemoteChange], revision: int) -> None:
        changes = self.records.drop_echoes(changes)
        if self._apply is not None and changes:
            self._apply(changes, None)
        self._seen(revision)

    def _seen(self, revision: int) -> None:
        """The registry now reflects every global key up to `revision`."""
        self.seen_revision = max(self.seen_revision, revision)
        self.networks_revision = max(self.networks_revision, revision)

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        self.lease.stop()
