"""The low-level runtime: turn an OCI runtime-spec ``config.json`` (a dict) into a running process.

Public API (everything the engine and the OCI runtime CLI use; nothing else is public):

- ``MountStep``, ``ExecStep``, ``RootfsPlan``: what the storage driver wants done inside the
  container's new user + mount namespace before the spec's own mounts (an overlay mount, or a
  fuse-overlayfs started there).
- ``Stdio``: the container's stdin/stdout/stderr, or a pty.
- ``spawn(spec, ids=, rootfs_plan=, stdio=, on_ready=, name=) -> Process``.
- ``Process``: ``pid``, ``wait()``, ``poll()``, ``kill(sig)``, ``pty_master``, ``helper_pids``.
- ``run_in_userns(fn, *args, ids=, mount_ns=False, schema=None)`` (re-exported from ``runtime.userns``).
- ``ids_for_current_user()``, ``proc_start_time(pid)``, ``DEFAULT_CAPABILITIES``,
  ``ANNOTATION_INIT`` (``"io.rootless.init": "true"`` in spec.annotations: our reaping pid 1).
- ``runtime.exec.spawn(ExecSpec, ns_paths, on_fork=, on_pid=) -> ExecProcess``: a new process in
  a running container (exec), beside create/start, over the same sync messages.
  (Relaying a terminal to ``pty_master`` is the face's: rootless.cli.terminal.)
- Lower level, for other namespace helpers: ``runtime.userns.start_child(entry, payload,
  pass_fds)`` (fork, or re-exec when threaded) and ``runtime.userns.wait_status(pid)``.

The stages, as DESIGN.md draws them (``parent`` = the caller of ``spawn``)::

    parent                 stage 1 (rootless:stage1)        init (rootless:init, pid 1)
    fork/re-exec  ----->   unshare(USER)
           <-- MAP_PLEASE  (or writes a one-uid map itself)
    newuidmap+newgidmap
           --> MAP_DONE    unshare(MNT|PID|UTS|IPC[|NET|CGROUP])
                           rootfs plan; fork ------------>   spec mounts, /dev, pivot_root,
           <-- INIT_PID n  exit                              masks, hostname, rlimits, user, caps
           <----------------------------------------------   READY (or ERROR{message})
    on_ready(n)
           ----------------------------------------------->  START: execve(process.args)
    (socket closes on exec: CLOEXEC)                         (or EXEC_FAILED: 126/127)

The runtime imports nothing from storage/, network/ or cgroups: the engine hands it a plan and a
callback. It never prints; failures raise ``rootless.errors.RuntimeSetupError`` naming the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Union

from rootless.procs import start_time as proc_start_time
from rootless.value import Value

if TYPE_CHECKING:  # pragma: no cover
    from rootless.idmap import UserIds
    from rootless.runtime.process import Process

# docker's default capability set (moby/oci/caps/defaults.go); the spec generator puts these in
# process.capabilities.{bounding,effective,permitted}. The runtime applies whatever the spec says.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# spec.annotations key: "true" makes pid 1 our tiny reaping init (`run --init`).
ANNOTATION_INIT = "io.rootless.init"


class MountStep(Value):
    """mount(2) ``source`` on ``target`` (host paths), type ``fstype``, inside the new namespaces.

    ``options`` are mount flags by name as in the OCI spec (``ro``, ``nosuid``, ``bind``, ...);
    ``data`` is the fs-specific data string, e.g. for overlay2
    ``lowerdir=A:B,upperdir=U,workdir=W,userxattr``.
    """

    __slots__ = ("source", "target", "fstype", "options", "data")
    source: str
    target: str
    fstype: str
    options: List[str]
    data: str

    def __init__(
        self,
        source: str,
        target: str,
        fstype: str,
        options: Optional[List[str]] = None,
        data: str = "",
    ) -> None:
        self.source = source
        self.target = target
        self.fstype = fstype
        self.options = [] if options is None else options
        self.data = data


class ExecStep(Value):
    """Start a host tool (e.g. ``fuse-overlayfs -f -o ... MERGED``) inside the new namespaces.

    ``argv[0]`` is looked up with rootless.tools. When ``wait_mount`` is set the runtime waits
    (up to ``timeout`` seconds) until that path is a mountpoint; the tool may stay in the
    foreground (its pid is then in ``Process.helper_pids`` and is terminated by ``wait()`` once
    the container has exited) or daemonize (exit 0 after mounting). A non-zero exit is an error
    that quotes the tool's stderr.
    """

    __slots__ = ("argv", "wait_mount", "timeout")
    argv: List[str]
    wait_mount: Optional[str]
    timeout: float

    def __init__(self, argv: List[str], wait_mount: Optional[str] = None, timeout: float = 10.0) -> None:
        self.argv = argv
        self.wait_mount = wait_mount
        self.timeout = timeout


class RootfsPlan(Value):
    """What makes ``rootfs`` (a host directory) the container's root, done in order."""

    __slots__ = ("rootfs", "steps")
    rootfs: str
    steps: List[Union[MountStep, ExecStep]]

    def __init__(self, rootfs: str, steps: Optional[List[Union[MountStep, ExecStep]]] = None) -> None:
        self.rootfs = rootfs
        self.steps = [] if steps is None else steps


