"""The store contract: kinds of JSON objects by id, changed in atomic batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# The kinds the registry keeps. `intent` records are the write-ahead log of kernel changes.
KINDS = ("network", "sandbox", "endpoint", "record", "intent", "meta")


@dataclass(frozen=True, slots=True)
class Put:
    kind: str
    id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    id: str


Op = Put | Delete


class Store(Protocol):
    """Persistent objects. `commit` is all-or-nothing and durable when it returns."""

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every object: kind -> id -> body."""
        ...

    def commit(self, ops: Sequence[Op]) -> None:
        """Apply puts and deletes atomically; raise StoreError and change nothing on failure."""
        ...

    def close(self) -> None: ...


def apply_ops(
    data: dict[str, dict[str, dict[str, Any]]], ops: Iterable[Op]
) -> dict[str, dict[str, dict[str, Any]]]:
    """The in-memory effect of a batch (shared by every store and by the registry)."""
    for op in ops:
        bucket = data.setdefault(op.kind, {})
        if isinstance(op, Put):
            bucket[op.id] = op.body
        else:
            bucket.pop(op.id, None)
    return data


# An operation from another host, and the cluster revision it reflects.
RemoteChange = tuple[Op, int]
ApplyRemote = Callable[[Sequence[RemoteChange], int | None], None]


@runtime_checkable
class SharedStore(Store, Protocol):
    """A store several hosts share: it also reports the changes the others make."""

    def follow(self, apply: ApplyRemote) -> None:
        """From now on, call `apply(changes, complete_at)` with other hosts' changes."""
        ...
