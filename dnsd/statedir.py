"""One daemon per state directory: an exclusive lock, and no debris from a start that failed.

Two daemons on one state directory (each with its own socket) would both reconcile the kernel
from the same store and rewrite each other's DNS redirects. The first takes `flock` on
`STATE_DIR/dnsd.lock` (with its pid in the file) for its whole life; the kernel drops the lock
when the process dies, however it dies, so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from netcore.errors import Conflict

LOCK_NAME = "dnsd.lock"
STORE_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db-journal")


class StateDirBusy(Conflict):
    """Another daemon holds the state directory's lock."""


class StateDirLock:
    """Held from `acquire` until `release` (or the process's end)."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise `StateDirBusy` naming the holder's pid."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirBusy(
                f"another dnsd (pid {holder}) uses {self.state_dir}: stop it, or give this one "
                "another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def store_exists(state_dir: str) -> bool:
    return os.path.exists(os.path.join(state_dir, STORE_FILES[0]))


def remove_store(state_dir: str) -> None:
    """Remove the store files a failed first start created (nothing else is there yet)."""
    for name in STORE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, name))
