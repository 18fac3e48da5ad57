"""What became of a query, read from the reply bytes: pure and cheap (a few byte reads).

Outcome: the rcode decides first (NXDOMAIN, SERVFAIL, REFUSED, other errors; NOERROR without
answers is NODATA); a positive answer is `local`, `cached` (a remembered reply) or `forwarded`
by where it came from. Query types are folded to a fixed set so that label sets stay bounded.
"""

from __future__ import annotations

LOCAL, CACHED, FORWARDED, NXDOMAIN, NODATA, SERVFAIL, REFUSED, ERROR, DROPPED = range(9)
OUTCOMES = (
    "local", "cached", "forwarded", "nxdomain", "nodata", "servfail", "refused", "error",
    "dropped",
)  # fmt: skip
N_OUTCOMES = len(OUTCOMES)

QTYPE_NAMES = (
    "A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "NAPTR", "DS", "SVCB",
    "HTTPS", "ANY", "CAA", "other",
)  # fmt: skip
_QTYPE_NUMBERS = (1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 43, 64, 65, 255, 257)
_QTYPE_INDEX = {number: index for index, number in enumerate(_QTYPE_NUMBERS)}
OTHER_QTYPE = len(QTYPE_NAMES) - 1
N_KINDS = len(QTYPE_NAMES) * N_OUTCOMES  # a kind is qtype_index * N_OUTCOMES + outcome

_BY_RCODE = {2: SERVFAIL, 3: NXDOMAIN, 5: REFUSED}


def qtype_index(message: bytes, flags_at: int = 2) -> int:
    """The folded type of the first question of a message whose flags are at `flags_at` (2 in
    a whole message, 0 in a reply without its id, as the reply cache keeps them)."""
    if len(message) < flags_at + 10 or not (message[flags_at + 2] or message[flags_at + 3]):
        return OTHER_QTYPE  # no question (e.g. FORMERR without one)
    i = flags_at + 10
    end = len(message)
    while i < end:
        size = message[i]
        if size == 0:
            i += 1
            break
        if size >= 0xC0:  # a pointer ends the name
            i += 2
            break
        i += size + 1
    if i + 2 > end:
        return OTHER_QTYPE
    return _QTYPE_INDEX.get((message[i] << 8) | message[i + 1], OTHER_QTYPE)


def outcome_of(message: bytes, flags_at: int, positive: int) -> int:
    """The outcome of a reply (flags at `flags_at`); `positive` is the outcome of an answer
    with records (LOCAL, CACHED or FORWARDED)."""
    if len(message) < flags_at + 6:
        return ERROR
    rcode = message[flags_at + 1] & 0x0F
    if rcode == 0:
        return positive if message[flags_at + 4] or message[flags_at + 5] else NODATA
    return _BY_RCODE.get(rcode, ERROR)


def kind_of(message: bytes, flags_at: int, positive: int) -> int:
    """qtype index and outcome of a reply in one int (an index into the counters)."""
    return qtype_index(message, flags_at) * N_OUTCOMES + outcome_of(message, flags_at, positive)


def split_kind(kind: int) -> tuple[str, str]:
    """(qtype, outcome) label values of a kind."""
    return QTYPE_NAMES[kind // N_OUTCOMES], OUTCOMES[kind % N_OUTCOMES]
