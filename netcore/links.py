"""Docker's legacy links: checking what a connect asks to link to.

A link names another sandbox on the same network and an alias for it that only the linking
sandbox resolves (and, on the default `bridge` network, finds in its hosts file). Links are
stored by target id, so the alias follows the target's current address.
"""

from __future__ import annotations

from .errors import InvalidArgument, NotFound, SandboxNotFound
from .model import Network, Sandbox
from .registry import Registry


def resolve_links(
    registry: Registry, network: Network, sandbox: Sandbox, links: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """`(target ref, alias)` pairs as `(target id, alias)`; the target must be another sandbox
    attached to `network` (its own, or through the sandbox whose namespace it shares)."""
    out: list[tuple[str, str]] = []
    for ref, alias in links:
        try:
            target = registry.find_sandbox(ref)
        except NotFound as exc:
            raise SandboxNotFound(f"cannot link to {ref}: {exc}") from None
        if target.id == sandbox.id:
            raise InvalidArgument(f"sandbox {sandbox.name} cannot link to itself", field="Links")
        owner = target.joined_to if target.mode == "container" and target.joined_to else target.id
        if registry.endpoint(network.id, owner) is None:
            raise InvalidArgument(
                f"cannot link to {target.name}: it is not connected to network {network.name}; "
                f"connect it first or link to a sandbox on {network.name}",
                field="Links",
            )
        out.append((target.id, alias))
    return tuple(out)
