"""Records of overlay networks are the cluster's: written under `global/records/` (on no
lease), followed and loaded by every host, compared-and-swapped against concurrent changes,
removed with their overlay. Records of bridge networks stay the host's own. Several hosts share
one in-memory etcd (tests/fakes/etcd.py); `sync` plays each host's watch."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from dnsd.records import RecordRequest, plan_add, plan_remove
from netcore.engine import Engine, EngineConfig
from netcore.errors import Conflict, InvalidArgument, NetworkNotFound, NotFound
from netcore.kernel.fake import FakeKernel
from netcore.registry import Registry
from netcore.requests import NetworkRequest
from netcore.store.base import Put
from netcore.store.etcd import ClusterOptions, EtcdStore
from tests.fakes.etcd import FakeEtcd


@dataclass
class Host:
    store: EtcdStore
    engine: Engine
    since: int

    @property
    def registry(self) -> Registry:
        return self.engine.registry

    def sync(self) -> None:
        """What this host's watch delivers of everything written so far."""
        self.since = self.store.client.pump(self.store, self.since)

    def add(self, network: str, name: str, type_: str, value: str) -> None:
        req = RecordRequest.build(name, type_, value, None)
        net = self.registry.find_network(network)
        self.engine.commit_planned(lambda registry: plan_add(registry, net, req))

    def remove(self, network: str, name: str, type_: str) -> None:
        net = self.registry.find_network(network)
        self.engine.commit_planned(lambda registry: plan_remove(registry, net, name, type_, None))

    def names(self, network: str) -> list[tuple[str, str, str]]:
        net = self.registry.find_network(network)
        return sorted((r.name, r.type, r.value) for r in self.registry.records_on(net.id))


@pytest.fixture
def cluster(tmp_path):
    etcd = FakeEtcd()
    hosts: dict[str, Host] = {}

    def start(letter: str) -> Host:
        options = ClusterOptions(host_id=letter, advertise_addr=f"10.231.0.{ord(letter)}")
        store = EtcdStore(etcd, "/dnsd", options)  # type: ignore[arg-type] - the fake client
        config = EngineConfig(
            state_dir=str(tmp_path / letter),
            etc_netns_dir=str(tmp_path / letter / "etc"),
            default_network=False,
            advertise_addr=options.advertise_addr,
            host_id=letter,
        )
        engine = Engine(Registry(store), FakeKernel(), config)
        store._apply = engine.registry.apply_remote  # what `follow` sets, without its thread
        engine.start()
        hosts[letter] = Host(store, engine, store.seen_revision)
        return hosts[letter]

    a, b = start("a"), start("b")
    a.engine.create_network(NetworkRequest.build("ov", subnet="10.50.0.0/24", driver="overlay"))
    a.engine.create_network(NetworkRequest.build("loc", subnet="10.60.0.0/24"))
    b.sync()
    yield etcd, start, a, b
    for host in hosts.values():
        host.store.close()


def _keys(etcd: FakeEtcd, part: str) -> list[str]:
    return sorted(k for k in etcd.kvs if part in k)


def test_overlay_record_is_global_durable_and_followed_a_bridge_one_stays_local(cluster):
    etcd, start, a, b = cluster
    a.add("ov", "db", "A", "10.50.0.200")
    a.add("loc", "cache", "A", "10.60.0.9")
    ov = a.registry.find_network("ov")
    (key,) = _keys(etcd, "/global/records/")
    assert key.startswith(f"/dnsd/global/records/{ov.id}/")
    assert etcd.kvs[key].lease == 0  # on no host's lease: it outlives its creator
    assert json.loads(etcd.kvs[key].value)["name"] == "db"
    assert len(_keys(etcd, "/hosts/a/record/")) == 1  # the bridge's, this host's own
    b.sync()
    assert b.names("ov") == [("db", "A", "10.50.0.200")]
    assert [r.name for r in b.registry.snapshot().records] == ["db"]  # answered on b too
    with pytest.raises(NetworkNotFound):
        b.names("loc")
    c = start("c")  # a host started later (or restarted) loads it
    assert c.names("ov") == [("db", "A", "10.50.0.200")]


def test_removed_on_another_host_everywhere(cluster):
    etcd, _start, a, b = cluster
    a.add("ov", "db", "A", "10.50.0.200")
    b.sync()
    b.remove("ov", "db", "A")
    assert _keys(etcd, "/global/records/") == []
    a.sync()
    assert a.names("ov") == [] and a.registry.snapshot().records == ()


