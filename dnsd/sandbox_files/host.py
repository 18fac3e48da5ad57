"""The host's resolver configuration as the daemon last read it, and what says it changed."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import DaemonConfig
from .resolvconf import (
    Upstream,
    explicit_ndots,
    load_host_text,
    parse_upstream,
    read_host_resolv_conf,
)


@dataclass(frozen=True, slots=True)
class HostResolv:
    """The daemon's view of the host's resolver configuration."""

    source: str
    text: str
    upstreams: tuple[Upstream, ...]
    explicit_ndots: bool

    @classmethod
    def load(cls, config: DaemonConfig) -> HostResolv:
        path = config.host_resolv_conf
        parsed, upstreams = read_host_resolv_conf(path)
        if config.upstreams:  # --upstream overrides the file's servers, not its search/options
            upstreams = tuple(parse_upstream(a) for a in config.upstreams[:3])
        return cls(path, load_host_text(path), upstreams, explicit_ndots(parsed, None))


def host_file_stamp(path: str) -> tuple[int, int, int] | None:
    """What changes when the host's resolv.conf is replaced or edited."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
