"""The container's /etc/resolv.conf, as a pure function of the host's and the options.

Which name servers (the rules of Podman with slirp4netns, and Docker's for the rest):

- ``--dns``/config ``dns`` given: exactly those.
- slirp4netns: its built-in forwarder 10.0.2.3 first (it forwards to the host's own resolver,
  loopback ones such as systemd-resolved's 127.0.0.53 included), then the host's non-loopback
  servers.
- host network: the host's servers as they are (loopback ones work there).
- other modes (none, helper bridge): the host's non-loopback servers; when none are left,
  Google's public ones, as Docker does (a bridge cannot reach the host's 127.0.0.53).

``search`` and ``options`` come from the host unless ``dns_search``/``dns_opts`` are given;
``dns_search = ["."]`` means no search domains (Docker's convention).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import List, Sequence

SLIRP_DNS = "10.0.2.3"
SLIRP_DNS6 = "fd00::3"
FALLBACK = ("8.8.8.8", "8.8.4.4")
MAX_NAMESERVERS = 3  # glibc reads three (resolv.h MAXNS)


@dataclass(frozen=True)
class HostResolv:
    nameservers: List[str] = field(default_factory=list)
    search: List[str] = field(default_factory=list)
    options: List[str] = field(default_factory=list)


def parse(text: str) -> HostResolv:
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
    return HostResolv([n for n in ns if _is_ip(n)], search, opts)


def read_host(path: str = "/etc/resolv.conf") -> HostResolv:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse(f.read())
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


def make(
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
