"""The container's /etc/hosts: the generator is ``rootless.etcfiles`` (one for every mode).

The engine bind-mounts the file: to change it while the container runs, rewrite it in place
(``write_in_place``), never by rename, or the container keeps the old inode.
"""

from __future__ import annotations

import os

from rootless.etcfiles import HOST_GATEWAY, HOST_NAMES, parse_add_host
from rootless.etcfiles import make_hosts as make

__all__ = ["HOST_GATEWAY", "HOST_NAMES", "make", "parse_add_host", "write_in_place"]


def write_in_place(path: str, text: str) -> None:
    """Rewrite a bind-mounted file keeping its inode (truncate + write + fsync)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
