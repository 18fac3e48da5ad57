"""Batched datagram I/O: recvmmsg(2) and sendmmsg(2) through ctypes.

One wakeup of the event loop reads up to `BATCH` queries with one system call and sends their
answers with one more (per run of consecutive answers), instead of two system calls per query:
on this 2-core machine that is what lets Python reach the C servers' rate (issue 5).

Reply slot i answers datagram i: its destination is set once, at construction, to where the
kernel writes the sender of datagram i, so a reply costs one copy into its slot and one length
store. Buffers are read and written through memoryviews (a ctypes call per packet costs more).
They are shared by every socket: the event loop serves one socket at a time, and each batch is
answered (or copied out) before the next `recv`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
from collections.abc import Callable

BATCH = 64
MAX_DATAGRAM = 4096  # a query never comes near this; a longer one is cut and gets FORMERR
_MSG_DONTWAIT = 0x40
_SOCKADDR_SIZE = 28  # sockaddr_in6, enough for both families
_EAGAIN, _EINTR = 11, 4


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
_MSG_LEN_OFFSET = _Mmsghdr.msg_len.offset
_IOV_SIZE = ctypes.sizeof(_Iovec)
_IOV_LEN_OFFSET = _Iovec.iov_len.offset
_read_len = struct.Struct("=I").unpack_from
_read_family = struct.Struct("=H").unpack_from
MAX_SENDERS = 4096  # decoded client addresses kept (`Batch.sender`)
_write_size = struct.Struct("N").pack_into  # size_t, native

try:  # the C hot loop, built at install time when a compiler is there (setup.py)
    from . import _fastpath
except ImportError:  # pragma: no cover - a machine without gcc and python3-dev
    _fastpath = None
if os.environ.get("DNSD_PURE_PYTHON"):  # the specification's loop (tests, bench A/B)
    _fastpath = None

ACCELERATED = _fastpath is not None

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int


def _bytes_of(obj: ctypes.Array) -> memoryview:
    """A writable byte view of a ctypes array's memory."""
    raw = (ctypes.c_ubyte * ctypes.sizeof(obj)).from_address(ctypes.addressof(obj))
    return memoryview(raw).cast("B")


