"""The fast path equals the dnslib oracle byte for byte, over random topologies and queries.

Each example is a random snapshot (networks that may overlap, sandboxes sharing names and
aliases, container-mode chains, broken references, odd names) and a batch of queries drawn from
its names in random case, unknown names, random types, classes, EDNS, TCP and malformations.
Both sides get an rng with the same seed, so shuffled answers must agree too.

Not compared (documented differences of the oracle, not of the rules): labels that are not
UTF-8 (dnslib refuses them, we forward) and non-OPT additional records (dnslib parses their
rdata, we skip it).
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnsd.core import answer, build_view
from netcore.errors import InvalidArgument
from netcore.model import PortBinding, Record, Snapshot
from netcore.names import validate_dns_name
from tests.oracle.slow import answer_slow
from tests.support import snapshots as build

NAME_POOL = ["web", "Web", "db", "api", "x-1", "svc_a", "a.b", "web.", "bad..name", "n1", "big"]
NET_POOL = ["netA", "NETA", "netB", "internal", "v6", "my.net", "x"]
SUBNET_POOL = ["10.1.0.0/24", "10.2.0.0/24", "10.1.0.0/24", "172.30.0.0/16"]  # dupes: overlap
QTYPES = [1, 28, 12, 33, 15, 16, 255, 5, 2, 6, 13]
# Records that are not sandboxes: names that clash with sandboxes and with each other, CNAMEs
# to local names, outside names, each other and themselves (chains and loops).
RECORD_NAMES = ["db", "web", "c1", "c2", "c3", "_pg._tcp.db", "host.docker.internal", "api"]
CNAME_TARGETS = ["db.", "Web.", "c2.", "c3.", "c1.", "web.netA.", "far.example.", "big."]
RECORD_VALUES = {
    "A": ["10.1.0.77", "10.2.0.9", "192.0.2.1"],
    "AAAA": ["fd00:0::77", "2001:db8::1"],
    "CNAME": CNAME_TARGETS,
    "SRV": ["10 5 5432 db.", "0 0 80 Web.netA.", "1 1 1 far.example."],
    "TXT": ['"v=1"', '"a b" "c"', '"q\\"x" "\\001"'],
}
LONG_LABEL = "l" * 70  # not a DNS label: must be skipped by both sides

labels_text = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True)
object_name = st.one_of(st.sampled_from([*NAME_POOL, LONG_LABEL]), labels_text)


def _id(prefix: str, index: int) -> str:
    return f"{prefix}{index:04x}".ljust(64, "c")


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    networks = []
    for index in range(draw(st.integers(1, 3))):
        subnet = draw(st.sampled_from(SUBNET_POOL))
        v6 = f"fd00:{index}::/64" if draw(st.booleans()) else None
        name = draw(st.sampled_from(NET_POOL))
        internal = draw(st.booleans())
        ttl = draw(st.sampled_from([0, 5, 30, 600]))
        host_names = draw(st.sampled_from([(), (), (("dnsd.host_names", "false"),)]))
        networks.append(
            build.network(
                _id("ee", index),
                name,
                f"br{index}",
                subnet,
                v6=v6,
                internal=internal,
                dns_ttl=ttl,
                options=host_names,
            )
        )
    count = draw(st.integers(1, 7))
    sandbox_ids = [_id("5a", i) for i in range(count)]
    sandboxes, endpoints = [], []
    host = 2
    for index, sid in enumerate(sandbox_ids):
        mode = draw(st.sampled_from(["bridge"] * 5 + ["container", "container", "none"]))
        joined = draw(st.sampled_from([*sandbox_ids, "gone"])) if mode == "container" else None
        ports = draw(
            st.lists(
                st.builds(
                    PortBinding,
                    st.sampled_from([53, 80, 443]),
                    st.just(8000 + index),
                    st.sampled_from(["tcp", "udp"]),
                ),
                max_size=2,
            )
        )
        options = draw(
            st.sampled_from([None, ("ndots:2",), ("ndots:x",), ("timeout:1",), ("ndots:0",)])
        )
        sandboxes.append(
            build.sandbox(
                sid,
                draw(object_name),
                netns_path="/run/netns/x",
                hostname=draw(st.one_of(st.just(""), object_name)),
                mode=mode,
                joined_to=joined,
                dns_options=options,
                ports=tuple(ports),
            )
        )
        if mode == "container":
            continue
        for net in draw(st.lists(st.sampled_from(networks), max_size=3, unique_by=lambda n: n.id)):
            host += 1
            endpoints.append(
                build.endpoint(
                    _id("e9", len(endpoints)),
                    net,
                    sid,
                    draw(st.sampled_from([host, 2])),
                    v6_host=host,
                    host_ifname=f"veth{len(endpoints)}",
                    aliases=draw(st.lists(object_name, max_size=2)),
                )
            )
    # Sometimes a crowd behind one alias, so that UDP answers must be truncated.
    crowd_net = networks[0]
    for index in range(draw(st.sampled_from([0, 0, 3, 35, 45]))):
        sid = _id("c0", index)
        sandboxes.append(build.sandbox(sid, f"m{index}"))
        endpoints.append(
            build.endpoint(
                _id("c1", index),
                crowd_net,
                sid,
                100 + index,
                v6_host=100 + index,
                host_ifname=f"vc{index}",
                mac="02:00:00:00:00:02",
                aliases=("big",),
            )
        )
    if draw(st.booleans()):  # a stale endpoint of a sandbox that is gone, at the gateway
        endpoints.append(
            build.endpoint("e8".ljust(64, "0"), networks[0], "gone", 1, host_ifname="v", mac="m")
        )
    records = []
    for index in range(draw(st.sampled_from([0, 4, 8, 12]))):
        rtype = draw(st.sampled_from(sorted(RECORD_VALUES)))
        records.append(
            Record(
                id=_id("4e", index),
                network_id=draw(st.sampled_from(networks)).id,
                name=draw(st.sampled_from(RECORD_NAMES)),
                type=rtype,
                value=draw(st.sampled_from(RECORD_VALUES[rtype])),
                ttl=draw(st.sampled_from([None, None, 0, 7, 300])),
            )
        )
    if draw(st.booleans()):  # a kit on one network: a chain to local data, a loop, outside
        kit = [
            ("c1", "CNAME", "C2."),
            ("c2", "CNAME", "tgt."),
            ("tgt", "A", "10.1.0.78"),
            ("tgt", "TXT", '"t"'),
            ("_x._tcp.tgt", "SRV", "1 2 3 tgt."),
            ("srv", "CNAME", "_x._tcp.tgt."),
            ("loop", "CNAME", "loop."),
            ("out", "CNAME", "far.example."),
        ]
        if _valid_name(sandboxes[0].name):  # the API takes only valid targets
            kit.append(("tosandbox", "CNAME", f"{sandboxes[0].name.rstrip('.')}."))
        net = draw(st.sampled_from(networks))
        for index, (name, rtype, value) in enumerate(kit):
            records.append(Record(_id("4f", index), net.id, name, rtype, value))  # type: ignore[arg-type]
    snapshot = build.snapshot(networks, sandboxes, endpoints, revision=7)
    return replace(snapshot, records=tuple(records))


def _valid_name(name: str) -> bool:
    try:
        validate_dns_name(name, "Value")
    except InvalidArgument:
        return False
    return True


def _candidate_names(snapshot: Snapshot) -> dict[str, list[str]]:
    """Names worth asking, by kind: forward names, reverse names, SRV names."""
    names: dict[str, list[str]] = {
        "forward": ["nosuch", "a.b.c", "", "localhost", "web.nosuch"],
        "reverse": ["1.0.0.127.in-addr.arpa"],
        "srv": ["_80._tcp.nosuch"],
    }
    for sandbox in snapshot.sandboxes:
        bare = [n for n in (sandbox.name, sandbox.hostname, sandbox.id[:12]) if n]
        full = bare + [f"{n.rstrip('.')}.{net.name}" for n in bare for net in snapshot.networks]
        names["forward"] += full + [net.name for net in snapshot.networks]
        names["srv"] += [f"_{p.container_port}._{p.proto}.{n}" for p in sandbox.ports for n in full]
    ports = {(p.container_port, p.proto) for sandbox in snapshot.sandboxes for p in sandbox.ports}
    for ep in snapshot.endpoints:
        names["forward"] += list(ep.aliases)
        names["srv"] += [
            f"_{port}._{proto}.{alias}" for port, proto in ports for alias in ep.aliases
        ]
        names["reverse"] += [a.reverse_pointer for a in (ep.ipv4, ep.ipv6) if a is not None]
    names["reverse"] += [net.ipv4.gateway.reverse_pointer for net in snapshot.networks]
    names["record"] = ["host.docker.internal", "HOST.containers.internal", "far.example"]
    names["record"] += ["c1", "srv", "tosandbox", "out", "loop"] * 3  # the kit's CNAMEs
    for record in snapshot.records:
        names["record"] += [
            record.name,
            *(f"{record.name}.{net.name}" for net in snapshot.networks),
        ]
        if record.type in ("A", "AAAA"):
            names["reverse"].append(ipaddress.ip_address(record.value).reverse_pointer)
    return names


def _wire_name(name: str) -> bytes | None:
    labels = [part.encode() for part in name.rstrip(".").split(".")] if name.strip(".") else []
    if any(not 0 < len(label) < 64 for label in labels):
        return None
    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return wire if len(wire) <= 255 else None


KIND_TYPES = {
    "forward": [1, 1, 1, 28],
    "reverse": [12],
    "srv": [33],
    "record": [1, 1, 28, 5, 16, 33],
}


def random_query(rnd: random.Random, names: dict[str, list[str]]) -> bytes:
    """A query, mostly well-formed and about a name of the snapshot, sometimes not."""
    kinds = ["forward"] * 6 + ["reverse", "reverse", "srv", "srv"]
    kind = rnd.choice(kinds + ["record"] * 8 if len(names.get("record", ())) > 3 else kinds)
    if kind == "forward" and rnd.random() < 0.1:
        return _finish(rnd, b"\x03BiG\x00", rnd.choice([1, 1, 28]))
    name = "".join(c.upper() if rnd.random() < 0.3 else c for c in rnd.choice(names[kind]))
    wire = _wire_name(name) or b"\x06nosuch\x00"
    qtype = rnd.choice(KIND_TYPES[kind]) if rnd.random() < 0.85 else rnd.choice(QTYPES)
    if rnd.random() < 0.03:
        qtype = rnd.randrange(65536)
    return _finish(rnd, wire, qtype)


def _finish(rnd: random.Random, wire: bytes, qtype: int) -> bytes:
    """Header, class, flags, EDNS, and now and then a malformation, around a question name."""
    qclass = rnd.choice([1] * 8 + [3, 255, 254])
    opcode = rnd.choice([0] * 40 + [4, 4, 1, 2, 5])
    flags = (
        opcode << 11
        | rnd.choice([0, 0x0100, 0x0100])  # RD
        | rnd.choice([0] * 6 + [0x0010, 0x0020, 0x0040, 0x0200, 0x0400])  # CD AD Z TC AA
        | (0x8000 if rnd.random() < 0.04 else 0)  # QR
    )
    additional = b""
    arcount = 0
    if rnd.random() < 0.4:
        size = rnd.choice([0, 100, 512, 600, 1232, 4096, 65535, rnd.randrange(512, 900)])
        ttl = rnd.choice([0, 0x8000, 0x01008000])  # DO, and a version-1 OPT
        rdata = rnd.choice([b"", b"\x00\x0a\x00\x08" + bytes(8)])  # a client cookie
        opt = b"\x00" + struct.pack("!HHIH", 41, size, ttl, len(rdata)) + rdata
        arcount = 2 if rnd.random() < 0.05 else 1  # two OPTs: FORMERR
        additional = opt * arcount
    counts = rnd.choice([(1, 0, 0)] * 60 + [(0, 0, 0), (2, 0, 0), (1, 1, 0), (1, 0, 1)])
    header = struct.pack("!HHHHHH", rnd.randrange(65536), flags, *counts, arcount)
    packet = header + wire + struct.pack("!HH", qtype, qclass) + additional
    mutation = rnd.random()
    if mutation < 0.04:
        packet += rnd.randbytes(rnd.randrange(1, 20))
    elif mutation < 0.08:
        packet = packet[: rnd.randrange(len(packet))]
    elif mutation < 0.10:
        packet = header + b"\x03web\xc0\x0c" + struct.pack("!HH", qtype, qclass)
    elif mutation < 0.12:
        packet = header + b"\x40" + bytes(70)  # obsolete extended label type
    return packet


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(snapshot=snapshots(), host_ndots=st.booleans(), seed=st.integers(0, 2**32))
def test_fast_path_equals_oracle(snapshot: Snapshot, host_ndots: bool, seed: int) -> None:
    view = build_view(snapshot, host_explicit_ndots=host_ndots)
    names = _candidate_names(snapshot)
    # Mostly sandboxes with a zone: the others always forward.
    with_zone = list(view.zones)
    others = [s.id for s in snapshot.sandboxes] + ["unknown-sandbox"]
    rnd = random.Random(seed)
    for _ in range(40):  # 150 topologies x 40 queries
        packet = random_query(rnd, names)
        asker = rnd.choice(with_zone if with_zone and rnd.random() < 0.85 else others)
        tcp = rnd.random() < 0.3
        shuffle_seed = rnd.randrange(2**32)
        fast = answer(packet, asker, view, tcp=tcp, rng=random.Random(shuffle_seed))
        slow = answer_slow(packet, asker, view, tcp=tcp, rng=random.Random(shuffle_seed))
        assert fast == slow, (packet, asker, tcp)
