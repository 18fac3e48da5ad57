"""Network namespaces: create, delete, check, and run code (open sockets) inside one.

The event loop thread never changes namespace: work inside a namespace runs on a short-lived
thread that calls setns(2) first. A socket opened there stays bound to that namespace and can be
used from any thread (moby's SetupFunc, pyroute2's create_socket, netavark's exec_netns!).
"""

from __future__ import annotations

import ctypes
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from ..errors import NetlinkError, VanishedNamespace

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


def named_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def exists(path: str) -> bool:
    """True while `path` still refers to a live network namespace."""
    try:
        # Every namespace file lives on the one nsfs device; a stale /run/netns entry does not.
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def inode(path: str) -> int:
    """The namespace identity behind a path (two paths, one namespace: same inode)."""
    return os.stat(path).st_ino


def run_in(path: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a fresh thread that has entered the network namespace at `path`."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            result["error"] = VanishedNamespace(f"namespace {path} is gone: {exc.strerror}")
            return
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                result["error"] = VanishedNamespace(f"enter namespace {path}: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def open_socket(path: str, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A socket living in the namespace at `path` (usable from any thread)."""
    return run_in(path, lambda: socket.socket(family, type_, proto))


def create(name: str) -> str:
    """Create a named namespace (`ip netns add`), bring its `lo` up; return its path."""
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
    except NetlinkError:
        _ip("netns", "delete", name, check=False)
        raise
    return named_path(name)


def delete(name: str) -> None:
    """Delete a named namespace; a missing one is not an error."""
    if os.path.exists(named_path(name)):
        _ip("netns", "delete", name, check=False)


def _ip(*args: str, check: bool = True) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetlinkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


class NamespaceWorker:
    """A long-lived thread inside one namespace that runs small jobs (open a socket) for
    callers on other threads: a queue round trip instead of a thread start per call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future] | None] = (
            queue.SimpleQueue()
        )
        ready: Future = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"netns:{path}", daemon=True
        )
        self._thread.start()
        ready.result()  # raises VanishedNamespace if the namespace is gone

    def _run(self, ready: Future) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise VanishedNamespace(
                        f"enter namespace {self.path}: {os.strerror(ctypes.get_errno())}"
                    )
            finally:
                os.close(fd)
        except OSError as exc:
            ready.set_exception(VanishedNamespace(f"namespace {self.path} is gone: {exc}"))
            return
        except VanishedNamespace as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def call(self, fn: Callable[[], T]) -> T:
        future: Future = Future()
        self._jobs.put((fn, future))
        return future.result()

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        return self.call(lambda: socket.socket(family, type_, proto))

    def close(self) -> None:
        self._jobs.put(None)
