"""The daemon's incremental view builders give exactly what `build_view` gives from scratch
(the host's: tests/unit/dnsd/test_hostdns_incremental.py), and never change a view handed out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsd.core.incremental import ViewBuilder
from dnsd.core.view import ZoneView, build_view
from dnsd.hostdns.incremental import HostViewBuilder
from dnsd.hostdns.zone import HOST_ASKER, HostView
from netcore.model import Snapshot
from tests.support import snapshots as build

from .test_fast_vs_slow import snapshots


def _plain(view: ZoneView) -> dict:
    return {
        sid: (dict(zone.names), zone.network_ids, zone.internal_only, zone.explicit_ndots)
        for sid, zone in view.zones.items()
    }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(st.lists(snapshots(), min_size=2, max_size=6), st.booleans())
def test_successive_builds_equal_fresh_builds(sequence, ndots):
    builder = ViewBuilder()
    for snapshot in sequence:
        assert _plain(builder.build(snapshot, host_explicit_ndots=ndots)) == _plain(
            build_view(snapshot, host_explicit_ndots=ndots)
        )


HEALTH = st.sampled_from(["starting", "healthy", "unhealthy"])


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(snapshots(), st.lists(st.lists(HEALTH, min_size=60, max_size=60), min_size=2, max_size=5))
def test_health_changes_equal_fresh_builds(snapshot, rounds):
    """The same snapshot with the members' health changing: only their names are re-packed,
    and the result (records and the fail-open count) is what a fresh build gives."""
    builder = ViewBuilder()
    for statuses in rounds:
        health = dict(zip((s.id for s in snapshot.sandboxes), statuses, strict=False))
        incremental = builder.build(snapshot, health=health)
        fresh = build_view(snapshot, health=health)
        assert _plain(incremental) == _plain(fresh)
        assert incremental.fail_open == fresh.fail_open


def plain_host(host: HostView) -> tuple:
    zone = host.view.zones[HOST_ASKER]
    return dict(zone.names), zone.network_ids, host.ambiguous, host.zones, host.view.revision


BUILDERS = {  # each incremental builder, and what of its views must match
    "sandboxes": (lambda: ViewBuilder().build, _plain),
    "host": (lambda: HostViewBuilder("corp.example").build, plain_host),
}


@pytest.mark.parametrize("kind", BUILDERS)
@settings(max_examples=60, deadline=None, database=None)
@given(snapshots(), snapshots())
def test_a_view_handed_out_never_changes(kind, first, second):
    make, plain = BUILDERS[kind]
    build = make()
    view = build(first)
    before = plain(view)
    build(second)
    assert plain(view) == before


# --- the quick way: a change to sandboxes and endpoints only ---


@st.composite
def evolutions(draw: st.DrawFn) -> list[Snapshot]:
    """Successive snapshots as the registry hands them out: drawn from one universe of
    objects, so what did not change is the same object (connects, disconnects, sandboxes
    coming, going and edited), now and then a network or record set that changes too."""
    universe = draw(snapshots())
    steps = []
    for revision in range(1, draw(st.integers(2, 7)) + 1):
        sandboxes = [s for s in universe.sandboxes if draw(st.booleans())]
        if sandboxes and draw(st.integers(0, 3)) == 0:  # an edited sandbox: a new object
            k = draw(st.integers(0, len(sandboxes) - 1))
            sandboxes[k] = replace(sandboxes[k], hostname=draw(st.sampled_from(["", "h", "db"])))
        endpoints = tuple(e for e in universe.endpoints if draw(st.booleans()))
        networks = universe.networks
        if draw(st.integers(0, 5)) == 0:  # rarely: networks change, the long way
            networks = networks[: draw(st.integers(1, len(networks)))]
        steps.append(
            replace(
                universe,
                revision=revision,
                networks=networks,
                sandboxes=tuple(sandboxes),
                endpoints=endpoints,
            )
        )
    return steps


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(evolutions(), st.booleans())
def test_connects_and_disconnects_applied_one_by_one_equal_fresh_builds(steps, ndots):
    builder = ViewBuilder()
    for snapshot in steps:
        incremental = builder.build(snapshot, host_explicit_ndots=ndots)
        fresh = build_view(snapshot, host_explicit_ndots=ndots)
        assert _plain(incremental) == _plain(fresh)
        assert incremental.fail_open == fresh.fail_open
        assert incremental.revision == snapshot.revision


def test_a_connect_among_many_sandboxes_does_not_index_them_all(monkeypatch):
    """The quick way is taken: a connect re-indexes nothing (index_snapshot is not called),
    and the zones of sandboxes on other networks are the very same objects."""
    from bench.view_cost import _endpoint, populated
    from dnsd.core import incremental

    base = populated(1000)  # 4 networks of 250 and an empty fifth
    newcomer = build.sandbox("f" * 64, "newcomer")
    joined = replace(
        base,
        revision=2,
        sandboxes=(*base.sandboxes, newcomer),
        endpoints=(*base.endpoints, _endpoint("f" * 64, base.networks[0], newcomer.id, 252)),
    )
    builder = ViewBuilder()
    before = builder.build(base)
    calls = []
    monkeypatch.setattr(incremental, "index_snapshot", lambda s: calls.append(s) or 1 / 0)
    after = builder.build(joined)
    assert calls == []
    assert _plain(after) == _plain(build_view(joined))
    other = base.endpoints[-1].sandbox_id  # on the fourth network
    assert after.zones[other] is before.zones[other]
    assert (
        after.zones[base.endpoints[0].sandbox_id] is not before.zones[base.endpoints[0].sandbox_id]
    )
    back = builder.build(replace(base, revision=3))  # and the disconnect
    assert calls == [] and newcomer.id not in back.zones
    assert _plain(back) == _plain(build_view(replace(base, revision=3)))
