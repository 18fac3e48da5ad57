"""What the registry needs to hand out a snapshot per change without walking every object.

`SortedBucket` keeps one kind of object (networks, sandboxes, endpoints, records) in snapshot
order as changes arrive, so a new snapshot's tuple is a copy made in C, not a sort; a kind no
change touched keeps its tuple. `ChangeLog` collects, by identity, the objects that came and
went since the snapshot the registry's subscribers last saw: a `Lineage` attached to the next
one, so a follower learns what changed without comparing two whole snapshots.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Moves(Generic[T]):
    """Objects that are new in a snapshot (`came`) and objects that left it (`went`)."""

    came: tuple[T, ...]
    went: tuple[T, ...]

    def __bool__(self) -> bool:
        return bool(self.came or self.went)


@dataclass(frozen=True, slots=True)
class Lineage:
    """How a registry snapshot differs from `base` (the snapshot notified before it), valid
    only for the very tuples in `sandboxes_of` and `endpoints_of`."""

    base: weakref.ref[Any]
    sandboxes: Moves[Any]
    endpoints: Moves[Any]
    sandboxes_of: tuple[Any, ...]
    endpoints_of: tuple[Any, ...]

    def moves_from(self, old: Any, new: Any) -> tuple[Moves[Any], Moves[Any]] | None:
        """The (sandboxes, endpoints) moves from `old` to `new`, or None when this lineage
        does not describe that pair."""
        if (
            self.base() is not old
            or new.sandboxes is not self.sandboxes_of
            or new.endpoints is not self.endpoints_of
        ):
            return None
        return self.sandboxes, self.endpoints


class SortedBucket(Generic[T]):
    """Objects kept ordered by `key(obj)` (then id), changed one at a time."""

    def __init__(self, key: Callable[[T], Any], objects: Iterable[T] = ()) -> None:
        self._key = key
        pairs = sorted(((key(o), o.id), o) for o in objects)  # type: ignore[attr-defined]
        self._keys = [k for k, _ in pairs]
        self._objects = [o for _, o in pairs]
        self._tuple: tuple[T, ...] | None = None

    def replace(self, old: T | None, new: T | None) -> None:
        """`old` leaves (when given), `new` enters (when given)."""
        if old is not None:
            full = (self._key(old), old.id)  # type: ignore[attr-defined]
            i = bisect.bisect_left(self._keys, full)
            if i < len(self._keys) and self._objects[i] is old:
                del self._keys[i]
                del self._objects[i]
        if new is not None:
            full = (self._key(new), new.id)  # type: ignore[attr-defined]
            i = bisect.bisect_left(self._keys, full)
            self._keys.insert(i, full)
            self._objects.insert(i, new)
        self._tuple = None

    def as_tuple(self) -> tuple[T, ...]:
        """Every object in order: the same tuple until the next change."""
        if self._tuple is None:
            self._tuple = tuple(self._objects)
        return self._tuple


class ChangeLog:
    """Objects that came and went since the last notified snapshot, by identity: one put
    and then deleted before anyone saw it is in neither."""

    def __init__(self) -> None:
        self._came: dict[int, Any] = {}
        self._went: dict[int, Any] = {}

    def replace(self, old: Any | None, new: Any | None) -> None:
        if old is not None:
            if self._came.get(id(old)) is old:
                del self._came[id(old)]
            else:
                self._went[id(old)] = old
        if new is not None:
            self._came[id(new)] = new

    def moves(self) -> Moves[Any]:
        return Moves(tuple(self._came.values()), tuple(self._went.values()))

    def clear(self) -> None:
        self._came.clear()
        self._went.clear()
