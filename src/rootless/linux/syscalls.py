"""The Linux system calls the standard library lacks, through ctypes; errno becomes OSError.

This is the one module of the project that calls ctypes. Each wrapper is small and raises
``OSError(errno, strerror)`` exactly as ``os`` functions do, so callers can name the step and
render ``e.strerror`` ("mount `proc` on `/proc`: Operation not permitted").

Python 3.12 grew ``os.unshare``/``os.setns``; we support 3.9, so they are here.
"""

from __future__ import annotations

import ctypes
import os
from typing import List, Optional, Sequence, Tuple

# --- clone(2) flags (linux/sched.h) --------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# OCI namespace type -> clone flag
NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER,
    "mount": CLONE_NEWNS,
    "pid": CLONE_NEWPID,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "network": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# OCI namespace type -> the name under /proc/PID/ns/
NAMESPACE_FILES = {
    "user": "user",
    "mount": "mnt",
    "pid": "pid",
    "uts": "uts",
    "ipc": "ipc",
    "network": "net",
    "cgroup": "cgroup",
    "time": "time",
}

# --- mount(2) flags (linux/mount.h) --------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# mount_setattr(2) (Linux 5.12)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

# --- prctl(2) ------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc = ctypes.CDLL(None, use_errno=True)

_SYS_NUMBERS = {
    # pivot_root has no glibc wrapper before 2.36; mount_setattr and close_range are new.
    "x86_64": {"pivot_root": 155},
    "aarch64": {"pivot_root": 41},
    "arm64": {"pivot_root": 41},
    "riscv64": {"pivot_root": 41},
    "ppc64le": {"pivot_root": 203},
    "s390x": {"pivot_root": 217},
    "i686": {"pivot_root": 217},
    "armv7l": {"pivot_root": 218},
}
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (the unified table)


def _sysno(name: str) -> int:
    machine = os.uname().machine  # what platform.machine() returns on Linux, without importing it
    try:
        return _SYS_NUMBERS[machine][name]
    except KeyError:
        raise OSError(38, f"{name} not supported on {machine}")  # ENOSYS


def _check(ret: int) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else os.fsencode(s)


# --- namespaces -----------------------------------------------------------------------------------


def unshare(flags: int) -> None:
    """unshare(2). CLONE_NEWUSER fails with EINVAL in a multi-threaded process."""
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace ``fd`` refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


# --- mounts ---------------------------------------------------------------------------------------


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int = 0, data: Optional[str] = None) -> None:
    """mount(2)."""
    _check(
        _libc.mount(
            ctypes.c_char_p(_b(source)),
            ctypes.c_char_p(_b(target)),
            ctypes.c_char_p(_b(fstype)),
            ctypes.c_ulong(flags),
            ctypes.c_char_p(_b(data)),
        )
    )


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(ctypes.c_char_p(_b(target)), ctypes.c_int(flags)))


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2); ``pivot_root(".", ".")`` stacks the old root on the new one (runc's trick)."""
    _check(_libc.syscall(ctypes.c_long(_sysno("pivot_root")), ctypes.c_char_p(_b(new_root)), ctypes.c_char_p(_b(put_old))))


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, recursive: bool = True, dirfd: int = -100) -> None:
    """mount_setattr(2) (Linux 5.12): change the flags of a whole mount tree at once.

    The one way to make an rbind read-only recursively without walking mountinfo.
    """
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    _check(
        _libc.syscall(
            ctypes.c_long(SYS_MOUNT_SETATTR),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(_b(path)),
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
    )


# --- prctl ----------------------------------------------------------------------------------------


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)
        )
    )


def set_name(name: str) -> None:
    """PR_SET_NAME: what ``ps -o comm`` and /proc/PID/comm show (15 bytes at most)."""
    buf = ctypes.create_string_buffer(os.fsencode(name)[:15])
    _check(_libc.prctl(ctypes.c_int(PR_SET_NAME), buf, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)))


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    """PR_SET_DUMPABLE: a process that is not dumpable cannot be ptrace-attached, nor its
    /proc/PID/{environ,mem,fd} read, by a process without CAP_SYS_PTRACE over its memory's user
    namespace -- such as one in a container it joins (runc CVE-2016-9962). execve resets it."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def get_dumpable() -> bool:
    return prctl(PR_GET_DUMPABLE) == 1


def scrub_environ(proc: str = "/proc/self") -> None:
    """Empty this process's environment: the C ``environ`` (clearenv(3)) and the bytes the kernel
    shows as /proc/PID/environ (the strings execve put on the stack, kept after any unsetenv)."""
    _libc.clearenv()
    try:
        with open(f"{proc}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) ": field 3 is fields[0]
        start, end = int(fields[50 - 3]), int(fields[51 - 3])  # env_start, env_end: proc(5)
    except (OSError, ValueError, IndexError):
        return
    if 0 < start < end and end - start < (64 << 20):
        ctypes.memset(start, 0, end - start)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def capbset_read(cap: int) -> bool:
    return prctl(PR_CAPBSET_READ, cap) == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def cap_ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


def cap_ambient_clear_all() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


# --- capabilities (capget/capset with _LINUX_CAPABILITY_VERSION_3: two 32-bit words) --------------

_CAP_V3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> Tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_CAP_V3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data))
    eff = data[0].effective | (data[1].effective << 32)
    perm = data[0].permitted | (data[1].permitted << 32)
    inh = data[0].inheritable | (data[1].inheritable << 32)
    return eff, perm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data))


# --- identity -------------------------------------------------------------------------------------


def sethostname(name: str) -> None:
    b = os.fsencode(name)
    _check(_libc.sethostname(ctypes.c_char_p(b), ctypes.c_size_t(len(b))))


def setdomainname(name: str) -> None:
    b = os.fsencode(name)
    _check(_libc.setdomainname(ctypes.c_char_p(b), ctypes.c_size_t(len(b))))


def setgroups(gids: Sequence[int]) -> None:
    """setgroups(2) (os.setgroups does the same; kept here so stages import one module)."""
    os.setgroups(list(gids))


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number this kernel knows."""
    try:
        with open(os.path.join(proc, "sys/kernel/cap_last_cap")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 40


def all_caps_mask(proc: str = "/proc") -> int:
    return (1 << (last_cap(proc) + 1)) - 1


def caps_list(mask: int) -> List[int]:
    return [i for i in range(64) if mask >> i & 1]


# --- seccomp ----------------------------------------------------------------------------------------
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(prog: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog) (seccomp(2)); ``prog`` is struct
    sock_filter[] in native byte order. Needs no_new_privs or CAP_SYS_ADMIN in the user namespace."""
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)))
