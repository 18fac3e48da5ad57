"""Docker's `/networks` endpoints, as the docker CLI and SDK call them.

Engine calls block (netlink, nft, the store), so they run on worker threads; the engine
serialises them. Reads build their answer from one immutable registry snapshot.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

from aiohttp import web

from netcore.engine import DEFAULT_NETWORK, Engine
from netcore.errors import InvalidArgument, NetworkInUse, NotFound
from netcore.model import Network, Snapshot
from netcore.requests import OPT_IFNAME, ConnectRequest, NetworkRequest, parse_links

from .bodies import Fields, json_object, query_filters
from .middleware import PredefinedNetwork, reply
from .shapes import (
    AnyNetwork,
    BuiltinNetwork,
    all_networks,
    find_network,
    network_shape,
)

ENGINE_KEY = web.AppKey("engine", Engine)

LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE_KEY]


def is_predefined(engine: Engine, network: AnyNetwork) -> bool:
    """`host`, `none`, and the default `bridge` network when the daemon made it."""
    if isinstance(network, BuiltinNetwork):
        return True
    return engine.config.default_network and network.name == DEFAULT_NETWORK


# --- create ---


def network_request(body: Fields) -> NetworkRequest:
    """Docker's create body as an engine request; every refusal names its field."""
    name = body.required_string("Name")
    driver = body.string("Driver") or "bridge"
    if driver not in ("bridge", "overlay"):
        raise InvalidArgument(
            f"only the bridge and overlay drivers are supported, not {driver!r}", field="Driver"
        )
    scope = "global" if driver == "overlay" else "local"
    if body.string("Scope") not in ("", scope):
        raise InvalidArgument(f"a {driver} network has {scope} scope", field="Scope")
    for key in ("Ingress", "ConfigOnly"):
        body.refuse_truthy(key, "is a swarm feature this daemon does not have")
    body.refuse_truthy("ConfigFrom", "is a swarm feature this daemon does not have")
    ipam = body.object("IPAM")
    if ipam.string("Driver") not in ("", "default"):
        raise InvalidArgument(
            "only the default IPAM driver is supported", field=ipam.name("Driver")
        )
    sides: dict[int, Fields] = {}
    for entry in ipam.objects("Config"):
        entry.refuse_truthy("AuxiliaryAddresses", "reserved addresses are not supported")
        text = entry.string("Subnet") or entry.string("IPRange") or entry.string("Gateway")
        family = 6 if ":" in text else 4
        if family in sides:
            raise InvalidArgument(
                f"give at most one IPv4 and one IPv6 subnet (two IPv{family} given)",
                field=ipam.name("Config"),
            )
        sides[family] = entry
    v4, v6 = sides.get(4, Fields({})), sides.get(6, Fields({}))
    return NetworkRequest.build(
        name,
        options=body.string_map("Options"),
        labels=body.string_map("Labels"),
        subnet=v4.optional_string("Subnet"),
        ip_range=v4.optional_string("IPRange"),
        gateway=v4.optional_string("Gateway"),
        ipv6=body.boolean("EnableIPv6") or 6 in sides,
        subnet6=v6.optional_string("Subnet"),
        ip_range6=v6.optional_string("IPRange"),
        gateway6=v6.optional_string("Gateway"),
        internal=body.boolean("Internal"),
        driver=driver,
    )


async def create_network(request: web.Request) -> web.Response:
    """POST /networks/create -> 201 {Id, Warning}."""
    req = network_request(await json_object(request))
    network = await asyncio.to_thread(engine_of(request).create_network, req)
    return reply({"Id": network.id, "Warning": ""}, status=201)


# --- read ---


def regex_match(pattern: str, value: str) -> bool:
    """Docker's `filters.Match`: equal, or the value matches the pattern as a regexp.

    Python's `re` backtracks where Go's does not, so a pathological pattern is slow; only
    callers who can already change the host's networking (socket or token) can send one.
    """
    if pattern == value:
        return True
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False  # Docker ignores patterns that do not compile


def labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """Docker's `MatchKVList`: every `key` present and every `key=value` equal."""
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


def _parse_bool_filter(values: list[str], key: str) -> bool:
    lowered = {v.lower() for v in values}
    if lowered <= {"true", "1"}:
        return True
    if lowered <= {"false", "0"}:
        return False
    raise InvalidArgument(
        f"invalid filter '{key}={','.join(values)}': use true or false", field="filters"
    )


def network_matches(
    engine: Engine, snapshot: Snapshot, network: AnyNetwork, filters: dict[str, list[str]]
) -> bool:
    """Docker's network-list filters: OR within one key, AND across keys."""
    shape = network_shape(snapshot, network)
    if "driver" in filters and shape["Driver"] not in filters["driver"]:
        return False
    if "scope" in filters and shape["Scope"] not in filters["scope"]:
        return False
    for key, field in (("name", "Name"), ("id", "Id")):
        if key in filters and not any(regex_match(p, shape[field]) for p in filters[key]):
            return False
    if "label" in filters and not labels_match(filters["label"], shape["Labels"]):
        return False
    predefined = is_predefined(engine, network)
    if "type" in filters:
        for kind in filters["type"]:
            if kind not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{kind}'", field="filters")
        if ("builtin" if predefined else "custom") not in filters["type"]:
            return False
    if "dangling" in filters:
        dangling = not predefined and not shape["Containers"]
        if dangling != _parse_bool_filter(filters["dangling"], "dangling"):
            return False
    return True


