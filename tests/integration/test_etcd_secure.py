"""A secured etcd: TLS with client certificates (a throwaway CA made with openssl in the test's
tmp dir), and user/password auth. The daemon works with the right options and exits 1 with a
message that names the options when they are wrong. etcd runs on the host namespace's loopback.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from netcore.kernel import netns
from netcore.store.base import Put
from netcore.store.etcd import ClusterOptions, EtcdStore
from tests.support.requires import require_binary

from .harness import HostNamespace, new_host, run

pytestmark = pytest.mark.integration

ENDPOINT = "127.0.0.1:2379"
USER, PASSWORD = "dnsd", "s3cret-for-tests"


def _openssl(*args: str, cwd: Path) -> None:
    run("openssl", *args, cwd=cwd)


def _ca(tmp: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=tmp)  # fmt: skip


def _signed(tmp: Path, ca: str, name: str, *, server: bool) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp)  # fmt: skip
    # etcd's JSON gateway dials etcd's own gRPC side with the server certificate: that one
    # must be good for client authentication too.
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = tmp / f"{name}.ext"
    ext.write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "1", "-extfile", ext.name,
             "-out", f"{name}.pem", cwd=tmp)  # fmt: skip


def _start_etcd(host: HostNamespace, *args: str) -> None:
    log = open(host.tmp / "etcd.log", "ab")  # noqa: SIM115 - closed in host.cleanup()
    host.logs.append(log)
    scheme = "https" if "--cert-file" in args else "http"
    host.extra.append(
        subprocess.Popen(
            [
                "nsenter",
                f"--net={host.path}",
                "etcd",
                "--data-dir",
                str(host.tmp / "etcd"),
                "--listen-client-urls",
                f"{scheme}://{ENDPOINT}",
                "--advertise-client-urls",
                f"{scheme}://{ENDPOINT}",
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )


def _etcdctl(host: HostNamespace, *args: str, check: bool = True):
    return host.exec("etcdctl", "--endpoints", ENDPOINT, "--dial-timeout", "1s", *args, check=check)


def _wait_etcd(host: HostNamespace, *tls: str) -> None:
    deadline = time.monotonic() + 20
    while _etcdctl(host, *tls, "endpoint", "health", check=False).returncode:
        assert time.monotonic() < deadline, (host.tmp / "etcd.log").read_text()[-2000:]
        time.sleep(0.2)


def _daemon_args(*extra: str) -> list[str]:
    return ["--store", f"etcd://{ENDPOINT}", "--host-id", "h1", "--advertise-addr", "127.0.0.1",
            "--no-default-network", *extra]  # fmt: skip


def _refused(host: HostNamespace, *extra: str) -> str:
    """Start a daemon that must exit 1 quickly; its stderr."""
    started = time.monotonic()
    argv = host.daemon_argv(*_daemon_args(*extra))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - started < 10
    return proc.stderr


@pytest.fixture
def host(tmp_path):
    require_binary("etcd", "apt-get install etcd-server")
    require_binary("etcdctl", "apt-get install etcd-client")
    require_binary("openssl", "apt-get install openssl")
    h = new_host(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


def test_tls_with_client_certificates(host):
    tmp = host.tmp
    _ca(tmp, "ca")
    _ca(tmp, "otherca")  # signed nothing etcd has
    _signed(tmp, "ca", "server", server=True)
    _signed(tmp, "ca", "client", server=False)
    _start_etcd(host, "--cert-file", str(tmp / "server.pem"), "--key-file",
                str(tmp / "server.key"), "--client-cert-auth",
                "--trusted-ca-file", str(tmp / "ca.pem"))  # fmt: skip
    tls = ["--cacert", str(tmp / "ca.pem"), "--cert", str(tmp / "client.pem"),
           "--key", str(tmp / "client.key")]  # fmt: skip
    _wait_etcd(host, *tls)
    good = ["--etcd-cacert", str(tmp / "ca.pem"), "--etcd-cert", str(tmp / "client.pem"),
            "--etcd-key", str(tmp / "client.key")]  # fmt: skip

    # Wrong CA, no client certificate, a missing file: exit 1, naming the options.
    wrong_ca = _refused(host, "--etcd-cacert", str(tmp / "otherca.pem"), *good[2:])
    assert "TLS with etcd failed" in wrong_ca and "--etcd-cacert" in wrong_ca, wrong_ca
    no_cert = _refused(host, "--etcd-cacert", str(tmp / "ca.pem"))
    assert "TLS with etcd failed" in no_cert and "--etcd-cert" in no_cert, no_cert
    missing = _refused(host, "--etcd-cacert", str(tmp / "nope.pem"))
    assert "cannot load the etcd TLS files" in missing and "nope.pem" in missing, missing
    plain = _refused(host)  # no TLS options against a TLS etcd
    assert "etcd serves TLS? give --etcd-cacert" in plain, plain

    host.start_daemon(*_daemon_args(*good))
    host.network("local", IPAM={"Config": [{"Subnet": "10.62.0.0/24"}]})
    stored = _etcdctl(
        host, *tls, "get", "--prefix", "--print-value-only", "/dnsd/hosts/h1/network/"
    )
    local = json.loads(stored.stdout.splitlines()[0])
    assert local["name"] == "local", local

    # The watch runs over TLS too: another host's overlay reaches this one.
    overlay = {**local, "id": "o" * 64, "name": "ov", "bridge": "br-oooooooooooo",
               "driver": "overlay", "vni": 4096, "ipv4": {**local["ipv4"], "subnet": "10.64.0.0/24",
               "gateway": "10.64.0.1"}}  # fmt: skip

    def other_host() -> None:
        cluster = ClusterOptions(host_id="h2", advertise_addr="127.0.0.2", cacert=good[1],
                                 cert=good[3], key=good[5])  # fmt: skip
        store = EtcdStore.from_url_path(ENDPOINT, cluster)
        store.load()
        store.commit([Put("network", overlay["id"], overlay)])
        store.close()

    netns.run_in(host.path, other_host)
    deadline = time.monotonic() + 5
    while host.api("GET", "/networks/ov")[0] != 200:
        assert time.monotonic() < deadline, host.log()
        time.sleep(0.05)


def test_user_and_password(host):
    _start_etcd(host)
    _wait_etcd(host)
    for args in (
        ("user", "add", "root:rootpw-for-tests"),
        ("user", "add", f"{USER}:{PASSWORD}"),
        ("role", "add", "dnsd"),
        ("role", "grant-permission", "dnsd", "--prefix=true", "readwrite", "/dnsd/"),
        ("user", "grant-role", USER, "dnsd"),
        ("auth", "enable"),
    ):
        _etcdctl(host, *args)

    wrong = _refused(host, "--etcd-user", USER, "--etcd-password", "not-it")
    assert f"etcd refused user {USER}" in wrong and "--etcd-password" in wrong, wrong
    anonymous = _refused(host)
    assert "--etcd-user" in anonymous, anonymous

    host.start_daemon(*_daemon_args("--etcd-user", USER, "--etcd-password", PASSWORD))
    host.network("local", IPAM={"Config": [{"Subnet": "10.63.0.0/24"}]})
    keys = _etcdctl(
        host, "--user", f"{USER}:{PASSWORD}", "get", "--prefix", "--keys-only", "/dnsd/"
    )
    assert "/dnsd/hosts/h1/network/" in keys.stdout, keys.stdout
