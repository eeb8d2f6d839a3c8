"""The copy helper: one operation on a container's files, in a fresh and isolated interpreter.

``cp``, ``export`` and ``commit`` must read and write a container's files as root of its user
namespace, and ``cp``/``export`` chrooted into its root so that its symlinks resolve inside it.
Whatever runs there can be made to run the container's code: glibc loads the NSS module named by
the container's ``/etc/nsswitch.conf`` from the container's ``/lib`` on the first user or group
look-up (docker CVE-2019-14271). So (DESIGN.md, "Security rules"):

- the helper is a new interpreter (``sys.executable -I -S``), never a fork of the CLI: no heap,
  no secrets, no loaded NSS state; it gets a minimal environment, stdin/stdout on /dev/null and
  only the fds it needs (``close_fds``); it makes itself non-dumpable (PR_SET_DUMPABLE 0) before it
  joins a container's namespaces or mounts its root, and asks for SIGKILL when the CLI dies;
- it never looks a user or group up: ``tarfile``'s ``pwd``/``grp`` are removed before it enters
  (numeric owners only, as docker's archive code writes them), extraction uses ``numeric_owner``;
- everything it uses is imported and exercised before it enters, and then the import system is
  sealed (no path finders), so a lazy import cannot load Python code from the container's files;
- its answer is one JSON document of at most ``RESULT_CAP`` bytes, parsed against a fixed schema
  per operation by the caller; nothing it sends is unpickled or evaluated.

The request (parent -> helper) travels the other way on a pipe before the helper enters anything.

Modes: ``running`` (setns into the user and mount namespaces of a container's process and chroot
into its ``/proc/PID/root``), ``stopped`` (a new user + mount namespace, the storage driver's
rootfs plan, chroot), ``userns`` (a new user namespace only: commit and diff read the writable
layer directory on the host, with dir fds).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, Dict, List, Optional, Sequence

from rootless import answer
from rootless.errors import RootlessError

RESULT_CAP = 64 * 1024  # bytes of the helper's answer; a longer one is refused
PR_SET_DUMPABLE = 4  # prctl(2)

_BOOT = (
    "import sys,os,json,pickle\n"
    "f=os.fdopen(int(sys.argv[1]),'rb',closefd=True)\n"
    "sys.path[:]=json.loads(f.readline())\n"
    "req=pickle.load(f)\n"
    "f.close()\n"
    "from rootless.engine.copyhelper import child_main\n"
    "child_main(req)\n"
)

# operation -> containerfs function (resolved in the helper, before it enters the container)
OPS = ("tar_out", "tar_in", "tar_in_as", "tar_root", "layer_tar", "diff_walk")


class HelperError(RootlessError):
    pass


# --- parent side ----------------------------------------------------------------------------------


def _env() -> Dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
    if os.environ.get("ROOTLESS_DEBUG", "") not in ("", "0"):
        env["ROOTLESS_DEBUG"] = "1"
    return env


def run(op: str, kwargs: Dict[str, Any], fds: Sequence[int] = (), *, mode: str, pid: int = 0,
        plan: Any = None, ids: Any = None) -> Any:
    """Run containerfs operation ``op(**kwargs)`` in the helper; its checked result.

    ``fds`` keep their numbers in the helper (the spool files the tar streams go through).
    """
    import pickle
    import subprocess

    from rootless.runtime import sync
    from rootless.runtime import userns as un

    if op not in OPS:
        raise HelperError(f"run the copy helper: unknown operation `{op}`", "this is a bug in rootless")
    ctl_parent = ctl_child = None
    self_map = None
    uid_maps = gid_maps = None
    if mode in ("stopped", "userns"):
        uid_maps, gid_maps = un.maps_for(ids)
        if un.can_self_map(uid_maps, gid_maps, os.getuid(), os.getgid()):
            self_map = (uid_maps[0], gid_maps[0])
        ctl_parent, ctl_child = sync.socketpair()
    res_r, res_w = os.pipe()
    req_r, req_w = os.pipe()
    req = {"op": op, "kwargs": kwargs, "mode": mode, "pid": pid, "plan": plan, "self_map": self_map,
           "ctl_fd": ctl_child.fileno() if ctl_child is not None else -1, "result_fd": res_w, "ppid": os.getpid()}
    blob = json.dumps(list(sys.path)).encode() + b"\n" + pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL)
    debug = "ROOTLESS_DEBUG" in _env()
    pass_fds = tuple(fds) + (res_w, req_r) + ((ctl_child.fileno(),) if ctl_child is not None else ())
    try:
        p = subprocess.Popen([sys.executable, "-I", "-S", "-c", _BOOT, str(req_r)], pass_fds=pass_fds,
                             close_fds=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=None if debug else subprocess.DEVNULL, env=_env(), cwd="/")
    except OSError as e:
        for fd in (res_r, res_w, req_r, req_w):
            os.close(fd)
        for s in (ctl_parent, ctl_child):
            if s is not None:
                s.close()
        raise HelperError(f"start the copy helper `{sys.executable}`: {e.strerror}", "check that Python can run")
    os.close(req_r)
    os.close(res_w)
    if ctl_child is not None:
        ctl_child.close()
    try:
        with os.fdopen(req_w, "wb") as f:
            f.write(blob)
    except BrokenPipeError:
        pass
    map_error: Optional[BaseException] = None
    data = b""
    try:
        if ctl_parent is not None:
            if self_map is None:
                try:
                    un.map_child(p.pid, ctl_parent, uid_maps, gid_maps)
                except BaseException as e:  # noqa: BLE001 - kill the helper, then raise
                    map_error = e
                    p.kill()
            ctl_parent.close()
        with os.fdopen(res_r, "rb") as f:
            data = f.read(RESULT_CAP + 1)
            if len(data) > RESULT_CAP:
                p.kill()
    finally:
        status = p.wait()
    if map_error is not None:
        raise map_error
    return parse_result(op, data, status)


def parse_result(op: str, data: bytes, status: int = 0) -> Any:
    """The helper's answer, checked against the schema of ``op``; raises its error, or ours."""
    if not data:
        raise HelperError(f"run the copy helper (`{op}`): it exited with status {status} before answering",
                          "run again with --debug; its error output may say why")
    try:
        return answer.parse(data, RESULT_CAP, lambda v: _check_value(op, v))
    except answer.Malformed:
        raise HelperError(f"read the answer of the copy helper (`{op}`): it is not valid (exit status {status})",
                          "the container may be hostile, or the helper died; run again with --debug") from None


