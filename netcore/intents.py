"""Intents: the write-ahead log of kernel changes, one frozen type per kind of change.

An intent is committed before the kernel is changed and dropped once the change is committed,
so one left in the store names a change a crash interrupted. In the store an intent is
`{"op": <kind>, <subject>: <the model object as a dict>}`, the format dnsd has always written,
so intents left by an older daemon are read unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import (
    Endpoint,
    Network,
    Sandbox,
    endpoint_from_dict,
    network_from_dict,
    sandbox_from_dict,
    to_dict,
)
from .store.base import Delete, Put

KIND = "intent"  # the store kind of intent records


@dataclass(frozen=True, slots=True)
class CreateNetwork:
    network: Network


@dataclass(frozen=True, slots=True)
class CreateSandbox:
    sandbox: Sandbox


@dataclass(frozen=True, slots=True)
class Connect:
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class RemoveNetwork:
    network: Network


@dataclass(frozen=True, slots=True)
class RemoveSandbox:
    sandbox: Sandbox


@dataclass(frozen=True, slots=True)
class Disconnect:
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class UnknownIntent:
    """An intent of a kind this version does not know (written by a newer one): kept as
    stored, and dropped by reconcile without kernel work, as dnsd always did."""

    op: str
    body: dict[str, Any]


# Creations are committed after the kernel work (a crash rolls them back); removals before
# it (a crash leaves the kernel work for reconcile to complete).
Creation = CreateNetwork | CreateSandbox | Connect
Removal = RemoveNetwork | RemoveSandbox | Disconnect
Intent = Creation | Removal | UnknownIntent

# kind in the store -> (type, the field holding its subject, how the subject is decoded)
_KINDS: dict[str, tuple[type, str, Any]] = {
    "create_network": (CreateNetwork, "network", network_from_dict),
    "create_sandbox": (CreateSandbox, "sandbox", sandbox_from_dict),
    "connect": (Connect, "endpoint", endpoint_from_dict),
    "remove_network": (RemoveNetwork, "network", network_from_dict),
    "remove_sandbox": (RemoveSandbox, "sandbox", sandbox_from_dict),
    "disconnect": (Disconnect, "endpoint", endpoint_from_dict),
}
_OPS: dict[type, str] = {cls: op for op, (cls, _, _) in _KINDS.items()}


def encode(intent: Intent) -> dict[str, Any]:
    """The stored body of an intent."""
    if isinstance(intent, UnknownIntent):
        return dict(intent.body)
    _, field, _ = _KINDS[_OPS[type(intent)]]
    return {"op": _OPS[type(intent)], field: to_dict(getattr(intent, field))}


def decode(body: dict[str, Any]) -> Intent:
    """An intent from its stored body; an unknown kind becomes `UnknownIntent`."""
    op = body.get("op")
    if op not in _KINDS:
        return UnknownIntent(str(op), dict(body))
    cls, field, from_dict = _KINDS[op]
    return cls(from_dict(body[field]))


def record(intent_id: str, intent: Intent) -> Put:
    """The store operation that writes an intent."""
    return Put(KIND, intent_id, encode(intent))


def drop(intent_id: str) -> Delete:
    return Delete(KIND, intent_id)
