"""Events of registry changes found from what came and went (the snapshots' lineage) are the
events a comparison of the whole snapshots gives."""

from __future__ import annotations

from dnsd.events.messages import sandbox_event, snapshot_events
from netcore.model import Snapshot
from tests.support.changes import random_history


def _whole_comparison(old: Snapshot, new: Snapshot, ns: int) -> list[dict]:
    """The reference: every sandbox and endpoint of both snapshots compared."""
    old_nets = {n.id: n for n in old.networks}
    new_nets = {n.id: n for n in new.networks}
    old_boxes = {s.id: s for s in old.sandboxes}
    new_boxes = {s.id: s for s in new.sandboxes}
    old_eps = {(e.network_id, e.sandbox_id) for e in old.endpoints}
    new_eps = {(e.network_id, e.sandbox_id) for e in new.endpoints}
    events = []
    for sid, sandbox in new_boxes.items():
        before = old_boxes.get(sid)
        if before is None:
            events.append(sandbox_event(sandbox, "create", ns))
        elif before.healthcheck != sandbox.healthcheck:
            events.append(sandbox_event(sandbox, "update", ns))
    connects = sorted(new_eps - old_eps)
    disconnects = sorted(old_eps - new_eps)
    destroyed = [s for sid, s in old_boxes.items() if sid not in new_boxes]
    assert old_nets == new_nets  # the random changes leave networks alone
    return [
        *events,
        *(("connect", nid, sid) for nid, sid in connects),
        *(("disconnect", nid, sid) for nid, sid in disconnects),
        *(sandbox_event(s, "destroy", ns) for s in destroyed),
    ]


def _comparable(events: list) -> list:
    return [
        (e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["container"])
        if isinstance(e, dict) and e["Type"] == "network"
        else e
        for e in events
    ]


def test_events_from_lineage_match_a_whole_comparison():
    for _, seen in random_history(5, 300):
        if len(seen) < 2:
            continue
        old, new = seen[-2], seen[-1]
        expected = _whole_comparison(old, new, 7)
        assert _comparable(snapshot_events(old, new, 7)) == expected
        # The same pair rebuilt by hand (no lineage): the same events.
        bare = Snapshot(new.revision, new.networks, new.sandboxes, new.endpoints, new.records)
        assert _comparable(snapshot_events(old, bare, 7)) == expected
