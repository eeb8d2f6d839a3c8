"""The root network helper (``rootless helper``): a bridge like docker0 for unprivileged users.

It runs as root, listens on a unix socket (default /run/rootless-helper.sock, mode 0666: any
local user may ask) and knows the caller by SO_PEERCRED, never by what the request says.

Requests are one JSON object per connection, answered by one JSON object::

    {"op": "connect", "pid": 1234, "ports": [{"container_port": 80, "host_port": 8080,
                                              "host_ip": "", "proto": "tcp"}]}
    -> {"ok": true, "address": "172.31.0.2", "prefixlen": 16, "gateway": "172.31.0.1",
        "ifname": "eth0", "ports": [...with the host ports chosen...]}
    {"op": "disconnect", "pid": 1234}  -> {"ok": true}
    {"op": "ping"}                     -> {"ok": true, "bridge": "rootless0", "subnet": "..."}
    any error                          -> {"ok": false, "error": "...", "hint": "..."}

``connect`` gives the network namespace of ``pid`` a veth (``eth0`` inside, its host end on the
bridge), an address from an allocator saved atomically in ``state_dir`` (it survives restarts),
a default route via the bridge, lo up; published ports become DNAT rules (nftables through
``nft``; ``iptables`` when nft is missing), and the subnet is masqueraded on the way out.

It is allowed only for a namespace the caller owns: the user namespace that owns the network
namespace (ioctl NS_GET_USERNS, ioctl_ns(2)) must belong to the caller's uid (NS_GET_OWNER_UID),
the namespace must not be the helper's own, and the process must run as the caller's uid or one
of the caller's /etc/subuid ids. Host ports below ``net.ipv4.ip_unprivileged_port_start`` are
refused to non-root callers, as the kernel would refuse them a bind.

Every action is logged on stderr, one line each. A lease ends on ``disconnect`` or when the pid
dies (a pidfd per lease), and its veth, DNAT rules and address go with it.

This is the one module of rootless that imports pyroute2 (links, addresses, routes).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import pwd
import selectors
import shlex
import signal
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from rootless import paths, tools
from rootless.errors import RootlessError
from rootless.network.ports import PortSpec, unprivileged_port_start

DEFAULT_SOCKET = "/run/rootless-helper.sock"
DEFAULT_STATE_DIR = "/var/lib/rootless-helper"
DEFAULT_BIP = "172.31.0.1/16"
DOCKER_BIP = "172.17.0.1/16"
BRIDGE = "rootless0"
TABLE = "rootless_helper"
MAX_REQUEST = 64 * 1024
MAX_PORTS = 256
MAX_LEASES_PER_UID = 1024  # one user must not exhaust the subnet for everyone

# ioctl_ns(2): _IO(0xb7, 0x1) and _IO(0xb7, 0x4)
NS_GET_USERNS = 0xB701
NS_GET_OWNER_UID = 0xB704


class Refused(RootlessError):
    """A request the helper will not do (validation, ownership, conflicts)."""


@dataclass
class Lease:
    address: str
    uid: int
    pid: int
    start_time: Optional[int]
    veth: str
    ports: List[PortSpec] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {"address": self.address, "uid": self.uid, "pid": self.pid, "start_time": self.start_time,
                "veth": self.veth, "ports": [p.to_dict() for p in self.ports]}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Lease:
        return cls(str(ipaddress.IPv4Address(d["address"])), int(d["uid"]), int(d["pid"]),
                   None if d.get("start_time") is None else int(d["start_time"]), _check_ifname(str(d["veth"])),
                   [PortSpec.from_dict(p) for p in d.get("ports", [])])


def _check_ifname(name: str) -> str:
    if not (name.startswith("rlv") and len(name) <= 15 and name.isalnum()):
        raise ValueError(f"bad interface name {name!r}")
    return name


def log(msg: str) -> None:
    sys.stderr.write(f"rootless-helper: {msg}\n")
    sys.stderr.flush()


# --- request validation (pure: unit-tested) ------------------------------------------------------


def validate_request(req: Any) -> Dict[str, Any]:
    """Check every field; return the normalised request or raise Refused."""
    if not isinstance(req, dict):
        raise Refused("request: expected a JSON object")
    op = req.get("op")
    allowed = {"ping": {"op"}, "connect": {"op", "pid", "ports"}, "disconnect": {"op", "pid"}}
    if op not in allowed:
        raise Refused(f"request: unknown op {op!r}", "ops are connect, disconnect, ping")
    extra = set(req) - allowed[op]
    if extra:
        raise Refused(f"request `{op}`: unknown field `{sorted(extra)[0]}`")
    out: Dict[str, Any] = {"op": op}
    if op in ("connect", "disconnect"):
        pid = req.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or not 1 < pid < 1 << 22:
            raise Refused(f"request `{op}`: pid must be an integer above 1")
        out["pid"] = pid
    if op == "connect":
        raw = req.get("ports", [])
        if not isinstance(raw, list) or len(raw) > MAX_PORTS:
            raise Refused(f"request `connect`: ports must be a list of at most {MAX_PORTS}")
        plist = []
        for p in raw:
            if not isinstance(p, dict) or set(p) - {"container_port", "host_port", "host_ip", "proto"}:
                raise Refused("request `connect`: each port is {container_port, host_port, host_ip, proto}")
            for k in ("container_port", "host_port"):
                if k in p and (isinstance(p[k], bool) or not isinstance(p[k], int)):
                    raise Refused(f"request `connect`: {k} must be an integer")
            if not isinstance(p.get("host_ip", ""), str) or not isinstance(p.get("proto", "tcp"), str):
                raise Refused("request `connect`: host_ip and proto must be strings")
            try:
                spec = PortSpec.from_dict(p)
            except (RootlessError, KeyError, ValueError) as e:
                raise Refused(f"request `connect`: port {p}: {e}")
            if spec.host_ip:
                ip = ipaddress.ip_address(spec.host_ip)
                if ip.version != 4 or ip.is_loopback or ip.is_multicast:
                    raise Refused(f"publish port `{spec}`: the helper publishes on IPv4 non-loopback addresses only",
                                  "loopback ports are served by rootless's builtin proxy")
            plist.append(spec)
        seen = set()
        for spec in plist:
            key = (spec.host_port, spec.proto)
            if spec.host_port and key in seen:
                raise Refused(f"publish port `{spec}`: host port given twice")
            seen.add(key)
        out["ports"] = plist
    return out


# --- ownership checks ----------------------------------------------------------------------------


def ns_owner_uid(ns_fd: int) -> int:
    """The uid owning the user namespace that owns namespace ``ns_fd`` (ioctl_ns(2))."""
    userns_fd = fcntl.ioctl(ns_fd, NS_GET_USERNS)
    try:
        buf = bytearray(4)
        fcntl.ioctl(userns_fd, NS_GET_OWNER_UID, buf, True)
        return struct.unpack("I", buf)[0]
    finally:
        os.close(userns_fd)


def process_uid(pid: int, proc: str = "/proc") -> int:
    with open(f"{proc}/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise OSError(errno.ESRCH, "no Uid line")


def uid_belongs_to(uid: int, caller: int, subuid_path: str = "/etc/subuid") -> bool:
    if uid == caller:
        return True
    from rootless import idmap

    try:
        name = pwd.getpwuid(caller).pw_name
    except KeyError:
        name = str(caller)
    return any(r.start <= uid < r.start + r.count for r in idmap.read_ranges(name, caller, subuid_path))


def open_owned_netns(pid: int, caller: int, proc: str = "/proc", subuid_path: str = "/etc/subuid") -> int:
    """Open /proc/PID/ns/net after checking that ``caller`` owns it; the fd pins the namespace."""
    try:
        fd = os.open(f"{proc}/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise Refused(f"open the network namespace of pid {pid}: {e.strerror}", "pass the pid of a running container")
    try:
        st, own = os.fstat(fd), os.stat(f"{proc}/self/ns/net")
        if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
            raise Refused(f"connect pid {pid}: it is in the helper's own network namespace",
                          "only a container's own network namespace can be connected")
        try:
            owner = ns_owner_uid(fd)
        except OSError as e:
            raise Refused(f"find the owner of the network namespace of pid {pid}: {e.strerror}")
        if owner != caller:
            raise Refused(f"connect pid {pid}: its network namespace belongs to uid {owner}, not to uid {caller}",
                          "a user can connect only the namespaces of its own containers")
        try:
            puid = process_uid(pid, proc)
        except OSError as e:
            raise Refused(f"read the status of pid {pid}: {e.strerror}")
        if not uid_belongs_to(puid, caller, subuid_path):
            raise Refused(f"connect pid {pid}: it runs as uid {puid}, neither uid {caller} nor one of its subuids",
                          "a user can connect only the namespaces of its own containers")
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- firewall: nftables, iptables as the fallback ------------------------------------------------


class Firewall:
    """NAT rules. ``kind``: "nftables", "iptables" or "auto" (nft when installed)."""

    def __init__(self, subnet: ipaddress.IPv4Network, bridge: str, kind: str = "auto"):
        self.subnet, self.bridge = subnet, bridge
        if kind == "auto":
            kind = "nftables" if tools.which("nft") is not None else "iptables"
        if kind not in ("nftables", "iptables"):
            raise RootlessError(f"use firewall `{kind}`: unknown", "use nftables, iptables or auto")
        tools.require("nft" if kind == "nftables" else "iptables")
        self.nft = kind == "nftables"
        self.kind = kind

    def reset(self) -> None:
        """(Re)create our table/chains from scratch, with the masquerade rule."""
        if self.nft:
            tools.run(["nft", "delete", "table", "ip", TABLE], check=False)
            ruleset = (
                f"table ip {TABLE} {{\n"
                "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
                "  chain output { type nat hook output priority -100; policy accept; }\n"
                "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
                f"    ip saddr {self.subnet} oifname != \"{self.bridge}\" masquerade comment \"rootless:masquerade\"\n"
                "  }\n}\n"
            )
            tools.run(["nft", "-f", "-"], input=ruleset.encode(), what="load the nftables rules")
        else:
            for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT", "ROOTLESS-POST"):
                tools.run(["iptables", "-t", "nat", "-N", chain], check=False)
                tools.run(["iptables", "-t", "nat", "-F", chain])
            for hook, chain in (("PREROUTING", "ROOTLESS-PRE"), ("OUTPUT", "ROOTLESS-OUT"), ("POSTROUTING", "ROOTLESS-POST")):
                if tools.run(["iptables", "-t", "nat", "-C", hook, "-j", chain], check=False).returncode != 0:
                    tools.run(["iptables", "-t", "nat", "-A", hook, "-j", chain])
            tools.run(["iptables", "-t", "nat", "-A", "ROOTLESS-POST", "-s", str(self.subnet), "!", "-o", self.bridge,
                       "-j", "MASQUERADE"])

    def add_ports(self, address: str, ports: List[PortSpec]) -> None:
        tag = f"rootless:{address}"
        for p in ports:
            if self.nft:
                daddr = f"ip daddr {p.host_ip} " if p.host_ip else ""
                rule = (f"fib daddr type local {daddr}{p.proto} dport {p.host_port} "
                        f"dnat to {address}:{p.container_port} comment \"{tag}\"")
                for chain in ("prerouting", "output"):
                    tools.run(["nft", f"add rule ip {TABLE} {chain} {rule}"], what="add a DNAT rule")
            else:
                d = ["-d", p.host_ip] if p.host_ip else []
                for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT"):
                    tools.run(["iptables", "-t", "nat", "-A", chain, "-m", "addrtype", "--dst-type", "LOCAL"] + d
                              + ["-p", p.proto, "--dport", str(p.host_port), "-m", "comment", "--comment", tag,
                                 "-j", "DNAT", "--to-destination", f"{address}:{p.container_port}"])

    def remove(self, address: str) -> int:
        """Delete every rule tagged with ``address``; returns how many."""
        tag = f"rootless:{address}"
        n = 0
        if self.nft:
            res = tools.run(["nft", "-j", "-a", "list", "table", "ip", TABLE], check=False)
            if res.returncode != 0:
                return 0
            for item in json.loads(res.stdout or b"{}").get("nftables", []):
                rule = item.get("rule")
                if rule and rule.get("comment") == tag:
                    tools.run(["nft", "delete", "rule", "ip", TABLE, rule["chain"], "handle", str(rule["handle"])])
                    n += 1
        else:
            for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT"):
                res = tools.run(["iptables", "-t", "nat", "-S", chain], check=False)
                for line in res.stdout.decode().splitlines():
                    words = shlex.split(line)  # -S quotes the comment: --comment "rootless:IP"
                    if words[:1] == ["-A"] and tag in words:
                        tools.run(["iptables", "-t", "nat", "-D"] + words[1:])
                        n += 1
        return n


# --- the helper ----------------------------------------------------------------------------------


class Helper:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, bip: str = DEFAULT_BIP, state_dir: str = DEFAULT_STATE_DIR,
                 bridge: str = BRIDGE, proc: str = "/proc", subuid_path: str = "/etc/subuid", firewall: str = "auto"):
        try:
            self.iface = ipaddress.IPv4Interface(bip)
        except ValueError:
            raise RootlessError(f"use bip `{bip}`: not an IPv4 address with a prefix", "e.g. --bip 172.31.0.1/16")
        if self.iface.network.prefixlen > 30 or self.iface.ip in (self.iface.network.network_address,
                                                                   self.iface.network.broadcast_address):
            raise RootlessError(f"use bip `{bip}`: not a usable gateway address of a /30 or larger network",
                                "e.g. --bip 172.31.0.1/16")
        self.socket_path, self.state_dir, self.bridge = socket_path, state_dir, bridge
        self.proc, self.subuid_path = proc, subuid_path
        self.leases: Dict[str, Lease] = {}
        self.pidfds: Dict[str, int] = {}
        self.sel = selectors.DefaultSelector()
        self.fw = Firewall(self.iface.network, bridge, firewall)
        self.running = True

    @property
    def lease_file(self) -> str:
        return os.path.join(self.state_dir, "leases.json")

    # --- startup --------------------------------------------------------------------------------

    def prepare(self) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self._check_overlap()
        self._ensure_bridge()
        with open(f"{self.proc}/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
        log("sysctl net.ipv4.ip_forward=1")
        self.fw.reset()
        log(f"firewall: {self.fw.kind} table `{TABLE}` reset, masquerade {self.iface.network}")
        self._load_leases()

    def _check_overlap(self) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            for a in ipr.get_addr(family=socket.AF_INET):
                label = a.get_attr("IFA_LABEL")
                if label == self.bridge:
                    continue
                net = ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}").network
                if net.overlaps(self.iface.network):
                    raise RootlessError(
                        f"use bip `{self.iface}`: it overlaps {net} of interface `{label}`",
                        "choose a free range with --bip or `bip` in daemon.toml, e.g. 172.31.0.1/16",
                    )

    def _ensure_bridge(self) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=self.bridge)
            if not idx:
                ipr.link("add", ifname=self.bridge, kind="bridge")
                idx = ipr.link_lookup(ifname=self.bridge)
                log(f"create bridge {self.bridge}")
            index = idx[0]
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
            want = (str(self.iface.ip), self.iface.network.prefixlen)
            for addr, plen in have - {want}:
                ipr.addr("del", index=index, address=addr, prefixlen=plen)
                log(f"bridge {self.bridge}: remove stale address {addr}/{plen}")
            if want not in have:
                ipr.addr("add", index=index, address=want[0], prefixlen=want[1])
                log(f"bridge {self.bridge}: address {self.iface}")
            ipr.link("set", index=index, state="up")

    def _load_leases(self) -> None:
        from rootless.runtime import proc_start_time

        try:
            with open(self.lease_file) as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            log(f"read {self.lease_file}: {e}; starting with no leases")
            data = {}
        for d in data.get("leases", []):
            try:
                lease = Lease.from_dict(d)
            except (KeyError, ValueError, TypeError, RootlessError) as e:
                log(f"drop a bad lease record: {e}")
                continue
            if ipaddress.IPv4Address(lease.address) not in self.iface.network:
                log(f"lease {lease.address}: outside {self.iface.network}; dropped")
                self._delete_veth(lease.veth)
                continue
            st = proc_start_time(lease.pid, self.proc)
            if st is None or (lease.start_time is not None and st != lease.start_time):
                log(f"lease {lease.address}: pid {lease.pid} (uid {lease.uid}) is gone; cleaning up")
                self._delete_veth(lease.veth)
                continue
            self.leases[lease.address] = lease
            self.fw.add_ports(lease.address, lease.ports)
            self._watch(lease)
            log(f"lease {lease.address}: pid {lease.pid} (uid {lease.uid}) kept after restart")
        self._save()

    def _save(self) -> None:
        body = {"bip": str(self.iface), "leases": [lease.to_dict() for lease in self.leases.values()]}
        paths.atomic_write(self.lease_file, json.dumps(body, indent=1).encode(), mode=0o600)

    def _watch(self, lease: Lease) -> None:
        try:
            fd = os.pidfd_open(lease.pid)
        except OSError:
            return
        self.pidfds[lease.address] = fd
        self.sel.register(fd, selectors.EVENT_READ, ("pid", lease.address))

    # --- serving --------------------------------------------------------------------------------

    def serve(self) -> None:
        self.prepare()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.socket_path)
        os.chmod(self.socket_path, 0o666)  # any user may ask; SO_PEERCRED says who asks
        srv.listen(64)
        srv.setblocking(False)
        self.sel.register(srv, selectors.EVENT_READ, ("listen", None))
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        log(f"listening on {self.socket_path} (bridge {self.bridge} {self.iface}, state {self.state_dir})")
        try:
            while self.running:
                for key, _ in self.sel.select(timeout=1.0):
                    kind, arg = key.data
                    if kind == "listen":
                        self._accept(srv)
                    else:
                        self._pid_exited(arg)
        finally:
            self.sel.unregister(srv)
            srv.close()
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass
            log("stopped (leases kept; containers keep their network)")

    def stop(self) -> None:
        self.running = False

    def _accept(self, srv: socket.socket) -> None:
        try:
            conn, _ = srv.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.settimeout(5.0)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            peer_pid, uid, _gid = struct.unpack("3i", creds)
            try:
                raw = b""
                while not raw.endswith(b"\n") and len(raw) <= MAX_REQUEST:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
                if len(raw) > MAX_REQUEST:
                    raise Refused("request: too large")
                try:
                    req = json.loads(raw)
                except ValueError:
                    raise Refused("request: not JSON")
                reply = self.handle(uid, validate_request(req))
            except RootlessError as e:
                log(f"uid={uid} peer={peer_pid}: refused: {e.message}")
                reply = {"ok": False, "error": e.message, "hint": e.hint or ""}
            except Exception as e:  # noqa: BLE001 - one bad request must not stop the helper
                log(f"uid={uid} peer={peer_pid}: internal error: {type(e).__name__}: {e}")
                reply = {"ok": False, "error": f"internal error: {type(e).__name__}: {e}",
                         "hint": "see the helper's log"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def handle(self, uid: int, req: Dict[str, Any]) -> Dict[str, Any]:
        op = req["op"]
        if op == "ping":
            return {"ok": True, "bridge": self.bridge, "subnet": str(self.iface.network), "firewall": self.fw.kind}
        if op == "connect":
            return self._connect(uid, req["pid"], req["ports"])
        return self._disconnect(uid, req["pid"])

    # --- connect / disconnect -------------------------------------------------------------------

    def _allocate(self) -> str:
        gw = self.iface.ip
        for ip in self.iface.network.hosts():
            if ip != gw and str(ip) not in self.leases:
                return str(ip)
        raise Refused(f"allocate an address in {self.iface.network}: all are taken", "disconnect unused containers")

    def _choose_ports(self, uid: int, ports: List[PortSpec]) -> List[PortSpec]:
        used = {(p.host_port, p.proto) for lease in self.leases.values() for p in lease.ports}
        start = unprivileged_port_start(self.proc)
        out = []
        for p in ports:
            if p.host_port and p.host_port < start and uid != 0:
                raise Refused(
                    f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: permission denied: ports below {start} are privileged",
                    f"publish on a host port >= {start}, or `sysctl net.ipv4.ip_unprivileged_port_start={p.host_port}`",
                )
            if p.host_port and (p.host_port, p.proto) in used:
                raise Refused(f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: already published by another container",
                              "choose another host port")
            # A free port in the helper's namespace: bind it (0 = the kernel picks one).
            kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((p.bind_ip, p.host_port))
                except OSError as e:
                    raise Refused(f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: {e.strerror}",
                                  "another program listens on it; choose another host port")
                port = s.getsockname()[1]
            out.append(PortSpec(p.container_port, port, p.host_ip, p.proto))
            used.add((port, p.proto))
        return out

    def _connect(self, uid: int, pid: int, ports: List[PortSpec]) -> Dict[str, Any]:
        from rootless.runtime import proc_start_time

        for lease in self.leases.values():
            if lease.pid == pid:
                raise Refused(f"connect pid {pid}: it already has {lease.address}", "disconnect it first")
        if uid != 0 and sum(1 for lease in self.leases.values() if lease.uid == uid) >= MAX_LEASES_PER_UID:
            raise Refused(f"connect pid {pid}: uid {uid} already has {MAX_LEASES_PER_UID} addresses",
                          "stop some containers first")
        netns_fd = open_owned_netns(pid, uid, self.proc, self.subuid_path)
        try:
            ports = self._choose_ports(uid, ports)
            address = self._allocate()
            veth = "rlv" + format(int(ipaddress.IPv4Address(address)), "08x")
            lease = Lease(address, uid, pid, proc_start_time(pid, self.proc), veth, ports)
            try:
                self._plumb(lease, netns_fd)
                self.fw.add_ports(address, ports)
            except BaseException:
                self._delete_veth(veth)
                self.fw.remove(address)
                raise
        finally:
            os.close(netns_fd)
        self.leases[address] = lease
        self._save()
        self._watch(lease)
        log(f"uid={uid} pid={pid}: connect: veth {veth} -> eth0, address {address}/{self.iface.network.prefixlen}"
            + (f", ports {', '.join(str(p) for p in ports)}" if ports else ""))
        return {"ok": True, "address": address, "prefixlen": self.iface.network.prefixlen, "gateway": str(self.iface.ip),
                "ifname": "eth0", "ports": [p.to_dict() for p in ports]}

    def _plumb(self, lease: Lease, netns_fd: int) -> None:
        from pyroute2 import IPRoute

        peer = "rlp" + lease.veth[3:]
        with IPRoute() as ipr:
            self._delete_veth(lease.veth)  # a leftover of a crash
            ipr.link("add", ifname=lease.veth, kind="veth", peer=peer)
            host_idx = ipr.link_lookup(ifname=lease.veth)[0]
            peer_idx = ipr.link_lookup(ifname=peer)[0]
            br = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.link("set", index=host_idx, master=br, state="up")
            ipr.link("set", index=peer_idx, net_ns_fd=netns_fd)
        # Inside the container's namespace: a child process joins it (root needs no userns change).
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            msg = b"ok"
            try:
                _configure_inside(netns_fd, peer, lease.address, self.iface.network.prefixlen, str(self.iface.ip))
            except BaseException as e:  # noqa: BLE001
                msg = f"{type(e).__name__}: {e}".encode()
            os.write(w, msg)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            msg = f.read()
        os.waitpid(child, 0)
        if msg != b"ok":
            raise RootlessError(f"configure eth0 in the namespace of pid {lease.pid}: {msg.decode(errors='replace')}")

    def _delete_veth(self, veth: str) -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=veth)
            if idx:
                ipr.link("del", index=idx[0])
                log(f"delete veth {veth}")

    def _release(self, address: str, why: str) -> None:
        lease = self.leases.pop(address, None)
        if lease is None:
            return
        fd = self.pidfds.pop(address, None)
        if fd is not None:
            self.sel.unregister(fd)
            os.close(fd)
        self._delete_veth(lease.veth)
        n = self.fw.remove(address)
        self._save()
        log(f"uid={lease.uid} pid={lease.pid}: release {address} ({why}); {n} DNAT rules removed")

    def _disconnect(self, uid: int, pid: int) -> Dict[str, Any]:
        for address, lease in list(self.leases.items()):
            if lease.pid == pid:
                if lease.uid != uid and uid != 0:
                    raise Refused(f"disconnect pid {pid}: it is not your container", "a user can disconnect only its own")
                self._release(address, "disconnect")
                return {"ok": True}
        raise Refused(f"disconnect pid {pid}: no lease for it", "it was never connected, or it is gone already")

    def _pid_exited(self, address: str) -> None:
        self._release(address, "the container exited")


def _configure_inside(netns_fd: int, peer: str, address: str, prefixlen: int, gateway: str) -> None:
    from pyroute2 import IPRoute

    from rootless.linux import syscalls

    syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")
        if lo:
            ipr.link("set", index=lo[0], state="up")
        idx = ipr.link_lookup(ifname=peer)[0]
        ipr.link("set", index=idx, ifname="eth0")
        ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def main(socket_path: str, bip: str, state_dir: str, firewall: str = "auto") -> None:
    """`rootless helper`: serve in the foreground until SIGTERM/SIGINT."""
    if os.geteuid() != 0:
        raise RootlessError("run the network helper: it must run as root",
                            "start it as root (`sudo rootless helper`) or with contrib/rootless-helper.service")
    h = Helper(socket_path, bip, state_dir, firewall=firewall)
    try:
        h.serve()
    except OSError as e:
        raise RootlessError(f"run the network helper: {e.strerror or e}", "see the lines above")


def choose_bip(configured: str, explicit: bool) -> str:
    """The configured bip, except that the stock docker0 default becomes ours (172.31.0.1/16)
    unless the user chose it: docker0 holds 172.17.0.0/16 on hosts that also run Docker."""
    if not explicit and configured in ("", DOCKER_BIP):
        return DEFAULT_BIP
    return configured

