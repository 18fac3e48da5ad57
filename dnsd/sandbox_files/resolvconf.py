"""The `/etc/resolv.conf` a sandbox sees, and the upstream servers 127.0.0.11 stands for.

Modelled on moby's `internal/resolvconf`: parse the host file, apply the sandbox's overrides,
move every nameserver out of the file into the embedded resolver's upstream list (the file
then names only 127.0.0.11), and explain in a trailing comment what the file was built from.
Unlike Docker we never fall back to public resolvers (8.8.8.8): with no upstream at all the
forwarder answers SERVFAIL, and the trailer says so.

Everything here is pure except `load_host_text` and `read_host_resolv_conf`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netcore.errors import InvalidArgument
from netcore.model import Sandbox

INTERNAL_RESOLVER = "127.0.0.11"
SYSTEMD_STUB = "127.0.0.53"
SYSTEMD_RESOLVED_PATH = "/run/systemd/resolve/resolv.conf"
MAX_UPSTREAMS = 3  # glibc's MAXNS: Docker never tried a 4th server either

_VALID_NDOTS = re.compile(r"^ndots:[0-9]+$")


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """The directives of a resolv.conf file that matter; comments are dropped."""

    nameservers: tuple[str, ...] = ()  # normalised IP addresses (v4 or v6, maybe with %zone)
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    other: tuple[str, ...] = ()  # unknown directives (sortlist, ...), kept verbatim
    invalid_nameservers: tuple[str, ...] = ()  # `nameserver` values that are not addresses


@dataclass(frozen=True, slots=True)
class Upstream:
    """A server the embedded resolver forwards to."""

    address: str
    port: int = 53
    # Taken from the HOST's file and only reachable from the daemon's namespace (loopback, or an
    # IPv6 address with a %zone of a host interface): dial it from there, not from the sandbox.
    host_loopback: bool = False

    def __str__(self) -> str:
        """moby's ExtServers notation: `198.51.100.53`, `host(127.0.0.53)`, `[::1]:5353`."""
        shown = self.address
        if self.port != 53:
            shown = f"[{shown}]:{self.port}" if ":" in shown else f"{shown}:{self.port}"
        return f"host({shown})" if self.host_loopback else shown


def parse(text: str) -> ResolvConf:
    """Parse resolv.conf text as glibc reads it; malformed lines are ignored, never fatal."""
    nameservers: list[str] = []
    invalid: list[str] = []
    search: list[str] = []
    options: list[str] = []
    other: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0][0] in "#;":
            continue
        keyword, args = fields[0], fields[1:]
        if keyword == "nameserver":
            if args:
                address = _normalised_address(args[0])
                (nameservers if address else invalid).append(address or args[0])
        elif keyword in ("search", "domain"):
            # glibc: `domain` is an old spelling of a one-entry search; the last line wins.
            if args:
                search = args if keyword == "search" else args[:1]
        elif keyword == "options":
            options.extend(args)
        else:
            other.append(line.rstrip())
    return ResolvConf(
        tuple(nameservers), tuple(search), tuple(options), tuple(other), tuple(invalid)
    )


def host_upstreams(host: ResolvConf, systemd_resolved: ResolvConf | None) -> tuple[Upstream, ...]:
    """The upstream servers the host's resolv.conf stands for (at most 3, in file order).

    A host file whose only server is the systemd-resolved stub 127.0.0.53 is replaced by the
    real servers of `/run/systemd/resolve/resolv.conf` (`systemd_resolved`); without that
    file, or when it lists nothing, the stub itself is used from the daemon's namespace.
    No servers at all gives an empty tuple: nothing public is substituted.
    """
    servers = host.nameservers
    if servers == (SYSTEMD_STUB,) and systemd_resolved and systemd_resolved.nameservers:
        servers = systemd_resolved.nameservers
    return tuple(
        Upstream(address, host_loopback=_host_only(address)) for address in servers[:MAX_UPSTREAMS]
    )


def sandbox_upstreams(
    sandbox_dns: tuple[str, ...], host_ups: tuple[Upstream, ...]
) -> tuple[Upstream, ...]:
    """The sandbox's own `dns` servers (first 3) if it has any, else the host's.

    A loopback address here is the SANDBOX's loopback (a resolver running inside it), so it is
    dialled from the sandbox. 127.0.0.11 is dropped: forwarding to ourselves would loop. If
    nothing is left the result is empty (SERVFAIL), not the host's servers, because the
    sandbox asked not to use those.
    """
    if not sandbox_dns:
        return host_ups
    upstreams = []
    for value in sandbox_dns:
        address = _normalised_address(value)
        if address is None:
            raise InvalidArgument(
                f"{value!r} is not an IP address; give nameservers as plain IPv4/IPv6 addresses",
                field="dns",
            )
        if address != INTERNAL_RESOLVER:
            upstreams.append(Upstream(address, host_loopback=False))
    return tuple(upstreams[:MAX_UPSTREAMS])


def sandbox_search(host: ResolvConf, dns_search: tuple[str, ...] | None) -> tuple[str, ...]:
    """Search domains: the host's, or the override (`.` entries removed: `(".",)` = none)."""
    if dns_search is None:
        return host.search
    return tuple(domain for domain in dns_search if domain != ".")


def sandbox_options(host: ResolvConf, dns_options: tuple[str, ...] | None) -> tuple[str, ...]:
    """Options: the host's or the override, invalid `ndots` dropped, `ndots:0` added if none.

    ndots:0 makes the client send every name to 127.0.0.11 as typed first, so sandbox names
    resolve without a round of search-domain queries upstream.
    """
    chosen = host.options if dns_options is None else dns_options
    kept = tuple(o for o in chosen if _option_name(o) != "ndots" or _VALID_NDOTS.match(o))
    if any(_option_name(o) == "ndots" for o in kept):
        return kept
    return (*kept, "ndots:0")


