"""The kernel side of each change, bracketed by its intent in the registry.

A creation commits its intent, changes the kernel, then commits the result and drops the
intent (a failure undoes the kernel work first). A removal commits the result with its intent,
then finishes the kernel work, then drops the intent. `roll_back` and `finish` are also what
reconcile uses for an intent a crash left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence

from .errors import AllocationConflict, NetcoreError
from .firewall import Firewall
from .intents import (
    Connect,
    CreateNetwork,
    CreateSandbox,
    Creation,
    Disconnect,
    Removal,
    RemoveNetwork,
    RemoveSandbox,
    drop,
    record,
)
from .kernel.base import AttachSpec, Kernel
from .model import Endpoint, Network, Sandbox
from .names import new_id
from .overlay import overlay_peers, vxlan_device
from .registry import Registry
from .store.base import Op

log = logging.getLogger(__name__)


class Changes:
    def __init__(
        self, registry: Registry, kernel: Kernel, *, advertise_addr: str | None = None
    ) -> None:
        self.registry = registry
        self.kernel = kernel
        self.firewall = Firewall(registry, kernel)
        self.advertise_addr = advertise_addr  # a cluster: the tunnel end of overlays

    # --- a network's links ---

    def ensure_links(self, network: Network) -> None:
        """The bridge of a network, and on an overlay its VXLAN device with the remote peers
        (idempotent: also restores addresses and MTU)."""
        self.kernel.ensure_bridge(network)
        if network.vni is not None and self.advertise_addr is not None:
            peers = overlay_peers(self.registry.snapshot()).get(network.id, frozenset())
            self.kernel.ensure_vxlan(network, self.advertise_addr, peers)

    def delete_links(self, network: Network) -> None:
        if network.vni is not None:
            self.kernel.delete_link(vxlan_device(network))
        self.kernel.delete_link(network.bridge)

    # --- brackets ---

    def create(self, intent: Creation, done: Sequence[Op]) -> None:
        """Change the kernel for `intent`, then commit `done`; on failure undo and re-raise."""
        intent_id = new_id()
        self.registry.commit([record(intent_id, intent)], notify=False)
        try:
            self._make(intent)
        except BaseException:
            self._abandon(intent, intent_id)
            raise
        try:
            self.registry.commit([*done, drop(intent_id)])
        except AllocationConflict:
            # A cluster store refused the result (an overlay name or VNI another host took
            # meanwhile): undone at once, before a retry. Any other failure leaves the intent
            # to reconcile, as a crash would.
            self._abandon(intent, intent_id)
            raise

    def _abandon(self, intent: Creation, intent_id: str) -> None:
        try:
            self._unmake(intent)
        finally:
            self.registry.commit([drop(intent_id)], notify=False)

    def remove(self, intent: Removal, ops: Sequence[Op]) -> None:
        """Commit `ops` (reported at once), then finish the kernel work. The intent stays
        until that is done, so a crash in between is completed by reconcile."""
        intent_id = new_id()
        self.registry.commit([*ops, record(intent_id, intent)])
        self.finish(intent)
        self.firewall.apply()
        self.registry.commit([drop(intent_id)], notify=False)

    # --- kernel work ---

    def _make(self, intent: Creation) -> None:
        match intent:
            case CreateNetwork(network):
                self.ensure_links(network)
                self.firewall.apply(extra=network)
            case CreateSandbox(sandbox):
                if sandbox.owned:
                    self.kernel.create_netns(sandbox.name)
            case Connect(endpoint):
                network = self.registry.networks[endpoint.network_id]
                netns_path = self.registry.sandboxes[endpoint.sandbox_id].netns_path
                self.kernel.attach(AttachSpec(endpoint, network, netns_path, endpoint.is_gateway))
                self.firewall.apply(extra=endpoint)

    def _unmake(self, intent: Creation) -> None:
        """Undo `_make` after it failed part way."""
        match intent:
            case CreateNetwork(network):
                self.delete_links(network)
                self.firewall.apply()
            case CreateSandbox(sandbox):
                if sandbox.owned:
                    self.kernel.delete_netns(sandbox.name)
            case Connect(endpoint):
                self.kernel.delete_link(endpoint.host_ifname)
                self.firewall.apply()

    def roll_back(self, intent: Creation) -> None:
        """Remove what an interrupted creation (never committed) may have left in the kernel.
        The ruleset is left to the caller."""
        match intent:
            case CreateNetwork(network):
                self.delete_links(network)
            case CreateSandbox(sandbox):
                if sandbox.owned:
                    self.kernel.delete_netns(sandbox.name)
            case Connect(endpoint):
                self._roll_back_connect(endpoint)

    def _roll_back_connect(self, endpoint: Endpoint) -> None:
        self.kernel.delete_link(endpoint.host_ifname)
        sandbox = self.registry.sandboxes.get(endpoint.sandbox_id)
        if sandbox is None or not self.kernel.netns_exists(sandbox.netns_path):
            return
        leftovers = self.kernel.sandbox_links(sandbox.netns_path)
        taken = {e.ifname for e in self.registry.endpoints_of(sandbox.id)}
        for name in ("tmp" + endpoint.id[:12], endpoint.ifname):
            if name in leftovers and name not in taken:
                self.kernel.delete_sandbox_link(sandbox.netns_path, name)

    def finish(self, intent: Removal) -> None:
        """The kernel work of a removal already committed. The ruleset is left to the caller."""
        match intent:
            case RemoveNetwork(network):
                self.delete_links(network)
                log.info("network removed: %s", network.name)
            case RemoveSandbox(sandbox):
                self._finish_sandbox_removal(sandbox)
            case Disconnect(endpoint):
                self._finish_disconnect(endpoint)

    def _finish_sandbox_removal(self, sandbox: Sandbox) -> None:
        if sandbox.owned:
            self.kernel.delete_netns(sandbox.name)
        if sandbox.resolv_conf_path:
            shutil.rmtree(os.path.dirname(sandbox.resolv_conf_path), ignore_errors=True)
        log.info("sandbox removed: %s", sandbox.name)

    def _finish_disconnect(self, endpoint: Endpoint) -> None:
        """Delete the veth; when it gave the default route, move the route to the endpoint
        committed as the new gateway (or drop it)."""
        self.kernel.delete_link(endpoint.host_ifname)
        sandbox = self.registry.sandboxes.get(endpoint.sandbox_id)
        if sandbox is None:  # removed since: its namespace went with it
            return
        if endpoint.is_gateway and self.kernel.netns_exists(sandbox.netns_path):
            successor = next(
                (e for e in self.registry.endpoints_of(sandbox.id) if e.is_gateway), None
            )
            try:
                if successor is not None:
                    net = self.registry.networks[successor.network_id]
                    self.kernel.set_default_route(
                        sandbox.netns_path,
                        str(net.ipv4.gateway),
                        str(net.ipv6.gateway) if net.ipv6 and successor.ipv6 else None,
                    )
                else:
                    self.kernel.set_default_route(sandbox.netns_path, None, None)
            except NetcoreError as exc:
                log.warning("fix routes of %s after disconnect: %s", sandbox.name, exc)
        log.info("disconnected: %s from %s", sandbox.name, endpoint.network_id[:12])
