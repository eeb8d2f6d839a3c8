"""Published ports: parse ``-p``/``-P``, and bind host sockets with errors a user can act on.

``-p`` follows docker's grammar, ``[ip:][hostPort:]containerPort[/proto]``:

- ``80``                      container port 80 on a free host port of every address
- ``8080:80``                 host 8080 -> container 80
- ``127.0.0.1:8080:80/udp``   one host address, UDP
- ``127.0.0.1::80``           one host address, a free host port
- ``[::1]:8080:80``           an IPv6 host address (the builtin driver only)
- ``8000-8010:80-90``         ranges of the same length

Two drivers move the connections (see network/__init__.py): slirp4netns's own ``add_hostfwd``
and our builtin proxy (network/proxy.py). Neither keeps the client's source address: slirp4netns
shows the server 10.0.2.2, the builtin proxy 127.0.0.1 (it connects from inside the container's
network namespace, as rootlesskit's builtin driver does).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from rootless.errors import RootlessError, UsageError

PROTOS = ("tcp", "udp")
_PUBLISH_HINT = "the form is -p [ip:][hostPort:]containerPort[/tcp|udp], e.g. -p 127.0.0.1:8080:80"


@dataclass(frozen=True)
class PortSpec:
    """One published port. ``host_port`` 0 = a free port chosen at setup; ``host_ip`` "" = all."""

    container_port: int
    host_port: int = 0
    host_ip: str = ""
    proto: str = "tcp"

    @property
    def bind_ip(self) -> str:
        return self.host_ip or "0.0.0.0"

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.bind_ip else socket.AF_INET

    def __str__(self) -> str:
        """docker port's shape: ``80/tcp -> 0.0.0.0:8080``."""
        ip = f"[{self.bind_ip}]" if ":" in self.bind_ip else self.bind_ip
        return f"{self.container_port}/{self.proto} -> {ip}:{self.host_port}"

    def to_dict(self) -> Dict[str, Any]:
        return {"container_port": self.container_port, "host_port": self.host_port, "host_ip": self.host_ip, "proto": self.proto}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> PortSpec:
        return check(cls(int(d["container_port"]), int(d.get("host_port", 0)), str(d.get("host_ip", "")), str(d.get("proto", "tcp"))))


def check(p: PortSpec) -> PortSpec:
    """Validate every field (used for parsed flags and for data read back from disk)."""
    if not 1 <= p.container_port <= 65535:
        raise UsageError(f"publish port `{p.container_port}`: container port must be 1-65535", _PUBLISH_HINT)
    if not 0 <= p.host_port <= 65535:
        raise UsageError(f"publish port `{p.host_port}`: host port must be 1-65535", _PUBLISH_HINT)
    if p.proto not in PROTOS:
        raise UsageError(f"publish port `{p.container_port}/{p.proto}`: protocol must be tcp or udp", _PUBLISH_HINT)
    if p.host_ip:
        try:
            ipaddress.ip_address(p.host_ip)
        except ValueError:
            raise UsageError(f"publish port on `{p.host_ip}`: not an IP address", _PUBLISH_HINT)
    return p


def _port_range(text: str, what: str, spec: str) -> Tuple[int, int]:
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise UsageError(f"parse -p `{spec}`: {what} port `{text}` is not a number or range", _PUBLISH_HINT)
    if not (1 <= lo <= 65535 and 1 <= hi <= 65535) or hi < lo:
        raise UsageError(f"parse -p `{spec}`: {what} port `{text}` is out of range 1-65535", _PUBLISH_HINT)
    return lo, hi


