"""The container's /etc/hosts and /etc/resolv.conf, as pure functions: the one generator of each.

A top-level module of its own (no import of the network package), so that the engine's fast path
(``run --network none|host``) and ``rootless.network`` (slirp4netns, helper, user networks) write
these files the same way.

/etc/hosts: Docker's layout (localhost, the IPv6 names), then the ``--add-host`` entries, then the
container's own address and hostname. ``--add-host`` takes ``name:ip`` or ``name=ip`` (as docker
does), an IPv6 address with or without brackets (written without: glibc does not read
``[::1]``), or ``host-gateway``: the host as the container sees it under its network mode
(10.0.2.2 under slirp4netns, the bridge address in helper mode, the host's loopback under
``--network host``); a mode without one (``none``) refuses it rather than writing the word.
``host.containers.internal`` and ``host.docker.internal`` name that address too when the network
has one (Podman adds the first; Docker Desktop the second). Under ``--network host`` the host's own
/etc/hosts is the start, as docker does.

/etc/resolv.conf, which name servers (the rules of Podman with slirp4netns, and Docker's for the rest):

- ``--dns``/config ``dns`` given: exactly those.
- slirp4netns: its built-in forwarder 10.0.2.3 first (it forwards to the host's own resolver,
  loopback ones such as systemd-resolved's 127.0.0.53 included), then the host's non-loopback
  servers.
- host network: the host's file as it is when no option is given (docker copies it), else the
  host's servers as they are (loopback ones work there).
- other modes (none, helper bridge): the host's non-loopback servers; when none are left,
  Google's public ones, as Docker does (a bridge cannot reach the host's 127.0.0.53).

``search`` and ``options`` come from the host unless ``dns_search``/``dns_opts`` are given;
``dns_search = ["."]`` means no search domains (Docker's convention).
"""

from __future__ import annotations

import ipaddress
import re
from typing import List, Optional, Sequence, Tuple

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
HOST_GATEWAY = "host-gateway"
HOST_NAMES = ("host.containers.internal", "host.docker.internal")
HOST_LOOPBACK = "127.0.0.1"  # host-gateway under --network host: the host is in the same namespace
_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")

SLIRP_DNS = "10.0.2.3"
SLIRP_DNS6 = "fd00::3"
FALLBACK = ("8.8.8.8", "8.8.4.4")
MAX_NAMESERVERS = 3  # glibc reads three (resolv.h MAXNS)


# --- /etc/hosts ------------------------------------------------------------------------------------


def parse_add_host(text: str) -> Tuple[str, str]:
    """``--add-host name:ip`` or ``name=ip`` (``ip`` may be IPv6, bracketed or not, or ``host-gateway``)."""
    from rootless.errors import UsageError

    sep = "=" if "=" in text else ":"
    name, _, ip = text.partition(sep)
    name, ip = name.strip(), ip.strip()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not _NAME_RE.match(name):
        raise UsageError(f"parse --add-host `{text}`: `{name}` is not a host name", "the form is --add-host NAME:IP")
    if ip != HOST_GATEWAY:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise UsageError(f"parse --add-host `{text}`: `{ip}` is not an IP address or host-gateway",
                             "the form is --add-host NAME:IP, e.g. --add-host db:10.0.2.2")
    return name, ip


def make_hosts(
    hostname: str,
    *,
    address: Optional[str] = None,
    extra_hosts: Sequence[Tuple[str, str]] = (),
    gateway: Optional[str] = None,
    domainname: str = "",
    base: Optional[str] = None,
) -> str:
    """``address``: the container's own (None: 127.0.1.1, as for --network none);
    ``gateway``: what host-gateway means (None: the network has none, host-gateway is an error);
    ``base``: the text to start from instead of Docker's (the host's file, --network host), which
    then also says who the container is and what the host is called."""
    from rootless.errors import UsageError

    own = base is None
    lines: List[str] = [(DEFAULT_HOSTS if own else base).rstrip("\n")]
    if not lines[0]:
        lines = []
    for name, ip in extra_hosts:
        if ip == HOST_GATEWAY:
            if not gateway:
                raise UsageError(f"add host `{name}`: host-gateway has no address on this network",
                                 "host-gateway needs --network slirp4netns, host or the helper's bridge")
            ip = gateway
        lines.append(f"{ip}\t{name}")
    if own and hostname:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{address or '127.0.1.1'}\t{names}")
    if own and gateway:
        lines.append(f"{gateway}\t{' '.join(HOST_NAMES)}")
    return "\n".join(lines) + "\n"