class Stdio(Value):
    """The container's standard streams as fds of the caller (None: inherit the caller's).

    With ``tty=True`` a pty is allocated inside the container (in its own /dev/pts, as crun
    does), the slave becomes the controlling terminal and fds 0-2 of the process; the master
    comes back as ``Process.pty_master``, with the window size of ``winsize_from`` (an fd of the
    caller's terminal; default: whichever of 0, 1, 2 is a tty). ``stdin`` etc. are then ignored.
    """

    __slots__ = ("stdin", "stdout", "stderr", "tty", "winsize_from")
    stdin: Optional[int]
    stdout: Optional[int]
    stderr: Optional[int]
    tty: bool
    winsize_from: Optional[int]

    def __init__(
        self,
        stdin: Optional[int] = None,
        stdout: Optional[int] = None,
        stderr: Optional[int] = None,
        tty: bool = False,
        winsize_from: Optional[int] = None,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.winsize_from = winsize_from


def spawn(
    spec: dict,
    *,
    ids: UserIds,
    rootfs_plan: Optional[RootfsPlan] = None,
    stdio: Optional[Stdio] = None,
    on_ready: Optional[Callable[[int], None]] = None,
    name: str = "",
    bundle: Optional[str] = None,
    exec_fifo: Optional[str] = None,
    proc: str = "/proc",
) -> Process:
    """Start the container described by ``spec`` and return its init process.

    - ``spec``: an OCI runtime-spec config as a dict. ``root.path`` is the rootfs (relative paths
      are taken from ``bundle``, else the current directory) unless ``rootfs_plan`` gives one.
      ``linux.uidMappings``/``gidMappings``, when present, win over ``ids`` (so a bundle made by
      ``crun spec --rootless`` runs as written); newuidmap checks them against /etc/subuid.
    - ``ids``: whose subordinate ids to map (``rootless.idmap.load()``): container 0 is the user,
      1.. the subuid range; without a range, a one-uid map (setgroups denied, CVE-2014-8989).
    - ``on_ready(pid)``: called once the init exists and its namespaces and mounts are set up,
      before it execs (join cgroups, start slirp4netns here). An exception from it kills the
      container and propagates.
    - ``exec_fifo``: for ``runtime create``: the init waits for a reader of this fifo (``start``)
      instead of for the caller, and ``spawn`` returns while it waits (runc's exec.fifo).
      Otherwise ``spawn`` returns right after the execve succeeded.

    Side effect: the caller becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so that the
    container init, whose parent (stage 1) exits, is re-parented to it and ``wait()`` works.

    Raises RuntimeSetupError naming the failed step, e.g. ``mount `proc` on `/proc`: Operation
    not permitted``; exec failures carry exit_code 126 (cannot exec) or 127 (not found) and
    docker's message, e.g. ``exec: "nosuch": executable file not found in $PATH``.
    """
    from rootless.runtime import parent

    return parent.spawn(
        spec,
        ids=ids,
        rootfs_plan=rootfs_plan,
        stdio=stdio or Stdio(),
        on_ready=on_ready,
        name=name,
        bundle=bundle,
        exec_fifo=exec_fifo,
        proc=proc,
    )


def run_in_userns(fn: Callable, *args, ids: UserIds, mount_ns: bool = False,
                  schema: Optional[Callable[[Any], Any]] = None, **kw):
    """Run module-level ``fn(*args, **kw)`` as root in a new user namespace; its JSON answer,
    checked by ``schema``; see runtime.userns."""
    from rootless.runtime import userns

    return userns.run_in_userns(fn, *args, ids=ids, mount_ns=mount_ns, schema=schema, **kw)


def ids_for_current_user() -> UserIds:
    """The calling user's ids and subordinate ranges (rootless.idmap.load())."""
    from rootless import idmap

    return idmap.load()


__all__ = [
    "ANNOTATION_INIT",
    "DEFAULT_CAPABILITIES",
    "ExecStep",
    "MountStep",
    "RootfsPlan",
    "Stdio",
    "ids_for_current_user",
    "proc_start_time",
    "run_in_userns",
    "spawn",
]
