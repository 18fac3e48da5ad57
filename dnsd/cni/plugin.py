"""The plugin's edge: one CNI command carried out through the daemon's API, and `main`.

A runtime's container is one dnsd sandbox (named as `Invocation.sandbox_name` says) that
adopts the runtime's namespace; each CNI network attachment is one endpoint of it, named
CNI_IFNAME inside. The sandbox goes when its last attachment is deleted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from netcore.kernel.netns import exists as netns_exists

from ..cli.api_client import ApiClient, ApiError, DaemonUnreachable
from .gc import NETWORK_LABEL, owner_labels, stale_attachments
from .probe import AttachmentProblem, KernelProbe, Probe
from .request import (
    CHECK_FAILED,
    DAEMON_REFUSED,
    DEFAULT_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_NOT_AVAILABLE,
    SUPPORTED_VERSIONS,
    TRY_AGAIN_LATER,
    CniError,
    Invocation,
    NetConf,
    error_version,
    parse_invocation,
)
from .result import Dns, attachment_result

CODE_BY_STATUS = {400: INVALID_CONFIG, 503: TRY_AGAIN_LATER}  # the rest: DAEMON_REFUSED
INTERNAL_ERROR = 999


def version_result(cni_version: str) -> dict[str, Any]:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


class Attachment:
    """ADD, CHECK and DEL of one invocation (not VERSION)."""

    def __init__(
        self, inv: Invocation, client: ApiClient, probe: Probe, name: str | None = None
    ) -> None:
        assert inv.conf is not None
        self.inv = inv
        self.conf: NetConf = inv.conf
        self.client = client
        self.probe = probe
        self.name = name or inv.sandbox_name

    def _call(
        self, what: str, fn: Callable[..., Any], *args: Any, ok: tuple[int, ...] = (), **kw: Any
    ) -> Any:
        """One API call; None when the daemon answers a status in `ok`, and any other refusal
        as the CNI error that says what was being done."""
        try:
            return fn(*args, **kw)
        except DaemonUnreachable:
            raise CniError(
                TRY_AGAIN_LATER,
                f"cannot reach dnsd at {self.conf.socket}",
                f'is `dnsd serve --api-socket {self.conf.socket}` running? (or set "socket" '
                "in the network configuration)",
            ) from None
        except ApiError as exc:
            if exc.status in ok:
                return None
            code = CODE_BY_STATUS.get(exc.status, DAEMON_REFUSED)
            raise CniError(code, what, exc.message) from None

    # --- ADD ---

    def add(self) -> dict[str, Any]:
        network = self._network()
        sandbox = self._call("cannot read the sandbox", self.client.sandbox, self.name, ok=(404,))
        if sandbox is not None and sandbox["NetNS"] != self.inv.netns:
            if netns_exists(sandbox["NetNS"]):
                raise CniError(
                    DAEMON_REFUSED,
                    f"sandbox name {self.name} is in use",
                    f"dnsd's sandbox {self.name} is namespace {sandbox['NetNS']}, not "
                    f"{self.inv.netns}: remove it (dnsd sandbox rm {self.name}) or rename the "
                    "container",
                )
            # Left over from a runtime that never called DEL (its namespace is gone).
            self._call("cannot remove a stale sandbox", self.client.remove_sandbox, self.name)
            sandbox = None
        endpoint = {
            "aliases": self._aliases(),
            "ipv4": self.conf.ipv4,
            "ipv6": self.conf.ipv6,
            "mac": self.conf.mac,
            "ifname": self.inv.ifname,
        }
        what = f"cannot connect {self.name} to network {network}"
        if sandbox is None:
            self._call(
                what,
                self.client.create_sandbox,
                self.name,
                netns=self.inv.netns,
                network=network,
                publish=self.conf.publish,
                labels=owner_labels(self.inv),
                **endpoint,
            )
        elif network not in sandbox["Networks"]:
            self._call(what, self.client.connect, network, self.name, **endpoint)
        elif sandbox["Networks"][network]["InterfaceName"] != self.inv.ifname:
            raise CniError(
                DAEMON_REFUSED,
                what,
                f"it is already connected as {sandbox['Networks'][network]['InterfaceName']}",
            )
        return self._result(network)

    # --- STATUS (1.1) ---

    def status(self) -> None:
        """Ready when the daemon answers and an ADD would find (or make) the network."""
        try:
            self._network()
        except CniError as exc:
            raise CniError(PLUGIN_NOT_AVAILABLE, exc.msg, exc.details) from None

    # --- GC (1.1) ---

    def collect_garbage(self) -> None:
        """Take down, as DEL would, every attachment this CNI network made on its dnsd network
        that the runtime no longer lists (`gc` module); go on past failures, report them all."""
        network = self._network()
        mine = {"label": [f"{NETWORK_LABEL}={self.conf.name}"]}
        listed = self._call("cannot list sandboxes", self.client.sandboxes, mine)
        stale = stale_attachments(listed, self.conf.name, network, self.inv.valid_attachments)
        failures = []
        for name, container_id, ifname in stale:
            inv = Invocation("DEL", self.inv.cni_version, container_id, "", ifname, (), self.conf)
            try:
                Attachment(inv, self.client, self.probe, name=name).delete()
            except CniError as exc:
                failures.append(f"{name} ({container_id[:12]}/{ifname}): {exc}")
        if failures:
            raise CniError(DAEMON_REFUSED, "GC left attachments behind", "; ".join(failures))

    def _network(self) -> str:
        """The dnsd network's name; created with defaults when the config says `create`."""
        ref = self.conf.network
        found = self._call("cannot read the network", self.client.network, ref, ok=(404,))
        if found is None and self.conf.create:
            # 409: another ADD made it meanwhile.
            what = f"cannot create network {ref}"
            self._call(what, self.client.create_network, ref, ok=(409,))
            found = self._call("cannot read the network", self.client.network, self.conf.network)
        if found is None:
            raise CniError(
                INVALID_CONFIG,
                f"unknown network {self.conf.network}",
                f"dnsd has no network {self.conf.network}: create it (dnsd network create "
                f'{self.conf.network}) or set "create": true in the network configuration',
            )
        return found["Name"]

    def _aliases(self) -> list[str]:
        # The runtime's short container id answers too, as Docker's and Podman's DNS do.
        short = self.inv.container_id[:12]
        extra = [short] if short != self.name and short.isalnum() else []
        return list(dict.fromkeys([*self.conf.aliases, *extra]))

    def _result(self, network: str) -> dict[str, Any]:
        sandbox = self._call("cannot read the sandbox", self.client.sandbox, self.name)
        endpoint = sandbox["Networks"][network]
        return attachment_result(
            self.conf.cni_version,
            endpoint=endpoint,
            netns=self.inv.netns,
            dns=_sandbox_dns(sandbox.get("ResolvConfPath") or ""),
            host_mac=self.probe.host_mac(endpoint["HostInterfaceName"]),
            prev_result=self.conf.prev_result,
        )

    # --- CHECK ---

    def check(self) -> None:
        network = self._network()
        sandbox = self._call("cannot read the sandbox", self.client.sandbox, self.name, ok=(404,))
        if sandbox is None:
            raise CniError(CHECK_FAILED, "check failed", f"dnsd has no sandbox {self.name}")
        endpoint = sandbox["Networks"].get(network)
        problem = None
        if sandbox["NetNS"] != self.inv.netns:
            problem = f"sandbox {self.name} is namespace {sandbox['NetNS']}, not {self.inv.netns}"
        elif endpoint is None:
            problem = f"sandbox {self.name} is not connected to network {network}"
        elif endpoint["InterfaceName"] != self.inv.ifname:
            problem = f"{self.name} is on {network} as {endpoint['InterfaceName']}"
        if problem is None:
            try:
                self.probe.check(self.inv.netns, self.inv.ifname, endpoint["IPAddress"], self.name)
            except AttachmentProblem as exc:
                problem = str(exc)
        if problem is not None:
            raise CniError(CHECK_FAILED, "check failed", problem)

    # --- DEL ---

    def delete(self) -> None:
        """Disconnect and, with the last attachment, forget the sandbox. Whatever is already
        gone (sandbox, network, namespace) is not an error: the spec asks DEL to succeed."""
        sandbox = self._call("cannot read the sandbox", self.client.sandbox, self.name, ok=(404,))
        if sandbox is None or (self.inv.netns and sandbox["NetNS"] != self.inv.netns):
            return  # gone, or a sandbox of that name that is not this container's
        for network, endpoint in sandbox["Networks"].items():
            if network == self.conf.network and endpoint["InterfaceName"] == self.inv.ifname:
                what = f"cannot disconnect {self.name} from {network}"
                self._call(what, self.client.disconnect, network, self.name, ok=(404,), force=True)
        sandbox = self._call("cannot read the sandbox", self.client.sandbox, self.name, ok=(404,))
        if sandbox is not None and not sandbox["Networks"]:
            what = f"cannot remove sandbox {self.name}"
            self._call(what, self.client.remove_sandbox, self.name, ok=(404, 409))


