"""The handle of a spawned container: its init's pid, its exit code, its pty."""

from __future__ import annotations

import os
import signal
import time
from typing import List, Optional

from rootless import procs


class Process:
    """A container init started by ``spawn``.

    - ``pid``: the host pid of the container's pid 1 (send it the signals you forward).
    - ``wait()``: its exit code, docker-style (128+N when killed by signal N); then stops the
      rootfs helpers (fuse-overlayfs) still running in its namespaces.
    - ``poll()``: the exit code, or None while it runs.
    - ``kill(sig)``: signal it; a container that is already gone is not an error.
    - ``pty_master``: the pty master fd when the spec asked for a terminal (the caller owns it).
    - ``helper_pids``: the rootfs plan's tools that stayed in the foreground.

    ``wait`` works in the process that called ``spawn`` (it is the init's subreaper).
    """

    def __init__(self, pid: int, pty_master: Optional[int] = None, helper_pids: Optional[List[int]] = None):
        self.pid = pid
        self.pty_master = pty_master
        self.helper_pids: List[int] = list(helper_pids or [])
        self.returncode: Optional[int] = None

    def __repr__(self) -> str:
        return f"<rootless.runtime.Process pid={self.pid} returncode={self.returncode}>"

    def _set_status(self, status: int) -> int:
        self.returncode = procs.exit_code(status)
        self.stop_helpers()
        return self.returncode

    def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        while True:
            try:
                _, status = os.waitpid(self.pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                # Not our child (another process spawned it): watch /proc instead.
                while os.path.exists(f"/proc/{self.pid}"):
                    time.sleep(0.05)
                self.returncode = 255
                self.stop_helpers()
                return self.returncode
            return self._set_status(status)

    def poll(self) -> Optional[int]:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        return self._set_status(status)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.returncode is not None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop_helpers(self, timeout: float = 2.0) -> None:
        """SIGTERM the helpers (fuse-overlayfs unmounts and exits), SIGKILL after ``timeout``."""
        helpers, self.helper_pids = self.helper_pids, []
        procs.stop(helpers, timeout)
