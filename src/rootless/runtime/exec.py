"""exec: a new process in a running container, beside create/start (runc's setnsProcess next to its
initProcess).

Three processes, and the messages of runtime/sync.py between them:

- the caller (``spawn``) forks the *joiner* and reads messages until EOF (the command exec'd or
  everything died);
- the joiner makes itself unfit to spy on (non-dumpable, no environment, only the fds it needs:
  DESIGN's security rules), runs the engine's ``on_fork`` (e.g. joins the container's cgroup: the
  runtime knows no cgroups), joins the namespaces of the container's init that differ from ours
  (user first, pid last), enters its root, forks the *command* and sends ``ExecPid``; it then waits
  for the command and exits as it did (the caller's exit code);
- the command, in the container's pid namespace: user from the container's /etc/passwd (numeric
  after the chroot: no NSS), cwd, a pty of the container's own devpts (``PtyMaster``), then
  init.finalize (the steps a container's init takes: caps, groups, uid, seccomp, no_new_privs)
  and execve. Any failure is an ``Error`` message with docker's exit codes (126, 127).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable, Dict, List, Optional, Tuple

from rootless import procs, userdb
from rootless.errors import RootlessError, RuntimeSetupError
from rootless.linux import syscalls as sc
from rootless.runtime import Stdio, init, sync
from rootless.value import Value

# setns order: the user namespace first (it gives the capabilities the others need), the pid
# namespace last (it only applies to children: hence the second fork). See setns(2).
NAMESPACES = ("user", "mnt", "uts", "ipc", "net", "cgroup", "pid")
NS_FLAG = {"user": 0x10000000, "mnt": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "net": 0x40000000,
           "cgroup": 0x02000000, "pid": 0x20000000}


class ExecSpec(Value):
    """What to run in the container whose init has host pid ``pid``.

    ``process`` is an OCI process (args, env, cwd, capabilities, rlimits, noNewPrivileges,
    user.umask); ``user`` a docker user spec resolved in the container's /etc/passwd (``""``:
    root), and with ``set_home`` its home becomes HOME. ``stdio`` as for a container (with
    ``tty`` the command gets a pty of the container's devpts); ``detach``: a session of its own,
    stdio /dev/null, the caller does not wait. ``seccomp``: the compiled filter to load.
    """

    __slots__ = ("pid", "process", "user", "set_home", "stdio", "detach", "seccomp", "proc")
    pid: int
    process: dict
    user: str
    set_home: bool
    stdio: Stdio
    detach: bool
    seccomp: Optional[bytes]
    proc: str

    def __init__(
        self,
        pid: int,
        process: dict,
        user: str = "",
        set_home: bool = False,
        stdio: Stdio = Stdio(),
        detach: bool = False,
        seccomp: Optional[bytes] = None,
        proc: str = "/proc",
    ) -> None:
        self.pid = pid
        self.process = process
        self.user = user
        self.set_home = set_home
        self.stdio = stdio
        self.detach = detach
        self.seccomp = seccomp
        self.proc = proc


class ExecProcess:
    """A started exec: the joiner (our child), the command's host pid, the pty master (with tty)."""

    def __init__(self, joiner: int, pid: int, pty_master: Optional[int]) -> None:
        self.joiner = joiner
        self.pid = pid
        self.pty_master = pty_master
        self._code: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self._code is None:
            got, status = os.waitpid(self.joiner, os.WNOHANG)
            if got:
                self._code = procs.exit_code(status)
        return self._code

    def wait(self) -> int:
        if self._code is None:
            self._code = procs.wait(self.joiner)
        return self._code


def namespaces_to_join(pid: int, proc: str = "/proc") -> List[Tuple[str, str]]:
    """(kind, path) of the namespaces of ``pid`` that differ from ours (--network host shares ours).

    PermissionError when they cannot be read (the process runs as another user)."""
    out = []
    for ns in NAMESPACES:
        try:
            theirs = os.readlink(f"{proc}/{pid}/ns/{ns}")
        except FileNotFoundError:
            continue
        try:
            ours = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            ours = ""
        if theirs != ours:
            out.append((ns, f"{proc}/{pid}/ns/{ns}"))
    return out


def spawn(spec: ExecSpec, ns_paths: List[Tuple[str, str]], on_fork: Optional[Callable[[], None]] = None,
          on_pid: Optional[Callable[[int], None]] = None) -> ExecProcess:
    """Start ``spec`` in the container; return once the command exec'd (or raise why it did not).

    ``on_fork`` runs in the joiner before it joins anything; ``on_pid`` in the caller as soon as
    the command's pid is known (signals to forward). With ``detach`` the joiner is reaped here."""
    parent_sock, child_sock = sync.socketpair()
    for f in (sys.stdout, sys.stderr):
        f.flush()
    joiner = os.fork()
    if joiner == 0:  # pragma: no cover - runs in the child
        parent_sock.close()
        code = 125
        try:
            keep = [child_sock.fileno()] + [fd for fd in (spec.stdio.stdin, spec.stdio.stdout, spec.stdio.stderr)
                                            if fd is not None]
            before_joining(*keep)
            if on_fork is not None:
                on_fork()
            code = _joiner(spec, ns_paths, child_sock)
        except BaseException as e:  # noqa: BLE001
            _send(child_sock, sync.Error(f"exec in container: {type(e).__name__}: {e}"))
        os._exit(code)
    child_sock.close()
    pid = 0
    master = None
    error = None
    try:
        while True:
            msg, fd = sync.recv_with_fd(parent_sock)
            if msg is None:
                break
            if isinstance(msg, sync.ExecPid):
                pid = int(msg.pid)
                if on_pid is not None:
                    on_pid(pid)
            elif isinstance(msg, sync.PtyMaster) and fd is not None:
                master = fd
            elif isinstance(msg, sync.Error):
                error = msg
            elif fd is not None:
                os.close(fd)
    finally:
        parent_sock.close()
    if error is not None:
        if master is not None:
            os.close(master)
        procs.wait(joiner)
        raise RuntimeSetupError(error.message, error.hint or "check the command and the container", error.exit_code)
    proc = ExecProcess(joiner, pid, master)
    if spec.detach:
        proc.wait()
    return proc


def before_joining(*keep: int) -> None:  # pragma: no cover - runs in the forked child
    """Make this process unfit to spy on before it joins the container (DESIGN's security rules).

    Once in the container's pid namespace, its processes see ours; as the same uid, they could
    ptrace it or read its /proc/PID/environ (the CLI's environment: tokens) and its fds (runc's
    CVE-2016-9962). Not dumpable, only a process with CAP_SYS_PTRACE over our memory's (the host's)
    user namespace may; the command gets back a dumpable process of its own at execve. It needs
    nothing of our environment (its own comes from the container's config) nor of our fds."""
    sc.set_dumpable(False)
    os.environ.clear()
    sc.scrub_environ()
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _send(sock, msg, fd: Optional[int] = None) -> None:  # pragma: no cover - runs in the forked children
    try:
        sync.send(sock, msg, fd)
    except OSError:
        pass


def _joiner(spec: ExecSpec, ns_paths: List[Tuple[str, str]], sock) -> int:  # pragma: no cover - forked child
    """Join the namespaces and the root, fork into the pid namespace, relay the command's exit."""
    # everything the command's process needs is imported at the top of this module and of init:
    # after the chroot our sources are out of sight
    try:
        sc.set_name("rootless:exec")
    except OSError:
        pass
    fds = []
    for ns, path in ns_paths:
        try:
            fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except OSError as e:
            _send(sock, sync.Error(f"open namespace `{path}`: {e.strerror}", None, 125))
            return 125
    root_fd = None
    for ns, fd in fds:
        try:
            sc.setns(fd, NS_FLAG[ns])
        except OSError as e:
            _send(sock, sync.Error(f"join the container's `{ns}` namespace: {e.strerror}",
                                   "is the container still running?", 125))
            return 125
        os.close(fd)
        if ns == "user":
            try:
                root_fd = os.open(f"{spec.proc}/{spec.pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                root_fd = None
    if root_fd is not None:  # after setns(mnt) we are at the namespace's root; make sure it is the container's
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)
    os.chdir("/")
    b = os.fork()
    if b == 0:
        try:
            _command(spec, sock)
        except BaseException as e:  # noqa: BLE001
            err = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            code = int(getattr(e, "exit_code", 125) or 125)
            _send(sock, sync.Error(err, getattr(e, "hint", None), code))
            os._exit(code)
        os._exit(125)
    _send(sock, sync.ExecPid(b))
    sock.close()
    for fd in (spec.stdio.stdin, spec.stdio.stdout, spec.stdio.stderr):
        if fd is not None and fd > 2:
            os.close(fd)
    if spec.detach:
        return 0
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, signal.SIG_IGN)  # our caller forwards signals to the command itself
    return procs.wait(b)


