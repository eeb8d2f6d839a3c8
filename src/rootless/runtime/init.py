"""The container init (``rootless:init``, pid 1 in the container): mounts, pivot_root, the
process's identity and limits, then execve.

Setup (runc's prepareRootfs + finalizeNamespace, in that order): bind the rootfs on itself;
spec.mounts (proc, /dev tmpfs, devpts, shm, mqueue, sysfs or a read-only bind of the host's
/sys, binds, tmpfs); device nodes as binds of the host's; pivot_root; sysctls; masked and
read-only paths; hostname; the pty; a read-only root; cwd; rlimits. Then READY, and the wait for
START (or for a reader of the exec fifo). Then, in the process that execs: a cgroup namespace,
a new session, stdio, groups/uid/gid, capabilities, no_new_privs, umask, the seccomp filter
(before the capabilities are dropped when no_new_privs is off: runc's order), execve.

With the annotation ``io.rootless.init=true`` pid 1 stays ours: it forks the process that execs,
forwards signals to it, reaps every zombie and exits with its status (docker's --init, no tini).

Every module this code needs is imported at the top: after pivot_root the interpreter's standard
library is out of sight, so a lazy import there fails.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import socket
import stat
import struct
import termios
from typing import Dict, List, NoReturn, Optional

from rootless.errors import EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, RootlessError, RuntimeSetupError
from rootless.linux import syscalls as sc
from rootless.runtime import ANNOTATION_INIT, Stdio, caps, mounts, sync
from rootless.value import Value

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"))
RLIM_MAX = 2**64 - 1


class _Exec(Value):
    __slots__ = ("path", "args", "env", "pty_slave", "fifo_fd", "last_cap", "setgroups_allowed")
    path: str
    args: List[str]
    env: Dict[str, str]
    pty_slave: Optional[int]
    fifo_fd: Optional[int]
    last_cap: int
    setgroups_allowed: bool

    def __init__(
        self,
        path: str,
        args: List[str],
        env: Dict[str, str],
        pty_slave: Optional[int],
        fifo_fd: Optional[int],
        last_cap: int = 40,
        setgroups_allowed: bool = True,
    ) -> None:
        self.path = path
        self.args = args
        self.env = env
        self.pty_slave = pty_slave
        self.fifo_fd = fifo_fd
        self.last_cap = last_cap
        self.setgroups_allowed = setgroups_allowed


def _loopback_up() -> None:
    """ioctl SIOCGIFFLAGS/SIOCSIFFLAGS on `lo` (netdevice(7)); we hold CAP_NET_ADMIN over this netns."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, ifr))[1]
        if not flags & 0x1:
            fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))
    except OSError as e:
        raise RuntimeSetupError(f"bring up `lo` in the container's network namespace: {e.strerror}")
    finally:
        s.close()


def main(cfg, ctl: socket.socket) -> NoReturn:
    try:
        sc.set_name("rootless:init")
    except OSError:
        pass
    try:
        ex = _setup(cfg, ctl)
        sync.send(ctl, sync.Ready())
        _wait_for_start(cfg, ctl, ex)
    except RootlessError as e:
        _fail(ctl, e.message, e.hint, e.exit_code)
    except BaseException as e:  # noqa: BLE001 - never let a traceback be the only trace
        _fail(ctl, f"set up the container: {type(e).__name__}: {e}", "this is a bug in rootless; please report it", 125)
    annotations = cfg.spec.get("annotations") or {}
    if str(annotations.get(ANNOTATION_INIT, "")).lower() in ("true", "1", "yes"):
        _reaping_init(cfg, ctl, ex)
    _finalize_and_exec(cfg, ctl, ex)


def _fail(ctl: Optional[socket.socket], message: str, hint: Optional[str], code: int) -> NoReturn:
    """Tell the parent; if it is gone (runtime create returned), say it on the container's stderr."""
    sent = False
    if ctl is not None:
        try:
            sync.send(ctl, sync.Error(message, hint, code))
            sent = True
        except OSError:
            pass
    if not sent:
        try:
            os.write(2, f"rootless: {message}\n".encode())
        except OSError:
            pass
    os._exit(code)


