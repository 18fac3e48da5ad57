"""Network namespaces: create, delete, check, and run code (open sockets) inside one.

The event loop thread never changes namespace: work inside a namespace runs on a short-lived
thread that calls setns(2) first. A socket opened there stays bound to that namespace and can be
used from any thread (moby's SetupFunc, pyroute2's create_socket, netavark's exec_netns!).
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    """Runs small jobs (open a socket, apply nft) inside one namespace, for callers on other
    threads, on a small pool of threads shared by every namespace (issue 13: a thread per
    namespace was 1,002 threads after a restart with 1,000 sandboxes).

    A pool thread enters the job's namespace with setns(2) for each job (tens of us) and
    returns to the daemon's after it; a child process it forks starts in the job's namespace.
    """

    def __init__(self, path: str) -> None:
        if not exists(path):
            raise VanishedNamespace(f"namespace {path} is gone")
        self.path = path
        self._closed = False

    def call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise VanishedNamespace(f"worker of {self.path} is closed")
        return _pool().submit(_inside, self.path, fn).result()

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        return self.call(lambda: socket.socket(family, type_, proto))

    def close(self) -> None:
        self._closed = True


POOL_THREADS = 4  # namespace jobs are short (a bind, a 1 ms nft transaction): a few suffice
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


_home_fd = -1  # the process's own namespace, where pool threads return after each job


def _pool() -> ThreadPoolExecutor:
    global _executor, _home_fd
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _home_fd = os.open("/proc/self/ns/net", os.O_RDONLY)  # the main thread's
                _executor = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="netns")
    return _executor


def _inside(path: str, fn: Callable[[], T]) -> T:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise VanishedNamespace(f"namespace {path} is gone: {exc.strerror}") from exc
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise VanishedNamespace(f"enter namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
    try:
        return fn()
    finally:
        # Back home: a thread left inside would keep a deleted sandbox's namespace alive.
        if _libc.setns(_home_fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the daemon's namespace")
