"""Health-aware answers beside records that are not sandboxes: expected answers.

Three sandboxes share the alias `api`, each with a check; records of the records API (no
health) sit on the same names. Every answer is checked against the incremental view and the
oracle too.
"""

from __future__ import annotations

import random
from dataclasses import replace

from dnslib import QTYPE, DNSRecord

from dnsd.core import answer, build_view
from dnsd.core.answer import Reply
from dnsd.core.incremental import ViewBuilder
from netcore.healthcheck import Healthcheck
from netcore.model import Record, Snapshot
from tests.oracle.slow import answer_slow
from tests.support import snapshots as build

NET = build.network("a".ljust(64, "0"), "netA", "brA", "10.1.0.0/24", dns_ttl=600)
CHECK = Healthcheck(("TCP", "80"))
API = [build.sandbox(f"{i}".ljust(64, "0"), f"api{i}", healthcheck=CHECK) for i in (1, 2, 3)]
CLI = build.sandbox("9".ljust(64, "0"), "cli")


def _snapshot(*records: Record) -> Snapshot:
    endpoints = [
        build.endpoint(f"e{i}".ljust(64, "0"), NET, box.id, 10 + i, aliases=("api",))
        for i, box in enumerate(API, 1)
    ]
    endpoints.append(build.endpoint("e9".ljust(64, "0"), NET, CLI.id, 2, host_ifname="v9"))
    base = build.snapshot([NET], [*API, CLI], endpoints)
    return replace(base, records=records)


def _record(name: str, rtype: str, value: str, ttl: int | None = None) -> Record:
    rid = f"{name}{rtype}{value}".encode().hex()[:64].ljust(64, "0")
    return Record(rid, NET.id, name, rtype, value, ttl)  # type: ignore[arg-type]


def ask(snapshot: Snapshot, health: dict[str, str], name: str, qtype: str = "A") -> list:
    """(type, TTL, rdata) of the answer, sorted; the incremental view (after a build with
    other health) and the oracle must give the same bytes."""
    packet = DNSRecord.question(name, qtype).pack()
    view = build_view(snapshot, health=health)
    builder = ViewBuilder()
    builder.build(snapshot, health={box.id: "healthy" for box in API})
    again = builder.build(snapshot, health=health)
    decision = answer(packet, CLI.id, view, rng=random.Random(3))
    assert decision == answer(packet, CLI.id, again, rng=random.Random(3))
    assert decision == answer_slow(packet, CLI.id, view, rng=random.Random(3))
    assert isinstance(decision, Reply)
    return sorted((QTYPE[r.rtype], r.ttl, str(r.rdata)) for r in DNSRecord.parse(decision.data).rr)


def _health(*statuses: str) -> dict[str, str]:
    return {box.id: status for box, status in zip(API, statuses, strict=True)}


def test_a_record_beside_the_fit_members_is_answered_and_has_no_health():
    snap = _snapshot(_record("api", "A", "192.0.2.7", ttl=30))
    assert ask(snap, _health("healthy", "unhealthy", "starting"), "api") == [
        ("A", 30, "10.1.0.11"),
        ("A", 30, "192.0.2.7"),
    ]
    # Nobody fit: every member (fail open), and the record.
    all_down = _health("unhealthy", "unhealthy", "unhealthy")
    assert [r[2] for r in ask(snap, all_down, "api")] == [
        "10.1.0.11",
        "10.1.0.12",
        "10.1.0.13",
        "192.0.2.7",
    ]
    assert build_view(snap, health=all_down).fail_open == 2  # `api` and `api.netA`


def test_tasks_answers_every_member_once_with_one_ttl_when_a_record_repeats_a_left_out_one():
    # The record gives the address of an unhealthy member: answered (it has no health), and
    # tasks.api has it once, the RRset with the record's smaller TTL.
    snap = _snapshot(_record("api", "A", "10.1.0.12", ttl=30))
    health = _health("healthy", "unhealthy", "unhealthy")
    assert ask(snap, health, "api") == [("A", 30, "10.1.0.11"), ("A", 30, "10.1.0.12")]
    assert ask(snap, health, "tasks.api") == [
        ("A", 30, "10.1.0.11"),
        ("A", 30, "10.1.0.12"),
        ("A", 30, "10.1.0.13"),
    ]


def test_a_cname_to_a_shared_name_gets_its_fit_members_and_tasks_gets_them_all():
    snap = _snapshot(_record("svc", "CNAME", "api."))
    health = _health("unhealthy", "healthy", "starting")
    assert ask(snap, health, "svc") == [("A", 600, "10.1.0.12"), ("CNAME", 600, "api.")]
    assert ask(snap, health, "tasks.svc") == [
        ("A", 600, "10.1.0.11"),
        ("A", 600, "10.1.0.12"),
        ("A", 600, "10.1.0.13"),
        ("CNAME", 600, "api."),
    ]


def test_a_health_change_reaches_a_record_overlaid_name_in_the_next_view():
    snap = _snapshot(_record("api", "TXT", '"v=1"'))
    builder = ViewBuilder()
    packet = DNSRecord.question("api", "A").pack()
    for statuses, expected in [
        (("healthy", "healthy", "healthy"), {"10.1.0.11", "10.1.0.12", "10.1.0.13"}),
        (("healthy", "unhealthy", "healthy"), {"10.1.0.11", "10.1.0.13"}),
        (("unhealthy", "unhealthy", "starting"), {"10.1.0.13"}),
    ]:
        view = builder.build(snap, health=_health(*statuses))
        decision = answer(packet, CLI.id, view, rng=random.Random(1))
        assert isinstance(decision, Reply)
        assert {str(r.rdata) for r in DNSRecord.parse(decision.data).rr} == expected


def test_tasks_of_a_cname_asked_for_its_cname_is_the_cname():
    snap = _snapshot(_record("svc", "CNAME", "api."))
    health = _health("unhealthy", "healthy", "starting")
    assert ask(snap, health, "tasks.svc", "CNAME") == [("CNAME", 600, "api.")]
    assert ask(snap, health, "tasks.svc", "TXT") == [("CNAME", 600, "api.")]
