"""The kernel edge: namespaces, links, addresses, routes. `Kernel` is the role; `LinuxKernel`
does it with pyroute2 and iproute2, `FakeKernel` records it for unit tests."""

from .base import AttachSpec, Kernel

__all__ = ["AttachSpec", "Kernel"]
