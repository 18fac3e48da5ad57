"""Queries and replies as the unit tests write and read them (dnslib, the reference codec)."""

from __future__ import annotations

import dnslib


def query(name: str, qtype: str = "A") -> bytes:
    return dnslib.DNSRecord.question(name, qtype).pack()


def reply_addresses(data: bytes) -> list[str]:
    """The answer records' data, sorted."""
    return sorted(str(rr.rdata) for rr in dnslib.DNSRecord.parse(data).rr)


def rcode(data: bytes) -> str:
    return dnslib.RCODE[dnslib.DNSRecord.parse(data).header.rcode]
