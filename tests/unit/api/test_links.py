"""Docker's legacy links end to end on the fake kernel: the API body, the engine's checks, the
stored endpoint, the GET shapes, the zone view of the linking sandbox, and the hosts file lines
on the default bridge. (`api` and `engine` come from tests/unit/conftest.py.)"""

from __future__ import annotations

import random

import pytest

from dnsd.core import answer, build_view
from dnsd.core.answer import Forward, Reply
from dnsd.sandbox_files.hosts import render_hosts
from dnsd.sandbox_files.links import link_host_lines
from netcore.model import endpoint_from_dict, to_dict
from netcore.registry import Registry
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest, parse_links
from tests.support.dns import query, reply_addresses
from tests.unit.api.responses import error_message, json_body


def _box(engine, name: str, network: str = "", links=()) -> str:
    req = SandboxRequest(
        name=name, network_mode=network, connect=ConnectRequest(links=parse_links(links))
    )
    return engine.create_sandbox(req).id


def test_parse_links_reads_docker_forms():
    assert parse_links(("web:db", "cache", "/api:/cli/backend")) == (
        ("web", "db"),
        ("cache", "cache"),
        ("api", "backend"),
    )


@pytest.mark.asyncio
async def test_connect_with_links_and_the_shapes(api, engine):
    engine.create_network(NetworkRequest.build("app", subnet="10.70.0.0/24"))
    web = _box(engine, "web", "app")
    _box(engine, "cli")
    body = {"Container": "cli", "EndpointConfig": {"Links": ["web:db"], "Aliases": []}}
    resp = await api.post("/networks/app/connect", json=body)
    assert resp.status == 200, await resp.text()
    shape = await json_body(await api.get("/sandboxes/cli"), 200)
    assert shape["Networks"]["app"]["Links"] == ["web:db"]
    assert (await json_body(await api.get("/sandboxes/web"), 200))["Networks"]["app"][
        "Links"
    ] is None
    endpoint = engine.registry.endpoint(engine.registry.find_network("app").id, shape["Id"])
    assert endpoint.links == ((web, "db"),)


@pytest.mark.asyncio
async def test_link_errors_name_the_problem(api, engine):
    engine.create_network(NetworkRequest.build("app", subnet="10.71.0.0/24"))
    engine.create_network(NetworkRequest.build("other", subnet="10.72.0.0/24"))
    _box(engine, "elsewhere", "other")
    _box(engine, "cli")
    url = "/networks/app/connect"

    def link(target: str) -> dict:
        return {"Container": "cli", "EndpointConfig": {"Links": [target]}}

    await error_message(await api.post(url, json=link("ghost:db")), 404, "ghost")
    await error_message(
        await api.post(url, json=link("elsewhere:db")), 400, "elsewhere", "not connected", "app"
    )
    await error_message(await api.post(url, json=link("cli:me")), 400, "itself")
    await error_message(await api.post(url, json=link("elsewhere:a;b")), 400, "Links")
    resp = await api.post(
        "/sandboxes",
        json={"Name": "x", "NetworkMode": "app", "EndpointConfig": {"Links": ["ghost"]}},
    )
    await error_message(resp, 404, "ghost")
    assert "x" not in {s.name for s in engine.registry.sandboxes.values()}  # rolled back


def test_links_persist_and_old_state_loads(engine, store):
    engine.create_network(NetworkRequest.build("app", subnet="10.73.0.0/24"))
    web = _box(engine, "web", "app")
    cli = _box(engine, "cli", "app", links=("web:db",))
    reloaded = Registry(store)
    (endpoint,) = reloaded.endpoints_of(cli)
    assert endpoint.links == ((web, "db"),)
    old = to_dict(endpoint)
    del old["links"]  # a store written before links existed
    assert endpoint_from_dict(old).links == ()


def test_only_the_linking_sandbox_resolves_the_alias(engine):
    engine.create_network(NetworkRequest.build("app", subnet="10.74.0.0/24"))
    _box(engine, "web", "app")
    cli = _box(engine, "cli", "app", links=("web:db",))
    other = _box(engine, "other", "app")
    view = build_view(engine.registry.snapshot())
    rng = random.Random(1)
    linked = answer(query("db"), cli, view, rng=rng)
    assert isinstance(linked, Reply) and reply_addresses(linked.data) == ["10.74.0.2"]
    assert isinstance(answer(query("db"), other, view, rng=rng), Forward)
    # The rest of the network still answers for the linking sandbox.
    assert reply_addresses(answer(query("web"), cli, view, rng=rng).data) == ["10.74.0.2"]


def test_a_link_alias_hides_a_network_name(engine):
    engine.create_network(NetworkRequest.build("app", subnet="10.75.0.0/24"))
    _box(engine, "web", "app")
    _box(engine, "db", "app")
    cli = _box(engine, "cli", "app", links=("web:db",))
    view = build_view(engine.registry.snapshot())
    got = answer(query("db"), cli, view, rng=random.Random(1))
    assert reply_addresses(got.data) == ["10.75.0.2"]  # web's, not db's 10.75.0.3


def test_default_bridge_link_goes_into_the_hosts_file(engine):
    _box(engine, "db", "bridge")
    app = _box(engine, "app", "bridge", links=("db:database",))
    snapshot = engine.registry.snapshot()
    db = engine.registry.find_sandbox("db")
    lines = link_host_lines(snapshot)
    assert lines == {app: (("172.17.0.2", f"database {db.short_id} db"),)}
    text = render_hosts(engine.registry.sandboxes[app], ["172.17.0.3"], lines[app])
    own = f"\n172.17.0.3\t{engine.registry.sandboxes[app].short_id} app\n"
    assert text.endswith(f"\n172.17.0.2\tdatabase {db.short_id} db{own}")  # Docker's order


def test_user_network_links_do_not_touch_hosts_files(engine):
    engine.create_network(NetworkRequest.build("app", subnet="10.76.0.0/24"))
    _box(engine, "web", "app")
    _box(engine, "cli", "app", links=("web:db",))
    assert link_host_lines(engine.registry.snapshot()) == {}
