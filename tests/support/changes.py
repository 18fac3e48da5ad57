"""Random registry changes: what the followers of the registry are checked against."""

from __future__ import annotations

import random
from collections.abc import Iterator

from netcore.model import Network, Snapshot
from netcore.registry import Registry, delete, put
from netcore.store.base import Delete, Put
from netcore.store.memory import MemoryStore
from tests.support.snapshots import endpoint, network, sandbox

NETS = [network(f"n{i}" + "0" * 62, f"net{i}", f"br{i}", f"10.{i}.0.0/24") for i in range(3)]


def random_batch(
    rng: random.Random,
    registry: Registry,
    serial: list[int],
    nets: list[Network] = NETS,
    files_dir: str = "",
) -> list[Put | Delete]:
    """A few puts and deletes of sandboxes and endpoints (new, replaced, removed, and one put
    and deleted in the same batch); `serial` numbers the new objects. With `files_dir`, new
    sandboxes have their resolv.conf and hosts there."""
    ops = []
    joined: set[str] = set()  # sandboxes given an endpoint in this batch: one each
    for _ in range(rng.randint(1, 4)):
        serial[0] += 1
        n = serial[0]
        roll = rng.random()
        boxes = list(registry.sandboxes.values())
        eps = list(registry.endpoints.values())
        if roll < 0.3 or not boxes:
            files = (
                {
                    "resolv_conf_path": f"{files_dir}/{n}/resolv.conf",
                    "hosts_path": f"{files_dir}/{n}/hosts",
                }
                if files_dir
                else {}
            )
            ops.append(put(sandbox(f"{n:064x}", f"box{rng.randint(0, 999):03d}-{n}", **files)))
        elif roll < 0.5:
            sb = rng.choice(boxes)
            net = rng.choice(nets)
            ifname = f"eth{rng.randint(0, 9)}"
            mine = [e for e in eps if e.sandbox_id == sb.id]  # one per network, as the engine
            if sb.id not in joined and not any(
                e.ifname == ifname or e.network_id == net.id for e in mine
            ):
                joined.add(sb.id)
                ops.append(put(endpoint(f"e{n:063x}", net, sb.id, n % 250 + 2, ifname=ifname)))
        elif roll < 0.65 and eps:
            ops.append(delete(rng.choice(eps)))
        elif roll < 0.8:
            ops.append(put(rng.choice(boxes)))  # the same values: a new object all the same
        elif roll < 0.9:
            victim = rng.choice(boxes)
            ops += [delete(e) for e in eps if e.sandbox_id == victim.id]
            ops.append(delete(victim))
        else:  # put then delete before anyone saw it: in neither snapshot
            ghost = sandbox(f"{n:064x}", f"ghost{n}")
            ops += [put(ghost), delete(ghost)]
    return ops


def random_history(seed: int, steps: int) -> Iterator[tuple[Registry, list[Snapshot]]]:
    """A registry on `NETS` changed `steps` times at random (about a third of the commits
    notify no one, as the engine's intents do): after each commit, the registry and the
    snapshots its subscribers were given so far."""
    rng = random.Random(seed)
    registry = Registry(MemoryStore())
    registry.commit([put(n) for n in NETS])
    seen: list[Snapshot] = []
    registry.subscribe(seen.append)
    serial = [0]
    for _ in range(steps):
        registry.commit(random_batch(rng, registry, serial), notify=rng.random() < 0.7)
        yield registry, seen
