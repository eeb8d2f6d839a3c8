"""Stage 1 (``rootless:stage1``): become root in a new user namespace, unshare the others,
apply the storage driver's rootfs plan, fork the container init, tell the parent its pid, exit.

Order matters:
- the user namespace first, so that every other namespace is owned by it (and may be set up
  without privileges on the host);
- the rootfs plan after the mount namespace but *before* CLONE_NEWPID: a fuse-overlayfs started
  after it would become pid 1 of the container;
- CLONE_NEWPID last: it applies to children only, so the init forked next is pid 1 there.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Callable, Dict, List, Optional, Tuple

from rootless.errors import RootlessError, RuntimeSetupError
from rootless.idmap import IdMapping
from rootless.linux import syscalls as sc
from rootless.runtime import ExecStep, MountStep, RootfsPlan, Stdio, init, mounts, sync, userns
from rootless.value import Value


class StageConfig(Value):
    """Everything stage 1 and the init need; it pickles (a threaded parent re-executes Python)."""

    __slots__ = (
        "spec", "rootfs", "bundle", "plan", "uid_maps", "gid_maps", "self_map", "join_user",
        "unshare_flags", "new_pid", "new_cgroup", "join", "stdio", "ctl_fd", "exec_fifo",
        "parent_pid", "name", "proc", "seccomp",
    )
    spec: dict
    rootfs: str
    bundle: str
    plan: Optional[RootfsPlan]
    uid_maps: List[IdMapping]
    gid_maps: List[IdMapping]
    self_map: Optional[Tuple[IdMapping, IdMapping]]
    join_user: Optional[str]  # a user namespace path to join instead of creating one
    unshare_flags: int  # namespaces to create (besides user and pid)
    new_pid: bool
    new_cgroup: bool
    join: Dict[str, str]  # OCI ns type -> path to setns into
    stdio: Stdio
    ctl_fd: int
    exec_fifo: Optional[str]
    parent_pid: int
    name: str
    proc: str
    seccomp: Optional[bytes]  # the compiled linux.seccomp, installed just before execve

    def __init__(
        self,
        spec: dict,
        rootfs: str,
        bundle: str,
        plan: Optional[RootfsPlan],
        uid_maps: List[IdMapping],
        gid_maps: List[IdMapping],
        self_map: Optional[Tuple[IdMapping, IdMapping]],
        join_user: Optional[str],
        unshare_flags: int,
        new_pid: bool,
        new_cgroup: bool,
        join: Optional[Dict[str, str]] = None,
        stdio: Stdio = Stdio(),
        ctl_fd: int = -1,
        exec_fifo: Optional[str] = None,
        parent_pid: int = 0,
        name: str = "",
        proc: str = "/proc",
        seccomp: Optional[bytes] = None,
    ) -> None:
        self.spec = spec
        self.rootfs = rootfs
        self.bundle = bundle
        self.plan = plan
        self.uid_maps = uid_maps
        self.gid_maps = gid_maps
        self.self_map = self_map
        self.join_user = join_user
        self.unshare_flags = unshare_flags
        self.new_pid = new_pid
        self.new_cgroup = new_cgroup
        self.join = {} if join is None else join
        self.stdio = stdio
        self.ctl_fd = ctl_fd
        self.exec_fifo = exec_fifo
        self.parent_pid = parent_pid
        self.name = name
        self.proc = proc
        self.seccomp = seccomp


def main(cfg: StageConfig) -> None:
    """The body of stage 1; never returns."""
    try:
        sc.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != cfg.parent_pid:
            os._exit(125)  # the parent died before we could ask it to die with it
        sc.set_name("rootless:stage1")
    except OSError:
        pass
    # Re-executed from a threaded caller, this fd came through pass_fds and is inheritable: make
    # it close-on-exec again, or the container keeps it open and the parent, which waits for EOF
    # as the sign that the init exec'd, would wait until the container exits.
    os.set_inheritable(cfg.ctl_fd, False)
    ctl = socket.socket(fileno=cfg.ctl_fd)
    try:
        _run(cfg, ctl)
    except RootlessError as e:
        _send_error(ctl, e.message, e.hint, e.exit_code)
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        _send_error(ctl, f"set up the container (stage 1): {type(e).__name__}: {e}",
                    "this is a bug in rootless; please report it", 125)
    os._exit(125)


def _send_error(ctl: socket.socket, message: str, hint: Optional[str], code: int) -> None:
    try:
        sync.send(ctl, sync.Error(message, hint, code))
    except OSError:
        pass


def _open_ns(kind: str, path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeSetupError(f"open {kind} namespace `{path}`: {e.strerror}", "check linux.namespaces in config.json")


def _run(cfg: StageConfig, ctl: socket.socket) -> None:
    # Namespace files are opened while we still see the host's /proc with our host identity.
    join_fds = {kind: _open_ns(kind, path) for kind, path in cfg.join.items()}
    if cfg.join_user:
        fd = _open_ns("user", cfg.join_user)
        try:
            sc.setns(fd, sc.CLONE_NEWUSER)
        except OSError as e:
            raise RuntimeSetupError(f"join user namespace `{cfg.join_user}`: {e.strerror}")
        os.close(fd)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    else:
        userns.enter_userns(sc.CLONE_NEWUSER, ctl, cfg.self_map, cfg.proc, early_flags=cfg.unshare_flags)
    for kind, fd in join_fds.items():
        try:
            sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
        except OSError as e:
            raise RuntimeSetupError(f"join {kind} namespace `{cfg.join[kind]}`: {e.strerror}",
                                    "a namespace of another user namespace can only be joined from inside it")
        os.close(fd)
    if cfg.join_user and cfg.unshare_flags:
        try:
            sc.unshare(cfg.unshare_flags)
        except OSError as e:
            kinds = [k for k, f in sc.NAMESPACE_FLAGS.items() if cfg.unshare_flags & f]
            raise RuntimeSetupError(f"unshare `{', '.join(kinds)}` namespaces: {e.strerror}", userns.USERNS_HINT)
    # Mount events must not travel back to the host (they could not anyway from a user
    # namespace, but a private tree also keeps pivot_root happy). rootfsPropagation may ask otherwise.
    prop = (cfg.spec.get("linux") or {}).get("rootfsPropagation") or "rslave"
    pflags = mounts._PROPAGATION.get(prop)
    if pflags is None:
        raise RuntimeSetupError(f"set rootfs propagation `{prop}`: unknown", "use private, slave, shared or unbindable (r-prefixed)")
    mounts.do_mount("/", None, "/", None, pflags | sc.MS_REC, None, "/")
    if cfg.plan is not None:
        apply_plan(cfg.plan, lambda pid: sync.send(ctl, sync.HelperPid(pid)))
    if cfg.plan is not None and any(isinstance(s, ExecStep) for s in cfg.plan.steps):
        # pivot_root moves the root of every process of the mount namespace whose root is the
        # old one: a fuse-overlayfs serving the rootfs would lose its lower layers. Keep the
        # tools in this namespace and give the container a copy of it (podman keeps them in
        # its pause process's namespace for the same reason).
        try:
            sc.unshare(sc.CLONE_NEWNS)
        except OSError as e:
            raise RuntimeSetupError(f"unshare `mount` namespace: {e.strerror}")
    if cfg.new_pid:
        try:
            sc.unshare(sc.CLONE_NEWPID)
        except OSError as e:
            raise RuntimeSetupError(f"unshare `pid` namespace: {e.strerror}", userns.USERNS_HINT)
    pid = os.fork()
    if pid == 0:
        init.main(cfg, ctl)  # never returns
        os._exit(125)
    sync.send(ctl, sync.InitPid(pid))
    os._exit(0)


def apply_plan(plan: RootfsPlan, on_helper: Callable[[int], None]) -> None:
    """The storage driver's steps, in order: mounts, and tools (fuse-overlayfs) whose pids
    go to ``on_helper`` when they stay in the foreground."""
    for step in plan.steps:
        if isinstance(step, MountStep):
            mount_step(step)
        elif isinstance(step, ExecStep):
            pid = exec_step(step)
            if pid:
                on_helper(pid)
        else:
            raise RuntimeSetupError(f"apply the rootfs plan: unknown step {type(step).__name__}")


def mount_step(step: MountStep) -> None:
    flags, prop, data = mounts.parse_options(step.options)
    if step.data:
        data = f"{data},{step.data}" if data else step.data
    if flags & sc.MS_BIND:
        mounts.bind(step.source, step.target, flags, prop, step.target)
        return
    mounts.do_mount(step.fstype, step.source, step.target, step.fstype, flags, data)
    for p in prop:
        mounts.do_mount(step.fstype, None, step.target, None, p, None)


def _is_mountpoint(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False


def exec_step(step: ExecStep) -> Optional[int]:
    """Start the tool; wait for its mount. Returns its pid when it stays in the foreground."""
    import tempfile

    from rootless import tools

    err = tempfile.TemporaryFile()
    shown = " ".join(step.argv)
    try:
        p = tools.spawn(step.argv, stdout=err.fileno(), stderr=err.fileno(), hint="check the storage driver's settings")
    except RootlessError as e:
        err.close()
        raise RuntimeSetupError(e.message, e.hint)
    if step.wait_mount is None:
        rc = p.wait()
        if rc != 0:
            raise RuntimeSetupError(f"run `{shown}`: exit status {rc}: {_tail(err)}")
        err.close()
        return None
    deadline = time.monotonic() + step.timeout
    delay = 0.0005
    while True:
        rc = p.poll()
        if _is_mountpoint(step.wait_mount):
            if rc is not None and rc != 0:
                raise RuntimeSetupError(f"run `{shown}`: exit status {rc}: {_tail(err)}")
            err.close()
            if rc is None:
                p.returncode = 0  # not ours to reap any more: the parent adopts it (subreaper)
                return p.pid
            return None
        if rc is not None:
            raise RuntimeSetupError(f"run `{shown}`: exit status {rc} before `{step.wait_mount}` was mounted: {_tail(err)}",
                                    "check the storage driver's settings")
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            raise RuntimeSetupError(f"run `{shown}`: `{step.wait_mount}` not mounted after {step.timeout:g} s: {_tail(err)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _tail(f) -> str:
    try:
        f.seek(0)
        text = f.read()[-2000:].decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return "\n".join(text.splitlines()[-5:]) or "(no output)"
