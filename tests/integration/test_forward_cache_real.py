"""The forward cache on the real path (issue 13): a fake upstream that counts queries, asked
through 127.0.0.11 from sandboxes of a real daemon."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from dnsd.serve.mmsg import ACCELERATED
from tests.fakes.upstream import Behaviour, FakeUpstream, slow, spoof
from tests.support.requires import unavailable

from .harness import HostNamespace

pytestmark = pytest.mark.integration

UPSTREAM = "198.51.100.70"
QNAME = "ext.anchors.test"


async def dig(h: HostNamespace, short: str, *args: str) -> str:
    """dig inside a sandbox (asynchronously: the fake upstream runs on this event loop)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", h.sandbox_name(short),
        "dig", "+tries=1", "+time=8", "@127.0.0.11", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode()


def statuses(out: str) -> list[str]:
    return re.findall(r"status: (\w+)", out)


def query_ms(out: str) -> int:
    return int(re.search(r"Query time: (\d+) msec", out).group(1))  # type: ignore[union-attr]


def ttls(out: str, qname: str = QNAME) -> list[int]:
    return [int(m) for m in re.findall(rf"^{re.escape(qname)}\.\s+(\d+)\s+IN", out, re.M)]


@asynccontextmanager
async def lab(
    h: HostNamespace,
    *daemon_args: str,
    options: dict | None = None,
    env: dict[str, str] | None = None,
    **fake_kw: object,
) -> AsyncIterator[FakeUpstream]:
    """A daemon (its environment plus `env`), network `c` (with `options`), sandboxes s1 and
    s2 whose only upstream is a fake on UPSTREAM in the daemon's namespace."""
    h.exec("ip", "addr", "add", f"{UPSTREAM}/32", "dev", "lo")
    h.start_daemon(*daemon_args, env=env)
    h.network("c", IPAM={"Config": [{"Subnet": "10.97.13.0/24"}]}, Options=options or {})
    for short in ("s1", "s2"):
        h.sandbox(short, "c", Dns=[UPSTREAM])
    async with FakeUpstream(host=UPSTREAM, port=53, netns=h.path, **fake_kw) as fake:
        yield fake


@pytest.mark.asyncio
async def test_hundred_lookups_from_two_sandboxes_ask_upstream_once(host):
    # The upstream answers after 0.3 s: both sandboxes' first lookups are in flight together
    # and must be merged into one upstream query (the rest are cache hits).
    async with lab(host, behaviour=slow(0.3)) as fake:
        outs = await asyncio.gather(*(dig(host, s, *[QNAME] * 50) for s in ("s1", "s2")))
        for out in outs:
            assert statuses(out) == ["NOERROR"] * 50, out
            assert out.count("198.51.100.200") == 50
        assert fake.qnames() == [QNAME], fake.qnames()
        later = await dig(host, "s1", QNAME)
        assert 0 < ttls(later)[0] <= 300
        assert len(fake.queries) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("udp_loop", ["C", "Python"])
async def test_both_udp_loops_answer_local_and_cached_names_alike(host, udp_loop):
    # The C loop (built at install) answers repeats of a query from its tables; the Python
    # loop, its specification, must do the same where there is no compiler.
    if udp_loop == "C" and not ACCELERATED:
        unavailable("the C accelerator is not built: install gcc and python3-dev, reinstall")
    env = {"DNSD_PURE_PYTHON": "1"} if udp_loop == "Python" else {}
    async with lab(host, env=env) as fake:
        local = host.sandbox_name("s2")
        out = await dig(host, "s1", *[QNAME, local, "nothere.c", local, "AAAA"] * 25)
        assert statuses(out) == ["NOERROR", "NOERROR", "NXDOMAIN", "NOERROR"] * 25, out
        assert out.count("198.51.100.200") == 25 and out.count("10.97.13.") >= 25
        assert fake.qnames().count(QNAME) == 1, fake.qnames()
        status = host.ok("GET", "/info")["Dnsd"]["UdpLoop"]
        assert status == udp_loop


@pytest.mark.asyncio
async def test_expiry_sends_a_fresh_query(host):
    async with lab(host, ttl=2) as fake:
        first = await dig(host, "s1", QNAME, QNAME)
        assert statuses(first) == ["NOERROR"] * 2 and len(fake.queries) == 1
        await asyncio.sleep(2.3)
        again = await dig(host, "s2", QNAME)
        assert statuses(again) == ["NOERROR"] and ttls(again) == [2]
        assert len(fake.queries) == 2


@pytest.mark.asyncio
async def test_negative_answers_are_cached_for_the_soa_minimum(host):
    async with lab(host, negative_soa=(3600, 2)) as fake:
        out = await dig(host, "s1", *["nope.anchors.test"] * 5)
        assert statuses(out) == ["NXDOMAIN"] * 5, out
        assert fake.qnames() == ["nope.anchors.test"]
        await asyncio.sleep(2.3)
        await dig(host, "s1", "nope.anchors.test")
        assert fake.qnames() == ["nope.anchors.test"] * 2


@pytest.mark.asyncio
async def test_network_opt_out_asks_every_time(host):
    async with lab(host, options={"dnsd.dns_cache": "false"}) as fake:
        out = await dig(host, "s1", *[QNAME] * 5)
        assert statuses(out) == ["NOERROR"] * 5, out
        assert len(fake.queries) == 5


@pytest.mark.asyncio
async def test_serve_stale_when_the_upstream_dies(host):
    async with lab(host, "--cache-stale", "1h", "--forward-deadline", "1", ttl=1) as fake:
        assert statuses(await dig(host, "s1", QNAME)) == ["NOERROR"]
        fake.behaviour = Behaviour("silent")
        await asyncio.sleep(1.3)
        out = await dig(host, "s1", QNAME)
        assert statuses(out) == ["NOERROR"] and ttls(out) == [30], out
        assert "198.51.100.200" in out
        quick = await dig(host, "s2", QNAME)  # within 30 s: stale at once, no new try
        assert statuses(quick) == ["NOERROR"] and query_ms(quick) < 500, quick
        assert len(fake.queries) == 2
        uncached = await dig(host, "s1", "mx.anchors.test", "MX")  # nothing stale to give
        assert statuses(uncached) == ["SERVFAIL"]


@pytest.mark.asyncio
async def test_lying_upstream_cannot_poison_the_cache(host):
    liar = spoof("wrong_question", then_answer=True)  # spoofed.invalid first, then the truth
    async with lab(host, behaviour=liar) as fake:
        out = await dig(host, "s1", QNAME)
        assert "spoofed.invalid" not in out and "198.51.100.200" in out, out
        fake.behaviour = Behaviour("normal")
        # Nothing about spoofed.invalid was cached: it is asked upstream (NXDOMAIN there).
        spoofed = await dig(host, "s2", "spoofed.invalid")
        assert statuses(spoofed) == ["NXDOMAIN"]
        assert fake.qnames() == [QNAME, "spoofed.invalid"]
        for kind in ("wrong_id", "other_source"):
            fake.behaviour = spoof(kind, then_answer=True)  # type: ignore[arg-type]
            name = f"{kind.replace('_', '-')}.anchors.test"
            fake.zone[name] = {"A": ["198.51.100.201"]}
            first = await dig(host, "s1", name)
            assert "198.51.100.201" in first, first
            assert "198.51.100.201" in await dig(host, "s2", name)  # the cached truth
        assert len(fake.queries) == 4
