"""Make the kernel match the registry: after a restart, a crash, or a change behind our back.

Order matters: interrupted changes first (creates rolled back, removals completed), then
endpoints the store dropped at start (their address was taken meanwhile), then sandboxes whose
namespace vanished, then missing bridges and veths (and veths left unplugged by
a deleted bridge), then the ruleset. Everything repaired is returned, for the log.
"""

from __future__ import annotations

import logging

from .changes import Changes
from .endpoints import gateway_successor
from .errors import NetcoreError, NftError
from .intents import (
    Connect,
    CreateNetwork,
    CreateSandbox,
    Disconnect,
    Intent,
    RemoveNetwork,
    RemoveSandbox,
    UnknownIntent,
    drop,
)
from .kernel.base import AttachSpec, Kernel
from .nft.ruleset import BRIDGE_TABLE, HOST_TABLE
from .registry import Registry, delete, put

log = logging.getLogger(__name__)


def reconcile(registry: Registry, kernel: Kernel, changes: Changes) -> list[str]:
    repaired: list[str] = []
    repaired += _settle_intents(registry, changes)
    repaired += _clear_dropped_endpoints(registry, changes)
    repaired += _drop_vanished_sandboxes(registry, kernel, changes)
    repaired += _restore_links(registry, kernel, changes)
    repaired += _restore_firewall(registry, kernel, changes)
    return repaired


def _settle_intents(reg: Registry, changes: Changes) -> list[str]:
    repaired = []
    for intent_id, intent in list(reg.intents.items()):
        line = _settle(reg, changes, intent)
        if line:
            repaired.append(line)
        reg.commit([drop(intent_id)], notify=False)
    return repaired


def _settle(reg: Registry, changes: Changes, intent: Intent) -> str | None:
    """Roll back a creation that was not committed, complete a removal that was; say what
    was repaired, if anything."""
    match intent:
        case CreateNetwork(net) if net.id not in reg.networks:
            changes.roll_back(intent)
            return f"rolled back interrupted create of network {net.name}"
        case Connect(ep) if ep.id not in reg.endpoints:
            changes.roll_back(intent)
            return f"rolled back interrupted connect ({ep.ipv4} released)"
        case CreateSandbox(sb) if sb.id not in reg.sandboxes and sb.owned:
            changes.roll_back(intent)
            return f"rolled back interrupted create of sandbox {sb.name}"
        case Disconnect(ep) if ep.id not in reg.endpoints:
            changes.finish(intent)
            sandbox = reg.sandboxes.get(ep.sandbox_id)
            return f"completed interrupted disconnect of {sandbox.name}" if sandbox else None
        case RemoveNetwork(net) if net.id not in reg.networks:
            changes.finish(intent)
            return f"completed interrupted removal of network {net.name}"
        case RemoveSandbox(sb) if sb.id not in reg.sandboxes:
            changes.finish(intent)
            return f"completed interrupted removal of sandbox {sb.name}"
        case UnknownIntent(op):
            log.warning("dropping an intent of unknown kind %r (from a newer dnsd?)", op)
    return None


def _clear_dropped_endpoints(reg: Registry, changes: Changes) -> list[str]:
    """Endpoints the store dropped at start (another host took their address while this one
    was down): their veth goes, and the default route moves as on a disconnect."""
    repaired = []
    for endpoint in list(reg.dropped_endpoints.values()):
        sandbox = reg.sandboxes.get(endpoint.sandbox_id)
        network = reg.networks.get(endpoint.network_id)
        successor = gateway_successor(reg, sandbox, endpoint) if sandbox and network else None
        if successor is not None:
            reg.commit([put(successor)])
        changes.finish(Disconnect(endpoint))
        what = f"{sandbox.name if sandbox else endpoint.sandbox_id[:12]} on "
        what += network.name if network else endpoint.network_id[:12]
        repaired.append(
            f"endpoint of {what}: address {endpoint.ipv4} was taken by another host while this "
            f"one was down; endpoint dropped, veth {endpoint.host_ifname} removed"
        )
        del reg.dropped_endpoints[endpoint.id]
    return repaired


def _drop_vanished_sandboxes(reg: Registry, kernel: Kernel, changes: Changes) -> list[str]:
    """A namespace deleted behind our back: its endpoints go and its addresses are freed."""
    repaired = []
    for sandbox in list(reg.sandboxes.values()):
        if sandbox.mode == "host" or sandbox.id not in reg.sandboxes:
            continue
        if kernel.netns_exists(sandbox.netns_path):
            continue
        gone = [sandbox, *reg.joiners_of(sandbox.id)]
        ops = []
        released = []
        for sb in gone:
            for ep in reg.endpoints_of(sb.id):
                kernel.delete_link(ep.host_ifname)
                ops.append(delete(ep))
                released.append(str(ep.ipv4))
            ops.append(delete(sb))
        reg.commit(ops)
        for sb in gone:
            changes.finish(RemoveSandbox(sb))
        repaired.append(
            f"sandbox {sandbox.name}: namespace {sandbox.netns_path} vanished; removed "
            f"{', '.join(s.name for s in gone)} (released {', '.join(released) or 'nothing'})"
        )
    return repaired


def _restore_links(reg: Registry, kernel: Kernel, changes: Changes) -> list[str]:
    repaired = []
    present = kernel.host_link_names()
    recreated: set[str] = set()
    for net in reg.networks.values():
        if net.bridge not in present:
            recreated.add(net.id)
            repaired.append(f"bridge {net.bridge} of network {net.name} was missing: recreated")
        changes.ensure_links(net)  # idempotent: also restores addresses, MTU, VXLAN peers
    for ep in list(reg.endpoints.values()):
        # A veth whose bridge was deleted survives it, unplugged: plug in a new pair.
        unplugged = ep.network_id in recreated and ep.host_ifname in present
        if ep.host_ifname in present and not unplugged:
            continue
        sandbox = reg.sandboxes[ep.sandbox_id]
        net = reg.networks[ep.network_id]
        what = "was on the deleted bridge" if unplugged else "was missing"
        try:
            if unplugged:
                kernel.delete_link(ep.host_ifname)  # takes the sandbox's end with it
            if ep.ifname in kernel.sandbox_links(sandbox.netns_path):
                kernel.delete_sandbox_link(sandbox.netns_path, ep.ifname)
            kernel.attach(AttachSpec(ep, net, sandbox.netns_path, ep.is_gateway))
            repaired.append(f"veth of {sandbox.name} on {net.name} {what}: recreated")
        except NetcoreError as exc:
            repaired.append(f"veth of {sandbox.name} on {net.name} {what}, not restored: {exc}")
            reg.commit([delete(ep)])
    return repaired


def _restore_firewall(reg: Registry, kernel: Kernel, changes: Changes) -> list[str]:
    """Re-apply the whole ruleset (a rule deleted by hand comes back too), and say so when
    one of our tables was gone, e.g. after `nft flush ruleset`."""
    if not reg.networks:  # a first start: nothing to restore, nothing to say
        changes.firewall.apply()
        return []
    missing = []
    for table in (HOST_TABLE, BRIDGE_TABLE):
        try:
            # `nft -f` runs `list` as well: it fails for a missing table and changes nothing.
            kernel.apply_nft(f"list table {table}\n")
        except NftError:
            missing.append(table)
    changes.firewall.apply()
    if not missing:
        return []
    tables = " and ".join(f"table {t}" for t in missing)
    return [f"firewall: {tables} missing (flushed by hand?): ruleset re-applied"]
