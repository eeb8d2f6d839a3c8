"""The parent side of ``spawn``: start stage 1, map its ids, follow the messages, hand back a Process."""

from __future__ import annotations

import os
import signal
from typing import Callable, Dict, List, Optional

from rootless.errors import RuntimeSetupError
from rootless.idmap import UserIds
from rootless.linux import syscalls as sc
from rootless.runtime import RootfsPlan, Stdio, sync, userns
from rootless.runtime.process import Process
from rootless.runtime.stage1 import StageConfig
from rootless.runtime.stage1 import main as stage1_main

_KNOWN_NS = ("user", "mount", "pid", "uts", "ipc", "network", "cgroup", "time")
# Generous bounds so that a stuck stage is an error, never a hang (a rootfs helper has its own).
SETUP_TIMEOUT = 120.0
EXEC_TIMEOUT = 60.0


def _namespaces(spec: dict, proc: str):
    """(join_user, join {type: path}, unshare flags, new_pid, new_cgroup) from linux.namespaces."""
    entries = (spec.get("linux") or {}).get("namespaces") or []
    seen: Dict[str, Optional[str]] = {}
    for n in entries:
        t = n.get("type")
        if t not in _KNOWN_NS:
            raise RuntimeSetupError(f"read linux.namespaces: unknown namespace type `{t}`",
                                    f"use one of {', '.join(_KNOWN_NS)}")
        if t in seen:
            raise RuntimeSetupError(f"read linux.namespaces: `{t}` is listed twice", "fix config.json")
        seen[t] = n.get("path") or None
    if seen.get("mount"):
        raise RuntimeSetupError("join mount namespace: not supported", "remove `path` from the mount namespace")
    if seen.get("time") is None and "time" in seen:
        raise RuntimeSetupError("unshare `time` namespace: not supported by rootless", "remove it from linux.namespaces")
    join_user = seen.get("user")
    join: Dict[str, str] = {}
    flags = sc.CLONE_NEWNS
    new_pid = False
    new_cgroup = False
    for t, path in seen.items():
        if t in ("user", "mount"):
            continue
        if path:
            join[t] = path
        elif t == "pid":
            new_pid = True
        elif t == "cgroup":
            new_cgroup = os.path.exists(f"{proc}/self/ns/cgroup")  # "where available"
        else:
            flags |= sc.NAMESPACE_FLAGS[t]
    return join_user, join, flags, new_pid, new_cgroup


def _rootfs(spec: dict, plan: Optional[RootfsPlan], bundle: Optional[str]) -> str:
    if plan is not None:
        path = plan.rootfs
    else:
        path = (spec.get("root") or {}).get("path") or ""
        if not path:
            raise RuntimeSetupError("read config.json: `root.path` is missing", "set root.path to the rootfs directory")
        if not os.path.isabs(path):
            path = os.path.join(bundle or os.getcwd(), path)
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        why = "no such directory" if not os.path.lexists(path) else "not a directory"
        raise RuntimeSetupError(f"use rootfs `{path}`: {why}", "check root.path in config.json (relative to the bundle)")
    return path


def _winsize(stdio: Stdio) -> Optional[bytes]:
    import fcntl
    import termios

    candidates = [stdio.winsize_from] if stdio.winsize_from is not None else [0, 1, 2]
    for fd in candidates:
        try:
            if os.isatty(fd):
                return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            continue
    return None


def set_winsize(master: int, winsize: bytes) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)
    except OSError:
        pass


def spawn(
    spec: dict,
    *,
    ids: UserIds,
    rootfs_plan: Optional[RootfsPlan],
    stdio: Stdio,
    on_ready: Optional[Callable[[int], None]],
    name: str,
    bundle: Optional[str],
    exec_fifo: Optional[str],
    proc: str,
) -> Process:
    if not isinstance(spec, dict) or not isinstance(spec.get("process"), dict):
        raise RuntimeSetupError("read config.json: `process` is missing", "give the container a process to run")
    if not spec["process"].get("args"):
        raise RuntimeSetupError("read config.json: `process.args` is empty", "give a command or an image with a CMD")
    bundle = os.path.abspath(bundle or os.getcwd())
    rootfs = _rootfs(spec, rootfs_plan, bundle)
    join_user, join, flags, new_pid, new_cgroup = _namespaces(spec, proc)
    uid_maps, gid_maps = userns.maps_for(ids, spec)
    self_map = None
    if join_user is None and userns.can_self_map(uid_maps, gid_maps, os.getuid(), os.getgid()):
        self_map = (uid_maps[0], gid_maps[0])
    try:
        sc.set_child_subreaper(True)
    except OSError as e:
        raise RuntimeSetupError(f"become a child subreaper: {e.strerror}")
    prog = _seccomp_program(spec)
    ctl, ctl_child = sync.socketpair()
    cfg = StageConfig(
        spec=spec, rootfs=rootfs, bundle=bundle, plan=rootfs_plan, uid_maps=uid_maps, gid_maps=gid_maps,
        self_map=self_map, join_user=join_user, unshare_flags=flags, new_pid=new_pid, new_cgroup=new_cgroup,
        join=join, stdio=stdio, ctl_fd=ctl_child.fileno(), exec_fifo=exec_fifo, parent_pid=os.getpid(),
        name=name, proc=proc, seccomp=prog,
    )
    pass_fds = [ctl_child.fileno()] + [fd for fd in (stdio.stdin, stdio.stdout, stdio.stderr) if fd is not None]
    try:
        stage1_pid = userns.start_child(stage1_main, (cfg,), pass_fds=pass_fds, proc=proc, close_in_child=(ctl.fileno(),))
    except BaseException:
        ctl.close()
        raise
    finally:
        ctl_child.close()
    p = _Spawning(stage1_pid)
    try:
        if join_user is None and self_map is None:
            userns.map_child(stage1_pid, ctl, uid_maps, gid_maps)
        p.follow_until_ready(ctl)
        winsize = _winsize(stdio) if p.pty_master is not None else None
        if winsize is not None and not (spec["process"].get("consoleSize") or {}).get("width"):
            set_winsize(p.pty_master, winsize)  # type: ignore[arg-type]
        if on_ready is not None:
            on_ready(p.init_pid)  # type: ignore[arg-type]
        if exec_fifo is None:
            try:
                sync.send(ctl, sync.Start())
            except OSError:
                pass  # the init is gone; what it said (or its silence) is read below
            p.follow_until_exec(ctl)
    except BaseException:
        p.cleanup(ctl)
        ctl.close()
        raise
    ctl.close()
    p._reap_stage1()
    return Process(p.init_pid, p.pty_master, p.helpers)  # type: ignore[arg-type]


