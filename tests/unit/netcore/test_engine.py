"""The engine's orchestration on a fake kernel: allocation, rollback, persistence, reconcile.

The `engine`, `kernel` and `store` fixtures come from tests/unit/conftest.py."""

from __future__ import annotations

import ipaddress

import pytest

from netcore.engine import Engine
from netcore.errors import (
    AddressInUse,
    Conflict,
    NameInUse,
    NetlinkError,
    NetworkInUse,
    NotFound,
    PoolOverlap,
    StoreError,
)
from netcore.registry import Registry
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from netcore.store.base import Put
from netcore.store.sqlite import SQLiteStore
from tests.support.engine import engine_config


def _sandbox(engine: Engine, name: str, **kw) -> str:
    return engine.create_sandbox(SandboxRequest(name=name, **kw)).id


def test_default_network_takes_first_pool_and_user_networks_the_next(engine):
    bridge = engine.registry.find_network("bridge")
    assert str(bridge.ipv4.subnet) == "172.17.0.0/16"
    assert bridge.bridge == "dnsd0"
    net = engine.create_network(NetworkRequest.build("netA"))
    assert str(net.ipv4.subnet) == "172.18.0.0/16"
    assert str(net.ipv4.gateway) == "172.18.0.1"
    assert net.bridge == f"br-{net.id[:12]}" and len(net.id) == 64


def test_auto_subnet_skips_host_routes(store, kernel, tmp_path):
    kernel.prefixes = [ipaddress.ip_network("172.17.5.0/24")]
    eng = Engine(Registry(store), kernel, engine_config(tmp_path))
    eng.start()
    assert str(eng.registry.find_network("bridge").ipv4.subnet) == "172.18.0.0/16"


def test_name_in_use_and_overlap_are_refused(engine):
    engine.create_network(NetworkRequest.build("netA", subnet="10.10.0.0/16"))
    with pytest.raises(NameInUse):
        engine.create_network(NetworkRequest.build("netA"))
    with pytest.raises(PoolOverlap, match="netA"):
        engine.create_network(NetworkRequest.build("netB", subnet="10.10.128.0/17"))
    with pytest.raises(NameInUse):
        engine.create_network(NetworkRequest.build("host"))


def test_connect_allocates_address_mac_ifname_and_default_route(engine, kernel):
    net = engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    sid = _sandbox(engine, "web1")
    ep = engine.connect("netA", "web1", ConnectRequest(aliases=("web",)))
    assert str(ep.ipv4) == "10.1.0.2"
    assert ep.mac == "02:42:0a:01:00:02"
    assert ep.ifname == "eth0" and ep.is_gateway and ep.aliases == ("web",)
    assert ep.host_ifname in kernel.links
    assert kernel.routes[engine.registry.sandboxes[sid].netns_path][0] == "10.1.0.1"
    other = engine.create_network(NetworkRequest.build("netB", subnet="10.2.0.0/24"))
    ep2 = engine.connect(other.id, sid, ConnectRequest())
    assert ep2.ifname == "eth1" and not ep2.is_gateway
    assert engine.registry.endpoints_on(net.id) == [ep]


def test_requested_address_taken_or_connected_twice(engine):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    _sandbox(engine, "a")
    _sandbox(engine, "b")
    engine.connect("netA", "a", ConnectRequest(ipv4="10.1.0.50"))
    with pytest.raises(AddressInUse):
        engine.connect("netA", "b", ConnectRequest(ipv4="10.1.0.50"))
    with pytest.raises(Conflict):
        engine.connect("netA", "a", ConnectRequest())


def test_failed_attach_rolls_back_everything(engine, kernel):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    _sandbox(engine, "a")
    kernel.fail_attach = NetlinkError("boom")
    with pytest.raises(NetlinkError):
        engine.connect("netA", "a", ConnectRequest())
    assert not engine.registry.endpoints and not engine.registry.intents
    assert not any(name.startswith("veth") for name in kernel.links)
    # the address was never handed out
    assert str(engine.connect("netA", "a", ConnectRequest()).ipv4) == "10.1.0.2"


