"""Record data in zone-file form (RFC 1035 5.1) to wire rdata, for the records of a network.

Pure: `parse_rdata("SRV", "10 5 5432 db.example.")` gives the wire rdata and the canonical text
(what is stored and listed). Every refusal is an `InvalidArgument` on the field `Value` that
says what the text should look like.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netcore.errors import InvalidArgument
from netcore.names import validate_dns_name

from . import wire

TYPE_CNAME = 5
TYPE_TXT = 16
# The record types a network may carry, by their zone-file mnemonic.
RECORD_TYPES: dict[str, int] = {
    "A": wire.TYPE_A,
    "AAAA": wire.TYPE_AAAA,
    "CNAME": TYPE_CNAME,
    "SRV": wire.TYPE_SRV,
    "TXT": TYPE_TXT,
}
MAX_TXT_STRING = 255  # one <character-string> (RFC 1035 3.3)
MAX_RDATA = 65535 - 512  # leaves room for a header, the question and the owner in one message

_FIELD = "Value"


@dataclass(frozen=True, slots=True)
class Rdata:
    """Parsed record data: the type code, the wire rdata and the canonical zone-file text."""

    rtype: int
    wire: bytes
    text: str


def record_type(name: object, field: str = "Type") -> int:
    """The type code of a mnemonic (`A`, `aaaa`, ...); 400 naming the types we take."""
    code = RECORD_TYPES.get(name.upper()) if isinstance(name, str) else None
    if code is None:
        raise InvalidArgument(
            f"unsupported record type {name!r}: use one of {', '.join(RECORD_TYPES)}", field=field
        )
    return code


def parse_rdata(type_name: str, text: object) -> Rdata:
    """The rdata of `text` as a record of type `type_name` (a key of RECORD_TYPES)."""
    rtype = record_type(type_name)
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"the {type_name.upper()} record needs a value", field=_FIELD)
    text = text.strip()
    if rtype == wire.TYPE_A:
        address = _address(text, ipaddress.IPv4Address, "an IPv4 address like 10.0.0.5")
        return Rdata(rtype, address.packed, str(address))
    if rtype == wire.TYPE_AAAA:
        address6 = _address(text, ipaddress.IPv6Address, "an IPv6 address like fd00::5")
        return Rdata(rtype, address6.packed, str(address6))
    if rtype == TYPE_CNAME:
        target = _name(text, "CNAME target")
        if not target:
            raise InvalidArgument("a CNAME needs a target name, not the root", field=_FIELD)
        return Rdata(rtype, wire.encode_name(target), target + ".")
    if rtype == wire.TYPE_SRV:
        return _srv(text)
    return _txt(text)


def _address(text: str, kind: type, example: str):
    try:
        return kind(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not {example}", field=_FIELD) from None


def _name(text: str, what: str) -> str:
    """A target name (trailing dot optional, `.` is the root), without the trailing dot."""
    if text == ".":
        return ""
    try:
        return validate_dns_name(text, _FIELD)
    except InvalidArgument as exc:
        reason = str(exc).removeprefix(f"{_FIELD}: ")
        raise InvalidArgument(f"{what}: {reason}", field=_FIELD) from None


def _srv(text: str) -> Rdata:
    parts = text.split()
    usage = "SRV needs 'PRIORITY WEIGHT PORT TARGET', e.g. '10 5 5432 db.example.'"
    numbers = []
    for label, part in zip(("priority", "weight", "port"), parts, strict=False):
        if not part.isdigit() or int(part) > 65535:
            raise InvalidArgument(
                f"the {label} {part!r} is not a number 0-65535: {usage}", field=_FIELD
            )
        numbers.append(int(part))
    if len(parts) != 4:
        fields = ("priority", "weight", "port", "target")
        why = f"{fields[len(parts)]} missing" if len(parts) < 4 else "too many fields"
        raise InvalidArgument(f"{why} in {text!r}: {usage}", field=_FIELD)
    target = _name(parts[3], "SRV target")
    priority, weight, port = numbers
    rdata = wire.pack_srv_fixed(priority, weight, port) + wire.encode_name(target)
    return Rdata(wire.TYPE_SRV, rdata, f"{priority} {weight} {port} {target}.")


def _txt(text: str) -> Rdata:
    strings = _character_strings(text)
    packed = b"".join(bytes([len(s)]) + s for s in strings)
    if len(packed) > MAX_RDATA:
        raise InvalidArgument(
            f"TXT data is {len(packed)} octets; at most {MAX_RDATA}", field=_FIELD
        )
    return Rdata(TYPE_TXT, packed, " ".join(_quote(s) for s in strings))


def _character_strings(text: str) -> list[bytes]:
    """`"v=1" "two words" bare` -> [b"v=1", b"two words", b"bare"] with `\\"`, `\\\\`, `\\DDD`."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidArgument(
            "TXT data must be ASCII; write other octets as \\DDD (decimal)", field=_FIELD
        ) from None
    strings: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        if data[i : i + 1].isspace():
            i += 1
            continue
        quoted = data[i] == ord('"')
        i += quoted
        out = bytearray()
        while i < n:
            c = data[i]
            if quoted and c == ord('"'):
                break
            if not quoted and (data[i : i + 1].isspace() or c == ord('"')):
                break
            if c == ord("\\"):
                i, octet = _escape(data, i)
                out.append(octet)
                continue
            out.append(c)
            i += 1
        if quoted:
            if i >= n:
                raise InvalidArgument(f"TXT {text!r}: a quote is not closed", field=_FIELD)
            i += 1  # the closing quote
            if i < n and not data[i : i + 1].isspace():
                raise InvalidArgument(
                    f"TXT {text!r}: put a space between quoted strings", field=_FIELD
                )
        if len(out) > MAX_TXT_STRING:
            raise InvalidArgument(
                f"TXT string of {len(out)} octets; split it into quoted strings of at most "
                f"{MAX_TXT_STRING}",
                field=_FIELD,
            )
        strings.append(bytes(out))
    return strings


def _escape(data: bytes, i: int) -> tuple[int, int]:
    """The octet of the escape at `data[i]` (a backslash) and the index after it."""
    digits = data[i + 1 : i + 4]
    if len(digits) == 3 and digits.isdigit():
        value = int(digits)
        if value > 255:
            raise InvalidArgument(f"\\{digits.decode()} is not an octet (0-255)", field=_FIELD)
        return i + 4, value
    if i + 1 >= len(data) or data[i + 1 : i + 2].isdigit():
        raise InvalidArgument(
            "a backslash escapes one character or three decimal digits (\\DDD)", field=_FIELD
        )
    return i + 2, data[i + 1]


def _quote(octets: bytes) -> str:
    out = []
    for octet in octets:
        if octet in (0x22, 0x5C):
            out.append("\\" + chr(octet))
        elif 0x20 <= octet < 0x7F:
            out.append(chr(octet))
        else:
            out.append(f"\\{octet:03d}")
    return '"' + "".join(out) + '"'
