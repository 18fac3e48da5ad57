"""The engine: networks, sandboxes and endpoints, kept in step with the kernel.

The engine checks a request and plans the objects; `Changes` carries the change out, bracketed
by an *intent* in the registry (write-ahead). A crash in between leaves an intent that
`reconcile` rolls back (creates) or completes (removals), so what the API reported is what
exists, and nothing unreported is half there. A failed step undoes what it did before the error
is raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .changes import Changes
from .endpoints import gateway_successor, plan_endpoint
from .errors import (
    AllocationConflict,
    Conflict,
    InvalidArgument,
    NameInUse,
    NetworkInUse,
    NotFound,
    VanishedNamespace,
)
from .healthcheck import Healthcheck
from .intents import Connect, CreateNetwork, CreateSandbox, Disconnect, RemoveNetwork, RemoveSandbox
from .ipam.pools import check_overlap, resolve_ipv4, resolve_ipv6
from .kernel.base import Kernel
from .kernel.netns import named_path
from .model import Endpoint, Network, Sandbox
from .names import new_id, validate_ifname
from .overlay import check_host_routes, overlay_fields
from .reconcile import reconcile
from .registry import Registry, delete, put
from .requests import ConnectRequest, NetworkRequest, SandboxRequest
from .store.base import Delete, Put

log = logging.getLogger(__name__)

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE_DEVICE = "dnsd0"
PREDEFINED = ("bridge", "host", "none")  # names Docker reserves


@dataclass(frozen=True, slots=True)
class EngineConfig:
    state_dir: str = "/var/lib/dnsd"
    etc_netns_dir: str = "/etc/netns"  # where `ip netns exec` finds per-namespace files
    default_network: bool = True
    # A cluster store: this host's underlay address, the tunnel end of its overlay networks.
    advertise_addr: str | None = None
    host_id: str = ""


ALLOCATION_ATTEMPTS = 16  # another host won the same address/VNI: plan again, this many times
RETRY_JITTER_S = 0.02  # up to this long between attempts, so racing hosts fall out of step


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Engine:
    """Thread-safe: every operation runs under one lock (callers may use worker threads)."""

    def __init__(self, registry: Registry, kernel: Kernel, config: EngineConfig) -> None:
        self.registry = registry
        self.kernel = kernel
        self.config = config
        self._lock = threading.RLock()
        self.changes = Changes(registry, kernel, advertise_addr=config.advertise_addr)
        self.repairs: list[str] = []  # what reconcile found and fixed, newest last
        # Called with a sandbox when its first connect starts, before the kernel work: lets
        # the DNS side prepare its listener meanwhile (the connect commits, or it is dropped).
        self.first_connect_hooks: list[Callable[[Sandbox], None]] = []
        # Called with the sandbox when such a connect failed for good (retries included).
        self.first_connect_failed_hooks: list[Callable[[Sandbox], None]] = []

    # --- lifecycle ---

    def start(self) -> None:
        """Bring the kernel in line with the registry (after a restart or a crash)."""
        with self._lock:
            self.kernel.enable_forwarding()
            self.reconcile()
            missing = self.config.default_network and not any(
                n.name == DEFAULT_NETWORK for n in self.registry.networks.values()
            )
        if missing:
            self.create_network(NetworkRequest.build(DEFAULT_NETWORK, bridge=DEFAULT_BRIDGE_DEVICE))

    # --- networks ---

    def _retrying(self, attempt: Callable[[], object]) -> object:
        """Run `attempt` under the engine lock, and again when another host took what it
        planned meanwhile (the store has brought the registry up to date before raising).

        The pause between attempts is taken without the lock, so the host's other requests go
        on meanwhile: callers must not hold the lock themselves (a re-entered lock would stay
        held through the pause). At worst ALLOCATION_ATTEMPTS * RETRY_JITTER_S in all."""
        for left in range(ALLOCATION_ATTEMPTS - 1, -1, -1):
            try:
                with self._lock:
                    return attempt()
            except AllocationConflict:
                if not left:
                    raise
                log.info("allocation raced another host: planning again")
                time.sleep(random.uniform(0, RETRY_JITTER_S))
        raise AssertionError("unreachable")

    def create_network(self, req: NetworkRequest) -> Network:
        return self._retrying(lambda: self._create_network(req))  # type: ignore[return-value]

    def _overlay_fields(self, req: NetworkRequest) -> dict:
        networks = self.registry.networks.values()
        return overlay_fields(req.mtu, self.config.advertise_addr, self.kernel, networks)

    def _check_host_routes(self, network: Network) -> None:
        check_host_routes(network, self._host_prefixes(), self.config.host_id)

    def _create_network(self, req: NetworkRequest) -> Network:
        with self._lock:
            if req.name in ("host", "none") or any(
                n.name == req.name for n in self.registry.networks.values()
            ):
                raise NameInUse(f"network with name {req.name} already exists")
            taken = {n.name: n.ipv4.subnet for n in self.registry.networks.values()}
            if req.subnet is not None:
                net4 = resolve_ipv4(req.subnet, req.ip_range, req.gateway, in_use=())
                check_overlap(net4.subnet, taken)
            else:
                in_use = [*taken.values(), *self._host_prefixes()]
                net4 = resolve_ipv4(None, req.ip_range, req.gateway, in_use=in_use)
            net6 = None
            if req.ipv6 or req.subnet6:
                if not req.subnet6:
                    raise InvalidArgument(
                        "an IPv6 network needs an explicit subnet (e.g. fd00:1::/64)",
                        field="Subnet",
                    )
                taken6 = {n.name: n.ipv6.subnet for n in self.registry.networks.values() if n.ipv6}
                net6 = resolve_ipv6(req.subnet6, req.ip_range6, req.gateway6, in_use=())
                check_overlap(net6.subnet, taken6)
            net_id = new_id()
            bridge = req.bridge or f"br-{net_id[:12]}"
            validate_ifname(bridge, "bridge name")
            if any(n.bridge == bridge for n in self.registry.networks.values()):
                raise NameInUse(f"bridge {bridge} is used by another network: choose another")
            network = Network(
                id=net_id,
                name=req.name,
                bridge=bridge,
                ipv4=net4,
                ipv6=net6,
                internal=req.internal,
                icc=req.icc,
                masquerade=req.masquerade,
                mtu=req.mtu,
                dns_ttl=req.dns_ttl if req.dns_ttl is not None else 0,
                labels=req.labels,
                options=req.options,
                created=_now(),
            )
            if req.driver == "overlay":
                network = replace(network, driver="overlay", **self._overlay_fields(req))
                self._check_host_routes(network)
            self.changes.create(CreateNetwork(network), done=[put(network)])
            log.info("network created: %s %s %s", network.name, network.ipv4.subnet, bridge)
            return network

    def remove_network(self, ref: str) -> None:
        self._retrying(lambda: self._remove_network(ref))

    def _remove_network(self, ref: str) -> None:
        with self._lock:
            network = self.registry.find_network(ref)
            users = self.registry.endpoints_on(network.id)
            remote = self.registry.remote_endpoints_on(network.id)
            if remote and not users:
                raise NetworkInUse(
                    f"network {network.name} has {len(remote)} endpoints on other hosts: "
                    "disconnect them first"
                )
            if users:
                names = sorted(self.registry.sandboxes[e.sandbox_id].name for e in users)
                raise NetworkInUse(
                    f"network {network.name} has active endpoints ({', '.join(names)}): "
                    "disconnect them first"
                )
            records = [delete(r) for r in self.registry.records_on(network.id)]
            self.changes.remove(RemoveNetwork(network), [delete(network), *records])

    def prune_networks(self) -> list[str]:
        """Remove every unused user-defined network; return their names."""
        with self._lock:
            unused = [
                n
                for n in self.registry.networks.values()
                if n.name != DEFAULT_NETWORK and not self.registry.endpoints_on(n.id)
            ]
            for network in unused:
                self._remove_network(network.id)  # no retry: a race here is reported
            return sorted(n.name for n in unused)

    # --- sandboxes ---

    def create_sandbox(self, req: SandboxRequest) -> Sandbox:
        sandbox = self._create_sandbox(req)
        if sandbox.mode == "bridge" and req.network_mode:
            # Outside the lock: a connect that must retry pauses without holding it.
            try:
                self.connect(req.network_mode, sandbox.id, req.connect)
            except BaseException:
                with contextlib.suppress(NotFound):  # removed meanwhile by another request
                    self.remove_sandbox(sandbox.id)
                raise
        return self.registry.sandboxes[sandbox.id]

    def _create_sandbox(self, req: SandboxRequest) -> Sandbox:
        with self._lock:
            if any(s.name == req.name for s in self.registry.sandboxes.values()):
                raise NameInUse(f"sandbox name {req.name} is already in use")
            sandbox_id = new_id()
            mode, joined_to, netns_path, owned = self._sandbox_namespace(req)
            if owned and os.path.exists(named_path(req.name)):
                raise Conflict(
                    f"namespace {named_path(req.name)} already exists: pass it as NetNS to "
                    "adopt it, or choose another name"
                )
            if owned:
                files = os.path.join(self.config.etc_netns_dir, req.name)
            else:
                files = os.path.join(self.config.state_dir, "sandboxes", sandbox_id)
            sandbox = Sandbox(
                id=sandbox_id,
                name=req.name,
                netns_path=netns_path,
                owned=owned,
                hostname=req.hostname,
                mode=mode,
                joined_to=joined_to,
                dns=req.dns,
                dns_search=req.dns_search,
                dns_options=req.dns_options,
                extra_hosts=req.extra_hosts,
                ports=req.ports,
                healthcheck=req.healthcheck,
                labels=req.labels,
                resolv_conf_path="" if mode == "host" else os.path.join(files, "resolv.conf"),
                hosts_path="" if mode == "host" else os.path.join(files, "hosts"),
                created=_now(),
            )
            self.changes.create(CreateSandbox(sandbox), done=[put(sandbox)])
            log.info("sandbox created: %s (%s) %s", sandbox.name, mode, netns_path)
            return sandbox

    def update_sandbox(self, ref: str, healthcheck: Healthcheck | None) -> Sandbox:
        """Replace a sandbox's health check (None removes it): registry only, no kernel work."""
        with self._lock:
            sandbox = self.registry.find_sandbox(ref)
            updated = replace(sandbox, healthcheck=healthcheck)
            if updated != sandbox:
                self.registry.commit([put(updated)])
            return updated

    def _sandbox_namespace(self, req: SandboxRequest) -> tuple[str, str | None, str, bool]:
        """(mode, joined_to, netns path, owned) for a request."""
        mode_s = req.network_mode
        if mode_s == "host":
            return "host", None, "/proc/self/ns/net", False
        if mode_s.startswith("container:"):
            target = self.registry.find_sandbox(mode_s.partition(":")[2])
            if target.mode == "container":
                target = self.registry.sandboxes[target.joined_to or ""]
            return "container", target.id, target.netns_path, False
        mode = "none" if mode_s == "none" else "bridge"
        if req.netns is not None:
            if not self.kernel.netns_exists(req.netns):
                raise VanishedNamespace(
                    f"{req.netns} is not a network namespace: give /run/netns/NAME or "
                    "/proc/PID/ns/net of a running process"
                )
            return mode, None, req.netns, False
        return mode, None, named_path(req.name), True

    def remove_sandbox(self, ref: str) -> None:
        with self._lock:
            sandbox = self.registry.find_sandbox(ref)
            joiners = self.registry.joiners_of(sandbox.id)
            if joiners:
                raise Conflict(
                    f"sandbox {sandbox.name} is shared by {', '.join(s.name for s in joiners)}: "
                    "remove those first"
                )
            for endpoint in self.registry.endpoints_of(sandbox.id):
                self.disconnect(endpoint.network_id, sandbox.id, force=True)
            self.changes.remove(RemoveSandbox(sandbox), [delete(sandbox)])

    # --- endpoints ---

    def connect(self, network_ref: str, sandbox_ref: str, req: ConnectRequest) -> Endpoint:
        try:
            return self._retrying(  # type: ignore[return-value]
                lambda: self._connect(network_ref, sandbox_ref, req)
            )
        except Exception:
            with self._lock, contextlib.suppress(NotFound):
                sandbox = self.registry.find_sandbox(sandbox_ref)
                if not self.registry.endpoints_of(sandbox.id):  # its first: hooks were told
                    for hook in self.first_connect_failed_hooks:
                        hook(sandbox)
            raise

    def _connect(self, network_ref: str, sandbox_ref: str, req: ConnectRequest) -> Endpoint:
        with self._lock:
            network = self.registry.find_network(network_ref)
            sandbox = self.registry.find_sandbox(sandbox_ref)
            if sandbox.mode != "bridge":
                raise Conflict(
                    f"sandbox {sandbox.name} is in {sandbox.mode} mode: it cannot be connected "
                    "to networks"
                )
            if self.registry.endpoint(network.id, sandbox.id) is not None:
                raise Conflict(f"sandbox {sandbox.name} is already connected to {network.name}")
            if not self.kernel.netns_exists(sandbox.netns_path):
                raise VanishedNamespace(
                    f"namespace {sandbox.netns_path} of sandbox {sandbox.name} is gone: "
                    "remove the sandbox"
                )
            plan = plan_endpoint(self.registry, network, sandbox, req)
            endpoint = plan.endpoint
            if network.vni is not None:  # an overlay: made here at the first local connect
                if network.bridge not in self.kernel.host_link_names():
                    self._check_host_routes(network)
                self.changes.ensure_links(network)
                endpoint = replace(endpoint, vtep=self.config.advertise_addr or "")
            if not self.registry.endpoints_of(sandbox.id):
                for hook in self.first_connect_hooks:
                    hook(sandbox)
            self.changes.create(Connect(endpoint), done=[put(endpoint), *plan.cursors])
            log.info("connected: %s to %s as %s", sandbox.name, network.name, endpoint.ipv4)
            return endpoint

    def disconnect(self, network_ref: str, sandbox_ref: str, *, force: bool = False) -> None:
        with self._lock:
            network = self.registry.find_network(network_ref)
            sandbox = self.registry.find_sandbox(sandbox_ref)
            endpoint = self.registry.endpoint(network.id, sandbox.id)
            if endpoint is None:
                raise NotFound(f"sandbox {sandbox.name} is not connected to network {network.name}")
            successor = gateway_successor(self.registry, sandbox, endpoint)
            ops: list[Put | Delete] = [delete(endpoint)]
            if successor is not None:
                ops.append(put(successor))
            self.changes.remove(Disconnect(endpoint), ops)

    # --- DNS-only data ---

    def commit_planned(self, plan: Callable[[Registry], Sequence[Put | Delete]]) -> None:
        """Commit what `plan` decides from the registry, under the engine's lock.

        For data without kernel work (DNS records): the check and the commit see one state
        (the registry's lock keeps other hosts' changes out in between); when another host
        changed the same data meanwhile, planned again from the updated registry.
        """
        self._retrying(lambda: self._commit_planned(plan))

    def _commit_planned(self, plan: Callable[[Registry], Sequence[Put | Delete]]) -> None:
        with self._lock, self.registry.lock:
            ops = plan(self.registry)
            if ops:
                self.registry.commit(ops)

    # --- reconcile ---

    def reconcile(self) -> list[str]:
        """Roll back or complete interrupted changes, then make the kernel match the registry.

        Returns what was repaired (also kept in `self.repairs` and logged).
        """
        with self._lock:
            self.changes.firewall.forget()  # a hand-flushed ruleset is re-applied
            repaired = reconcile(self.registry, self.kernel, self.changes)
            self.repairs.extend(repaired)
            for line in repaired:
                log.warning("reconcile: %s", line)
            return repaired

    def _host_prefixes(self) -> list:
        return list(self.kernel.host_links().prefixes)
