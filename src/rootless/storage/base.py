"""The storage driver protocol, and what the three drivers share.

A driver makes a container's root filesystem from the image's layers (bottom-first layer dirs,
as ``image.pull.ensure_layers`` returns them) and the container's own writable layer, kept under
``data_root/<overlay|vfs>/containers/<id>/``. Image layers are shared and never written.

- ``prepare(container_id, layer_paths, volatile=False) -> RootfsPlan``: create the container's layer (idempotent:
  `create` calls it, `start` calls it again) and return what the runtime does inside the
  container's user + mount namespace to make the rootfs (the plan is executed there because
  overlay and FUSE mounts of an unprivileged user are only possible in a namespace it owns).
- ``read_file(container_id, layer_paths, path) -> bytes | None``: a small file as the container will
  see it (/etc/passwd for ``-u name``) without mounting anything.
- ``cleanup(container_id)``: remove the container's layer. Files there may belong to subordinate
  uids (a process that ran as uid 1000 in the container wrote them), which the user cannot remove;
  those are removed as root of a user namespace (``run_in_userns``).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import TYPE_CHECKING, List, Optional

from rootless.errors import RootlessError

if TYPE_CHECKING:  # pragma: no cover
    from rootless.idmap import UserIds
    from rootless.runtime import RootfsPlan


class Driver:
    """Base class: the directory layout and the removal every driver needs."""

    name = ""
    fmt = ""  # layer format: "overlay" or "vfs"

    def __init__(self, data_root: str, ids: Optional[UserIds] = None):
        self.data_root = data_root
        self._ids = ids

    @property
    def ids(self) -> UserIds:
        if self._ids is None:
            from rootless import idmap

            self._ids = idmap.load()
        return self._ids

    def containers_dir(self) -> str:
        return os.path.join(self.data_root, self.fmt, "containers")

    def container_dir(self, container_id: str) -> str:
        from rootless.state import valid_id

        if not valid_id(container_id):
            raise RootlessError(f"use container id `{container_id}`: not a valid id")
        return os.path.join(self.containers_dir(), container_id)

    def prepare(self, container_id: str, layer_paths: List[str], volatile: bool = False) -> RootfsPlan:  # pragma: no cover
        """``volatile``: the layer is thrown away after one run (--rm), so it need not survive a crash
        and nothing is synced to disk for it (overlay's `volatile`, fuse-overlayfs's `fsync=0`)."""
        raise NotImplementedError

    def read_file(self, container_id: str, layer_paths: List[str], path: str) -> Optional[bytes]:  # pragma: no cover
        raise NotImplementedError

    def upper_dir(self, container_id: str) -> str:  # pragma: no cover
        raise NotImplementedError

    def cleanup(self, container_id: str) -> None:
        remove_tree(self.container_dir(container_id), self.ids)


# --- helpers ---------------------------------------------------------------------------------------


def _rmtree_as_root(path: str) -> None:
    """Runs as root of a user namespace (module level: picklable for run_in_userns)."""
    _open_up(path)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        shutil.rmtree(path)


def _open_up(path: str) -> None:
    # overlay leaves work/work mode 000; rmtree needs to list every directory
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            try:
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700) != 0o700:
                    os.chmod(p, 0o700)
            except OSError:
                pass


def remove_tree(path: str, ids: UserIds) -> None:
    """Remove ``path`` and everything below it, also files owned by subordinate ids."""
    if not os.path.lexists(path):
        return
    try:
        _open_up(path)
        shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass  # something belongs to a subuid: remove the rest as root of a user namespace
    from rootless import answer
    from rootless.runtime import run_in_userns

    try:
        run_in_userns(_rmtree_as_root, path, ids=ids, schema=answer.none)
    except RootlessError as e:
        raise RootlessError(
            f"remove `{path}`: {e.message}",
            "remove it by hand with `rootless unshare rm -rf PATH` or `podman unshare rm -rf PATH`",
        )
    except OSError as e:
        raise RootlessError(f"remove `{path}`: {e.strerror}", "check the permissions of its files")


def safe_read(root: str, rel: str, limit: int = 1 << 20) -> Optional[bytes]:
    """Read ``root/rel`` without following a symlink anywhere on the way (None if absent or not a file)."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        return None
    cur = root
    for i, p in enumerate(parts):
        cur = os.path.join(cur, p)
        try:
            st = os.lstat(cur)
        except OSError:
            return None
        last = i == len(parts) - 1
        if last and not stat.S_ISREG(st.st_mode):
            return None
        if not last and not stat.S_ISDIR(st.st_mode):
            return None
    try:
        fd = os.open(cur, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


# overlayfs marks an opaque directory (nothing below shows through) with one of these set to "y";
# fuse-overlayfs writes its own name when it cannot set user.overlay.* (fuse-overlayfs(1))
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque", "user.fuseoverlayfs.opaque")


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a 0:0 character device hides the name in the layers below."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def _xattr_whiteout(path: str) -> bool:
    """The whiteout unpack writes when mknod is refused: an empty file with user.overlay.whiteout."""
    try:
        os.getxattr(path, "user.overlay.whiteout", follow_symlinks=False)
        return True
    except OSError:
        return False


def overlay_lookup(layers_top_first: List[str], rel: str) -> Optional[str]:
    """The layer whose ``rel`` the merged overlay view shows: the topmost that has it, unless a
    whiteout (a 0:0 char device, or fuse-overlayfs's ``.wh.NAME`` file), a non-directory on the way
    or an opaque directory above hides it. None when it is hidden or absent. Symlinks are not
    followed."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if not parts or ".." in parts:
        return None
    last = len(parts) - 1
    for layer in layers_top_first:
        cur = layer
        hidden_below = False
        for i, p in enumerate(parts):
            parent, cur = cur, os.path.join(cur, p)
            if os.path.lexists(os.path.join(parent, ".wh." + p)):
                return None
            try:
                st = os.lstat(cur)
            except OSError:
                break
            if is_whiteout(st) or (stat.S_ISREG(st.st_mode) and st.st_size == 0 and _xattr_whiteout(cur)):
                return None
            if i < last:
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a file or symlink here hides the lower directories
                if is_opaque(cur):
                    hidden_below = True
        else:
            return layer
        if hidden_below:
            return None
    return None


def get_driver(name: str, data_root: str, ids: Optional[UserIds] = None) -> Driver:
    """The driver called ``name`` (overlay2, fuse-overlayfs, vfs)."""
    if name == "overlay2":
        from rootless.storage.overlay import OverlayDriver

        return OverlayDriver(data_root, ids)
    if name == "fuse-overlayfs":
        from rootless.storage.fuse_overlayfs import FuseOverlayDriver

        return FuseOverlayDriver(data_root, ids)
    if name == "vfs":
        from rootless.storage.vfs import VfsDriver

        return VfsDriver(data_root, ids)
    raise RootlessError(f"use storage driver `{name}`: unknown driver", "use overlay2, fuse-overlayfs or vfs")
