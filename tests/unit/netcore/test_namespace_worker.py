"""Namespace workers: jobs run inside their namespace on a small shared pool of threads, which
return to the daemon's namespace after each job."""

from __future__ import annotations

import os
import threading

import pytest

from netcore.errors import VanishedNamespace
from netcore.kernel import netns
from netcore.kernel.netns import NamespaceWorker
from tests.support.requires import require_root

OWN = "/proc/self/ns/net"  # entering one's own namespace needs no privilege beyond CAP_SYS_ADMIN

require_root("setns(2) into a network namespace")


def test_runs_jobs_and_close_refuses_more():
    worker = NamespaceWorker(OWN)
    assert worker.call(lambda: 41 + 1) == 42
    with worker.socket(2, 2) as sock:  # AF_INET, SOCK_DGRAM
        assert sock.fileno() >= 0
    worker.close()
    with pytest.raises(VanishedNamespace):
        worker.call(lambda: None)


def test_errors_reach_the_caller():
    worker = NamespaceWorker(OWN)
    with pytest.raises(ZeroDivisionError):
        worker.call(lambda: 1 / 0)


def test_a_missing_namespace_is_refused():
    with pytest.raises(VanishedNamespace):
        NamespaceWorker("/proc/999999999/ns/net")


def test_many_namespaces_share_a_few_threads_that_enter_each_and_come_back(tmp_path):
    name = f"nsw{os.getpid()}"
    path = netns.create(name)
    try:
        home = os.stat(OWN).st_ino
        inside = os.stat(path).st_ino
        workers = [NamespaceWorker(path if i % 2 else OWN) for i in range(200)]
        seen = [
            w.call(lambda: (os.stat("/proc/thread-self/ns/net").st_ino, threading.get_native_id()))
            for w in workers
        ]
        assert {ino for ino, _ in seen[1::2]} == {inside}
        assert {ino for ino, _ in seen[0::2]} == {home}
        tids = {tid for _, tid in seen}
        assert 0 < len(tids) <= netns.POOL_THREADS
        # After its job each pool thread is home again: none keeps the namespace alive.
        assert {os.stat(f"/proc/self/task/{tid}/ns/net").st_ino for tid in tids} == {home}
    finally:
        netns.delete(name)
