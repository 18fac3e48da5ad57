"""`/networks`, `/_ping`, `/version`, errors and auth, through aiohttp's test client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dnsd.api import create_app, start_unix
from dnsd.api.handlers_networks import parse_until
from netcore.engine import Engine
from netcore.errors import Conflict, InvalidArgument, NetlinkError, StoreError
from netcore.kernel.fake import FakeKernel
from netcore.requests import SandboxRequest
from netcore.store.memory import MemoryStore

from .responses import error_message, json_body

pytestmark = pytest.mark.asyncio


async def _create(api: TestClient, name: str, **body: Any) -> str:
    resp = await api.post("/networks/create", json={"Name": name, **body})
    return (await json_body(resp, 201))["Id"]


def _sandbox(engine: Engine, name: str) -> str:
    return engine.create_sandbox(SandboxRequest(name=name)).id


# --- ping, version, prefixes ---


async def test_ping_answers_ok_with_the_api_version_under_any_prefix(api):
    for path in ("/_ping", "/v1.41/_ping", "/v1.24/_ping", "/v1.50/_ping"):
        resp = await api.get(path)
        assert resp.status == 200 and await resp.text() == "OK"
        assert resp.headers["API-Version"] == "1.41"
        assert resp.headers["OSType"] == "linux"
    head = await api.head("/_ping")
    assert head.status == 200 and head.headers["API-Version"] == "1.41"


async def test_version_has_dockers_shape(api):
    body = await json_body(await api.get("/v1.41/version"), 200)
    assert body["ApiVersion"] == "1.41" and body["MinAPIVersion"] == "1.24"
    assert body["Version"] == "0.0.0-test" and body["Os"] == "linux" and body["Arch"]
    assert body["Components"][0]["Name"] == "Engine"


async def test_too_old_api_version_is_refused(api):
    await error_message(await api.get("/v1.12/networks"), 400, "too old", "1.24")


async def test_unknown_path_and_wrong_method_answer_in_dockers_shape(api):
    assert await error_message(await api.get("/v1.41/nothing/here"), 404) == "page not found"
    await error_message(await api.put("/networks/create"), 405)


# --- create, list, inspect ---


async def test_create_then_inspect_by_name_id_and_prefix(api):
    net_id = await _create(
        api,
        "front",
        CheckDuplicate=True,
        Driver="bridge",
        Internal=True,
        IPAM={"Driver": "default", "Config": [
            {"Subnet": "10.40.0.0/24", "IPRange": "10.40.0.128/25", "Gateway": "10.40.0.254"}
        ]},
        Options={"com.docker.network.bridge.name": "brfront"},
        Labels={"team": "web"},
        SomethingNew={"ignored": True},  # unknown fields are ignored, as Docker does
    )  # fmt: skip
    for ref in ("front", net_id, net_id[:10]):
        body = await json_body(await api.get(f"/v1.41/networks/{ref}"), 200)
        assert body["Id"] == net_id
    assert body["Name"] == "front" and body["Driver"] == "bridge" and body["Scope"] == "local"
    assert body["Internal"] is True and body["EnableIPv6"] is False
    assert body["IPAM"] == {
        "Driver": "default",
        "Options": {},
        "Config": [
            {"Subnet": "10.40.0.0/24", "Gateway": "10.40.0.254", "IPRange": "10.40.0.128/25"}
        ],
    }
    assert body["Options"] == {"com.docker.network.bridge.name": "brfront"}
    assert body["Labels"] == {"team": "web"} and body["Containers"] == {}
    assert body["Created"].endswith("Z")


async def test_create_dual_stack(api, engine):
    net_id = await _create(
        api,
        "dual",
        EnableIPv6=True,
        IPAM={"Config": [{"Subnet": "10.41.0.0/24"}, {"Subnet": "fd00:41::/64"}]},
    )
    body = await json_body(await api.get(f"/networks/{net_id}"), 200)
    assert body["EnableIPv6"] is True
    assert [c["Subnet"] for c in body["IPAM"]["Config"]] == ["10.41.0.0/24", "fd00:41::/64"]
    assert str(engine.registry.networks[net_id].ipv6.gateway) == "fd00:41::1"


async def test_list_shows_builtin_networks_as_docker_does(api):
    body = await json_body(await api.get("/networks"), 200)
    by_name = {n["Name"]: n for n in body}
    assert set(by_name) == {"bridge", "host", "none"}
    assert by_name["host"]["Driver"] == "host" and by_name["none"]["Driver"] == "null"
    assert by_name["host"]["Id"] == hashlib.sha256(b"host").hexdigest()
    assert all(n["Scope"] == "local" for n in body)


async def _names(api: TestClient, filters: dict[str, Any]) -> list[str]:
    resp = await api.get("/networks", params={"filters": json.dumps(filters)})
    return sorted(n["Name"] for n in await json_body(resp, 200))


async def test_list_filters(api, engine):
    a = await _create(api, "app-a", Labels={"tier": "front", "env": "prod"})
    await _create(api, "app-b", Labels={"tier": "back"})
    engine.connect("app-b", _sandbox(engine, "s1"), _connect())
    assert await _names(api, {"name": {"app": True}}) == ["app-a", "app-b"]  # substring match
    assert await _names(api, {"name": ["app-a"]}) == ["app-a"]  # the old list form
    assert await _names(api, {"id": {a[:8]: True}}) == ["app-a"]
    assert await _names(api, {"label": {"tier": True}}) == ["app-a", "app-b"]
    assert await _names(api, {"label": {"tier=front": True, "env=prod": True}}) == ["app-a"]
    assert await _names(api, {"label": {"tier=front": True, "env=dev": True}}) == []
    assert await _names(api, {"driver": {"null": True}}) == ["none"]
    assert await _names(api, {"type": {"custom": True}}) == ["app-a", "app-b"]
    assert await _names(api, {"type": {"builtin": True}}) == ["bridge", "host", "none"]
    assert await _names(api, {"dangling": {"true": True}}) == ["app-a"]
    assert await _names(api, {"scope": {"swarm": True}}) == []
    assert await _names(api, {"name": {"app": True}, "label": {"env": True}}) == ["app-a"]


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("{not json", "filters"),
        ('["name"]', "filters"),
        ('{"colour": {"red": true}}', "invalid filter 'colour'"),
        ('{"type": {"weird": true}}', "'type'='weird'"),
        ('{"name": {"x": 1}, "label": [1]}', "label"),
        ('{"dangling": ["maybe"]}', "dangling"),
    ],
)
async def test_bad_list_filters_are_400(api, filters, fragment):
    await error_message(await api.get("/networks", params={"filters": filters}), 400, fragment)


# --- bad create bodies ---


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b"", "Name"),
        (b'{"Name": 5}', "Name"),
        (b'{"Name": "../x"}', "Name"),
        (b'{"Name": "a;b"}', "Name"),
        (json.dumps({"Name": "n" * 300}).encode(), "Name"),
        ('{"Name": "réseau"}'.encode(), "Name"),
        (b'{"Name": "ok", "Labels": ["a"]}', "Labels"),
        (b'{"Name": "ok", "Labels": {"a": 1}}', "Labels"),
        (b'{"Name": "ok", "Options": "x"}', "Options"),
        (b'{"Name": "ok", "Internal": "yes"}', "Internal"),
        (b'{"Name": "ok", "EnableIPv6": 1}', "EnableIPv6"),
        (b'{"Name": "ok", "Driver": "overlay"}', "Driver"),
        (b'{"Name": "ok", "IPAM": []}', "IPAM"),
        (b'{"Name": "ok", "IPAM": {"Config": {}}}', "IPAM.Config"),
        (b'{"Name": "ok", "IPAM": {"Config": [{"Subnet": 10}]}}', "IPAM.Config[0].Subnet"),
        (b'{"Name": "ok", "IPAM": {"Driver": "dhcp"}}', "IPAM.Driver"),
        (b'{"Name": "ok", "IPAM": {"Config": [{"Subnet": "nope"}]}}', "nope"),
        (b'{"Name": "ok", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16"}, '
         b'{"Subnet": "10.2.0.0/16"}]}}', "IPAM.Config"),
        (b'{"Name": "ok", "Options": {"com.docker.network.bridge.enable_icc": "maybe"}}',
         "enable_icc"),
        (b'{"Name": "ok", "Options": {"com.docker.network.bridge.name": "a;b"}}',
         "com.docker.network.bridge.name"),
        (b'{"Name": "ok", "Options": {"dnsd.dns_ttl": "-1"}}', "dnsd.dns_ttl"),
        (b'{"Name": "ok", "Ingress": true}', "Ingress"),
    ],
)  # fmt: skip
async def test_bad_create_bodies_are_400_naming_the_field(api, engine, body, field):
    before = set(engine.registry.networks)
    resp = await api.post("/networks/create", data=body)
    await error_message(resp, 400, field)
    assert set(engine.registry.networks) == before


# --- conflicts ---


async def test_create_conflicts_are_409(api):
    await _create(api, "taken", IPAM={"Config": [{"Subnet": "10.50.0.0/16"}]})
    await error_message(await api.post("/networks/create", json={"Name": "taken"}), 409, "taken")
    overlap = {"Name": "other", "IPAM": {"Config": [{"Subnet": "10.50.3.0/24"}]}}
    await error_message(await api.post("/networks/create", json=overlap), 409, "overlaps")
    await error_message(await api.post("/networks/create", json={"Name": "host"}), 409, "host")


async def test_concurrent_creates_of_one_name_exactly_one_wins(api, engine):
    requests = [api.post("/networks/create", json={"Name": "race"}) for _ in range(10)]
    responses = await asyncio.gather(*requests)
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 9
    assert [n.name for n in engine.registry.networks.values()].count("race") == 1


async def test_concurrent_creates_of_distinct_names_all_win_with_distinct_subnets(api, engine):
    responses = await asyncio.gather(
        *(api.post("/networks/create", json={"Name": f"par{i}"}) for i in range(6))
    )
    assert [r.status for r in responses] == [201] * 6
    subnets = {n.ipv4.subnet for n in engine.registry.networks.values()}
    assert len(subnets) == len(engine.registry.networks) == 7  # with `bridge`


# --- remove ---


async def test_remove_then_404(api, kernel):
    net_id = await _create(api, "gone")
    bridge = f"br-{net_id[:12]}"
    assert bridge in kernel.links
    resp = await api.delete("/v1.41/networks/gone")
    assert resp.status == 204
    assert bridge not in kernel.links
    await error_message(await api.get(f"/networks/{net_id}"), 404, "not found")
    await error_message(await api.delete("/networks/gone"), 404, "network gone not found")


async def test_predefined_networks_cannot_be_removed(api):
    for name in ("host", "none", "bridge"):
        await error_message(
            await api.delete(f"/networks/{name}"), 403,
            f"{name} is a pre-defined network and cannot be removed",
        )  # fmt: skip


async def test_remove_network_in_use_is_409(api, engine):
    await _create(api, "busy")
    engine.connect("busy", _sandbox(engine, "user1"), _connect())
    await error_message(await api.delete("/networks/busy"), 409, "user1", "disconnect")


async def test_ambiguous_prefix_is_refused(api, engine):
    ids = [
        await _create(api, f"amb{i}", IPAM={"Config": [{"Subnet": f"10.{i}.0.0/24"}]})
        for i in range(20)
    ]
    # 20 ids over 16 possible first characters: at least two share one.
    shared = next(c for c in "0123456789abcdef" if sum(i[0] == c for i in ids) > 1)
    await error_message(await api.get(f"/networks/{shared}"), 404, "ambiguous")


# --- connect, disconnect ---


def _connect() -> Any:
    from netcore.requests import ConnectRequest

    return ConnectRequest()


async def test_connect_shows_the_sandbox_in_containers(api, engine):
    net_id = await _create(api, "web", IPAM={"Config": [{"Subnet": "10.60.0.0/24"}]})
    sandbox_id = _sandbox(engine, "box")
    body = {
        "Container": "box",
        "EndpointConfig": {
            "Aliases": ["www"],
            "IPAMConfig": {"IPv4Address": "10.60.0.9"},
            "MacAddress": "02:42:0a:3c:00:63",
            "Links": None,
            "DriverOpts": {},
        },
    }
    resp = await api.post(f"/v1.41/networks/{net_id[:12]}/connect", json=body)
    assert resp.status == 200, await resp.text()
    containers = (await json_body(await api.get("/networks/web"), 200))["Containers"]
    entry = containers[sandbox_id]
    assert entry["Name"] == "box" and entry["IPv4Address"] == "10.60.0.9/24"
    assert entry["MacAddress"] == "02:42:0a:3c:00:63" and entry["IPv6Address"] == ""
    assert entry["EndpointID"] in engine.registry.endpoints
    assert engine.registry.endpoints[entry["EndpointID"]].aliases == ("www",)


async def test_connect_errors(api, engine):
    await _create(api, "c1", IPAM={"Config": [{"Subnet": "10.61.0.0/24"}]})
    _sandbox(engine, "b1")
    _sandbox(engine, "b2")
    url = "/networks/c1/connect"
    ok = {"Container": "b1", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.61.0.5"}}}
    assert (await api.post(url, json=ok)).status == 200
    await error_message(await api.post(url, json=ok), 409, "already connected")
    same_ip = {"Container": "b2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.61.0.5"}}}
    await error_message(await api.post(url, json=same_ip), 409, "10.61.0.5")
    outside = {"Container": "b2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}}
    await error_message(await api.post(url, json=outside), 400)
    await error_message(await api.post(url, json={"Container": "nobody"}), 404, "nobody")
    await error_message(await api.post("/networks/nonet/connect", json={"Container": "b2"}), 404)
    await error_message(await api.post(url, json={}), 400, "Container")
    await error_message(await api.post(url, json={"Container": 7}), 400, "Container")
    bad_alias = {"Container": "b2", "EndpointConfig": {"Aliases": ["a;b"]}}
    await error_message(await api.post(url, json=bad_alias), 400, "Aliases")
    wrong_type = {"Container": "b2", "EndpointConfig": {"Aliases": "www"}}
    await error_message(await api.post(url, json=wrong_type), 400, "EndpointConfig.Aliases")
    bad_ip = {"Container": "b2", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "x"}}}
    await error_message(await api.post(url, json=bad_ip), 400, "IPv4Address")
    await error_message(
        await api.post("/networks/host/connect", json={"Container": "b2"}), 400, "host"
    )
    await error_message(await api.post("/networks/none/disconnect", json={"Container": "b2"}), 400)
    assert [e.ipv4.exploded for e in engine.registry.endpoints.values()] == ["10.61.0.5"]


async def test_failed_attach_is_500_and_leaves_nothing(api, engine, kernel: FakeKernel):
    await _create(api, "frail")
    _sandbox(engine, "victim")
    links = set(kernel.links)
    kernel.fail_attach = NetlinkError("veth add: Operation not permitted")
    resp = await api.post("/networks/frail/connect", json={"Container": "victim"})
    assert "Operation not permitted" in await error_message(resp, 500)
    assert not engine.registry.endpoints and not engine.registry.intents
    assert kernel.links == links


async def test_disconnect(api, engine):
    await _create(api, "d1")
    engine.connect("d1", _sandbox(engine, "leaver"), _connect())
    body = {"Container": "leaver", "Force": False}
    assert (await api.post("/networks/d1/disconnect", json=body)).status == 200
    assert not engine.registry.endpoints
    await error_message(await api.post("/networks/d1/disconnect", json=body), 404, "not connected")
    forced = {"Container": "x", "Force": 1}
    await error_message(await api.post("/networks/d1/disconnect", json=forced), 400, "Force")


# --- prune ---


async def test_prune_removes_only_unused_user_networks(api, engine):
    await _create(api, "old1", Labels={"keep": "no"})
    await _create(api, "old2", Labels={"keep": "yes"})
    await _create(api, "used")
    engine.connect("used", _sandbox(engine, "p1"), _connect())
    resp = await api.post(
        "/v1.41/networks/prune", params={"filters": '{"label!":{"keep=yes":true}}'}
    )
    assert await json_body(resp, 200) == {"NetworksDeleted": ["old1"]}
    resp = await api.post("/networks/prune", params={"filters": '{"until":{"1":true}}'})
    assert await json_body(resp, 200) == {"NetworksDeleted": []}  # all created after 1970
    resp = await api.post("/networks/prune")
    assert await json_body(resp, 200) == {"NetworksDeleted": ["old2"]}
    assert sorted(n.name for n in engine.registry.networks.values()) == ["bridge", "used"]


async def test_prune_with_label_and_until(api, engine):
    await _create(api, "l1", Labels={"stage": "ci"})
    await _create(api, "l2")
    resp = await api.post("/networks/prune", params={"filters": '{"label":{"stage=ci":true}}'})
    assert await json_body(resp, 200) == {"NetworksDeleted": ["l1"]}
    await error_message(
        await api.post("/networks/prune", params={"filters": '{"until":{"soon":true}}'}),
        400, "until",
    )  # fmt: skip
    future = '{"until":{"2999-01-01T00:00:00Z":true}}'
    resp = await api.post("/networks/prune", params={"filters": future})
    assert await json_body(resp, 200) == {"NetworksDeleted": ["l2"]}


# --- failures of the daemon ---


async def test_store_failure_is_503_and_nothing_is_created(api, engine, store: MemoryStore):
    store.fail_next = StoreError("state store is read-only: fix the disk and retry")
    resp = await api.post("/networks/create", json={"Name": "nodisk"})
    await error_message(resp, 503, "read-only")
    assert "nodisk" not in {n.name for n in engine.registry.networks.values()}


async def test_unexpected_exception_is_500_without_a_traceback(api, engine, monkeypatch):
    def explode(_req: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, "create_network", explode)
    message = await error_message(await api.post("/networks/create", json={"Name": "x"}), 500)
    assert "secret" not in message and "log" in message


# --- auth ---


async def test_token_is_required_when_set(engine):
    client = TestClient(TestServer(create_app(engine, token="s3cret", version="t")))
    await client.start_server()
    try:
        await error_message(await client.get("/_ping"), 401, "Bearer")
        await error_message(
            await client.get("/networks", headers={"Authorization": "Bearer no"}), 401
        )
        await error_message(await client.get("/networks", headers={"Authorization": "s3cret"}), 401)
        ok = await client.get("/v1.41/networks", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200
    finally:
        await client.close()


async def test_empty_token_is_refused(engine):
    with pytest.raises(ValueError, match="empty"):
        create_app(engine, token="", version="t")


async def test_prune_until_accepts_dockers_forms():
    assert parse_until("1h30m", now=10_000) == 4_600
    assert parse_until("45s", now=100) == 55
    assert parse_until("1700000000", now=0) == 1_700_000_000
    assert parse_until("2024-01-01T00:00:00Z", now=0) == 1_704_067_200
    with pytest.raises(InvalidArgument, match="until"):
        parse_until("tomorrow", now=0)


# --- serving on a unix socket ---


async def test_unix_socket_mode_stale_socket_and_live_socket(engine, short_tmp):
    path = f"{short_tmp}/run/api.sock"
    os.makedirs(os.path.dirname(path))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # left behind by a daemon that died: nobody accepts on it
    stale.close()
    runner = await start_unix(create_app(engine, version="t"), path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        with pytest.raises(Conflict, match="another daemon"):
            await start_unix(create_app(engine, version="t"), path)
    finally:
        await runner.cleanup()
    not_a_socket = f"{short_tmp}/file"
    Path(not_a_socket).write_text("")
    with pytest.raises(Conflict, match="not a socket"):
        await start_unix(create_app(engine, version="t"), not_a_socket)
