"""The host ruleset, rendered whole from the registry and applied only when it changed."""

from __future__ import annotations

from .kernel.base import Kernel
from .model import Endpoint, Network
from .nft.ruleset import PublishedPort, render_host_ruleset
from .registry import Registry


class Firewall:
    def __init__(self, registry: Registry, kernel: Kernel) -> None:
        self.registry = registry
        self.kernel = kernel
        self._applied: str | None = None  # the script last applied

    def apply(self, extra: Network | Endpoint | None = None) -> None:
        """Render the ruleset from the registry (plus an object being added) and apply it
        when it differs from the one last applied."""
        networks = dict(self.registry.networks)
        endpoints = list(self.registry.endpoints.values())
        if isinstance(extra, Network):
            networks[extra.id] = extra
        elif isinstance(extra, Endpoint):
            endpoints.append(extra)
        published = []
        for ep in endpoints:
            sandbox = self.registry.sandboxes.get(ep.sandbox_id)
            net = networks.get(ep.network_id)
            if sandbox is None or net is None or not ep.is_gateway or net.internal:
                continue
            published += [PublishedPort(net, ep.ipv4, b) for b in sandbox.ports]
        script = render_host_ruleset(sorted(networks.values(), key=lambda n: n.name), published)
        if script != self._applied:
            self.kernel.apply_nft(script)
            self._applied = script

    def forget(self) -> None:
        """Apply the next ruleset even if unchanged (the kernel's may have been flushed)."""
        self._applied = None
