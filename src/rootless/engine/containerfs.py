"""A container's filesystem from outside: cp (both ways), diff, export, commit.

Every read or write of the container's files happens in a child that is root of the container's
user namespace and chrooted into the container's root, so a symlink in the container resolves
inside it (``/etc/shadow`` is the container's, never the host's) and subordinate-uid owned files
are readable:

- running container: the child joins the init's user namespace (first: it gives the rights for
  the rest), opens ``/proc/PID/root``, joins its mount namespace and chroots there;
- stopped container: a new user and mount namespace (mapped like the container's) applies the storage driver's
  rootfs plan (the overlay mount) and chroots into it.

Data crosses the chroot as tar streams through files opened before it (temp files under data-root).
``diff`` and ``commit`` read the writable layer (the overlay upper dir) with dir fds, in a user namespace,
commit with the container frozen. All of it runs in the copy helper (copyhelper.py): a fresh
interpreter that answers in JSON and never looks up a user or group (issue 11).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from rootless import state as st
from rootless.engine import events
from rootless.errors import RootlessError, UsageError
from rootless.storage.base import is_whiteout, overlay_lookup

# --- running code in the container's root ----------------------------------------------------------


def _layers_and_driver(config, rec):
    """The container's storage driver and its image's layer directories (bottom first)."""
    from rootless import idmap
    from rootless.image.store import ImageStore
    from rootless.storage.base import get_driver
    from rootless.storage.layers import LayerStore

    ids = idmap.load()
    drv = get_driver(rec["Driver"], config.data_root, ids)
    image = ImageStore(config.data_root).get(rec["Image"])
    if image is None:
        raise RootlessError(f"read the files of `{rec['Name'].lstrip('/')}`: its image is gone",
                            "remove the container")
    ls = LayerStore(config.data_root, drv.fmt)
    if all(ls.exists(ch) for ch in image.chain_ids):
        return drv, [ls.path(ch) for ch in image.chain_ids], ids
    from rootless.image import pull  # unpack what is missing (the storage driver was changed)

    return drv, list(pull.ensure_layers(config, image, drv.fmt)), ids


def in_root(config, rec: st.Record, op: str, kwargs: Dict[str, Any], fds: Tuple[int, ...] = ()) -> Any:
    """Containerfs operation ``_op_<op>(**kwargs)`` in the copy helper, root of the container and
    chrooted in its rootfs; its result, checked against the operation's schema (see copyhelper)."""
    from rootless.engine import copyhelper

    s = rec.get("State") or {}
    if s.get("Running") and st.is_alive(s):
        return copyhelper.run(op, kwargs, fds, mode="running", pid=int(s["Pid"]))
    drv, layers, ids = _layers_and_driver(config, rec)
    plan = drv.prepare(rec["Id"], layers, volatile=False)
    return copyhelper.run(op, kwargs, fds, mode="stopped", plan=plan, ids=ids)


@contextlib.contextmanager
def _spool(config) -> Iterator[Tuple[int, str]]:
    """A temporary file under the data-root (fd, path) for a tar between us and the helper, removed after."""
    d = os.path.join(config.data_root, "tmp")
    os.makedirs(d, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=d, prefix="cp-")
    try:
        yield fd, path
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
        os.unlink(path)


# --- inside the root (these run in the copy helper, chrooted; see copyhelper) ------------------------
#
# No user or group name is looked up here (the helper has removed tarfile's pwd and grp): the
# archives carry numeric owners, as docker's do, and extraction uses numeric_owner.


