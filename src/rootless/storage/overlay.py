"""overlay2: kernel overlayfs, mounted inside the container's user namespace (``userxattr``).

Needs Linux >= 5.11 for unprivileged overlay mounts; ``storage.select`` probes that it works.
The container's layer is ``data_root/overlay/containers/<id>/{diff,work,merged}``; the image
layers (``data_root/overlay/layers/<hex>/diff``) are the read-only lowerdirs, top first.
"""

from __future__ import annotations

import os
import stat
from typing import List, Optional

from rootless.errors import RootlessError
from rootless.storage.base import Driver, safe_read

# mount(2) data is one page; leave room for upperdir/workdir and the option names
MAX_MOUNT_DATA = 4000
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")


class OverlayDriver(Driver):
    name = "overlay2"
    fmt = "overlay"

    def upper_dir(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "diff")

    def _dirs(self, container_id: str):
        d = self.container_dir(container_id)
        return d, os.path.join(d, "diff"), os.path.join(d, "work"), os.path.join(d, "merged")

    def make_dirs(self, container_id: str) -> None:
        d, upper, work, merged = self._dirs(container_id)
        if os.path.isdir(upper) and os.path.isdir(work) and os.path.isdir(merged):
            return  # made by `create`; `start` asks again
        try:
            os.makedirs(self.containers_dir(), mode=0o700, exist_ok=True)
            os.makedirs(d, mode=0o700, exist_ok=True)
            for p in (upper, work, merged):
                os.makedirs(p, mode=0o755, exist_ok=True)
        except OSError as e:
            raise RootlessError(f"create container layer `{d}`: {e.strerror}", "check the data-root's permissions")

    def overlay_data(self, container_id: str, layer_paths: List[str]) -> str:
        _, upper, work, _ = self._dirs(container_id)
        if not layer_paths:
            raise RootlessError("mount the container's rootfs: the image has no layers", "pull the image again")
        for p in layer_paths:
            if ":" in p or "," in p:
                raise RootlessError(f"mount overlay: the layer path `{p}` contains `:` or `,`",
                                    "move data-root to a path without these characters")
        lower = ":".join(reversed(layer_paths))  # overlayfs wants the top layer first
        data = f"lowerdir={lower},upperdir={upper},workdir={work},userxattr"
        if len(data) > MAX_MOUNT_DATA:
            raise RootlessError(
                f"mount overlay: {len(layer_paths)} layers make the mount options too long ({len(data)} bytes)",
                "use a shorter data-root path, or the fuse-overlayfs storage driver",
            )
        return data

    def prepare(self, container_id: str, layer_paths: List[str], volatile: bool = False):
        from rootless.runtime import MountStep, RootfsPlan

        self.make_dirs(container_id)
        _, _, _, merged = self._dirs(container_id)
        data = self.overlay_data(container_id, layer_paths)
        if volatile:
            # Linux >= 5.10: no sync of the upper layer, not even at unmount, where an --rm container
            # would otherwise wait for a journal commit of data-root's filesystem (Podman does the same)
            data += ",volatile"
        return RootfsPlan(merged, [MountStep("overlay", merged, "overlay", [], data)])

    def read_file(self, container_id: str, layer_paths: List[str], path: str) -> Optional[bytes]:
        top_first = [self.upper_dir(container_id)] + list(reversed(layer_paths))
        return overlay_read(top_first, path)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def overlay_read(layers_top_first: List[str], rel: str) -> Optional[bytes]:
    """``rel`` as the merged view shows it: the topmost layer that has it, unless a whiteout or an
    opaque directory above hides it. Symlinks are not followed (None)."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if not parts or any(p == ".." for p in parts):
        return None
    for layer in layers_top_first:
        cur = layer
        hidden_below = False
        found = True
        for i, p in enumerate(parts):
            cur = os.path.join(cur, p)
            try:
                st = os.lstat(cur)
            except OSError:
                found = False
                break
            if _is_whiteout(st):
                return None
            last = i == len(parts) - 1
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    return None  # a file or symlink here hides the lower directories
                if _is_opaque(cur):
                    hidden_below = True
        if found:
            return safe_read(layer, rel)
        if hidden_below:
            return None
    return None
