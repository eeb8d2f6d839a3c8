"""Mounts as an unprivileged root does them: option parsing, safe paths, binds, read-only remounts.

Rules of the game inside a user namespace (mount_namespaces(7), "locked" mounts):
- the flags of mounts inherited from the host (nosuid, nodev, noexec, the atime mode) are locked:
  a remount that would clear them fails with EPERM, so every remount keeps them (``locked_flags``);
- sysfs can only be mounted by the owner of the network namespace: with the host's network we
  bind the host's /sys and make the whole tree read-only, as rootless crun and podman do;
- mknod is not allowed: devices are bind mounts of the host's nodes on empty files.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Dict, List, Optional, Tuple

from rootless.errors import RuntimeSetupError
from rootless.linux import syscalls as sc

# option -> (clear, set)   (runc's parseMountOptions)
_FLAGS: Dict[str, Tuple[int, int]] = {
    "ro": (0, sc.MS_RDONLY),
    "rw": (sc.MS_RDONLY, 0),
    "suid": (sc.MS_NOSUID, 0),
    "nosuid": (0, sc.MS_NOSUID),
    "dev": (sc.MS_NODEV, 0),
    "nodev": (0, sc.MS_NODEV),
    "exec": (sc.MS_NOEXEC, 0),
    "noexec": (0, sc.MS_NOEXEC),
    "sync": (0, sc.MS_SYNCHRONOUS),
    "async": (sc.MS_SYNCHRONOUS, 0),
    "dirsync": (0, sc.MS_DIRSYNC),
    "remount": (0, sc.MS_REMOUNT),
    "mand": (0, sc.MS_MANDLOCK),
    "nomand": (sc.MS_MANDLOCK, 0),
    "atime": (sc.MS_NOATIME, 0),
    "noatime": (0, sc.MS_NOATIME),
    "diratime": (sc.MS_NODIRATIME, 0),
    "nodiratime": (0, sc.MS_NODIRATIME),
    "relatime": (0, sc.MS_RELATIME),
    "norelatime": (sc.MS_RELATIME, 0),
    "strictatime": (0, sc.MS_STRICTATIME),
    "nostrictatime": (sc.MS_STRICTATIME, 0),
    "bind": (0, sc.MS_BIND),
    "rbind": (0, sc.MS_BIND | sc.MS_REC),
    "nosymfollow": (0, sc.MS_NOSYMFOLLOW),
    "symfollow": (sc.MS_NOSYMFOLLOW, 0),
    "lazytime": (0, sc.MS_LAZYTIME),
    "nolazytime": (sc.MS_LAZYTIME, 0),
}
_PROPAGATION: Dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
_IGNORED = {"tmpcopyup", "notmpcopyup", "defaults", "copy-symlink", "z", "Z", "U"}


def parse_options(options: List[str]) -> Tuple[int, List[int], str]:
    """(flags, propagation flags in order, fs data) from OCI mount options."""
    flags = 0
    prop: List[int] = []
    data: List[str] = []
    for opt in options or []:
        if opt in _FLAGS:
            clear, set_ = _FLAGS[opt]
            flags = (flags & ~clear) | set_
        elif opt in _PROPAGATION:
            prop.append(_PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        elif opt in ("idmap", "ridmap") or opt.startswith(("idmap=", "ridmap=")):
            raise RuntimeSetupError(f"parse mount option `{opt}`: not supported", "remove it from the mount")
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with every symlink resolved as if ``root`` were /, never outside it.

    A container's rootfs is untrusted: ``/etc -> /host/etc`` must not make a mount land on the
    host (CVE-2021-30465 style races aside, the same walk runc's securejoin does).
    """
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p]
    resolved: List[str] = []
    links = 0
    while parts:
        p = parts.pop(0)
        if p == ".":
            continue
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, p)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise RuntimeSetupError(f"resolve `{unsafe}` in the rootfs: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [x for x in target.split("/") if x] + parts
            continue
        resolved.append(p)
    return os.path.join(root, *resolved)


def locked_flags(path: str) -> int:
    """The flags of the mount at ``path`` a remount inside a user namespace must keep."""
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    out = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC)):
        if f & st_flag:
            out |= ms_flag
    if f & os.ST_NOATIME:
        out |= sc.MS_NOATIME
    elif f & os.ST_RELATIME:
        out |= sc.MS_RELATIME
    else:
        out |= sc.MS_STRICTATIME
    if f & os.ST_NODIRATIME:
        out |= sc.MS_NODIRATIME
    return out


