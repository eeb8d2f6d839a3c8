"""cgroup v2 in a delegated subtree: what this user may control, and why not when it may not.

This module answers "can limits be enforced for this user here, and if not, why and how to fix
it". Kernel paths are parameters so unit tests can point them at a temporary tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

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
