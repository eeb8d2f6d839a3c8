"""vfs: each container gets a full copy of the image's rootfs. Works everywhere; costs disk and time.

vfs layers (``data_root/vfs/layers/<hex>/``) are complete root filesystems, so the copy is of the
top layer only. The copy runs as root of a user namespace (``cp -a``), so that owners, modes,
hardlinks, symlinks and xattrs survive, including files of subordinate uids.
"""

from __future__ import annotations

import os
from typing import List, Optional

from rootless.errors import RootlessError
from rootless.storage.base import Driver, remove_tree, safe_read


def _copy_as_root(src: str, dst: str) -> None:
    """Runs inside the user namespace (module level so run_in_userns can call it)."""
    from rootless import tools

    tools.run(["cp", "-a", "--reflink=auto", "--", src, dst], what=f"copy the image's rootfs to `{dst}`",
              timeout=None)


class VfsDriver(Driver):
    name = "vfs"
    fmt = "vfs"

    def upper_dir(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "rootfs")

    def prepare(self, container_id: str, layer_paths: List[str], volatile: bool = False):
        from rootless.runtime import RootfsPlan

        d = self.container_dir(container_id)
        rootfs = os.path.join(d, "rootfs")
        done = os.path.join(d, ".complete")
        if not os.path.exists(done):
            if not layer_paths:
                raise RootlessError("copy the image's rootfs: the image has no layers", "pull the image again")
            os.makedirs(self.containers_dir(), mode=0o700, exist_ok=True)
            os.makedirs(d, mode=0o700, exist_ok=True)
            if os.path.lexists(rootfs):  # a copy interrupted before: start again
                remove_tree(rootfs, self.ids)
            src = layer_paths[-1].rstrip("/")
            if self.ids.has_ranges:
                from rootless import answer
                from rootless.runtime import run_in_userns

                run_in_userns(_copy_as_root, src, rootfs, ids=self.ids, schema=answer.none)
            else:
                _copy_as_root(src, rootfs)  # everything belongs to the user: no namespace needed
            with open(done, "w"):
                pass
        return RootfsPlan(rootfs, [])

    def read_file(self, container_id: str, layer_paths: List[str], path: str) -> Optional[bytes]:
        rootfs = self.upper_dir(container_id)
        if os.path.isdir(rootfs):
            return safe_read(rootfs, path)
        return safe_read(layer_paths[-1], path) if layer_paths else None
