"""Hostile names at the API (issue 6): every name that reaches a file path, an interface name,
an nft rule or DNS is refused with a 400 that names the field, and nothing changes.

Each field is also shown to accept an ordinary value, so a refusal is the validation's doing,
not a request the API could never have taken.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dnsd.api import create_app
from netcore.engine import Engine, EngineConfig
from netcore.kernel.fake import FakeKernel
from netcore.registry import Registry
from netcore.requests import NetworkRequest, SandboxRequest
from netcore.store.memory import MemoryStore

pytestmark = pytest.mark.asyncio

HOSTILE = {
    "dotdot": "../x",
    "semicolon": "a;b",
    "300_chars": "a" * 300,
    "300_chars_dotted": ".".join(["a" * 49] * 6),  # valid labels, too long as a whole
    "unicode": "bücher",
    "unicode_digits": "web٣",  # Arabic-Indic three: str.isdigit() says yes
    "newline": "a\nb",
    "nul": "a\0b",
    "space": "a b",
    "slash": "a/b",
}
BRIDGE_OPTION = "com.docker.network.bridge.name"

Request = tuple[str, str, dict[str, Any]]


def _net(value: str) -> Request:
    return "POST", "/networks/create", {"Name": value}


def _bridge(value: str) -> Request:
    return "POST", "/networks/create", {"Name": "fresh", "Options": {BRIDGE_OPTION: value}}


def _sandbox(**fields: Any) -> Request:
    return "POST", "/sandboxes", {"Name": "fresh", **fields}


def _connect_alias(value: str) -> Request:
    body = {"Container": "box", "EndpointConfig": {"Aliases": [value]}}
    return "POST", "/networks/apps/connect", body


FIELDS: dict[str, tuple[str, Callable[[str], Request]]] = {
    # case: (the field the message must name, the request carrying the value)
    "network Name": ("Name", _net),
    "sandbox Name": ("Name", lambda v: ("POST", "/sandboxes", {"Name": v})),
    "Hostname": ("Hostname", lambda v: _sandbox(Hostname=v)),
    "Aliases on connect": ("Aliases", _connect_alias),
    "Aliases on create": (
        "Aliases",
        lambda v: _sandbox(NetworkMode="apps", EndpointConfig={"Aliases": [v]}),
    ),
    "DnsSearch": ("DnsSearch", lambda v: _sandbox(DnsSearch=[v])),
    "ExtraHosts": ("ExtraHosts", lambda v: _sandbox(ExtraHosts=[f"{v}:10.0.0.9"])),
    "bridge name option": (BRIDGE_OPTION, _bridge),
    "NetworkMode": ("NetworkMode", lambda v: _sandbox(NetworkMode=v)),
    "NetworkMode container:": ("NetworkMode", lambda v: _sandbox(NetworkMode=f"container:{v}")),
}
ORDINARY = {  # a value each field accepts
    "network Name": "fresh",
    "sandbox Name": "fresh",
    "Hostname": "web-1.example",
    "Aliases on connect": "web-1",
    "Aliases on create": "web-1",
    "DnsSearch": "corp.example",
    "ExtraHosts": "db.local",
    "bridge name option": "br-fresh",
    "NetworkMode": "apps",
    "NetworkMode container:": "box",
}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    config = EngineConfig(state_dir=str(tmp_path / "state"), etc_netns_dir=str(tmp_path / "etc"))
    eng = Engine(Registry(MemoryStore()), FakeKernel(), config)
    eng.start()
    eng.create_network(NetworkRequest.build("apps", subnet="10.70.0.0/24"))
    eng.create_sandbox(SandboxRequest(name="box"))
    return eng


@pytest_asyncio.fixture
async def api(engine: Engine) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(engine, version="0.0.0-test")))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def _world(engine: Engine) -> tuple[object, ...]:
    kernel = engine.kernel
    assert isinstance(kernel, FakeKernel)
    snap = engine.registry.snapshot()
    return (
        snap.networks,
        snap.sandboxes,
        snap.endpoints,
        sorted(kernel.links),
        {path: sorted(links) for path, links in kernel.namespaces.items()},
        dict(kernel.nft),
    )


async def _send(api: TestClient, request: Request) -> tuple[int, dict[str, Any]]:
    method, path, body = request
    resp = await api.request(method, path, data=json.dumps(body))
    text = await resp.text()
    return resp.status, json.loads(text) if text.strip() else {}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("case", FIELDS)
async def test_hostile_value_is_refused_naming_the_field(api, engine, case, value):
    field, build = FIELDS[case]
    before = _world(engine)
    status, body = await _send(api, build(value))
    assert status == 400, f"{case}={value!r}: {status} {body}"
    named = body["message"].partition(": ")[0]
    assert named == field or named.endswith("." + field), f"{case}: {body['message']!r}"
    assert _world(engine) == before, f"{case}={value!r} changed something"


@pytest.mark.parametrize("case", FIELDS)
async def test_ordinary_value_is_accepted(api, engine, case):
    build = FIELDS[case][1]
    status, body = await _send(api, build(ORDINARY[case]))
    assert status in (200, 201), f"{case}: {status} {body}"
