"""The default store: one SQLite file in the state directory, WAL, synchronous commits."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import StoreError
from .base import Op, Put

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


class SQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit that returned survives a power cut, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"open state store {path}: {exc}: check that the state directory is writable"
            ) from exc
        self._lock = threading.Lock()

    @classmethod
    def from_url_path(cls, path: str) -> SQLiteStore:
        return cls(path)

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        data: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            rows = self._db.execute("SELECT kind, id, body FROM objects").fetchall()
        for kind, oid, body in rows:
            data.setdefault(kind, {})[oid] = json.loads(body)
        return data

    def commit(self, ops: Sequence[Op]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for op in ops:
                    if isinstance(op, Put):
                        self._db.execute(
                            "INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?, ?, ?)",
                            (op.kind, op.id, json.dumps(op.body, sort_keys=True)),
                        )
                    else:
                        self._db.execute(
                            "DELETE FROM objects WHERE kind = ? AND id = ?", (op.kind, op.id)
                        )
                self._db.execute("COMMIT")
            except (OSError, sqlite3.Error) as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(
                    f"write state store {self.path}: {exc}: nothing was changed; "
                    "free disk space or make the state directory writable"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
