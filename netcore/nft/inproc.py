"""Apply a script with libnftables, in the calling thread's namespace or through a helper.

`nft -f -` per sandbox namespace costs a fork and exec, ~20 ms, and a daemon restarting with
1,000 sandboxes re-applies 1,000 redirects (7.6 s measured, issue 13). libnftables (the library
the `nft` binary is, installed with it) does the same transaction in ~0.7 ms. Its context binds
its netlink socket to the namespace of the thread that creates it, so a context is made for
each script after entering the target namespace. Freeing one closes that socket, which waits in
the kernel (7-15 ms measured): that is done by a background thread, off the caller's path.

The daemon itself does not load the library: it waits with select(2), which aborts a process
whose descriptors go past 1,023. `NftHelpers` runs it in small helper processes
(`netcore.nft.helper`). Without the library callers fall back to the `nft` binary.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence

from ..errors import NftError
from .apply import NftCli

_LIBRARY = "libnftables.so.1"


class NftLib:
    """The libnftables entry points we use."""

    _loaded: NftLib | None = None
    _tried = False
    _lock = threading.Lock()

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib = lib
        self._frees: queue.SimpleQueue[int] = queue.SimpleQueue()
        threading.Thread(target=self._free_forever, name="nft-free", daemon=True).start()

    @classmethod
    def load(cls) -> NftLib | None:
        """The library, loaded once per process; None when it is not installed."""
        with cls._lock:
            if not cls._tried:
                cls._tried = True
                try:
                    cls._loaded = cls(ctypes.CDLL(_LIBRARY, use_errno=True))
                except (OSError, AttributeError):
                    cls._loaded = None
            return cls._loaded

    def apply_here(self, script: str) -> None:
        """Apply `script` as one transaction in the calling thread's network namespace;
        NftError with nft's message and the failing lines when refused (from the `nft`
        binary, which is asked again then)."""
        lib = self._lib
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise NftError("libnftables could not make a context (out of memory?)", script)
        try:
            lib.nft_ctx_buffer_error(ctx)
            lib.nft_ctx_buffer_output(ctx)
            refused = lib.nft_run_cmd_from_buffer(ctx, script.encode()) != 0
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        finally:
            self._frees.put(ctx)
        if refused:
            # The library's message does not say which line it means (it quotes another one);
            # the binary's does. Refusals are rare: ask it, in this same namespace.
            try:
                NftCli().apply(script)
            except NftError as exc:  # it ran in this thread's namespace, not the daemon's
                where = str(exc).replace("the daemon's namespace", "a sandbox's namespace", 1)
                raise NftError(where, script) from None
            raise NftError(f"nft refused the script: {error.strip()}", script)

    def _free_forever(self) -> None:
        while True:
            self._lib.nft_ctx_free(self._frees.get())


def library_available() -> bool:
    """Whether libnftables can be loaded (checked once; the daemon never calls into it)."""
    global _available
    if _available is None:
        try:
            ctypes.CDLL(_LIBRARY)
            _available = True
        except OSError:
            _available = False
    return _available


_available: bool | None = None


class NftHelpers:
    """Helper processes applying scripts in a namespace (one request at a time each); started
    on first use, restarted when one died."""

    def __init__(self, count: int = 2) -> None:
        self._slots = [_Helper() for _ in range(count)]
        self._started = False
        self._free: queue.SimpleQueue[_Helper] = queue.SimpleQueue()
        for slot in self._slots:
            self._free.put(slot)

    def start(self) -> None:
        """Start every helper (a no-op once done); they import while the caller goes on."""
        if not self._started:  # all at once: the daemon's descriptors stay flat after this
            self._started = True
            for slot in self._slots:
                slot.ensure()

    def apply(self, netns: str, script: str) -> None:
        """Apply `script` in the namespace at `netns`; NftError when refused."""
        self.start()
        helper = self._free.get()
        try:
            error = helper.ask(netns, script)
        finally:
            self._free.put(helper)
        if error is not None:
            raise self._refused(netns, script, error)

    def apply_each(self, jobs: Sequence[tuple[str, str]]) -> list[NftError | None]:
        """Apply each (namespace, script) of a batch (a restart's 1,000 redirects): the jobs
        are shared out over the helpers and pipelined, without a round trip per script; the
        error of each job, or None."""
        if not jobs:
            return []
        self.start()
        helpers = [self._free.get() for _ in self._slots]  # every helper, for this batch
        try:
            shares = [list(range(k, len(jobs), len(helpers))) for k in range(len(helpers))]
            replies: list[str | None] = ["not applied: the batch failed"] * len(jobs)

            def run(helper: _Helper, share: list[int]) -> None:
                answers = helper.ask_many([jobs[i] for i in share])
                for index, error in zip(share, answers, strict=True):
                    replies[index] = error

            threads = [
                threading.Thread(target=run, args=(h, share), name="nft-batch")
                for h, share in zip(helpers[1:], shares[1:], strict=True)
            ]
            for thread in threads:
                thread.start()
            run(helpers[0], shares[0])
            for thread in threads:
                thread.join()
        finally:
            for helper in helpers:
                self._free.put(helper)
        return [
            None if error is None else self._refused(netns, script, error)
            for (netns, script), error in zip(jobs, replies, strict=True)
        ]

    @staticmethod
    def _refused(netns: str, script: str, error: str) -> NftError:
        """The error for a refused script: the binary's when it refuses too (it says which
        line it means; the library quotes another), else the library's."""
        try:
            NftCli().apply(script, netns=netns)
        except NftError as exc:
            return exc
        return NftError(f"nft refused the script in namespace {netns}: {error}", script)

    def close(self) -> None:
        for slot in self._slots:
            slot.close()


class _Helper:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def ensure(self) -> subprocess.Popen[str]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self.close()
            proc = self._proc = subprocess.Popen(
                [sys.executable, "-m", "netcore.nft.helper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=_PACKAGE_ROOT,
            )
        return proc

    def ask(self, netns: str, script: str) -> str | None:
        for attempt in range(2):
            proc = self.ensure()
            try:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(json.dumps({"netns": netns, "script": script}) + "\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise BrokenPipeError("the nft helper exited")
                return json.loads(line)["error"]
            except (OSError, ValueError) as exc:
                self.close()
                if attempt:
                    raise NftError(f"the nft helper process failed: {exc}", script) from exc
        raise AssertionError("unreachable")

    def ask_many(self, jobs: Sequence[tuple[str, str]], window: int = 64) -> list[str | None]:
        """`ask` for each (namespace, script), `window` requests written before their replies
        are read (fewer wake-ups on both sides; the replies fit in the pipe)."""
        errors: list[str | None] = []
        for start in range(0, len(jobs), window):
            chunk = jobs[start : start + window]
            try:
                proc = self.ensure()
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(
                    "".join(json.dumps({"netns": n, "script": s}) + "\n" for n, s in chunk)
                )
                proc.stdin.flush()
                for _ in chunk:
                    line = proc.stdout.readline()
                    if not line:
                        raise BrokenPipeError("the nft helper exited")
                    errors.append(json.loads(line)["error"])
            except (OSError, ValueError):
                self.close()  # one at a time for the rest of the window, with its retry
                for netns, script in chunk[len(errors) - start :]:
                    try:
                        errors.append(self.ask(netns, script))
                    except NftError as exc:
                        errors.append(str(exc))
        return errors

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
