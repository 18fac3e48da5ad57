"""The per-namespace worker thread: runs jobs, leaves when idle, comes back on demand."""

from __future__ import annotations

import time

import pytest

from netcore.errors import VanishedNamespace
from netcore.kernel.netns import NamespaceWorker
from tests.support.requires import require_root

OWN = "/proc/self/ns/net"  # entering one's own namespace needs no privilege beyond CAP_SYS_ADMIN

require_root("setns(2) into a network namespace")


def test_runs_jobs_leaves_when_idle_and_returns():
    worker = NamespaceWorker(OWN, idle_s=0.1)
    assert not worker.running
    assert worker.call(lambda: 41 + 1) == 42
    assert worker.running
    deadline = time.monotonic() + 3
    while worker.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not worker.running
    with worker.socket(2, 2) as sock:  # AF_INET, SOCK_DGRAM: the thread came back
        assert sock.fileno() >= 0
    worker.close()
    with pytest.raises(VanishedNamespace):
        worker.call(lambda: None)


def test_errors_reach_the_caller():
    worker = NamespaceWorker(OWN)
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda: 1 / 0)
    worker.close()


def test_a_missing_namespace_is_refused():
    with pytest.raises(VanishedNamespace):
        NamespaceWorker("/proc/999999999/ns/net")
