"""`/sandboxes`: network namespaces that endpoints attach to (what Docker calls containers)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from netcore.errors import InvalidArgument
from netcore.healthcheck import parse_healthcheck
from netcore.model import Sandbox, Snapshot
from netcore.names import is_full_id, validate_object_name
from netcore.requests import ConnectRequest, SandboxRequest, parse_port_bindings

from ..health.shape import health_shape
from ..health.state import Health
from .bodies import Fields, json_object, query_filters
from .handlers_networks import connect_request, engine_of, labels_match, regex_match
from .middleware import reply
from .shapes import find_sandbox, sandbox_shape

LIST_FILTERS = ("id", "name", "label")


class HealthView(Protocol):
    def health(self, sandbox_id: str) -> Health | None: ...


HEALTH_KEY = web.AppKey("health", HealthView)


def _extra_hosts(items: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """Docker's `["name:address"]` (or the newer `name=address`) as (name, address) pairs."""
    out = []
    for item in items or ():
        # The name never holds ':' or '=', so split at the first: IPv6 addresses keep theirs.
        sep = "=" if "=" in item else ":"
        name, found, address = item.partition(sep)
        if not found or not name or not address:
            raise InvalidArgument(f"{item!r} is not name:address", field="ExtraHosts")
        out.append((name, address.strip("[]")))
    return tuple(out)


def _port_bindings(value: object) -> object:
    """Check the JSON types of Docker's PortBindings before the shared parser reads them."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return value  # the parser refuses it with its own message
    for key, targets in value.items():
        if targets is None:
            continue
        if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
            raise InvalidArgument(f"{key!r} must map to a list of objects", field="PortBindings")
        for target in targets:
            for field in ("HostIp", "HostPort"):
                if target.get(field) is not None and not isinstance(target[field], str):
                    raise InvalidArgument(
                        f"{field} of {key!r} must be a string", field="PortBindings"
                    )
    return value


def _reference(value: str) -> str:
    """A name, an id prefix or a full 64-hex id (one character longer than a name may be)."""
    return value if is_full_id(value) else validate_object_name(value, "NetworkMode")


def _network_mode(value: str) -> str:
    if value in ("", "none", "host"):
        return value
    if value.startswith("container:"):
        _reference(value.partition(":")[2])
        return value
    return _reference(value)


def sandbox_request(body: Fields) -> SandboxRequest:
    """The create body as an engine request; every refusal names its field."""
    mode = _network_mode(body.string("NetworkMode"))
    endpoint = body.object("EndpointConfig")
    connect = connect_request(endpoint)
    joins_network = mode not in ("", "none", "host") and not mode.startswith("container:")
    if connect != ConnectRequest() and not joins_network:
        raise InvalidArgument(
            "applies only when NetworkMode names a network to join", field="EndpointConfig"
        )
    return SandboxRequest(
        name=body.required_string("Name"),
        netns=body.optional_string("NetNS"),
        hostname=body.string("Hostname"),
        dns=body.strings("Dns") or (),
        dns_search=body.strings("DnsSearch"),
        dns_options=body.strings("DnsOptions"),
        extra_hosts=_extra_hosts(body.strings("ExtraHosts")),
        ports=parse_port_bindings(_port_bindings(body.raw("PortBindings"))),
        network_mode=mode,
        connect=connect,
        healthcheck=parse_healthcheck(body.raw("Healthcheck")),
        labels=tuple(sorted(body.string_map("Labels").items())),
    )


async def create_sandbox(request: web.Request) -> web.Response:
    """POST /sandboxes -> 201 {Id}."""
    req = sandbox_request(await json_object(request))
    sandbox = await asyncio.to_thread(engine_of(request).create_sandbox, req)
    return reply({"Id": sandbox.id, "Warnings": []}, status=201)


async def list_sandboxes(request: web.Request) -> web.Response:
    """GET /sandboxes[?filters={"name":{...},"label":{"key[=value]":true}}]."""
    filters = query_filters(request, LIST_FILTERS)
    snapshot = engine_of(request).registry.snapshot()
    body = []
    for sandbox in snapshot.sandboxes:
        if sandbox.mode == "remote":  # another host's: listed there
            continue
        if "name" in filters and not any(regex_match(p, sandbox.name) for p in filters["name"]):
            continue
        if "id" in filters and not any(regex_match(p, sandbox.id) for p in filters["id"]):
            continue
        if "label" in filters and not labels_match(filters["label"], dict(sandbox.labels)):
            continue
        body.append(_with_health(request, snapshot, sandbox))
    return reply(body)


async def inspect_sandbox(request: web.Request) -> web.Response:
    """GET /sandboxes/{id|name}."""
    snapshot = engine_of(request).registry.snapshot()
    sandbox = find_sandbox(snapshot, request.match_info["ref"])
    return reply(_with_health(request, snapshot, sandbox))


async def update_sandbox(request: web.Request) -> web.Response:
    """POST /sandboxes/{id|name}/update {"Healthcheck": {...}} (null or no Test: remove it)."""
    body = await json_object(request)
    healthcheck = parse_healthcheck(body.raw("Healthcheck"))
    engine = engine_of(request)
    sandbox = find_sandbox(engine.registry.snapshot(), request.match_info["ref"])
    await asyncio.to_thread(engine.update_sandbox, sandbox.id, healthcheck)
    return reply({"Warnings": []})


def _with_health(request: web.Request, snapshot: Snapshot, sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox's shape with its check (`Healthcheck`) and `State.Health` when it has one."""
    shape = sandbox_shape(snapshot, sandbox)
    check = sandbox.healthcheck
    shape["Healthcheck"] = None if check is None else check.docker_shape()
    health = request.app.get(HEALTH_KEY)
    state = None if health is None else health.health(sandbox.id)
    shape["State"] = {"Health": None if state is None else health_shape(state)}
    return shape


async def remove_sandbox(request: web.Request) -> web.Response:
    """DELETE /sandboxes/{id|name} -> 204 (its endpoints are disconnected first)."""
    engine = engine_of(request)
    sandbox = find_sandbox(engine.registry.snapshot(), request.match_info["ref"])
    await asyncio.to_thread(engine.remove_sandbox, sandbox.id)
    return web.Response(status=204)
