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
from ..core.view import root_sandbox
from .host import HostResolv
from .hosts import render_hosts
from .links import link_host_lines
from .managed import write_managed
from .resolvconf import sandbox_resolv_conf

log = logging.getLogger(__name__)


class SandboxFilesWriter:
    """Owns the host's resolver configuration (`host`) and the files rendered from it."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.host = HostResolv.load(config)
        self._written: dict[str, tuple[object, ...]] = {}  # sandbox id -> what it was written from

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
        """Write the files of every sandbox whose inputs changed since the last write."""
        addresses: dict[str, list[str]] = {}
        for ep in snapshot.endpoints:
            own = addresses.setdefault(ep.sandbox_id, [])
            own.append(str(ep.ipv4))
            if ep.ipv6 is not None:
                own.append(str(ep.ipv6))
        links = link_host_lines(snapshot)
        for sid, sandbox in sandboxes.items():
            if sandbox.mode == "host" or not sandbox.resolv_conf_path:
                continue
            root = root_sandbox(sandbox, sandboxes)
            own = tuple(addresses.get(root.id if root else sid, ()))
            linked = links.get(root.id if root else sid, ())
            key = (sandbox, own, self.host, linked)
            if self._written.get(sid) == key:
                continue
            hashes = os.path.join(self.config.state_dir, "sandboxes", sid)
            try:
                write_managed(
                    sandbox.resolv_conf_path,
                    sandbox_resolv_conf(
                        sandbox, self.host.text, self.host.upstreams, self.host.source
                    ),
                    hashes,
                )
                write_managed(sandbox.hosts_path, render_hosts(sandbox, own, linked), hashes)
                self._written[sid] = key
            except Exception as exc:
                log.warning("write resolv.conf/hosts of %s: %s", sandbox.name, exc)
        for sid in [s for s in self._written if s not in sandboxes]:
            del self._written[sid]