def test_first_connect_hooks_hear_of_the_start_and_of_a_failure_only(engine, kernel):
    """The DNS side opens a sandbox's listener while its first connect runs; it is told when
    that connect fails for good, and only then (a later connect prepares nothing)."""
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    engine.create_network(NetworkRequest.build("netB", subnet="10.2.0.0/24"))
    _sandbox(engine, "a")
    started: list[str] = []
    failed: list[str] = []
    engine.first_connect_hooks.append(lambda sandbox: started.append(sandbox.name))
    engine.first_connect_failed_hooks.append(lambda sandbox: failed.append(sandbox.name))
    kernel.fail_attach = NetlinkError("boom")
    with pytest.raises(NetlinkError):
        engine.connect("netA", "a", ConnectRequest())
    assert (started, failed) == (["a"], ["a"])
    kernel.fail_attach = None
    engine.connect("netA", "a", ConnectRequest())
    assert (started, failed) == (["a", "a"], ["a"])
    with pytest.raises(Conflict):  # not a first connect: nothing was prepared, none to drop
        engine.connect("netA", "a", ConnectRequest())
    kernel.fail_attach = NetlinkError("boom")
    with pytest.raises(NetlinkError):
        engine.connect("netB", "a", ConnectRequest())
    assert (started, failed) == (["a", "a"], ["a"])


def test_disconnect_releases_and_serial_allocation_does_not_reuse_at_once(engine, kernel):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    _sandbox(engine, "a")
    _sandbox(engine, "b")
    ep = engine.connect("netA", "a", ConnectRequest())
    engine.disconnect("netA", "a")
    assert ep.host_ifname not in kernel.links
    assert str(engine.connect("netA", "b", ConnectRequest()).ipv4) == "10.1.0.3"
    assert str(engine.connect("netA", "a", ConnectRequest(ipv4="10.1.0.2")).ipv4) == "10.1.0.2"
    with pytest.raises(NotFound):
        engine.disconnect("bridge", "a")


def test_gateway_moves_to_the_next_network_on_disconnect(engine, kernel):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    engine.create_network(NetworkRequest.build("netB", subnet="10.2.0.0/24"))
    sid = _sandbox(engine, "a")
    engine.connect("netA", "a", ConnectRequest())
    engine.connect("netB", "a", ConnectRequest())
    engine.disconnect("netA", "a")
    (ep,) = engine.registry.endpoints_of(sid)
    assert ep.is_gateway
    assert kernel.routes[engine.registry.sandboxes[sid].netns_path][0] == "10.2.0.1"


def test_internal_network_gives_no_default_route(engine):
    engine.create_network(NetworkRequest.build("int", subnet="10.3.0.0/24", internal=True))
    _sandbox(engine, "a")
    assert not engine.connect("int", "a", ConnectRequest()).is_gateway


def test_remove_network_in_use_is_refused_then_works(engine, kernel):
    net = engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    _sandbox(engine, "a", network_mode="netA")
    with pytest.raises(NetworkInUse, match="a"):
        engine.remove_network("netA")
    engine.remove_sandbox("a")
    engine.remove_network(net.id[:6])
    assert net.bridge not in kernel.links
    assert "br-" not in kernel.nft[None].split("flush")[-1] or net.bridge not in kernel.nft[None]


def test_remove_sandbox_deletes_only_owned_namespaces(engine, kernel):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    kernel.add_foreign_netns("/proc/4242/ns/net")
    owned = engine.create_sandbox(SandboxRequest(name="own", network_mode="netA"))
    foreign = engine.create_sandbox(
        SandboxRequest(name="adopted", netns="/proc/4242/ns/net", network_mode="netA")
    )
    assert owned.owned and not foreign.owned
    engine.remove_sandbox("own")
    engine.remove_sandbox("adopted")
    assert owned.netns_path not in kernel.namespaces
    assert "/proc/4242/ns/net" in kernel.namespaces
    assert not engine.registry.endpoints


def test_modes_none_host_container(engine):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    web = engine.create_sandbox(SandboxRequest(name="web", network_mode="netA"))
    side = engine.create_sandbox(SandboxRequest(name="side", network_mode="container:web"))
    assert side.mode == "container" and side.joined_to == web.id
    assert side.netns_path == web.netns_path
    for mode in ("none", "host"):
        engine.create_sandbox(SandboxRequest(name=mode + "1", network_mode=mode))
        with pytest.raises(Conflict):
            engine.connect("netA", mode + "1", ConnectRequest())
    with pytest.raises(Conflict, match="side"):
        engine.remove_sandbox("web")


