"""What changed between two registry snapshots, found by object identity.

The registry keeps each network, sandbox and endpoint object until it changes (they are
frozen), so a change shows up as objects that are new in the snapshot (`came`) and objects that
left it (`went`); an edited object is both. Comparing identities is done in C (sets of `id`),
so a connect among 10,000 sandboxes costs the followers microseconds here, not a walk over
every object. Snapshots built independently (tests) simply look like many changes: `came` and
`went` are a superset of what changed by value, never less. A registry snapshot carries its
`Lineage` (what came and went since the one notified before it): then not even the sets of
ids are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from netcore.lineage import Moves
from netcore.model import Endpoint, Sandbox, Snapshot

T = TypeVar("T")

__all__ = ["Moves", "SnapshotDelta", "moves", "snapshot_delta"]


@dataclass(frozen=True, slots=True)
class SnapshotDelta:
    sandboxes: Moves[Sandbox]
    endpoints: Moves[Endpoint]
    same_networks: bool  # the same network objects, in the same order
    same_records: bool


def moves(old: tuple[T, ...], new: tuple[T, ...]) -> Moves[T]:
    """The objects of `new` not in `old` and those of `old` not in `new`, by identity."""
    if old is new:
        return Moves((), ())
    old_by_id = dict(zip(map(id, old), old, strict=True))
    new_by_id = dict(zip(map(id, new), new, strict=True))
    return Moves(
        tuple(new_by_id[i] for i in new_by_id.keys() - old_by_id.keys()),
        tuple(old_by_id[i] for i in old_by_id.keys() - new_by_id.keys()),
    )


_last: tuple[Snapshot, Snapshot, SnapshotDelta] | None = None


def snapshot_delta(old: Snapshot, new: Snapshot) -> SnapshotDelta:
    """What changed from `old` to `new`. The last answer is kept: each follower of the
    registry (the sandboxes' view, their files) asks about the same pair in turn."""
    global _last
    last = _last
    if last is not None and last[0] is old and last[1] is new:
        return last[2]
    known = new.lineage.moves_from(old, new) if new.lineage is not None else None
    sandboxes, endpoints = known or (
        moves(old.sandboxes, new.sandboxes),
        moves(old.endpoints, new.endpoints),
    )
    delta = SnapshotDelta(
        sandboxes,
        endpoints,
        _same(old.networks, new.networks),
        _same(old.records, new.records),
    )
    _last = (old, new, delta)
    return delta


def _same(old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    if old is new:
        return True
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))