def _seccomp_program(spec: dict) -> Optional[bytes]:
    """linux.seccomp compiled here, as the user (its cache is theirs), before any namespace."""
    profile = (spec.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from rootless.linux import seccomp

    return seccomp.program(profile)


class _Spawning:
    """The bookkeeping of one spawn in flight: which pids exist, what went wrong."""

    def __init__(self, stage1_pid: int):
        self.stage1_pid = stage1_pid
        self.stage1_status: Optional[int] = None
        self.init_pid: Optional[int] = None
        self.pty_master: Optional[int] = None
        self.helpers: List[int] = []
        self.got_error = False

    def _handle(self, msg, fd: Optional[int]) -> None:
        if isinstance(msg, sync.InitPid):
            self.init_pid = msg.pid
        elif isinstance(msg, sync.HelperPid):
            self.helpers.append(msg.pid)
        elif isinstance(msg, sync.PtyMaster) and fd is not None:
            self.pty_master = fd
            os.set_inheritable(fd, False)
        elif isinstance(msg, sync.Error):
            raise RuntimeSetupError(msg.message, msg.hint, msg.exit_code)
        elif fd is not None:
            os.close(fd)

    def _reap_stage1(self) -> int:
        if self.stage1_status is None:
            self.stage1_status = userns.wait_status(self.stage1_pid)
        return self.stage1_status

    def follow_until_ready(self, ctl) -> None:
        """Until the init is set up (Ready) and stage 1 has said its pid, in either order."""
        ready = False
        while not (ready and self.init_pid):
            msg, fd = sync.recv_with_fd(ctl, SETUP_TIMEOUT)
            if msg is None:
                status = self._reap_stage1()
                what = "the container's init" if self.init_pid else "stage 1 of the runtime"
                raise RuntimeSetupError(f"set up the container: {what} exited with status {status} without saying why",
                                        "run again with --debug; this is a bug in rootless")
            if isinstance(msg, sync.Ready):
                ready = True
                continue
            if isinstance(msg, sync.Error):
                self.got_error = True
            self._handle(msg, fd)
        # stage 1 exits right after InitPid; it is reaped once the init runs (spawn's end), so
        # that its exit (unmapping a copy of this process) is not waited for on the way

    def follow_until_exec(self, ctl) -> None:
        """EOF means the init exec'd (its end of the socket is close-on-exec) or died."""
        while True:
            msg, fd = sync.recv_with_fd(ctl, EXEC_TIMEOUT)
            if msg is None:
                return
            self._handle(msg, fd)

    def cleanup(self, ctl) -> None:
        """Kill and reap whatever this spawn started; close the pty."""
        if self.stage1_status is None:
            if not self.got_error:
                try:
                    os.kill(self.stage1_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._reap_stage1()  # after an Error it exits by itself, having sent InitPid if it forked
        self._drain(ctl)
        pids = ([self.init_pid] if self.init_pid else []) + self.helpers
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if self.pty_master is not None:
            os.close(self.pty_master)
            self.pty_master = None

    def _drain(self, ctl) -> None:
        """Read what is left in the socket, for an InitPid or HelperPid not seen yet."""
        import socket

        ctl.setblocking(False)
        while True:
            try:
                data, fds, _f, _a = socket.recv_fds(ctl, sync.MAX_MSG, 1)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            msg = sync.decode(data)
            if isinstance(msg, sync.InitPid):
                self.init_pid = msg.pid
            elif isinstance(msg, sync.HelperPid):
                self.helpers.append(msg.pid)
            for fd in fds:
                os.close(fd)
