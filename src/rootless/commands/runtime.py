"""rootless runtime: the OCI runtime command line (runc's and crun's create/start/state/kill/delete/run).

    rootless runtime [--root DIR] create [--bundle DIR] [--pid-file F] [--console-socket S] ID
    rootless runtime start ID
    rootless runtime state ID
    rootless runtime kill ID [SIGNAL]
    rootless runtime delete [--force] ID
    rootless runtime run [--bundle DIR] [--pid-file F] [--detach] ID
    rootless runtime list

State lives in ``$XDG_RUNTIME_DIR/rootless/runtime/<id>/`` (exec-root): ``state.json`` (written
atomically, with the init's pid and its start time so that a reused pid is not taken for a live
container) and ``exec.fifo``, which a created container holds open until ``start`` reads it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
import time
from typing import Any, Dict, List, Optional

from rootless import paths, timefmt
from rootless.errors import NotFound, RootlessError, UsageError
from rootless.procs import parse_signal

OCI_VERSION = "1.0.2"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def add_arguments(p) -> None:
    p.add_argument("--root", help="Directory for the containers' state (default: EXEC_ROOT/runtime)")
    p.add_argument("--log", help="Ignored (accepted for compatibility with runc's command line)")
    p.add_argument("--log-format", help="Ignored (accepted for compatibility)")
    p.add_argument("--systemd-cgroup", action="store_true", help="Ignored (accepted for compatibility)")
    sub = p.add_subparsers(dest="action", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser("create", help="Create a container from a bundle; it waits for `start`")
    _bundle_args(c)
    c.add_argument("--console-socket", help="Unix socket that receives the pty master (process.terminal)")
    c.add_argument("id")
    s = sub.add_parser("start", help="Start a created container")
    s.add_argument("id")
    st = sub.add_parser("state", help="Print the state of a container as JSON")
    st.add_argument("id")
    k = sub.add_parser("kill", help="Send a signal (default SIGTERM) to a container's init")
    k.add_argument("--all", "-a", action="store_true", help="Ignored: the container's pid namespace ends with its init")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete", help="Delete a stopped container (--force: kill it first)")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    r = sub.add_parser("run", help="Create and start a container, wait for it, delete it")
    _bundle_args(r)
    r.add_argument("--detach", "-d", action="store_true", help="Do not wait: leave it running")
    r.add_argument("--keep", action="store_true", help="Do not delete the container when it exits")
    r.add_argument("id")
    sub.add_parser("list", help="List the containers")


def _bundle_args(p) -> None:
    p.add_argument("--bundle", "-b", default=".", help="Path to the bundle (config.json and the rootfs)")
    p.add_argument("--pid-file", help="Write the container init's pid to this file")


def main(args, ctx) -> int:
    root = os.path.abspath(args.root) if args.root else os.path.join(ctx.config.exec_root, "runtime")
    store = Store(root)
    action = args.action
    if action == "list":
        return _list(store)
    cid = validate_id(args.id)
    if action == "create":
        create(store, cid, args.bundle, pid_file=args.pid_file, console_socket=args.console_socket)
        return 0
    if action == "start":
        start(store, cid)
        return 0
    if action == "state":
        sys.stdout.write(json.dumps(store.load(cid).state_json(), indent=2) + "\n")
        return 0
    if action == "kill":
        kill(store, cid, args.signal)
        return 0
    if action == "delete":
        delete(store, cid, force=args.force)
        return 0
    if action == "run":
        return run(store, cid, args.bundle, pid_file=args.pid_file, detach=args.detach, keep=args.keep)
    raise UsageError(f"unknown runtime command `{action}`", "see 'rootless runtime --help'")


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


# --- commands ----------------------------------------------------------------------------------------


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
    from rootless.runtime import proc_start_time

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


def kill(store: Store, cid: str, sig_text: str) -> None:
    sig = parse_signal(sig_text)
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


def run(store: Store, cid: str, bundle: str, *, pid_file: Optional[str] = None, detach: bool = False,
        keep: bool = False) -> int:
    from rootless import runtime
    from rootless.cli import terminal as terminal_

    if detach:
        spec = load_bundle(bundle)
        if (spec.get("process") or {}).get("terminal"):
            raise UsageError("run --detach with process.terminal: nobody would hold the pty",
                             "set process.terminal to false")
        create(store, cid, bundle, pid_file=pid_file)
        start(store, cid)
        return 0
    bundle = os.path.abspath(bundle)
    spec = load_bundle(bundle)
    terminal = bool((spec.get("process") or {}).get("terminal"))
    store.reserve(cid)
    try:
        proc = runtime.spawn(spec, ids=runtime.ids_for_current_user(), stdio=runtime.Stdio(tty=terminal),
                             bundle=bundle, name=cid)
        with terminal_.SignalForwarder() as fwd:
            fwd.set_target(proc)
            store.save(cid, _record(cid, spec, bundle, proc.pid))
            _write_pid_file(pid_file, proc.pid)
            if terminal and proc.pty_master is not None:
                terminal_.pump_tty(proc.pty_master, _readable(0), poll=proc.poll)
            code = proc.wait()
    finally:
        if not keep:
            store.remove(cid)
    return code


def _readable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return not stat.S_ISDIR(mode)


def _list(store: Store) -> int:
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED")]
    for cid in store.ids():
        try:
            c = store.load(cid)
        except RootlessError:
            continue
        rows.append((cid, str(c.pid), c.status(), c.data.get("bundle", ""), c.data.get("created", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        sys.stdout.write("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip() + "\n")
    return 0
