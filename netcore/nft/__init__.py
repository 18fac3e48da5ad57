"""nftables for the engine: pure renderers of whole scripts, and the edge that applies them."""

from .apply import NftCli, NftRunner, RecordingRunner, describe_failure
from .redirect import DNS_TABLE, render_dns_redirect, render_dns_redirect_teardown
from .ruleset import (
    BRIDGE_TABLE,
    HOST_TABLE,
    USER_CHAIN,
    PublishedPort,
    render_host_ruleset,
    render_host_teardown,
)

__all__ = [
    "BRIDGE_TABLE",
    "DNS_TABLE",
    "HOST_TABLE",
    "USER_CHAIN",
    "NftCli",
    "NftRunner",
    "PublishedPort",
    "RecordingRunner",
    "describe_failure",
    "render_dns_redirect",
    "render_dns_redirect_teardown",
    "render_host_ruleset",
    "render_host_teardown",
]
