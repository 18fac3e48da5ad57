"""The etcd store against a real etcd (in a namespace of its own, on its loopback): round trip,
compare-and-swap claims between two hosts, the watch, the lease, an unreachable cluster."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable

import pytest

from netcore.errors import AllocationConflict, Conflict
from netcore.kernel import netns
from netcore.store.base import Delete, Put
from netcore.store.etcd import ClusterOptions, EtcdStore
from netcore.store.etcd_client import EtcdUnavailable
from tests.support.requires import require_binary

from .harness import run

pytestmark = pytest.mark.integration
URL = "127.0.0.1:2379/t"


@pytest.fixture
def etcd_ns(tmp_path):
    require_binary("etcd", "apt-get install etcd-server")
    name = f"de{secrets.token_hex(3)}"
    path = f"/run/netns/{name}"
    run("ip", "netns", "add", name)
    log = open(tmp_path / "etcd.log", "ab")  # noqa: SIM115 - closed below
    proc = None
    try:
        run("nsenter", f"--net={path}", "ip", "link", "set", "lo", "up")
        proc = subprocess.Popen(
            ["nsenter", f"--net={path}", "etcd", "--data-dir", str(tmp_path / "data"),
             "--listen-client-urls", "http://127.0.0.1:2379",
             "--advertise-client-urls", "http://127.0.0.1:2379",
             "--listen-peer-urls", "http://127.0.0.1:2380"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while run("nsenter", f"--net={path}", "etcdctl", "put", "/p", "1", check=False).returncode:
            assert time.monotonic() < deadline, (tmp_path / "etcd.log").read_text()[-2000:]
            time.sleep(0.2)
        yield path
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        log.close()
        run("ip", "netns", "delete", name, check=False)


def _inside(path: str, fn: Callable[[], object]) -> object:
    """Run `fn` on a thread in the namespace; threads it starts (watch, lease) stay there."""
    return netns.run_in(path, fn)


def _open(host: str, ttl: int = 3) -> EtcdStore:
    return EtcdStore.from_url_path(
        URL, ClusterOptions(host_id=host, advertise_addr=f"10.0.0.{ord(host)}", host_ttl_s=ttl)
    )


NET = "n" * 64
OVERLAY = {"id": NET, "name": "ov", "driver": "overlay", "vni": 4096}


def _endpoint(eid: str, ip: str) -> dict:
    return {"id": eid, "network_id": NET, "sandbox_id": "s" + eid[1:], "ipv4": ip, "vtep": "x"}


def _until(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_round_trip_claims_watch_and_lease(etcd_ns):
    def body() -> None:
        a = _open("a")
        a.commit([Put("sandbox", "s1", {"id": "s1", "name": "web"}), Put("network", NET, OVERLAY)])
        b = _open("b")
        seen: list = []
        b.follow(lambda changes, complete_at: seen.extend(changes))
        assert b.load()["network"][NET]["name"] == "ov"
        # Both hosts plan 10.50.0.2 at once: the second claim fails and b learns the first.
        a.commit([Put("intent", "i1", {"op": "connect", "endpoint": _endpoint("e1", "10.50.0.2")})])
        with pytest.raises(AllocationConflict):
            b.commit(
                [Put("intent", "i2", {"op": "connect", "endpoint": _endpoint("e2", "10.50.0.2")})]
            )
        assert any(op.kind == "remote_claim" and op.id.endswith("10.50.0.2") for op, _ in seen)
        a.commit([Put("endpoint", "e1", _endpoint("e1", "10.50.0.2")), Delete("intent", "i1")])
        assert _until(lambda: any(op.kind == "remote_endpoint" for op, _ in seen), 1)
        # a "dies": no more keep-alives, no revoke. Its endpoint leaves after the TTL.
        a.lease._stop.set()
        a._follower = None
        started = time.monotonic()
        assert _until(
            lambda: any(isinstance(op, Delete) and op.kind == "remote_endpoint" for op, _ in seen),
            8,
        )
        assert time.monotonic() - started < 3 + 2
        # Restarted, a takes its host id back and re-claims the same address.
        again = _open("a")
        assert again.load()["endpoint"]["e1"]["ipv4"] == "10.50.0.2"
        assert "e1" in again.own_endpoints
        with pytest.raises(Conflict, match="another dnsd holds --host-id a"):
            _open("a", ttl=2)
        again.close()
        b.close()

    _inside(etcd_ns, body)


def test_unreachable_cluster_fails_fast(etcd_ns):
    def body() -> None:
        started = time.monotonic()
        with pytest.raises(EtcdUnavailable, match="etcd is unreachable"):
            EtcdStore.from_url_path("127.0.0.1:2399", ClusterOptions(host_id="z"))
        assert time.monotonic() - started < 5

    _inside(etcd_ns, body)


def test_own_overlays_back_to_back_are_no_race_while_the_watch_lags(etcd_ns):
    """The subnet check of a create is compared against what this host knows of the overlays;
    its own previous create counts as known at once, however slow its watch is."""

    def body() -> None:
        a = _open("a")
        b = _open("b")
        a.load()

        def slow(changes, complete_at) -> None:
            time.sleep(1)  # the watch of a delivers late

        a.follow(slow)

        def overlay(tag: str, vni: int) -> Put:
            net = tag * 64
            return Put("network", net, {**OVERLAY, "id": net, "name": f"o{tag}", "vni": vni})

        for i in range(5):
            a.commit([overlay(str(i), 4100 + i)])
        # Another host's overlay, created since a last looked, still fails a's next create.
        b.load()
        b.commit([overlay("b", 4200)])
        with pytest.raises(AllocationConflict):
            a.commit([overlay("c", 4300)])
        a.close()
        b.close()

    _inside(etcd_ns, body)


def test_overlay_records_are_durable_claimed_once_and_go_with_their_network(etcd_ns):
    """Against etcd's own transaction rules: the record's compare-and-swap, and a network
    removal that deletes its records both one by one and by prefix in one transaction."""

    def record(rid: str, value: str) -> Put:
        body = {"id": rid, "network_id": NET, "name": "db", "type": "A", "value": value}
        return Put("record", rid, body)

    def body() -> None:
        a, b = _open("a"), _open("b")
        a.load()
        a.commit([Put("network", NET, OVERLAY)])
        b.load()
        a.commit([record("r1", "10.50.0.9")])
        with pytest.raises(AllocationConflict):  # b has not seen r1: its claim of it fails
            b.commit([record("r1", "10.50.0.9")])
        assert "r1" in b.load()["record"]  # on no lease: a's going does not take it
        a.close()
        c = _open("c")
        assert c.load()["record"]["r1"]["value"] == "10.50.0.9"
        c.commit([record("r2", "10.50.0.10")])
        c.commit([Delete("network", NET), Delete("record", "r1")])
        kvs, _ = c.client.range("/t/global/records/", "/t/global/records0")
        assert kvs == []
        b.close()
        c.close()

    _inside(etcd_ns, body)
