"""`GET /info` in Docker's shape (what `docker info` prints), plus dnsd's own facts under `Dnsd`.

Docker's fields that mean something here are filled from the registry and the host; the rest
have Docker's zero values, so the docker CLI prints them as an idle engine would. The running
daemon adds its facts (store, listeners, upstreams and their health, cache, uptime) through a
`StatusSource`; an app without one (tests) reports what the engine alone knows.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from netcore.engine import Engine

from .shapes import _go_arch

StatusSource = Callable[[], dict[str, Any]]
STATUS_KEY = web.AppKey("status", StatusSource)


def daemon_id(state_dir: str) -> str:
    """Stable for one state directory: Docker's `ID` (an engine id kept across restarts)."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:48].upper()


def _mem_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def engine_facts(engine: Engine) -> dict[str, Any]:
    """What the registry says: counts of objects."""
    snapshot = engine.registry.snapshot()
    return {
        "Networks": len(snapshot.networks),
        "Sandboxes": len(snapshot.sandboxes),
        "Endpoints": len(snapshot.endpoints),
        "StateDir": engine.config.state_dir,
    }


def info_shape(engine: Engine, version: str, dnsd: dict[str, Any]) -> dict[str, Any]:
    """Docker's `GET /info` body with `dnsd` (engine facts merged in) under `Dnsd`."""
    facts = {**engine_facts(engine), **dnsd}
    sandboxes = facts["Sandboxes"]
    return {
        "ID": daemon_id(facts["StateDir"]),
        "Name": socket.gethostname(),
        "ServerVersion": version,
        "Containers": sandboxes,
        "ContainersRunning": sandboxes,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": "dnsd",
        "DriverStatus": [["Store", str(facts.get("Store", "sqlite"))]],
        "Plugins": {"Volume": [], "Network": ["bridge", "host", "null"], "Log": []},
        "MemoryLimit": False,
        "SwapLimit": False,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0,
        "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "LoggingDriver": "",
        "CgroupDriver": "",
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": _go_arch(),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "DockerRootDir": facts["StateDir"],
        "IndexServerAddress": "",
        "Labels": [],
        "ExperimentalBuild": False,
        "LiveRestoreEnabled": True,  # sandboxes keep their network while dnsd restarts
        "Warnings": [],
        "Dnsd": facts,
    }