def _numeric(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uname = ti.gname = ""
    return ti


def _add_numeric(tar: tarfile.TarFile, path: str, arcname: str, recursive: bool = True) -> None:
    tar.add(path, arcname=arcname, recursive=recursive, filter=_numeric)


def _extract(tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
    """Extract ``m`` under ``path``, owners by number (never by name), as the archive says."""
    kw: Dict[str, Any] = {"set_attrs": True, "numeric_owner": True}
    if hasattr(tarfile, "fully_trusted_filter"):  # 3.12+ (and backports): no DeprecationWarning
        kw["filter"] = "fully_trusted"  # names were checked by our caller
    tar.extract(m, path, **kw)


def _op_tar_out(src: str, fd: int, follow: bool = False) -> Dict[str, Any]:
    """Write ``src`` (its contents when it ends with /.) as a tar to ``fd``; what it was."""
    contents = src.endswith("/.") or src == "."
    path = os.path.normpath(src if src.startswith("/") else "/" + src)
    try:
        st_ = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        raise RootlessError(f"copy `{src}` from the container: {e.strerror}", "check the path in the container",
                            exit_code=1)
    if src.endswith("/") and not stat.S_ISDIR(os.stat(path).st_mode):
        raise RootlessError(f"copy `{src}` from the container: not a directory", "drop the trailing slash", exit_code=1)
    name = os.path.basename(path) or "."
    is_dir = stat.S_ISDIR(st_.st_mode)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if contents and is_dir:
            for n in sorted(os.listdir(path)):
                _add_numeric(tar, os.path.join(path, n), n)
        else:
            if follow and os.path.islink(path):
                _add_numeric(tar, os.path.realpath(path), name)
            else:
                _add_numeric(tar, path, name)
    return {"dir": is_dir, "name": name, "contents": contents and is_dir}


def _op_tar_in(dest: str, fd: int) -> None:
    """Extract the tar at ``fd`` into ``dest`` (a directory of the container), owned by root."""
    path = os.path.normpath(dest if dest.startswith("/") else "/" + dest)
    if not os.path.isdir(path):
        raise RootlessError(f"copy to `{dest}` in the container: not a directory", "give an existing directory",
                            exit_code=1)
    with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if m.name.startswith("/") or ".." in m.name.split("/"):
                continue
            m.uid = m.gid = 0
            m.uname = m.gname = ""
            _extract(tar, m, path)


def _op_tar_in_as(dest: str, fd: int, name: str, is_dir: bool) -> None:
    path = os.path.normpath(dest if dest.startswith("/") else "/" + dest)
    if os.path.isdir(path):
        return _op_tar_in(path, fd)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise RootlessError(f"copy to `{dest}` in the container: `{parent}` is not a directory", "create it first",
                            exit_code=1)
    new = os.path.basename(path)
    with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            first, _, rest = m.name.partition("/")
            if first != name or ".." in m.name.split("/"):
                continue
            m.name = new + ("/" + rest if rest else "")
            if m.islnk():
                lf, _, lr = m.linkname.partition("/")
                m.linkname = new + ("/" + lr if lr else "") if lf == name else m.linkname
            m.uid = m.gid = 0
            m.uname = m.gname = ""
            _extract(tar, m, parent)
    return None


def _op_tar_root(fd: int, excludes: List[str]) -> None:
    """The whole rootfs as a tar (docker export), without the mounts listed in ``excludes``."""
    ex = set(excludes)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk("/"):
            keep = []
            for d in sorted(dirs):
                p = os.path.join(root, d)
                _add_numeric(tar, p, p.lstrip("/"), recursive=False)
                if p not in ex and not os.path.islink(p):
                    keep.append(d)
            dirs[:] = keep
            for n in sorted(files):
                p = os.path.join(root, n)
                try:
                    _add_numeric(tar, p, p.lstrip("/"), recursive=False)
                except OSError:
                    pass


# --- cp ----------------------------------------------------------------------------------------------


def split_arg(arg: str) -> Tuple[Optional[str], str]:
    """``CONTAINER:PATH`` -> (container, path); a local path (also one with a `/` before any `:`)."""
    if arg == "-" or arg.startswith("/") or arg.startswith("."):
        return None, arg
    name, sep, path = arg.partition(":")
    if not sep:
        return None, arg
    return name, path or "/"


def copy_from(config, ref: str, src: str, dest: str, follow: bool = False, out=None) -> None:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    with _spool(config) as (fd, tmp):
        info = in_root(config, rec, "tar_out", {"src": src, "fd": fd, "follow": follow}, (fd,))
        if dest == "-":
            out = out or __import__("sys").stdout.buffer
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 16)
            out.flush()
            return
        with open(tmp, "rb") as f:
            extract_on_host(f, info, dest)


def _no_symlink_parents(base: str, rel: str) -> str:
    """``base/rel`` with no symlink on the way (a container's archive cannot lead us out of dest)."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise RootlessError(f"copy `{rel}`: the path leaves the destination", "this archive is not safe")
    cur = base
    for p in parts[:-1]:
        cur = os.path.join(cur, p)
        if os.path.islink(cur):
            raise RootlessError(f"copy `{rel}`: `{cur}` is a symlink", "this archive is not safe")
    return os.path.join(base, *parts) if parts else base


def extract_on_host(f, info: Dict[str, Any], dest: str) -> None:
    """docker cp's rules: into an existing directory, or as the new name ``dest``."""
    dest = os.path.abspath(dest)
    if info.get("contents"):
        os.makedirs(dest, exist_ok=True)
        base, rename = dest, None
    elif os.path.isdir(dest):
        base, rename = dest, None
    else:
        parent = os.path.dirname(dest)
        if not os.path.isdir(parent):
            raise RootlessError(f"copy to `{dest}`: `{parent}` is not a directory", "create it first", exit_code=1)
        if dest.endswith("/") and not info["dir"]:
            raise RootlessError(f"copy to `{dest}`: no such directory", "create it first", exit_code=1)
        base, rename = parent, (info["name"], os.path.basename(dest))
    with tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            name = m.name
            if rename is not None:
                first, _, rest = name.partition("/")
                if first == rename[0]:
                    name = rename[1] + ("/" + rest if rest else "")
            target = _no_symlink_parents(base, name)
            if m.isdir():
                if os.path.islink(target):  # chmod below would follow it to a host directory
                    raise RootlessError(f"copy `{name}`: `{target}` is a symlink", "this archive is not safe")
                os.makedirs(target, exist_ok=True)
                try:
                    os.chmod(target, (m.mode & 0o7777) | 0o700)
                except OSError:
                    pass
                continue
            if os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)
            if m.issym():
                os.symlink(m.linkname, target)
            elif m.islnk():
                src = _no_symlink_parents(base, m.linkname if rename is None else
                                          rename[1] + m.linkname[len(rename[0]):])
                try:
                    os.link(src, target)
                except OSError:
                    pass
            elif m.isfile():
                data = tar.extractfile(m)
                fdo = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fdo, "wb") as out:
                    while data is not None:
                        b = data.read(1 << 16)
                        if not b:
                            break
                        out.write(b)
                os.chmod(target, m.mode & 0o7777)
                try:
                    os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)
                except OSError:
                    pass


