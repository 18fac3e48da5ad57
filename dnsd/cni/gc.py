"""CNI 1.1's GC: forget the attachments a runtime no longer has on this network.

The runtime lists the attachments (container id, interface) it still has; every other one that
this plugin made on the network is taken down as DEL would. "Made by this plugin" is read from
the labels ADD puts on the sandboxes it creates (`owner_labels`): sandboxes made through dnsd's
API or CLI, and those made for another CNI network, are never touched, so two CNI networks
joining one dnsd network cannot collect each other's containers. As the spec asks, GC goes on
past a failure and reports every failure at the end.
"""

from __future__ import annotations

from .request import Invocation

CONTAINER_LABEL = "dnsd.cni.container-id"
NETWORK_LABEL = "dnsd.cni.network"  # the CNI network (configuration `name`) of that ADD


def owner_labels(inv: Invocation) -> dict[str, str]:
    """The labels ADD gives a sandbox it creates."""
    assert inv.conf is not None
    return {CONTAINER_LABEL: inv.container_id, NETWORK_LABEL: inv.conf.name}


def stale_attachments(
    sandboxes: list[dict], cni_network: str, network: str, valid: frozenset[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """(sandbox name, container id, interface) of this CNI network's attachments to `network`
    that are not in `valid` (pure)."""
    out = []
    for sandbox in sandboxes:
        labels = sandbox.get("Labels") or {}
        container_id = labels.get(CONTAINER_LABEL)
        if container_id is None or labels.get(NETWORK_LABEL) != cni_network:
            continue
        endpoint = (sandbox.get("Networks") or {}).get(network)
        if endpoint is None or (container_id, endpoint["InterfaceName"]) in valid:
            continue
        out.append((sandbox["Name"], container_id, endpoint["InterfaceName"]))
    return out
