"""Records of an overlay network across hosts: added on one, listed and answered on every host,
removed from any, kept when their creator stops, back on a restarted host; those of a bridge
network stay on their host. Three hosts and a real etcd (tests/integration/cluster.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

WAIT_S = 15  # generous: loaded CI machines, and a cluster's first requests can be slow


def _listed(cluster, letter: str, network: str) -> list[tuple[str, str, str]]:
    status, body = cluster.hosts[letter].api("GET", f"/networks/{network}/records")
    if status != 200:
        return []
    return sorted((r["Name"], r["Type"], r["Value"]) for r in body)


def _known_on(cluster, letter: str, network: str) -> bool:
    return cluster.hosts[letter].api("GET", f"/networks/{network}")[0] == 200


def test_overlay_records_are_the_clusters_and_bridge_records_stay_local(cluster):
    cluster.overlay("a", "ov", "10.58.0.0/24")
    for letter in "bc":
        assert cluster.wait_for(lambda x=letter: _known_on(cluster, x, "ov"), WAIT_S)
    cluster.sandbox("a", "wa", "ov", "wa")
    cluster.sandbox("b", "wb", "ov", "wb")
    cluster.sandbox("c", "wc", "ov", "wc")
    a, b = cluster.hosts["a"], cluster.hosts["b"]

    started = time.monotonic()
    a.ok("POST", "/networks/ov/records", {"Name": "db", "Type": "A", "Value": "10.58.0.200"})
    answered = cluster.wait_for(lambda: cluster.dig("c", "wc", "db"), WAIT_S)
    took = time.monotonic() - started
    assert answered == ["10.58.0.200"], cluster.describe()
    db = ("db", "A", "10.58.0.200")
    assert cluster.wait_for(lambda: _listed(cluster, "b", "ov") == [db], WAIT_S)
    print(f"record added on a -> answered on c: {took:.3f} s")
    [key] = cluster.keys("/global/records/")
    assert "/hosts/" not in key

    # A bridge network's record is its host's alone.
    a.network("loc", IPAM={"Config": [{"Subnet": "10.59.0.0/24"}]})
    a.ok("POST", "/networks/loc/records", {"Name": "mine", "Type": "A", "Value": "10.59.0.9"})
    assert _listed(cluster, "a", "loc") == [("mine", "A", "10.59.0.9")]
    assert b.api("GET", "/networks/loc/records")[0] == 404
    assert len(cluster.keys("/global/records/")) == 1

    # Added on b, answered on a; a stopped: the records stay, on every host that is left.
    api = ("api", "A", "10.58.0.201")
    b.ok("POST", "/networks/ov/records", {"Name": "api", "Type": "A", "Value": "10.58.0.201"})
    assert cluster.wait_for(lambda: cluster.dig("a", "wa", "api"), WAIT_S) == ["10.58.0.201"]
    a.stop_daemon()
    assert _listed(cluster, "b", "ov") == [api, db]
    for letter in "bc":
        assert cluster.dig(letter, f"w{letter}", "db") == ["10.58.0.200"], cluster.describe()

    # Restarted, a has them back (and its own bridge record), and answers them.
    cluster.start("a")
    assert _listed(cluster, "a", "ov") == [api, db]
    assert _listed(cluster, "a", "loc") == [("mine", "A", "10.59.0.9")]
    assert cluster.wait_for(lambda: cluster.dig("a", "wa", "db"), WAIT_S) == ["10.58.0.200"]

    # Removed on b: gone from every host's list and answers.
    status, _ = b.api("DELETE", "/networks/ov/records/db/A")
    assert status == 204
    for letter in "ac":
        assert cluster.wait_for(lambda x=letter: _listed(cluster, x, "ov") == [api], WAIT_S)
    assert cluster.wait_for(lambda: not cluster.dig("c", "wc", "db"), WAIT_S), cluster.describe()
    assert cluster.dig("a", "wa", "api") == ["10.58.0.201"]


def test_same_record_added_on_two_hosts_at_once_one_wins_the_other_gets_409(cluster):
    cluster.overlay("a", "race", "10.62.0.0/24")
    for letter in "bc":
        assert cluster.wait_for(lambda x=letter: _known_on(cluster, x, "race"), WAIT_S)
    for i in range(3):
        body = {"Name": f"svc{i}", "Type": "A", "Value": f"10.62.0.{100 + i}"}
        with ThreadPoolExecutor(3) as pool:
            results = list(
                pool.map(
                    lambda x, b=body: cluster.hosts[x].api("POST", "/networks/race/records", b),
                    "abc",
                )
            )
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409, 409], results
        assert all("already exists" in r["message"] for s, r in results if s == 409), results
    assert len(cluster.keys("/global/records/")) == 3
