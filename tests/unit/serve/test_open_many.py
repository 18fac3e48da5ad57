"""Opening a batch of listeners (a restart): sockets one by one, redirects in one batch."""

from __future__ import annotations

from dnsd.serve.listeners import SandboxSockets, open_many
from netcore.errors import NftError, VanishedNamespace
from netcore.kernel.fake import FakeKernel


def test_each_listener_opens_or_reports_what_failed_and_leaks_nothing():
    kernel = FakeKernel()
    paths = [f"/run/netns/batch{i}" for i in range(4)]
    for p in (paths[0], paths[2], paths[3]):  # paths[1] vanished
        kernel.add_foreign_netns(p)
    kernel.fail_dns_redirect[paths[2]] = NftError("nft refused the script")
    workers = []
    make_worker = kernel.netns_worker
    kernel.netns_worker = lambda path: workers.append(make_worker(path)) or workers[-1]

    opened = open_many(kernel, [(p, 0) for p in paths])

    assert isinstance(opened[0], SandboxSockets) and isinstance(opened[3], SandboxSockets)
    assert isinstance(opened[1], VanishedNamespace)
    assert isinstance(opened[2], NftError)
    for sockets in (opened[0], opened[3]):
        udp_port, tcp_port = sockets.ports
        assert f"udp dport set {udp_port}" in kernel.nft[sockets.netns_path]
        assert f"tcp dport set {tcp_port}" in kernel.nft[sockets.netns_path]
        assert not sockets.worker.closed
        sockets.close()
    refused = [w for w in workers if w.path == paths[2]]
    assert refused and all(w.closed for w in refused)  # its sockets and worker are closed
    assert kernel.calls.count(f"apply_dns_redirect {paths[0]}") == 1