# --- setup ------------------------------------------------------------------------------------------


def _setup(cfg, ctl: socket.socket) -> _Exec:
    spec = cfg.spec
    linux = spec.get("linux") or {}
    process = spec.get("process") or {}
    rootfs = cfg.rootfs
    fifo_fd = None
    if cfg.exec_fifo:
        try:
            # O_PATH now, reopened for writing through /proc/self/fd after pivot_root (runc's exec.fifo)
            fifo_fd = os.open(cfg.exec_fifo, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise RuntimeSetupError(f"open exec fifo `{cfg.exec_fifo}`: {e.strerror}")
    # Read while the host's /proc is in sight (the spec may mount none).
    last_cap = sc.last_cap()
    setgroups_allowed = setgroups_permitted()
    mounts.do_mount("rootfs", rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC, None, rootfs)
    dev_is_tmpfs = False
    for m in spec.get("mounts") or []:
        if _mount_one(cfg, m):
            dev_is_tmpfs = True
    if dev_is_tmpfs:
        _setup_dev(rootfs, linux.get("devices") or [])
    _pivot_root(rootfs)
    for key, value in (linux.get("sysctl") or {}).items():
        _sysctl(key, str(value))
    for p in linux.get("maskedPaths") or []:
        _mask(p)
    for p in linux.get("readonlyPaths") or []:
        _readonly(p)
    ns_types = {n.get("type") for n in linux.get("namespaces") or []}
    if spec.get("hostname"):
        if "uts" not in ns_types:
            raise RuntimeSetupError("set hostname: the container has no uts namespace of its own",
                                    "add a `uts` namespace to linux.namespaces or drop `hostname`")
        try:
            sc.sethostname(spec["hostname"])
        except OSError as e:
            raise RuntimeSetupError(f"set hostname `{spec['hostname']}`: {e.strerror}")
    if any(n.get("type") == "network" and not n.get("path") for n in linux.get("namespaces") or []):
        _loopback_up()  # a new network namespace starts with lo down; docker's containers have it up
    if spec.get("domainname") and "uts" in ns_types:
        try:
            sc.setdomainname(spec["domainname"])
        except OSError as e:
            raise RuntimeSetupError(f"set domainname `{spec['domainname']}`: {e.strerror}")
    slave = None
    if process.get("terminal"):
        slave = _open_pty(ctl, process.get("consoleSize"), dev_is_tmpfs)
    if (spec.get("root") or {}).get("readonly"):
        mounts.remount("/", sc.MS_RDONLY, "/")
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise RuntimeSetupError(f"chdir to cwd `{cwd}`: {e.strerror}", "set process.cwd (-w) to a directory of the image")
    for rl in process.get("rlimits") or []:
        set_rlimit(rl)
    if process.get("oomScoreAdj") is not None:
        _write_file("/proc/self/oom_score_adj", str(int(process["oomScoreAdj"])), "set oom_score_adj")
    env = env_map(process.get("env") or [])
    args = process.get("args") or []
    if not args:
        raise RuntimeSetupError("start the container: process.args is empty", "give a command or an image with a CMD")
    path = lookup(args[0], env.get("PATH", DEFAULT_PATH))
    return _Exec(path, [str(a) for a in args], env, slave, fifo_fd, last_cap, setgroups_allowed)


def _mount_one(cfg, m: dict) -> bool:
    """One entry of spec.mounts. True when it made /dev a tmpfs (devices go in later)."""
    rootfs = cfg.rootfs
    dest = m.get("destination") or ""
    if not dest.startswith("/"):
        dest = "/" + dest
    typ = m.get("type") or ""
    src = m.get("source") or ""
    flags, prop, data = mounts.parse_options(m.get("options") or [])
    target = mounts.secure_join(rootfs, dest)
    if typ == "bind" or flags & sc.MS_BIND:
        if not os.path.isabs(src):
            src = os.path.join(cfg.bundle, src)
        try:
            st = os.stat(src)
        except OSError as e:
            raise RuntimeSetupError(f"bind `{src}` on `{dest}`: {e.strerror}", "check the mount's source on the host")
        mounts.make_target(target, not stat.S_ISDIR(st.st_mode), dest)
        mounts.bind(src, target, flags | sc.MS_BIND, prop, dest)
        return False
    mounts.make_target(target, False, dest)
    if typ == "sysfs":
        try:
            sc.mount(src or "sysfs", target, "sysfs", flags, data or None)
        except OSError:
            # sysfs belongs to the network namespace's owner: with the host's network we are not.
            mounts.bind("/sys", target, flags | sc.MS_BIND | sc.MS_REC, prop, dest, recursive_ro=True)
            return False
    elif typ in ("cgroup", "cgroup2"):
        try:
            sc.mount(src or typ, target, typ, flags, data or None)
        except OSError:
            if os.path.isdir("/sys/fs/cgroup"):
                mounts.bind("/sys/fs/cgroup", target, flags | sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY, [], dest, recursive_ro=True)
            return False
    elif typ == "mqueue":
        try:
            sc.mount(src or "mqueue", target, "mqueue", flags, data or None)
        except OSError:
            if os.path.isdir("/dev/mqueue"):
                mounts.bind("/dev/mqueue", target, flags | sc.MS_BIND, [], dest)
            return False
    elif typ == "devpts":
        try:
            sc.mount(src or "devpts", target, "devpts", flags, data or None)
        except OSError as e:
            # gid=5 (tty) is not mapped with a one-uid map: retry without it, as crun does.
            opts = [o for o in (data or "").split(",") if o and not o.startswith("gid=")]
            if e.errno != errno.EINVAL or len(opts) == len((data or "").split(",")):
                raise RuntimeSetupError(f"mount `devpts` on `{dest}`: {e.strerror}")
            mounts.do_mount("devpts", src or "devpts", target, "devpts", flags, ",".join(opts), dest)
    else:
        mounts.do_mount(typ or src, src or typ, target, typ or None, flags, data or None, dest)
    for p in prop:
        mounts.do_mount(dest, None, target, None, p, None, dest)
    return dest.rstrip("/") == "/dev" and typ == "tmpfs"


def _setup_dev(rootfs: str, devices: List[dict]) -> None:
    """Device nodes as binds of the host's (mknod is not allowed in a user namespace)."""
    wanted = [f"/dev/{d}" for d in DEFAULT_DEVICES] + [d.get("path") for d in devices if d.get("path")]
    for path in dict.fromkeys(wanted):
        target = mounts.secure_join(rootfs, path)
        if os.path.lexists(target) and not _is_empty_file(target):
            continue
        if not os.path.exists(path):
            if path[5:] in DEFAULT_DEVICES:
                continue
            raise RuntimeSetupError(f"bind device `{path}`: the host has no such device",
                                    "remove it from linux.devices, or create it on the host")
        mounts.make_target(target, True, path)
        mounts.bind(path, target, sc.MS_BIND | sc.MS_NOSUID | sc.MS_NOEXEC, [], path)
    dev = mounts.secure_join(rootfs, "/dev")
    for src, name in DEV_SYMLINKS:
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            try:
                os.symlink(src, link)
            except OSError as e:
                raise RuntimeSetupError(f"create symlink `/dev/{name}`: {e.strerror}")


def _is_empty_file(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _pivot_root(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked underneath (runc's way: no put_old dir)."""
    try:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeSetupError(f"open rootfs `{rootfs}`: {e.strerror}")
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        # Make the old root a slave so that detaching it does not propagate anywhere.
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    except OSError as e:
        raise RuntimeSetupError(f"pivot_root to `{rootfs}`: {e.strerror}",
                                "the rootfs must be a directory on a mount the user namespace may use")
    finally:
        os.close(old)
        os.close(new)


def _sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    _write_file(path, value, f"set sysctl `{key}`")


def _write_file(path: str, value: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise RuntimeSetupError(f"{what} to `{value}`: {e.strerror}")


def _mask(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    try:
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
            mounts.remount(path, sc.MS_RDONLY, path)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise RuntimeSetupError(f"mask path `{path}`: {e.strerror}")


def _readonly(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise RuntimeSetupError(f"make `{path}` read-only: {e.strerror}")
    mounts.remount(path, sc.MS_RDONLY, path)


def _open_pty(ctl: socket.socket, size: Optional[dict], dev_is_tmpfs: bool) -> int:
    """A pty of the container's own devpts; the master goes to the parent (crun's console socket)."""
    try:
        master, slave = os.openpty()
    except OSError as e:
        raise RuntimeSetupError(f"allocate a pty: {e.strerror}", "mount a devpts (newinstance) on /dev/pts")
    if size and size.get("height") and size.get("width"):
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0))
        except OSError:
            pass
    if dev_is_tmpfs:
        try:
            name = os.ttyname(slave)
            mounts.make_target("/dev/console", True, "/dev/console")
            sc.mount(name, "/dev/console", None, sc.MS_BIND)
        except OSError:
            pass
    try:
        sync.send(ctl, sync.PtyMaster(), fd=master)
    except OSError as e:
        raise RuntimeSetupError(f"send the pty to the caller: {e.strerror}")
    os.close(master)
    os.set_inheritable(slave, False)
    return slave


def set_rlimit(rl: dict) -> None:
    name = str(rl.get("type", ""))
    res = getattr(resource, name, None)
    if not name.startswith("RLIMIT_") or res is None:
        raise RuntimeSetupError(f"set rlimit `{name}`: unknown limit", "use names such as RLIMIT_NOFILE")

    def conv(v) -> int:
        v = int(v)
        return resource.RLIM_INFINITY if v < 0 or v >= RLIM_MAX else v

    soft, hard = conv(rl.get("soft", 0)), conv(rl.get("hard", 0))
    try:
        resource.setrlimit(res, (soft, hard))
    except (OSError, ValueError) as e:
        cur = resource.getrlimit(res)
        reason = getattr(e, "strerror", None) or str(e)
        raise RuntimeSetupError(
            f"set rlimit `{name}` to {rl.get('soft')}:{rl.get('hard')}: {reason}",
            f"an unprivileged user cannot raise a hard limit (yours is {cur[1] if cur[1] != resource.RLIM_INFINITY else 'unlimited'})",
        )


def env_map(items: List[str]) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for item in items:
        k, sep, v = str(item).partition("=")
        if k:
            env[k] = v
    return env


# --- exec: lookup, errors as docker shows them --------------------------------------------------------


def exec_error(name: str, reason: str, code: int) -> RuntimeSetupError:
    hint = ("check the command name and the image's PATH" if code == EXIT_NOT_FOUND
            else "check that the file is an executable the container's user may run")
    return RuntimeSetupError(f'exec: "{name}": {reason}', hint, code)


def lookup(name: str, path_env: str) -> str:
    """Go's exec.LookPath in the container (docker's messages and exit codes)."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            code = EXIT_NOT_FOUND if e.errno in (errno.ENOENT, errno.ENOTDIR) else EXIT_CANNOT_EXEC
            raise exec_error(name, f"stat {name}: {e.strerror.lower()}", code)
        if stat.S_ISDIR(st.st_mode):
            raise exec_error(name, "is a directory", EXIT_CANNOT_EXEC)
        return name
    for d in path_env.split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise exec_error(name, "executable file not found in $PATH", EXIT_NOT_FOUND)


# --- waiting and exec ----------------------------------------------------------------------------------


def _wait_for_start(cfg, ctl: socket.socket, ex: _Exec) -> None:
    if ex.fifo_fd is not None:
        try:
            fd = os.open(f"/proc/self/fd/{ex.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until `start`
            os.write(fd, b"0")
            os.close(fd)
            os.close(ex.fifo_fd)
        except OSError as e:
            raise RuntimeSetupError(f"wait on the exec fifo: {e.strerror}")
        ex.fifo_fd = None
        return
    msg = sync.recv(ctl)
    if not isinstance(msg, sync.Start):
        os._exit(125)  # the parent went away or gave up (it reports why)


def _restore_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; an exec'd program must not inherit that."""
    for s in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(s, signal.SIG_DFL)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
    except (OSError, AttributeError):
        pass


def _finalize_and_exec(cfg, ctl: socket.socket, ex: _Exec) -> NoReturn:
    try:
        finalize(cfg.spec.get("process") or {}, cfg.stdio, ex.pty_slave, cfg.seccomp, ex.last_cap,
                 ex.setgroups_allowed, cfg.new_cgroup)
        close_fds(keep=ctl.fileno())
        os.execve(ex.path, ex.args, ex.env)
    except RootlessError as e:
        _fail(ctl, e.message, e.hint, e.exit_code)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            err = RuntimeSetupError(f"exec {ex.path}: {e.strerror.lower()}",
                                    "the program or its interpreter (#! line, dynamic loader) is missing in the image",
                                    EXIT_NOT_FOUND)
        else:
            err = exec_error(ex.args[0], (e.strerror or str(e)).lower(), EXIT_CANNOT_EXEC)
        _fail(ctl, err.message, err.hint, err.exit_code)
    except BaseException as e:  # noqa: BLE001
        _fail(ctl, f"start the container process: {type(e).__name__}: {e}", "this is a bug in rootless; please report it", 125)
    os._exit(125)


def finalize(
    process: dict,
    stdio: Stdio,
    pty_slave: Optional[int],
    seccomp: Optional[bytes],
    last_cap: int,
    groups_allowed: bool,
    new_cgroup: bool = False,
) -> None:
    """The last steps before execve, shared by a container's init and by exec (runtime/exec.py):
    signals restored, new session, stdio (or the pty slave as controlling terminal), seccomp,
    capabilities, groups, uid/gid, no_new_privs, umask, from the OCI ``process``."""
    user = process.get("user") or {}
    _restore_signals()
    if new_cgroup:
        try:
            sc.unshare(sc.CLONE_NEWCGROUP)  # after on_ready placed us in our cgroup: it becomes our root
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise RuntimeSetupError(f"unshare `cgroup` namespace: {e.strerror}")
    try:
        os.setsid()
    except OSError:
        pass
    _stdio(stdio, pty_slave)
    prog = seccomp
    nnp = bool(process.get("noNewPrivileges"))
    if prog and not nnp:
        # Without no_new_privs a filter needs CAP_SYS_ADMIN (in our user namespace): load it
        # before the capabilities are dropped. With it, as late as possible (runc does the same).
        _seccomp(prog)
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    last = last_cap
    capspec = process.get("capabilities")
    if capspec is not None:
        bounding = caps.mask(capspec.get("bounding"), "bounding", last)
        effective = caps.mask(capspec.get("effective"), "effective", last)
        permitted = caps.mask(capspec.get("permitted"), "permitted", last)
        inheritable = caps.mask(capspec.get("inheritable"), "inheritable", last)
        ambient = caps.mask(capspec.get("ambient"), "ambient", last)
        caps.drop_bounding(bounding, last)
    if groups_allowed:
        try:
            os.setgroups(groups)
        except OSError as e:
            raise RuntimeSetupError(f"set additional groups `{groups}`: {e.strerror}",
                                    "every group must be mapped in the user namespace (/etc/subgid)")
    elif groups and set(groups) - {gid}:
        raise RuntimeSetupError(f"set additional groups `{groups}`: setgroups is denied with a one-uid map",
                                "give your user a range in /etc/subuid and /etc/subgid")
    if capspec is not None:
        sc.set_keepcaps(True)
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        hint = ("uid/gid 0 is the only one mapped without a range in /etc/subuid and /etc/subgid"
                if e.errno == errno.EINVAL else None)
        raise RuntimeSetupError(f"set user `{uid}:{gid}`: {e.strerror}", hint)
    if capspec is not None:
        sc.set_keepcaps(False)
        caps.apply_sets(effective, permitted, inheritable, ambient, last)
    if nnp:
        sc.set_no_new_privs()
    umask = user.get("umask")
    os.umask(int(umask) if umask is not None else 0o022)
    if prog and nnp:
        _seccomp(prog)


def _seccomp(prog: bytes) -> None:
    """linux.seccomp, compiled by the parent (rootless.linux.seccomp): seccomp(2) SECCOMP_MODE_FILTER."""
    try:
        sc.seccomp_set_filter(prog)
    except OSError as e:
        raise RuntimeSetupError(f"apply the seccomp profile: {e.strerror}",
                                "the kernel needs CONFIG_SECCOMP_FILTER; or use --security-opt seccomp=unconfined")


def setgroups_permitted() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _stdio(s: Stdio, pty_slave: Optional[int]) -> None:
    if pty_slave is not None:
        try:
            fcntl.ioctl(pty_slave, termios.TIOCSCTTY, 0)
        except OSError as e:
            raise RuntimeSetupError(f"make the pty the controlling terminal: {e.strerror}")
        for fd in (0, 1, 2):
            os.dup2(pty_slave, fd)
        if pty_slave > 2:
            os.close(pty_slave)
        return
    # Move the requested fds out of the way first: stdin may be the caller's fd 1, and so on.
    moved = {}
    for target, fd in ((0, s.stdin), (1, s.stdout), (2, s.stderr)):
        if fd is not None:
            moved[target] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    for target, fd in moved.items():
        os.dup2(fd, target)  # dup2 clears close-on-exec on the target
        os.close(fd)


def close_fds(keep: int) -> None:
    """Close every fd but 0-2 and ``keep`` (close-on-exec, it reports exec errors)."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


# --- the reaping init ------------------------------------------------------------------------------------


def _reaping_init(cfg, ctl: socket.socket, ex: _Exec) -> NoReturn:
    """pid 1 stays this Python process: forward signals, reap zombies, exit as the child did."""
    # Everything but what cannot be caught, job control and the synchronous faults (tini's list).
    skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
            signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT}
    forward = [s for s in signal.Signals if s not in skip]
    child_pid = 0
    pending: List[int] = []

    def handler(signum, _frame):
        if child_pid:
            try:
                os.kill(child_pid, signum)
            except OSError:
                pass
        else:
            pending.append(signum)

    for s in forward:
        try:
            signal.signal(s, handler)
        except (OSError, ValueError):
            pass
    pid = os.fork()
    if pid == 0:
        for s in forward:
            try:
                signal.signal(s, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        _finalize_and_exec(cfg, ctl, ex)
    child_pid = pid
    if getattr(cfg, "seccomp", None):
        # pid 1 stays in the container too (docker's tini runs under the filter): no unfiltered
        # process for the container's ones to reach through ptrace or a leaked fd.
        try:
            _seccomp(cfg.seccomp)
        except RootlessError as e:
            os.kill(pid, signal.SIGKILL)
            _fail(ctl, e.message, e.hint, e.exit_code)
    ctl.close()
    if ex.pty_slave is not None:
        os.close(ex.pty_slave)
    close_fds(keep=-1)
    devnull = os.open("/dev/null", os.O_RDWR) if os.path.exists("/dev/null") else -1
    for fd in (0, 1, 2):
        if devnull >= 0 and devnull != fd:
            os.dup2(devnull, fd)
    for s in pending:
        handler(s, None)
    try:
        sc.set_name("rootless:pid1")
    except OSError:
        pass
    while True:
        try:
            got, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if got == child_pid:
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            os._exit(code)
