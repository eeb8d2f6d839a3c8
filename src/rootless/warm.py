"""The warm server: a per-user process with rootless already imported, that forks one child per command.

Starting Python and importing the engine costs more than running a container (~45 of ~70 ms for
`run --rm busybox true`). So the first command a user runs starts, in the background, a small
server that imports everything once and then waits on a unix socket; later commands are thin
clients: they pass their argv, environment, umask, working directory and their own
stdin/stdout/stderr (the file descriptors themselves, SCM_RIGHTS) and the server forks a child
that becomes the command, exactly as if the client had run it, with fds 0-2 being the client's
and the client's rlimits, CPUs and nice value (read from /proc: a client could lie about them).
The client forwards the signals it gets to that child and exits with its exit status. It is the
same idea as Podman's pause process and Emacs's server; nothing runs with more rights than the
user's own.

What a user can rely on:
- Output, exit codes, signals and terminals behave as without it (tests run the suite through it).
- If anything is off (no server yet, a different build or Python, rlimits it cannot match, a dead
  server), the client runs the command itself, as before. ``ROOTLESS_WARM=0`` turns it off.
- A confined client is never served by a less confined server (seccomp_filtered and read_proof
  say how: Landlock and seccomp filters do not show in /proc as namespaces do).
- The server lives in the exec-root (``$XDG_RUNTIME_DIR/rootless``, 0700), accepts only its own
  uid (SO_PEERCRED), exits after ``ROOTLESS_WARM_IDLE`` seconds without work (default 600), when
  its socket is removed, or on ``rootless system warm stop``.

The client half (``try_client``) runs before anything else is imported: it may import only
modules that cost nothing (os, sys, _socket, _signal).
"""

import os
import sys

PROTO = b"RLW2"
PROOF_VAR = "ROOTLESS_WARM_PROOF"  # see prove_client()
IDLE_DEFAULT = 600.0
START_TIMEOUT = 30.0  # seconds a client waits for its command to start in the server
# Commands the server runs. The others run in the client: they re-exec themselves or wait for
# other processes as their parent (runtime, helper, serve), read a password from /dev/tty (login),
# or manage the server itself (system).
WARM_COMMANDS = frozenset(
    "run create start stop restart kill rm ps logs exec wait inspect port top stats update pause unpause "
    "rename cp diff export commit container images image rmi tag history save load volume network info "
    "pull push".split()
)
# Signals the client passes on to the command (with -t, SIGWINCH carries the window size change).
FORWARD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


