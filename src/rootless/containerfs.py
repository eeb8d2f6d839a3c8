"""A container's filesystem from outside: cp (both ways), diff, export, commit.

Every read or write of the container's files happens in a child that is root of the container's
user namespace and chrooted into the container's root, so a symlink in the container resolves
inside it (``/etc/shadow`` is the container's, never the host's) and subordinate-uid owned files
are readable:

- running container: the child joins the init's user namespace (first: it gives the rights for
  the rest), opens ``/proc/PID/root``, joins its mount namespace and chroots there;
- stopped container: ``run_in_userns`` with a new mount namespace applies the storage driver's
  rootfs plan (the overlay mount) and chroots into it.

Data crosses the chroot as tar streams through files opened before it (temp files under data-root).
``diff`` and ``commit`` read the writable layer (the overlay upper dir) directly, in a user namespace.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import stat
import tarfile
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from rootless import state as st
from rootless.errors import RootlessError, UsageError
from rootless.storage.base import is_opaque, is_whiteout, overlay_lookup

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


def in_root(config, rec: st.Record, fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` (module-level) as root of the container, chrooted in its rootfs; its result."""
    s = rec.get("State") or {}
    if s.get("Running") and st.is_alive(s):
        return _in_running(int(s["Pid"]), fn, args)
    drv, layers, ids = _layers_and_driver(config, rec)
    plan = drv.prepare(rec["Id"], layers, volatile=False)
    from rootless.runtime import run_in_userns

    return run_in_userns(_in_stopped, plan, f"{fn.__module__}:{fn.__qualname__}", args, ids=ids, mount_ns=True)


def _resolve(ref: str) -> Callable:
    import importlib

    mod, _, name = ref.partition(":")
    return getattr(importlib.import_module(mod), name)


def _in_stopped(plan, fnref: str, args: tuple) -> Any:
    from rootless.runtime import ExecStep, MountStep, stage1

    fn = _resolve(fnref)
    helpers = []
    for step in plan.steps:
        if isinstance(step, MountStep):
            stage1._mount_step(step)
        elif isinstance(step, ExecStep):
            pid = stage1._exec_step(step)
            if pid:
                helpers.append(pid)
    try:
        os.chdir(plan.rootfs)
        os.chroot(".")
        os.chdir("/")
        return fn(*args)
    finally:
        import signal

        for pid in helpers:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


