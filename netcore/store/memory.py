"""A store in memory: for unit tests and examples (nothing survives the process)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .base import Op, apply_ops


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, dict[str, Any]]] = {}
        self.fail_next: Exception | None = None  # tests: make the next commit fail

    @classmethod
    def from_url_path(cls, _path: str) -> MemoryStore:
        return cls()

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        return copy.deepcopy(self._data)

    def commit(self, ops: Sequence[Op]) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        apply_ops(self._data, copy.deepcopy(list(ops)))

    def close(self) -> None:
        pass
