"""User-defined networks between rootless containers (``rootless network create NAME``).

Design (Podman's rootless-netns, adapted to an engine that gives each container its own user
namespace):

- One shared **rootless network namespace** per user: a long-lived *holder* process
  (``rootless-netns``) in a user namespace of its own, mapped exactly as containers are (the same
  newuidmap ranges, or the one-uid map), and a network namespace of its own. Its pid and start
  time are recorded in ``exec_root/usernet/holder.json``; one slirp4netns is attached to it once,
  for the way out (tap0, 10.0.2.100, NAT by slirp; ``--disable-host-loopback``).
- Each user network is a Linux bridge in that namespace (``rl-<id>``) holding the gateway
  address; nftables rules in the same namespace masquerade its subnet out through tap0 (none for
  ``--internal``), and drop forwarding between different networks.
- Why containers on a user network **join the holder's user namespace** (as Podman's containers
  all live in the pause process's): moving a veth end into a network namespace needs
  CAP_NET_ADMIN over the user namespace that owns it, for the netlink socket's opener as well
  (``netlink_ns_capable``). Two sibling user namespaces have no capability over each other, and
  the unprivileged user has none in the host's, so a veth can only join namespaces owned by one
  user namespace. The engine asks ``join_spec()`` to put the holder's user namespace in the
  container's spec; the container still creates its own network (and every other) namespace.
- Each container gets a veth pair: one end in the shared namespace enslaved to the bridge, the
  other created directly in the container's namespace as ``eth0`` (``eth1``... for ``network
  connect``) with an address from the subnet and the default route via the gateway. All link
  work is ``ip -batch`` run through ``nsenter -U -n --preserve-credentials`` (tools.run), no
  pyroute2 (network/helper.py stays its one importer).
- Names: an ``/etc/hosts`` we keep current (rewritten in place, the file is bind-mounted), with
  a marked block of every peer on every network the container shares. Chosen over a DNS server:
  no extra long-lived process, works for any libc (static busybox included), and the engine
  already owns the file; the cost is that a name appears only when the peer has joined.
- Published ports: the builtin proxy connects inside the container's own namespace, as for
  slirp4netns, so ``-p`` works unchanged (slirp4netns's add_hostfwd cannot reach a bridge address).
- Definitions in ``data_root/networks/<id>.json`` (atomic writes), with the allocated addresses
  (``Containers``: pid + start time of the holder of each address, so stale ones are freed when
  found; released on container teardown). One flock (``networks/.lock``) orders all changes.
- The trade-off of one shared user namespace (Podman's too): root in one container holds
  capabilities over the namespaces of the others on user networks; it cannot name them (they
  are in other pid and mount namespaces), but the isolation between them is weaker than between
  containers on slirp4netns, which each have a user namespace of their own.
- Lifetime of the holder: started on demand by the first container on a user network; stopped
  when the last attachment is released (after a 60 s grace for a container prepared but not yet
  attached), and always with ``network rm``/``prune`` of the last network. slirp4netns goes with
  it (its --exit-fd is a pidfd of the holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

from rootless import procs, timefmt
from rootless.errors import RootlessError, UsageError

RESERVED = ("none", "host", "bridge", "default", "slirp4netns", "slirp", "container", "helper", "private")
PREDEFINED = (("slirp4netns", "slirp4netns"), ("host", "host"), ("none", "null"))
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
SLIRP_NET = ipaddress.IPv4Network("10.0.2.0/24")
DEFAULT_POOL = ipaddress.IPv4Network("10.89.0.0/16")
PENDING_GRACE = 60.0
MTU = 65520
BEGIN = "# rootless networks: begin (managed, rewritten as peers come and go)"
END = "# rootless networks: end"
NSENTER_HINT = "check that nsenter (util-linux) and ip (iproute2) are installed"
HOLDER_NAME = "rootless-netns"  # its /proc/PID/comm (set_name), checked before it is signalled


# --- definitions ----------------------------------------------------------------------------------


def net_dir(data_root: str) -> str:
    return os.path.join(data_root, "networks")


def predefined_id(name: str) -> str:
    import hashlib

    return hashlib.sha256(f"rootless-network:{name}".encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise UsageError(f"create network `{name}`: invalid name",
                         "use letters, digits, `_`, `.` and `-`, starting with a letter or digit")
    if name in RESERVED:
        raise UsageError(f"create network `{name}`: `{name}` is a predefined network", "choose another name")
    return name


@contextlib.contextmanager
def locked(data_root: str) -> Iterator[None]:
    from rootless import paths

    d = net_dir(data_root)
    os.makedirs(d, mode=0o700, exist_ok=True)
    paths.ensure_private_dir(d)
    fd = os.open(os.path.join(d, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_all(data_root: str) -> List[Dict[str, Any]]:
    d = net_dir(data_root)
    out = []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    for n in names:
        if n.endswith(".json") and _ID_RE.match(n[:-5]):
            try:
                with open(os.path.join(d, n)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                continue
    return sorted(out, key=lambda x: x.get("Name", ""))


def find(data_root: str, ref: str) -> Optional[Dict[str, Any]]:
    """A user network by name, full id or unique id prefix; None when there is none."""
    nets = load_all(data_root)
    for n in nets:
        if n["Name"] == ref or n["Id"] == ref:
            return n
    if len(ref) >= 3 and re.match(r"^[0-9a-f]+$", ref):
        hits = [n for n in nets if n["Id"].startswith(ref)]
        if len(hits) == 1:
            return hits[0]
    return None


def get(data_root: str, ref: str) -> Dict[str, Any]:
    n = find(data_root, ref)
    if n is None:
        raise RootlessError(f"find network `{ref}`: no such network", "list them with `rootless network ls`",
                            exit_code=1)
    return n


def save(data_root: str, net: Dict[str, Any]) -> None:
    from rootless import paths

    if not _ID_RE.match(net["Id"]):
        raise RootlessError(f"save network `{net['Id']}`: not a network id")
    paths.atomic_write(os.path.join(net_dir(data_root), net["Id"] + ".json"),
                       json.dumps(net, indent=1, sort_keys=True).encode(), mode=0o600)


def _overlaps(a: ipaddress.IPv4Network, nets: Sequence[Dict[str, Any]]) -> Optional[str]:
    if a.overlaps(SLIRP_NET):
        return "slirp4netns (10.0.2.0/24)"
    for n in nets:
        if a.overlaps(ipaddress.IPv4Network(n["Subnet"])):
            return f"network `{n['Name']}` ({n['Subnet']})"
    return None


def create(data_root: str, name: str, *, subnet: str = "", gateway: str = "", internal: bool = False,
           labels: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    check_name(name)
    with locked(data_root):
        nets = load_all(data_root)
        if any(n["Name"] == name for n in nets):
            raise RootlessError(f"create network `{name}`: a network with that name exists already",
                                "choose another name, or remove it: `rootless network rm " + name + "`", exit_code=1)
        if subnet:
            try:
                sub = ipaddress.IPv4Network(subnet, strict=False)
            except ValueError:
                raise UsageError(f"create network `{name}`: `{subnet}` is not an IPv4 subnet", "e.g. --subnet 10.90.0.0/24")
            if not 8 <= sub.prefixlen <= 30:
                raise UsageError(f"create network `{name}`: subnet `{subnet}` must have a prefix of /8 to /30",
                                 "e.g. --subnet 10.90.0.0/24")
            clash = _overlaps(sub, nets)
            if clash:
                raise RootlessError(f"create network `{name}`: subnet {sub} overlaps {clash}", "choose another --subnet",
                                    exit_code=1)
        else:
            sub = None
            for cand in DEFAULT_POOL.subnets(new_prefix=24):
                if _overlaps(cand, nets) is None:
                    sub = cand
                    break
            if sub is None:
                raise RootlessError(f"create network `{name}`: no free subnet left in {DEFAULT_POOL}",
                                    "remove unused networks (`rootless network prune`) or give --subnet")
        hosts = sub.hosts()
        if gateway:
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise UsageError(f"create network `{name}`: `{gateway}` is not an IPv4 address", "e.g. --gateway 10.90.0.1")
            if gw not in sub or gw in (sub.network_address, sub.broadcast_address):
                raise UsageError(f"create network `{name}`: gateway {gw} is not a host address of {sub}",
                                 "give an address inside --subnet")
        else:
            gw = next(iter(hosts))
        nid = secrets.token_hex(32)
        net = {
            "Name": name, "Id": nid, "Created": timefmt.now(), "Scope": "local", "Driver": "bridge",
            "Subnet": str(sub), "Gateway": str(gw), "Internal": bool(internal), "Labels": dict(labels or {}),
            "Bridge": "rl-" + nid[:10], "Containers": {},
        }
        save(data_root, net)
        return net


def live_containers(net: Dict[str, Any], proc: str = "/proc") -> Dict[str, Dict[str, Any]]:
    from rootless.runtime import proc_start_time

    out = {}
    for cid, a in (net.get("Containers") or {}).items():
        st = proc_start_time(int(a.get("Pid") or 0), proc) if a.get("Pid") else None
        if st is not None and (a.get("StartTime") is None or st == a.get("StartTime")):
            out[cid] = a
    return out


def remove(data_root: str, exec_root: str, ref: str, proc: str = "/proc") -> str:
    with locked(data_root):
        net = get(data_root, ref)
        live = live_containers(net, proc)
        if live:
            names = ", ".join(f"`{a.get('Name', c[:12])}`" for c, a in live.items())
            raise RootlessError(f"remove network `{net['Name']}`: containers are attached to it: {names}",
                                f"stop them, or disconnect them: `rootless network disconnect {net['Name']} NAME`",
                                exit_code=1)
        os.unlink(os.path.join(net_dir(data_root), net["Id"] + ".json"))
        h = _holder(data_root, exec_root, proc)
        if h is not None:
            if not _maybe_stop_holder(data_root, exec_root, h, proc):
                try:
                    _run_ip(h["pid"], f"link del {net['Bridge']}\n", f"remove bridge of network `{net['Name']}`")
                    _firewall(h["pid"], load_all(data_root))
                except RootlessError:
                    pass
        return net["Name"]


def _any_attached(data_root: str, proc: str) -> bool:
    return any(live_containers(n, proc) for n in load_all(data_root))


def _maybe_stop_holder(data_root: str, exec_root: str, h: Dict[str, Any], proc: str) -> bool:
    """Stop the holder when no container uses it and none is about to (lock held); True if stopped."""
    pending = {c: t for c, t in (h.get("pending") or {}).items() if time.time() - t < PENDING_GRACE}
    if load_all(data_root) and (pending or _any_attached(data_root, proc)):
        if pending != h.get("pending"):
            h["pending"] = pending
            _save_holder(data_root, exec_root, h)
        return False
    _stop_holder(data_root, exec_root, h, proc)
    return True


# --- the holder -----------------------------------------------------------------------------------


def _holder_dir(exec_root: str) -> str:
    return os.path.join(exec_root, "usernet")


HOLDER_FILE = "holder.json"


def _holder_copy(data_root: str) -> str:
    """The second copy of holder.json, under data-root: it outlives XDG_RUNTIME_DIR, which
    logind wipes at logout (without linger) while the holder and its containers run on
    (issue 11 item 13: else the next container starts a second holder and the networks split)."""
    return os.path.join(net_dir(data_root), HOLDER_FILE)


def _holder(data_root: str, exec_root: str, proc: str = "/proc") -> Optional[Dict[str, Any]]:
    """The holder's record when its pid is still that process (pid + start time + owner + name),
    else None: from exec-root, else from the copy under data-root (then put back in exec-root).

    A record is trusted only in a folder of ours that nobody else can write, and only when the
    file is ours (issue 11 item 3: a holder.json planted in a /tmp fallback named the victim's
    processes)."""
    h = _read_holder(exec_root, _holder_dir(exec_root), proc)
    if h is not None:
        return h
    h = _read_holder(data_root, net_dir(data_root), proc)
    if h is not None:
        try:  # found again after exec-root was wiped: the run-time copy comes back
            _write_holder(os.path.join(_ensure_holder_dir(exec_root), HOLDER_FILE), h)
        except (OSError, RootlessError):
            pass
    return h


def _read_holder(root: str, d: str, proc: str) -> Optional[Dict[str, Any]]:
    from rootless import trust

    try:
        if not trust.check_dir(root, "directory") or not trust.check_dir(d, "directory"):
            return None
        h = trust.read_json(os.path.join(d, HOLDER_FILE), "network namespace record")
    except (OSError, ValueError):
        return None
    if not isinstance(h, dict):
        return None
    pid = h.get("pid")
    if not trust.pid_is(pid, h.get("start_time"), (HOLDER_NAME,), proc) or _zombie(pid, proc):
        return None
    return h


def _zombie(pid: int, proc: str) -> bool:
    """An exited holder not yet reaped by its parent: its namespaces are gone already."""
    return procs.start_time(pid, proc, zombie_is_gone=True) is None


def _ensure_holder_dir(exec_root: str) -> str:
    """exec-root and its usernet/, each 0700 (made again when XDG_RUNTIME_DIR was wiped)."""
    from rootless import paths

    paths.ensure_private_dir(exec_root)
    return paths.ensure_private_dir(_holder_dir(exec_root))


def _save_holder(data_root: str, exec_root: str, h: Dict[str, Any]) -> None:
    _write_holder(os.path.join(_ensure_holder_dir(exec_root), HOLDER_FILE), h)
    _write_holder(_holder_copy(data_root), h)


def _write_holder(path: str, h: Dict[str, Any]) -> None:
    from rootless import paths

    paths.atomic_write(path, json.dumps(h).encode(), mode=0o600, durable=False)


def _holder_main(ctl_fd: int, self_map: Any, ready_w: int, proc: str) -> None:
    """The holder: unshare user + net, get mapped, bring lo up, enable forwarding, then pause."""
    import socket

    from rootless.linux import syscalls
    from rootless.network import netns
    from rootless.runtime import userns

    msg = b"ok"
    try:
        os.setsid()
        ctl = socket.socket(fileno=ctl_fd)
        userns.enter_userns(syscalls.CLONE_NEWUSER, ctl, self_map, proc, early_flags=syscalls.CLONE_NEWNET)
        ctl.close()
        netns.loopback_up()
        with open(f"{proc}/sys/net/ipv4/ip_forward", "w") as f:  # this namespace's, not the host's
            f.write("1")
    except RootlessError as e:
        msg = e.message.encode()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        msg = f"{type(e).__name__}: {e}".encode()
    os.write(ready_w, msg)
    if msg != b"ok":
        os._exit(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    try:
        syscalls.set_name(HOLDER_NAME)
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        signal.pause()


def _maps_text(maps: Sequence[Any]) -> List[List[int]]:
    return [[m.container, m.host, m.count] for m in maps]


def ensure_holder(data_root: str, exec_root: str, uid_maps: Sequence[Any], gid_maps: Sequence[Any], proc: str = "/proc") -> Dict[str, Any]:
    """The running holder (started when there is none). Call with the networks lock held."""
    from rootless.network import slirp
    from rootless.runtime import proc_start_time, sync, userns

    want = {"uid_maps": _maps_text(uid_maps), "gid_maps": _maps_text(gid_maps)}
    h = _holder(data_root, exec_root, proc)
    if h is not None:
        if h.get("uid_maps") != want["uid_maps"] or h.get("gid_maps") != want["gid_maps"]:
            raise RootlessError("join the rootless network namespace: its user namespace maps other ids "
                                f"({h.get('uid_maps')}) than this container ({want['uid_maps']})",
                                "containers on user networks share one user namespace: use the default id mapping")
        return h
    d = _ensure_holder_dir(exec_root)
    self_map = None
    if userns.can_self_map(uid_maps, gid_maps, os.getuid(), os.getgid()):
        self_map = (uid_maps[0], gid_maps[0])
    ctl, ctl_child = sync.socketpair()
    r, w = os.pipe()
    try:
        pid = userns.start_child(_holder_main, (ctl_child.fileno(), self_map, w, proc),
                                 pass_fds=(ctl_child.fileno(), w), proc=proc, close_in_child=(ctl.fileno(), r))
    finally:
        ctl_child.close()
        os.close(w)
    try:
        if self_map is None:
            userns.map_child(pid, ctl, uid_maps, gid_maps)
        msg = b""
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            msg += b
    except BaseException:
        procs.kill(pid, signal.SIGKILL)
        procs.reap(pid, 1.0, kill_after=False)
        raise
    finally:
        ctl.close()
        os.close(r)
    if msg != b"ok":
        procs.reap(pid, 1.0, kill_after=False)
        raise RootlessError(f"start the rootless network namespace: {msg.decode(errors='replace') or 'it died'}",
                            "check that unprivileged user namespaces work: `unshare -Urn true`")
    start_time = proc_start_time(pid, proc)
    try:
        s = slirp.start(pid, d, slirp.SlirpOptions(mtu=MTU), proc)
    except BaseException:
        procs.kill(pid, signal.SIGKILL)
        procs.reap(pid, 1.0, kill_after=False)
        raise
    h = {"pid": pid, "start_time": start_time, "slirp": s.to_dict(), "pending": {}, **want}
    _save_holder(data_root, exec_root, h)
    return h


def _stop_holder(data_root: str, exec_root: str, h: Dict[str, Any], proc: str = "/proc") -> None:
    from rootless import trust
    from rootless.network import slirp

    # h came from _holder() or ensure_holder(): its pid was checked (start time, owner, name)
    if trust.pid_is(h.get("pid"), h.get("start_time"), (HOLDER_NAME,), proc):
        procs.kill(int(h["pid"]), signal.SIGTERM)
        procs.reap(int(h["pid"]), 2.0, kill_after=False)
    if isinstance(h.get("slirp"), dict):
        try:
            s = slirp.Slirp.from_dict(h["slirp"])
        except (KeyError, TypeError, ValueError):
            s = None
        if s is not None and trust.inside(s.api_socket, [_holder_dir(exec_root)]):
            slirp.stop(s, proc)
    for path in (os.path.join(_holder_dir(exec_root), HOLDER_FILE), _holder_copy(data_root)):
        try:
            os.unlink(path)
        except OSError:
            pass


# --- running ip / nft inside the namespaces -------------------------------------------------------


def _nsenter(pid: int) -> List[str]:
    # --preserve-credentials: no setgroups(), which a one-uid map denies; we are mapped to 0 there
    # and have every capability in that user namespace (we own it).
    return ["nsenter", "-t", str(pid), "-U", "-n", "--preserve-credentials"]


def _run_ip(pid: int, script: str, what: str) -> None:
    from rootless import tools

    tools.run(["ip", "-batch", "-"], through=_nsenter(pid), input=script.encode(), what=what, hint=NSENTER_HINT)


def _firewall(pid: int, nets: Sequence[Dict[str, Any]]) -> None:
    """The whole nftables table of the shared namespace, replaced atomically."""
    from rootless import tools

    fwd, nat = [], []
    for n in nets:
        br = n["Bridge"]
        fwd.append(f'    iifname "{br}" oifname "{br}" accept')
        if not n.get("Internal"):
            fwd.append(f'    iifname "{br}" oifname "tap0" accept')
            nat.append(f'    ip saddr {n["Subnet"]} oifname "tap0" masquerade')
    text = "\n".join([
        "table ip rootless",
        "delete table ip rootless",
        "table ip rootless {",
        "  chain forward {",
        "    type filter hook forward priority 0; policy drop;",
        "    ct state established,related accept",
        *fwd,
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority 100; policy accept;",
        *nat,
        "  }",
        "}",
    ]) + "\n"
    tools.run(["nft", "-f", "-"], through=_nsenter(pid), input=text.encode(), what="set the nftables rules of the rootless "
              "network namespace", hint="check that nft works in a user namespace: `unshare -Urn nft list ruleset`")


def _ensure_bridge(pid: int, net: Dict[str, Any], nets: Sequence[Dict[str, Any]]) -> None:
    sub = ipaddress.IPv4Network(net["Subnet"])
    if _has_link(pid, net["Bridge"]):
        return
    _run_ip(pid, f"link add {net['Bridge']} mtu {MTU} type bridge\n"
                 f"addr add {net['Gateway']}/{sub.prefixlen} dev {net['Bridge']}\n"
                 f"link set {net['Bridge']} up\n", f"create the bridge of network `{net['Name']}`")
    _firewall(pid, nets)


def _has_link(pid: int, name: str) -> bool:
    from rootless import tools

    r = tools.run(["ip", "-o", "link", "show", "dev", name], through=_nsenter(pid), check=False)
    return r.returncode == 0


# --- attach / release -----------------------------------------------------------------------------


def join_spec(data_root: str, exec_root: str, spec: Dict[str, Any], net_ref: str, container_id: str, ids: Any = None,
              proc: str = "/proc") -> None:
    """Put the holder's user namespace into ``spec`` (starting the holder when needed)."""
    from rootless.runtime import ids_for_current_user, userns

    get(data_root, net_ref)
    uid_maps, gid_maps = userns.maps_for(ids or ids_for_current_user(), spec)
    with locked(data_root):
        h = ensure_holder(data_root, exec_root, uid_maps, gid_maps, proc)
        now = time.time()
        h["pending"] = {c: t for c, t in (h.get("pending") or {}).items() if now - t < PENDING_GRACE}
        h["pending"][container_id] = now
        _save_holder(data_root, exec_root, h)
    linux = spec.setdefault("linux", {})
    nss = [n for n in linux.get("namespaces") or [] if n.get("type") not in ("user", "network")]
    nss += [{"type": "user", "path": f"/proc/{h['pid']}/ns/user"}, {"type": "network"}]
    linux["namespaces"] = nss
    # a joined user namespace keeps its own maps; the spec's are for documentation only


