"""Events in Docker's shape, and the events between two registry snapshots (pure).

A sandbox is Docker's `container`: `create`, `destroy`, `update` (its health check changed),
`health_status: healthy|unhealthy`. Networks: `create`, `destroy`, `connect`, `disconnect`
(`Actor.Attributes.container` is the sandbox's id, as Docker's).
"""

from __future__ import annotations

from typing import Any

from netcore.model import Network, Sandbox, Snapshot

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
    sandboxes created, then connects, disconnects, sandboxes and networks removed."""
    old_nets = {n.id: n for n in old.networks}
    new_nets = {n.id: n for n in new.networks}
    old_boxes = {s.id: s for s in old.sandboxes}
    new_boxes = {s.id: s for s in new.sandboxes}
    old_eps = {(e.network_id, e.sandbox_id) for e in old.endpoints}
    new_eps = {(e.network_id, e.sandbox_id) for e in new.endpoints}
    events = [_network_event(n, "create", ns) for nid, n in new_nets.items() if nid not in old_nets]
    for sid, sandbox in new_boxes.items():
        before = old_boxes.get(sid)
        if before is None:
            events.append(sandbox_event(sandbox, "create", ns))
        elif before.healthcheck != sandbox.healthcheck:
            events.append(sandbox_event(sandbox, "update", ns))
    for nid, sid in sorted(new_eps - old_eps):
        if nid in new_nets:
            events.append(_network_event(new_nets[nid], "connect", ns, sid))
    for nid, sid in sorted(old_eps - new_eps):
        network = new_nets.get(nid) or old_nets.get(nid)
        if network is not None:
            events.append(_network_event(network, "disconnect", ns, sid))
    events += [
        sandbox_event(s, "destroy", ns) for sid, s in old_boxes.items() if sid not in new_boxes
    ]
    events += [
        _network_event(n, "destroy", ns) for nid, n in old_nets.items() if nid not in new_nets
    ]
    return events