def copy_to(config, ref: str, src: str, dest: str, inp=None) -> None:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    with _spool(config) as (fd, tmp):
        with os.fdopen(os.dup(fd), "wb") as f:
            if src == "-":
                shutil.copyfileobj(inp or __import__("sys").stdin.buffer, f, 1 << 16)
                target_dir = dest
            else:
                if not os.path.lexists(src):
                    raise RootlessError(f"copy `{src}`: no such file or directory", "check the host path", exit_code=1)
                contents = src.endswith("/.")
                name = os.path.basename(os.path.normpath(src))
                with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    if contents:
                        for n in sorted(os.listdir(src)):
                            tar.add(os.path.join(src, n), arcname=n)
                    else:
                        tar.add(src, arcname=name)
                target_dir = dest
        os.lseek(fd, 0, os.SEEK_SET)
        if src != "-" and not src.endswith("/."):
            # docker: into DEST when it is a directory of the container, else as the new name DEST
            in_root(config, rec, "tar_in_as", {"dest": dest, "fd": fd, "name": os.path.basename(os.path.normpath(src)),
                                                "is_dir": os.path.isdir(src)}, (fd,))
        else:
            in_root(config, rec, "tar_in", {"dest": target_dir, "fd": fd}, (fd,))


# --- export -----------------------------------------------------------------------------------------