def _fnv(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


NAMESPACES = ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup")


def place(proc: str = "/proc/self") -> str:
    """Where a process lives and what confines it: namespaces, root directory, cgroups, login
    session, LSM label, ids and groups, capabilities, no_new_privs and seccomp. A command must run
    where its client runs (paths, published ports and resource limits depend on it) and no less
    confined, so a server only serves clients of its own place (and a login session or CI job
    that has its own cgroup gets a server of its own, which ends with it)."""
    parts = []
    for ns in NAMESPACES:
        try:
            parts.append(os.readlink(f"{proc}/ns/{ns}"))
        except OSError:
            parts.append("-")
    try:
        st = os.stat(f"{proc}/root")
        parts.append(f"root={st.st_dev}:{st.st_ino}")
    except OSError:
        parts.append("root=-")
    for name in ("cgroup", "sessionid", "attr/current"):  # cgroups, login session, LSM label
        try:
            with open(f"{proc}/{name}", "rb") as f:
                parts.append(f.read().decode("utf-8", "replace"))
        except OSError:
            parts.append("-")
    try:  # ids, groups and what confines the process: a sandboxed caller gets no unconfined server
        with open(f"{proc}/status", "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith(STATUS_KEYS):
                    parts.append(line)
    except OSError:
        parts.append("-")
    return "\0".join(parts)


STATUS_KEYS = ("Uid:", "Gid:", "Groups:", "NoNewPrivs:", "Seccomp:", "Seccomp_filters:", "CapInh:", "CapPrm:",
               "CapEff:", "CapBnd:", "CapAmb:")


# Confinement a server cannot see in place(), and the rules that keep a confined client out:
# - seccomp: /proc shows the mode and (Linux >= 5.9) the number of stacked filters, not the
#   filters (PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN); two stacks of equal depth may forbid
#   different things. So a client under any seccomp filter runs its commands itself (and starts
#   no server: it could serve no one else provably).
# - Landlock: no /proc file shows a Landlock domain. But Landlock forbids a sandboxed process to
#   ptrace -- in any mode, so also to read /proc/PID/environ of -- a process outside its domain
#   or a nested one (Documentation/userspace-api/landlock.rst, "Ptrace restrictions"). The
#   server is started with a random proof in its environment (PROOF_VAR) and serves a client
#   only if it sends that proof back: it could read the server's /proc/PID/environ, so the
#   server's domain is the client's or nested in it -- at least as confined. A sandbox that
#   started its own server can use it; a sandboxed client cannot use a server from outside.
#   (/proc/PID/environ also needs the same uid and a dumpable server: both hold.)
def seccomp_filtered(proc: str = "/proc/self") -> bool:
    """Whether a process runs under a seccomp filter or strict mode (unknown: yes)."""
    try:
        with open(f"{proc}/status", "rb") as f:
            for line in f.read().split(b"\n"):
                if line.startswith(b"Seccomp:"):
                    return line.split()[1:] != [b"0"]
    except OSError:
        pass
    return True


def read_proof(pid: int) -> "bytes | None":
    """The proof in /proc/PID/environ of the server (None: not readable, e.g. in a Landlock sandbox)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return None
    key = PROOF_VAR.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(key) and len(item) > len(key):
            return item[len(key):]
    return None


def server_key(build_id: str, env=None, where: "str | None" = None) -> str:
    """What must be equal for a server to stand in for this client: the build, the interpreter and
    its flags, what the interpreter read from the environment when it started (locale, PYTHON*),
    the uid and the place (namespaces, root, cgroups)."""
    env = os.environ if env is None else env
    parts = [build_id, sys.executable, sys.version, repr(tuple(sys.flags)), repr(sys.path[1:]), str(os.getuid()),
             place() if where is None else where]
    for k in sorted(env):
        if k.startswith("PYTHON") or k.startswith("LC_") or k == "LANG":
            parts.append(f"{k}={env[k]}")
    return _fnv("\0".join(parts).encode("utf-8", "surrogateescape"))


def exec_root(env=None) -> str:
    """Where the server's socket lives: $ROOTLESS_WARM_DIR, else the default exec-root
    (paths.default_exec_root), when it is a directory private to us; else ''."""
    env = os.environ if env is None else env
    uid = os.getuid()
    base = env.get("ROOTLESS_WARM_DIR") or None
    xdg = env.get("XDG_RUNTIME_DIR")
    if base is None and xdg:
        try:
            st = os.stat(xdg)
            if st.st_uid == uid and (st.st_mode & 0o170000) == 0o040000:
                base = os.path.join(xdg, "rootless")
        except OSError:
            pass
    if base is None:
        base = f"/tmp/rootless-run-{uid}"
    try:
        st = os.lstat(base)
    except OSError:
        return ""
    if st.st_uid != uid or (st.st_mode & 0o170000) != 0o040000 or st.st_mode & 0o077:
        return ""
    return base


def create_dir(env=None) -> None:
    """Make the folder exec_root() looks for (0700), as paths.ensure_private_dir does."""
    from rootless import paths

    env = os.environ if env is None else env
    path = env.get("ROOTLESS_WARM_DIR") or paths.default_exec_root(env).path
    paths.ensure_private_dir(path)


def socket_path(root: str, key: str) -> str:
    return os.path.join(root, f"warm-{key}.sock")


def pid_path(root: str, key: str) -> str:
    return os.path.join(root, f"warm-{key}.pid")


def server_alive(pid: int) -> bool:
    """A live warm server (an exited one may stay a zombie for a while: its cmdline is empty)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"rootless.warm" in f.read()
    except OSError:
        return False


def running_servers(root: str):
    """(pid, socket path) of each live server whose pid file is in ``root``, by key."""
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for n in names:
        if n.startswith("warm-") and n.endswith(".pid"):
            try:
                with open(os.path.join(root, n)) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if server_alive(pid):
                out.append((pid, socket_path(root, n[len("warm-"):-len(".pid")])))
    return out


def enabled(env=None) -> bool:
    env = os.environ if env is None else env
    return env.get("ROOTLESS_WARM", "1") not in ("0", "false", "no", "off")


def command_of(argv) -> str:
    """The command word after the global options ('' for --help, --version and the like)."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--config-file", "--config", "-l", "--log-level"):
            i += 2
            continue
        if a in ("-D", "--debug") or a.startswith("--config-file=") or a.startswith("--log-level="):
            i += 1
            continue
        if a.startswith("-"):
            return ""
        return a
    return ""


# ----------------------------------------------------------------------------------------- client


def _encode(items) -> bytes:
    out = []
    for s in items:
        b = os.fsencode(s) if isinstance(s, str) else s
        out.append(b)
    return b"\0".join(out)


def _request(argv, proof: bytes) -> bytes:
    """proto, proof, umask, ignored signals, argc, argv..., envc, env... The server reads what
    confines the command (rlimits, CPUs, nice) from /proc, not from here: a client could lie."""
    import _signal

    umask = os.umask(0o022)
    os.umask(umask)
    ignored = [str(n) for n in range(1, 65) if _ignored(_signal, n)]
    env = [f"{k}={v}" for k, v in os.environ.items()]  # str, surrogate-escaped: fsencode below
    head = [PROTO, proof, str(umask), ",".join(ignored), str(len(argv))] + list(argv) + [str(len(env))] + env
    return _encode(head)


def _ignored(_signal, n: int) -> bool:
    try:
        return _signal.getsignal(n) == _signal.SIG_IGN
    except (ValueError, OSError):
        return False


def _background_on_a_terminal() -> bool:
    """A background job of a shell reading its terminal is stopped (SIGTTIN) so that it cannot take
    the shell's input; the server's child is in no session of that terminal, so it would not be."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) != os.getpgrp()
    except OSError:
        return False


def _debug(why: str) -> None:
    if os.environ.get("ROOTLESS_DEBUG", "") not in ("", "0"):
        sys.stderr.write(f"debug: {why}; running the command here\n")


def try_client(build_id: str, argv) -> "int | None":
    """Run ``argv`` in the warm server and return its exit status; None: run it here instead.

    Starts the server in the background (for the next command) when there is none.
    """
    if not build_id or not enabled() or command_of(argv[1:]) not in WARM_COMMANDS:
        return None
    if seccomp_filtered():
        _debug("this process runs under a seccomp filter (a server cannot prove it has the same one)")
        return None
    root = exec_root()
    key = server_key(build_id)
    path = socket_path(root, key) if root else ""
    if len(os.fsencode(path)) > 107:  # sun_path: a socket cannot have that name
        _debug("the warm server's socket path would be too long (set ROOTLESS_WARM_DIR)")
        return None
    if not path or not os.path.exists(path):
        _debug("no warm server yet (starting one)" if path else "no private folder for the warm server")
        start_server_later(build_id, key)
        return None
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        cred = s.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # pid, uid, gid (3 ints)
    except OSError:
        s.close()
        _debug("the warm server does not answer (starting one)")
        start_server_later(build_id, key)
        return None
    if int.from_bytes(cred[4:8], sys.byteorder) != os.getuid():
        s.close()  # not our server (the folder is ours: someone with more rights than us made it)
        return None
    proof = read_proof(int.from_bytes(cred[0:4], sys.byteorder))
    if proof is None:
        s.close()
        _debug("the warm server's /proc/PID/environ cannot be read (a Landlock sandbox?): it may be less confined")
        return None
    try:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        s.close()
        _debug("the working directory cannot be opened")
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)  # a closed stdio fd: let the command run here and see it as closed
    except OSError:
        s.close()
        os.close(cwd)
        _debug("stdin, stdout or stderr is closed")
        return None
    if _background_on_a_terminal():
        s.close()
        os.close(cwd)
        _debug("started in the background of a terminal (job control applies to this process only)")
        return None
    fwd = _Forwarder(s)
    try:
        body = _request(argv, proof)
        msg = len(body).to_bytes(4, "big") + body
        import array

        fds = array.array("i", [0, 1, 2, cwd]).tobytes()
        n = s.sendmsg([msg], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if n < len(msg):
            s.sendall(msg[n:])
    except OSError:
        fwd.restore()
        s.close()
        os.close(cwd)
        return None
    os.close(cwd)
    fwd.sent()
    try:
        return _follow(s, fwd)
    finally:
        fwd.restore()
        s.close()


class _Forwarder:
    """Signals we get go to the command as one byte each on the connection (queued until the request is out)."""

    def __init__(self, s):
        import _signal

        self.s = s
        self.pending = []
        self.ready = False
        self.old = {}
        for name in FORWARD:
            n = getattr(_signal, name)
            if _signal.getsignal(n) == _signal.SIG_IGN and name != "SIGWINCH":
                continue  # ignored when we were started (nohup): the command ignores it too
            self.old[n] = _signal.signal(n, self.handler)

    def handler(self, signum, frame) -> None:
        if not self.ready:
            self.pending.append(signum)
            return
        try:
            self.s.send(bytes([signum]))
        except OSError:
            pass

    def sent(self) -> None:
        self.ready = True
        pending, self.pending = self.pending, []
        for n in pending:
            self.handler(n, None)

    def restore(self) -> None:
        import _signal

        old, self.old = self.old, {}
        for n, h in old.items():
            try:
                _signal.signal(n, h)
            except (OSError, ValueError, TypeError):
                pass


def _follow(s, fwd) -> "int | None":
    """Wait for the server's report: the command's pid, then its exit status."""
    import _socket

    buf = b""
    started = False
    try:
        limit = float(os.environ.get("ROOTLESS_WARM_START_TIMEOUT") or START_TIMEOUT)
    except ValueError:
        limit = START_TIMEOUT
    s.settimeout(limit)  # the server answers in milliseconds; a stopped one must not hang us
    while True:
        try:
            data = s.recv(256)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        except _socket.timeout:
            # Not run here: the command may still start there (our closed connection makes its
            # first write fail, and it checks that before it runs anything).
            sys.stderr.write(
                f"error: the warm server did not answer within {limit:g} s\n"
                "hint: `rootless system warm` shows its pid: kill it (the next command starts a new one), "
                "or set ROOTLESS_WARM=0 to run commands without it\n"
            )
            return 125
        except OSError:
            data = b""
        if not data:
            if not started:
                return None  # the server went away before our command started: run it here
            sys.stderr.write(
                "error: the warm server went away while it ran this command\n"
                "hint: run the command again; set ROOTLESS_WARM=0 to run commands without it\n"
            )
            return 125
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line == b"C" or line.startswith(b"C "):
                _debug("the warm server cannot run it: " + line[2:].decode("utf-8", "replace"))
                return None  # the server cannot stand in for us (e.g. rlimits): run it here
            if line.startswith(b"P "):
                started = True
                s.settimeout(None)  # the command runs as long as it runs
            elif line.startswith(b"X "):
                # before P: the child failed before the command began; run it here
                return int(line[2:]) if started else None
            elif line.startswith(b"S "):
                sig = int(line[2:])
                if not started:
                    return None
                import _signal

                fwd.restore()
                try:
                    _signal.signal(sig, _signal.SIG_DFL)
                    os.kill(os.getpid(), sig)
                except (OSError, ValueError):
                    pass
                return 128 + sig


def start_server_later(build_id: str, key: str) -> None:
    """Start the server in the background, detached from us (our exit status and timing do not wait)."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        import subprocess

        flags = subprocess._args_from_interpreter_flags()
        boot = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
                "from rootless.warm import serve; serve(sys.argv[2], sys.argv[3])")
        import json

        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 65536)
        os.chdir("/")
        env = dict(os.environ)
        env[PROOF_VAR] = os.urandom(16).hex()  # stays in its /proc/PID/environ (see read_proof)
        os.execve(sys.executable, [sys.executable] + flags + ["-c", boot, json.dumps(sys.path), build_id, key], env)
    finally:
        os._exit(0)


# ----------------------------------------------------------------------------------------- server


class _Job:
    __slots__ = ("pid", "conn", "gone", "status_fd", "reported")

    def __init__(self, pid: int, conn, status_fd: int):
        self.pid = pid
        self.conn = conn
        self.gone = False  # the client went away (killed): the command was killed with it
        self.status_fd = status_fd  # the command writes its exit status here just before it exits
        self.reported = False

    def report(self, msg: str) -> None:
        if not self.reported:
            self.reported = True
            try:
                self.conn.sendall(msg.encode())
            except OSError:
                pass


def _prewarm() -> None:
    """Import what commands need and build their argument parsers once (each child gets a copy).

    Not requests (~9 MB): every fork on the way to a container (the command, stage 1, the init
    before its exec) costs more the bigger the process is, and a pull spends seconds anyway."""
    import importlib

    from rootless import cli

    for mod in (
        "rootless.engine", "rootless.engine.containers", "rootless.state", "rootless.config", "rootless.runtime",
        "rootless.runtime.parent", "rootless.runtime.stage1", "rootless.runtime.exec", "rootless.runtime.userns", "rootless.oci.spec",
        "rootless.oci.bundle", "rootless.oci.seccomp", "rootless.oci.seccomp_default", "rootless.linux.seccomp", "rootless.storage.select", "rootless.storage.overlay", "rootless.image.store",
        "rootless.image.reference", "rootless.idmap", "rootless.userdb", "rootless.tools", "rootless.paths",
        "rootless.logs", "rootless.engine.monitor", "rootless.engine.attach", "rootless.engine.volumes", "rootless.cli.gotemplate", "rootless.linux.syscalls",
        "rootless.network.slirp", "rootless.network.ports", "rootless.network.resolv", "rootless.network.hosts",
        "rootless.etcfiles", "rootless.procs", "rootless.timefmt", "rootless.report", "rootless.cli.tabwriter",
        "argparse", "json", "subprocess", "tarfile", "select", "termios", "tty", "fcntl", "socket",
    ):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    for toml in ("tomllib", "tomli"):
        try:
            importlib.import_module(toml)
            break
        except ImportError:
            pass
    for name in ("run", "create", "start", "exec", "ps", "rm", "stop", "kill", "inspect", "logs", "images"):
        entry = cli.COMMANDS.get(name)
        if entry is not None:
            try:
                cli.cached_parser(name)
            except Exception:  # noqa: BLE001 - a command that cannot be prepared is prepared in the child
                pass


def serve(build_id: str, key: str) -> None:
    """The server's main loop (started by start_server_later, detached, stdio on /dev/null)."""
    import fcntl
    import select
    import signal
    import socket
    import time

    proof = os.environ.pop(PROOF_VAR, "").encode()  # gone from our environ, not from /proc/PID/environ
    if server_key(build_id) != key or len(proof) < 32:
        return
    if seccomp_filtered():
        return  # it could serve no client (see seccomp_filtered)
    import hmac

    from rootless.errors import RootlessError

    try:
        create_dir()
    except RootlessError:
        return
    root = exec_root()
    if not root:
        return
    path = socket_path(root, key)
    lock_fd = os.open(os.path.join(root, f"warm-{key}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server for this key is starting or running
    code_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.umask(0o077)
    try:
        from rootless.linux import syscalls

        syscalls.set_name("rootless:warm")  # what ps -o comm and top show
    except Exception:  # noqa: BLE001
        pass
    _prewarm()
    import gc

    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()  # what is here now stays: forked children need not copy its pages to scan it
    here = place()
    tmp = os.path.join(root, f".w{os.getpid()}.tmp")  # no longer than the final name (sun_path)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    try:
        lsock.bind(tmp)
        lsock.listen(64)
        os.rename(tmp, path)
    except OSError:
        lsock.close()
        return  # e.g. a name too long for a unix socket: clients run their commands themselves
    ino = os.stat(path).st_ino
    pidfile = pid_path(root, key)
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(pidfile + ".tmp", pidfile)

    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda s, f: None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda s, f: stopping.append(1))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    idle = _idle_seconds()
    jobs = {}  # conn fd -> _Job
    last = time.monotonic()

    def close_listener() -> None:
        nonlocal lsock
        if lsock is None:
            return
        lsock.close()
        lsock = None
        try:
            if os.stat(path).st_ino == ino:  # a newer server may have taken the name: leave it
                os.unlink(path)
                os.unlink(pidfile)
        except OSError:
            pass

    try:
        while lsock is not None or jobs:
            poller = select.poll()
            if lsock is not None:
                poller.register(lsock.fileno(), select.POLLIN)
            poller.register(rfd, select.POLLIN)
            by_status = {}
            for fd, job in jobs.items():
                if not job.gone:
                    poller.register(fd, select.POLLIN)
                if not job.reported:
                    poller.register(job.status_fd, select.POLLIN)
                    by_status[job.status_fd] = job
            try:
                events = poller.poll(2000)
            except InterruptedError:
                events = []
            for fd, _ev in events:
                if fd == rfd:
                    try:
                        os.read(rfd, 4096)
                    except OSError:
                        pass
                elif lsock is not None and fd == lsock.fileno():
                    _accept(lsock, jobs, [lsock, rfd, wfd, lock_fd], here, lambda p: hmac.compare_digest(p, proof))
                    last = time.monotonic()
                elif fd in by_status:
                    _status_from_child(by_status[fd])
                elif fd in jobs:
                    _from_client(jobs[fd])
            _reap(jobs)
            if jobs:
                last = time.monotonic()
            if lsock is not None and (
                stopping  # `rootless system warm stop`: no new commands; the running ones finish
                or not _still_ours(path, ino)  # removed (exec-root wiped) or replaced
                or not os.path.isdir(os.path.join(code_dir, "rootless"))  # our code is gone
                or (not jobs and time.monotonic() - last > idle)
            ):
                close_listener()
    finally:
        close_listener()
        try:
            os.unlink(os.path.join(root, f"warm-{key}.lock"))
        except OSError:
            pass


def _idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("ROOTLESS_WARM_IDLE", IDLE_DEFAULT)))
    except ValueError:
        return IDLE_DEFAULT


def _still_ours(path: str, ino: int) -> bool:
    try:
        return os.stat(path).st_ino == ino
    except OSError:
        return False


def _recv_request(conn):
    """The request and its fds: 4 bytes of length, the body, SCM_RIGHTS with fds 0, 1, 2 and cwd."""
    import array
    import socket

    conn.settimeout(5)
    fds = array.array("i")
    # only the 4 length bytes with the fds: what follows the body (signal bytes) stays queued
    data, anc, flags, _ = conn.recvmsg(4, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    fds = list(fds)
    while 0 < len(data) < 4:
        more = conn.recv(4 - len(data))
        if not more:
            break
        data += more
    if len(data) < 4:
        raise ValueError("short request")
    need = int.from_bytes(data[:4], "big")
    if need > 16 << 20:
        raise ValueError("request too large")
    body = b""
    while len(body) < need:
        more = conn.recv(min(1 << 20, need - len(body)))
        if not more:
            raise ValueError("truncated request")
        body += more
    conn.settimeout(None)
    if len(fds) != 4:
        raise ValueError("bad fds")
    return body, fds


def _accept(lsock, jobs, closers, here: str, proven) -> None:
    import socket
    import struct

    try:
        conn, _ = lsock.accept()
    except OSError:
        return
    fds = []
    peer = -1
    try:
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        client, uid, _gid = struct.unpack("3i", cred)
        if uid != os.getuid():
            conn.close()
            return
        peer = _peer_pidfd(conn)
        body, fds = _recv_request(conn)
        parts = body.split(b"\0")
        if parts[0] != PROTO:
            raise ValueError("protocol")
        if len(parts) < 2 or not proven(parts[1]):  # see seccomp_filtered() for why
            conn.sendall(b"C the client did not prove it can read the server's /proc/PID/environ (Landlock)\n")
            raise ValueError("unproven")
        if client <= 0 or place(f"/proc/{client}") != here:  # e.g. a container that can reach the socket
            conn.sendall(b"C the client is in another place (namespaces, cgroup, confinement)\n")
            raise ValueError("elsewhere")
        if seccomp_filtered(f"/proc/{client}"):
            conn.sendall(b"C the client runs under a seccomp filter\n")
            raise ValueError("seccomp")
    except (OSError, ValueError):
        for fd in fds + ([peer] if peer >= 0 else []):
            os.close(fd)
        conn.close()
        return
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        for c in closers + [j.conn for j in jobs.values()] + [j.status_fd for j in jobs.values()]:
            try:  # the server's: not the command's to keep
                c.close() if hasattr(c, "close") else os.close(c)
            except OSError:
                pass
        _child(conn, fds, parts, client, status_w, peer)  # never returns
    os.close(status_w)
    if peer >= 0:
        os.close(peer)
    for fd in fds:
        os.close(fd)
    jobs[conn.fileno()] = _Job(pid, conn, status_r)


def _from_client(job) -> None:
    """A byte from the client is a signal to pass on; end of file: the client was killed (SIGKILL)."""
    import signal

    try:
        data = job.conn.recv(64)
    except OSError:
        data = b""
    if not data:
        job.gone = True
        try:
            os.kill(job.pid, signal.SIGKILL)  # as if the command itself had been killed with its client
        except OSError:
            pass
        return
    for sig in data:
        try:
            os.kill(job.pid, sig)
        except OSError:
            pass


def _status_from_child(job) -> None:
    """The exit status the command wrote before exiting: the client need not wait for its teardown."""
    try:
        data = os.read(job.status_fd, 64)
    except OSError:
        data = b""
    if data.endswith(b"\n") and data[:-1].isdigit():
        job.report(f"X {int(data)}\n")


def _reap(jobs) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for fd, job in list(jobs.items()):
            if job.pid == pid:
                if os.WIFSIGNALED(status):
                    job.report(f"S {os.WTERMSIG(status)}\n")
                else:
                    job.report(f"X {os.WEXITSTATUS(status)}\n")
                job.conn.close()
                os.close(job.status_fd)
                del jobs[fd]


def _peer_pidfd(conn) -> int:
    """A pidfd of the process that connected (SO_PEERPIDFD, Linux >= 6.5), else -1: /proc/PID is
    read by pid, which the client could free (exit) for another process to take."""
    import socket

    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERPIDFD", 77), 4)
        return int.from_bytes(raw[:4], sys.byteorder, signed=True)
    except (OSError, AttributeError):
        return -1


def _child(conn, fds, parts, client: int, status_w: int, peer: int = -1) -> None:
    """In the forked child: become the client's command, run it, exit with its status."""
    me = os.getpid()  # a process the command forks and that ends up here must not report for it
    code = 125
    try:
        code = _child_main(conn, fds, parts, client, peer)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - never fall back into the server's loop
        code = 125
    finally:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        code = code if isinstance(code, int) and 0 <= code < 256 else 1
        if os.getpid() == me:
            try:
                os.write(status_w, f"{code}\n".encode())  # all output is out: the client may go
            except OSError:
                pass
        os._exit(code)


def _child_main(conn, fds, parts, client: int, peer: int = -1) -> int:
    import atexit
    import io
    import signal

    signal.set_wakeup_fd(-1)
    for n in range(1, signal.NSIG):
        try:
            signal.signal(n, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python sets them at start
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        from rootless.linux import syscalls

        syscalls.set_pdeathsig(signal.SIGKILL)  # the server gone: the client said so; do not run on unseen
    except Exception:  # noqa: BLE001
        pass
    os.setpgid(0, 0)  # a process group of its own, as a shell gives a command; not a session leader

    def cannot(why: str = "") -> int:
        try:
            conn.sendall(f"C {why}\n".encode())
        except OSError:
            pass
        return 0

    # the request: proto, proof, umask, ignored signals, argc, argv..., envc, env...
    try:
        umask = int(parts[2])
        ignored = [int(x) for x in parts[3].split(b",") if x]
        argc = int(parts[4])
        argv = [os.fsdecode(a) for a in parts[5 : 5 + argc]]
        envc = int(parts[5 + argc])
        env_items = parts[6 + argc : 6 + argc + envc]
    except (ValueError, IndexError):
        return cannot("a request it cannot read")
    try:  # what confines the client, as the kernel has it (the request could lie)
        limits, cpus, nice = client_limits(f"/proc/{client}")
    except (OSError, ValueError, IndexError) as e:
        return cannot(f"cannot read the client's resource limits: {e}")
    try:
        import resource

        for n, soft, hard in limits:
            if resource.getrlimit(n) != (soft, hard):
                resource.setrlimit(n, (soft, hard))
        if cpus:
            os.sched_setaffinity(0, cpus)
        mine = os.nice(0)
        if nice < mine:
            return cannot("a higher priority (nice) than the server's")
        if nice > mine:
            os.nice(nice - mine)
    except (OSError, ValueError) as e:
        return cannot(f"cannot take on the client's resource limits or CPUs: {e}")
    for n in ignored:
        try:
            signal.signal(n, signal.SIG_IGN)
        except (OSError, ValueError, RuntimeError):
            pass
    if not _as_client(client):
        return cannot("cannot take on the client's signal mask or OOM score")
    if peer >= 0:  # all we read from /proc/CLIENT was the client's: it still lives, its pid is not reused
        try:
            signal.pidfd_send_signal(peer, 0)
        except OSError:
            return cannot("the client exited")
        finally:
            os.close(peer)
    in_fd, out_fd, err_fd, cwd_fd = fds
    try:
        os.fchdir(cwd_fd)
    except OSError as e:
        return cannot(f"cannot enter the client's working directory: {e.strerror}")
    for src, dst in ((in_fd, 0), (out_fd, 1), (err_fd, 2)):
        os.dup2(src, dst, inheritable=True)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    os.umask(umask)
    os.environ.clear()
    for item in env_items:
        k, sep, v = item.partition(b"=")
        if sep and k:
            try:
                os.environb[k] = v
            except (ValueError, OSError):
                pass
    sys.argv = [argv[0] if argv else "rootless"] + argv[1:]
    import time

    time.tzset()  # TZ is the client's now
    try:
        from rootless.linux import syscalls

        syscalls.set_name(("rootless:" + command_of(argv[1:]))[:15])  # as the stages name theirs
    except Exception:  # noqa: BLE001 - a name for ps/top only
        pass
    _new_stdio(io)
    conn.sendall(f"P {os.getpid()}\n".encode())
    conn.close()
    from rootless import cli

    try:
        code = cli.main(argv[1:])
    finally:
        try:
            atexit._run_exitfuncs()
        except Exception:  # noqa: BLE001
            pass
    return int(code or 0)


# /proc/PID/limits rows (proc(5)) and the resource module's names for them
LIMIT_ROWS = {"Max cpu time": "CPU", "Max file size": "FSIZE", "Max data size": "DATA", "Max stack size": "STACK",
              "Max core file size": "CORE", "Max resident set": "RSS", "Max processes": "NPROC",
              "Max open files": "NOFILE", "Max locked memory": "MEMLOCK", "Max address space": "AS",
              "Max file locks": "LOCKS", "Max pending signals": "SIGPENDING", "Max msgqueue size": "MSGQUEUE",
              "Max nice priority": "NICE", "Max realtime priority": "RTPRIO", "Max realtime timeout": "RTTIME"}


def client_limits(proc: str):
    """A process's rlimits [(RLIMIT_*, soft, hard)], CPUs and nice value, from /proc."""
    import resource

    inf = resource.RLIM_INFINITY
    limits = []
    with open(f"{proc}/limits", "rb") as f:
        text = f.read().decode("ascii")
    for line in text.splitlines()[1:]:
        name = line[:25].strip()
        n = getattr(resource, "RLIMIT_" + LIMIT_ROWS.get(name, "?"), None)
        if n is not None:
            soft, hard = line[25:].split()[:2]
            limits.append((n, inf if soft == "unlimited" else int(soft), inf if hard == "unlimited" else int(hard)))
    if not any(n == resource.RLIMIT_FSIZE for n, _s, _h in limits):
        raise ValueError("unexpected /proc/PID/limits")
    cpus = set()
    with open(f"{proc}/status", "rb") as f:
        for raw in f.read().decode("ascii").splitlines():
            if raw.startswith("Cpus_allowed_list:"):
                for part in raw.split()[1].split(","):
                    lo, _, hi = part.partition("-")
                    cpus.update(range(int(lo), int(hi or lo) + 1))
    with open(f"{proc}/stat", "rb") as f:
        stat = f.read()
    nice = int(stat[stat.rindex(b")") + 2:].split()[19 - 3])  # field 19: proc(5)
    return limits, cpus, nice


def _as_client(pid: int) -> bool:
    """Take on the client's blocked signals and OOM score (inherited by a command it would start)."""
    import signal

    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read().decode("ascii", "replace")
        with open(f"/proc/{pid}/oom_score_adj", "rb") as f:
            oom = f.read().strip()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            blocked = {n for n in range(1, 65) if mask & (1 << (n - 1))}
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            except (OSError, ValueError):
                return False
    try:
        with open("/proc/self/oom_score_adj", "rb") as f:
            mine = f.read().strip()
        if mine != oom:
            with open("/proc/self/oom_score_adj", "wb") as f:
                f.write(oom)
    except OSError:
        return False
    return True


def _new_stdio(io) -> None:
    """sys.stdin/stdout/stderr for the client's fds, made as Python makes them at start."""
    enc = sys.stdout.encoding if sys.stdout is not None else "utf-8"
    out_errors = sys.stdout.errors if sys.stdout is not None else "strict"
    in_errors = sys.stdin.errors if sys.stdin is not None else "strict"
    unbuffered = not isinstance(getattr(sys.stdout, "buffer", None), io.BufferedWriter) and sys.stdout is not None

    def stream(fd: int, mode: str, errors: str, line: bool):
        raw = io.FileIO(fd, mode, closefd=False)
        if mode == "rb":
            buf = io.BufferedReader(raw)
        elif unbuffered:
            buf = raw
        else:
            buf = io.BufferedWriter(raw)
        return io.TextIOWrapper(buf, encoding=enc, errors=errors, newline="\n" if mode == "wb" else None,
                                line_buffering=line, write_through=unbuffered and mode == "wb")

    sys.stdin = sys.__stdin__ = stream(0, "rb", in_errors, False)
    sys.stdout = sys.__stdout__ = stream(1, "wb", out_errors, os.isatty(1))
    sys.stderr = sys.__stderr__ = stream(2, "wb", "backslashreplace", True)
