"""The registry's snapshots kept in order change by change, the lineage each notified one
carries (it must say exactly what comparing the two snapshots by identity says), and its
lookups by index (what a walk over every object finds)."""

from __future__ import annotations

from dnsd.core.delta import moves
from netcore.model import Snapshot
from netcore.registry import Registry, put
from netcore.store.memory import MemoryStore
from tests.support.changes import NETS, random_history
from tests.support.snapshots import endpoint, sandbox


def _sorted_snapshot(registry: Registry) -> Snapshot:
    """What the registry built before it kept its tuples in order: a sort of every map."""
    return Snapshot(
        registry.revision,
        tuple(sorted(registry.networks.values(), key=lambda n: n.name)),
        tuple(sorted(registry.sandboxes.values(), key=lambda s: s.name)),
        tuple(sorted(registry.endpoints.values(), key=lambda e: (e.sandbox_id, e.ifname))),
        tuple(sorted(registry.records.values(), key=lambda r: (r.network_id, r.id))),
    )


def _check_lookups(registry: Registry) -> None:
    eps = list(registry.endpoints.values())
    for sb in registry.sandboxes.values():
        assert registry.find_sandbox(sb.name) is sb and registry.find_sandbox(sb.id) is sb
        mine = sorted((e for e in eps if e.sandbox_id == sb.id), key=lambda e: e.ifname)
        assert registry.endpoints_of(sb.id) == mine
        for net in NETS:
            on = [e for e in mine if e.network_id == net.id]
            assert registry.endpoint(net.id, sb.id) is (on[0] if on else None)
    for net in NETS:
        on = [e for e in eps if e.network_id == net.id]
        assert sorted(registry.endpoints_on(net.id), key=id) == sorted(on, key=id)


def test_lineage_says_what_comparing_snapshots_says():
    checked = 0
    for registry, seen in random_history(13, 400):
        # A reader between commits (an API call) builds a snapshot nobody was notified of.
        assert registry.snapshot() == _sorted_snapshot(registry)
        _check_lookups(registry)
        if len(seen) < 2:
            continue
        old, new = seen[-2], seen[-1]
        known = new.lineage.moves_from(old, new)
        assert known is not None
        for got, (old_objects, new_objects) in zip(
            known,
            ((old.sandboxes, new.sandboxes), (old.endpoints, new.endpoints)),
            strict=True,
        ):
            expected = moves(old_objects, new_objects)
            assert {id(o) for o in got.came} == {id(o) for o in expected.came}
            assert {id(o) for o in got.went} == {id(o) for o in expected.went}
        checked += 1
    assert checked > 100
    assert registry.snapshot() == _sorted_snapshot(registry)


def test_lineage_is_only_for_its_own_pair():
    registry = Registry(MemoryStore())
    seen: list[Snapshot] = []
    registry.subscribe(seen.append)
    registry.commit([put(NETS[0])])
    registry.commit([put(sandbox("a" * 64, "a"))])
    registry.commit([put(sandbox("b" * 64, "b"))])
    first, second, third = seen
    assert third.lineage.moves_from(second, third) is not None
    assert third.lineage.moves_from(first, third) is None  # skipped one: not its base
    rebuilt = Snapshot(
        third.revision, third.networks, tuple(list(third.sandboxes)), third.endpoints
    )
    assert third.lineage.moves_from(second, rebuilt) is None
    assert third == rebuilt  # the lineage is no part of the value


def test_a_snapshot_untouched_kind_keeps_its_tuple():
    registry = Registry(MemoryStore())
    registry.commit([put(NETS[0]), put(sandbox("a" * 64, "a"))])
    before = registry.snapshot()
    registry.commit([put(endpoint("e" * 64, NETS[0], "a" * 64, 2))])
    after = registry.snapshot()
    assert after.sandboxes is before.sandboxes and after.networks is before.networks
    assert after.endpoints is not before.endpoints
