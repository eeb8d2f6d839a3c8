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
dies (a pidfd per lease, taken before anything else; a thread id is refused), and its veth, DNAT
rules, held host ports and address go with it.

Security (issue 11): one event loop with non-blocking sockets and a deadline per connection
serves every client, and every event's error is caught and logged (a slow or vanishing client
cannot stall or stop the helper); host ports stay bound while a lease lasts, and a uid has a
quota of them; a lease's rules change in one transaction; the bridge keeps users apart and drops
spoofed sources (``Firewall``); everything is imported at start, and ``main`` refuses code that a
user other than root could change (``unsafe_code``).

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
import stat
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

# Everything the helper runs is imported here, at start (DESIGN.md, security rules): a module
# imported later would be looked up again on sys.path, long after the code was checked.
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from rootless import idmap, paths, tools
from rootless.errors import RootlessError
from rootless.linux import syscalls
from rootless.network.ports import PortSpec, unprivileged_port_start
from rootless.runtime import proc_start_time

DEFAULT_SOCKET = "/run/rootless-helper.sock"
DEFAULT_STATE_DIR = "/var/lib/rootless-helper"
DEFAULT_BIP = "172.31.0.1/16"
DOCKER_BIP = "172.17.0.1/16"
BRIDGE = "rootless0"
TABLE = "rootless_helper"
MAX_REQUEST = 64 * 1024
MAX_PORTS = 256
MAX_LEASES_PER_UID = 1024  # one user must not exhaust the subnet for everyone
DEFAULT_PORT_QUOTA = 64  # host ports one uid may hold (`rootless helper --port-quota`)
REQUEST_TIMEOUT = 5.0  # seconds a client has to send its request (and to take its answer)
MAX_CLIENTS = 256  # open connections at once
MAX_CLIENTS_PER_UID = 32
TOOL_TIMEOUT = 10.0  # seconds for one nft/iptables/ip call
NUD_PERMANENT = 0x80  # rtnetlink(7): a neighbour entry no ARP changes
NET_ADDR_SET = 3  # linux/netdevice.h: an address set by hand, not taken from a port

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
    mac: str = ""  # of the container's eth0, as created: the only source its veth may use

    def to_dict(self) -> Dict[str, Any]:
        return {"address": self.address, "uid": self.uid, "pid": self.pid, "start_time": self.start_time,
                "veth": self.veth, "ports": [p.to_dict() for p in self.ports], "mac": self.mac}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> Lease:
        return cls(str(ipaddress.IPv4Address(d["address"])), int(d["uid"]), int(d["pid"]),
                   None if d.get("start_time") is None else int(d["start_time"]), _check_ifname(str(d["veth"])),
                   [PortSpec.from_dict(p) for p in d.get("ports", [])], _check_mac(d["mac"]) if d.get("mac") else "")


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


def _nft_str(s: str) -> str:
    # interface names and addresses only (checked by their parsers); quoted for nft
    return '"' + s + '"'


