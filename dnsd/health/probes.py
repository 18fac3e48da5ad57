"""The probes: TCP connect and HTTP GET from the host side to the sandbox's address, and
commands run inside the sandbox's network namespace (nsenter --net) as an unprivileged user.

Each returns a `Result`; none raises. A probe past its timeout is abandoned (a command's whole
process group is killed), and so is one whose task is cancelled (its sandbox went away).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from netcore.healthcheck import Healthcheck

from .state import MAX_OUTPUT, Result, cut_output

DEFAULT_USER = "nobody"
NSENTER = "nsenter"
_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Target:
    """Where a sandbox's checks go: its namespace, and the address seen from the host."""

    netns: str
    address: str | None  # None: not attached to any network (TCP/HTTP cannot reach it)


class ProbeFailed(Exception):
    """The probe could not tell health (exit code -1 in the log)."""


async def run_probe(
    check: Healthcheck, target: Target, now: Callable[[], float] = time.time
) -> Result:
    """Run `check` against `target` once, within its timeout."""
    start = now()
    try:
        async with asyncio.timeout(check.timeout_s):
            code, output = await _probe(check, target)
    except TimeoutError:
        code, output = -1, f"Health check exceeded timeout ({check.timeout_s:g}s)"
    except ProbeFailed as exc:
        code, output = -1, str(exc)
    except OSError as exc:  # refused, unreachable, reset: the service is not there
        code, output = 1, f"{type(exc).__name__}: {exc}"
    return Result(start, now(), code, output[:MAX_OUTPUT])


async def _probe(check: Healthcheck, target: Target) -> tuple[int, str]:
    kind = check.kind
    if kind in ("CMD", "CMD-SHELL"):
        command = list(check.test[1:]) if kind == "CMD" else ["/bin/sh", "-c", check.test[1]]
        return await run_command(nsenter_argv(target.netns, check.user, command))
    if target.address is None:
        raise ProbeFailed("the sandbox has no address: connect it to a network")
    if kind == "TCP":
        return await tcp_connect(target.address, int(check.test[1]))
    if kind == "HTTP":
        return await http_get(target.address, int(check.test[1]), check.test[2])
    raise ProbeFailed(f"unknown check kind {kind}")


async def tcp_connect(address: str, port: int) -> tuple[int, str]:
    async with _connected(address, port):
        pass
    return 0, f"connected to {_hostport(address, port)}"


async def http_get(address: str, port: int, path: str) -> tuple[int, str]:
    """GET `path`: 2xx and 3xx are healthy; the output is the status line and the body's head."""
    loop = asyncio.get_running_loop()
    host = _hostport(address, port)
    request = (
        f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: dnsd-healthcheck\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    head = bytearray()
    async with _connected(address, port) as sock:
        await loop.sock_sendall(sock, request)
        while len(head) < MAX_OUTPUT and (chunk := await loop.sock_recv(sock, MAX_OUTPUT)):
            head += chunk
    status_line, _, _ = bytes(head).partition(b"\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return 1, f"not an HTTP response from {host}: {cut_output(status_line)!r}"
    status = int(parts[1])
    return (0 if 200 <= status < 400 else 1), cut_output(bytes(head))


@contextlib.asynccontextmanager
async def _connected(address: str, port: int) -> AsyncIterator[socket.socket]:
    """A connected non-blocking socket, closed after. Plain sockets, not asyncio streams: a
    thousand probes a second of transports and protocols (reference cycles) kept the garbage
    collector busy enough to show in DNS latency."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
        yield sock
    finally:
        sock.close()


def nsenter_argv(netns: str, user: str, command: Sequence[str]) -> list[str]:
    """`command` in the namespace `netns`, as `user` (default nobody) with its primary group."""
    uid, gid = _user_ids(user or DEFAULT_USER)
    return [NSENTER, f"--net={netns}", f"--setuid={uid}", f"--setgid={gid}", "--", *command]


def _user_ids(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        if user.isdigit():
            return int(user), int(user)
        raise ProbeFailed(f"no user {user!r} on this host: name one that exists") from None
    return entry.pw_uid, entry.pw_gid


async def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run `argv` in a process group of its own; its exit code and first 4 KiB of output.

    Whatever happens (done, timed out, cancelled), the whole process group is killed before
    this returns: a check leaves no process behind."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # A group, not a session: it stays in the probe worker's session, which the daemon
            # kills whole if the worker dies (client.kill_session).
            process_group=0,
        )
    except OSError as exc:
        raise ProbeFailed(f"cannot run {argv[0]}: {exc}") from None
    try:
        assert proc.stdout is not None
        output = await _read_capped(proc.stdout)
        code = await proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group's stragglers too
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.shield(proc.wait())  # reap it even if we are being cancelled
    return code, cut_output(output)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    """Until EOF, keeping the first MAX_OUTPUT bytes: a flood is drained, so the command never
    blocks on a full pipe."""
    kept = bytearray()
    while chunk := await stream.read(_READ_CHUNK):
        if len(kept) < MAX_OUTPUT:
            kept += chunk[: MAX_OUTPUT - len(kept)]
    return bytes(kept)


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
