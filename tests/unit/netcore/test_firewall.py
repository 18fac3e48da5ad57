"""The host ruleset is rendered only when what it depends on (networks, published ports)
changed, and is then what a render from the whole registry gives."""

from __future__ import annotations

import netcore.firewall
from netcore.kernel.fake import FakeKernel
from netcore.model import PortBinding
from netcore.nft.ruleset import render_host_ruleset
from netcore.requests import ConnectRequest, NetworkRequest, SandboxRequest
from netcore.store.memory import MemoryStore
from tests.support.engine import started_engine


def test_only_networks_and_published_ports_make_a_render(tmp_path, monkeypatch):
    kernel = FakeKernel()
    engine = started_engine(MemoryStore(), kernel, tmp_path)
    renders = []

    def counting(*args):
        renders.append(args)
        return render_host_ruleset(*args)

    monkeypatch.setattr(netcore.firewall, "render_host_ruleset", counting)
    net = engine.create_network(NetworkRequest.build("app", subnet="10.70.0.0/24"))
    assert len(renders) == 1
    for i in range(3):  # connects of sandboxes without ports: nothing to render
        plain = engine.create_sandbox(SandboxRequest(name=f"plain{i}"))
        engine.connect(net.id, plain.id, ConnectRequest())
    assert len(renders) == 1
    web = engine.create_sandbox(SandboxRequest(name="web", ports=(PortBinding(80, 8080),)))
    engine.connect(net.id, web.id, ConnectRequest())
    assert len(renders) == 2
    assert "8080" in kernel.nft[None]
    engine.disconnect(net.id, web.id)
    assert "8080" not in kernel.nft[None]
    whole = render_host_ruleset(sorted(engine.registry.networks.values(), key=lambda n: n.name), [])
    assert kernel.nft[None] == whole