class Firewall:
    """NAT rules and the bridge's isolation. ``kind``: "nftables", "iptables" or "auto".

    Every change of one lease is one transaction (``nft -f -`` or ``iptables-restore --noflush``),
    so that releasing a lease with N published ports costs two tool calls, not N.

    Isolation between users: where nft is installed, a ``bridge`` table drops frames from a
    container's veth whose Ethernet or ARP/IP source is not the lease's own (anti-spoofing), and
    forwards frames from a veth only to veths of the same uid (a named set per uid). Without nft
    (no bridge filter), every veth is an isolated bridge port: containers reach the host and the
    outside, not each other. Either way the bridge keeps a permanent neighbour entry per lease.
    """

    def __init__(self, subnet: ipaddress.IPv4Network, bridge: str, kind: str = "auto"):
        self.subnet, self.bridge = subnet, bridge
        if kind == "auto":
            kind = "nftables" if tools.which("nft") is not None else "iptables"
        if kind not in ("nftables", "iptables"):
            raise RootlessError(f"use firewall `{kind}`: unknown", "use nftables, iptables or auto")
        tools.require("nft" if kind == "nftables" else "iptables")
        self.nft = kind == "nftables"
        self.kind = kind
        # the bridge filter needs nft (the nftables `bridge` family), whatever makes the NAT rules
        self.bridge_filter = tools.which("nft") is not None
        self.calls = 0  # tool calls made: what the batching saves (tests and the log read it)

    def _run(self, argv: List[str], **kw: Any) -> tools.Result:
        self.calls += 1
        kw.setdefault("timeout", TOOL_TIMEOUT)  # every request has a deadline, its tools too
        return tools.run(argv, **kw)

    def reset(self) -> None:
        """(Re)create our tables/chains from scratch, with the masquerade rule."""
        bridge_table = (
            f"table bridge {TABLE}\ndelete table bridge {TABLE}\n"
            f"table bridge {TABLE} {{\n"
            "  chain prerouting { type filter hook prerouting priority -200; policy accept; }\n"
            "  chain forward { type filter hook forward priority 0; policy accept; }\n"
            "}\n"
        ) if self.bridge_filter else ""
        if self.nft:
            ruleset = (
                f"table ip {TABLE}\ndelete table ip {TABLE}\n"
                f"table ip {TABLE} {{\n"
                "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
                "  chain output { type nat hook output priority -100; policy accept; }\n"
                "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
                f"    ip saddr {self.subnet} oifname != \"{self.bridge}\" masquerade comment \"rootless:masquerade\"\n"
                "  }\n}\n"
            ) + bridge_table
            self._run(["nft", "-f", "-"], input=ruleset.encode(), what="load the nftables rules")
            return
        for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT", "ROOTLESS-POST"):
            self._run(["iptables", "-t", "nat", "-N", chain], check=False)
            self._run(["iptables", "-t", "nat", "-F", chain])
        for hook, chain in (("PREROUTING", "ROOTLESS-PRE"), ("OUTPUT", "ROOTLESS-OUT"), ("POSTROUTING", "ROOTLESS-POST")):
            if self._run(["iptables", "-t", "nat", "-C", hook, "-j", chain], check=False).returncode != 0:
                self._run(["iptables", "-t", "nat", "-A", hook, "-j", chain])
        self._run(["iptables", "-t", "nat", "-A", "ROOTLESS-POST", "-s", str(self.subnet), "!", "-o", self.bridge,
                   "-j", "MASQUERADE"])
        if bridge_table:
            self._run(["nft", "-f", "-"], input=bridge_table.encode(), what="load the nftables bridge rules")

    def _bridge_rules(self, lease: Lease) -> List[str]:
        """Anti-spoofing on the lease's veth, and forwarding only to veths of the same uid."""
        tag = f"rootless:{lease.address}"
        veth, users = _nft_str(_check_ifname(lease.veth)), f"u{int(lease.uid)}"
        pre = f"add rule bridge {TABLE} prerouting iifname {veth}"
        lines = [f"add set bridge {TABLE} {users} {{ type ifname; }}",
                 f"add element bridge {TABLE} {users} {{ {veth} }}"]
        if lease.mac:
            lines.append(f"{pre} ether saddr != {_check_mac(lease.mac)} drop comment \"{tag}\"")
            lines.append(f"{pre} arp saddr ether != {lease.mac} drop comment \"{tag}\"")
        lines.append(f"{pre} ether type != {{ ip, arp }} drop comment \"{tag}\"")
        lines.append(f"{pre} ip saddr != {lease.address} drop comment \"{tag}\"")
        lines.append(f"{pre} arp saddr ip != {lease.address} drop comment \"{tag}\"")
        lines.append(f"add rule bridge {TABLE} forward iifname {veth} oifname != @{users} drop comment \"{tag}\"")
        return lines

    def add(self, lease: Lease) -> None:
        """The lease's DNAT rules and its bridge rules: one transaction (two with iptables)."""
        address, tag = lease.address, f"rootless:{lease.address}"
        lines = self._bridge_rules(lease) if self.bridge_filter else []
        if self.nft:
            for p in lease.ports:
                daddr = f"ip daddr {p.host_ip} " if p.host_ip else ""
                rule = (f"fib daddr type local {daddr}{p.proto} dport {p.host_port} "
                        f"dnat to {address}:{p.container_port} comment \"{tag}\"")
                for chain in ("prerouting", "output"):
                    lines.append(f"add rule ip {TABLE} {chain} {rule}")
        elif lease.ports:
            rules = []
            for p in lease.ports:
                d = f"-d {p.host_ip} " if p.host_ip else ""
                for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT"):
                    rules.append(f"-A {chain} -m addrtype --dst-type LOCAL {d}-p {p.proto} --dport {p.host_port} "
                                 f"-m comment --comment {tag} -j DNAT --to-destination {address}:{p.container_port}")
            self._restore(rules, f"add the DNAT rules of {address}")
        if lines:
            self._run(["nft", "-f", "-"], input=("\n".join(lines) + "\n").encode(), what=f"add the rules of {address}")

    def _restore(self, rules: List[str], what: str) -> None:
        text = "*nat\n" + "".join(r + "\n" for r in rules) + "COMMIT\n"
        self._run(["iptables-restore", "--noflush"], input=text.encode(), what=what)

    def remove(self, lease: Lease) -> int:
        """Delete every rule tagged with the lease's address (and its veth from its uid's set):
        one listing and one transaction. Returns how many DNAT rules went."""
        tag = f"rootless:{lease.address}"
        n = 0
        lines = []
        if self.nft or self.bridge_filter:
            res = self._run(["nft", "-j", "-a", "list", "ruleset"], check=False)
            items = json.loads(res.stdout or b"{}").get("nftables", []) if res.returncode == 0 else []
            for item in items:
                rule = item.get("rule")
                if rule and rule.get("table") == TABLE and rule.get("comment") == tag \
                        and rule.get("family") in ("ip", "bridge"):
                    lines.append(f"delete rule {rule['family']} {TABLE} {rule['chain']} handle {int(rule['handle'])}")
                    n += rule["family"] == "ip"
                s = item.get("set")
                if s and s.get("family") == "bridge" and s.get("table") == TABLE and s.get("name") == f"u{lease.uid}" \
                        and lease.veth in (s.get("elem") or []):
                    lines.append(f"delete element bridge {TABLE} u{int(lease.uid)} {{ {_nft_str(lease.veth)} }}")
        if not self.nft:
            rules = []
            for chain in ("ROOTLESS-PRE", "ROOTLESS-OUT"):
                res = self._run(["iptables", "-t", "nat", "-S", chain], check=False)
                for line in res.stdout.decode().splitlines():
                    words = shlex.split(line)  # -S quotes the comment: --comment "rootless:IP"
                    if words[:1] == ["-A"] and tag in words:
                        rules.append("-D " + " ".join(shlex.quote(w) for w in words[1:]))
            if rules:
                self._restore(rules, f"remove the DNAT rules of {lease.address}")
            n = len(rules)
        if lines:
            self._run(["nft", "-f", "-"], input=("\n".join(lines) + "\n").encode(), what=f"remove the rules of {lease.address}")
        return n


