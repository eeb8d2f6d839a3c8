"""cgroup v2 in a delegated subtree: what this user may control, and per-container cgroups.

- ``detect()`` -> ``CgroupInfo``: can limits be enforced for this user here, and if not, why and
  how to fix it (used by `info`).
- ``Manager.for_container(id, limits)`` -> ``CgroupHandle`` or None: one cgroup per container
  with the limits (``rootless.limits.Limits``) written. Limits that cannot be enforced raise
  RootlessError (never ignored); with no limits it makes a cgroup where it can (stats, OOM,
  pause) and otherwise returns None without a word. ``Manager.check(limits)`` raises the same
  error without creating anything.
- ``CgroupHandle``: add_pid, stats, update, oom_killed, freeze/thaw, remove, to_json/from_json.

Driver: "cgroupfs" (file writes in the delegated subtree). Not done: a "systemd" driver that asks
the user manager for a transient scope over D-Bus (StartTransientUnit with PIDs=[pid],
Delegate=yes, MemoryMax=..., as Podman does); when the engine itself runs in a scope systemd
delegated (`systemd-run --user --scope -p Delegate=yes`), containers go below that scope.
Kernel paths are parameters so unit tests can point them at a temporary tree; the real kernel is
tested in a VM (tests/cgroupvm).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from rootless.errors import RootlessError, UsageError
from rootless.limits import Limits, cpuset_members

WANTED = ("cpu", "memory", "pids", "io", "cpuset")


@dataclass(frozen=True)
class CgroupInfo:
    version: str  # "2", "1" or "1 (hybrid)"
    driver: str  # "cgroupfs" | "systemd" | "none"
    path: Optional[str]  # the user's own cgroup directory (v2), or None
    controllers: List[str] = field(default_factory=list)  # usable by this user
    problem: Optional[str] = None  # why limits are unavailable, or None
    hint: Optional[str] = None

    @property
    def limits_available(self) -> bool:
        return self.problem is None


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _mounts(mountinfo: str) -> List[Tuple[str, str]]:
    """(mount point, fstype) of every cgroup mount."""
    out = []
    for line in (_read(mountinfo) or "").splitlines():
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) >= 5 and rparts and rparts[0] in ("cgroup", "cgroup2"):
            out.append((parts[4].replace("\\040", " "), rparts[0]))
    return out


def detect(proc_self: str = "/proc/self", cgroup_root: str = "/sys/fs/cgroup", uid: Optional[int] = None) -> CgroupInfo:
    uid = os.getuid() if uid is None else uid
    mounts = _mounts(os.path.join(proc_self, "mountinfo"))
    v2_points = [m for m, t in mounts if t == "cgroup2"]
    v1 = [m for m, t in mounts if t == "cgroup"]
    systemd_user = os.path.exists(f"/run/user/{uid}/systemd/private")
    driver = "systemd" if systemd_user else "cgroupfs"
    if cgroup_root not in v2_points:
        if v1:
            version = "1 (hybrid)" if v2_points else "1"
            return CgroupInfo(
                version, driver, None, [],
                "this host uses cgroup v1" + (" with a hybrid cgroup2 mount" if v2_points else "")
                + "; rootless resource limits need the unified cgroup v2 hierarchy",
                "boot with `systemd.unified_cgroup_hierarchy=1` (or `cgroup_no_v1=all`) on the kernel command line",
            )  # fmt: skip
        return CgroupInfo("none", "none", None, [], "no cgroup filesystem is mounted", "mount cgroup2 on /sys/fs/cgroup")
    rel = None
    for line in (_read(os.path.join(proc_self, "cgroup")) or "").splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip()
    if rel is None:
        return CgroupInfo("2", driver, None, [], "this process is in no cgroup v2 group", None)
    path = os.path.join(cgroup_root, rel.lstrip("/"))
    # Walk up to the closest ancestor we own: a delegated subtree (systemd's Delegate=yes chowns
    # user@UID.service to the user); our own process may sit in a leaf below it.
    top = path
    while top.startswith(cgroup_root.rstrip("/") + "/") and _owned(os.path.dirname(top), uid):
        top = os.path.dirname(top)
    owned = _owned(top, uid)
    if not owned:
        return CgroupInfo(
            "2", driver, path, [],
            f"cgroup `{path}` is not delegated to this user (uid {uid})",
            "delegate it: for systemd, a drop-in for user@.service with `Delegate=cpu cpuset io memory pids`",
        )  # fmt: skip
    controllers = (_read(os.path.join(top, "cgroup.controllers")) or "").split()
    usable = [c for c in WANTED if c in controllers]
    if not usable:
        return CgroupInfo(
            "2", driver, top, [],
            f"no controllers are delegated to `{top}`",
            "enable them in the parent's cgroup.subtree_control (systemd: `Delegate=cpu cpuset io memory pids`)",
        )  # fmt: skip
    return CgroupInfo("2", driver, top, usable, None, None)


def _owned(path: str, uid: int) -> bool:
    for name in ("", "cgroup.procs", "cgroup.subtree_control"):
        try:
            if os.stat(os.path.join(path, name)).st_uid != uid:
                return False
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# Per-container cgroups (driver "cgroupfs": plain file writes in the delegated subtree)
#
#   <delegated root>/                 e.g. /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service
#       init.scope/                   our own processes, if they sat in the delegated root itself
#       rootless/                     no processes; controllers enabled for its children
#           <container id>/           one leaf per container: limits, the container's processes
#
# cgroup v2's "no internal processes" rule (Documentation/admin-guide/cgroup-v2.rst): a cgroup
# that enables controllers in cgroup.subtree_control cannot hold processes itself. So processes in
# the delegated root move into a leaf (systemd's name for the manager's own leaf: init.scope)
# before we enable controllers there. Moving a process needs write access to cgroup.procs of the
# common ancestor of its old and new cgroup: the delegated root, which is ours.

PARENT_NAME = "rootless"
LEAF_NAME = "init.scope"
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DELEGATE_HINT = ("delegate the controllers to your user: a drop-in for user@.service with "
                  "`[Service]` `Delegate=cpu cpuset io memory pids` (systemctl daemon-reload, then log in again)")


@dataclass(frozen=True)
class CgroupStats:
    """One sample of a container cgroup's counters (bytes, microseconds, counts)."""

    memory_usage: int  # memory.current minus inactive_file: what `docker stats` shows as usage
    memory_limit: Optional[int]  # memory.max; None = unlimited
    memory_peak: Optional[int]  # memory.peak (kernel >= 5.19), else None
    swap_usage: Optional[int]  # memory.swap.current
    oom_kills: int  # memory.events oom_kill
    cpu_usage_usec: int  # cpu.stat usage_usec
    cpu_user_usec: int
    cpu_system_usec: int
    cpu_nr_periods: int
    cpu_nr_throttled: int
    cpu_throttled_usec: int
    cpu_limit: Optional[float]  # cpu.max as a number of CPUs; None = unlimited
    cpu_weight: Optional[int]
    pids_current: int
    pids_limit: Optional[int]  # pids.max; None = unlimited
    io_read_bytes: int  # sum of rbytes over the devices in io.stat
    io_write_bytes: int  # sum of wbytes


