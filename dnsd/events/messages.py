"""Events in Docker's shape, and the events between two registry snapshots (pure).

A sandbox is Docker's `container`: `create`, `destroy`, `update` (its health check changed),
`health_status: healthy|unhealthy`. Networks: `create`, `destroy`, `connect`, `disconnect`
(`Actor.Attributes.container` is the sandbox's id, as Docker's).
"""

from __future__ import annotations

from typing import Any

from netcore.model import Network, Sandbox, Snapshot

from ..core.delta import snapshot_delta

Event = dict[str, Any]
CONTAINER, NETWORK = "container", "network"


def message(kind: str, action: str, actor_id: str, attributes: dict[str, str], ns: int) -> Event:
    """Docker's `events.Message`; container events also carry the legacy `status` and `id`."""
    event: Event = {}
    if kind == CONTAINER:
        event |= {"status": action, "id": actor_id}
    return event | {
        "Type": kind,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": attributes},
        "scope": "local",
        "time": ns // 1_000_000_000,
        "timeNano": ns,
    }


def sandbox_event(sandbox: Sandbox, action: str, ns: int) -> Event:
    return message(CONTAINER, action, sandbox.id, {"name": sandbox.name}, ns)


def health_event(sandbox: Sandbox, status: str, ns: int) -> Event:
    return sandbox_event(sandbox, f"health_status: {status}", ns)


def _network_event(network: Network, action: str, ns: int, container: str = "") -> Event:
    attributes = {"name": network.name, "type": network.driver}
    if container:
        attributes = {"container": container, **attributes}
    return message(NETWORK, action, network.id, attributes, ns)


def snapshot_events(old: Snapshot, new: Snapshot, ns: int) -> list[Event]:
    """What happened between two snapshots, in the order Docker reports it: networks and
    sandboxes created, then connects, disconnects, sandboxes and networks removed.

    Only the sandboxes and endpoints that came or went are looked at (`snapshot_delta`): a
    connect among 1,000 sandboxes does not walk them all."""
    delta = snapshot_delta(old, new)
    old_nets = {n.id: n for n in old.networks}
    new_nets = {n.id: n for n in new.networks}
    went_boxes = {s.id: s for s in delta.sandboxes.went}
    came_boxes = sorted(delta.sandboxes.came, key=_by_name)  # in the snapshot's order
    came_eps = {(e.network_id, e.sandbox_id) for e in delta.endpoints.came}
    went_eps = {(e.network_id, e.sandbox_id) for e in delta.endpoints.went}
    events = [_network_event(n, "create", ns) for nid, n in new_nets.items() if nid not in old_nets]
    for sandbox in came_boxes:
        before = went_boxes.get(sandbox.id)
        if before is None:
            events.append(sandbox_event(sandbox, "create", ns))
        elif before.healthcheck != sandbox.healthcheck:
            events.append(sandbox_event(sandbox, "update", ns))
    for nid, sid in sorted(came_eps - went_eps):
        if nid in new_nets:
            events.append(_network_event(new_nets[nid], "connect", ns, sid))
    for nid, sid in sorted(went_eps - came_eps):
        network = new_nets.get(nid) or old_nets.get(nid)
        if network is not None:
            events.append(_network_event(network, "disconnect", ns, sid))
    still = {s.id for s in came_boxes}
    events += [
        sandbox_event(s, "destroy", ns)
        for s in sorted(went_boxes.values(), key=_by_name)
        if s.id not in still
    ]
    events += [
        _network_event(n, "destroy", ns) for nid, n in old_nets.items() if nid not in new_nets
    ]
    return events


def _by_name(sandbox: Sandbox) -> str:
    return sandbox.name