def _check_mac(mac: str) -> str:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p.lower()) for p in parts):
        raise ValueError(f"bad MAC address {mac!r}")
    return mac.lower()


# --- the helper ----------------------------------------------------------------------------------


class _Client:
    """One connection: its request arrives in pieces, before ``deadline``; then one reply."""

    __slots__ = ("sock", "uid", "peer_pid", "buf", "out", "deadline")

    def __init__(self, sock: socket.socket, uid: int, peer_pid: int, deadline: float):
        self.sock, self.uid, self.peer_pid, self.deadline = sock, uid, peer_pid, deadline
        self.buf = b""
        self.out: Optional[bytes] = None


class Helper:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, bip: str = DEFAULT_BIP, state_dir: str = DEFAULT_STATE_DIR,
                 bridge: str = BRIDGE, proc: str = "/proc", subuid_path: str = "/etc/subuid", firewall: str = "auto",
                 port_quota: int = DEFAULT_PORT_QUOTA, request_timeout: float = REQUEST_TIMEOUT):
        try:
            self.iface = ipaddress.IPv4Interface(bip)
        except ValueError:
            raise RootlessError(f"use bip `{bip}`: not an IPv4 address with a prefix", "e.g. --bip 172.31.0.1/16")
        if self.iface.network.prefixlen > 30 or self.iface.ip in (self.iface.network.network_address,
                                                                   self.iface.network.broadcast_address):
            raise RootlessError(f"use bip `{bip}`: not a usable gateway address of a /30 or larger network",
                                "e.g. --bip 172.31.0.1/16")
        if port_quota < 0:
            raise RootlessError(f"use port quota `{port_quota}`: negative", "e.g. --port-quota 64")
        self.socket_path, self.state_dir, self.bridge = socket_path, state_dir, bridge
        self.proc, self.subuid_path = proc, subuid_path
        self.port_quota, self.request_timeout = port_quota, request_timeout
        self.leases: Dict[str, Lease] = {}
        self.pidfds: Dict[str, int] = {}
        self.held: Dict[str, List[socket.socket]] = {}  # the host ports of each lease, kept bound
        self.clients: Dict[int, _Client] = {}
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
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=self.bridge)
            if not idx:
                ipr.link("add", ifname=self.bridge, kind="bridge")
                idx = ipr.link_lookup(ifname=self.bridge)
                log(f"create bridge {self.bridge}")
            index = idx[0]
            # A fixed address: a bridge otherwise takes the lowest of its ports' addresses, and each
            # change flushes its neighbour table, permanent entries included (neigh_changeaddr).
            if ipr.get_links(index)[0].get_attr("IFLA_ADDR_ASSIGN_TYPE") != NET_ADDR_SET:
                mac = bytearray(os.urandom(6))
                mac[0] = (mac[0] & 0xFE) | 0x02  # unicast, locally administered
                ipr.link("set", index=index, address=":".join(f"{b:02x}" for b in mac))
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
            pidfd = _pidfd(lease.pid)
            st = proc_start_time(lease.pid, self.proc)
            if pidfd is None or st is None or (lease.start_time is not None and st != lease.start_time):
                if pidfd is not None:
                    os.close(pidfd)
                log(f"lease {lease.address}: pid {lease.pid} (uid {lease.uid}) is gone; cleaning up")
                self._delete_veth(lease.veth)
                self._forget_neighbour(lease)
                continue
            self.leases[lease.address] = lease
            self.held[lease.address] = self._hold_ports(lease.ports, strict=False)
            try:
                self.fw.add(lease)
                self._pin_neighbour(lease)
            except (RootlessError, NetlinkError) as e:
                log(f"lease {lease.address}: {e}")
            self._watch(lease, pidfd)
            log(f"lease {lease.address}: pid {lease.pid} (uid {lease.uid}) kept after restart")
        self._save()

    def _save(self) -> None:
        body = {"bip": str(self.iface), "leases": [lease.to_dict() for lease in self.leases.values()]}
        paths.atomic_write(self.lease_file, json.dumps(body, indent=1).encode(), mode=0o600)

    def _watch(self, lease: Lease, pidfd: int) -> None:
        self.pidfds[lease.address] = pidfd
        self.sel.register(pidfd, selectors.EVENT_READ, ("pid", lease.address))

    # --- serving: one thread, non-blocking sockets, a deadline per connection --------------------

    def serve(self) -> None:
        self.prepare()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.socket_path)
        os.chmod(self.socket_path, 0o666)  # any user may ask; SO_PEERCRED says who asks
        srv.listen(128)
        srv.setblocking(False)
        self.sel.register(srv, selectors.EVENT_READ, ("listen", None))
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        log(f"listening on {self.socket_path} (bridge {self.bridge} {self.iface}, state {self.state_dir})")
        try:
            while self.running:
                now = time.monotonic()
                wait = min([1.0] + [max(0.0, c.deadline - now) for c in self.clients.values()])
                for key, events in self.sel.select(timeout=wait):
                    kind, arg = key.data
                    try:
                        if kind == "listen":
                            self._accept(srv)
                        elif kind == "client":
                            self._client_event(arg, events)
                        else:
                            self._pid_exited(arg)
                    except Exception as e:  # noqa: BLE001 - nothing a client does may stop the helper
                        log(f"internal error ({kind}): {type(e).__name__}: {e}")
                        if kind == "client":
                            self._close(arg)
                self._expire(time.monotonic())
        finally:
            for c in list(self.clients.values()):
                self._close(c)
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
        for _ in range(64):
            try:
                conn, _ = srv.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            peer_pid, uid, _gid = struct.unpack("3i", creds)
            c = _Client(conn, uid, peer_pid, time.monotonic() + self.request_timeout)
            mine = sum(1 for o in self.clients.values() if o.uid == uid)
            if len(self.clients) >= MAX_CLIENTS or (uid != 0 and mine >= MAX_CLIENTS_PER_UID):
                log(f"uid={uid} peer={peer_pid}: refused: too many open connections")
                try:
                    conn.send(json.dumps({"ok": False, "error": "request: too many open connections",
                                          "hint": "try again later"}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
                continue
            self.clients[conn.fileno()] = c
            self.sel.register(conn, selectors.EVENT_READ, ("client", c))

    def _client_event(self, c: _Client, events: int) -> None:
        if c.out is None:
            try:
                chunk = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._close(c)
                return
            c.buf += chunk
            if len(c.buf) > MAX_REQUEST:
                self._reply(c, self._error(c, Refused("request: too large")))
            elif chunk == b"" or b"\n" in c.buf:
                self._reply(c, self._answer(c))
            return
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(c)
            return
        c.out = c.out[sent:]
        if not c.out:
            self._close(c)

    def _reply(self, c: _Client, reply: Dict[str, Any]) -> None:
        c.out = json.dumps(reply).encode() + b"\n"
        c.deadline = time.monotonic() + self.request_timeout  # as long again to take the answer
        self.sel.modify(c.sock, selectors.EVENT_WRITE, ("client", c))
        self._client_event(c, selectors.EVENT_WRITE)

    def _expire(self, now: float) -> None:
        for c in [c for c in self.clients.values() if c.deadline <= now]:
            if c.out is None:
                err = self._error(c, Refused(f"request: not received within {self.request_timeout:g} s",
                                             "send the whole request at once"))
                try:
                    c.sock.send(json.dumps(err).encode() + b"\n")
                except OSError:
                    pass
            self._close(c)

    def _close(self, c: _Client) -> None:
        if self.clients.pop(c.sock.fileno(), None) is not None:
            self.sel.unregister(c.sock)
        c.sock.close()

    def _error(self, c: _Client, e: RootlessError) -> Dict[str, Any]:
        log(f"uid={c.uid} peer={c.peer_pid}: refused: {e.message}")
        return {"ok": False, "error": e.message, "hint": e.hint or ""}

    def _answer(self, c: _Client) -> Dict[str, Any]:
        try:
            try:
                req = json.loads(c.buf)
            except ValueError:
                raise Refused("request: not JSON")
            return self.handle(c.uid, validate_request(req))
        except RootlessError as e:
            return self._error(c, e)
        except Exception as e:  # noqa: BLE001 - one bad request must not stop the helper
            log(f"uid={c.uid} peer={c.peer_pid}: internal error: {type(e).__name__}: {e}")
            return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}", "hint": "see the helper's log"}

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
        """Check the ports against the privileged range, the quota and the other leases; the held
        sockets (``_hold_ports``) then find the ports a host service already uses."""
        used = {(p.host_port, p.proto) for lease in self.leases.values() for p in lease.ports}
        start = unprivileged_port_start(self.proc)
        if uid != 0 and ports:
            have = sum(len(lease.ports) for lease in self.leases.values() if lease.uid == uid)
            if have + len(ports) > self.port_quota:
                raise Refused(f"publish ports: uid {uid} has {have} published ports; {len(ports)} more exceed "
                              f"the helper's quota of {self.port_quota}",
                              "stop containers that publish ports, or raise `rootless helper --port-quota`")
        for p in ports:
            if p.host_port and p.host_port < start and uid != 0:
                raise Refused(
                    f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: permission denied: ports below {start} are privileged",
                    f"publish on a host port >= {start}, or `sysctl net.ipv4.ip_unprivileged_port_start={p.host_port}`",
                )
            if p.host_port and (p.host_port, p.proto) in used:
                raise Refused(f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: already published by another container",
                              "choose another host port")
        return ports

    def _hold_ports(self, ports: List[PortSpec], strict: bool = True) -> List[socket.socket]:
        """Bind every host port and keep it bound for the lease's life: a host service already
        there makes the claim fail, and one started later fails to bind (EADDRINUSE) instead of
        losing its traffic to the DNAT rule. Port 0: the kernel picks one (``ports`` is updated)."""
        held: List[socket.socket] = []
        try:
            for i, p in enumerate(ports):
                kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
                s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
                try:
                    s.bind((p.bind_ip, p.host_port))
                except OSError as e:
                    s.close()
                    if not strict:
                        log(f"hold port `{p}`: {e.strerror}")
                        continue
                    raise Refused(f"publish port `{p.bind_ip}:{p.host_port}/{p.proto}`: {e.strerror}",
                                  "another program listens on it; choose another host port")
                held.append(s)
                if not p.host_port:
                    ports[i] = PortSpec(p.container_port, s.getsockname()[1], p.host_ip, p.proto)
        except BaseException:
            for s in held:
                s.close()
            raise
        return held

    def _connect(self, uid: int, pid: int, ports: List[PortSpec]) -> Dict[str, Any]:
        for lease in self.leases.values():
            if lease.pid == pid:
                raise Refused(f"connect pid {pid}: it already has {lease.address}", "disconnect it first")
        if uid != 0 and sum(1 for lease in self.leases.values() if lease.uid == uid) >= MAX_LEASES_PER_UID:
            raise Refused(f"connect pid {pid}: uid {uid} already has {MAX_LEASES_PER_UID} addresses",
                          "stop some containers first")
        ports = self._choose_ports(uid, list(ports))
        # The pidfd first: whatever happens to the process from here on, its exit is seen and the
        # lease released. A thread id is refused (its pidfd would not say when the process ends).
        check_tgid(pid, self.proc)
        pidfd = _pidfd(pid)
        if pidfd is None:
            raise Refused(f"connect pid {pid}: no such process", "pass the pid of a running container")
        held: List[socket.socket] = []
        try:
            netns_fd = open_owned_netns(pid, uid, self.proc, self.subuid_path)
            try:
                start_time = proc_start_time(pid, self.proc)
                if start_time is None:
                    raise Refused(f"connect pid {pid}: it exited", "pass the pid of a running container")
                held = self._hold_ports(ports)
                address = self._allocate()
                veth = "rlv" + format(int(ipaddress.IPv4Address(address)), "08x")
                lease = Lease(address, uid, pid, start_time, veth, ports)
                try:
                    self._plumb(lease, netns_fd)
                    self.fw.add(lease)
                except BaseException:
                    self._undo(lease)
                    raise
            finally:
                os.close(netns_fd)
        except BaseException:
            os.close(pidfd)
            for s in held:
                s.close()
            raise
        self.leases[address] = lease
        self.held[address] = held
        self._save()
        self._watch(lease, pidfd)
        log(f"uid={uid} pid={pid}: connect: veth {veth} -> eth0, address {address}/{self.iface.network.prefixlen}"
            + (f", ports {', '.join(str(p) for p in ports)}" if ports else ""))
        return {"ok": True, "address": address, "prefixlen": self.iface.network.prefixlen, "gateway": str(self.iface.ip),
                "ifname": "eth0", "ports": [p.to_dict() for p in ports]}

    def _plumb(self, lease: Lease, netns_fd: int) -> None:
        peer = "rlp" + lease.veth[3:]
        with IPRoute() as ipr:
            self._delete_veth(lease.veth)  # a leftover of a crash
            ipr.link("add", ifname=lease.veth, kind="veth", peer=peer)
            host_idx = ipr.link_lookup(ifname=lease.veth)[0]
            peer_idx = ipr.link_lookup(ifname=peer)[0]
            lease.mac = _check_mac(ipr.get_links(peer_idx)[0].get_attr("IFLA_ADDRESS"))
            br = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.link("set", index=host_idx, master=br)
            if not self.fw.bridge_filter:  # no bridge filter: containers reach the host, not each other
                tools.run(["ip", "link", "set", "dev", lease.veth, "type", "bridge_slave", "isolated", "on"],
                          what=f"isolate the bridge port {lease.veth}", timeout=TOOL_TIMEOUT)
            ipr.link("set", index=host_idx, state="up")
            ipr.link("set", index=peer_idx, net_ns_fd=netns_fd)
        self._pin_neighbour(lease)
        # Inside the container's namespace: a thread joins it (setns(CLONE_NEWNET) changes the
        # calling thread only), so that no fork of this process is needed.
        err: List[str] = []

        def inside() -> None:
            try:
                _configure_inside(netns_fd, peer, lease.address, self.iface.network.prefixlen, str(self.iface.ip))
            except BaseException as e:  # noqa: BLE001
                err.append(f"{type(e).__name__}: {e}")

        t = threading.Thread(target=inside, name="rootless-helper-netns", daemon=True)
        t.start()
        t.join(REQUEST_TIMEOUT)
        if t.is_alive():
            raise RootlessError(f"configure eth0 in the namespace of pid {lease.pid}: no answer after {REQUEST_TIMEOUT:g} s")
        if err:
            raise RootlessError(f"configure eth0 in the namespace of pid {lease.pid}: {err[0]}")

    def _delete_veth(self, veth: str) -> None:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=veth)
            if idx:
                try:
                    ipr.link("del", index=idx[0])
                except NetlinkError as e:
                    if e.code != errno.ENODEV:  # gone meanwhile, with its namespace: what we wanted
                        raise
                log(f"delete veth {veth}")

    def _pin_neighbour(self, lease: Lease) -> None:
        """The host's neighbour entry of the lease is fixed: no ARP from any container moves it."""
        if not lease.mac:
            return
        with IPRoute() as ipr:
            br = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.neigh("replace", dst=lease.address, lladdr=lease.mac, ifindex=br, state=NUD_PERMANENT)

    def _forget_neighbour(self, lease: Lease) -> None:
        if not lease.mac:
            return
        with IPRoute() as ipr:
            br = ipr.link_lookup(ifname=self.bridge)
            if br:
                try:
                    ipr.neigh("del", dst=lease.address, lladdr=lease.mac, ifindex=br[0])
                except NetlinkError as e:
                    if e.code not in (errno.ENOENT, errno.ENODEV):
                        raise

    def _undo(self, lease: Lease) -> int:
        """Remove what a lease set up; each step is tried, the first error raised at the end."""
        first: Optional[BaseException] = None
        n = 0
        for step in (lambda: self._delete_veth(lease.veth), lambda: self._forget_neighbour(lease),
                     lambda: self.fw.remove(lease)):
            try:
                r = step()
                n = r if isinstance(r, int) else n
            except Exception as e:  # noqa: BLE001
                log(f"release {lease.address}: {type(e).__name__}: {e}")
                first = first or e
        return n

    def _release(self, address: str, why: str) -> None:
        lease = self.leases.pop(address, None)
        if lease is None:
            return
        fd = self.pidfds.pop(address, None)
        if fd is not None:
            self.sel.unregister(fd)
            os.close(fd)
        for s in self.held.pop(address, []):
            s.close()
        calls = self.fw.calls
        n = self._undo(lease)
        self._save()
        log(f"uid={lease.uid} pid={lease.pid}: release {address} ({why}); {n} DNAT rules removed "
            f"in {self.fw.calls - calls} {self.fw.kind} calls")

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


