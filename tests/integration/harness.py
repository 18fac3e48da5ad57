"""Integration harness: a fresh "host" namespace per test, the daemon inside it, a fake upstream.

The daemon is started with only the network namespace entered (`nsenter --net`), so the
sandbox namespaces it creates under /run/netns are visible to the test. Everything made here
is removed afterwards, even when the test fails; names carry a per-run prefix.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

UPSTREAM = "198.51.100.53"  # documentation range, on lo of the test's host namespace
UPSTREAM_RECORDS = {"ext.anchors.test": "198.51.100.200", "www.example.test": "198.51.100.201"}


def run(*args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


@dataclass
class HostNamespace:
    """A namespace acting as the daemon's host, with everything the test made in it."""

    prefix: str
    name: str
    tmp: Path
    daemon: subprocess.Popen | None = None
    extra: list[subprocess.Popen] = field(default_factory=list)
    logs: list = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def socket(self) -> str:
        return str(self.tmp / "api.sock")

    @property
    def state_dir(self) -> str:
        return str(self.tmp / "state")

    def exec(self, *args: str, check: bool = True, timeout: float = 30):
        return run("nsenter", f"--net={self.path}", *args, check=check, timeout=timeout)

    def sandbox_exec(self, sandbox: str, *args: str, check: bool = True, timeout: float = 30):
        """Run inside a sandbox created by name, with its resolv.conf and hosts (ip netns exec)."""
        return run(
            "ip", "netns", "exec", self.sandbox_name(sandbox), *args, check=check, timeout=timeout
        )

    def sandbox_name(self, short: str) -> str:
        return f"{self.prefix}{short}"

    # --- the daemon ---

    def daemon_argv(self, *extra_args: str, log_level: str = "debug") -> list[str]:
        """`dnsd serve` inside this namespace (only the network namespace entered)."""
        return [
            "nsenter",
            f"--net={self.path}",
            sys.executable,
            "-m",
            "dnsd",
            "serve",
            "--state-dir",
            self.state_dir,
            "--api-socket",
            self.socket,
            "--host-resolv-conf",
            str(self.tmp / "resolv.conf"),
            "--log-level",
            log_level,
            *extra_args,
        ]

    def start_daemon(self, *extra_args: str, env: dict[str, str] | None = None) -> None:
        """Start the daemon in this namespace (with `env` added to ours) and wait for its API."""
        log = open(self.tmp / "daemon.log", "ab")  # noqa: SIM115 - closed in cleanup()
        self.logs.append(log)
        self.daemon = subprocess.Popen(
            self.daemon_argv(*extra_args),
            env=None if env is None else {**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError(f"daemon exited {self.daemon.returncode}:\n{self.log()}")
            try:
                if self.api("GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon did not come up:\n{self.log()}")

    def stop_daemon(self, sig: int = signal.SIGTERM) -> int | None:
        if self.daemon is None or self.daemon.poll() is not None:
            return None if self.daemon is None else self.daemon.returncode
        self.daemon.send_signal(sig)
        try:
            return self.daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            return self.daemon.wait(timeout=10)

    def log(self) -> str:
        try:
            return (self.tmp / "daemon.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        conn = UnixHTTPConnection(self.socket)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(
                method,
                path,
                body=payload,
                headers={"Content-Type": "application/json"} if payload else {},
            )
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: object | None = None) -> object:
        status, data = self.api(method, path, body)
        assert status < 300, f"{method} {path} -> {status} {data}\n{self.log()}"
        return data

    # --- objects through the API ---

    def network(self, name: str, **body) -> dict:
        self.ok("POST", "/networks/create", {"Name": name, **body})
        return self.ok("GET", f"/networks/{name}")

    def sandbox(self, short: str, network: str | None = None, **body) -> dict:
        req = {"Name": self.sandbox_name(short), **body}
        if network:
            req["NetworkMode"] = network
        self.ok("POST", "/sandboxes", req)
        return self.ok("GET", f"/sandboxes/{self.sandbox_name(short)}")

    def connect(self, network: str, short: str, **endpoint) -> None:
        self.ok(
            "POST",
            f"/networks/{network}/connect",
            {"Container": self.sandbox_name(short), "EndpointConfig": endpoint},
        )

    # --- the fake upstream ---

    def start_upstream(self, address: str = UPSTREAM, records: dict | None = None) -> Path:
        """dnsmasq on `address` (lo of the host namespace), logging the queries it sees."""
        self.exec("ip", "addr", "add", f"{address}/32", "dev", "lo", check=False)
        qlog = self.tmp / f"upstream-{address}.log"
        args = [
            "nsenter",
            f"--net={self.path}",
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={address}",
            "--port=53",
            "--log-queries",
            f"--log-facility={qlog}",
            "--user=root",
            f"--pid-file={self.tmp / ('dnsmasq-' + address + '.pid')}",
            "--local=/#/",
        ]  # like the reference's up1: NXDOMAIN for every other name
        for name, ip in (records or UPSTREAM_RECORDS).items():
            args.append(f"--host-record={name},{ip}")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.extra.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = self.exec(
                "dig",
                f"@{address}",
                "+short",
                "+tries=1",
                "+time=1",
                next(iter(records or UPSTREAM_RECORDS)),
                check=False,
            )
            if probe.stdout.strip():
                return qlog
            time.sleep(0.1)
        raise AssertionError("fake upstream did not come up")

    def upstream_saw(self, address: str, qname: str) -> bool:
        try:
            text = (self.tmp / f"upstream-{address}.log").read_text()
        except OSError:
            return False
        return any(
            f"]{' '}{qname} from" in line or f"] {qname} from" in line for line in text.splitlines()
        )

    # --- cleanup ---

    def cleanup(self) -> None:
        self.stop_daemon()
        if self.daemon is not None and self.daemon.poll() is None:
            os.killpg(self.daemon.pid, signal.SIGKILL)
        for log in self.logs:
            log.close()
        for proc in self.extra:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for entry in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
            if entry.startswith(self.prefix):
                run("ip", "netns", "delete", entry, check=False)
        if os.path.isdir("/etc/netns"):
            for entry in os.listdir("/etc/netns"):
                if entry.startswith(self.prefix):
                    shutil.rmtree(os.path.join("/etc/netns", entry), ignore_errors=True)
        run("ip", "netns", "delete", self.name, check=False)


def new_host(tmp: Path) -> HostNamespace:
    prefix = f"dt{secrets.token_hex(3)}-"
    host = HostNamespace(prefix=prefix, name=f"{prefix}host", tmp=tmp)
    run("ip", "netns", "add", host.name)
    host.exec("ip", "link", "set", "lo", "up")
    (tmp / "resolv.conf").write_text(
        f"nameserver {UPSTREAM}\nsearch anchors.test\noptions timeout:2 attempts:2\n"
    )
    return host