def test_store_failure_changes_nothing_in_the_kernel(engine, store, kernel):
    calls = len(kernel.calls)
    store.fail_next = StoreError("disk full")
    with pytest.raises(StoreError):
        engine.create_network(NetworkRequest.build("netA"))
    assert len(kernel.calls) == calls
    assert "netA" not in {n.name for n in engine.registry.networks.values()}


def test_state_survives_a_restart(tmp_path, kernel):
    db = str(tmp_path / "state.db")
    eng = Engine(Registry(SQLiteStore(db)), kernel, engine_config(tmp_path))
    eng.start()
    eng.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    eng.create_sandbox(SandboxRequest(name="a", network_mode="netA"))
    eng.create_sandbox(SandboxRequest(name="b", network_mode="netA"))
    eng.disconnect("netA", "b")
    before = eng.registry.snapshot()
    again = Engine(Registry(SQLiteStore(db)), kernel, engine_config(tmp_path))
    again.start()
    after = again.registry.snapshot()
    assert after.networks == before.networks and after.endpoints == before.endpoints
    # the cursor survived too: the next address continues after .3, not at the released one
    assert str(again.connect("netA", "b", ConnectRequest()).ipv4) == "10.1.0.4"


def test_reconcile_rolls_back_an_interrupted_connect(engine, kernel):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    sid = _sandbox(engine, "a")
    # what a crash after the intent and the veth, before the final commit, leaves behind
    ghost = {
        "id": "f" * 64,
        "network_id": engine.registry.find_network("netA").id,
        "sandbox_id": sid,
        "ifname": "eth0",
        "host_ifname": "vethfffffffffff",
        "mac": "02:42:0a:01:00:02",
        "ipv4": "10.1.0.2",
        "ipv6": None,
        "aliases": [],
        "is_gateway": True,
    }
    engine.registry.commit([Put("intent", "i1", {"op": "connect", "endpoint": ghost})])
    kernel.links.add("vethfffffffffff")
    repaired = engine.reconcile()
    assert any("rolled back interrupted connect" in r for r in repaired)
    assert "vethfffffffffff" not in kernel.links and not engine.registry.intents
    assert str(engine.connect("netA", "a", ConnectRequest()).ipv4) == "10.1.0.2"


def test_reconcile_cleans_a_vanished_namespace_and_restores_links(engine, kernel):
    net = engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    gone = engine.create_sandbox(SandboxRequest(name="gone", network_mode="netA"))
    stay = engine.create_sandbox(SandboxRequest(name="stay", network_mode="netA"))
    (stay_ep,) = engine.registry.endpoints_of(stay.id)
    kernel.namespaces.pop(gone.netns_path)
    kernel.links.discard(net.bridge)
    kernel.links.discard(stay_ep.host_ifname)
    repaired = engine.reconcile()
    assert gone.id not in engine.registry.sandboxes
    assert any("vanished" in r and "10.1.0.2" in r for r in repaired)
    assert net.bridge in kernel.links and stay_ep.host_ifname in kernel.links
    assert any("missing: recreated" in r for r in repaired)


def test_prune_removes_only_unused_user_networks(engine):
    engine.create_network(NetworkRequest.build("used", subnet="10.1.0.0/24"))
    engine.create_network(NetworkRequest.build("idle", subnet="10.2.0.0/24"))
    _sandbox(engine, "a", network_mode="used")
    assert engine.prune_networks() == ["idle"]
    assert {n.name for n in engine.registry.networks.values()} == {"bridge", "used"}


def test_a_requested_address_does_not_move_serial_allocation(engine):
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    for name in ("a", "b", "c"):
        _sandbox(engine, name)
    assert str(engine.connect("netA", "a", ConnectRequest()).ipv4) == "10.1.0.2"
    assert str(engine.connect("netA", "b", ConnectRequest(ipv4="10.1.0.50")).ipv4) == "10.1.0.50"
    assert str(engine.connect("netA", "c", ConnectRequest()).ipv4) == "10.1.0.3"
