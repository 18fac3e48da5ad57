"""Keeps every sandbox's resolv.conf and hosts in step with the registry and the host's file.

A sandbox's files are rewritten only when what they are rendered from changed (the sandbox,
its addresses, the host's resolver configuration); a file the user edited is left alone
(see `managed`). A failed write is logged and tried again on the next change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from netcore.model import Sandbox, Snapshot

from ..config import DaemonConfig
from ..core.delta import SnapshotDelta, snapshot_delta
from ..core.live_index import LiveIndex
from ..core.view import root_sandbox
from .host import HostResolv
from .hosts import render_hosts
from .links import HostLine, link_host_lines
from .managed import write_managed
from .resolvconf import sandbox_resolv_conf

log = logging.getLogger(__name__)


class SandboxFilesWriter:
    """Owns the host's resolver configuration (`host`) and the files rendered from it."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.host = HostResolv.load(config)
        self._written: dict[str, tuple[object, ...]] = {}  # sandbox id -> what it was written from
        self._failed: set[str] = set()  # sandboxes whose last write failed: tried again
        self._last: tuple[Snapshot, HostResolv] | None = None  # what the last write saw
        # The last snapshot indexed, and whether it had shared namespaces or legacy links
        # (then a sandbox's files depend on others' and every one is looked at).
        self._live = LiveIndex(Snapshot())
        self._tangled = True

    def reload_host(self) -> bool:
        """Re-read the host's resolv.conf; True when it changed (then `write` everything)."""
        fresh = HostResolv.load(self.config)
        if fresh == self.host:
            return False
        log.info(
            "host resolv.conf changed: upstreams now %s",
            " ".join(str(u) for u in fresh.upstreams) or "none",
        )
        self.host = fresh
        return True

    def write(self, snapshot: Snapshot, sandboxes: Mapping[str, Sandbox]) -> None:
        """Write the files of every sandbox whose inputs changed since the last write.

        A change of sandboxes and endpoints only, with no shared namespace and no legacy link
        before or after it (each sandbox's files then depend on itself alone), looks at the
        sandboxes it touched (and those whose last write failed); anything else looks at
        every sandbox."""
        delta = self._quick_delta(snapshot)
        if delta is None:
            self._write_all(snapshot, sandboxes)
        else:
            self._write_touched(delta, sandboxes)
        self._last = (snapshot, self.host)

    def _quick_delta(self, snapshot: Snapshot) -> SnapshotDelta | None:
        """The change since the last write when only the sandboxes it touched need a look."""
        last = self._last
        if last is None or last[1] is not self.host or self._tangled:
            return None
        delta = snapshot_delta(last[0], snapshot)
        moved = (*delta.sandboxes.came, *delta.sandboxes.went)
        moved_eps = (*delta.endpoints.came, *delta.endpoints.went)
        if (
            not (delta.same_networks and delta.same_records)  # legacy links: the default network
            or any(sb.mode == "container" for sb in moved)
            or any(ep.links for ep in moved_eps)
        ):
            return None
        return delta

    def _write_all(self, snapshot: Snapshot, sandboxes: Mapping[str, Sandbox]) -> None:
        self._live = LiveIndex(snapshot)
        self._tangled = any(sb.mode == "container" for sb in snapshot.sandboxes) or any(
            ep.links for ep in snapshot.endpoints
        )
        links = link_host_lines(snapshot)
        for sid, sandbox in sandboxes.items():
            root = root_sandbox(sandbox, sandboxes)
            owner = root.id if root else sid
            self._write_one(sid, sandbox, self._addresses(owner), links.get(owner, ()))
        for sid in [s for s in self._written if s not in sandboxes]:
            del self._written[sid]
        self._failed = {sid for sid in self._failed if sid in sandboxes}

    def _write_touched(self, delta: SnapshotDelta, sandboxes: Mapping[str, Sandbox]) -> None:
        for sid in self._live.apply(delta)[1] | self._failed:
            sandbox = sandboxes.get(sid)
            if sandbox is None:
                self._written.pop(sid, None)
                self._failed.discard(sid)
            else:
                self._write_one(sid, sandbox, self._addresses(sid), ())

    def _addresses(self, sandbox_id: str) -> tuple[str, ...]:
        """The addresses of a sandbox's endpoints, by interface name."""
        own: list[str] = []
        for ep in self._live.endpoints_of(sandbox_id):
            own.append(str(ep.ipv4))
            if ep.ipv6 is not None:
                own.append(str(ep.ipv6))
        return tuple(own)

    def _write_one(
        self, sid: str, sandbox: Sandbox, own: tuple[str, ...], linked: tuple[HostLine, ...]
    ) -> None:
        if sandbox.mode == "host" or not sandbox.resolv_conf_path:
            return
        key = (sandbox, own, self.host, linked)
        if self._written.get(sid) == key:
            return
        hashes = os.path.join(self.config.state_dir, "sandboxes", sid)
        try:
            write_managed(
                sandbox.resolv_conf_path,
                sandbox_resolv_conf(sandbox, self.host.text, self.host.upstreams, self.host.source),
                hashes,
            )
            write_managed(sandbox.hosts_path, render_hosts(sandbox, own, linked), hashes)
            self._written[sid] = key
            self._failed.discard(sid)
        except Exception as exc:
            log.warning("write resolv.conf/hosts of %s: %s", sandbox.name, exc)
            self._failed.add(sid)
