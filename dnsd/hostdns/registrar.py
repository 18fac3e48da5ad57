"""The edge of the systemd-resolved registration: find resolved, run the planned calls.

Resolved is used only when its D-Bus name is on the system bus *and* it runs in the daemon's
own network namespace (its links are the bridges only there; a daemon in a test namespace
must never re-configure the real host's resolved). D-Bus calls go through `busctl`;
`resolvectl` is the fallback where `busctl` is not installed. Without resolved: one log line,
nothing else. A refused call: one warning; the host listener serves on regardless.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping

from .resolved import BUS_NAME, Call, LinkSettings, busctl_argv, plan_calls, resolvectl_argv

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0
_DBUS = ["busctl", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus"]

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def run_command(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=CALL_TIMEOUT_S, check=False)


class ResolvedRegistrar:
    """Keeps resolved's per-link settings equal to `wanted_links` (not thread-safe: the
    caller serialises `apply`)."""

    def __init__(self, run: Runner = run_command) -> None:
        self.run = run
        self.tool: str | None = None  # "busctl" or "resolvectl" once resolved was found
        self.applied: dict[str, LinkSettings] = {}
        self._ifindex: dict[str, int] = {}  # kept to revert a link whose bridge is gone
        self._warned = False

    def start(self) -> bool:
        """Look for resolved; True when it will be used. Logs one line either way."""
        self.tool = self._detect()
        return self.tool is not None

    def apply(self, wanted: Mapping[str, LinkSettings]) -> None:
        if self.tool is None:
            return
        for call in plan_calls(self.applied, wanted):
            self._call(call)
        self.applied = dict(wanted)

    def close(self) -> None:
        """Revert every link we set (the listener is going away)."""
        self.apply({})

    # --- the edge ---

    def _call(self, call: Call) -> None:
        if self.tool == "busctl":
            index = self._ifindex.get(call.ifname) if call.verb == "revert" else None
            if index is None:
                index = self.ifindex(call.ifname)
            if index is None:
                log.debug("resolved: %s has no interface index, %s skipped", call.ifname, call.verb)
                return
            self._ifindex[call.ifname] = index
            argv = busctl_argv(call, index)
        else:
            argv = resolvectl_argv(call)
        result = self._run(argv)
        if call.verb == "revert":
            self._ifindex.pop(call.ifname, None)
        if result is None or result.returncode != 0:
            why = "timed out" if result is None else (result.stderr.strip() or result.returncode)
            if call.verb == "revert":  # the bridge went first: resolved forgot the link already
                log.debug("resolved: %s: %s", " ".join(argv), why)
            elif not self._warned:
                self._warned = True
                log.warning(
                    "resolved refused %s: %s (the host listener still serves)", " ".join(argv), why
                )
            else:
                log.debug("resolved refused %s: %s", " ".join(argv), why)
        else:
            log.info("resolved: %s %s %s", call.verb, call.ifname, " ".join(call.args))

    def _detect(self) -> str | None:
        if shutil.which("busctl"):
            owned = self._run([*_DBUS, "NameHasOwner", "s", BUS_NAME])
            if owned is None or owned.returncode != 0 or owned.stdout.split() != ["b", "true"]:
                log.info(
                    "systemd-resolved is not running (no %s on the system bus): "
                    "not registering networks with it",
                    BUS_NAME,
                )
                return None
            pid = self._run([*_DBUS, "GetConnectionUnixProcessID", "s", BUS_NAME])
            words = pid.stdout.split() if pid is not None and pid.returncode == 0 else []
            if len(words) != 2 or not words[1].isdigit() or not self.same_netns(int(words[1])):
                log.info(
                    "systemd-resolved runs in another network namespace than dnsd: "
                    "not registering networks with it"
                )
                return None
            log.info("systemd-resolved found: registering networks served by --host-dns")
            return "busctl"
        if shutil.which("resolvectl"):
            status = self._run(["resolvectl", "--no-pager", "status"])
            if status is not None and status.returncode == 0:
                log.info(
                    "systemd-resolved found (resolvectl): registering networks served by --host-dns"
                )
                return "resolvectl"
        log.info("systemd-resolved not found: not registering networks with it")
        return None

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
        try:
            return self.run(argv)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.debug("%s: %s", argv[0], exc)
            return None

    @staticmethod
    def same_netns(pid: int) -> bool:
        """Whether process `pid` shares this process's network namespace."""
        try:
            theirs = os.stat(f"/proc/{pid}/ns/net")
            ours = os.stat("/proc/self/ns/net")
        except OSError:
            return False  # not visible from here: cannot be ours
        return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)

    @staticmethod
    def ifindex(ifname: str) -> int | None:
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            return None
