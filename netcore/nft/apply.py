"""The I/O edge: hand a rendered script to `nft -f -`, in the daemon's or a sandbox's namespace.

One script is one nft transaction: it applies whole or not at all. On refusal the NftError
message carries nft's stderr and the numbered script lines it complained about.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import InvalidArgument, NftError, VanishedNamespace

# nft points at the failing input as `/dev/stdin:LINE:COLUMNS: Error: ...`.
_ERROR_LOCATION = re.compile(r"^[^:\n]*:(\d+):\d+(?:-\d+)?: Error:", re.MULTILINE)

# Check-mode probe (`nft -c`: validated by the kernel, never committed).
_BRIDGE_META_PROBE = (
    "add table bridge dnsd-probe\n"
    "add chain bridge dnsd-probe forward { type filter hook forward priority 0; }\n"
    'add rule bridge dnsd-probe forward meta ibrname "lo" drop\n'
)


class NftRunner(Protocol):
    """Applies one nft script atomically, in `netns` (a namespace file path) or our own."""

    def apply(self, script: str, netns: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class NftCli:
    """Runs the `nft` binary (through `nsenter --net=PATH` for another namespace)."""

    nft: str = "nft"
    nsenter: str = "nsenter"
    timeout: float = 30.0

    def command(self, netns: str | None = None, *, check_only: bool = False) -> list[str]:
        """The argv that applies (or with `check_only`, only validates) a script on stdin."""
        nft = [self.nft, *(["-c"] if check_only else []), "-f", "-"]
        if netns is None:
            return nft
        _check_netns(netns)
        return [self.nsenter, f"--net={netns}", "--", *nft]

    def apply(self, script: str, netns: str | None = None) -> None:
        """Apply `script` in one transaction; NftError (with the failing lines) if refused."""
        self._run(script, self.command(netns), netns)

    async def apply_async(self, script: str, netns: str | None = None) -> None:
        """`apply` without blocking the event loop."""
        argv = self.command(netns)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise _not_runnable(argv[0], exc, script) from exc
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(script.encode()), self.timeout)
        except TimeoutError:
            await _reap(proc)
            raise _timed_out(self.timeout, netns, script) from None
        except asyncio.CancelledError:
            await _reap(proc)  # nft's transaction is atomic: killing it leaves all or nothing
            raise
        if proc.returncode != 0:
            raise _refused(stderr.decode(errors="replace"), script, netns)

    def check(self, script: str, netns: str | None = None) -> None:
        """Let the kernel validate `script` without committing anything (`nft -c`)."""
        self._run(script, self.command(netns, check_only=True), netns)

    def supports_bridge_meta(self, netns: str | None = None) -> bool:
        """Whether the kernel has `meta ibrname` (nft_meta_bridge): see render_host_ruleset."""
        try:
            self.check(_BRIDGE_META_PROBE, netns)
        except NftError:
            return False
        return True

    def _run(self, script: str, argv: list[str], netns: str | None) -> None:
        try:
            done = subprocess.run(
                argv, input=script, capture_output=True, text=True, timeout=self.timeout
            )
        except OSError as exc:
            raise _not_runnable(argv[0], exc, script) from exc
        except subprocess.TimeoutExpired:
            raise _timed_out(self.timeout, netns, script) from None
        if done.returncode != 0:
            raise _refused(done.stderr, script, netns)


@dataclass(slots=True)
class RecordingRunner:
    """An NftRunner for engine unit tests: records every (script, netns); may fail on demand."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)
    fail_with: NftError | None = None

    def apply(self, script: str, netns: str | None = None) -> None:
        self.calls.append((script, netns))
        if self.fail_with is not None:
            raise self.fail_with

    async def apply_async(self, script: str, netns: str | None = None) -> None:
        self.apply(script, netns)


def describe_failure(stderr: str, script: str) -> str:
    """nft's message followed by the script lines it names, numbered like nft numbers them."""
    lines = script.splitlines()
    numbers = sorted({int(m.group(1)) for m in _ERROR_LOCATION.finditer(stderr)})
    quoted = [f"  line {n}: {lines[n - 1]}" for n in numbers if 1 <= n <= len(lines)]
    text = stderr.strip() or "(nft printed nothing)"
    return text + ("\nfailing script line(s):\n" + "\n".join(quoted) if quoted else "")


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def _check_netns(netns: str) -> None:
    if not os.path.isabs(netns):
        raise InvalidArgument(
            f"{netns!r} is not an absolute path: pass /run/netns/NAME or /proc/PID/ns/net",
            field="netns",
        )
    if not os.path.exists(netns):
        raise VanishedNamespace(f"network namespace {netns} does not exist (was it deleted?)")


def _where(netns: str | None) -> str:
    return f"namespace {netns}" if netns else "the daemon's namespace"


def _refused(stderr: str, script: str, netns: str | None) -> NftError:
    return NftError(
        f"nft refused the script in {_where(netns)}: {describe_failure(stderr, script)}", script
    )


def _timed_out(timeout: float, netns: str | None, script: str) -> NftError:
    return NftError(f"nft did not finish within {timeout:g}s in {_where(netns)}", script)


def _not_runnable(binary: str, exc: OSError, script: str) -> NftError:
    return NftError(f"cannot run {binary!r} ({exc.strerror}): install nftables/util-linux", script)
