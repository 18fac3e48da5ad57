"""Queries and replies as the unit tests write and read them (dnslib, the reference codec)."""

from __future__ import annotations

import asyncio
import socket

import dnslib


def query(name: str, qtype: str = "A") -> bytes:
    return dnslib.DNSRecord.question(name, qtype).pack()


def reply_addresses(data: bytes) -> list[str]:
    """The answer records' data, sorted."""
    return sorted(str(rr.rdata) for rr in dnslib.DNSRecord.parse(data).rr)


def rcode(data: bytes) -> str:
    return dnslib.RCODE[dnslib.DNSRecord.parse(data).header.rcode]


async def exchange(address: tuple[str, int], packet: bytes, *, tcp: bool = False) -> bytes:
    """One query to an IPv4 server on the running loop, over UDP or TCP; its reply."""
    if tcp:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(len(packet).to_bytes(2, "big") + packet)
        size = int.from_bytes(await reader.readexactly(2), "big")
        data = await reader.readexactly(size)
        writer.close()
        return data
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, packet)
        return await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
