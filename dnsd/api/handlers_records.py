"""`/networks/{ref}/records`: DNS records of a network that are not sandboxes.

The rules live in `dnsd.records`; this module reads requests and shapes answers.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from netcore.errors import InvalidArgument
from netcore.model import Network

from ..records import RecordRequest, plan_add, plan_remove, record_shape, records_of
from .bodies import json_object
from .handlers_networks import engine_of
from .middleware import reply
from .shapes import BuiltinNetwork, find_network


def _network(request: web.Request) -> Network:
    network = find_network(engine_of(request).registry.snapshot(), request.match_info["ref"])
    if isinstance(network, BuiltinNetwork):
        raise InvalidArgument(
            f"network {network.name} has no DNS of ours: add records to a bridge network",
            field="ref",
        )
    return network


async def add_record(request: web.Request) -> web.Response:
    """POST /networks/{ref}/records {Name, Type, Value, TTL} -> 201 the record."""
    body = await json_object(request)
    req = RecordRequest.build(
        body.raw("Name"), body.raw("Type"), body.raw("Value"), body.raw("TTL")
    )
    network = _network(request)
    engine = engine_of(request)
    await asyncio.to_thread(
        engine.commit_planned, lambda registry: plan_add(registry, network, req)
    )
    return reply({"Name": req.name, "Type": req.type, "Value": req.value, "TTL": req.ttl}, 201)


async def list_records(request: web.Request) -> web.Response:
    """GET /networks/{ref}/records -> [{Name, Type, Value, TTL}] by name, type, value."""
    network = _network(request)
    return reply([record_shape(r) for r in records_of(engine_of(request).registry, network)])


async def remove_record(request: web.Request) -> web.Response:
    """DELETE /networks/{ref}/records/{name}/{type}[?value=V] -> 204.

    Without `value`, every record of that name and type goes (the RRset); with it, only the
    record of that value.
    """
    network = _network(request)
    name, type_ = request.match_info["name"], request.match_info["type"]
    value = request.query.get("value")
    engine = engine_of(request)
    await asyncio.to_thread(
        engine.commit_planned,
        lambda registry: plan_remove(registry, network, name, type_, value),
    )
    return web.Response(status=204)
