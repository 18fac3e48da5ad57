"""The host ruleset, rendered whole from the registry and applied only when it changed."""

from __future__ import annotations

from typing import Any

from .kernel.base import Kernel
from .model import Endpoint, Network
from .nft.ruleset import PublishedPort, render_host_ruleset
from .registry import Registry


class Firewall:
    def __init__(self, registry: Registry, kernel: Kernel) -> None:
        self.registry = registry
        self.kernel = kernel
        self._applied: str | None = None  # the script last applied
        self._inputs: Any = None  # what it was rendered from

    def apply(self, extra: Network | Endpoint | None = None) -> None:
        """Render the ruleset from the registry (plus an object being added) and apply it
        when it differs from the one last applied. The ruleset depends on the networks and
        the published ports only: a change of neither (a connect of a sandbox without ports)
        renders nothing."""
        networks = dict(self.registry.networks)
        if isinstance(extra, Network):
            networks[extra.id] = extra
        published = self._published(networks, extra if isinstance(extra, Endpoint) else None)
        inputs = (sorted(networks.values(), key=lambda n: n.name), published)
        if inputs == self._inputs and self._applied is not None:
            return
        script = render_host_ruleset(*inputs)
        if script != self._applied:
            self.kernel.apply_nft(script)
            self._applied = script
        self._inputs = inputs

    def _published(
        self, networks: dict[str, Network], extra: Endpoint | None
    ) -> list[PublishedPort]:
        """The ports of sandboxes that publish some, on their gateway endpoints."""
        sandboxes = self.registry.sandboxes
        if not any(sb.ports for sb in sandboxes.values()):
            return []
        endpoints = list(self.registry.endpoints.values())
        if extra is not None:
            endpoints.append(extra)
        published = []
        for ep in endpoints:
            sandbox = sandboxes.get(ep.sandbox_id)
            net = networks.get(ep.network_id)
            if sandbox is None or net is None or not ep.is_gateway or net.internal:
                continue
            published += [PublishedPort(net, ep.ipv4, b) for b in sandbox.ports]
        return published

    def forget(self) -> None:
        """Apply the next ruleset even if unchanged (the kernel's may have been flushed)."""
        self._applied = None
        self._inputs = None
