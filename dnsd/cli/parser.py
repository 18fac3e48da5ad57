"""The `dnsd` command line: `serve`, `network ...` and `sandbox ...`, each subcommand bound to the
function that runs it (`args.run`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from netcore.store.etcd import DEFAULT_HOST_TTL_S

from .. import __version__
from ..cni.install import add_parser as add_cni_parser
from ..config import (
    CACHE_MAX_NEGATIVE_TTL,
    CACHE_MAX_TTL,
    CACHE_SIZE,
    DEFAULT_API_SOCKET,
    DEFAULT_STATE_DIR,
    FORWARD_DEADLINE_S,
    MAX_INFLIGHT_FORWARDS,
    QUERY_LOG_MAX_MB,
    RECONCILE_INTERVAL_S,
)
from .commands import (
    cmd_network_connect,
    cmd_network_create,
    cmd_network_ls,
    cmd_network_prune,
    cmd_sandbox_create,
    cmd_sandbox_exec,
    cmd_sandbox_ls,
    remove_each,
    show_each,
)
from .health_flags import FLAGS as HEALTH_FLAGS
from .records import cmd_record_add, cmd_record_ls, cmd_record_rm
from .status import cmd_status

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_NETWORK = "bridge"  # `sandbox create` without --network, as `docker run`


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument(
        "--api-socket",
        default=os.environ.get("DNSD_SOCKET", DEFAULT_API_SOCKET),
        help="the daemon's unix socket (env DNSD_SOCKET; default %(default)s)",
    )
    conn.add_argument(
        "--api-tcp",
        default=os.environ.get("DNSD_API_TCP"),
        metavar="HOST:PORT",
        help="reach the daemon over TCP instead (env DNSD_API_TCP)",
    )
    conn.add_argument(
        "--api-token",
        default=os.environ.get("DNSD_API_TOKEN"),
        help="bearer token of the TCP API (env DNSD_API_TOKEN)",
    )
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument(
        "--format", choices=("table", "json"), default="table", help="output (default: table)"
    )
    return conn, fmt


MANY: dict[str, Any] = {"action": "append", "default": []}
FLAG: dict[str, Any] = {"action": "store_true"}
JSON = ("--format", {"choices": ("json",), "default": "json", "help": "always JSON"})


class DefaultsShown(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        if action.default in (None, []):
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def _command(
    sub: Any,
    name: str,
    run: Any,
    parents: list,
    helptext: str,
    *specs: tuple,
    formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> None:
    """One subcommand; each spec is `(flag, ..., {add_argument keywords})`."""
    aliases = {"ls": ["list"], "rm": ["remove"]}.get(name, [])
    p = sub.add_parser(
        name, aliases=aliases, parents=parents, help=helptext, formatter_class=formatter
    )
    for spec in specs:
        kw = spec[-1] if isinstance(spec[-1], dict) else {}
        p.add_argument(*(spec[:-1] if kw else spec), **kw)
    p.set_defaults(run=run)


def _add_serve(sub: Any) -> None:
    _command(
        sub, "serve", None, [], "run the daemon",
        ("--state-dir", {"default": DEFAULT_STATE_DIR, "metavar": "DIR",
                         "help": "SQLite state and sandbox files; one daemon per directory"}),
        ("--api-socket", {"default": DEFAULT_API_SOCKET, "metavar": "PATH",
                          "help": "the API's unix socket (Docker's network API and ours)"}),
        ("--api-tcp", {"metavar": "HOST:PORT",
                       "help": "also serve the API on TCP (needs a token)"}),
        ("--api-token", {"default": None, "metavar": "T",
                         "help": "bearer token the TCP API requires (default: $DNSD_API_TOKEN)"}),
        ("--upstream", {**MANY, "metavar": "IP[:PORT]",
                        "help": "upstream server, repeat for more (default: the host's "
                                "resolv.conf nameservers)"}),
        ("--host-resolv-conf", {"default": "/etc/resolv.conf", "metavar": "PATH",
                                "help": "the host's resolv.conf: upstreams, search, options"}),
        ("--no-default-network", {**FLAG, "help": "do not create the `bridge` network"}),
        ("--etc-netns-dir", {"default": "/etc/netns", "metavar": "PATH",
                             "help": "where named sandboxes get resolv.conf and hosts"}),
        ("--log-level", {"choices": LOG_LEVELS, "default": "info", "help": "log verbosity"}),
        ("--forward-deadline", {"type": float, "default": FORWARD_DEADLINE_S, "metavar": "S",
                                "help": "a client gets SERVFAIL at the latest after this"}),
        ("--max-inflight", {"type": int, "default": MAX_INFLIGHT_FORWARDS, "metavar": "N",
                            "help": "forwarded queries waiting per sandbox; REFUSED past it"}),
        ("--forward-rate", {"type": float, "default": None, "metavar": "QPS",
                            "help": "forwarded queries/s per sandbox (default: unlimited)"}),
        ("--reconcile-interval", {"type": float, "default": RECONCILE_INTERVAL_S, "metavar": "S",
                                  "help": "how often the kernel is checked against the state"}),
        ("--cache-size", {"type": int, "default": CACHE_SIZE, "metavar": "N",
                          "help": "forwarded answers cached (LRU); 0 turns the cache off"}),
        ("--cache-max-ttl", {"type": int, "default": CACHE_MAX_TTL, "metavar": "S",
                             "help": "longest a forwarded answer is cached"}),
        ("--cache-max-negative-ttl", {"type": int, "default": CACHE_MAX_NEGATIVE_TTL,
                                      "metavar": "S", "help": "longest for NXDOMAIN/NODATA"}),
        ("--cache-stale", {"default": "0", "metavar": "DURATION",
                           "help": "serve expired answers this long (e.g. 1h) when every "
                                   "upstream fails (RFC 8767; default: off)"}),
        ("--host-dns", {**MANY, "metavar": "ADDR[:PORT]",
                        "help": "answer <name>.<network> for the host here (repeat); "
                        "'gateways[:PORT]': on every network's gateway, as networks come and go"}),
        ("--host-dns-domain", {"metavar": "DOMAIN",
                               "help": "also answer <name>.<network>.DOMAIN"}),
        ("--host-hosts-file", {"metavar": "PATH",
                               "help": "keep a hosts file of <name>.<network> here"}),
        ("--store", {"metavar": "URL", "help": "sqlite://PATH (default: STATE_DIR/state.db), "
                     "memory://, or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] for several hosts"}),
        ("--host-id", {"metavar": "NAME", "help": "this host in the cluster (default: hostname)"}),
        ("--advertise-addr", {"metavar": "IP", "help": "this host's underlay address (VXLAN)"}),
        ("--host-ttl", {"type": int, "default": DEFAULT_HOST_TTL_S, "metavar": "S",
                        "help": "a dead host's names go after this (etcd lease TTL)"}),
        ("--etcd-cacert", {"metavar": "PATH", "help": "CA bundle that signed etcd's certificate"}),
        ("--etcd-cert", {"metavar": "PATH", "help": "client certificate for etcd"}),
        ("--etcd-key", {"metavar": "PATH", "help": "the client certificate's key"}),
        ("--etcd-user", {"metavar": "NAME", "help": "etcd user (with --etcd-password)"}),
        ("--etcd-password", {"help": "etcd password (default: $DNSD_ETCD_PASSWORD)"}),
        ("--metrics-listen", {"metavar": "HOST:PORT",
                              "help": "serve /metrics on a listener of its own, without token "
                                      "(default: only on the API)"}),
        ("--no-metrics", {**FLAG, "help": "count nothing (for benchmarks; /metrics answers 404)"}),
        ("--query-log", {"metavar": "PATH|-",
                         "help": "log every query as a JSON line to PATH, or stdout with - "
                                 "(default: off)"}),
        ("--query-log-max-mb", {"type": float, "default": QUERY_LOG_MAX_MB, "metavar": "MB",
                                "help": "rotate the query log to PATH.1 before it passes this"}),
        formatter=DefaultsShown,
    )  # fmt: skip


def _add_network(sub: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    net = sub.add_parser("network", help="manage networks")
    net = net.add_subparsers(dest="action", required=True)
    refs = ("refs", {"nargs": "+", "metavar": "NETWORK", "help": "name, id or id prefix"})
    filters = ("--filter", {**MANY, "metavar": "KEY=VALUE", "help": "label, label!, until"})
    network = ("network", {"help": "the network (name, id or id prefix)"})
    sandbox = ("sandbox", {"help": "the sandbox (name, id or id prefix)"})
    _command(
        net, "create", cmd_network_create, [conn, fmt], "create a bridge network",
        ("name", {"help": "the network's name"}),
        ("--subnet", {"help": "IPv4 subnet in CIDR (default: the next free default pool)"}),
        ("--ip-range", {"help": "allocate from this part of the subnet"}),
        ("--gateway", {"help": "the bridge's address (default: the subnet's first)"}),
        ("--subnet6", {"help": "IPv6 subnet in CIDR"}),
        ("--ip-range6", {"help": "allocate IPv6 addresses from this part of --subnet6"}),
        ("--gateway6", {"help": "the bridge's IPv6 address"}),
        ("--ipv6", {**FLAG, "help": "dual stack (needs --subnet6)"}),
        ("--internal", {**FLAG, "help": "no route out of the network"}),
        ("--opt", "-o", {**MANY, "metavar": "KEY=VALUE", "help": "driver option (repeat)"}),
        ("--label", {**MANY, "metavar": "KEY=VALUE", "help": "label (repeat)"}),
        ("--dns-ttl", {"type": int, "metavar": "SECONDS", "help": "answer TTL (default 0)"}),
        ("--driver", "-d", {"choices": ("bridge", "overlay"), "default": "bridge",
                            "help": "overlay: spans the hosts of an etcd store"}),
    )  # fmt: skip
    _command(
        net, "ls", cmd_network_ls, [conn, fmt], "list networks",
        ("--filter", "-f", {**MANY, "metavar": "KEY=VALUE",
                            "help": "id, name, label, driver, scope, type, dangling"}),
        ("--quiet", "-q", {**FLAG, "help": "only ids"}),
    )  # fmt: skip
    _command(net, "inspect", lambda c, a: show_each(c.network, a.refs), [conn], "show", refs, JSON)
    _command(net, "rm", lambda c, a: remove_each(c.remove_network, a.refs), [conn], "remove", refs)
    _command(
        net, "connect", cmd_network_connect, [conn], "connect a sandbox to a network",
        network, sandbox,
        ("--alias", {**MANY, "help": "another name of the sandbox on this network (repeat)"}),
        ("--ip", {"help": "IPv4 address (default: the next free one)"}),
        ("--ip6", {"help": "IPv6 address"}),
        ("--mac", {"help": "MAC address (default: 02:42 and the IPv4 address)"}),
        ("--link", {**MANY, "metavar": "TARGET[:ALIAS]", "help": "Docker's legacy link (repeat)"}),
    )  # fmt: skip
    _command(
        net, "disconnect", lambda c, a: c.disconnect(a.network, a.sandbox, force=a.force),
        [conn], "disconnect a sandbox", network, sandbox,
        ("--force", "-f", {**FLAG, "help": "also when the sandbox is gone"}),
    )  # fmt: skip
    _command(
        net, "prune", cmd_network_prune, [conn, fmt], "remove every unused network",
        filters, ("--force", "-f", {**FLAG, "help": "do not ask"}),
    )  # fmt: skip
    _add_record(net, conn, fmt)


def _add_record(net: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    rec = net.add_parser("record", help="DNS records of a network that are not sandboxes")
    rec = rec.add_subparsers(dest="record_action", required=True)
    network = ("network", {"help": "the network (name, id or id prefix)"})
    name = ("name", {"help": "the record's name (answered as NAME and NAME.NETWORK)"})
    types = "A, AAAA, CNAME, SRV, TXT"
    _command(
        rec, "add", cmd_record_add, [conn, fmt], "add a record (answered as NAME and NAME.NETWORK)",
        network, name, ("type", {"metavar": "TYPE", "help": types}),
        ("value", {"help": "zone-file rdata: 10.0.0.5, db.example., '10 5 5432 db.example.', "
                           "'\"v=1\"'"}),
        ("--ttl", {"type": int, "metavar": "SECONDS", "help": "default: the network's"}),
    )  # fmt: skip
    _command(rec, "ls", cmd_record_ls, [conn, fmt], "list a network's records", network)
    _command(
        rec, "rm", cmd_record_rm, [conn], "remove the records of a name and type",
        network, name, ("type", {"metavar": "TYPE", "help": types}),
        ("--value", {"help": "only the record of this value"}),
    )  # fmt: skip


def _add_sandbox(sub: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    box = sub.add_parser("sandbox", help="manage sandboxes (network namespaces)")
    box = box.add_subparsers(dest="action", required=True)
    refs = ("refs", {"nargs": "+", "metavar": "SANDBOX", "help": "name, id or id prefix"})
    _command(
        box, "create", cmd_sandbox_create, [conn, fmt], "create a sandbox",
        ("name", {"help": "the sandbox's name (and its namespace's under /run/netns)"}),
        ("--netns", {"metavar": "PATH", "help": "adopt this namespace (default: make one)"}),
        ("--hostname", {"default": "", "help": "the DNS name (default: the sandbox's name)"}),
        ("--network", {"default": DEFAULT_NETWORK, "metavar": "NAME|none|host|container:NAME",
                       "help": "the first network, as docker run --network "
                               "(default: %(default)s)"}),
        ("--alias", {**MANY, "help": "name on --network (repeat)"}),
        ("--ip", {"help": "address on --network"}),
        ("--link", {**MANY, "metavar": "TARGET[:ALIAS]",
                    "help": "Docker's legacy link on --network (repeat)"}),
        ("--dns", {**MANY, "metavar": "IP", "help": "own upstream servers (repeat)"}),
        ("--dns-search", {**MANY, "metavar": "DOMAIN", "help": "resolv.conf search domain"}),
        ("--dns-option", {**MANY, "metavar": "OPTION", "help": "resolv.conf option"}),
        ("--add-host", {**MANY, "metavar": "NAME:IP", "help": "an extra hosts line (repeat)"}),
        ("--publish", "-p", {**MANY, "metavar": "[IP:]HOST_PORT:PORT[/PROTO]",
                             "help": "publish a port on the host (repeat)"}),
        ("--label", {**MANY, "metavar": "KEY=VALUE", "help": "label (repeat)"}),
        *HEALTH_FLAGS,
    )  # fmt: skip
    _command(
        box, "ls", cmd_sandbox_ls, [conn, fmt], "list sandboxes",
        ("--quiet", "-q", {**FLAG, "help": "only ids"}),
    )  # fmt: skip
    _command(box, "inspect", lambda c, a: show_each(c.sandbox, a.refs), [conn], "show", refs, JSON)
    _command(box, "rm", lambda c, a: remove_each(c.remove_sandbox, a.refs), [conn], "remove", refs)
    _command(
        box, "exec", cmd_sandbox_exec, [conn], "run a command inside a sandbox",
        ("sandbox", {"help": "the sandbox (name, id or id prefix)"}),
        ("command", {"nargs": argparse.REMAINDER, "metavar": "-- COMMAND",
                     "help": "the command and its arguments"}),
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnsd", description="Embedded DNS and networks for sandboxes (network namespaces)."
    )
    parser.add_argument("--version", action="version", version=f"dnsd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    conn, fmt = _parents()
    _add_serve(sub)
    _add_network(sub, conn, fmt)
    _add_sandbox(sub, conn, fmt)
    _command(sub, "status", cmd_status, [conn, fmt], "the daemon's state, upstreams and counts")
    add_cni_parser(sub)
    return parser
