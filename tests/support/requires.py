"""What a test needs from the machine: skip locally with a reason that says how to get it, fail
in CI (env CI set), where a missing tool must not pass as a silent skip.

Honest skips (the kernel lacks a feature no package provides) use `kernel_lacks`, which skips
everywhere.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the environment says CI (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip (also from module level) with `reason`; in CI fail with it instead."""
    __tracebackhide__ = True  # reports point at the test, not here
    if in_ci():
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def missing_binaries(names: tuple[str, ...]) -> list[str]:
    """The names among `names` that are not on PATH."""
    return [name for name in names if shutil.which(name) is None]


def require_binary(name: str, install: str, *, also: tuple[str, ...] = ()) -> str:
    """The path of executable `name` (on PATH, else the first of `also` that runs)."""
    __tracebackhide__ = True  # reports point at the test, not here
    for path in (shutil.which(name), *also):
        if path and os.access(path, os.X_OK):
            return path
    unavailable(f"no `{name}` binary ({install})")


def require_module(name: str, install: str) -> ModuleType:
    """Python module `name`, imported."""
    __tracebackhide__ = True  # reports point at the test, not here
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"cannot import {name} ({install}): {exc}")


def require_root(why: str) -> None:
    """Return if running as root; `why` says what needs it."""
    __tracebackhide__ = True  # reports point at the test, not here
    if os.geteuid() != 0:
        unavailable(f"needs root: {why}")


def kernel_lacks(feature: str, config: str, consequence: str) -> NoReturn:
    """Skip, in CI too: the running kernel lacks `feature` (built with `config`)."""
    __tracebackhide__ = True  # reports point at the test, not here
    pytest.skip(f"kernel lacks {feature} ({config}); {consequence}")
