"""The OCI runtime's own state store (`rootless runtime`, an OCI-runtime CLI like crun and runc):
containers made straight from bundles, outside the engine's containers.

State lives in ``ROOT/<id>/`` (the command's ``--root``, by default ``EXEC_ROOT/runtime``):
``state.json`` (written atomically, with the init's pid and its start time so that a reused pid is
not taken for a live container) and ``exec.fifo``, which a created container holds open until
``start`` reads it. The operations (create, start, kill, delete) return or raise; the foreground
``run`` (a terminal to relay, signals to forward) is the command's, on top of ``spawn`` and ``record``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any, Dict, List, Optional

from rootless import paths, timefmt
from rootless.errors import NotFound, RootlessError, UsageError

OCI_VERSION = "1.0.2"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")



def validate_id(cid: str) -> str:
    """IDs become directory names: letters, digits and `_.+-`, not starting with a punctuation."""
    if not _ID_RE.match(cid or ""):
        raise UsageError(f"invalid container id `{cid}`",
                         "use 1-128 letters, digits, `_`, `.`, `+` or `-`, starting with a letter or digit")
    return cid


# --- state on disk -------------------------------------------------------------------------------


class Container:
    def __init__(self, store: Store, cid: str, data: Dict[str, Any]):
        self.store = store
        self.id = cid
        self.data = data

    @property
    def dir(self) -> str:
        return self.store.path(self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    @property
    def pid(self) -> int:
        return int(self.data.get("pid") or 0)

    def alive(self) -> bool:
        """The recorded init exists, is the same process (start time) and is not a zombie."""
        from rootless import procs

        start = procs.start_time(self.pid, zombie_is_gone=True) if self.pid > 0 else None
        return start is not None and start == self.data.get("start_time")

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        return "created" if os.path.exists(self.fifo) else "running"

    def state_json(self) -> Dict[str, Any]:
        """crun's `state` output."""
        out: Dict[str, Any] = {
            "ociVersion": self.data.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "pid": self.pid,
            "status": self.status(),
            "bundle": self.data.get("bundle", ""),
            "rootfs": self.data.get("rootfs", ""),
            "created": self.data.get("created", ""),
            "owner": "",
        }
        if self.data.get("annotations"):
            out["annotations"] = self.data["annotations"]
        return out


