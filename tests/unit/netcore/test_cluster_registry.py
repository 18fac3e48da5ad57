"""Other hosts' objects in the registry and the engine: applied newest-first, seen only in
snapshots, programmed into VXLAN devices, counted by IPAM; overlays need a cluster store."""

from __future__ import annotations

import pytest

from netcore.engine import Engine, EngineConfig
from netcore.errors import InvalidArgument, NetworkInUse, PoolOverlap
from netcore.kernel.fake import FakeKernel
from netcore.model import to_dict
from netcore.overlay import FIRST_VNI, OverlayProgrammer, Peer, next_vni, overlay_peers
from netcore.registry import Registry
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from netcore.store.base import Delete, Put
from netcore.store.memory import MemoryStore

VTEP_A, VTEP_B = "10.231.0.11", "10.231.0.12"


@pytest.fixture
def cluster_engine(tmp_path) -> Engine:
    config = EngineConfig(
        state_dir=str(tmp_path / "state"),
        etc_netns_dir=str(tmp_path / "etc"),
        default_network=False,
        advertise_addr=VTEP_A,
        host_id="a",
    )
    engine = Engine(Registry(MemoryStore()), FakeKernel(), config)
    engine.start()
    return engine


def _remote(endpoint_id: str, network_id: str, ip: str, name: str = "db") -> dict:
    mac = "02:42:" + ":".join(f"{int(o):02x}" for o in ip.split("."))
    return {
        "host": "b",
        "endpoint": {
            "id": endpoint_id,
            "network_id": network_id,
            "sandbox_id": "f" * 63 + endpoint_id[0],
            "ifname": "eth0",
            "host_ifname": "veth",
            "mac": mac,
            "ipv4": ip,
            "aliases": [name],
            "vtep": VTEP_B,
        },
        "sandbox": {"id": "f" * 63 + endpoint_id[0], "name": name, "hostname": ""},
    }


def _overlay(engine: Engine, name: str = "ov", subnet: str = "10.50.0.0/24"):
    return engine.create_network(NetworkRequest.build(name, subnet=subnet, driver="overlay"))


def test_overlay_needs_a_cluster_store(tmp_path):
    engine = Engine(Registry(MemoryStore()), FakeKernel(), EngineConfig(state_dir=str(tmp_path)))
    with pytest.raises(InvalidArgument, match="--store etcd://"):
        _overlay(engine)


def test_overlay_gets_vni_mtu_and_vxlan_device(cluster_engine):
    net = _overlay(cluster_engine)
    assert (net.driver, net.vni, net.mtu, net.scope) == ("overlay", FIRST_VNI, 1450, "global")
    assert f"ensure_vxlan vx-{net.id[:12]} vni {FIRST_VNI} local {VTEP_A}" in (
        cluster_engine.kernel.calls
    )
    assert _overlay(cluster_engine, "ov2", "10.51.0.0/24").vni == FIRST_VNI + 1


def test_overlay_subnet_over_a_host_route_names_the_host(cluster_engine):
    import ipaddress

    cluster_engine.kernel.prefixes.append(ipaddress.IPv4Network("10.50.0.0/16"))
    with pytest.raises(PoolOverlap, match=r"route 10\.50\.0\.0/16 of host a"):
        _overlay(cluster_engine)


def test_remote_changes_apply_once_newest_wins_and_only_in_snapshots(cluster_engine):
    reg = cluster_engine.registry
    net = _overlay(cluster_engine)
    put = Put("remote_endpoint", "e1" + "0" * 62, _remote("e1" + "0" * 62, net.id, "10.50.0.9"))
    reg.apply_remote([(put, 5)])
    revision = reg.revision
    reg.apply_remote([(put, 5)])  # twice: nothing changes
    reg.apply_remote([(Delete("remote_endpoint", put.id), 4)])  # older: ignored
    assert reg.revision == revision
    snap = reg.snapshot()
    assert [s.name for s in snap.sandboxes if s.mode == "remote"] == ["db"]
    assert [str(e.ipv4) for e in snap.endpoints] == ["10.50.0.9"]
    assert reg.sandboxes == {} and reg.endpoints == {}  # the engine manages its own only
    reg.apply_remote([(Delete("remote_endpoint", put.id), 6)])
    assert reg.snapshot().endpoints == ()


def test_resync_deletes_what_the_cluster_no_longer_has(cluster_engine):
    reg = cluster_engine.registry
    net = _overlay(cluster_engine)
    eid = "e2" + "0" * 62
    reg.apply_remote([(Put("remote_endpoint", eid, _remote(eid, net.id, "10.50.0.7")), 3)])
    reg.apply_remote([(Put("network", net.id, to_dict(net)), 2)], complete_at=10)
    assert reg.remote_endpoints == {} and net.id in reg.networks


