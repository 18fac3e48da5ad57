"""Make the kernel match the registry: after a restart, a crash, or a change behind our back.

Order matters: interrupted changes first (creates rolled back, removals completed), then
sandboxes whose namespace vanished, then missing bridges and veths (and veths left unplugged by
a deleted bridge), then the ruleset. Everything repaired is returned, for the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NetcoreError, NftError
from .kernel.base import AttachSpec
from .model import endpoint_from_dict, network_from_dict, sandbox_from_dict
from .nft.ruleset import BRIDGE_TABLE, HOST_TABLE
from .registry import delete
from .store.base import Delete

if TYPE_CHECKING:
    from .engine import Engine


def reconcile(engine: Engine) -> list[str]:
    repaired: list[str] = []
    repaired += _settle_intents(engine)
    repaired += _drop_vanished_sandboxes(engine)
    repaired += _restore_links(engine)
    repaired += _restore_firewall(engine)
    return repaired


def _settle_intents(engine: Engine) -> list[str]:
    reg, kernel = engine.registry, engine.kernel
    repaired = []
    for intent_id, intent in list(reg.intents.items()):
        op = intent.get("op")
        if op == "create_network":
            net = network_from_dict(intent["network"])
            if net.id not in reg.networks:
                kernel.delete_link(net.bridge)
                repaired.append(f"rolled back interrupted create of network {net.name}")
        elif op == "connect":
            ep = endpoint_from_dict(intent["endpoint"])
            if ep.id not in reg.endpoints:
                kernel.delete_link(ep.host_ifname)
                sandbox = reg.sandboxes.get(ep.sandbox_id)
                if sandbox is not None and kernel.netns_exists(sandbox.netns_path):
                    leftovers = kernel.sandbox_links(sandbox.netns_path)
                    for name in ("tmp" + ep.id[:12], ep.ifname):
                        taken = any(e.ifname == name for e in reg.endpoints_of(sandbox.id))
                        if name in leftovers and not taken:
                            kernel.delete_sandbox_link(sandbox.netns_path, name)
                repaired.append(f"rolled back interrupted connect ({ep.ipv4} released)")
        elif op == "create_sandbox":
            sb = sandbox_from_dict(intent["sandbox"])
            if sb.id not in reg.sandboxes and sb.owned:
                kernel.delete_netns(sb.name)
                repaired.append(f"rolled back interrupted create of sandbox {sb.name}")
        elif op == "disconnect":
            ep = endpoint_from_dict(intent["endpoint"])
            sandbox = reg.sandboxes.get(ep.sandbox_id)
            if ep.id not in reg.endpoints and sandbox is not None:
                successor = next((e for e in reg.endpoints_of(sandbox.id) if e.is_gateway), None)
                engine._finish_disconnect(sandbox, ep, successor)
                repaired.append(f"completed interrupted disconnect of {sandbox.name}")
            elif ep.id not in reg.endpoints:
                kernel.delete_link(ep.host_ifname)
        elif op == "remove_network":
            net = network_from_dict(intent["network"])
            if net.id not in reg.networks:
                kernel.delete_link(net.bridge)
                repaired.append(f"completed interrupted removal of network {net.name}")
        elif op == "remove_sandbox":
            sb = sandbox_from_dict(intent["sandbox"])
            if sb.id not in reg.sandboxes:
                engine._finish_sandbox_removal(sb)
                repaired.append(f"completed interrupted removal of sandbox {sb.name}")
        reg.commit([Delete("intent", intent_id)], notify=False)
    return repaired


def _drop_vanished_sandboxes(engine: Engine) -> list[str]:
    """A namespace deleted behind our back: its endpoints go and its addresses are freed."""
    reg, kernel = engine.registry, engine.kernel
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
            engine._finish_sandbox_removal(sb)
        repaired.append(
            f"sandbox {sandbox.name}: namespace {sandbox.netns_path} vanished; removed "
            f"{', '.join(s.name for s in gone)} (released {', '.join(released) or 'nothing'})"
        )
    return repaired


def _restore_links(engine: Engine) -> list[str]:
    reg, kernel = engine.registry, engine.kernel
    repaired = []
    present = kernel.host_links().names
    recreated: set[str] = set()
    for net in reg.networks.values():
        if net.bridge not in present:
            recreated.add(net.id)
            repaired.append(f"bridge {net.bridge} of network {net.name} was missing: recreated")
        engine._ensure_links(net)  # idempotent: also restores addresses, MTU, VXLAN peers
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


def _restore_firewall(engine: Engine) -> list[str]:
    """Re-apply the whole ruleset (a rule deleted by hand comes back too), and say so when
    one of our tables was gone, e.g. after `nft flush ruleset`."""
    if not engine.registry.networks:  # a first start: nothing to restore, nothing to say
        engine._apply_firewall()
        return []
    missing = []
    for table in (HOST_TABLE, BRIDGE_TABLE):
        try:
            # `nft -f` runs `list` as well: it fails for a missing table and changes nothing.
            engine.kernel.apply_nft(f"list table {table}\n")
        except NftError:
            missing.append(table)
    engine._apply_firewall()
    if not missing:
        return []
    tables = " and ".join(f"table {t}" for t in missing)
    return [f"firewall: {tables} missing (flushed by hand?): ruleset re-applied"]