def parse_publish(spec: str) -> List[PortSpec]:
    """One ``-p`` value -> its PortSpecs (several for a range)."""
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, _, proto = text.rpartition("/")
        proto = proto.lower()
        if proto not in PROTOS:
            raise UsageError(f"parse -p `{spec}`: protocol `{proto}` is not tcp or udp", _PUBLISH_HINT)
    host_ip = ""
    if text.startswith("["):  # [v6]:host:ctr
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise UsageError(f"parse -p `{spec}`: unclosed `[` around the IPv6 address", _PUBLISH_HINT)
        host_ip, text = text[1:end], text[end + 2 :]
        parts = text.split(":")
        if len(parts) != 2:
            raise UsageError(f"parse -p `{spec}`: expected [ip]:hostPort:containerPort", _PUBLISH_HINT)
        host_part, ctr_part = parts
    else:
        parts = text.split(":")
        if len(parts) == 1:
            host_part, ctr_part = "", parts[0]
        elif len(parts) == 2:
            host_part, ctr_part = parts
        elif len(parts) == 3:
            host_ip, host_part, ctr_part = parts
        else:
            raise UsageError(f"parse -p `{spec}`: too many `:` (put an IPv6 address in brackets)", _PUBLISH_HINT)
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise UsageError(f"parse -p `{spec}`: `{host_ip}` is not an IP address", _PUBLISH_HINT)
        if host_ip in ("0.0.0.0", "::"):
            host_ip = "" if host_ip == "0.0.0.0" else host_ip
    if not ctr_part:
        raise UsageError(f"parse -p `{spec}`: the container port is missing", _PUBLISH_HINT)
    c_lo, c_hi = _port_range(ctr_part, "container", spec)
    if not host_part:
        return [PortSpec(c, 0, host_ip, proto) for c in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _port_range(host_part, "host", spec)
    if h_hi - h_lo != c_hi - c_lo:
        raise UsageError(
            f"parse -p `{spec}`: the host range has {h_hi - h_lo + 1} ports, the container range {c_hi - c_lo + 1}",
            "give ranges of the same length, e.g. -p 8000-8010:80-90",
        )
    return [PortSpec(c_lo + i, h_lo + i, host_ip, proto) for i in range(c_hi - c_lo + 1)]


def parse_publish_all(specs: Iterable[str]) -> List[PortSpec]:
    """Every ``-p`` of a command line; a host port given twice is an error here, not at bind time."""
    out: List[PortSpec] = []
    seen: Dict[Tuple[str, int, str], str] = {}
    for s in specs:
        for p in parse_publish(s):
            key = (p.bind_ip, p.host_port, p.proto)
            if p.host_port and key in seen:
                raise UsageError(f"parse -p `{s}`: host port {p.host_port}/{p.proto} is already published by `{seen[key]}`",
                                 "publish each host port once")
            seen[key] = s
            out.append(p)
    return out


def expose_to_publish(exposed: Iterable[str], host_ip: str = "") -> List[PortSpec]:
    """``-P``: every EXPOSEd port (image config ``ExposedPorts`` keys, ``--expose`` values:
    ``80``, ``80/tcp``, ``53/udp``, ``8000-8002``) on a free host port."""
    out: List[PortSpec] = []
    for e in exposed:
        text, _, proto = e.strip().partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOS:
            continue  # sctp: neither driver forwards it; docker also skips what it cannot publish
        lo, hi = _port_range(text, "exposed", e)
        out.extend(PortSpec(c, 0, host_ip, proto) for c in range(lo, hi + 1))
    return out


# --- binding on the host --------------------------------------------------------------------------


def unprivileged_port_start(proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def bind_error(p: PortSpec, port: int, e: OSError, proc: str = "/proc") -> RootlessError:
    """The error for a failed bind of a published port, with what to do about it."""
    ip = f"[{p.bind_ip}]" if ":" in p.bind_ip else p.bind_ip
    where = f"{ip}:{port}/{p.proto}"
    if e.errno == errno.EACCES:
        start = unprivileged_port_start(proc)
        if port < start:
            return RootlessError(
                f"publish port `{where}`: permission denied: ports below {start} are privileged",
                f"publish on a host port >= {start}, or let users bind lower ports: "
                f"`sysctl net.ipv4.ip_unprivileged_port_start={port}`",
            )
        return RootlessError(f"publish port `{where}`: permission denied", "check security policies (SELinux, AppArmor)")
    if e.errno == errno.EADDRINUSE:
        return RootlessError(
            f"publish port `{where}`: address already in use",
            f"another program or container listens on port {port}; free it or choose another host port",
        )
    if e.errno == errno.EADDRNOTAVAIL:
        return RootlessError(f"publish port `{where}`: {p.bind_ip} is not an address of this host",
                             "use one of the host's addresses (`ip addr`), or omit it to listen on all")
    return RootlessError(f"publish port `{where}`: {e.strerror}", "check the address and port")


def bind(p: PortSpec, proc: str = "/proc", backlog: int = 512) -> socket.socket:
    """A non-blocking socket bound (and for TCP listening) on the host side of ``p``."""
    kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(p.family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a previous run
        if p.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((p.bind_ip, p.host_port))
        if kind == socket.SOCK_STREAM:
            s.listen(backlog)
        s.setblocking(False)
    except OSError as e:
        s.close()
        raise bind_error(p, p.host_port, e, proc)
    return s


def bound_port(s: socket.socket) -> int:
    return s.getsockname()[1]


def bind_all(ports: Iterable[PortSpec], proc: str = "/proc") -> List[Tuple[PortSpec, socket.socket]]:
    """Bind every port; all or nothing. Returned specs carry the real host port."""
    out: List[Tuple[PortSpec, socket.socket]] = []
    try:
        for p in ports:
            s = bind(p, proc)
            out.append((PortSpec(p.container_port, bound_port(s), p.host_ip, p.proto), s))
    except BaseException:
        for _, s in out:
            s.close()
        raise
    return out


def reserve(ports: Iterable[PortSpec], proc: str = "/proc") -> List[PortSpec]:
    """Check that each host port is free (and pick one for port 0), then release it.

    For the slirp4netns driver, whose add_hostfwd only says "failed": we try the bind ourselves
    first so the error names the port and the cause. A race with another program is possible.
    """
    bound = bind_all(ports, proc)
    for _, s in bound:
        s.close()
    return [p for p, _ in bound]


def find(ports: Iterable[PortSpec], container_port: int, proto: Optional[str] = None) -> List[PortSpec]:
    return [p for p in ports if p.container_port == container_port and (proto is None or p.proto == proto)]
