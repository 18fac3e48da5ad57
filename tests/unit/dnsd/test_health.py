"""UpstreamHealth: configured order, recently failed servers last (pure, clock injected)."""

from __future__ import annotations

import pytest

from dnsd.forward.health import DEFAULT_PENALTY_S, UpstreamHealth, UpstreamLike, health_key
from dnsd.sandbox_files.resolvconf import Upstream
from netcore.errors import InvalidArgument

A, B, C = Upstream("192.0.2.1"), Upstream("192.0.2.2"), Upstream("192.0.2.3")
_: UpstreamLike = A  # the real Upstream satisfies the structural type the forwarder uses


def test_no_failures_keeps_the_configured_order() -> None:
    health = UpstreamHealth()
    assert health.order([B, A, C], now=100.0) == [B, A, C]


def test_a_failed_server_goes_last_for_the_penalty_then_returns() -> None:
    health = UpstreamHealth(penalty_s=30.0)
    health.record_failure(A, now=100.0)
    assert health.order([A, B, C], now=100.0) == [B, C, A]
    assert health.order([A, B, C], now=129.9) == [B, C, A]
    assert health.is_penalised(A, now=129.9)
    assert health.order([A, B, C], now=130.0) == [A, B, C]
    assert not health.is_penalised(A, now=130.0)


def test_failed_servers_least_recently_failed_first() -> None:
    health = UpstreamHealth()
    health.record_failure(B, now=10.0)
    health.record_failure(A, now=12.0)
    assert health.order([A, B, C], now=13.0) == [C, B, A]
    health.record_failure(B, now=14.0)  # B failed again: now A has waited longest
    assert health.order([A, B, C], now=15.0) == [C, A, B]


def test_failures_at_the_same_time_keep_the_configured_order() -> None:
    health = UpstreamHealth()
    for upstream in (C, A, B):
        health.record_failure(upstream, now=5.0)
    assert health.order([A, B, C], now=6.0) == [A, B, C]


def test_success_clears_the_penalty() -> None:
    health = UpstreamHealth()
    health.record_failure(A, now=1.0)
    health.record_success(A, now=2.0)
    assert health.order([A, B], now=2.0) == [A, B]
    health.record_success(C, now=3.0)  # unknown server: nothing to clear, no error


def test_all_failed_still_returns_every_server() -> None:
    health = UpstreamHealth()
    for t, upstream in enumerate((A, B, C)):
        health.record_failure(upstream, now=float(t))
    assert health.order([A, B, C], now=3.0) == [A, B, C]


def test_keyed_by_address_port_and_where() -> None:
    health = UpstreamHealth()
    sandbox_lo = Upstream("127.0.0.1")
    host_lo = Upstream("127.0.0.1", host_loopback=True)
    other_port = Upstream("127.0.0.1", port=5353)
    health.record_failure(host_lo, now=0.0)
    assert health.order([host_lo, sandbox_lo, other_port], now=1.0) == [
        sandbox_lo,
        other_port,
        host_lo,
    ]
    assert health_key(host_lo) == ("127.0.0.1", 53, "host")
    assert health_key(sandbox_lo) == ("127.0.0.1", 53, "sandbox")


def test_equal_upstream_objects_share_their_health() -> None:
    health = UpstreamHealth()
    health.record_failure(Upstream("192.0.2.1"), now=0.0)
    assert health.order([A, B], now=1.0) == [B, A]


def test_default_penalty_and_validation() -> None:
    assert UpstreamHealth().penalty_s == DEFAULT_PENALTY_S == 30.0
    with pytest.raises(InvalidArgument, match="penalty_s"):
        UpstreamHealth(penalty_s=-1)


def test_zero_penalty_never_reorders() -> None:
    health = UpstreamHealth(penalty_s=0.0)
    health.record_failure(A, now=1.0)
    assert health.order([A, B], now=1.0) == [A, B]


def test_many_servers_are_pruned_once_expired() -> None:
    health = UpstreamHealth(penalty_s=1.0)
    for i in range(1100):
        health.record_failure(Upstream(f"10.0.{i // 256}.{i % 256}"), now=0.0)
    health.record_failure(A, now=10.0)  # past the prune threshold: the expired ones go
    assert health.order([B, A], now=10.5) == [B, A]
    assert len(health._failed_at) == 1  # memory stays bounded by recent failures
