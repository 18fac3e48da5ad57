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
    """A thread inside one namespace that runs small jobs (open a socket, run nft) for callers
    on other threads: a queue round trip instead of a thread start per call.

    The thread leaves after `idle_s` without work and comes back on the next call, so a
    thousand quiet sandboxes do not keep a thousand threads.
    """

    def __init__(self, path: str, *, idle_s: float = 30.0) -> None:
        if not exists(path):
            raise VanishedNamespace(f"namespace {path} is gone")
        self.path = path
        self.idle_s = idle_s
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._running = False
        self._closed = False

    @property
    def running(self) -> bool:
        return self._running

    def _run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
        except OSError as exc:
            self._fail_pending(VanishedNamespace(f"enter namespace {self.path}: {exc}"))
            return
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:  # no call can queue a job between the check and the exit
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            if job is None:
                return
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def _fail_pending(self, exc: BaseException) -> None:
        with self._lock:
            self._running = False
            while not self._jobs.empty():
                job = self._jobs.get_nowait()
                if job is not None:
                    job[1].set_exception(exc)

    def call(self, fn: Callable[[], T]) -> T:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise VanishedNamespace(f"worker of {self.path} is closed")
            self._jobs.put((fn, future))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=f"netns:{self.path}", daemon=True).start()
        return future.result()

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        return self.call(lambda: socket.socket(family, type_, proto))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._running:
                self._jobs.put(None)
