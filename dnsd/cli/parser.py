"""The `dnsd` command line: `serve`, `network ...` and `sandbox ...`, each subcommand bound to the
function that runs it (`args.run`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from netcore.store.etcd import DEFAULT_HOST_TTL_S

from ..cni.install import add_parser as add_cni_parser
from ..config import (
    CACHE_MAX_NEGATIVE_TTL,
    CACHE_MAX_TTL,
    CACHE_SIZE,
    DEFAULT_API_SOCKET,
    DEFAULT_STATE_DIR,
    FORWARD_DEADLINE_S,
    MAX_INFLIGHT_FORWARDS,
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
from .records import cmd_record_add, cmd_record_ls, cmd_record_rm

LOG_LEVELS = ("debug", "info", "warning", "error")


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument(
        "--api-socket",
        default=os.environ.get("DNSD_SOCKET", DEFAULT_API_SOCKET),
        help="the daemon's unix socket (env DNSD_SOCKET; default %(default)s)",
    )
    conn.add_argument("--api-tcp", default=os.environ.get("DNSD_API_TCP"), metavar="HOST:PORT")
    conn.add_argument("--api-token", default=os.environ.get("DNSD_API_TOKEN"))
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=("table", "json"), default="table")
    return conn, fmt


MANY: dict[str, Any] = {"action": "append", "default": []}
FLAG: dict[str, Any] = {"action": "store_true"}
JSON = ("--format", {"choices": ("json",), "default": "json", "help": "always JSON"})


def _command(sub: Any, name: str, run: Any, parents: list, helptext: str, *specs: tuple) -> None:
    """One subcommand; each spec is `(flag, ..., {add_argument keywords})` or `(flag, ...)`."""
    aliases = {"ls": ["list"], "rm": ["remove"]}.get(name, [])
    p = sub.add_parser(name, aliases=aliases, parents=parents, help=helptext)
    for spec in specs:
        kw = spec[-1] if isinstance(spec[-1], dict) else {}
        p.add_argument(*(spec[:-1] if kw else spec), **kw)
    p.set_defaults(run=run)


def _add_serve(sub: Any) -> None:
    _command(
        sub, "serve", None, [], "run the daemon",
        ("--state-dir", {"default": DEFAULT_STATE_DIR}),
        ("--api-socket", {"default": DEFAULT_API_SOCKET}),
        ("--api-tcp", {"metavar": "HOST:PORT", "help": "also listen on TCP (needs a token)"}),
        ("--api-token", {"default": os.environ.get("DNSD_API_TOKEN")}),
        ("--upstream", {**MANY, "metavar": "IP[:PORT]", "help": "repeat; default: the host's"}),
        ("--host-resolv-conf", {"default": "/etc/resolv.conf", "metavar": "PATH"}),
        ("--no-default-network", {**FLAG, "help": "do not create the `bridge` network"}),
        ("--etc-netns-dir", {"default": "/etc/netns", "metavar": "PATH"}),
        ("--log-level", {"choices": LOG_LEVELS, "default": "info"}),
        ("--forward-deadline", {"type": float, "default": FORWARD_DEADLINE_S, "metavar": "S",
                                "help": "a client gets SERVFAIL at the latest after this"}),
        ("--max-inflight", {"type": int, "default": MAX_INFLIGHT_FORWARDS, "metavar": "N",
                            "help": "forwarded queries waiting per sandbox; REFUSED past it"}),
        ("--forward-rate", {"type": float, "default": None, "metavar": "QPS",
                            "help": "forwarded queries/s per sandbox (default: unlimited)"}),
        ("--reconcile-interval", {"type": float, "default": 10.0, "metavar": "S",
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
                        "help": "answer <name>.<network> for the host here (repeat)"}),
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
        ("--etcd-cacert", {"metavar": "PATH"}), ("--etcd-cert", {"metavar": "PATH"}),
        ("--etcd-key", {"metavar": "PATH"}), ("--etcd-user", {"metavar": "NAME"}),
        ("--etcd-password", {"help": "or env DNSD_ETCD_PASSWORD"}),
    )  # fmt: skip


def _add_network(sub: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    net = sub.add_parser("network", help="manage networks")
    net = net.add_subparsers(dest="action", required=True)
    refs = ("refs", {"nargs": "+", "metavar": "NETWORK"})
    filters = ("--filter", {**MANY, "metavar": "KEY=VALUE"})
    _command(
        net, "create", cmd_network_create, [conn, fmt], "create a bridge network",
        ("name",), ("--subnet",), ("--ip-range",), ("--gateway",),
        ("--subnet6",), ("--ip-range6",), ("--gateway6",),
        ("--ipv6", {**FLAG, "help": "dual stack (needs --subnet6)"}),
        ("--internal", {**FLAG, "help": "no route out of the network"}),
        ("--opt", "-o", {**MANY, "metavar": "KEY=VALUE"}),
        ("--label", {**MANY, "metavar": "KEY=VALUE"}),
        ("--dns-ttl", {"type": int, "metavar": "SECONDS", "help": "answer TTL (default 0)"}),
        ("--driver", "-d", {"choices": ("bridge", "overlay"), "default": "bridge",
                            "help": "overlay: spans the hosts of an etcd store"}),
    )  # fmt: skip
    _command(
        net, "ls", cmd_network_ls, [conn, fmt], "list networks",
        ("--filter", "-f", {**MANY, "metavar": "KEY=VALUE"}),
        ("--quiet", "-q", {**FLAG, "help": "only ids"}),
    )  # fmt: skip
    _command(net, "inspect", lambda c, a: show_each(c.network, a.refs), [conn], "show", refs, JSON)
    _command(net, "rm", lambda c, a: remove_each(c.remove_network, a.refs), [conn], "remove", refs)
    _command(
        net, "connect", cmd_network_connect, [conn], "connect a sandbox to a network",
        ("network",), ("sandbox",), ("--alias", MANY), ("--ip",), ("--ip6",), ("--mac",),
        ("--link", {**MANY, "metavar": "TARGET[:ALIAS]", "help": "Docker's legacy link (repeat)"}),
    )  # fmt: skip
    _command(
        net, "disconnect", lambda c, a: c.disconnect(a.network, a.sandbox, force=a.force),
        [conn], "disconnect a sandbox", ("network",), ("sandbox",), ("--force", "-f", FLAG),
    )  # fmt: skip
    _command(
        net, "prune", cmd_network_prune, [conn, fmt], "remove every unused network",
        filters, ("--force", "-f", {**FLAG, "help": "do not ask"}),
    )  # fmt: skip
    _add_record(net, conn, fmt)


def _add_record(net: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    rec = net.add_parser("record", help="DNS records of a network that are not sandboxes")
    rec = rec.add_subparsers(dest="record_action", required=True)
    _command(
        rec, "add", cmd_record_add, [conn, fmt], "add a record (answered as NAME and NAME.NETWORK)",
        ("network",), ("name",), ("type", {"metavar": "TYPE", "help": "A, AAAA, CNAME, SRV, TXT"}),
        ("value", {"help": "zone-file rdata: 10.0.0.5, db.example., '10 5 5432 db.example.', "
                           "'\"v=1\"'"}),
        ("--ttl", {"type": int, "metavar": "SECONDS", "help": "default: the network's"}),
    )  # fmt: skip
    _command(rec, "ls", cmd_record_ls, [conn, fmt], "list a network's records", ("network",))
    _command(
        rec, "rm", cmd_record_rm, [conn], "remove the records of a name and type",
        ("network",), ("name",), ("type",), ("--value", {"help": "only the record of this value"}),
    )  # fmt: skip


def _add_sandbox(sub: Any, conn: argparse.ArgumentParser, fmt: argparse.ArgumentParser) -> None:
    box = sub.add_parser("sandbox", help="manage sandboxes (network namespaces)")
    box = box.add_subparsers(dest="action", required=True)
    refs = ("refs", {"nargs": "+", "metavar": "SANDBOX"})
    _command(
        box, "create", cmd_sandbox_create, [conn, fmt], "create a sandbox",
        ("name",),
        ("--netns", {"metavar": "PATH", "help": "adopt this namespace (default: make one)"}),
        ("--hostname", {"default": ""}),
        ("--network", {"default": "", "metavar": "NAME|none|host|container:NAME"}),
        ("--alias", {**MANY, "help": "name on --network (repeat)"}),
        ("--ip", {"help": "address on --network"}),
        ("--link", {**MANY, "metavar": "TARGET[:ALIAS]",
                    "help": "Docker's legacy link on --network (repeat)"}),
        ("--dns", {**MANY, "metavar": "IP"}),
        ("--dns-search", {**MANY, "metavar": "DOMAIN"}),
        ("--dns-option", {**MANY, "metavar": "OPTION"}),
        ("--add-host", {**MANY, "metavar": "NAME:IP"}),
        ("--publish", "-p", {**MANY, "metavar": "[IP:]HOST_PORT:PORT[/PROTO]"}),
    )  # fmt: skip
    _command(
        box, "ls", cmd_sandbox_ls, [conn, fmt], "list sandboxes",
        ("--quiet", "-q", {**FLAG, "help": "only ids"}),
    )  # fmt: skip
    _command(box, "inspect", lambda c, a: show_each(c.sandbox, a.refs), [conn], "show", refs, JSON)
    _command(box, "rm", lambda c, a: remove_each(c.remove_sandbox, a.refs), [conn], "remove", refs)
    _command(
        box, "exec", cmd_sandbox_exec, [conn], "run a command inside a sandbox",
        ("sandbox",), ("command", {"nargs": argparse.REMAINDER, "metavar": "-- COMMAND"}),
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnsd", description="Embedded DNS and networks for sandboxes (network namespaces)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conn, fmt = _parents()
    _add_serve(sub)
    _add_network(sub, conn, fmt)
    _add_sandbox(sub, conn, fmt)
    add_cni_parser(sub)
    return parser