@dataclass(frozen=True)
class Attachment:
    network: str
    address: str  # no prefix
    prefixlen: int
    gateway: str
    ifname: str


def _same_userns(a: int, b: int, proc: str) -> bool:
    try:
        sa, sb = os.stat(f"{proc}/{a}/ns/user"), os.stat(f"{proc}/{b}/ns/user")
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def attach(data_root: str, exec_root: str, net_ref: str, pid: int, *, container_id: str, name: str,
           hostname: str = "", hosts_path: str = "", proc: str = "/proc") -> Attachment:
    """Connect the container whose init is ``pid`` to a user network (veth, address, route, hosts)."""
    from rootless.runtime import proc_start_time

    with locked(data_root):
        net = get(data_root, net_ref)
        h = _holder(data_root, exec_root, proc)
        if h is None or not _same_userns(int(h["pid"]), pid, proc):
            raise RootlessError(f"connect container `{name}` to network `{net['Name']}`: it does not live in the "
                                "user namespace of the rootless network namespace",
                                "only containers started on a user network (`run --network NAME`) can be connected")
        hpid = int(h["pid"])
        h.get("pending", {}).pop(container_id, None)
        _save_holder(data_root, exec_root, h)
        nets = load_all(data_root)
        _ensure_bridge(hpid, net, nets)
        live = live_containers(net, proc)
        if container_id in live:
            raise RootlessError(f"connect container `{name}` to network `{net['Name']}`: it is connected already",
                                "nothing to do", exit_code=1)
        sub = ipaddress.IPv4Network(net["Subnet"])
        used = {net["Gateway"]} | {a["IPv4Address"].split("/")[0] for a in live.values()}
        addr = next((str(a) for a in sub.hosts() if str(a) not in used), None)
        if addr is None:
            raise RootlessError(f"connect container `{name}` to network `{net['Name']}`: no free address in {sub}",
                                "remove containers from it, or create a larger network")
        # the container's other networks: ifname eth0, eth1, ...; the first one has the default route
        mine = [n for n in nets if container_id in live_containers(n, proc) and n["Id"] != net["Id"]]
        taken = {n["Containers"][container_id].get("Ifname") for n in mine}
        ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in taken)
        veth = "rl" + format(int(ipaddress.IPv4Address(addr)), "08x") + net["Id"][:3]
        _run_ip(hpid, f"link add {veth} mtu {MTU} type veth peer name {ifname} netns {pid}\n"
                      f"link set {veth} master {net['Bridge']} up\n",
                f"create the veth of container `{name}` on network `{net['Name']}`")
        script = f"link set lo up\naddr add {addr}/{sub.prefixlen} dev {ifname}\nlink set {ifname} mtu {MTU} up\n"
        if not mine and not net.get("Internal"):
            script += f"route add default via {net['Gateway']} dev {ifname}\n"
        try:
            _run_ip(pid, script, f"configure {ifname} of container `{name}`")
        except BaseException:
            _run_ip(hpid, f"link del {veth}\n", "remove a veth")
            raise
        net["Containers"] = dict(live)
        net["Containers"][container_id] = {
            "Name": name, "IPv4Address": f"{addr}/{sub.prefixlen}", "Pid": pid, "StartTime": proc_start_time(pid, proc),
            "HostsPath": hosts_path, "Hostname": hostname, "Veth": veth, "Ifname": ifname,
        }
        save(data_root, net)
        _refresh_hosts(data_root, proc)
        return Attachment(net["Name"], addr, sub.prefixlen, net["Gateway"], ifname)