def _kv(text: Optional[str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v.strip())
        except ValueError:
            pass
    return out


def _int_or_max(text: Optional[str]) -> Optional[int]:
    t = (text or "").strip()
    if not t or t == "max":
        return None
    try:
        return int(t)
    except ValueError:
        return None


def _errno_text(e: OSError) -> str:
    return e.strerror or str(e)


class CgroupHandle:
    """One container's cgroup: add processes, read counters, change limits, freeze, remove.

    Made by ``Manager.for_container``; persisted with ``to_json()`` and found again by a later
    command with ``CgroupHandle.from_json(data)``.
    """

    def __init__(self, path: str, limits: Optional[Limits] = None, driver: str = "cgroupfs"):
        self._path = path
        self._limits = limits if limits is not None else Limits.empty
        self.driver = driver

    def __repr__(self) -> str:
        return f"CgroupHandle({self._path!r}, {self._limits!r})"

    @property
    def path(self) -> str:
        return self._path

    @property
    def limits(self) -> Limits:
        """The limits in force (the union of what creation and later updates asked for)."""
        return self._limits

    def exists(self) -> bool:
        return os.path.isdir(self._path)

    # -- files ------------------------------------------------------------------------------------
    def _file(self, name: str) -> str:
        return os.path.join(self._path, name)

    def _read(self, name: str) -> Optional[str]:
        return _read(self._file(name))

    def _write(self, name: str, value: str, hint: Optional[str] = None) -> None:
        try:
            fd = os.open(self._file(name), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RootlessError(f"open `{self._file(name)}`: {_errno_text(e)}",
                                hint or f"check that `{self._path}` is delegated to uid {os.getuid()}")
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise RootlessError(f"write `{value}` to `{self._file(name)}`: {_errno_text(e)}", hint)
        finally:
            os.close(fd)

    # -- processes --------------------------------------------------------------------------------
    def add_pid(self, pid: int) -> None:
        """Move process ``pid`` (with all its threads) into this cgroup. Call it before the process execs."""
        self._write("cgroup.procs", str(int(pid)),
                    "the process must belong to you and both cgroups must be inside your delegated subtree")

    def pids(self) -> List[int]:
        return [int(p) for p in (self._read("cgroup.procs") or "").split()]

    def populated(self) -> bool:
        return _kv(self._read("cgroup.events")).get("populated", 0) == 1

    # -- limits -----------------------------------------------------------------------------------
    def _apply(self, limits: Limits, explicit: Limits) -> None:
        """Write ``limits`` (the full set in force); ``explicit`` is what this call was asked to change."""
        io_file = "io.bfq.weight" if os.path.exists(self._file("io.bfq.weight")) else "io.weight"
        if limits.cpuset_cpus is not None:
            self._check_cpuset(limits.cpuset_cpus, "cpus")
        if limits.cpuset_mems is not None:
            self._check_cpuset(limits.cpuset_mems, "mems")
        for name, value in limits.cgroup_files(io_file):
            if not os.path.exists(self._file(name)):
                if name == "memory.swap.max" and explicit.memory_swap is None:
                    continue  # no swap accounting in this kernel and no swap limit asked for
                flag = {"memory.swap.max": "--memory-swap", "memory.low": "--memory-reservation"}.get(name, name)
                raise RootlessError(
                    f"apply `{flag}`: `{self._file(name)}` does not exist (this kernel does not support it)",
                    "boot with `swapaccount=1` for --memory-swap" if "swap" in name else _DELEGATE_HINT)
            self._write(name, value)

    def _check_cpuset(self, want: str, what: str) -> None:
        avail = _read(os.path.join(os.path.dirname(self._path), f"cpuset.{what}.effective"))
        if avail is None or not avail.strip():
            return
        have = set(cpuset_members(avail.strip()))
        if not set(cpuset_members(want)) <= have:
            if what == "cpus":
                raise UsageError(f"Requested CPUs are not available - requested {want}, available: {avail.strip()}",
                                 "choose CPUs from the available list")
            raise UsageError(f"Requested memory nodes are not available - requested {want}, available: {avail.strip()}",
                             "choose memory nodes from the available list")

    def update(self, limits: Limits, ncpus: Optional[int] = None) -> Limits:
        """`docker update`: change the limits given in ``limits`` (the others stay); returns the new set."""
        merged = self._limits.merged(limits, ncpus)
        missing = [c for c in limits.controllers() if c not in (self._read("cgroup.controllers") or "").split()]
        if missing:
            raise RootlessError(
                f"update {', '.join(limits.flags())}: the {' and '.join(missing)} controller is not enabled for `{self._path}`",
                _DELEGATE_HINT)
        self._apply(merged, limits)
        self._limits = merged
        return merged

    # -- counters ---------------------------------------------------------------------------------
    def oom_kills(self) -> int:
        return _kv(self._read("memory.events")).get("oom_kill", 0)

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer killed a process of this cgroup (memory.events oom_kill)."""
        return self.oom_kills() > 0

    def stats(self) -> CgroupStats:
        mstat = _kv(self._read("memory.stat"))
        current = _int_or_max(self._read("memory.current")) or 0
        cpu = _kv(self._read("cpu.stat"))
        cpu_max = (self._read("cpu.max") or "max").split()
        cpu_limit = None
        if len(cpu_max) == 2 and cpu_max[0] != "max":
            cpu_limit = int(cpu_max[0]) / int(cpu_max[1])
        rbytes = wbytes = 0
        for line in (self._read("io.stat") or "").splitlines():
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes":
                    rbytes += int(v)
                elif k == "wbytes":
                    wbytes += int(v)
        return CgroupStats(
            memory_usage=max(current - mstat.get("inactive_file", 0), 0),
            memory_limit=_int_or_max(self._read("memory.max")),
            memory_peak=_int_or_max(self._read("memory.peak")),
            swap_usage=_int_or_max(self._read("memory.swap.current")),
            oom_kills=self.oom_kills(),
            cpu_usage_usec=cpu.get("usage_usec", 0),
            cpu_user_usec=cpu.get("user_usec", 0),
            cpu_system_usec=cpu.get("system_usec", 0),
            cpu_nr_periods=cpu.get("nr_periods", 0),
            cpu_nr_throttled=cpu.get("nr_throttled", 0),
            cpu_throttled_usec=cpu.get("throttled_usec", 0),
            cpu_limit=cpu_limit,
            cpu_weight=_int_or_max(self._read("cpu.weight")),
            pids_current=_int_or_max(self._read("pids.current")) or 0,
            pids_limit=_int_or_max(self._read("pids.max")),
            io_read_bytes=rbytes,
            io_write_bytes=wbytes,
        )

    # -- freezer ----------------------------------------------------------------------------------
    def _wait_events(self, key: str, value: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if _kv(self._read("cgroup.events")).get(key) == value:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def freeze(self, timeout: float = 10.0) -> None:
        """`pause`: freeze every process of the cgroup (cgroup.freeze) and wait until the kernel says so."""
        self._write("cgroup.freeze", "1")
        if not self._wait_events("frozen", 1, timeout):
            raise RootlessError(f"freeze `{self._path}`: still not frozen after {timeout:g} s",
                                "a process may be stuck in the kernel (D state); try again")

    def thaw(self, timeout: float = 10.0) -> None:
        """`unpause`."""
        self._write("cgroup.freeze", "0")
        if not self._wait_events("frozen", 0, timeout):
            raise RootlessError(f"thaw `{self._path}`: still frozen after {timeout:g} s", None)

    def frozen(self) -> bool:
        return _kv(self._read("cgroup.events")).get("frozen", 0) == 1

    # -- removal ----------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL every process in the cgroup (cgroup.kill, Linux >= 5.14; else one by one)."""
        if os.path.exists(self._file("cgroup.kill")):
            self._write("cgroup.kill", "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.frozen():
            self._write("cgroup.freeze", "0")  # a frozen task only dies once thawed (pre-5.14 kernels)

    def remove(self, timeout: float = 10.0) -> None:
        """Kill what is left, then rmdir, retrying while the kernel still counts dying tasks (EBUSY).

        Idempotent: a cgroup that is already gone is fine.
        """
        if not self.exists():
            return
        deadline = time.monotonic() + timeout
        killed = False
        while True:
            try:
                _rmdir_tree(self._path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise RootlessError(f"remove cgroup `{self._path}`: {_errno_text(e)}",
                                        f"remove it by hand once its processes are gone: `rmdir {self._path}`")
                if time.monotonic() >= deadline:
                    raise RootlessError(f"remove cgroup `{self._path}`: {_errno_text(e)} after {timeout:g} s "
                                        f"(processes left: {' '.join(map(str, self.pids())) or 'none'})",
                                        "a process may be stuck in the kernel (D state); try `rm` again later")
                if not killed or self.pids():
                    try:
                        self.kill()
                    except RootlessError:
                        pass
                    killed = True
                self._wait_events("populated", 0, min(0.5, max(deadline - time.monotonic(), 0)))

    # -- persistence ------------------------------------------------------------------------------
    def to_json(self) -> Dict[str, Any]:
        """A JSON-ready dict for the container's state file."""
        return {"driver": self.driver, "path": self._path, "limits": self._limits.to_dict()}

    @classmethod
    def from_json(cls, data: Union[str, Mapping[str, Any]], cgroup_root: str = "/sys/fs/cgroup") -> CgroupHandle:
        """The handle saved by ``to_json()`` (a dict, or its JSON text); the path must lie under ``cgroup_root``."""
        d = json.loads(data) if isinstance(data, str) else data
        path = os.path.normpath(str(d.get("path", "")))
        root = os.path.normpath(cgroup_root)
        if not path.startswith(root + os.sep) or ".." in path.split(os.sep):
            raise RootlessError(f"load cgroup state: `{path}` is not under `{root}`",
                                "the container's state file is damaged; remove the container")
        return cls(path, Limits.from_dict(d.get("limits") or {}), str(d.get("driver") or "cgroupfs"))


class Manager:
    """Makes per-container cgroups in this user's delegated subtree (see the layout above)."""

    @staticmethod
    def check(
        limits: Limits,
        *,
        info: Optional[CgroupInfo] = None,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_self: str = "/proc/self",
    ) -> None:
        """Raise the error ``for_container`` would raise for ``limits`` here, creating nothing.

        For `create` (fail before any work) and `update` of a container that has no cgroup.
        """
        Manager._where(limits, info, cgroup_root, proc_self)

    @staticmethod
    def _where(limits: Limits, info: Optional[CgroupInfo], cgroup_root: str,
               proc_self: str) -> Optional[Tuple[str, List[str]]]:
        """(base cgroup, usable controllers), None when no cgroup can be made and none is needed."""
        if info is None:
            info = detect(proc_self, cgroup_root)
        asked = ", ".join(f"`{f}`" for f in limits.flags())
        if info.problem or info.path is None:
            if not limits:
                return None
            hint = info.hint or ""
            if info.driver == "systemd" and "not delegated" in (info.problem or ""):
                hint += ("; or start the engine inside a delegated scope of your user manager: "
                         "`systemd-run --user --scope -p Delegate=yes rootless run ...`")
            hint += f"; or run without {asked}" if hint else f"run without {asked}"
            raise RootlessError(f"apply {asked}: {info.problem}", hint)
        base = _delegated_base(info.path, proc_self, cgroup_root)
        available = (_read(os.path.join(base, "cgroup.controllers")) or "").split() if base != info.path else None
        usable = [c for c in info.controllers if available is None or c in available]
        missing = [c for c in limits.controllers() if c not in usable]
        if missing:
            raise RootlessError(
                f"apply {asked}: the {' and '.join(missing)} controller{'s are' if len(missing) > 1 else ' is'} "
                f"not delegated to `{base}` (delegated: {' '.join(usable) or 'none'})",
                _DELEGATE_HINT + f"; or run without {asked}")
        return base, usable

    @staticmethod
    def for_container(
        container_id: str,
        limits: Limits,
        *,
        info: Optional[CgroupInfo] = None,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_self: str = "/proc/self",
    ) -> Optional[CgroupHandle]:
        """A new cgroup for ``container_id`` with ``limits`` written, or None.

        - limits asked, cannot be enforced here (cgroup v1/hybrid, no delegation, a controller
          missing): raises RootlessError with the reason and the fix as hint. Never ignored.
        - no limits asked: a cgroup anyway where delegation works (for stats, OOM reporting,
          pause/unpause), else None, silently; a failure to create it also gives None.
        """
        if not _CONTAINER_ID.match(container_id or ""):
            raise RootlessError(f"create cgroup for `{container_id}`: invalid container id",
                                "ids are letters, digits, `_`, `.` and `-`")
        where = Manager._where(limits, info, cgroup_root, proc_self)
        if where is None:
            return None
        base, usable = where
        try:
            parent = _prepare_parent(base, usable, limits.controllers())
            path = os.path.join(parent, container_id)
            handle = CgroupHandle(path)
            if handle.exists():  # left over from a crash: same id, so it is ours
                handle.remove()
            try:
                os.mkdir(path)
            except OSError as e:
                raise RootlessError(f"create cgroup `{path}`: {_errno_text(e)}", _DELEGATE_HINT)
        except RootlessError:
            if not limits:
                return None
            raise
        try:
            handle._apply(limits, limits)
        except BaseException:
            handle.remove()
            raise
        handle._limits = limits
        return handle


def _rmdir_tree(path: str) -> None:
    """rmdir a cgroup and the child cgroups a container may have made in it (it owns its cgroup)."""
    with os.scandir(path) as it:
        children = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    for child in children:
        try:
            _rmdir_tree(child)
        except FileNotFoundError:
            pass
    os.rmdir(path)


def _own_cgroup(proc_self: str, cgroup_root: str) -> Optional[str]:
    for line in (_read(os.path.join(proc_self, "cgroup")) or "").splitlines():
        if line.startswith("0::"):
            return os.path.join(cgroup_root, line[3:].strip().lstrip("/")).rstrip("/")
    return None


def _marked_delegated(path: str) -> bool:
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(path, name) == b"1":
                return True
        except OSError:
            pass
    return False


def _delegated_base(top: str, proc_self: str, cgroup_root: str) -> str:
    """Where the `rootless/` node goes: below ``top`` (the highest cgroup we own), unless we run in
    a unit that systemd delegated to us on purpose (`systemd-run --user --scope -p Delegate=yes`).

    systemd (>= 251) marks such a unit with the xattr user.delegate=1 (trusted.delegate for the
    system manager); its rules (systemd.io/CGROUP_DELEGATION) say to create cgroups only below a
    delegated unit, so the deepest marked cgroup between our own and ``top`` wins.
    """
    own = _own_cgroup(proc_self, cgroup_root)
    top = top.rstrip("/")
    if own is None or not own.startswith(top + "/"):
        return top
    d = own
    while d != top and d.startswith(top + "/"):
        if _marked_delegated(d):
            return d
        d = os.path.dirname(d)
    return top


def _prepare_parent(top: str, usable: List[str], needed: List[str]) -> str:
    """Make `<top>/rootless` with the usable controllers enabled for its children; returns its path."""
    _enable(top, usable, needed, move_procs=True)
    parent = os.path.join(top, PARENT_NAME)
    try:
        os.mkdir(parent)
    except FileExistsError:
        pass
    except OSError as e:
        raise RootlessError(f"create cgroup `{parent}`: {_errno_text(e)}", _DELEGATE_HINT)
    _enable(parent, usable, needed, move_procs=False)
    return parent


def _enable(cg: str, usable: List[str], needed: List[str], move_procs: bool) -> None:
    ctl = os.path.join(cg, "cgroup.subtree_control")
    have = (_read(ctl) or "").split()
    todo = [c for c in usable if c not in have]
    if not todo:
        return
    if move_procs:
        _evacuate(cg)
    for c in todo:
        try:
            with open(ctl, "w") as f:
                f.write(f"+{c}")
        except OSError as e:
            if c not in needed:
                continue  # nice to have (stats, pause): not worth failing for
            busy = "cgroup v2 allows no processes in a cgroup that enables controllers; "
            raise RootlessError(f"enable the {c} controller in `{ctl}`: {_errno_text(e)}",
                                (busy if e.errno == errno.EBUSY else "") + _DELEGATE_HINT)


def _evacuate(cg: str) -> None:
    """Move the processes in ``cg`` into ``cg/init.scope`` (the no-internal-processes rule)."""
    procs = (_read(os.path.join(cg, "cgroup.procs")) or "").split()
    if not procs:
        return
    leaf = os.path.join(cg, LEAF_NAME)
    try:
        os.makedirs(leaf, exist_ok=True)
    except OSError as e:
        raise RootlessError(f"create cgroup `{leaf}`: {_errno_text(e)}", _DELEGATE_HINT)
    for pid in procs:
        try:
            with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
                f.write(pid)
        except ProcessLookupError:
            continue  # exited meanwhile
        except OSError as e:
            raise RootlessError(
                f"move process {pid} from `{cg}` into `{leaf}`: {_errno_text(e)}",
                "cgroup v2 allows no processes in a cgroup that enables controllers for its children; "
                "move them into a leaf cgroup yourself, or run the engine from a leaf cgroup")
