"""Reconcile settles each kind of interrupted change: a daemon killed inside a change restarts
on the same store and kernel (a FakeKernel) and must roll creations back and complete removals.

A crash is simulated by a `Crash` (not an Exception, like SIGKILL it skips every handler but
`finally`) raised by the store's commit of the result (creations: the kernel work is done, the
result is not committed) or by the kernel's first step (removals: committed, kernel untouched).
"""

from __future__ import annotations

import os

import pytest

from netcore.changes import Changes
from netcore.engine import Engine, EngineConfig
from netcore.intents import Disconnect, UnknownIntent, record
from netcore.kernel.fake import FakeKernel
from netcore.reconcile import reconcile
from netcore.registry import Registry
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from netcore.store.base import Put
from netcore.store.memory import MemoryStore


class Crash(BaseException):
    """The daemon died here."""


class CrashingStore(MemoryStore):
    """Dies at the first commit that writes an object of `crash_on_put` (its result)."""

    crash_on_put: str | None = None

    def commit(self, ops):
        if any(isinstance(op, Put) and op.kind == self.crash_on_put for op in ops):
            self.crash_on_put = None
            raise Crash
        super().commit(ops)


@pytest.fixture
def world(tmp_path):
    """A started daemon on a store and kernel that outlive it, and how to restart it."""
    store, kernel = CrashingStore(), FakeKernel()
    config = EngineConfig(state_dir=str(tmp_path / "state"), etc_netns_dir=str(tmp_path / "etc"))

    def boot() -> Engine:
        engine = Engine(Registry(store), kernel, config)
        engine.start()
        return engine

    return store, kernel, boot


def _crash_kernel_step(kernel: FakeKernel, monkeypatch, step: str) -> None:
    def die(*_args):
        raise Crash

    monkeypatch.setattr(kernel, step, die)


def test_an_interrupted_network_create_is_rolled_back(world):
    store, kernel, boot = world
    engine = boot()
    store.crash_on_put = "network"
    with pytest.raises(Crash):
        engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24", bridge="brA"))
    assert "brA" in kernel.links  # the kernel work was done, the result not committed
    after = boot()
    assert "brA" not in kernel.links and not after.registry.intents
    assert [n.name for n in after.registry.networks.values()] == ["bridge"]
    assert "rolled back interrupted create of network netA" in after.repairs
    assert "brA" not in kernel.nft[None]


def test_an_interrupted_sandbox_create_is_rolled_back(world):
    store, kernel, boot = world
    engine = boot()
    store.crash_on_put = "sandbox"
    with pytest.raises(Crash):
        engine.create_sandbox(SandboxRequest(name="web"))
    assert "/run/netns/web" in kernel.namespaces
    after = boot()
    assert "/run/netns/web" not in kernel.namespaces and not after.registry.sandboxes
    assert "rolled back interrupted create of sandbox web" in after.repairs


def test_an_interrupted_connect_is_rolled_back_and_its_address_released(world):
    store, kernel, boot = world
    engine = boot()
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    sandbox = engine.create_sandbox(SandboxRequest(name="web"))
    store.crash_on_put = "endpoint"
    with pytest.raises(Crash):
        engine.connect("netA", "web", ConnectRequest())
    ((_, intent),) = engine.registry.intents.items()
    veth = intent.endpoint.host_ifname
    assert veth in kernel.links and "eth0" in kernel.namespaces[sandbox.netns_path]
    kernel.links.discard(veth)  # the host end gone, the sandbox end left behind
    after = boot()
    assert "eth0" not in kernel.namespaces[sandbox.netns_path]
    assert not after.registry.endpoints and not after.registry.intents
    assert "rolled back interrupted connect (10.1.0.2 released)" in after.repairs
    assert str(after.connect("netA", "web", ConnectRequest()).ipv4) == "10.1.0.2"


def test_an_interrupted_disconnect_is_completed_and_the_route_moves(world, monkeypatch):
    _, kernel, boot = world
    engine = boot()
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    engine.create_network(NetworkRequest.build("netB", subnet="10.2.0.0/24"))
    sandbox = engine.create_sandbox(SandboxRequest(name="web", network_mode="netA"))
    engine.connect("netB", "web", ConnectRequest())
    leaving = engine.registry.endpoint(engine.registry.find_network("netA").id, sandbox.id)
    with monkeypatch.context() as m:
        _crash_kernel_step(kernel, m, "delete_link")
        with pytest.raises(Crash):
            engine.disconnect("netA", "web")
    assert leaving.host_ifname in kernel.links  # reported done, kernel untouched
    assert kernel.routes[sandbox.netns_path][0] == "10.1.0.1"
    after = boot()
    assert leaving.host_ifname not in kernel.links and not after.registry.intents
    assert kernel.routes[sandbox.netns_path][0] == "10.2.0.1"
    assert "completed interrupted disconnect of web" in after.repairs
    (stays,) = after.registry.endpoints_of(sandbox.id)
    assert stays.is_gateway


def test_a_disconnect_of_a_sandbox_removed_since_only_deletes_the_veth(world):
    _, kernel, boot = world
    engine = boot()
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24"))
    sandbox = engine.create_sandbox(SandboxRequest(name="web", network_mode="netA"))
    (endpoint,) = engine.registry.endpoints_of(sandbox.id)
    engine.remove_sandbox("web")
    kernel.links.add(endpoint.host_ifname)  # as if its deletion had been interrupted
    engine.registry.commit([record("i1", Disconnect(endpoint))])
    after = boot()
    assert endpoint.host_ifname not in kernel.links and not after.registry.intents
    assert not any("disconnect" in line for line in after.repairs)


def test_an_interrupted_network_removal_is_completed(world, monkeypatch):
    _, kernel, boot = world
    engine = boot()
    engine.create_network(NetworkRequest.build("netA", subnet="10.1.0.0/24", bridge="brA"))
    with monkeypatch.context() as m:
        _crash_kernel_step(kernel, m, "delete_link")
        with pytest.raises(Crash):
            engine.remove_network("netA")
    assert "brA" in kernel.links
    after = boot()
    assert "brA" not in kernel.links and not after.registry.intents
    assert "completed interrupted removal of network netA" in after.repairs
    assert "brA" not in kernel.nft[None]


def test_an_interrupted_sandbox_removal_is_completed(world, monkeypatch):
    _, kernel, boot = world
    engine = boot()
    sandbox = engine.create_sandbox(SandboxRequest(name="web"))
    files = os.path.dirname(sandbox.resolv_conf_path)
    os.makedirs(files)
    with monkeypatch.context() as m:
        _crash_kernel_step(kernel, m, "delete_netns")
        with pytest.raises(Crash):
            engine.remove_sandbox("web")
    assert sandbox.netns_path in kernel.namespaces
    after = boot()
    assert sandbox.netns_path not in kernel.namespaces and not os.path.exists(files)
    assert "completed interrupted removal of sandbox web" in after.repairs
    assert not after.registry.intents


def test_an_intent_of_an_unknown_kind_is_dropped_without_kernel_work(world):
    store, kernel, boot = world
    engine = boot()
    engine.registry.commit([record("i1", UnknownIntent("resize", {"op": "resize", "n": 1}))])
    kernel.calls.clear()
    registry = Registry(store)
    repaired = reconcile(registry, kernel, Changes(registry, kernel))
    assert not registry.intents and repaired == []
    assert not any(c.startswith(("delete_link", "attach")) for c in kernel.calls)