def export(config, ref: str, out) -> None:
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    excludes: List[str] = []
    s = rec["State"]
    if s.get("Running") and st.is_alive(s):
        try:
            with open(f"/proc/{int(s['Pid'])}/mountinfo") as f:
                for line in f:
                    mp = line.split()[4]
                    if mp != "/":
                        excludes.append(mp.encode().decode("unicode_escape"))
        except OSError:
            pass
    with _spool(config) as (fd, tmp):
        in_root(config, rec, "tar_root", {"fd": fd, "excludes": excludes}, (fd,))
        with open(tmp, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 16)
        out.flush()


# --- diff and commit: the writable layer ------------------------------------------------------------


def _upper(config, rec) -> Tuple[str, List[str], Any]:
    drv, layers, ids = _layers_and_driver(config, rec)
    if drv.fmt != "overlay":
        raise RootlessError(f"read the changes of `{rec['Name'].lstrip('/')}`: not supported with the "
                            f"`{drv.name}` storage driver (it keeps no separate writable layer)",
                            "use the overlay2 or fuse-overlayfs storage driver")
    return drv.upper_dir(rec["Id"]), layers, ids


def _op_diff_walk(upper: str, layers_top_first: List[str]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for rel_root, _dfd, n, s in _walk_fd(upper):
        rel = f"/{rel_root}{n}"
        if is_whiteout(s):
            out.append(("D", rel))
        elif n.startswith(".wh."):
            if n != ".wh..wh..opq":
                out.append(("D", f"/{rel_root}{n[4:]}"))
        elif overlay_lookup(layers_top_first, rel) is not None:
            out.append(("C", rel))
        else:
            out.append(("A", rel))
    out.sort(key=lambda x: x[1])
    return _without_runtime_files(out)


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, stat.S_IFMT(a.st_mode)) == (b.st_dev, b.st_ino, stat.S_IFMT(b.st_mode))


def _changed(rel: str) -> RootlessError:
    return RootlessError(f"read `/{rel}` of the container: it changed while it was read",
                         "commit with the container paused (the default), or stop it first")