class Batch:
    """Shared receive buffers and reply slots for one batch of datagrams."""

    def __init__(self, size: int = BATCH) -> None:
        self.size = size
        self._data = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        self._names = ctypes.create_string_buffer(_SOCKADDR_SIZE * size)
        self._out = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        data, names, out = (ctypes.addressof(b) for b in (self._data, self._names, self._out))
        self._names_addr = names
        self._recv_iov = (_Iovec * size)()
        self._recv = (_Mmsghdr * size)()
        self._send_iov = (_Iovec * size)()
        self._send = (_Mmsghdr * size)()
        for i in range(size):
            self._recv_iov[i].iov_base = data + i * MAX_DATAGRAM
            self._recv_iov[i].iov_len = MAX_DATAGRAM
            self._send_iov[i].iov_base = out + i * MAX_DATAGRAM
            for vec, iov in ((self._recv, self._recv_iov), (self._send, self._send_iov)):
                hdr = vec[i].msg_hdr
                hdr.msg_name = names + i * _SOCKADDR_SIZE
                # Large enough for either family; the kernel accepts a longer sockaddr_in.
                hdr.msg_namelen = _SOCKADDR_SIZE
                hdr.msg_iov = ctypes.pointer(iov[i])
                hdr.msg_iovlen = 1
        self._recv_addr = ctypes.addressof(self._recv)
        self._out_addr = out
        self._send_addr = ctypes.addressof(self._send)
        self._names_view = memoryview(self._names).cast("B")
        self._senders: dict[bytes, tuple[str, int]] = {}
        self._data_view = memoryview(self._data).cast("B")
        self._out_view = memoryview(self._out).cast("B")
        self._recv_raw = _bytes_of(self._recv)
        self._send_iov_raw = _bytes_of(self._send_iov)
        self._recv_hdrs = [self._recv[i].msg_hdr for i in range(size)]
        self._run_start = 0  # queued replies are the slots [run_start, run_end)
        self._run_end = 0

    def recv(self, fd: int) -> list[bytes]:
        """Up to `size` datagrams waiting on `fd` (empty when none)."""
        self._run_start = self._run_end = 0
        for hdr in self._recv_hdrs:  # the kernel shrinks it to the sender's size
            hdr.msg_namelen = _SOCKADDR_SIZE
        n = _recvmmsg(fd, self._recv_addr, self.size, _MSG_DONTWAIT, None)
        if n <= 0:
            err = ctypes.get_errno()
            if n < 0 and err not in (_EAGAIN, _EINTR):
                raise OSError(err, os.strerror(err))
            return []
        view, raw = self._data_view, self._recv_raw
        return [
            view[i * MAX_DATAGRAM : i * MAX_DATAGRAM
                 + _read_len(raw, i * _MMSGHDR_SIZE + _MSG_LEN_OFFSET)[0]].tobytes()
            for i in range(n)
        ]  # fmt: skip

    def answer_known(
        self,
        fd: int,
        remembered: dict[bytes, bytes] | None,
        recall: Callable[[bytes], bytes | None] | None,
        hits: list[bytes],
        recalled: list[bytes],
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """Receive a batch and answer, with one sendmmsg, each query whose bytes after its ID
        are a key of `remembered` (else for which `recall` gives bytes): its ID, then that
        value, appended to `hits` (or `recalled`); a datagram shorter than a DNS header is not
        looked up. Returns how many datagrams came and the others, as (index, packet), for the
        caller to answer with `queue_reply`, `flush` and `sender`. In C when the accelerator
        is built (`_fastpath.c`); the Python below is its specification."""
        if _fastpath is not None:
            self._run_start = self._run_end = 0
            return _fastpath.answer_known(
                fd, self._recv_addr, self.size, self._out_addr, MAX_DATAGRAM, _SOCKADDR_SIZE,
                remembered, recall, hits, recalled,
            )  # fmt: skip
        packets = self.recv(fd)
        misses: list[tuple[int, bytes]] = []
        for index, packet in enumerate(packets):
            key = packet[2:]
            if len(packet) < 12:  # shorter than a DNS header
                body = None
            elif remembered is not None and (body := remembered.get(key)) is not None:
                into = hits
            elif recall is not None and (body := recall(key)) is not None:
                into = recalled
            else:
                body = None
            if body is None or len(body) + 2 > MAX_DATAGRAM:
                misses.append((index, packet))
                continue
            into.append(body)
            self.queue_reply(fd, index, packet[:2] + body)
        self.flush(fd)
        return len(packets), misses

    def queue_reply(self, fd: int, index: int, data: bytes) -> bool:
        """Queue `data` for the sender of datagram `index` of the last `recv` (in increasing
        `index` order); False when it does not fit a slot (the caller sends it alone)."""
        size = len(data)
        if size > MAX_DATAGRAM:
            return False
        if index != self._run_end:  # a gap (a forwarded query): send the run so far
            self.flush(fd)
            self._run_start = index
        offset = index * MAX_DATAGRAM
        self._out_view[offset : offset + size] = data
        _write_size(self._send_iov_raw, index * _IOV_SIZE + _IOV_LEN_OFFSET, size)
        self._run_end = index + 1
        return True

    @property
    def queued(self) -> int:
        return self._run_end - self._run_start

    def flush(self, fd: int) -> None:
        """Send the queued replies (one system call for the run)."""
        start, end = self._run_start, self._run_end
        while start < end:
            n = _sendmmsg(fd, self._send_addr + start * _MMSGHDR_SIZE, end - start, _MSG_DONTWAIT)
            if n <= 0:  # a full socket buffer: the client retries, as with any UDP loss
                break
            start += n
        self._run_start = self._run_end

    def sender_name(self, index: int) -> bytes:
        """The raw sockaddr of the sender of datagram `index` of the last `recv` (what
        `Outbox.send` takes)."""
        offset = index * _SOCKADDR_SIZE
        names = self._names_view
        size = _SOCKADDR_SIZE if _read_family(names, offset)[0] == socket.AF_INET6 else 16
        return names[offset : offset + size].tobytes()

    def sender(self, index: int) -> tuple[str, int]:
        """The (address, port) of datagram `index` of the last `recv` (the few clients of a
        sandbox are decoded once, then looked up by their raw sockaddr)."""
        raw = self.sender_name(index)
        found = self._senders.get(raw)
        if found is None:
            if len(self._senders) >= MAX_SENDERS:
                self._senders.clear()
            found = self._senders[raw] = decode_sender(raw)
        return found


def decode_sender(name: bytes) -> tuple[str, int]:
    """(address, port) of a raw sockaddr_in or sockaddr_in6."""
    family, port = _read_family(name)[0], struct.unpack_from("!H", name, 2)[0]
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), port
    return socket.inet_ntoa(name[4:8]), port


