"""overlay2: kernel overlayfs, mounted inside the container's user namespace (``userxattr``).

Needs Linux >= 5.11 for unprivileged overlay mounts; ``storage.select`` probes that it works.
The container's layer is ``data_root/overlay/containers/<id>/{diff,work,merged}``; the image
layers (``data_root/overlay/layers/<hex>/diff``) are the read-only lowerdirs, top first.
"""

from __future__ import annotations

import os
from typing import List, Optional

from rootless.errors import RootlessError
from rootless.storage.base import Driver, overlay_lookup, safe_read

# mount(2) data is one page; leave room for upperdir/workdir and the option names
MAX_MOUNT_DATA = 4000


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


def overlay_read(layers_top_first: List[str], rel: str) -> Optional[bytes]:
    """``rel`` as the merged view shows it (``overlay_lookup``), if it is a regular file there."""
    layer = overlay_lookup(layers_top_first, rel)
    return None if layer is None else safe_read(layer, rel)