def release(data_root: str, exec_root: str, container_id: str, net_ref: str = "", proc: str = "/proc") -> List[str]:
    """Free the container's addresses (on ``net_ref``, or on every network); stop the holder when
    nothing uses it. Never raises; returns problems."""
    problems: List[str] = []
    try:
        with locked(data_root):
            h = _holder(data_root, exec_root, proc)
            changed = False
            for net in load_all(data_root):
                if net_ref and net_ref not in (net["Name"], net["Id"]):
                    continue
                a = (net.get("Containers") or {}).pop(container_id, None)
                stale = {c for c in net.get("Containers", {}) if c not in live_containers(net, proc)}
                for c in stale:
                    net["Containers"].pop(c)
                if a is None and not stale:
                    continue
                changed = True
                save(data_root, net)
                if a is not None and h is not None and a.get("Veth") and _has_link(int(h["pid"]), a["Veth"]):
                    try:  # a disconnect: the container lives on (an exit removes its veth with its namespace)
                        _run_ip(int(h["pid"]), f"link del {a['Veth']}\n", "remove a veth")
                    except RootlessError as e:
                        problems.append(e.message)
                if a is not None and a.get("HostsPath") and net_ref:
                    _write_block(data_root, a["HostsPath"], [])
            if h is not None:
                h.get("pending", {}).pop(container_id, None)
                _maybe_stop_holder(data_root, exec_root, h, proc)
            if changed:
                _refresh_hosts(data_root, proc)
    except (RootlessError, OSError) as e:
        problems.append(getattr(e, "message", None) or str(e))
    return problems


