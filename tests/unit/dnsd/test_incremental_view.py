"""The daemon's incremental view builders give exactly what `build_view` gives from scratch
(the host's: tests/unit/dnsd/test_hostdns_incremental.py), and never change a view handed out."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsd.core.incremental import ViewBuilder
from dnsd.core.view import ZoneView, build_view
from dnsd.hostdns.incremental import HostViewBuilder
from dnsd.hostdns.zone import HOST_ASKER, HostView

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