def _sandbox_dns(path: str) -> Dns:
    """The search and options dnsd wrote for the sandbox (the runtime runs on the same host)."""
    try:
        with open(path, encoding="utf-8") as f:
            return Dns.from_resolv_conf(f.read())
    except OSError:
        return Dns()


def run(inv: Invocation, probe: Probe | None = None) -> dict[str, Any] | None:
    """Carry out one command; its Result (None for DEL and CHECK)."""
    if inv.command == "VERSION":
        return version_result(inv.cni_version)
    assert inv.conf is not None
    attachment = Attachment(inv, ApiClient(socket_path=inv.conf.socket), probe or KernelProbe())
    if inv.command == "ADD":
        return attachment.add()
    if inv.command == "CHECK":
        attachment.check()
    elif inv.command == "DEL":
        attachment.delete()
    elif inv.command == "STATUS":
        attachment.status()
    else:
        attachment.collect_garbage()
    return None


def execute(env: Mapping[str, str], stdin: bytes, probe: Probe | None = None) -> tuple[int, str]:
    """(exit status, stdout) of one plugin run; errors as the spec's error JSON, status 1."""
    version = error_version(stdin)
    try:
        out = run(parse_invocation(env, stdin), probe)
    except CniError as exc:
        return 1, json.dumps(exc.to_json(version))
    except Exception as exc:  # a bug: still the spec's shape, so the runtime shows it
        error = CniError(INTERNAL_ERROR, "internal error in dnsd-cni", repr(exc))
        return 1, json.dumps(error.to_json(version))
    return 0, "" if out is None else json.dumps(out)


def main() -> int:
    """The `dnsd-cni` command, as a runtime runs it (CNI_* environment, config on stdin)."""
    try:
        stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    except OSError as exc:
        error = CniError(IO_FAILURE, "cannot read the network configuration", str(exc))
        print(json.dumps(error.to_json(DEFAULT_VERSION)))
        return 1
    status, out = execute(os.environ, stdin)
    if out:
        print(out)
    return status