def _walk_fd(top: str, opaque: Optional[List[str]] = None) -> Iterator[Tuple[str, int, str, os.stat_result]]:
    """(rel_root, dir fd, name, lstat) of everything under ``top``, parents first, sorted.

    A running container writes this directory: every step is relative to an open directory fd,
    never follows a symlink (O_NOFOLLOW) and checks with fstat that it opened what lstat saw, so a
    directory swapped for a symlink cannot take the walk onto the host's files (issue 11).
    ``opaque``: when given, rel_roots of opaque directories are appended to it as they are met.
    """
    from rootless.storage.base import OPAQUE_XATTRS

    def walk(dfd: int, rel_root: str) -> Iterator[Tuple[str, int, str, os.stat_result]]:
        if rel_root and opaque is not None:
            for x in OPAQUE_XATTRS:
                try:
                    if os.getxattr(dfd, x) == b"y":
                        opaque.append(rel_root)
                        break
                except OSError:
                    continue
        for n in sorted(os.listdir(dfd)):
            try:
                s = os.stat(n, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield rel_root, dfd, n, s
            if stat.S_ISDIR(s.st_mode):
                try:
                    sub = os.open(n, _NOFOLLOW_DIR, dir_fd=dfd)
                except OSError:
                    raise _changed(rel_root + n) from None
                try:
                    if not _same(os.fstat(sub), s):
                        raise _changed(rel_root + n)
                    yield from walk(sub, f"{rel_root}{n}/")
                finally:
                    os.close(sub)

    top_fd = os.open(top, _NOFOLLOW_DIR)
    try:
        yield from walk(top_fd, "")
    finally:
        os.close(top_fd)


# mountpoints the runtime creates in the writable layer (docker keeps them in its -init layer)
RUNTIME_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def _without_runtime_files(entries: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """Drop the runtime's mountpoints, and `C /etc` when they were its only change."""
    kept = [e for e in entries if not (e[0] == "A" and e[1] in RUNTIME_FILES)]
    if len(kept) != len(entries) and ("C", "/etc") in kept:
        if not any(p.startswith("/etc/") for _, p in kept):
            kept.remove(("C", "/etc"))
    return kept


def diff(config, ref: str) -> List[Tuple[str, str]]:
    from rootless.engine import copyhelper

    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    upper, layers, ids = _upper(config, rec)
    return copyhelper.run("diff_walk", {"upper": upper, "layers_top_first": list(reversed(layers))},
                          mode="userns", ids=ids)


# --- freezing a running container while commit reads it ---------------------------------------------


def _stat_fields(pid: int, proc: str) -> Optional[List[str]]:
    """/proc/PID/stat from the state field on (the name may hold spaces and parentheses)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _container_pids(init: int, stopped: Dict[int, None], proc: str) -> List[int]:
    """Processes of the container not yet in ``stopped``: those of its pid namespace (also what
    `exec` started there) and every descendant of one (nested pid namespaces)."""
    try:
        ns = os.readlink(f"{proc}/{init}/ns/pid")
        if ns == os.readlink(f"{proc}/self/ns/pid"):
            ns = ""  # --pid=host: the init and its descendants only, never the user's other processes
    except OSError:
        return []
    me = os.getpid()
    found: List[int] = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in stopped or pid == me:
            continue
        member = pid == init
        if not member:
            try:
                member = bool(ns) and os.readlink(f"{proc}/{pid}/ns/pid") == ns
            except OSError:
                member = False
        if not member:
            f = _stat_fields(pid, proc)
            member = bool(f) and len(f) > 1 and int(f[1]) in stopped
        if member:
            found.append(pid)
    return found


def stop_all(init: int, proc: str = "/proc", timeout: float = 5.0) -> List[int]:
    """SIGSTOP every process of the container whose init is ``init``; the pids, in stop order.

    The user owns the container's user namespace, so it may signal its processes (whatever uid
    they run as inside). Repeated until a pass finds no new process: a stopped process cannot fork.
    """
    import signal

    stopped: Dict[int, None] = {}
    for _ in range(100):
        new = _container_pids(init, stopped, proc)
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                continue
            stopped[pid] = None
    deadline = time.monotonic() + timeout
    for pid in stopped:  # SIGSTOP is delivered asynchronously: wait until each one is stopped
        while True:
            f = _stat_fields(pid, proc)
            if not f or f[0] in ("T", "t", "Z", "X") or time.monotonic() > deadline:
                break
            time.sleep(0.001)
    return list(stopped)


def cont_all(pids: List[int]) -> None:
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass


@contextlib.contextmanager
def freeze(config, rec: st.Record, pause: bool = True, proc: str = "/proc") -> Iterator[None]:
    """The container frozen for the block (cgroup v2 freezer, else SIGSTOP to each of its
    processes), thawed afterwards even on error; nothing when ``pause`` is false, when it is not
    running, or when it is already paused (it stays paused)."""
    s = rec.get("State") or {}
    if not pause or not (s.get("Running") and st.is_alive(s)) or s.get("Paused"):
        yield
        return
    cg = None
    data = (rec.get("Rootless") or {}).get("Cgroup")
    if data:
        from rootless import cgroups

        try:
            cg = cgroups.CgroupHandle.from_json(data)
            cg.freeze()
        except (RootlessError, OSError, ValueError, KeyError, TypeError):
            if cg is not None:
                try:
                    cg.thaw()
                except (RootlessError, OSError):
                    pass
            cg = None
    pids: List[int] = [] if cg is not None else stop_all(int(s["Pid"]), proc)
    try:
        yield
    finally:
        if cg is not None:
            cg.thaw()
        else:
            cont_all(pids)


def _tarinfo(name: str, s: os.stat_result) -> tarfile.TarInfo:
    """A header from a stat result: numeric owners, no name look-up."""
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(s.st_mode)
    ti.uid, ti.gid = s.st_uid, s.st_gid
    ti.mtime = int(s.st_mtime)
    ti.uname = ti.gname = ""
    fmt = stat.S_IFMT(s.st_mode)
    if fmt == stat.S_IFREG:
        ti.type, ti.size = tarfile.REGTYPE, s.st_size
    elif fmt == stat.S_IFDIR:
        ti.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFIFO:
        ti.type = tarfile.FIFOTYPE
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
    elif fmt == stat.S_IFLNK:
        ti.type = tarfile.SYMTYPE
    else:
        return None  # type: ignore[return-value]  # a socket: tar has no type for it
    return ti


def _op_layer_tar(upper: str, fd: int) -> None:
    """The writable layer as an OCI layer tar: whiteouts as `.wh.NAME`, opaque dirs `.wh..wh..opq`.

    Read with dir fds, O_NOFOLLOW and an fstat check (see ``_walk_fd``): a file swapped for a
    symlink between lstat and open is refused, never followed to a host file (issue 11, item 2).
    Owners are numeric; a file with several names in the layer is stored once, then hard links.
    """
    opaque: List[str] = []
    links: Dict[Tuple[int, int], str] = {}
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        done_opaque = 0
        for rel_root, dfd, n, s in _walk_fd(upper, opaque):
            while done_opaque < len(opaque):
                ti = tarfile.TarInfo(opaque[done_opaque] + ".wh..wh..opq")
                ti.mtime = int(time.time())
                tar.addfile(ti, io.BytesIO(b""))
                done_opaque += 1
            if is_whiteout(s):
                ti = tarfile.TarInfo(rel_root + ".wh." + n)
                ti.mtime = int(s.st_mtime)
                tar.addfile(ti, io.BytesIO(b""))
                continue
            if "/" + rel_root + n in RUNTIME_FILES and stat.S_ISREG(s.st_mode) and s.st_size == 0:
                continue  # a mountpoint of the runtime, not a change
            ti = _tarinfo(rel_root + n, s)
            if ti is None:
                continue
            if ti.isreg() and s.st_nlink > 1:
                first = links.setdefault((s.st_dev, s.st_ino), ti.name)
                if first != ti.name:  # another name of a file already stored: a hard link to it
                    ti.type, ti.size, ti.linkname = tarfile.LNKTYPE, 0, first
                    tar.addfile(ti)
                    continue
            if ti.issym():
                try:  # EINVAL: no longer a symlink
                    ti.linkname = os.readlink(n, dir_fd=dfd)
                except OSError:
                    raise _changed(rel_root + n) from None
                tar.addfile(ti)
            elif ti.isreg():
                try:  # ELOOP: a symlink now
                    fh = os.open(n, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
                except OSError:
                    raise _changed(rel_root + n) from None
                with os.fdopen(fh, "rb") as src:
                    fs = os.fstat(fh)
                    if not _same(fs, s) or fs.st_size != s.st_size:
                        raise _changed(rel_root + n)
                    try:
                        tar.addfile(ti, src)
                    except OSError:  # shorter than its size said
                        raise _changed(rel_root + n) from None
            else:
                tar.addfile(ti)
        for rel in opaque[done_opaque:]:  # empty opaque directories at the end of the walk
            ti = tarfile.TarInfo(rel + ".wh..wh..opq")
            ti.mtime = int(time.time())
            tar.addfile(ti, io.BytesIO(b""))


def apply_changes(cfg: Dict[str, Any], changes: List[str]) -> None:
    """docker commit --change: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL."""
    import shlex

    for ch in changes:
        word, _, rest = ch.strip().partition(" ")
        word = word.upper()
        rest = rest.strip()

        def words(rest: str = rest) -> List[str]:
            if rest.startswith("["):
                try:
                    v = json.loads(rest)
                    if isinstance(v, list):
                        return [str(x) for x in v]
                except ValueError:
                    pass
            return ["/bin/sh", "-c", rest]

        if word == "CMD":
            cfg["Cmd"] = words()
        elif word == "ENTRYPOINT":
            cfg["Entrypoint"] = words()
        elif word == "ENV":
            k, sep, v = rest.partition("=")
            if not sep:
                k, _, v = rest.partition(" ")
            env = [e for e in cfg.get("Env") or [] if e.partition("=")[0] != k.strip()]
            env.append(f"{k.strip()}={v.strip()}")
            cfg["Env"] = env
        elif word == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif word == "USER":
            cfg["User"] = rest
        elif word == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                labels[k] = v
            cfg["Labels"] = labels
        elif word == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif word == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            for p in (json.loads(rest) if rest.startswith("[") else rest.split()):
                vols[p] = {}
            cfg["Volumes"] = vols
        elif word == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        else:
            raise UsageError(f"use --change `{ch}`: `{word}` is not supported",
                             "use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR or STOPSIGNAL")


def commit(config, ref: str, repo: str = "", changes: Optional[List[str]] = None, message: str = "",
           author: str = "", pause: bool = True) -> str:
    """The container's writable layer as a new image layer on top of its image; the new image id.

    ``pause``: freeze the container while its layer is read (docker's default), so that it cannot
    change files under the reader."""
    from rootless.engine import copyhelper
    from rootless.image import reference
    from rootless.image.store import ImageStore, LayerRecord

    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    istore = ImageStore(config.data_root).ensure()
    image = istore.get(rec["Image"])
    if image is None:
        raise RootlessError(f"commit container `{rec['Name'].lstrip('/')}`: its image is gone", "nothing to build on")
    new_cfg_c = dict(image.config.get("config") or {})
    apply_changes(new_cfg_c, list(changes or []))  # bad changes fail before any work
    full_ref = ""
    if repo:
        try:
            full_ref = str(reference.parse(repo).with_default_tag())
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"use repository `{repo}`: {getattr(e, 'message', e)}", "for example myimage:1")
    upper, layers, ids = _upper(config, rec)
    with _spool(config) as (fd, tmp):
        with freeze(config, rec, pause):
            copyhelper.run("layer_tar", {"upper": upper, "fd": fd}, (fd,), mode="userns", ids=ids)
        with open(tmp, "rb") as f:  # hashed while it is stored: one read of the layer, not two
            w = istore.blob_writer(None)
            try:
                shutil.copyfileobj(f, w, 1 << 20)
                w.commit()
            except BaseException:
                w.abort()
                raise
        digest, size = w.digest, w.size
    cfg = json.loads(json.dumps(image.config))
    cfg["config"] = new_cfg_c
    now = st.now()
    cfg["created"] = now
    if author:
        cfg["author"] = author
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    cfg["rootfs"]["diff_ids"] = list(cfg["rootfs"].get("diff_ids") or []) + [digest]
    hist = {"created": now, "created_by": " ".join([rec.get("Path") or ""] + list(rec.get("Args") or []))}
    if message:
        hist["comment"] = message
    if author:
        hist["author"] = author
    cfg["history"] = list(cfg.get("history") or []) + [hist]
    cfg_bytes = json.dumps(cfg, separators=(",", ":")).encode()
    cfg_digest = istore.put_blob(cfg_bytes)
    new_layers = list(image.layers) + [LayerRecord(digest, "application/vnd.oci.image.layer.v1.tar", size, digest, size)]
    istore.add_image(cfg_digest, new_layers, refs=(full_ref,) if full_ref else ())
    events.container(config, rec, "commit", comment=message, imageID=cfg_digest, imageRef=full_ref)
    return cfg_digest