def test_own_echoes_never_bring_back_a_removed_record(cluster):
    """Added, removed and added again (another type) faster than the watch: the late echoes,
    one batch at a time, change nothing."""
    etcd, _start, a, _b = cluster
    a.sync()
    a.add("ov", "db", "A", "10.50.0.200")
    a.remove("ov", "db", "A")
    a.add("ov", "db", "TXT", '"v=1"')
    revision = a.registry.revision
    while a.since < etcd.revision:
        a.since = etcd.pump(a.store, a.since, until=a.since + 1)
        assert a.names("ov") == [("db", "TXT", '"v=1"')]
    assert a.registry.revision == revision  # nothing was applied again
    assert a.store.records._written == {}  # every echo seen: the bookkeeping is empty


def test_same_record_on_two_hosts_at_once_one_wins_the_other_gets_409(cluster):
    etcd, _start, a, b = cluster
    a.add("ov", "db", "A", "10.50.0.200")
    # b has not seen it yet: its plan passes, the compare-and-swap refuses, b plans again
    # from what the refusal taught it and answers 409.
    with pytest.raises(Conflict, match="already exists on network ov"):
        b.add("ov", "db", "A", "10.50.0.200")
    assert len(_keys(etcd, "/global/records/")) == 1
    # Another value of the same name and type is an RRset, as on one host.
    b.add("ov", "db", "A", "10.50.0.201")
    a.sync()
    assert [v for _, _, v in a.names("ov")] == ["10.50.0.200", "10.50.0.201"]


def test_cname_beside_a_record_another_host_just_added_is_refused(cluster):
    etcd, _start, a, b = cluster
    a.add("ov", "db", "A", "10.50.0.200")
    with pytest.raises(InvalidArgument, match="a CNAME stands alone"):
        b.add("ov", "db", "CNAME", "db.example.")
    a.add("ov", "web", "CNAME", "web.example.")
    with pytest.raises(InvalidArgument, match="a CNAME stands alone"):
        b.add("ov", "web.ov", "TXT", '"x"')  # the same name, spelled with the network
    assert len(_keys(etcd, "/global/records/")) == 2


def test_record_on_an_overlay_another_host_removed_meanwhile_is_not_found(cluster):
    etcd, _start, a, b = cluster
    a.add("ov", "db", "A", "10.50.0.200")
    b.sync()
    b.engine.remove_network("ov")
    assert _keys(etcd, "/global/records/") == []  # with the network, in its transaction
    net = a.registry.find_network("ov")
    req = RecordRequest.build("web", "A", "10.50.0.9", None)
    with pytest.raises(NotFound, match="network ov not found"):
        a.engine.commit_planned(lambda registry: plan_add(registry, net, req))
    assert _keys(etcd, "/global/records/") == []
    assert net.id not in a.registry.networks and a.registry.records == {}


def test_record_clashing_with_another_hosts_sandbox_name_is_refused(cluster):
    _etcd, _start, a, _b = cluster
    ov = a.registry.find_network("ov")
    eid = "e1" + "0" * 62
    remote = {
        "host": "b",
        "endpoint": {
            "id": eid,
            "network_id": ov.id,
            "sandbox_id": "f" * 64,
            "ifname": "eth0",
            "host_ifname": "veth",
            "mac": "02:42:0a:32:00:05",
            "ipv4": "10.50.0.5",
            "aliases": ["api"],
            "vtep": "10.231.0.98",
        },
        "sandbox": {"id": "f" * 64, "name": "web", "hostname": ""},
    }
    a.registry.apply_remote([(Put("remote_endpoint", eid, remote), 10_000)])
    for name in ("web", "api.ov"):
        with pytest.raises(InvalidArgument, match="is a name of sandbox web"):
            a.add("ov", name, "A", "10.50.0.200")
    a.add("ov", "web", "TXT", '"beside a name is fine"')


def test_resync_drops_overlay_records_the_cluster_lost_and_keeps_local_ones(cluster):
    etcd, _start, a, b = cluster
    b.add("ov", "db", "A", "10.50.0.200")
    a.add("loc", "cache", "A", "10.60.0.9")
    a.sync()
    (key,) = _keys(etcd, "/global/records/")
    del etcd.kvs[key]  # lost while a's watch was away (a compaction hides the delete)
    a.store.resync()
    assert a.names("ov") == [] and a.names("loc") == [("cache", "A", "10.60.0.9")]
