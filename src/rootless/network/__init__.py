"""Container networking: the engine-facing API.

Before the container starts (its files are part of the mount plan)::

    mode = network.parse_mode(args.network or config.network_mode)     # UsageError if bad
    ports = network.parse_ports(args.publish, publish_all=args.publish_all, exposed=image_exposed)
    resolv_text = network.resolv_conf(mode, config, dns=args.dns, dns_search=..., dns_opts=...)
    hosts_text = network.etc_hosts(mode, hostname, add_hosts=args.add_host)

In ``on_ready(pid)`` (the init exists, its namespaces too, it has not exec'd yet)::

    handle = network.setup(mode, pid, ports, config=config, state_dir=DIR)   # RootlessError
    save handle.to_json() in the container's state; show handle.notes as warnings;
    in helper mode rewrite /etc/hosts with handle.address (hosts.write_in_place)

When the container is gone (from any process)::

    network.NetHandle.from_json(text).teardown()

Modes (``--network``): ``slirp4netns`` (default; Podman's options after a colon:
``slirp4netns:allow_host_loopback=true,enable_ipv6=true,mtu=1500,port_handler=slirp4netns``),
``none`` (only lo, brought up), ``host`` (nothing to do), ``container:<id>`` (the engine joins
that container's namespace; nothing to do here), ``helper`` (a veth on the root helper's bridge;
falls back to slirp4netns with a note when the helper is not running), and the name of a
user-defined network (``rootless network create NAME``; kind ``user``, see network/usernet.py:
``parse_mode(text, data_root=...)`` knows them, and the engine calls ``usernet.join_spec`` so
that the container joins the shared user namespace those networks live in).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Union

from rootless.errors import RootlessError, UsageError
from rootless.network.ports import PortSpec

if TYPE_CHECKING:  # pragma: no cover
    from rootless.config import Config
    from rootless.network.proxy import Proxy
    from rootless.network.slirp import Slirp

MODES = ("slirp4netns", "none", "host", "container", "helper", "user")
PORT_DRIVERS = ("builtin", "slirp4netns")
_MODE_HINT = "use --network slirp4netns, none, host, helper or container:NAME"


@dataclass(frozen=True)
class NetworkMode:
    kind: str  # one of MODES
    container: str = ""  # for container:<id>
    allow_host_loopback: bool = False
    enable_ipv6: bool = False
    mtu: int = 65520
    port_driver: str = ""  # "" = the config's port-driver
    network: str = ""  # kind "user": the network's name

    def __str__(self) -> str:
        if self.kind == "user":
            return self.network
        return f"container:{self.container}" if self.kind == "container" else self.kind


def _bool_opt(key: str, v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"parse --network option `{key}={v}`: expected true or false", _MODE_HINT)


def parse_mode(text: str, data_root: Optional[str] = None) -> NetworkMode:
    """``--network`` (or config ``network-mode``) -> NetworkMode. ``bridge``/``default`` = slirp4netns.

    With ``data_root``, the name (or id) of a user-defined network there is a mode of kind ``user``."""
    text = (text or "slirp4netns").strip()
    kind, _, rest = text.partition(":")
    if data_root and kind not in MODES and kind not in ("bridge", "default", "slirp") and not rest:
        from rootless.network import usernet

        net = usernet.find(data_root, text)
        if net is not None:
            return NetworkMode("user", network=net["Name"])
    if kind in ("bridge", "default", "slirp"):
        kind = "slirp4netns"
    if kind == "container":
        if not rest:
            raise UsageError("parse --network `container:`: the container name is missing", "use --network container:NAME")
        return NetworkMode("container", container=rest)
    if kind not in MODES or kind == "user":
        raise UsageError(f"parse --network `{text}`: unknown network mode `{kind}`",
                         _MODE_HINT + " (user-defined networks: `rootless network ls`)")
    mode = NetworkMode(kind)
    if rest:
        if kind != "slirp4netns":
            raise UsageError(f"parse --network `{text}`: only slirp4netns takes options", _MODE_HINT)
        for item in rest.split(","):
            key, sep, val = item.partition("=")
            key = key.strip()
            if not sep:
                raise UsageError(f"parse --network option `{item}`: expected key=value", _MODE_HINT)
            if key == "allow_host_loopback":
                mode = replace(mode, allow_host_loopback=_bool_opt(key, val))
            elif key == "enable_ipv6":
                mode = replace(mode, enable_ipv6=_bool_opt(key, val))
            elif key == "mtu":
                if not val.isdigit() or not 68 <= int(val) <= 65521:
                    raise UsageError(f"parse --network option `mtu={val}`: expected 68-65521", _MODE_HINT)
                mode = replace(mode, mtu=int(val))
            elif key == "port_handler":
                drv = {"rootlesskit": "builtin", "builtin": "builtin", "slirp4netns": "slirp4netns"}.get(val)
                if drv is None:
                    raise UsageError(f"parse --network option `port_handler={val}`: expected builtin or slirp4netns", _MODE_HINT)
                mode = replace(mode, port_driver=drv)
            else:
                raise UsageError(f"parse --network option `{key}`: unknown",
                                 "slirp4netns takes allow_host_loopback, enable_ipv6, mtu, port_handler")
    return mode


def parse_ports(publish: Sequence[str] = (), *, publish_all: bool = False, exposed: Iterable[str] = ()) -> List[PortSpec]:
    """``-p`` values, plus every EXPOSEd port on a free host port with ``-P``."""
    from rootless.network import ports

    out = ports.parse_publish_all(publish)
    if publish_all:
        taken = {(p.container_port, p.proto) for p in out}
        out += [p for p in ports.expose_to_publish(exposed) if (p.container_port, p.proto) not in taken]
    return out


# --- /etc files -----------------------------------------------------------------------------------


def resolv_conf(mode: NetworkMode, config: Optional[Config] = None, *, dns: Sequence[str] = (),
                dns_search: Sequence[str] = (), dns_opts: Sequence[str] = (), host_path: str = "/etc/resolv.conf") -> str:
    """The container's /etc/resolv.conf; flags win over the config's dns/dns-search/dns-opts."""
    from rootless.network import resolv

    host = resolv.read_host(host_path)
    return resolv.make(
        "slirp4netns" if mode.kind == "user" else mode.kind,  # the shared namespace's slirp4netns resolver
        host,
        dns=list(dns) or (config.dns if config else []),
        dns_search=list(dns_search) or (config.dns_search if config else []),
        dns_opts=list(dns_opts) or (config.dns_opts if config else []),
        ipv6=mode.enable_ipv6,
    )


def etc_hosts(mode: NetworkMode, hostname: str, *, add_hosts: Sequence[str] = (), address: Optional[str] = None,
              gateway: Optional[str] = None) -> str:
    """The container's /etc/hosts. Under slirp4netns the container is 10.0.2.100 and the host
    (host-gateway, host.containers.internal) 10.0.2.2; in helper mode pass the handle's address
    and gateway once known."""
    from rootless import etcfiles
    from rootless.network import slirp

    if mode.kind == "slirp4netns":
        address = address or slirp.GUEST_ADDR
        gateway = gateway or slirp.GATEWAY
    elif mode.kind == "user":  # the host through the shared namespace's slirp4netns
        gateway = gateway or slirp.GATEWAY
    return etcfiles.hosts_for(mode.kind, hostname, add_hosts, address=address, gateway=gateway)


# --- setup / teardown -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NetHandle:
    """What setup() started, so that any process can tear it down (``to_json``/``from_json``)."""

    mode: str
    port_driver: str = ""  # builtin | slirp4netns | helper | "" (no published ports)
    ports: List[PortSpec] = field(default_factory=list)  # with the real host ports
    address: str = ""  # the container's address ("" for none/host/container)
    gateway: str = ""  # the host as the container reaches it (host-gateway)
    slirp: Optional[Slirp] = None
    proxy: Optional[Proxy] = None
    helper_socket: str = ""  # set in helper mode: release the lease there
    container_pid: int = 0
    data_root: str = ""  # user networks: where their definitions are (release the addresses there)
    exec_root: str = ""  # user networks: where the shared namespace's holder is recorded
    container_id: str = ""  # user networks
    notes: List[str] = field(default_factory=list)  # say these to the user (fallbacks)

    def port_lines(self) -> List[str]:
        """``rootless port``: ``80/tcp -> 0.0.0.0:8080`` lines."""
        return [str(p) for p in self.ports]

    def teardown(self, proc: str = "/proc") -> List[str]:
        """Stop what setup started (pid + start time checked). Never raises; returns problems."""
        problems: List[str] = []
        if self.proxy is not None:
            from rootless.network import proxy

            try:
                proxy.stop(self.proxy, proc)
            except OSError as e:
                problems.append(f"stop the port proxy (pid {self.proxy.pid}): {e.strerror}")
        if self.slirp is not None:
            from rootless.network import slirp

            try:
                slirp.stop(self.slirp, proc)
            except OSError as e:
                problems.append(f"stop slirp4netns (pid {self.slirp.pid}): {e.strerror}")
        if self.mode == "user" and self.data_root and self.container_id:
            from rootless.network import usernet

            problems += usernet.release(self.data_root, self.exec_root, self.container_id, proc=proc)
        if self.helper_socket:
            from rootless.network import helper_client

            try:
                helper_client.disconnect(self.helper_socket, self.container_pid)
            except RootlessError as e:
                if "no lease for it" not in e.message:  # the helper already released it: pid died
                    problems.append(e.message)
        return problems

    def to_json(self) -> str:
        d: Dict[str, Any] = {
            "mode": self.mode,
            "port_driver": self.port_driver,
            "ports": [p.to_dict() for p in self.ports],
            "address": self.address,
            "gateway": self.gateway,
            "slirp": self.slirp.to_dict() if self.slirp else None,
            "proxy": self.proxy.to_dict() if self.proxy else None,
            "helper_socket": self.helper_socket,
            "container_pid": self.container_pid,
            "data_root": self.data_root,
            "exec_root": self.exec_root,
            "container_id": self.container_id,
            "notes": list(self.notes),
        }
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> NetHandle:
        from rootless.network.proxy import Proxy
        from rootless.network.slirp import Slirp

        try:
            d = json.loads(text)
            return cls(
                mode=str(d["mode"]),
                port_driver=str(d.get("port_driver", "")),
                ports=[PortSpec.from_dict(p) for p in d.get("ports", [])],
                address=str(d.get("address", "")),
                gateway=str(d.get("gateway", "")),
                slirp=Slirp.from_dict(d["slirp"]) if d.get("slirp") else None,
                proxy=Proxy.from_dict(d["proxy"]) if d.get("proxy") else None,
                helper_socket=str(d.get("helper_socket", "")),
                container_pid=int(d.get("container_pid", 0)),
                data_root=str(d.get("data_root", "")),
                exec_root=str(d.get("exec_root", "")),
                container_id=str(d.get("container_id", "")),
                notes=[str(n) for n in d.get("notes", [])],
            )
        except (ValueError, KeyError, TypeError) as e:
            raise RootlessError(f"read network state: {e}", "the container's state file is damaged; remove the container")


def setup(
    mode: Union[NetworkMode, str],
    pid: int,
    ports: Sequence[PortSpec] = (),
    *,
    config: Optional[Config] = None,
    state_dir: str,
    proc: str = "/proc",
    container_id: str = "",
    name: str = "",
    hostname: str = "",
    hosts_path: str = "",
) -> NetHandle:
    """Connect the network namespace of ``pid`` (the container's init) and publish ``ports``.

    ``state_dir``: a private directory for this container's sockets and logs (created 0700).
    Raises RootlessError (nothing is left running then).
    """
    from rootless import paths

    if isinstance(mode, str):
        mode = parse_mode(mode, data_root=config.data_root if config else None)
    ports = list(ports)
    notes: List[str] = []
    if mode.kind in ("host", "container"):
        if ports and mode.kind == "container":
            raise UsageError("publish ports: a container that joins another's network cannot publish ports",
                             "publish them on the container that owns the network")
        if ports:
            notes.append("published ports are discarded in host network mode")
        return NetHandle(mode.kind, notes=notes)
    if mode.kind == "none":
        from rootless.network import netns

        netns.bring_up_loopback(pid, proc)
        if ports:
            notes.append("published ports are discarded with --network none")
        return NetHandle("none", notes=notes)
    paths.ensure_private_dir(state_dir)
    driver = mode.port_driver or (config.port_driver if config else "builtin")
    if mode.kind == "user":
        return _setup_user(mode, pid, ports, config, state_dir, proc, container_id=container_id, name=name,
                           hostname=hostname, hosts_path=hosts_path, driver=driver)
    if mode.kind == "helper":
        from rootless.network import helper_client

        sock = config.helper_socket if config else helper_client.DEFAULT_SOCKET
        if helper_client.available(sock):
            return _setup_helper(pid, ports, sock, state_dir, proc)
        notes.append(f"the network helper is not running at `{sock}`; using slirp4netns "
                     "(start it as root: `rootless helper`)")
    return _setup_slirp(mode, pid, ports, driver, state_dir, notes, proc)


def _setup_slirp(mode: NetworkMode, pid: int, ports: List[PortSpec], driver: str, state_dir: str,
                 notes: List[str], proc: str) -> NetHandle:
    from rootless.network import ports as portmod
    from rootless.network import proxy, slirp

    if driver == "slirp4netns":
        for p in ports:
            if ":" in p.bind_ip:
                raise UsageError(f"publish port `{p}`: slirp4netns forwards IPv4 host addresses only",
                                 "use port-driver = \"builtin\" for an IPv6 host address")
        ports = portmod.reserve(ports, proc)  # the port named in the error, and free ports chosen
    s = slirp.start(pid, state_dir, slirp.SlirpOptions(mtu=mode.mtu, allow_host_loopback=mode.allow_host_loopback,
                                                        enable_ipv6=mode.enable_ipv6), proc)
    px = None
    try:
        if ports and driver == "slirp4netns":
            for p in ports:
                slirp.add_hostfwd(s.api_socket, p.proto, p.host_port, p.container_port, p.bind_ip)
        elif ports:
            px = proxy.start(pid, ports, log_path=os.path.join(state_dir, "proxy.log"), proc=proc)
            ports = px.ports
    except BaseException:
        slirp.stop(s, proc)
        raise
    return NetHandle("slirp4netns", port_driver=driver if ports else "", ports=ports, address=slirp.GUEST_ADDR,
                     gateway=slirp.GATEWAY, slirp=s, proxy=px, container_pid=pid, notes=notes)


def _setup_helper(pid: int, ports: List[PortSpec], sock: str, state_dir: str, proc: str) -> NetHandle:
    from rootless.network import helper_client, proxy

    # Loopback host addresses cannot be DNATed without route_localnet (CVE-2020-8558): the builtin
    # proxy serves those; the helper DNATs the rest.
    local = [p for p in ports if p.host_ip and _is_loopback(p.host_ip)]
    remote = [p for p in ports if p not in local]
    lease = helper_client.connect(sock, pid, remote)
    px = None
    try:
        if local:
            px = proxy.start(pid, local, log_path=os.path.join(state_dir, "proxy.log"), proc=proc)
    except BaseException:
        helper_client.disconnect(sock, pid)
        raise
    published = list(lease.ports) + (px.ports if px else [])
    return NetHandle("helper", port_driver="helper" if published else "", ports=published, address=lease.address,
                     gateway=lease.gateway, proxy=px, helper_socket=sock, container_pid=pid)


def _setup_user(mode: NetworkMode, pid: int, ports: List[PortSpec], config: Optional[Config], state_dir: str,
                proc: str, *, container_id: str, name: str, hostname: str, hosts_path: str, driver: str) -> NetHandle:
    """A user-defined network: a veth on its bridge in the shared namespace (network/usernet.py)."""
    from rootless import paths
    from rootless.network import proxy, usernet

    if config is None:
        raise RootlessError(f"connect to network `{mode.network}`: no configuration given", "this is a bug in rootless")
    # The engine keeps a container's files beside its `net` state directory: derive what was not given.
    cdir = os.path.dirname(os.path.abspath(state_dir))
    container_id = container_id or os.path.basename(cdir)
    hosts_path = hosts_path or os.path.join(cdir, "hosts")
    name = (name or container_id[:12]).lstrip("/")
    exec_root = config.exec_root or paths.default_exec_root().path
    notes: List[str] = []
    if ports and driver == "slirp4netns":
        notes.append("published ports of a container on a user network use the builtin port driver "
                     "(slirp4netns's add_hostfwd cannot reach the network's bridge)")
    att = usernet.attach(config.data_root, exec_root, mode.network, pid, container_id=container_id, name=name,
                         hostname=hostname, hosts_path=hosts_path, proc=proc)
    px = None
    try:
        if ports:
            px = proxy.start(pid, ports, log_path=os.path.join(state_dir, "proxy.log"), proc=proc)
            ports = px.ports
    except BaseException:
        usernet.release(config.data_root, exec_root, container_id, proc=proc)
        raise
    return NetHandle("user", port_driver="builtin" if ports else "", ports=ports, address=att.address,
                     gateway=att.gateway, proxy=px, container_pid=pid, data_root=config.data_root,
                     exec_root=exec_root, container_id=container_id, notes=notes)


def _is_loopback(ip: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def info(config: Optional[Config] = None) -> Dict[str, str]:
    """For `rootless info`: which network and port driver, and why."""
    from rootless import tools
    from rootless.network import helper_client, proxy

    driver = config.port_driver if config else "builtin"
    if driver == "builtin":
        why = "builtin (our proxy: os.splice, zero-copy)" if proxy.HAVE_SPLICE else \
            "builtin (our proxy: recv/send copy; os.splice needs Python 3.10)"
    else:
        why = "slirp4netns (its add_hostfwd API; port-driver = \"slirp4netns\")"
    sock = config.helper_socket if config else helper_client.DEFAULT_SOCKET
    user = ""
    if config is not None and config.data_root and config.exec_root:
        from rootless.network import usernet

        user = usernet.status(config.data_root, config.exec_root)
    return {
        "network": (config.network_mode if config else "slirp4netns"),
        "slirp4netns": tools.version("slirp4netns") or "not installed",
        "port driver": why,
        "helper": f"running at {sock}" if helper_client.available(sock) else f"not running ({sock})",
        **({"user networks": user} if user else {}),
    }


__all__ = ["MODES", "NetHandle", "NetworkMode", "PortSpec", "etc_hosts", "info", "parse_mode", "parse_ports",
           "resolv_conf", "setup"]