def do_mount(what: str, source: Optional[str], target: str, fstype: Optional[str], flags: int, data: Optional[str], shown: str = "") -> None:
    """mount(2), with an error in the house shape: ``mount `proc` on `/proc`: reason``."""
    try:
        sc.mount(source, target, fstype, flags, data or None)
    except OSError as e:
        raise RuntimeSetupError(f"mount `{what}` on `{shown or target}`: {e.strerror}", _hint_for(e.errno, fstype)) from e


def _hint_for(err: int, fstype: Optional[str]) -> str:
    if err == errno.EPERM:
        return "an unprivileged user cannot mount this here; check the mount's type and options in config.json"
    if err == errno.ENODEV:
        return f"the kernel does not support the `{fstype}` filesystem"
    if err == errno.ENOENT:
        return "check that the mount's source exists"
    return "check the mount's source, type and options in config.json"


def remount(target: str, flags: int, shown: str = "", recursive: bool = False) -> None:
    """Remount the bind at ``target`` with ``flags`` (ro, nosuid, ...) keeping the locked ones.

    ``recursive`` makes a read-only rbind read-only all the way down (mount_setattr, Linux 5.12).
    """
    if recursive and flags & sc.MS_RDONLY:
        try:
            sc.mount_setattr(target, sc.MOUNT_ATTR_RDONLY, recursive=True)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EINVAL):
                raise RuntimeSetupError(f"remount `{shown or target}` read-only: {e.strerror}") from e
    keep = locked_flags(target)
    wanted = flags & (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME
                      | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)
    if wanted & (sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME):
        keep &= ~(sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME)
    try:
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | wanted | keep)
    except OSError as e:
        if e.errno == errno.EPERM and wanted & (sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME):
            # the atime mode is locked too: keep the current one
            try:
                sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | (wanted & ~(sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME)) | locked_flags(target))
                return
            except OSError:
                pass
        raise RuntimeSetupError(f"remount `{shown or target}` ({flag_names(wanted)}): {e.strerror}",
                                "a flag the host sets on this mount cannot be cleared from a user namespace") from e


def flag_names(flags: int) -> str:
    bits = (("ro", sc.MS_RDONLY), ("nosuid", sc.MS_NOSUID), ("nodev", sc.MS_NODEV), ("noexec", sc.MS_NOEXEC),
            ("noatime", sc.MS_NOATIME), ("relatime", sc.MS_RELATIME), ("strictatime", sc.MS_STRICTATIME))
    return ",".join(name for name, bit in bits if flags & bit) or "defaults"


def make_target(path: str, is_file: bool, shown: str) -> None:
    """Create a mountpoint: an empty file for a file bind, else directories."""
    try:
        if is_file:
            parent = os.path.dirname(path)
            os.makedirs(parent, exist_ok=True)
            if not os.path.lexists(path):
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        else:
            os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise RuntimeSetupError(f"create mountpoint `{shown}`: {e.strerror}",
                                "the rootfs is read-only or the path is taken by a file of another kind") from e


def bind(source: str, target: str, flags: int, prop: List[int], shown: str, recursive_ro: bool = False) -> None:
    """A bind mount with its flags applied by a remount, then its propagation."""
    rec = flags & sc.MS_REC
    do_mount(source, source, target, None, sc.MS_BIND | rec, None, shown)
    extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        remount(target, extra, shown, recursive=recursive_ro and bool(rec))
    for p in prop:
        do_mount(shown, None, target, None, p, None, shown)