def hosts_for(kind: str, hostname: str, add_hosts: Sequence[str] = (), *, address: Optional[str] = None,
              gateway: Optional[str] = None, host_path: str = "/etc/hosts") -> str:
    """The container's /etc/hosts for network mode ``kind`` (none, host, ...) from ``--add-host`` texts."""
    extra = [parse_add_host(h) for h in add_hosts]
    base = None
    if kind == "host":
        gateway = gateway or HOST_LOOPBACK
        try:
            with open(host_path, encoding="utf-8", errors="replace") as f:
                base = f.read()
        except OSError:
            base = None
    return make_hosts(hostname, address=address, extra_hosts=extra, gateway=gateway, base=base)


# --- /etc/resolv.conf ------------------------------------------------------------------------------


class HostResolv:
    """What the host's resolv.conf says (``text``: the file as it is)."""

    __slots__ = ("nameservers", "search", "options", "text")

    def __init__(self, nameservers: Optional[List[str]] = None, search: Optional[List[str]] = None,
                 options: Optional[List[str]] = None, text: str = "") -> None:
        self.nameservers = list(nameservers or [])
        self.search = list(search or [])
        self.options = list(options or [])
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostResolv) and (self.nameservers, self.search, self.options) == (
            other.nameservers, other.search, other.options)

    def __repr__(self) -> str:
        return f"HostResolv({self.nameservers!r}, {self.search!r}, {self.options!r})"


def parse_resolv(text: str) -> HostResolv:
    ns: List[str] = []
    search: List[str] = []
    opts: List[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            ns.append(words[1].split("%", 1)[0] if _is_ip(words[1].split("%", 1)[0]) else words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]  # the last search/domain line wins (resolv.conf(5))
        elif words[0] == "options":
            opts.extend(words[1:])
    return HostResolv([n for n in ns if _is_ip(n)], search, opts, text)


def read_host_resolv(path: str = "/etc/resolv.conf") -> HostResolv:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv(f.read())
    except OSError:
        return HostResolv()


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _loopback(s: str) -> bool:
    try:
        return ipaddress.ip_address(s).is_loopback
    except ValueError:
        return False


def nameservers(mode: str, host: HostResolv, dns: Sequence[str] = (), ipv6: bool = False) -> List[str]:
    if dns:
        return _dedup(dns)
    if mode == "host":
        return _dedup(host.nameservers)
    outside = [n for n in host.nameservers if not _loopback(n)]
    if not ipv6:
        outside = [n for n in outside if ":" not in n]
    if mode == "slirp4netns":
        first = [SLIRP_DNS] + ([SLIRP_DNS6] if ipv6 else [])
        return _dedup(first + outside)
    return _dedup(outside) or list(FALLBACK)


def _dedup(xs: Sequence[str]) -> List[str]:
    out: List[str] = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def make_resolv(
    mode: str,
    host: HostResolv,
    *,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_opts: Sequence[str] = (),
    ipv6: bool = False,
) -> str:
    """The text of the container's /etc/resolv.conf. ``mode``: slirp4netns, host, none, helper."""
    for n in dns:
        if not _is_ip(n):
            from rootless.errors import UsageError

            raise UsageError(f"use dns server `{n}`: not an IP address", "give --dns an IPv4 or IPv6 address, e.g. --dns 1.1.1.1")
    if mode == "host" and not dns and not dns_search and not dns_opts and host.text:
        return host.text if host.text.endswith("\n") else host.text + "\n"
    lines = []
    search = list(dns_search) if dns_search else host.search
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    for n in nameservers(mode, host, dns, ipv6)[:MAX_NAMESERVERS]:
        lines.append(f"nameserver {n}")
    opts = list(dns_opts) if dns_opts else host.options
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"
