"""`/sandboxes`: create (with every field), inspect, list, remove, errors, concurrency."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from netcore.engine import Engine
from netcore.kernel.fake import FakeKernel
from netcore.requests import NetworkRequest

from .responses import error_message, json_body

pytestmark = pytest.mark.asyncio


async def _create(api: Any, name: str, **body: Any) -> str:
    resp = await api.post("/v1.41/sandboxes", json={"Name": name, **body})
    return (await json_body(resp, 201))["Id"]


@pytest.fixture
def net(engine: Engine) -> str:
    return engine.create_network(NetworkRequest.build("apps", subnet="10.70.0.0/24")).id


async def test_create_minimal_then_inspect_by_name_id_and_prefix(api, engine):
    sandbox_id = await _create(api, "plain")
    for ref in ("plain", sandbox_id, sandbox_id[:8]):
        body = await json_body(await api.get(f"/sandboxes/{ref}"), 200)
        assert body["Id"] == sandbox_id
    assert body["Name"] == "plain" and body["NetNS"] == "/run/netns/plain"
    assert body["Owned"] is True and body["NetworkMode"] == "bridge"
    assert body["Networks"] == {} and body["Ports"] == {}
    assert body["ResolvConfPath"].endswith("/plain/resolv.conf")
    assert body["HostsPath"].endswith("/plain/hosts")
    assert "/run/netns/plain" in engine.kernel.namespaces


async def test_create_with_every_field(api, net):
    sandbox_id = await _create(
        api,
        "full",
        Hostname="full.example",
        Dns=["9.9.9.9"],
        DnsSearch=["corp.example"],
        DnsOptions=["ndots:2"],
        ExtraHosts=["db:10.1.2.3", "v6host:fd00::5", "new=10.1.2.4"],
        PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{}]},
        NetworkMode="apps",
        EndpointConfig={"Aliases": ["www"], "IPAMConfig": {"IPv4Address": "10.70.0.50"}},
        FutureField=[1, 2],  # unknown fields are ignored
        Labels={"team": "web", "tier": ""},
    )
    body = await json_body(await api.get("/sandboxes/full"), 200)
    assert body["Labels"] == {"team": "web", "tier": ""}
    assert body["Hostname"] == "full.example"
    assert body["Dns"] == ["9.9.9.9"] and body["DnsSearch"] == ["corp.example"]
    assert body["DnsOptions"] == ["ndots:2"]
    assert body["ExtraHosts"] == ["db:10.1.2.3", "v6host:fd00::5", "new:10.1.2.4"]
    assert body["Ports"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": "53"}],
    }
    endpoint = body["Networks"]["apps"]
    assert endpoint["IPAddress"] == "10.70.0.50" and endpoint["IPPrefixLen"] == 24
    assert endpoint["Gateway"] == "10.70.0.1" and endpoint["Aliases"] == ["www"]
    assert endpoint["NetworkID"] == net and endpoint["InterfaceName"] == "eth0"
    containers = (await json_body(await api.get("/networks/apps"), 200))["Containers"]
    assert containers[sandbox_id]["IPv4Address"] == "10.70.0.50/24"


async def test_two_sandboxes_on_a_network_get_distinct_addresses(api, net):
    one = await _create(api, "one", NetworkMode="apps")
    await _create(api, "two", NetworkMode=net)  # by full id
    await _create(api, "three", NetworkMode=f"container:{one}")
    listed = await json_body(await api.get("/sandboxes"), 200)
    addresses = {s["Name"]: s["Networks"]["apps"]["IPAddress"] for s in listed}
    assert addresses == {"one": "10.70.0.2", "two": "10.70.0.3", "three": "10.70.0.2"}


async def test_modes_none_host_and_container(api, engine, net):
    await _create(api, "iso", NetworkMode="none")
    host_id = await _create(api, "hosty", NetworkMode="host")
    await _create(api, "main", NetworkMode="apps")
    await _create(api, "side", NetworkMode="container:main")
    side = await json_body(await api.get("/sandboxes/side"), 200)
    assert side["NetworkMode"] == "container:main" and side["NetNS"] == "/run/netns/main"
    assert side["Networks"]["apps"]["IPAddress"] == "10.70.0.2"  # it shares main's namespace
    hosty = await json_body(await api.get("/sandboxes/hosty"), 200)
    assert hosty["NetworkMode"] == "host" and hosty["ResolvConfPath"] == ""
    host_net = await json_body(await api.get("/networks/host"), 200)
    assert list(host_net["Containers"]) == [host_id]
    none_net = await json_body(await api.get("/networks/none"), 200)
    assert [c["Name"] for c in none_net["Containers"].values()] == ["iso"]
    await error_message(
        await api.post("/networks/apps/connect", json={"Container": "iso"}), 409, "none mode"
    )
    await error_message(await api.delete("/sandboxes/main"), 409, "side")


async def test_adopted_namespace(api, kernel: FakeKernel):
    kernel.add_foreign_netns("/proc/4242/ns/net")
    await _create(api, "adopted", NetNS="/proc/4242/ns/net")
    body = await json_body(await api.get("/sandboxes/adopted"), 200)
    assert body["Owned"] is False and body["NetNS"] == "/proc/4242/ns/net"
    await error_message(
        await api.post("/sandboxes", json={"Name": "ghost", "NetNS": "/proc/1/ns/nope"}),
        404, "not a network namespace",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b'"text"', "body"),
        (b"{}", "Name"),
        (b'{"Name": ["x"]}', "Name"),
        (b'{"Name": "../x"}', "Name"),
        (b'{"Name": "a;b"}', "Name"),
        (json.dumps({"Name": "s" * 300}).encode(), "Name"),
        ('{"Name": "ボックス"}'.encode(), "Name"),
        (b'{"Name": "ok", "Hostname": "bad host"}', "Hostname"),
        (b'{"Name": "ok", "Hostname": 5}', "Hostname"),
        (b'{"Name": "ok", "NetNS": "relative/path"}', "NetNS"),
        (b'{"Name": "ok", "NetNS": "/run/netns/../../etc"}', "NetNS"),
        (b'{"Name": "ok", "Dns": "1.1.1.1"}', "Dns"),
        (b'{"Name": "ok", "Dns": ["resolver"]}', "Dns"),
        (b'{"Name": "ok", "DnsSearch": ["a b"]}', "DnsSearch"),
        (b'{"Name": "ok", "DnsOptions": [""]}', "DnsOptions"),
        (b'{"Name": "ok", "ExtraHosts": ["nocolon"]}', "ExtraHosts"),
        (b'{"Name": "ok", "ExtraHosts": ["h:notanip"]}', "ExtraHosts"),
        (b'{"Name": "ok", "ExtraHosts": [1]}', "ExtraHosts"),
        (b'{"Name": "ok", "Labels": ["a=b"]}', "Labels"),
        (b'{"Name": "ok", "Labels": {"a": 1}}', "Labels"),
        (b'{"Name": "ok", "Labels": {"": "x"}}', "Labels"),
        (b'{"Name": "ok", "PortBindings": []}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"80/tcp": 5}}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"80/tcp": [{"HostPort": 80}]}}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"80/tcp": [{"HostIp": 5}]}}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"x/tcp": [{}]}}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"80/icmp": [{}]}}', "PortBindings"),
        (b'{"Name": "ok", "PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}',
         "PortBindings"),
        (b'{"Name": "ok", "NetworkMode": 3}', "NetworkMode"),
        (b'{"Name": "ok", "NetworkMode": "../etc"}', "NetworkMode"),
        (b'{"Name": "ok", "NetworkMode": "container:a;b"}', "NetworkMode"),
        (b'{"Name": "ok", "NetworkMode": "none", "EndpointConfig": {"Aliases": ["x"]}}',
         "EndpointConfig"),
        (b'{"Name": "ok", "NetworkMode": "apps", "EndpointConfig": {"Aliases": [1]}}',
         "EndpointConfig.Aliases"),
    ],
)  # fmt: skip
async def test_bad_bodies_are_400_naming_the_field(api, engine, net, body, field):
    resp = await api.post("/sandboxes", data=body)
    await error_message(resp, 400, field)
    assert not engine.registry.sandboxes


async def test_conflicts_and_unknowns(api, engine, net):
    await _create(api, "dup")
    await error_message(await api.post("/sandboxes", json={"Name": "dup"}), 409, "dup")
    await error_message(await api.get("/sandboxes/nobody"), 404, "No such sandbox: nobody")
    await error_message(await api.delete("/sandboxes/nobody"), 404)
    await error_message(
        await api.post("/sandboxes", json={"Name": "lost", "NetworkMode": "nonet"}), 404, "nonet"
    )
    await error_message(
        await api.post("/sandboxes", json={"Name": "lost", "NetworkMode": "container:nobody"}),
        404,
    )
    await _create(api, "first", NetworkMode="apps", EndpointConfig={
        "IPAMConfig": {"IPv4Address": "10.70.0.9"}})  # fmt: skip
    taken = {"Name": "second", "NetworkMode": "apps",
             "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.70.0.9"}}}  # fmt: skip
    await error_message(await api.post("/sandboxes", json=taken), 409, "10.70.0.9")
    # Nothing half-done: the failed creates left no sandbox and no namespace behind.
    assert sorted(s.name for s in engine.registry.sandboxes.values()) == ["dup", "first"]
    assert sorted(engine.kernel.namespaces) == ["/run/netns/dup", "/run/netns/first"]


async def test_remove_disconnects_and_deletes_the_namespace(api, engine, net):
    await _create(api, "temp", NetworkMode="apps")
    assert engine.registry.endpoints
    resp = await api.delete("/v1.41/sandboxes/temp")
    assert resp.status == 204
    assert not engine.registry.endpoints and not engine.registry.sandboxes
    assert "/run/netns/temp" not in engine.kernel.namespaces
    await error_message(await api.get("/sandboxes/temp"), 404)


async def test_concurrent_creates_of_one_name_exactly_one_wins(api, engine, net):
    responses = await asyncio.gather(
        *(api.post("/sandboxes", json={"Name": "racer", "NetworkMode": "apps"}) for _ in range(10))
    )
    assert sorted(r.status for r in responses) == [201] + [409] * 9
    assert [s.name for s in engine.registry.sandboxes.values()] == ["racer"]
    assert len(engine.registry.endpoints) == 1


async def test_list_filters(api):
    await _create(api, "alpha", Labels={"team": "web"})
    beta = await _create(api, "beta", Labels={"team": "db"})
    for wanted, names in (("team", ["alpha", "beta"]), ("team=db", ["beta"]), ("x", [])):
        resp = await api.get("/sandboxes", params={"filters": json.dumps({"label": [wanted]})})
        assert [s["Name"] for s in await json_body(resp, 200)] == names
    resp = await api.get("/sandboxes", params={"filters": '{"name":{"alp":true}}'})
    assert [s["Name"] for s in await json_body(resp, 200)] == ["alpha"]
    resp = await api.get("/sandboxes", params={"filters": json.dumps({"id": [beta[:6]]})})
    assert [s["Name"] for s in await json_body(resp, 200)] == ["beta"]
    await error_message(await api.get("/sandboxes", params={"filters": '{"x":{"1":true}}'}), 400)