# --- /etc/hosts -----------------------------------------------------------------------------------


def _refresh_hosts(data_root: str, proc: str) -> None:
    """Rewrite the managed block of every attached container's /etc/hosts."""
    nets = [(n, live_containers(n, proc)) for n in load_all(data_root)]
    paths: Dict[str, str] = {}
    for _, live in nets:
        for cid, a in live.items():
            if a.get("HostsPath"):
                paths[cid] = a["HostsPath"]
    for cid, path in paths.items():
        lines: List[str] = []
        for _net, live in nets:
            if cid not in live:
                continue
            me = live[cid]
            names = " ".join(dict.fromkeys(x for x in (me.get("Hostname"), me.get("Name")) if x))
            lines.append(f"{me['IPv4Address'].split('/')[0]}\t{names}")
            for other, a in sorted(live.items(), key=lambda kv: kv[1].get("Name", "")):
                if other != cid:
                    lines.append(f"{a['IPv4Address'].split('/')[0]}\t{a.get('Name') or other[:12]} {other[:12]}")
        _write_block(data_root, path, lines)


def _write_block(data_root: str, path: str, lines: List[str]) -> None:
    from rootless import trust
    from rootless.network import hosts

    # a path read from a network's record: rewritten only when it is a container's hosts file
    if not isinstance(path, str) or os.path.basename(path) != "hosts" or \
            not trust.inside(os.path.dirname(path), [os.path.join(data_root, "containers")]):
        return
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    keep, inside = [], False
    for ln in text.splitlines():
        if ln == BEGIN:
            inside = True
        elif ln == END:
            inside = False
        elif not inside and not (lines and ln.startswith("127.0.1.1\t")):
            keep.append(ln)
    if lines:
        keep += [BEGIN] + lines + [END]
    try:
        hosts.write_in_place(path, "\n".join(keep) + "\n")
    except OSError:
        pass