_NAMELEN_OFFSET = _Msghdr.msg_namelen.offset
_write_u32 = struct.Struct("=I").pack_into


class Outbox:
    """sendmmsg(2) of datagrams given as bytes: to a connected socket's peer, or each to its
    own raw sockaddr. Copies into its own buffers (not `Batch`'s: it is flushed later)."""

    def __init__(self, size: int = BATCH) -> None:
        self.size = size
        self._data = ctypes.create_string_buffer(MAX_DATAGRAM * size)
        self._names = ctypes.create_string_buffer(_SOCKADDR_SIZE * size)
        data, names = ctypes.addressof(self._data), ctypes.addressof(self._names)
        self._iov = (_Iovec * size)()
        self._hdrs = (_Mmsghdr * size)()
        for i in range(size):
            self._iov[i].iov_base = data + i * MAX_DATAGRAM
            hdr = self._hdrs[i].msg_hdr
            hdr.msg_name = names + i * _SOCKADDR_SIZE
            hdr.msg_iov = ctypes.pointer(self._iov[i])
            hdr.msg_iovlen = 1
        self._hdrs_addr = ctypes.addressof(self._hdrs)
        self._data_view = memoryview(self._data).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        self._iov_raw = _bytes_of(self._iov)
        self._hdrs_raw = _bytes_of(self._hdrs)

    def send(
        self, fd: int, messages: list[bytes], names: list[bytes] | None = None
    ) -> tuple[int, OSError | None]:
        """Send `messages` in order (to `names[i]`, raw sockaddrs, or to the peer): how many
        were sent, and why the next one was not (None when all were). A message longer than a
        slot (MAX_DATAGRAM) is the caller's to send alone."""
        sent = 0
        total = len(messages)
        while sent < total:
            count = min(self.size, total - sent)
            for slot in range(count):
                data = messages[sent + slot]
                offset = slot * MAX_DATAGRAM
                self._data_view[offset : offset + len(data)] = data
                _write_size(self._iov_raw, slot * _IOV_SIZE + _IOV_LEN_OFFSET, len(data))
                namelen = 0
                if names is not None:
                    name = names[sent + slot]
                    namelen = len(name)
                    at = slot * _SOCKADDR_SIZE
                    self._names_view[at : at + namelen] = name
                _write_u32(self._hdrs_raw, slot * _MMSGHDR_SIZE + _NAMELEN_OFFSET, namelen)
            n = _sendmmsg(fd, self._hdrs_addr, count, _MSG_DONTWAIT)
            if n <= 0:
                err = ctypes.get_errno()
                if n < 0 and err == _EINTR:
                    continue
                if err == _EAGAIN:
                    return sent, BlockingIOError(err, os.strerror(err))
                return sent, OSError(err, os.strerror(err))
            sent += n
        return sent, None