def test_ipam_skips_addresses_other_hosts_claimed(cluster_engine):
    reg = cluster_engine.registry
    net = _overlay(cluster_engine)
    reg.apply_remote([(Put("remote_claim", f"{net.id}/10.50.0.2", {}), 7)])
    cluster_engine.create_sandbox(SandboxRequest(name="web"))
    ep = cluster_engine.connect("ov", "web", ConnectRequest())
    assert str(ep.ipv4) == "10.50.0.3" and ep.vtep == VTEP_A


def test_remote_endpoints_are_programmed_and_block_removal(cluster_engine):
    reg, kernel = cluster_engine.registry, cluster_engine.kernel
    programmer = OverlayProgrammer(kernel)
    reg.subscribe(programmer.on_snapshot)
    net = _overlay(cluster_engine)
    eid = "e3" + "0" * 62
    reg.apply_remote([(Put("remote_endpoint", eid, _remote(eid, net.id, "10.50.0.5")), 9)])
    device = f"vx-{net.id[:12]}"
    assert kernel.vxlan_peers[device] == {Peer("02:42:0a:32:00:05", "10.50.0.5", VTEP_B)}
    with pytest.raises(NetworkInUse, match="on other hosts"):
        cluster_engine.remove_network("ov")
    reg.apply_remote([(Delete("remote_endpoint", eid), 10)])
    assert kernel.vxlan_peers[device] == frozenset()
    reg.apply_remote([(Delete("network", net.id), 11)])  # removed by another host
    assert device not in kernel.links and net.bridge not in kernel.links


def test_overlay_peers_and_next_vni_are_pure():
    assert overlay_peers(Registry(MemoryStore()).snapshot()) == {}
    assert next_vni([]) == FIRST_VNI


def test_endpoint_dropped_at_start_loses_its_veth_and_its_default_route(cluster_engine, tmp_path):
    """A restarted host whose address another host took meanwhile: the store drops the record
    (etcd_lease.republish), reconcile removes the veth and moves the default route."""
    engine = cluster_engine
    net = _overlay(engine)
    local = engine.create_network(NetworkRequest.build("loc", subnet="10.60.0.0/24"))
    sandbox = engine.create_sandbox(SandboxRequest(name="web"))
    gone = engine.connect(net.id, sandbox.id, ConnectRequest())
    kept = engine.connect(local.id, sandbox.id, ConnectRequest())
    assert gone.is_gateway and not kept.is_gateway
    store = engine.registry._store
    data = store.load()
    del store._data["endpoint"][gone.id]  # what republish leaves in the store ...

    class Restarted(MemoryStore):
        def load(self):  # ... and hands over once, as EtcdStore.load does
            return {
                **data,
                "endpoint": store._data["endpoint"],
                "dropped_endpoint": {gone.id: to_dict(gone)},
            }

    kernel = engine.kernel  # the same machine: its namespaces and links are still there
    kernel.calls.clear()
    again = Engine(Registry(Restarted()), kernel, engine.config)
    again.start()
    assert f"delete_link {gone.host_ifname}" in kernel.calls
    assert [e.id for e in again.registry.endpoints_of(sandbox.id)] == [kept.id]
    assert again.registry.endpoints[kept.id].is_gateway  # the default route moved
    assert not again.registry.dropped_endpoints
    assert any("was taken by another host" in line for line in again.repairs), again.repairs


def test_allocation_retry_pauses_without_the_engine_lock(cluster_engine, monkeypatch):
    import threading

    from netcore.errors import AllocationConflict

    engine = cluster_engine
    _overlay(engine)
    store = engine.registry._store
    commit = store.commit
    conflicts = iter([True, True, False, True, False])  # of the connects, in order

    def racing_commit(ops) -> None:
        connects = [op for op in ops if op.kind == "intent" and isinstance(op, Put)]
        if any(op.body.get("op") == "connect" for op in connects) and next(conflicts):
            raise AllocationConflict("another host took it")
        commit(ops)

    def try_lock() -> None:
        got = engine._lock.acquire(timeout=1)
        free.append(got)
        if got:
            engine._lock.release()

    def sleep(_seconds: float) -> None:  # the pause: can another thread take the lock?
        other = threading.Thread(target=try_lock)
        other.start()
        other.join()

    free: list[bool] = []
    monkeypatch.setattr(store, "commit", racing_commit)
    monkeypatch.setattr("netcore.engine.time.sleep", sleep)
    engine.create_sandbox(SandboxRequest(name="web"))
    engine.connect("ov", "web", ConnectRequest())
    engine.create_sandbox(SandboxRequest(name="db", network_mode="ov"))  # connect inside
    assert free == [True, True, True]
    assert len(engine.registry.endpoints) == 2
