"""The daemon's incremental host view gives exactly what `build_host_view` gives from scratch."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsd.hostdns.incremental import HostViewBuilder
from dnsd.hostdns.zone import HOST_ASKER, build_host_view
from tests.support.snapshots import endpoint, network, sandbox, snapshot

from .test_fast_vs_slow import snapshots
from .test_incremental_view import plain_host as _plain


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
@given(st.lists(snapshots(), min_size=2, max_size=6), st.sampled_from([None, "corp.example"]))
def test_successive_builds_equal_fresh_builds(sequence, domain):
    builder = HostViewBuilder(domain)
    for snap in sequence:
        assert _plain(builder.build(snap)) == _plain(build_host_view(snap, domain))


APP = network("a" * 64, "app", "br-app", "10.1.0.0/24")
DB = network("b" * 64, "db", "br-db", "10.2.0.0/24")
WEB, API = sandbox("1" * 64, "web"), sandbox("2" * 64, "api")


def test_a_bare_label_turns_ambiguous_and_back():
    """`svc` on one sandbox answers bare; a second sandbox with it makes it ambiguous; when
    that one goes, it answers again: each step equal to a fresh build."""
    one = snapshot([APP, DB], [WEB, API], [endpoint("e1" * 32, APP, WEB.id, 2, aliases=["svc"])])
    two = snapshot(
        [APP, DB],
        [WEB, API],
        [*one.endpoints, endpoint("e2" * 32, DB, API.id, 3, aliases=["svc"])],
        revision=2,
    )
    builder = HostViewBuilder()
    seen = []
    for snap in (one, two, one):
        host = builder.build(snap)
        assert _plain(host) == _plain(build_host_view(snap))
        seen.append((b"\x03svc\x00" in host.view.zones[HOST_ASKER].names, bool(host.ambiguous)))
    assert seen == [(True, False), (False, True), (True, False)]


def test_an_unchanged_snapshot_keeps_the_same_table():
    one = snapshot([APP], [WEB], [endpoint("e1" * 32, APP, WEB.id, 2)])
    builder = HostViewBuilder()
    first = builder.build(one).view.zones[HOST_ASKER].names
    assert (
        builder.build(snapshot([APP], [WEB], one.endpoints, revision=2))
        .view.zones[HOST_ASKER]
        .names
        is first
    )