def _read_file(p: str) -> Optional[bytes]:  # pragma: no cover - runs in the forked child
    try:
        with open(p, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def _command(spec: ExecSpec, sock) -> None:  # pragma: no cover - runs in the forked child
    """In the container's pid namespace: user, cwd, stdio, finalize, execve."""
    process = dict(spec.process)
    stdio = spec.stdio
    if spec.detach:
        os.setsid()
    eu = userdb.resolve(spec.user, _read_file)
    env: Dict[str, str] = init.env_map(process.get("env") or [])
    if spec.set_home:
        env["HOME"] = eu.home or "/"
    env.setdefault("PATH", init.DEFAULT_PATH)
    process["env"] = [f"{k}={v}" for k, v in env.items()]
    process["user"] = {"uid": eu.uid, "gid": eu.gid, "additionalGids": list(eu.additional_gids),
                       "umask": (process.get("user") or {}).get("umask", 0o022)}
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise RootlessError(f"chdir to `{cwd}`: {e.strerror}", "give -w a directory of the container")
    slave = None
    if stdio.tty:
        master, slave = os.openpty()  # the container's /dev/ptmx: a pty of its own devpts
        _send(sock, sync.PtyMaster(), master)
        os.close(master)
    elif spec.detach:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    args = [str(a) for a in process.get("args") or []]
    path = init.lookup(args[0], env.get("PATH", init.DEFAULT_PATH))
    init.finalize(process, Stdio() if stdio.tty else stdio, slave, spec.seccomp, sc.last_cap(),
                  init.setgroups_permitted())
    for rl in process.get("rlimits") or []:
        try:
            init.set_rlimit(rl)
        except RootlessError:
            pass
    init.close_fds(keep=sock.fileno())
    try:
        os.execve(path, args, env)
    except OSError as e:
        code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        raise init.exec_error(args[0], (e.strerror or str(e)).lower(), code)
