"""Hostile names at the API (issue 6): every name that reaches a file path, an interface name,
an nft rule or DNS is refused with a 400 that names the field, and nothing changes.

Each field is also shown to accept an ordinary value, so a refusal is the validation's doing,
not a request the API could never have taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from netcore.engine import Engine
from netcore.kernel.fake import FakeKernel
from netcore.requests import NetworkRequest, SandboxRequest

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
def engine(engine: Engine) -> Engine:
    """The shared engine (tests/unit/conftest.py, which also serves it as `api`) with the
    network and the sandbox the ordinary requests name."""
    engine.create_network(NetworkRequest.build("apps", subnet="10.70.0.0/24"))
    engine.create_sandbox(SandboxRequest(name="box"))
    return engine


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
