"""The follower handles a change of sandboxes and endpoints from what came and went: the
running listeners, the query-stats labels and the sandboxes it knows must always be what the
whole snapshot says."""

from __future__ import annotations

import asyncio
import random

import pytest

from dnsd.config import DaemonConfig
from dnsd.follower import Follower
from dnsd.forward.forwarder import Forwarder
from dnsd.forward.health import UpstreamHealth
from dnsd.metrics.counters import StatsBook, primary_networks
from dnsd.serve.listener_set import wanted_listeners
from netcore.kernel.fake import FakeKernel
from netcore.model import Snapshot
from netcore.registry import Registry, put
from netcore.store.memory import MemoryStore
from tests.support.changes import NETS, random_batch


@pytest.mark.asyncio
async def test_listeners_and_labels_follow_random_changes(tmp_path):
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 192.0.2.1\n")
    config = DaemonConfig(state_dir=str(tmp_path / "state"), host_resolv_conf=str(host))
    kernel = FakeKernel()
    kernel.add_foreign_netns("/x")  # every random sandbox's namespace
    book = StatsBook()
    follower = Follower(
        asyncio.get_running_loop(), config, Forwarder(UpstreamHealth()), kernel, stats_book=book
    )
    registry = Registry(MemoryStore())
    seen: list[Snapshot] = []
    registry.subscribe(follower.on_snapshot)
    registry.subscribe(seen.append)
    rng = random.Random(3)
    serial = [0]
    try:
        await asyncio.to_thread(registry.commit, [put(n) for n in NETS])
        for _ in range(120):
            batch = random_batch(rng, registry, serial, files_dir=str(tmp_path / "files"))
            await asyncio.to_thread(registry.commit, batch)
            snapshot = seen[-1]
            sandboxes = {s.id: s for s in snapshot.sandboxes}
            assert follower._sandboxes == sandboxes
            assert set(wanted_listeners(snapshot, sandboxes)) == {
                sid for sid in sandboxes if sid in follower.listeners
            }
            assert len(follower.listeners) == len(wanted_listeners(snapshot, sandboxes))
            assert book.network_of == primary_networks(snapshot)
        assert len(follower.listeners) > 3  # the changes did leave sandboxes connected
    finally:
        await follower.close()
