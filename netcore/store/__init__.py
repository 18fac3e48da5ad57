"""State stores: where the registry persists networks, sandboxes, endpoints and intents.

`open_store(url)` picks an implementation by scheme, imported lazily so optional backends stay
optional: `sqlite:///var/lib/dnsd/state.db` (default), `memory://` (tests, examples).
"""

from __future__ import annotations

import importlib

from .base import Delete, Op, Put, Store

__all__ = ["Delete", "Op", "Put", "Store", "open_store"]

STORES: dict[str, str] = {
    "memory": "netcore.store.memory:MemoryStore",
    "sqlite": "netcore.store.sqlite:SQLiteStore",
}


def open_store(url: str) -> Store:
    """Open the store a URL names (`sqlite:///path/state.db`, `memory://`)."""
    from ..errors import InvalidArgument

    scheme, _, rest = url.partition("://")
    if scheme not in STORES:
        raise InvalidArgument(
            f"unknown store {scheme!r}: use one of {', '.join(sorted(STORES))}", field="store"
        )
    module, _, cls = STORES[scheme].partition(":")
    return getattr(importlib.import_module(module), cls).from_url_path(rest)
