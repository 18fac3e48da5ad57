"""The probes against real sockets on loopback and real processes (no namespaces needed)."""

from __future__ import annotations

import asyncio
import pwd
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dnsd.health import probes
from dnsd.health.probes import Target, nsenter_argv, run_command, run_probe
from netcore.healthcheck import MS, Healthcheck


def test_tcp_probe_open_and_closed_port():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    target = Target("/proc/self/ns/net", "127.0.0.1")
    ok = asyncio.run(run_probe(Healthcheck(("TCP", str(port)), timeout_ns=2000 * MS), target))
    listener.close()
    refused = asyncio.run(run_probe(Healthcheck(("TCP", str(port)), timeout_ns=2000 * MS), target))
    assert ok.exit_code == 0 and "connected" in ok.output
    assert refused.exit_code == 1 and "Refused" in refused.output


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"body of " + self.path.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def http_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("path", "code"), [("/200", 0), ("/302", 0), ("/404", 1), ("/503", 1)])
def test_http_probe_2xx_3xx_healthy(http_port, path, code):
    check = Healthcheck(("HTTP", str(http_port), path), timeout_ns=2000 * MS)
    result = asyncio.run(run_probe(check, Target("/x", "127.0.0.1")))
    assert result.exit_code == code
    assert result.output.startswith(f"HTTP/1.0 {path[1:]}")


def test_tcp_probe_without_address_cannot_run():
    result = asyncio.run(run_probe(Healthcheck(("TCP", "80")), Target("/x", None)))
    assert result.exit_code == -1 and "no address" in result.output


def test_command_exit_code_and_output():
    code, output = asyncio.run(run_command(["sh", "-c", "echo hello; exit 3"]))
    assert (code, output) == (3, "hello\n")


def test_a_flood_of_output_is_cut_and_drained():
    code, output = asyncio.run(run_command(["sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' x"]))
    assert code == 0 and output == "x" * 4096


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


def _pids_from(path: str) -> list[int]:
    with open(path) as f:
        return [int(line) for line in f.read().split()]


def test_a_hanging_command_is_killed_at_its_timeout_with_its_children(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"
    monkeypatch.setattr(probes, "nsenter_argv", lambda netns, user, command: command)
    check = Healthcheck(("CMD-SHELL", script), timeout_ns=300 * MS)
    started = time.monotonic()
    result = asyncio.run(run_probe(check, Target("/x", None)))
    assert time.monotonic() - started < 3
    assert result.exit_code == -1 and "exceeded timeout" in result.output
    time.sleep(0.1)
    assert not any(_alive(pid) for pid in _pids_from(str(pids)))


def test_a_cancelled_check_leaves_no_process(tmp_path):
    pids = tmp_path / "pids"

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(
            run_command(["sh", "-c", f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"])
        )
        for _ in range(100):
            await asyncio.sleep(0.02)
            if pids.exists() and len(pids.read_text().split()) == 2:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    time.sleep(0.1)
    assert not any(_alive(pid) for pid in _pids_from(str(pids)))


def test_nsenter_argv_runs_as_nobody_unless_a_user_is_named():
    argv = nsenter_argv("/run/netns/web", "", ["cat", "/proc/net/dev"])
    nobody = pwd.getpwnam("nobody")
    assert argv == [
        "nsenter", "--net=/run/netns/web", f"--setuid={nobody.pw_uid}",
        f"--setgid={nobody.pw_gid}", "--", "cat", "/proc/net/dev",
    ]  # fmt: skip
    assert nsenter_argv("/n", "0", ["true"])[2:4] == ["--setuid=0", "--setgid=0"]
    assert nsenter_argv("/n", "4321", ["true"])[2:4] == ["--setuid=4321", "--setgid=4321"]


def test_an_unknown_user_cannot_run():
    check = Healthcheck(("CMD", "true"), user="no-such-user-xyz")
    result = asyncio.run(run_probe(check, Target("/x", None)))
    assert result.exit_code == -1 and "no-such-user-xyz" in result.output
