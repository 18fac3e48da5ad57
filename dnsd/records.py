"""Records of a network that are not sandboxes: checking, adding, removing, listing.

Pure planning over the registry: `plan_add` and `plan_remove` return the store operations, and
the engine commits them under its lock (`Engine.commit_planned`), so the clash checks and the
commit see one state. No kernel work: a record only changes what the zone view answers.

Rules (README "Records"):
- a record answers to `Name` and `Name.<network>`, like a sandbox name;
- A, AAAA and CNAME records may not take a sandbox's name on the network (the sandbox owns its
  addresses), on an overlay one of another host's too; TXT and SRV may sit beside a sandbox name;
- a CNAME stands alone: no other record, sandbox name, SRV or PTR of the same name, one per name;
- the same Name, Type and Value twice is a conflict (409); several values of one type are an
  RRset, answered together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from netcore.errors import Conflict, InvalidArgument, NotFound
from netcore.model import Endpoint, Network, Record, Sandbox
from netcore.names import validate_dns_name
from netcore.registry import Registry, delete, put
from netcore.store.base import Op

from .core import wire
from .core.rdata import parse_rdata, record_type
from .core.view import sandbox_names
from .core.zone_records import record_names

MAX_TTL = 2**31 - 1  # RFC 2181 8


@dataclass(frozen=True, slots=True)
class RecordRequest:
    """A checked `POST /networks/{ref}/records` body."""

    name: str
    type: str
    value: str  # canonical zone-file form
    ttl: int | None

    @classmethod
    def build(cls, name: object, type_: object, value: object, ttl: object) -> RecordRequest:
        """Every refusal names its field (Name, Type, Value, TTL)."""
        record_type(type_, "Type")
        type_name = str(type_).upper()
        base = validate_dns_name(name, "Name")
        if base == ".":
            raise InvalidArgument("the root cannot carry records", field="Name")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
            raise InvalidArgument("must be a whole number of seconds", field="TTL")
        if ttl is not None and not 0 <= ttl <= MAX_TTL:
            raise InvalidArgument(f"{ttl} is out of range: 0 to {MAX_TTL} seconds", field="TTL")
        return cls(base, type_name, parse_rdata(type_name, value).text, ttl)


def record_id(network_id: str, name: str, type_: str, value: str) -> str:
    """One record, one id: the same Name, Type and Value on a network is the same record."""
    key = "\0".join((network_id, name.lower(), type_, value))
    return hashlib.sha256(key.encode()).hexdigest()


def record_shape(record: Record) -> dict[str, Any]:
    """A record as the API lists it."""
    return {"Name": record.name, "Type": record.type, "Value": record.value, "TTL": record.ttl}


def records_of(registry: Registry, network: Network) -> list[Record]:
    """The network's records, by name, type and value."""
    return sorted(registry.records_on(network.id), key=lambda r: (r.name.lower(), r.type, r.value))


def plan_add(registry: Registry, network: Network, req: RecordRequest) -> list[Op]:
    """The store operations that add `req` to `network`, after every check."""
    if network.id not in registry.networks:
        raise NotFound(f"network {network.name} not found")
    keys = _keys(req.name, network)
    _check_sandboxes(registry, network, req, keys)
    for other in registry.records_on(network.id):
        if not keys & _keys(other.name, network):
            continue
        if other.type == req.type and other.value == req.value:
            raise Conflict(
                f"record {req.name} {req.type} {req.value} already exists on network {network.name}"
            )
        if "CNAME" in (req.type, other.type):
            what = "a CNAME" if other.type == "CNAME" else f"{other.type} records"
            raise InvalidArgument(
                f"{req.name} already has {what} on network {network.name} ({other.name} "
                f"{other.type} {other.value}): a CNAME stands alone (RFC 1034 3.6.2); remove "
                "it first",
                field="Type",
            )
    created = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    record = Record(
        id=record_id(network.id, req.name, req.type, req.value),
        network_id=network.id,
        name=req.name,
        type=req.type,  # type: ignore[arg-type] - checked by RecordRequest.build
        value=req.value,
        ttl=req.ttl,
        created=created,
    )
    return [put(record)]


def plan_remove(
    registry: Registry, network: Network, name: str, type_: str, value: str | None
) -> list[Op]:
    """Remove the records `name` `type_` of `network` (only the one of `value` when given)."""
    type_name = type_.upper()
    record_type(type_name, "type")
    wanted = name.rstrip(".").lower()
    canonical = None if value is None else parse_rdata(type_name, value).text
    found = [
        r
        for r in registry.records_on(network.id)
        if r.name.lower() == wanted
        and r.type == type_name
        and (canonical is None or r.value == canonical)
    ]
    if not found:
        detail = "" if canonical is None else f" {canonical}"
        raise NotFound(f"no {type_name} record {name}{detail} on network {network.name}")
    return [delete(r) for r in found]


def _keys(name: str, network: Network) -> set[str]:
    return {n.lower() for n in record_names(name, network.name)}


def _members(registry: Registry, network: Network) -> Iterator[tuple[Sandbox, Endpoint, bool]]:
    """(sandbox, its endpoint, whether the endpoint's aliases are its own) for every sandbox
    with names on the network: this host's, those sharing their namespace, and on an overlay
    other hosts' as the registry knows them."""
    for endpoint in registry.endpoints_on(network.id):
        owner = registry.sandboxes.get(endpoint.sandbox_id)
        if owner is None:
            continue
        yield owner, endpoint, True
        for joiner in registry.joiners_of(owner.id):
            yield joiner, endpoint, False
    for endpoint, sandbox in list(registry.remote_endpoints.values()):
        if endpoint.network_id == network.id:
            yield sandbox, endpoint, True


def _check_sandboxes(
    registry: Registry, network: Network, req: RecordRequest, keys: set[str]
) -> None:
    """Refuse an A, AAAA or CNAME on a sandbox's name; a CNAME on any name the network has."""
    if req.type not in ("A", "AAAA", "CNAME"):
        return
    for member, endpoint, own_aliases in _members(registry, network):
        aliases = endpoint.aliases if own_aliases else ()
        names = {n.lower() for n in sandbox_names(member, aliases, network.name)}
        if req.type == "CNAME":
            ports = [f"_{p.container_port}._{p.proto}." for p in member.ports]
            names |= {port + n for port in ports for n in names}
            addresses = (endpoint.ipv4, endpoint.ipv6)
            names |= {wire.reverse_name(a).lower() for a in addresses if a is not None}
        if keys & names:
            raise InvalidArgument(
                f"{req.name} is a name of sandbox {member.name} on network {network.name}: "
                f"a {req.type} record there would clash with its addresses; choose another "
                "name (or give the sandbox an alias with `network connect --alias`)",
                field="Name",
            )
