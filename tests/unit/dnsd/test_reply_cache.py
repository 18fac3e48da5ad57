"""The per-listener reply cache never serves anything `answer` would not have answered."""

from __future__ import annotations

import random

from dnslib import DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsd.core.answer import Reply, answer
from dnsd.core.cache import ReplyCache
from dnsd.core.view import build_view

from .test_answer_reference import reference_snapshot
from .test_fast_vs_slow import _candidate_names, random_query, snapshots


@settings(max_examples=80, deadline=None, database=None)
@given(snapshots(), st.integers(0, 2**32), st.booleans())
def test_cached_replies_equal_fresh_answers(snapshot, seed, tcp):
    view = build_view(snapshot)
    names = _candidate_names(snapshot)
    rnd = random.Random(seed)
    for sandbox in snapshot.sandboxes:
        cache = ReplyCache()
        for _ in range(30):
            packet = random_query(rnd, names)
            cached = cache.get(packet, view)
            fresh = answer(packet, sandbox.id, view, tcp=tcp, rng=random.Random(seed))
            if cached is not None:
                assert isinstance(fresh, Reply) and cached == fresh.data
            elif isinstance(fresh, Reply):
                cache.put(packet, fresh.data, view)
            if len(packet) < 12:
                continue
            # the same question again with another id: served from the cache when it cannot vary
            again = bytes([packet[0] ^ 0xFF, packet[1]]) + packet[2:]
            hit = cache.get(again, view)
            if hit is not None:
                redo = answer(again, sandbox.id, view, tcp=tcp, rng=random.Random(seed + 1))
                assert isinstance(redo, Reply) and hit == redo.data


def test_a_new_view_empties_the_cache_and_shuffled_answers_are_not_kept():
    snapshot = reference_snapshot()  # the lab of the reference rows
    view = build_view(snapshot)
    cli = next(s for s in snapshot.sandboxes if s.name == "cli")
    single = bytes(DNSRecord.question("web1").pack())
    shared = bytes(DNSRecord.question("web").pack())  # two records, shuffled per answer
    cache = ReplyCache()
    for packet in (single, shared):
        cache.put(packet, answer(packet, cli.id, view, rng=random.Random(1)).data, view)
    assert cache.get(single, view) is not None
    assert cache.get(shared, view) is None
    assert cache.get(single, build_view(snapshot)) is None  # another view object
