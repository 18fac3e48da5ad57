"""A small synchronous rtnetlink client for the connect path, on pyroute2's message classes.

pyroute2 0.9's `IPRoute` runs an asyncio loop per request (about 5 ms each); a connect needs a
dozen requests. Here each request is one `send` and one `recv` on a plain netlink socket — which
may have been opened inside another namespace — so a veth with addresses and a route costs a few
milliseconds, most of it the kernel's own work.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from ..errors import NetlinkError

_NLMSG_ERROR = 2
_HDR = struct.Struct("=LHHLL")
_IFF_UP = 0x1
_IFA_F_NODAD = 0x02
_RT_TABLE_MAIN = 254
_RTPROT_STATIC = 4
_RT_SCOPE_UNIVERSE = 0
_RTN_UNICAST = 1
_BRIDGE_MODE_HAIRPIN = 1


class Rtnl:
    """One netlink socket; requests are acknowledged one at a time (not thread-safe)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---

    def _request(self, msg: Any, mtype: int, flags: int = 0, *, what: str) -> bytes | None:
        """Send `msg`; return the first reply message of a GET, None for an ACK."""
        self._seq += 1
        seq = self._seq
        header = msg["header"]
        header["type"] = mtype
        header["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        header["sequence_number"] = seq
        msg.encode()
        self.sock.send(msg.data)
        reply = None
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, typ, _flags, rseq, _pid = _HDR.unpack_from(data, offset)
                if rseq == seq:
                    if typ == _NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, offset + 16)[0]
                        if code:
                            raise OSError(code, f"{what}: {os.strerror(code)}")
                        return reply
                    reply = data[offset : offset + length]
                offset += (length + 3) & ~3

    def link_index(self, name: str) -> int | None:
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            reply = self._request(msg, RTM_GETLINK, what=f"find link {name}")
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise NetlinkError(str(exc)) from exc
        if reply is None:
            return None
        return struct.unpack_from("=i", reply, _HDR.size + 4)[0]  # ifinfomsg.ifi_index

    def add_veth(self, name: str, peer: str, peer_netns_fd: int) -> None:
        """A veth pair whose `peer` end is created directly inside another namespace."""
        msg = ifinfmsg()
        peer_attrs = {"attrs": [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_netns_fd)]}
        msg["attrs"] = [
            ("IFLA_IFNAME", name),
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ("IFLA_INFO_KIND", "veth"),
                        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_attrs)]}),
                    ]
                },
            ),
        ]
        self._checked(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, f"create veth {name}")

    def add_bridge(self, name: str) -> None:
        msg = ifinfmsg()
        msg["attrs"] = [
            ("IFLA_IFNAME", name),
            ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]}),
        ]
        self._checked(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, f"create bridge {name}")

    def set_link(
        self,
        index: int,
        *,
        ifname: str | None = None,
        address: str | None = None,
        mtu: int | None = None,
        master: int | None = None,
        up: bool | None = None,
    ) -> None:
        msg = ifinfmsg()
        msg["index"] = index
        attrs: list[tuple[str, Any]] = []
        if ifname is not None:
            attrs.append(("IFLA_IFNAME", ifname))
        if address is not None:
            attrs.append(("IFLA_ADDRESS", address))
        if mtu is not None:
            attrs.append(("IFLA_MTU", mtu))
        if master is not None:
            attrs.append(("IFLA_MASTER", master))
        msg["attrs"] = attrs
        if up is not None:
            msg["flags"] = _IFF_UP if up else 0
            msg["change"] = _IFF_UP
        self._checked(msg, RTM_NEWLINK, 0, f"configure link {ifname or index}")

    def set_hairpin(self, index: int) -> None:
        """Hairpin mode on a bridge port: a sandbox reaches its own published port."""
        msg = ifinfmsg()
        msg["index"] = index
        slave = {"attrs": [("IFLA_BRPORT_MODE", _BRIDGE_MODE_HAIRPIN)]}
        msg["attrs"] = [
            (
                "IFLA_LINKINFO",
                {"attrs": [("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", slave)]},
            )
        ]
        self._checked(msg, RTM_NEWLINK, 0, f"hairpin on link {index}")

    def delete_link(self, index: int) -> None:
        msg = ifinfmsg()
        msg["index"] = index
        self._checked(msg, RTM_DELLINK, 0, f"delete link {index}")

    def add_address(self, index: int, address: str, prefixlen: int, *, nodad: bool) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        msg = ifaddrmsg()
        msg["index"] = index
        msg["family"] = family
        msg["prefixlen"] = prefixlen
        attrs: list[tuple[str, Any]] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if nodad:
            attrs.append(("IFA_FLAGS", _IFA_F_NODAD))
        msg["attrs"] = attrs
        self._checked(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, f"add address {address}")

    def replace_default_route(self, gateway: str) -> None:
        self._checked(
            self._default_route(gateway),
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_REPLACE,
            f"default route via {gateway}",
        )

    def delete_default_route(self, family: int) -> None:
        try:
            self._checked(self._default_route(None, family), RTM_DELROUTE, 0, "delete route")
        except NetlinkError as exc:
            if "No such process" not in str(exc):  # ESRCH: there was none
                raise

    @staticmethod
    def _default_route(gateway: str | None, family: int | None = None) -> Any:
        msg = rtmsg()
        if family is None:
            family = socket.AF_INET6 if gateway and ":" in gateway else socket.AF_INET
        msg["family"] = family
        msg["table"] = _RT_TABLE_MAIN
        msg["proto"] = _RTPROT_STATIC
        msg["scope"] = _RT_SCOPE_UNIVERSE
        msg["type"] = _RTN_UNICAST
        msg["attrs"] = [("RTA_GATEWAY", gateway)] if gateway else []
        return msg

    def _checked(self, msg: Any, mtype: int, flags: int, what: str) -> None:
        try:
            self._request(msg, mtype, flags, what=what)
        except OSError as exc:
            raise NetlinkError(str(exc)) from exc