async def list_networks(request: web.Request) -> web.Response:
    """GET /networks[?filters=...]."""
    filters = query_filters(request, LIST_FILTERS)
    engine = engine_of(request)
    snapshot = engine.registry.snapshot()
    body = [
        network_shape(snapshot, n)
        for n in all_networks(snapshot)
        if network_matches(engine, snapshot, n, filters)
    ]
    return reply(body)


async def inspect_network(request: web.Request) -> web.Response:
    """GET /networks/{id}: by id, name or unique id prefix."""
    snapshot = engine_of(request).registry.snapshot()
    network = find_network(snapshot, request.match_info["ref"])
    return reply(network_shape(snapshot, network))


# --- change ---


def _user_network(request: web.Request, action: str) -> Network:
    """The network of the path, refused when Docker forbids `action` on it."""
    engine = engine_of(request)
    network = find_network(engine.registry.snapshot(), request.match_info["ref"])
    if action == "removed" and is_predefined(engine, network):
        raise PredefinedNetwork(f"{network.name} is a pre-defined network and cannot be removed")
    if isinstance(network, BuiltinNetwork):
        raise InvalidArgument(
            f"container cannot be disconnected from {network.name} network or connected to "
            f"{network.name} network: create the sandbox with NetworkMode {network.name!r} "
            "instead",
            field="Container",
        )
    return network


async def remove_network(request: web.Request) -> web.Response:
    """DELETE /networks/{id} -> 204."""
    network = _user_network(request, "removed")
    await asyncio.to_thread(engine_of(request).remove_network, network.id)
    return web.Response(status=204)


def connect_request(endpoint: Fields) -> ConnectRequest:
    ipam = endpoint.object("IPAMConfig")
    return ConnectRequest(
        aliases=endpoint.strings("Aliases") or (),
        ipv4=ipam.optional_string("IPv4Address"),
        ipv6=ipam.optional_string("IPv6Address"),
        mac=endpoint.optional_string("MacAddress"),
        ifname=endpoint.string_map("DriverOpts").get(OPT_IFNAME) or None,
        links=parse_links(endpoint.strings("Links") or ()),
    )


async def connect(request: web.Request) -> web.Response:
    """POST /networks/{id}/connect {Container, EndpointConfig} -> 200."""
    body = await json_object(request)
    container = body.required_string("Container")
    req = connect_request(body.object("EndpointConfig"))
    network = _user_network(request, "connected")
    sandbox = engine_of(request).registry.find_sandbox(container)  # an index, not a walk
    await asyncio.to_thread(engine_of(request).connect, network.id, sandbox.id, req)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    """POST /networks/{id}/disconnect {Container, Force} -> 200."""
    body = await json_object(request)
    container = body.required_string("Container")
    force = body.boolean("Force")
    network = _user_network(request, "disconnected")
    sandbox = engine_of(request).registry.find_sandbox(container)  # an index, not a walk
    engine = engine_of(request)
    await asyncio.to_thread(engine.disconnect, network.id, sandbox.id, force=force)
    return web.Response(status=200)


# --- prune ---


def parse_until(value: str, now: float) -> float:
    """Docker's `until`: a Go duration (`24h`, `1h30m`), Unix seconds, or an RFC 3339 time."""
    if re.fullmatch(r"(\d+(\.\d+)?[hms])+", value):
        units = {"h": 3600, "m": 60, "s": 1}
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", value)
        return now - sum(float(number) * units[unit] for number, unit in parts)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(
            f"invalid until {value!r}: use a duration (24h), Unix seconds or RFC 3339",
            field="filters",
        ) from None


def _created_at(network: Network) -> float:
    try:
        return datetime.fromisoformat(network.created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def prune_candidates(
    engine: Engine, snapshot: Snapshot, filters: dict[str, list[str]]
) -> list[Network]:
    """Unused user networks that pass Docker's prune filters."""
    limits = [parse_until(v, time.time()) for v in filters.get("until", [])]
    in_use = {ep.network_id for ep in snapshot.endpoints}
    out = []
    for network in snapshot.networks:
        labels = dict(network.labels)
        if network.id in in_use or is_predefined(engine, network):
            continue
        if "label" in filters and not labels_match(filters["label"], labels):
            continue
        if "label!" in filters and any(labels_match([f], labels) for f in filters["label!"]):
            continue
        if limits and not all(_created_at(network) < limit for limit in limits):
            continue
        out.append(network)
    return out


def _prune(engine: Engine, candidates: list[Network]) -> list[str]:
    removed = []
    for network in candidates:
        try:
            engine.remove_network(network.id)
        except (NetworkInUse, NotFound):
            continue  # connected or removed since we looked: Docker skips these too
        removed.append(network.name)
    return removed


async def prune(request: web.Request) -> web.Response:
    """POST /networks/prune[?filters=...] -> {NetworksDeleted: [names]}."""
    filters = query_filters(request, PRUNE_FILTERS)
    engine = engine_of(request)
    candidates = prune_candidates(engine, engine.registry.snapshot(), filters)
    removed = await asyncio.to_thread(_prune, engine, candidates)
    return reply({"NetworksDeleted": sorted(removed)})
