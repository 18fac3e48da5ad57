"""Networks and connects with the Python `docker` SDK against dnsd (no Docker engine).

    python3 examples/docker_sdk.py --socket /run/dnsd/dnsd.sock

Creates a network, a sandbox (dnsd's `/sandboxes`, through the SDK's own HTTP session: Docker
has no such endpoint), connects it with an alias, resolves the alias from inside the sandbox,
then removes everything it made. Root is needed only for the lookup (`ip netns exec`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import docker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=os.environ.get("DNSD_SOCKET", "/run/dnsd/dnsd.sock"))
    parser.add_argument("--prefix", default="sdk-", help="prefix of every name made here")
    parser.add_argument("--subnet", default="10.30.0.0/24")
    args = parser.parse_args()

    client = docker.DockerClient(base_url=f"unix://{args.socket}", version="auto")
    print("dnsd", client.version()["Version"], "speaks Docker API", client.api.api_version)
    net_name, box = f"{args.prefix}net", f"{args.prefix}box"
    network = client.networks.create(
        net_name,
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=args.subnet)]),
        labels={"example": "docker_sdk"},
    )
    created = False
    try:
        print("created network", network.name, network.id[:12])
        # A sandbox is dnsd's container: its network namespace. The SDK's session posts it.
        response = client.api.post(client.api._url("/sandboxes"), json={"Name": box})
        client.api._raise_for_status(response)
        created = True
        network.connect(box, aliases=["api"])
        network.reload()
        (endpoint,) = network.attrs["Containers"].values()
        print(f"connected {endpoint['Name']} at {endpoint['IPv4Address']} with alias api")
        listed = [n.name for n in client.networks.list(filters={"label": "example=docker_sdk"})]
        print("networks labelled example=docker_sdk:", listed)
        lookup = subprocess.run(
            ["ip", "netns", "exec", box, "getent", "hosts", "api"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        print("inside the sandbox, getent hosts api ->", lookup.stdout.strip() or lookup.stderr)
        if lookup.returncode != 0 or endpoint["IPv4Address"].split("/")[0] not in lookup.stdout:
            return 1
        network.disconnect(box)
    finally:
        if created:
            client.api._raise_for_status(client.api.delete(client.api._url(f"/sandboxes/{box}")))
        network.remove()
    print("removed", box, "and", net_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
