"""Helpers for the engine and `run` tests: a local busybox, pulled into the test's data-root."""

from __future__ import annotations

import os
import subprocess
import sys
import time

PULL = ("import sys; from rootless import config; from rootless.image import pull; "
        "pull.pull(config.load(), sys.argv[1], quiet=True)")


def setup_busybox(rl, image, extra_config: str = "") -> str:
    """Configure the test registry as insecure and pull busybox; returns the local ref."""
    host = image.ref.split("/")[0]
    rl.write_config(f'insecure-registries = ["{host}"]\n' + extra_config)
    if _has_pull_command():
        rl.ok("pull", "-q", image.ref) if _pull_has_quiet() else rl.ok("pull", image.ref)
    else:
        p = subprocess.run([sys.executable, "-c", PULL, image.ref], env=rl.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
    return image.ref


def _has_pull_command() -> bool:
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "rootless", "commands")
    return os.path.exists(os.path.join(src, "pull.py"))


def _pull_has_quiet() -> bool:
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "rootless", "commands",
                       "pull.py")
    try:
        return '"--quiet"' in open(src).read()
    except OSError:
        return False


def leftovers(data_root: str):
    """Files left by containers: records and the drivers' container layers."""
    out = []
    for d in ("containers", "overlay/containers", "vfs/containers"):
        p = os.path.join(data_root, d)
        if os.path.isdir(p):
            out += [os.path.join(d, n) for n in os.listdir(p) if not n.startswith(".")]
    return out


def remove_data_root(data_root: str) -> None:
    """Remove a test's data-root, also the layers that belong to subordinate uids (pytest cannot)."""
    if not os.path.isdir(data_root):
        return
    from rootless import idmap
    from rootless.storage.base import remove_tree

    try:
        remove_tree(data_root, idmap.load())
    except Exception:  # noqa: BLE001 - best effort: never fail a test in its teardown
        pass


def warm_wanted() -> bool:
    """The suite runs commands through the warm server (rootless/warm.py), as users get them, unless
    ROOTLESS_TEST_WARM=0 (tests/run runs the container tests once more that way, cold)."""
    return os.environ.get("ROOTLESS_TEST_WARM", "1") != "0"


def stop_warm_servers(path: str) -> None:
    import signal

    for n in os.listdir(path):
        if n.endswith(".pid"):
            try:
                with open(os.path.join(path, n)) as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def wait_for(pred, timeout=20.0, what="condition"):
    """pred()'s first true value, polled every 50 ms; an AssertionError naming ``what`` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """The process runs: it exists and has not exited (a zombie waits for its reaper, which on
    these machines' pid 1 may take its time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` until it is no longer alive (e.g. a container's init, which outlives a killed
    `run`, as under docker)."""
    import signal

    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)


def read_to_eof(fd: int) -> bytes:
    """All that ``fd`` (a pty master) gives until its other side is closed (EIO) or at end of file."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


class ForeignProcess:
    """A `sleep` in a user namespace of its own: what a container's init looks like to the state
    code, which believes a record's pid only when it lives in a user namespace other than ours."""

    def __enter__(self) -> ForeignProcess:
        self.proc = subprocess.Popen(["unshare", "-U", "sleep", "60"])
        wait_for(lambda: os.stat(f"/proc/{self.proc.pid}/ns/user").st_ino != os.stat("/proc/self/ns/user").st_ino,
                 timeout=5, what="unshare -U to make a user namespace")
        self.pid = self.proc.pid
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()