def _in_running(pid: int, fn: Callable, args: tuple) -> Any:
    from rootless.linux import syscalls as sc

    paths = []
    for ns, flag in (("user", sc.CLONE_NEWUSER), ("mnt", sc.CLONE_NEWNS)):
        try:
            if os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"):
                paths.append((f"/proc/{pid}/ns/{ns}", flag))
        except OSError as e:
            raise RootlessError(f"open the namespaces of process `{pid}`: {e.strerror}",
                                "is the container still running? (its main process must run as root)")
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(r)
        result: Tuple[bool, Any]
        try:
            fds = [(os.open(p, os.O_RDONLY), f) for p, f in paths]
            root_fd = None
            for fd, flag in fds:
                sc.setns(fd, flag)
                os.close(fd)
                if flag == sc.CLONE_NEWUSER:
                    root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
            if root_fd is None:
                root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
            os.fchdir(root_fd)
            os.chroot(".")
            os.chdir("/")
            result = (True, fn(*args))
        except RootlessError as e:
            result = (False, (e.message, e.hint, e.exit_code))
        except BaseException as e:  # noqa: BLE001
            result = (False, (f"{type(e).__name__}: {e}", None, 125))
        try:
            with os.fdopen(w, "wb") as f:
                f.write(pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(child, 0)
    try:
        ok, value = pickle.loads(data)
    except Exception:  # noqa: BLE001
        raise RootlessError("work in the container's root: the helper died", "run again with --debug")
    if ok:
        return value
    raise RootlessError(value[0], value[1], value[2])


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


# --- inside the root (these run chrooted) -------------------------------------------------------------


def _tar_out(src: str, fd: int, follow: bool = False) -> Dict[str, Any]:
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
                tar.add(os.path.join(path, n), arcname=n, recursive=True)
        else:
            if follow and os.path.islink(path):
                tar.add(os.path.realpath(path), arcname=name)
            else:
                tar.add(path, arcname=name, recursive=True)
    return {"dir": is_dir, "name": name, "contents": contents and is_dir}


def _tar_in(dest: str, fd: int) -> None:
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
            m.uname = m.gname = "root"
            tar.extract(m, path, set_attrs=True)


def _tar_root(fd: int, excludes: List[str]) -> None:
    """The whole rootfs as a tar (docker export), without the mounts listed in ``excludes``."""
    ex = set(excludes)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk("/"):
            keep = []
            for d in sorted(dirs):
                p = os.path.join(root, d)
                tar.add(p, arcname=p.lstrip("/"), recursive=False)
                if p not in ex and not os.path.islink(p):
                    keep.append(d)
            dirs[:] = keep
            for n in sorted(files):
                p = os.path.join(root, n)
                try:
                    tar.add(p, arcname=p.lstrip("/"), recursive=False)
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
        info = in_root(config, rec, _tar_out, src, fd, follow)
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
            in_root(config, rec, _tar_in_as, dest, fd, os.path.basename(os.path.normpath(src)), os.path.isdir(src))
        else:
            in_root(config, rec, _tar_in, target_dir, fd)


def _tar_in_as(dest: str, fd: int, name: str, is_dir: bool) -> None:
    path = os.path.normpath(dest if dest.startswith("/") else "/" + dest)
    if os.path.isdir(path):
        return _tar_in(path, fd)
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
            m.uname = m.gname = "root"
            tar.extract(m, parent, set_attrs=True)


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
        in_root(config, rec, _tar_root, fd, excludes)
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


def _diff_walk(upper: str, layers_top_first: List[str]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for root, dirs, files in os.walk(upper):
        rel_root = "/" + os.path.relpath(root, upper) if root != upper else ""
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            rel = f"{rel_root}/{n}"
            try:
                s = os.lstat(p)
            except OSError:
                continue
            if is_whiteout(s):
                out.append(("D", rel))
            elif n.startswith(".wh."):
                if n != ".wh..wh..opq":
                    out.append(("D", f"{rel_root}/{n[4:]}"))
            elif overlay_lookup(layers_top_first, rel) is not None:
                out.append(("C", rel))
            else:
                out.append(("A", rel))
    out.sort(key=lambda x: x[1])
    return _without_runtime_files(out)


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
    store = st.Store(config.data_root)
    rec = store.resolve(ref)
    upper, layers, ids = _upper(config, rec)
    from rootless.runtime import run_in_userns

    if ids.has_ranges:
        return run_in_userns(_diff_walk, upper, list(reversed(layers)), ids=ids)
    return _diff_walk(upper, list(reversed(layers)))


def _layer_tar(upper: str, fd: int) -> None:
    """The writable layer as an OCI layer tar: whiteouts as `.wh.NAME`, opaque dirs `.wh..wh..opq`."""
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(upper):
            dirs.sort()
            rel_root = os.path.relpath(root, upper)
            rel_root = "" if rel_root == "." else rel_root + "/"
            if rel_root and is_opaque(root):
                ti = tarfile.TarInfo(rel_root + ".wh..wh..opq")
                ti.mtime = int(time.time())
                tar.addfile(ti, io.BytesIO(b""))
            for n in sorted(dirs + files):
                p = os.path.join(root, n)
                s = os.lstat(p)
                if is_whiteout(s):
                    ti = tarfile.TarInfo(rel_root + ".wh." + n)
                    ti.mtime = int(s.st_mtime)
                    tar.addfile(ti, io.BytesIO(b""))
                    continue
                if "/" + rel_root + n in RUNTIME_FILES and stat.S_ISREG(s.st_mode) and s.st_size == 0:
                    continue  # a mountpoint of the runtime, not a change
                ti = tar.gettarinfo(p, arcname=rel_root + n)
                ti.pax_headers = {}
                if ti.isreg():
                    with open(p, "rb") as fh:
                        tar.addfile(ti, fh)
                else:
                    tar.addfile(ti)


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
           author: str = "") -> str:
    """The container's writable layer as a new image layer on top of its image; the new image id."""
    from rootless.image import reference
    from rootless.image.store import ImageStore, LayerRecord
    from rootless.runtime import run_in_userns

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
        if ids.has_ranges:
            run_in_userns(_layer_tar, upper, fd, ids=ids)
        else:
            _layer_tar(upper, os.dup(fd))
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
    return cfg_digest