def _check_value(op: str, v: Any) -> Any:
    if op == "tar_out":
        if not isinstance(v, dict) or set(v) != {"dir", "name", "contents"}:
            raise ValueError("tar_out")
        if not isinstance(v["dir"], bool) or not isinstance(v["contents"], bool):
            raise ValueError("tar_out flags")
        name = v["name"]
        if (not isinstance(name, str) or not name or len(name) > 4096 or "/" in name or "\0" in name
                or name == ".."):
            raise ValueError("tar_out name")
        return {"dir": v["dir"], "name": name, "contents": v["contents"]}
    if op == "diff_walk":
        if not isinstance(v, list) or len(v) > 100000:
            raise ValueError("diff_walk")
        out = []
        for e in v:
            if (not isinstance(e, list) or len(e) != 2 or e[0] not in ("A", "C", "D")
                    or not isinstance(e[1], str) or not e[1].startswith("/")):
                raise ValueError("diff_walk entry")
            out.append((e[0], e[1]))
        return out
    if v is not None:
        raise ValueError(op)
    return None


# --- the helper -----------------------------------------------------------------------------------


def _non_dumpable() -> None:
    """No ptrace, /proc/PID/mem or /proc/PID/fd from the container's processes (we enter its
    namespaces; with a user namespace of our own, once its maps are written: a non-dumpable
    process cannot write its own /proc/self/uid_map)."""
    from rootless.linux import syscalls as sc

    sc.prctl(PR_SET_DUMPABLE, 0)
    try:
        sc.set_name("rootless:copy")  # from here on: `ps` shows it by this name
    except OSError:
        pass


def _harden(ppid: int) -> None:
    from rootless.linux import syscalls as sc

    sc.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != ppid:
        os._exit(125)


def _no_nss() -> None:
    """No user or group look-up from here on: glibc would load the container's NSS modules."""
    import tarfile
    import warnings

    tarfile.pwd = None  # type: ignore[attr-defined]
    tarfile.grp = None  # type: ignore[attr-defined]
    sys.modules["pwd"] = None  # type: ignore[assignment]  # an import of them now fails
    sys.modules["grp"] = None  # type: ignore[assignment]
    warnings.simplefilter("ignore")  # a warning would read source lines (linecache) from the container


