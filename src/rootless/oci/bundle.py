"""OCI bundles on disk, and running one with an external OCI runtime (crun, runc).

A bundle is a directory with ``config.json`` (the spec from ``oci.spec.generate``). Our own
runtime takes the spec in memory; ``default-runtime = "crun"`` (or ``--runtime``) writes the same
spec and runs ``<runtime> [runtimeArgs] --root DIR run --bundle BUNDLE ID`` instead.

External runtimes see the rootfs as a host directory, so the storage driver must give one outside
any namespace of ours: vfs (a plain directory), or fuse-overlayfs mounted on the host by this module
(as the user; processes running as a non-root uid in the container then cannot read the FUSE mount,
because FUSE allows only the mounting uid without `allow_other`). overlay2 is mounted inside our
runtime's user namespace and cannot be used with them; the engine says so before creating anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from rootless import paths, tools
from rootless.errors import RootlessError


def write(bundle: str, spec: Dict[str, Any], durable: bool = False) -> str:
    """Write ``bundle/config.json``; returns its path."""
    os.makedirs(bundle, mode=0o700, exist_ok=True)
    path = os.path.join(bundle, "config.json")
    data = json.dumps(spec, indent=1).encode()
    paths.atomic_write(path, data, mode=0o600, durable=durable)
    return path


def read(bundle: str) -> Dict[str, Any]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise RootlessError(f"read bundle `{bundle}`: no config.json", "generate one, e.g. with `crun spec --rootless`")
    except (OSError, ValueError) as e:
        raise RootlessError(f"read bundle config `{path}`: {e}", "check that it is valid JSON")


def _is_mountpoint(path: str) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path.rstrip("/"))).st_dev
    except OSError:
        return False


def mount_plan_on_host(plan) -> Callable[[], None]:
    """Run a rootfs plan's steps on the host (fuse-overlayfs only); returns the undo."""
    from rootless.runtime import ExecStep

    started: List[Tuple[subprocess.Popen, Optional[str]]] = []

    def undo() -> None:
        for p, mnt in reversed(started):
            if mnt and _is_mountpoint(mnt):
                tool = "fusermount3" if tools.which("fusermount3") else "fusermount"
                tools.run([tool, "-u", "-z", mnt], check=False, what=f"unmount `{mnt}`")
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    try:
        for step in plan.steps:
            if not isinstance(step, ExecStep):
                raise RootlessError(
                    "mount the rootfs for an external runtime: only the vfs and fuse-overlayfs storage drivers work here",
                    'set storage-driver = "vfs" or "fuse-overlayfs" in daemon.toml',
                )
            p = tools.spawn(step.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            started.append((p, step.wait_mount))
            deadline = time.monotonic() + step.timeout
            while step.wait_mount and not _is_mountpoint(step.wait_mount):
                if p.poll() is not None:
                    tools.wait_checked(p, what=f"mount the rootfs with `{step.argv[0]}`")
                    raise RootlessError(f"mount `{step.wait_mount}`: `{step.argv[0]}` exited before mounting it")
                if time.monotonic() > deadline:
                    raise RootlessError(f"mount `{step.wait_mount}`: `{step.argv[0]}` did not mount it in time")
                time.sleep(0.005)
    except BaseException:
        undo()
        raise
    return undo


class ExternalProcess:
    """``<runtime> run`` in the foreground: the same small surface as runtime.Process."""

    pty_master: Optional[int] = None

    def __init__(self, popen: subprocess.Popen, argv_base: List[str], cid: str):
        self.popen = popen
        self.pid = popen.pid
        self._base = argv_base
        self._cid = cid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        # `crun run` does not forward signals; `crun kill` reaches the container's init
        tools.run(self._base + ["kill", self._cid, str(int(sig))], check=False, timeout=10, what="kill the container")

    def wait(self) -> int:
        rc = self.popen.wait()
        return 128 - rc if rc < 0 else rc


def cgroup2_blocks_crun(cgroup_root: str = "/sys/fs/cgroup") -> bool:
    """True on a hybrid host whose cgroup2 mount holds controllers: crun (1.8) refuses to run there
    ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2")."""
    try:
        with open(os.path.join(cgroup_root, "unified", "cgroup.controllers")) as f:
            return bool(f.read().strip())
    except OSError:
        return False


_HIDE_CGROUP2 = 'mount -t tmpfs -o size=4k,mode=0555 none "$0" && exec "$@"'


def wrapped_argv(argv: List[str], ids, cgroup_root: str = "/sys/fs/cgroup") -> List[str]:
    """Run ``argv`` as root of a user namespace with the user's mapping, where the hybrid cgroup2 mount
    is hidden (what Podman's users do with `podman unshare mount -t tmpfs ... /sys/fs/cgroup/unified`).

    util-linux unshare maps the ranges through newuidmap; the comma form of --map-users is the one
    both 2.38 and later versions accept.
    """
    out = ["unshare", "--user", "--mount", "--propagation", "private", "--map-root-user"]
    if ids.has_ranges:
        uid_r, gid_r = ids.subuids[0], ids.subgids[0]
        out += [f"--map-users={uid_r.start},1,{uid_r.count}", f"--map-groups={gid_r.start},1,{gid_r.count}"]
    return out + ["--", "sh", "-c", _HIDE_CGROUP2, os.path.join(cgroup_root, "unified")] + argv


def nested_spec(spec: Dict[str, Any], ids) -> Dict[str, Any]:
    """The spec with its id maps relative to the wrapping user namespace (identity over its ids)."""
    out = json.loads(json.dumps(spec))
    linux = out.setdefault("linux", {})
    if ids.has_ranges:
        n = min(ids.subuids[0].count, ids.subgids[0].count)
        maps = [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": 1, "hostID": 1, "size": n}]
    else:
        maps = [{"containerID": 0, "hostID": 0, "size": 1}]
    linux["uidMappings"] = maps
    linux["gidMappings"] = [dict(m) for m in maps]
    return out


def start(config, runtime, bundle: str, cid: str, spec: Dict[str, Any], plan, ids, stdio,
          on_ready) -> Tuple[ExternalProcess, Callable[[], None]]:
    """Write the bundle and start ``runtime`` on it in the foreground; returns the process and the undo."""
    if stdio is not None and getattr(stdio, "tty", False):
        raise RootlessError(f"use -t with runtime `{runtime.name}`: not supported yet", "drop -t, or use the default runtime")
    wrap = cgroup2_blocks_crun()
    write(bundle, nested_spec(spec, ids) if wrap else spec)
    undo = mount_plan_on_host(plan)
    root = os.path.join(config.exec_root, runtime.name)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        base = [runtime.path] + list(runtime.args)
        if "--root" not in runtime.args:
            base += ["--root", root]
        argv = base + ["run", "--bundle", bundle, cid]
        if wrap:
            argv = wrapped_argv(argv, ids)
        si = stdio.stdin if stdio is not None else None
        so = stdio.stdout if stdio is not None else None
        se = stdio.stderr if stdio is not None else None
        popen = tools.spawn(argv, stdin=si, stdout=so, stderr=se)  # type: ignore[arg-type]
    except BaseException:
        undo()
        raise
    on_ready(popen.pid)
    return ExternalProcess(popen, base, cid), undo