def _pidfd(pid: int) -> Optional[int]:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def check_tgid(pid: int, proc: str = "/proc") -> None:
    """Refuse a thread id: /proc/TID/ns/net opens, but no pidfd says when its process ends, and
    the lease would outlive it (pidfd_open(2) wants a thread-group leader)."""
    try:
        with open(f"{proc}/{pid}/status") as f:
            tgid = next((int(line.split()[1]) for line in f if line.startswith("Tgid:")), None)
    except (OSError, ValueError):
        raise Refused(f"connect pid {pid}: no such process", "pass the pid of a running container")
    if tgid != pid:
        raise Refused(f"connect pid {pid}: it is a thread of process {tgid}, not a process",
                      "pass the pid of the container's init process")


def _configure_inside(netns_fd: int, peer: str, address: str, prefixlen: int, gateway: str) -> None:
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


def unsafe_code(path: str, tree: bool = False) -> Optional[str]:
    """Why a user other than root could change the code at ``path`` (None: it cannot).

    ``path`` and every folder above it must be root's and not writable by group or others (a
    sticky folder such as /tmp is fine above a root-owned entry: others cannot rename it); with
    ``tree``, every file and folder below ``path`` too.
    """
    real = os.path.realpath(path)
    chain, p = [real], real
    while p != os.path.dirname(p):
        p = os.path.dirname(p)
        chain.append(p)
    below = [os.path.join(d, n) for d, dirs, files in os.walk(real) for n in dirs + files] if tree else []
    for i, p in enumerate(below + chain):
        try:
            st = os.lstat(p)
        except OSError as e:
            return f"`{p}`: {e.strerror}"
        if st.st_uid != 0:
            return f"`{p}` belongs to uid {st.st_uid}"
        above = i >= len(below) + 1  # a folder above the code: its sticky bit protects what it holds
        if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode) and not (above and st.st_mode & stat.S_ISVTX):
            return f"`{p}` is writable by {'others' if st.st_mode & 0o002 else 'group'}"
    return None


