"""fuse-overlayfs: the same layout as overlay2, mounted by the host tool inside the container's
user namespace (FUSE mounts are allowed there since Linux 4.18). For kernels or filesystems where
kernel overlay does not work for an unprivileged user.
"""

from __future__ import annotations

from typing import List

from rootless.storage.overlay import OverlayDriver


class FuseOverlayDriver(OverlayDriver):
    name = "fuse-overlayfs"
    fmt = "overlay"

    def prepare(self, container_id: str, layer_paths: List[str], volatile: bool = False):
        from rootless.runtime import ExecStep, RootfsPlan

        self.make_dirs(container_id)
        _, _, _, merged = self._dirs(container_id)
        data = self.overlay_data(container_id, layer_paths)
        data = data[: -len(",userxattr")]  # a kernel overlay option; fuse-overlayfs has its own xattrs
        if volatile:
            data += ",fsync=0"  # a layer thrown away after one run need not be synced
        # In the foreground (-f): the runtime keeps its pid and stops it when the container exits. A
        # daemonized fuse-overlayfs would live on: it is itself in the mount namespace it serves.
        argv = ["fuse-overlayfs", "-f", "-o", data, merged]
        return RootfsPlan(merged, [ExecStep(argv, wait_mount=merged)])
