"""The container's /etc/hosts, as a pure function.

Docker's layout (localhost, the IPv6 names, the container's own address and hostname), then
``--add-host`` entries. ``host-gateway`` as an address means the host as the container sees it:
10.0.2.2 under slirp4netns (reachable only when host loopback is allowed), the bridge address in
helper mode. ``host.containers.internal`` and ``host.docker.internal`` name that address too
when the network has one (Podman adds the first; Docker Desktop the second).

The engine bind-mounts the file: to change it while the container runs, rewrite it in place
(``write_in_place``), never by rename, or the container keeps the old inode.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import List, Optional, Sequence, Tuple

from rootless.errors import UsageError
from rootless.hostsfile import DEFAULT_HOSTS

HOST_GATEWAY = "host-gateway"
HOST_NAMES = ("host.containers.internal", "host.docker.internal")
_NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")

def parse_add_host(text: str) -> Tuple[str, str]:
    """``--add-host name:ip`` (or ``name=ip``; ``ip`` may be IPv6 or ``host-gateway``)."""
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


def make(
    hostname: str,
    *,
    address: Optional[str] = None,
    extra_hosts: Sequence[Tuple[str, str]] = (),
    gateway: Optional[str] = None,
    domainname: str = "",
) -> str:
    """``address``: the container's own (None: 127.0.1.1, as for --network none/host-less);
    ``gateway``: what host-gateway means (None: the network has none, host-gateway is an error)."""
    lines: List[str] = [DEFAULT_HOSTS.rstrip("\n")]
    for name, ip in extra_hosts:
        if ip == HOST_GATEWAY:
            if not gateway:
                raise UsageError(f"add host `{name}`: host-gateway has no address on this network",
                                 "host-gateway needs --network slirp4netns or the helper's bridge")
            ip = gateway
        lines.append(f"{ip}\t{name}")
    if hostname:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{address or '127.0.1.1'}\t{names}")
    if gateway:
        lines.append(f"{gateway}\t{' '.join(HOST_NAMES)}")
    return "\n".join(lines) + "\n"


def write_in_place(path: str, text: str) -> None:
    """Rewrite a bind-mounted file keeping its inode (truncate + write + fsync)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
