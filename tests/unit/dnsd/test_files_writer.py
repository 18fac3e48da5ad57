"""The sandbox files writer looks only at the sandboxes a change touched when it can: the files
on disk must always be what the whole registry says they are."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import dnsd.sandbox_files.managed
from dnsd.config import DaemonConfig
from dnsd.sandbox_files.hosts import render_hosts
from dnsd.sandbox_files.writer import SandboxFilesWriter
from netcore.model import Snapshot
from netcore.registry import Registry, put
from netcore.store.memory import MemoryStore
from tests.support.changes import NETS, random_batch
from tests.support.snapshots import endpoint, sandbox


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    monkeypatch.setattr(dnsd.sandbox_files.managed.os, "fsync", lambda fd: None)


def _writer(tmp_path: Path) -> SandboxFilesWriter:
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 192.0.2.1\n")
    return SandboxFilesWriter(
        DaemonConfig(state_dir=str(tmp_path / "state"), host_resolv_conf=str(host))
    )


def _expected_hosts(snapshot: Snapshot) -> dict[str, str]:
    """Every sandbox's hosts file rendered from the whole snapshot."""
    out = {}
    for sb in snapshot.sandboxes:
        own = []
        for ep in snapshot.endpoints:  # in (sandbox, ifname) order
            if ep.sandbox_id == sb.id:
                own += [str(ep.ipv4)] + ([str(ep.ipv6)] if ep.ipv6 else [])
        out[sb.hosts_path] = render_hosts(sb, own)
    return out


def _follow(writer: SandboxFilesWriter, snapshot: Snapshot) -> None:
    writer.write(snapshot, {s.id: s for s in snapshot.sandboxes})


def test_files_after_each_change_are_what_the_whole_registry_says(tmp_path):
    rng = random.Random(21)
    registry = Registry(MemoryStore())
    writer = _writer(tmp_path)
    registry.subscribe(lambda snapshot: _follow(writer, snapshot))
    registry.commit([put(n) for n in NETS])
    serial = [0]
    for _ in range(150):
        batch = random_batch(rng, registry, serial, files_dir=str(tmp_path / "files"))
        registry.commit(batch, notify=rng.random() < 0.7)
        snapshot = registry.snapshot()
        if snapshot.revision != writer._last[0].revision:
            continue  # not notified yet
        for path, text in _expected_hosts(snapshot).items():
            assert Path(path).read_text() == text
        assert set(writer._written) == {s.id for s in snapshot.sandboxes}


def test_a_failed_write_is_tried_again_at_the_next_change(tmp_path):
    registry = Registry(MemoryStore())
    writer = _writer(tmp_path)
    registry.subscribe(lambda snapshot: _follow(writer, snapshot))
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory is wanted")
    a = sandbox("a" * 64, "a", resolv_conf_path=f"{blocked}/resolv.conf", hosts_path=f"{blocked}/h")
    b = sandbox("b" * 64, "b", resolv_conf_path=f"{tmp_path}/b/r", hosts_path=f"{tmp_path}/b/h")
    registry.commit([put(NETS[0]), put(a), put(b)])
    assert "a" * 64 not in writer._written
    blocked.unlink()
    registry.commit([put(endpoint("e" * 64, NETS[0], b.id, 3))])  # touches b only
    assert Path(a.hosts_path).exists() and "a" * 64 in writer._written


def test_a_joined_namespace_gets_its_root_s_addresses(tmp_path):
    """container:<root> mode: the joiner's files follow the root's endpoints, a change the
    quick way (touched sandboxes only) would miss."""
    registry = Registry(MemoryStore())
    writer = _writer(tmp_path)
    registry.subscribe(lambda snapshot: _follow(writer, snapshot))
    root = sandbox(
        "a" * 64, "root", resolv_conf_path=f"{tmp_path}/r/rc", hosts_path=f"{tmp_path}/r/h"
    )
    joiner = sandbox(
        "b" * 64,
        "joiner",
        mode="container",
        joined_to=root.id,
        resolv_conf_path=f"{tmp_path}/j/rc",
        hosts_path=f"{tmp_path}/j/h",
    )
    registry.commit([put(NETS[0]), put(root)])
    registry.commit([put(joiner)])
    registry.commit([put(endpoint("e" * 64, NETS[0], root.id, 7))])
    assert "10.0.0.7" in Path(joiner.hosts_path).read_text()