def explicit_ndots(host: ResolvConf, dns_options: tuple[str, ...] | None) -> bool:
    """Whether the sandbox's ndots was chosen by the user or the host, not added by us.

    The resolver needs this: with an explicit ndots Docker answers single-label A/AAAA names it
    does not own with an empty NOERROR instead of forwarding them.
    """
    chosen = host.options if dns_options is None else dns_options
    return any(_VALID_NDOTS.match(o) for o in chosen)


def render_sandbox_resolv_conf(
    host: ResolvConf,
    *,
    dns_search: tuple[str, ...] | None,
    dns_options: tuple[str, ...] | None,
    upstreams: tuple[Upstream, ...],
    source: str,
    nameservers_override: bool = False,
) -> str:
    """The resolv.conf of a sandbox on a user-defined network: 127.0.0.11 only.

    Layout as Docker 20.10 wrote it (search, nameserver, options), then unknown host
    directives, then a comment block saying what it was built from (`nameservers_override`:
    the upstreams are the sandbox's own `dns`, which the comment then says).
    """
    search = sandbox_search(host, dns_search)
    options = sandbox_options(host, dns_options)
    lines = [f"search {' '.join(search)}"] if search else []
    lines.append(f"nameserver {INTERNAL_RESOLVER}")
    if options:
        lines.append(f"options {' '.join(options)}")
    lines.extend(host.other)
    lines.append("")
    lines.extend(_trailer(host, source, upstreams, nameservers_override, dns_search, dns_options))
    return "\n".join(lines) + "\n"


def render_none_resolv_conf(host_text: str) -> str:
    """The resolv.conf of a sandbox without networking: the host file, minus its loopback
    and IPv6 nameservers (unusable there), as Docker does. Nothing public is added."""
    return "".join(
        line for line in host_text.splitlines(keepends=True) if not _unusable_in_none(line)
    )


def sandbox_resolv_conf(
    sandbox: Sandbox, host_text: str, host_ups: tuple[Upstream, ...], source: str
) -> str:
    """The resolv.conf for `sandbox` by mode: host → the host file verbatim, none → filtered
    copy, bridge/container → the 127.0.0.11 file (a container-mode sandbox's own settings
    are used; the lead decides whether it should rather share its target's file)."""
    if sandbox.mode == "host":
        return host_text
    if sandbox.mode == "none":
        return render_none_resolv_conf(host_text)
    return render_sandbox_resolv_conf(
        parse(host_text),
        dns_search=sandbox.dns_search,
        dns_options=sandbox.dns_options,
        upstreams=sandbox_upstreams(sandbox.dns, host_ups),
        source=source,
        nameservers_override=bool(sandbox.dns),
    )


def load_host_text(path: str | Path) -> str:
    """The text of a resolv.conf file; a missing file reads as empty (glibc's behaviour)."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def read_host_resolv_conf(
    path: str | Path = "/etc/resolv.conf", *, systemd_path: str | Path = SYSTEMD_RESOLVED_PATH
) -> tuple[ResolvConf, tuple[Upstream, ...]]:
    """Parse the host's resolv.conf and work out its upstreams (reads `systemd_path` only
    when the host file points at the systemd-resolved stub)."""
    host = parse(load_host_text(path))
    systemd = None
    if host.nameservers == (SYSTEMD_STUB,):
        text = load_host_text(systemd_path)
        systemd = parse(text) if text else None
    return host, host_upstreams(host, systemd)


# --- helpers ---


def _normalised_address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _host_only(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None)


def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def _unusable_in_none(line: str) -> bool:
    fields = line.split()
    if len(fields) < 2 or fields[0] != "nameserver":
        return False
    try:
        ip = ipaddress.ip_address(fields[1])
    except ValueError:
        return False
    return ip.is_loopback or ip.version == 6


def _trailer(
    host: ResolvConf,
    source: str,
    upstreams: Iterable[Upstream],
    nameservers_override: bool,
    dns_search: tuple[str, ...] | None,
    dns_options: tuple[str, ...] | None,
) -> list[str]:
    servers = " ".join(str(u) for u in upstreams)
    overrides = [
        name
        for name, given in (
            ("nameservers", nameservers_override),
            ("search", dns_search is not None),
            ("options", dns_options is not None),
        )
        if given
    ]
    if explicit_ndots(host, dns_options):
        ndots_from = "host" if dns_options is None else "override"
    else:
        ndots_from = "internal"
    source = " ".join(source.splitlines())  # a comment must stay one line
    lines = [
        f"# Generated by dnsd from '{source}' (internal resolver {INTERNAL_RESOLVER})",
        f"# ExtServers: [{servers}]"
        if servers
        else "# ExtServers: none: unknown names get SERVFAIL",
    ]
    if host.invalid_nameservers:
        lines.append(f"# Invalid nameservers ignored: [{' '.join(host.invalid_nameservers)}]")
    lines.append(f"# Overrides: [{' '.join(overrides)}]")
    lines.append(f"# Option ndots from: {ndots_from}")
    return lines


def parse_upstream(value: str, *, host_side: bool = True) -> Upstream:
    """`IP`, `IP:PORT` or `[IPv6]:PORT` (the daemon's `--upstream`). With `host_side`, a
    loopback address is the daemon's own and is dialled from its namespace."""
    text, port = value, "53"
    if value.startswith("["):
        text, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif value.count(":") == 1:
        text, _, port = value.partition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("the port must be 1-65535")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError("give an IP address (optionally :PORT)") from None
    return Upstream(str(address), int(port), host_loopback=host_side and address.is_loopback)