def code_origins() -> List[tuple]:
    """(path, tree) of the code this process runs: the .pyz (a file), the folders the packages
    rootless and pyroute2 were imported from, and every folder on sys.path (PYTHONPATH, the
    working directory of `python -m`, a user's site-packages under a HOME that sudo -E kept):
    a module imported later would be looked up there."""
    import pyroute2

    import rootless

    out = [(p, False) for p in sys.path if p and os.path.isdir(p)]
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        archive = os.path.dirname(os.path.abspath(main_file))
        if os.path.isfile(archive):  # a zipapp: .../rootless.pyz/__main__.py
            out.append((archive, False))
    for mod in (rootless, pyroute2):
        d = os.path.dirname(os.path.abspath(mod.__file__ or ""))
        if os.path.isdir(d):
            out.append((d, True))
        else:  # imported from inside the archive
            while d and not os.path.exists(d) and d != os.path.dirname(d):
                d = os.path.dirname(d)
            out.append((d, False))
    return out


def main(socket_path: str, bip: str, state_dir: str, firewall: str = "auto",
         port_quota: int = DEFAULT_PORT_QUOTA) -> None:
    """`rootless helper`: serve in the foreground until SIGTERM/SIGINT."""
    if os.geteuid() != 0:
        raise RootlessError("run the network helper: it must run as root",
                            "start it as root (`sudo rootless helper`) or with contrib/rootless-helper.service")
    for path, tree in code_origins():
        why = unsafe_code(path, tree)
        if why:
            raise RootlessError(f"run the network helper from `{path}`: {why}: a user could change the code root runs",
                                "install rootless where only root can write, e.g. "
                                "`install -o root -g root -m 755 rootless.pyz /usr/local/bin/rootless`")
    h = Helper(socket_path, bip, state_dir, firewall=firewall, port_quota=port_quota)
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