def _warm_up() -> None:
    """Run the tar code paths once before entering, so that no lazy import happens after."""
    import io
    import shutil  # noqa: F401
    import stat  # noqa: F401
    import tarfile
    import tempfile

    from rootless.engine import containerfs  # noqa: F401

    for mod in ("encodings.ascii", "encodings.latin_1", "encodings.utf_8"):
        __import__(mod)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("w\u00e4rm/" + "x" * 120)
        ti.size = 1
        ti.pax_headers = {"comment": "\u00e9"}
        tar.addfile(ti, io.BytesIO(b"x"))
        ti = tarfile.TarInfo("l")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "w"
        tar.addfile(ti)
    buf.seek(0)
    with tempfile.TemporaryDirectory() as d, tarfile.open(fileobj=buf, mode="r|") as tar:
        for m in tar:
            containerfs._extract(tar, m, d)
        tar2 = tarfile.open(fileobj=io.BytesIO(), mode="w|", format=tarfile.PAX_FORMAT)
        containerfs._add_numeric(tar2, d, "d", recursive=True)
        tar2.close()
    json.dumps({"a": [1, "\u00e9"]})
    answer.dump(answer.from_error(HelperError("w\u00e4rm", None)), RESULT_CAP)
    "x".encode("ascii", "replace").decode("ascii")


def _seal_imports() -> None:
    """From here on an import can only find built-in and frozen modules, never a file."""
    sys.path[:] = []
    sys.path_hooks[:] = []
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]


def _enter_running(pid: int) -> None:
    from rootless.linux import syscalls as sc

    paths = []
    for ns, flag in (("user", sc.CLONE_NEWUSER), ("mnt", sc.CLONE_NEWNS)):
        try:
            if os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"):
                paths.append((f"/proc/{pid}/ns/{ns}", flag))
        except OSError as e:
            raise RootlessError(f"open the namespaces of process `{pid}`: {e.strerror}",
                                "is the container still running? (its main process must run as root)")
    fds = [(os.open(p, os.O_RDONLY | os.O_CLOEXEC), f) for p, f in paths]
    root_fd = None
    for fd, flag in fds:
        sc.setns(fd, flag)
        os.close(fd)
        if flag == sc.CLONE_NEWUSER:
            root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if root_fd is None:
        root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.fchdir(root_fd)
    os.close(root_fd)
    os.chroot(".")
    os.chdir("/")


def _enter_new(req: Dict[str, Any], mount: bool) -> list:
    import socket

    from rootless.linux import syscalls as sc
    from rootless.runtime import userns as un

    ctl = socket.socket(fileno=req["ctl_fd"])
    un.enter_userns(sc.CLONE_NEWUSER | (sc.CLONE_NEWNS if mount else 0), ctl, req["self_map"])
    ctl.close()
    _non_dumpable()
    if not mount:
        return []
    from rootless.runtime import stage1

    plan = req["plan"]
    helpers: List[int] = []
    stage1.apply_plan(plan, helpers.append)
    os.chdir(plan.rootfs)
    os.chroot(".")
    os.chdir("/")
    return helpers


def child_main(req: Dict[str, Any]) -> None:
    """The helper: enter, run the operation, answer in JSON; never returns."""
    res_fd = req["result_fd"]
    helpers: list = []
    try:
        try:
            _harden(req["ppid"])
            _no_nss()
            _warm_up()
            from rootless.engine import containerfs

            fn = getattr(containerfs, "_op_" + req["op"])
            mode = req["mode"]
            if mode == "running":
                _non_dumpable()
                _enter_running(int(req["pid"]))
            elif mode == "stopped":
                helpers = _enter_new(req, mount=True)
            elif mode == "userns":
                _enter_new(req, mount=False)
            else:
                raise HelperError(f"run the copy helper: unknown mode `{mode}`", "this is a bug in rootless")
            _seal_imports()
            out: Dict[str, Any] = answer.ok(fn(**req["kwargs"]))
        except RootlessError as e:
            out = answer.from_error(e)
        except BaseException as e:  # noqa: BLE001 - everything becomes an answer
            out = answer.error(f"work in the container's files: {type(e).__name__}: {e}", "run again with --debug", 125)
            if os.environ.get("ROOTLESS_DEBUG"):
                import traceback

                traceback.print_exc()
        for hp in helpers:
            try:
                os.kill(hp, signal.SIGTERM)
            except OSError:
                pass
        answer.write_all(res_fd, answer.dump(out, RESULT_CAP))
    finally:
        os._exit(0)
