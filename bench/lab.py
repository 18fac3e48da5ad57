"""The bench's lab: a fresh host namespace with the daemon in it, driven through its API.

Built on the integration harness (`tests/integration/harness.py`): the same namespace layout a
test gets, plus what a benchmark needs on top: the daemon at warning level, pinned to its own
core, a longer start deadline (a restart with 1,000 sandboxes), its CPU and memory from /proc,
and extra processes (peers that daemonise) stopped by pid on cleanup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from netcore.errors import Unavailable
from tests.integration.harness import HostNamespace, new_host

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("ip", "nsenter", "nft", "taskset", "dnsperf", "dnsmasq", "dig")


class BenchError(Unavailable):
    """The benchmark cannot run or a step of it failed; the message says what to fix."""


def check_environment() -> None:
    """Root and the tools every part needs; raise BenchError naming what is missing."""
    if os.geteuid() != 0:
        raise BenchError("the benchmark needs root (network namespaces, nftables): run as root")
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if missing:
        raise BenchError(
            f"missing tools: {', '.join(missing)}; install them with "
            "apt-get install -y iproute2 nftables util-linux dnsperf dnsmasq-base dnsutils"
        )


def _which(tool: str) -> str | None:
    from shutil import which

    return which(tool)


def cpu_plan() -> tuple[int | None, int | None]:
    """(load generator cpu, server cpu): separate cores when there are two, else unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


# --- /proc readings of a server process ---


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds so far (own + reaped children: dnsmasq forks per TCP connection), memory
    and descriptors of one process."""

    cpu_s: float
    rss_kib: int
    threads: int
    fds: int = 0
    sockets: int = 0
    kernel_s: float = 0.0  # of cpu_s, in the kernel (stime + cstime)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_proc_stat(text: str) -> tuple[float, int, float]:
    """(utime+stime+cutime+cstime in seconds, threads, stime+cstime in seconds) from the text
    of /proc/PID/stat."""
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = text.rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state): utime..cstime are fields 14-17, num_threads is field 20.
    ticks = sum(int(rest[i]) for i in range(11, 15))
    kernel = int(rest[12]) + int(rest[14])
    return ticks / _CLK_TCK, int(rest[17]), kernel / _CLK_TCK


def parse_vm_rss_kib(status_text: str) -> int:
    """VmRSS in KiB from the text of /proc/PID/status (0 for a kernel thread or zombie)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample(pid: int, *, descriptors: bool = False) -> ProcSample:
    """One reading of `pid` from /proc; descriptors (fds, sockets) only when asked (1,000
    sandboxes mean thousands of readlinks)."""
    try:
        cpu_s, threads, kernel_s = parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
        rss = parse_vm_rss_kib(Path(f"/proc/{pid}/status").read_text())
    except OSError as exc:
        raise BenchError(f"process {pid} is gone ({exc.strerror}): see its log") from exc
    fds = sockets = 0
    if descriptors:
        fd_dir = f"/proc/{pid}/fd"
        for entry in os.listdir(fd_dir):
            fds += 1
            try:
                sockets += os.readlink(f"{fd_dir}/{entry}").startswith("socket:")
            except OSError:
                continue  # closed meanwhile
    return ProcSample(cpu_s, rss, threads, fds, sockets, kernel_s)


# --- the host namespace with the daemon ---


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class BenchHost(HostNamespace):
    """The harness's host namespace, with the daemon run the way a benchmark wants it."""

    server_cpu: int | None = None
    cleanups: list[Callable[[], None]]

    def start_daemon(self, *extra_args: str, timeout_s: float = 300.0) -> float:
        """Start the daemon (warning level, pinned to the server cpu); seconds until its API
        answered. The harness allows 30 s; a restart with 1,000 sandboxes may need more."""
        pin = [] if self.server_cpu is None else ["taskset", "-c", str(self.server_cpu)]
        log = open(self.tmp / "daemon.log", "ab")  # noqa: SIM115 - closed in cleanup()
        self.logs.append(log)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        )
        started = time.monotonic()
        self.daemon = subprocess.Popen(
            [*pin, *self.daemon_argv(*extra_args, log_level="warning")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
            env=env,
        )
        while time.monotonic() - started < timeout_s:
            if self.daemon.poll() is not None:
                raise BenchError(f"daemon exited {self.daemon.returncode}:\n{self.log()}")
            try:
                if self.api("GET", "/_ping")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.02)
        raise BenchError(
            f"daemon did not answer on its API within {timeout_s:.0f} s:\n{self.log()}"
        )

    @property
    def daemon_pid(self) -> int:
        if self.daemon is None or self.daemon.poll() is not None:
            raise BenchError(f"the daemon is not running:\n{self.log()}")
        return self.daemon.pid  # taskset and nsenter exec: this is the Python process

    def ok(self, method: str, path: str, body: object | None = None) -> object:
        status, data = self.api(method, path, body)
        if status >= 300:
            raise BenchError(f"{method} {path} -> {status} {data}\n{self.log()[-2000:]}")
        return data

    def timed(self, method: str, path: str, body: object | None = None) -> float:
        """Seconds one API call took (it must succeed)."""
        started = time.perf_counter()
        self.ok(method, path, body)
        return time.perf_counter() - started

    def netns_path(self, short: str) -> str:
        return f"/run/netns/{self.sandbox_name(short)}"

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` on cleanup, before the harness stops the daemon and deletes namespaces."""
        self.cleanups.append(fn)

    def cleanup(self) -> None:
        # A second Ctrl-C (or a SIGTERM) during cleanup must not leave namespaces behind.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
        try:
            for fn in reversed(self.cleanups):
                try:
                    fn()
                except Exception as exc:
                    print(f"bench: cleanup step failed: {exc}", file=sys.stderr)
            self.cleanups.clear()
            super().cleanup()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def lab_session(label: str, server_cpu: int | None) -> Iterator[BenchHost]:
    """A lab for one part: always cleaned up; its directory (daemon log, state) removed after
    a clean run and kept, with a note, after a failure."""
    lab = new_lab(label, server_cpu)
    clean = False
    try:
        yield lab
        clean = True
    finally:
        lab.cleanup()
        if clean:
            shutil.rmtree(lab.tmp, ignore_errors=True)
        else:
            print(
                f"bench: the {label} lab's daemon log and state are kept in {lab.tmp}",
                file=sys.stderr,
            )


def new_lab(label: str, server_cpu: int | None) -> BenchHost:
    """A fresh host namespace (the harness's `new_host`) under a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix=f"dnsd-bench-{label}-"))
    host = new_host(tmp)
    bench_host = BenchHost(**{f.name: getattr(host, f.name) for f in dataclasses.fields(host)})
    bench_host.server_cpu = server_cpu
    bench_host.cleanups = []
    return bench_host


def kill_pid(pid: int, expect_in_cmdline: str, timeout_s: float = 5.0) -> None:
    """SIGTERM (then SIGKILL) one process we started, after checking it still is ours."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return  # already gone
    if expect_in_cmdline not in cmdline:
        return  # the pid was reused by someone else's process: leave it alone
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