class Store:
    def __init__(self, root: str):
        self.root = root

    def path(self, cid: str) -> str:
        return os.path.join(self.root, validate_id(cid))

    def reserve(self, cid: str) -> str:
        """Create the container's directory; refuse an id in use (mkdir is the lock)."""
        paths.ensure_private_dir(self.root)
        d = self.path(cid)
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            raise RootlessError(f"create container `{cid}`: the id is already in use",
                                f"delete it first: `rootless runtime delete --force {cid}`")
        except OSError as e:
            raise RootlessError(f"create container `{cid}`: {e.strerror}", "check exec-root in daemon.toml")
        return d

    def save(self, cid: str, data: Dict[str, Any]) -> None:
        paths.atomic_write(os.path.join(self.path(cid), "state.json"), json.dumps(data, indent=2).encode(), 0o600)

    def load(self, cid: str) -> Container:
        f = os.path.join(self.path(cid), "state.json")
        try:
            with open(f, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise NotFound(f"container `{cid}` does not exist", "`rootless runtime list` shows the containers")
        except (OSError, ValueError) as e:
            raise RootlessError(f"read state of container `{cid}`: {e}",
                                f"the state is damaged; remove `{os.path.dirname(f)}`")
        return Container(self, cid, data)

    def remove(self, cid: str) -> None:
        import shutil

        shutil.rmtree(self.path(cid), ignore_errors=True)

    def ids(self) -> List[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if _ID_RE.match(n))
        except OSError:
            return []


# --- operations -------------------------------------------------------------------------------------


def load_bundle(bundle: str) -> Dict[str, Any]:
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise RootlessError(f"read `{path}`: no such file", "give the bundle directory with --bundle")
    except (OSError, ValueError) as e:
        raise RootlessError(f"read `{path}`: {e}", "config.json must be an OCI runtime spec (see `crun spec`)")
    if not isinstance(spec, dict):
        raise RootlessError(f"read `{path}`: the top level must be a JSON object")
    return spec


def _rootfs_of(spec: Dict[str, Any], bundle: str) -> str:
    p = (spec.get("root") or {}).get("path") or "rootfs"
    return p if os.path.isabs(p) else os.path.join(bundle, p)


def _record(cid: str, spec: Dict[str, Any], bundle: str, pid: int) -> Dict[str, Any]:
    from rootless.procs import start_time as proc_start_time

    return {
        "ociVersion": spec.get("ociVersion", OCI_VERSION),
        "id": cid,
        "pid": pid,
        "start_time": proc_start_time(pid),
        "bundle": bundle,
        "rootfs": _rootfs_of(spec, bundle),
        "created": timefmt.now(),
        "annotations": spec.get("annotations") or {},
    }


def _write_pid_file(path: Optional[str], pid: int) -> None:
    if path:
        paths.atomic_write(os.path.abspath(path), str(pid).encode(), 0o644)


def create(store: Store, cid: str, bundle: str, *, pid_file: Optional[str] = None,
           console_socket: Optional[str] = None) -> None:
    from rootless import runtime

    bundle = os.path.abspath(bundle)
    spec = load_bundle(bundle)
    terminal = bool((spec.get("process") or {}).get("terminal"))
    if terminal and not console_socket:
        raise UsageError("create a container with process.terminal: no --console-socket to hand the pty to",
                         "pass --console-socket, set process.terminal to false, or use `rootless runtime run`")
    d = store.reserve(cid)
    fifo = os.path.join(d, "exec.fifo")
    try:
        os.mkfifo(fifo, 0o600)
        proc = runtime.spawn(spec, ids=runtime.ids_for_current_user(), stdio=runtime.Stdio(tty=terminal),
                             bundle=bundle, exec_fifo=fifo, name=cid)
        try:
            store.save(cid, _record(cid, spec, bundle, proc.pid))
            if terminal and proc.pty_master is not None:
                _send_console(console_socket, proc.pty_master)  # type: ignore[arg-type]
            _write_pid_file(pid_file, proc.pid)
        except BaseException:
            proc.kill()
            raise
    except BaseException:
        store.remove(cid)
        raise


def _send_console(path: str, master: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise RootlessError(f"send the pty to console socket `{path}`: {e.strerror}", "check --console-socket")
    finally:
        os.close(master)


def start(store: Store, cid: str, timeout: Optional[float] = None) -> None:
    import select

    c = store.load(cid)
    status = c.status()
    if status != "created":
        raise RootlessError(f"start container `{cid}`: it is {status}, not created",
                            "only a created container can be started; `rootless runtime run` does both")
    try:
        fd = os.open(c.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RootlessError(f"start container `{cid}`: it was started already")
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                data = os.read(fd, 1)
                if data:
                    break
            if not c.alive():
                raise RootlessError(f"start container `{cid}`: its init exited before the start",
                                    "its error was written to the container's stderr")
            if deadline is not None and time.monotonic() > deadline:
                raise RootlessError(f"start container `{cid}`: no answer after {timeout:g} s")
    finally:
        os.close(fd)
    try:
        os.unlink(c.fifo)
    except OSError:
        pass


def kill(store: Store, cid: str, sig: int) -> None:
    """Send ``sig`` (a number: the face parses names) to the container's init."""
    c = store.load(cid)
    if not c.alive():
        raise RootlessError(f"kill container `{cid}`: it is not running", f"`rootless runtime delete {cid}` removes it")
    try:
        os.kill(c.pid, sig)
    except ProcessLookupError:
        raise RootlessError(f"kill container `{cid}`: it is not running")
    except PermissionError as e:
        raise RootlessError(f"kill container `{cid}`: {e.strerror}")


def delete(store: Store, cid: str, *, force: bool = False) -> None:
    c = store.load(cid)
    status = c.status()
    if status == "running" and not force:
        raise RootlessError(f"delete container `{cid}`: it is running",
                            f"stop it first (`rootless runtime kill {cid} KILL`) or use --force")
    if status in ("running", "created"):
        try:
            os.kill(c.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while c.alive() and time.monotonic() < deadline:
            _reap_quiet(c.pid)
            time.sleep(0.01)
    store.remove(cid)


def _reap_quiet(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass




def spawn(spec: Dict[str, Any], bundle: str, cid: str):
    """For a foreground run (``cid`` reserved by the caller): start the bundle's process at once
    (no exec.fifo), a pty for it when process.terminal. The caller records it (``record``), relays
    its terminal, waits for it and removes the id."""
    from rootless import runtime

    terminal = bool((spec.get("process") or {}).get("terminal"))
    return runtime.spawn(spec, ids=runtime.ids_for_current_user(), stdio=runtime.Stdio(tty=terminal),
                         bundle=os.path.abspath(bundle), name=cid)


def record(store: Store, cid: str, spec: Dict[str, Any], bundle: str, pid: int, pid_file: Optional[str] = None) -> None:
    """Write the state of a spawned container (and its pid to ``pid_file``)."""
    store.save(cid, _record(cid, spec, os.path.abspath(bundle), pid))
    _write_pid_file(pid_file, pid)


def containers(store: Store) -> List[Container]:
    """The containers whose state can be read, by id."""
    out = []
    for cid in store.ids():
        try:
            out.append(store.load(cid))
        except RootlessError:
            continue
    return out
