"""State stores: where the registry persists networks, sandboxes, endpoints and intents.

`open_store(url)` picks an implementation by scheme, imported lazily so optional backends stay
optional: `sqlite:///var/lib/dnsd/state.db` (default), `memory://` (tests, examples), and
`etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, shared by the hosts of a cluster.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Delete, Op, Put, SharedStore, Store

__all__ = ["Delete", "Op", "Put", "SharedStore", "Store", "open_store"]

STORES: dict[str, str] = {
    "memory": "netcore.store.memory:MemoryStore",
    "sqlite": "netcore.store.sqlite:SQLiteStore",
    "etcd": "netcore.store.etcd:EtcdStore",
}
SHARED = ("etcd",)  # stores that take this host's cluster options


def open_store(url: str, cluster: Any = None) -> Store:
    """Open the store a URL names (`sqlite:///path/state.db`, `memory://`, `etcd://h:p/pfx`);
    `cluster` (netcore.store.etcd.ClusterOptions) is for shared stores."""
    from ..errors import InvalidArgument

    scheme, _, rest = url.partition("://")
    if scheme not in STORES:
        raise InvalidArgument(
            f"unknown store {scheme!r}: use one of {', '.join(sorted(STORES))}", field="store"
        )
    module, _, cls = STORES[scheme].partition(":")
    factory = getattr(importlib.import_module(module), cls).from_url_path
    return factory(rest, cluster) if scheme in SHARED else factory(rest)
