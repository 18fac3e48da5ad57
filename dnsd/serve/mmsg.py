"""Batched datagram I/O: recvmmsg(2) and sendmmsg(2) through ctypes.

One wakeup of the event loop reads up to `BATCH` queries with one system call and sends all
local answers with one more, instead of two system calls per query: on this 2-core machine
that is what lets Python reach the C servers' rate (issue 5's measurements).

The buffers are shared by every socket: the event loop serves one socket at a time, and a
batch is fully answered (or copied out) before the next `recv` call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct

BATCH = 64
MAX_DATAGRAM = 4096  # a query never comes near this; a longer one is cut and gets FORMERR
_MSG_DONTWAIT = 0x40
_SOCKADDR_SIZE = 28  # sockaddr_in6, enough for both families


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_MMSGHDR_SIZE = ctypes.sizeof(_Mmsghdr)
_memmove = ctypes.memmove
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


class Batch:
    """Shared receive buffers and a send vector for one batch of datagrams."""

    def __init__(self, size: int = BATCH) -> None:
        self.size = size
        self._data = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        self._names = ctypes.create_string_buffer(_SOCKADDR_SIZE * size)
        base = ctypes.addressof(self._data)
        names = ctypes.addressof(self._names)
        self._data_addr = base
        self._names_addr = names
        self._recv_iov = (_Iovec * size)()
        self._recv = (_Mmsghdr * size)()
        for i in range(size):
            self._recv_iov[i].iov_base = base + i * MAX_DATAGRAM
            self._recv_iov[i].iov_len = MAX_DATAGRAM
            hdr = self._recv[i].msg_hdr
            hdr.msg_name = names + i * _SOCKADDR_SIZE
            hdr.msg_namelen = _SOCKADDR_SIZE
            hdr.msg_iov = ctypes.pointer(self._recv_iov[i])
            hdr.msg_iovlen = 1
        # Replies are copied into fixed slots, so a queued reply costs one memmove and two
        # field stores (pointing an iovec at a bytes object through ctypes costs more).
        self._out = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        out = ctypes.addressof(self._out)
        self._out_addr = out
        self._send_iov = (_Iovec * size)()
        self._send = (_Mmsghdr * size)()
        for i in range(size):
            self._send_iov[i].iov_base = out + i * MAX_DATAGRAM
            hdr = self._send[i].msg_hdr
            hdr.msg_iov = ctypes.pointer(self._send_iov[i])
            hdr.msg_iovlen = 1
            # Reply slot i starts out addressed to the sender of datagram i: when every query
            # of a batch is answered locally (the usual case) no address is set per reply.
            hdr.msg_name = names + i * _SOCKADDR_SIZE
        # Indexing a ctypes array builds a new object each time: keep one per slot.
        self._iov_slots = [self._send_iov[i] for i in range(size)]
        self._hdr_slots = [self._send[i].msg_hdr for i in range(size)]
        self._recv_hdrs = [self._recv[i].msg_hdr for i in range(size)]
        self._addressed = list(range(size))  # slot -> index of the datagram it answers
        self._pending = 0
        self._recv_addr = ctypes.addressof(self._recv)
        self._send_addr = ctypes.addressof(self._send)

    def recv(self, fd: int) -> list[bytes]:
        """Up to `size` datagrams waiting on `fd` (empty when none)."""
        for hdr in self._recv_hdrs:  # the kernel shrinks it to what it wrote
            hdr.msg_namelen = _SOCKADDR_SIZE
        n = _recvmmsg(fd, self._recv_addr, self.size, _MSG_DONTWAIT, None)
        if n <= 0:
            err = ctypes.get_errno()
            if n < 0 and err not in (11, 4):  # EAGAIN, EINTR
                raise OSError(err, os.strerror(err))
            return []
        string_at, base, recv = ctypes.string_at, self._data_addr, self._recv
        return [string_at(base + i * MAX_DATAGRAM, recv[i].msg_len) for i in range(n)]

    def queue_reply(self, index: int, data: bytes) -> bool:
        """Send `data` back to the sender of datagram `index` of the last `recv`; False when
        it does not fit a slot (the caller sends it alone)."""
        size = len(data)
        if size > MAX_DATAGRAM:
            return False
        slot = self._pending
        self._pending = slot + 1
        _memmove(self._out_addr + slot * MAX_DATAGRAM, data, size)
        self._iov_slots[slot].iov_len = size
        hdr = self._hdr_slots[slot]
        if self._addressed[slot] != index:
            hdr.msg_name = self._names_addr + index * _SOCKADDR_SIZE
            self._addressed[slot] = index
        hdr.msg_namelen = self._recv_hdrs[index].msg_namelen
        return True

    def flush(self, fd: int) -> None:
        """Send every queued reply (one system call for the batch)."""
        count = self._pending
        sent = 0
        while sent < count:
            n = _sendmmsg(fd, self._send_addr + sent * _MMSGHDR_SIZE, count - sent, _MSG_DONTWAIT)
            if n <= 0:  # a full socket buffer: the client retries, as with any UDP loss
                break
            sent += n
        self._pending = 0

    def sender(self, index: int) -> tuple[str, int]:
        """The (address, port) of datagram `index` of the last `recv`."""
        name = ctypes.string_at(self._names_addr + index * _SOCKADDR_SIZE, _SOCKADDR_SIZE)
        family, port = struct.unpack_from("=H", name)[0], struct.unpack_from("!H", name, 2)[0]
        if family == socket.AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
        return socket.inet_ntoa(name[4:8]), port
