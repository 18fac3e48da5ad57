"""An engine on the fake kernel and an in-memory store, as the unit tests build it."""

from __future__ import annotations

from pathlib import Path

from netcore.engine import Engine, EngineConfig
from netcore.kernel.fake import FakeKernel
from netcore.registry import Registry
from netcore.store.base import Store

TEST_VERSION = "0.0.0-test"  # the version the API reports in tests


def engine_config(tmp_path: Path) -> EngineConfig:
    """State and sandbox files under `tmp_path`."""
    return EngineConfig(state_dir=str(tmp_path / "state"), etc_netns_dir=str(tmp_path / "etc"))


def started_engine(store: Store, kernel: FakeKernel, tmp_path: Path) -> Engine:
    """An engine over `store` and `kernel`, started: the default `bridge` network exists, as
    in the daemon."""
    engine = Engine(Registry(store), kernel, engine_config(tmp_path))
    engine.start()
    return engine