# --- inspect --------------------------------------------------------------------------------------


def inspect_dict(net: Dict[str, Any], proc: str = "/proc") -> Dict[str, Any]:
    """docker's `network inspect` shape."""
    live = live_containers(net, proc)
    return {
        "Name": net["Name"], "Id": net["Id"], "Created": net["Created"], "Scope": "local", "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": net["Subnet"], "Gateway": net["Gateway"]}]},
        "Internal": bool(net.get("Internal")), "Attachable": False, "Ingress": False,
        "Containers": {cid: {"Name": a.get("Name", ""), "EndpointID": a.get("Veth", ""), "MacAddress": "",
                             "IPv4Address": a["IPv4Address"], "IPv6Address": ""} for cid, a in live.items()},
        "Options": {"com.docker.network.bridge.name": net["Bridge"]},
        "Labels": dict(net.get("Labels") or {}),
    }


def predefined_dict(name: str, driver: str) -> Dict[str, Any]:
    cfg: List[Dict[str, str]] = []
    if name == "slirp4netns":
        cfg = [{"Subnet": "10.0.2.0/24", "Gateway": "10.0.2.2"}]
    return {"Name": name, "Id": predefined_id(name), "Created": "", "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {}, "Config": cfg}, "Internal": False,
            "Attachable": False, "Ingress": False, "Containers": {}, "Options": {}, "Labels": {}}


def prune(data_root: str, exec_root: str, proc: str = "/proc") -> List[str]:
    removed = []
    for n in load_all(data_root):
        if not live_containers(n, proc):
            try:
                removed.append(remove(data_root, exec_root, n["Id"], proc))
            except RootlessError:
                continue
    return removed


def status(data_root: str, exec_root: str, proc: str = "/proc") -> str:
    """For `rootless info`."""
    nets = load_all(data_root)
    h = _holder(data_root, exec_root, proc)
    running = f"shared namespace running (pid {h['pid']})" if h else "shared namespace not running"
    return f"{len(nets)} defined; {running}"


def parse_labels(items: Sequence[str]) -> Dict[str, str]:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        if not k:
            raise UsageError(f"parse --label `{item}`: the key is empty", "the form is --label KEY=VALUE")
        out[k] = v
    return out

