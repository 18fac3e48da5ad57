"""Root and tool gating for integration tests: skip locally, fail in CI (CI=true)."""

from __future__ import annotations

import os

import pytest

from tests.support.requires import in_ci, missing_binaries

from .harness import HostNamespace, new_host

TOOLS = ("ip", "nft", "nsenter", "dig", "dnsmasq", "ping", "getent")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, bridges, nftables)"
    absent = missing_binaries(TOOLS)
    if absent:
        return (
            f"missing tools: {', '.join(absent)} "
            "(apt-get install iproute2 nftables dnsutils dnsmasq-base iputils-ping)"
        )
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason is None:
        return
    for item in items:
        if "integration" in item.keywords:
            if in_ci():
                raise pytest.UsageError(f"integration tests must run in CI, but: {reason}")
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def host(tmp_path) -> HostNamespace:
    h = new_host(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture
def daemon(host) -> HostNamespace:
    host.start_upstream()
    host.start_daemon()
    return host


@pytest.fixture
def full(request) -> bool:
    """True with `--full`: storm and kill loops at their long size instead of the CI one."""
    return bool(request.config.getoption("--full"))


@pytest.fixture
def cluster(tmp_path):
    """Three hosts (A, B, C) on an underlay with one etcd member; their daemons running."""
    from .cluster import new_cluster, require_etcd

    require_etcd()
    c = new_cluster(tmp_path)
    try:
        c.start_etcd()
        for letter in "abc":
            c.add_host(letter)
        yield c
    finally:
        c.cleanup()
