"""Run a function as root in a new user namespace, and the uid/gid map plumbing stage 1 shares.

``run_in_userns(fn, *args, ids=, mount_ns=False, **kw)`` runs the module-level function ``fn`` in
a child process that has unshared a user namespace (and a mount namespace if asked) whose maps
come from ``ids``: container 0 is the user, 1.. the subordinate range (written by newuidmap and
newgidmap, started in parallel); without a range, a one-uid map the child writes itself after
denying setgroups (CVE-2014-8989). Inside, the child is uid 0 / gid 0 with every capability of
that namespace, so ``os.chown(path, 1000, 1000)`` there gives the file host uid subuid+999.

The child is forked when the caller is single-threaded. ``unshare(CLONE_NEWUSER)`` fails in a
multi-threaded process and fork() from threaded Python is unsafe, so a threaded caller (the API
server) re-executes ``sys.executable`` with its own ``sys.path`` instead (works from the .pyz and
from the source tree), and ``fn`` travels by reference (module + qualname) with pickled args.

The child handles hostile content (a registry's layer tars, a container's files), so its answer
is data, never a pickle (DESIGN.md, "Security rules"): one JSON document of at most
``ANSWER_CAP`` bytes (``rootless.answer``), the return value checked by the caller's ``schema``.
``fn`` must return JSON values (a tuple arrives as a list; callers convert at the call site). A
RootlessError raised by ``fn`` is raised again in the caller with its message, hint and exit
code, as the nearest class ``answer.ERROR_TYPES`` allows; any other exception becomes a
RootlessError naming it. The request (parent -> fresh child, before it touches anything) is
still pickled when the child is re-executed.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

from rootless import procs
from rootless.errors import RootlessError, RuntimeSetupError
from rootless.idmap import IdMapping, UserIds
from rootless.linux import syscalls
from rootless.runtime import sync

UIDMAP_HINT = (
    "check that /etc/subuid and /etc/subgid give your user a range (e.g. `usermod --add-subuids "
    "100000-165535 --add-subgids 100000-165535 USER`) and that newuidmap/newgidmap are setuid root"
)
# Bytes of a child's answer. The largest real one is a layer unpack's (counts and at most
# layers.MAX_NOTES notes of layers.MAX_NOTE characters: < 64 KiB); the others are an int or null.
ANSWER_CAP = 1 << 20

USERNS_HINT = (
    "unprivileged user namespaces may be disabled: check `sysctl user.max_user_namespaces` (must be > 0), "
    "`kernel.unprivileged_userns_clone` (Debian) and AppArmor's `kernel.apparmor_restrict_unprivileged_userns`"
)


# --- threads ---------------------------------------------------------------------------------------


def is_single_threaded(proc: str = "/proc") -> bool:
    """True when this process has one thread (counts native threads too, not just Python's)."""
    try:
        return len(os.listdir(f"{proc}/self/task")) == 1
    except OSError:
        import threading

        return threading.active_count() == 1


# --- maps ------------------------------------------------------------------------------------------


def _flat(maps: Sequence[IdMapping]) -> List[str]:
    out: List[str] = []
    for m in maps:
        out += [str(m.container), str(m.host), str(m.count)]
    return out


def map_text(maps: Sequence[IdMapping]) -> str:
    return "".join(f"{m.container} {m.host} {m.count}\n" for m in maps)


def can_self_map(uid_maps: Sequence[IdMapping], gid_maps: Sequence[IdMapping], uid: int, gid: int) -> bool:
    """A one-line map of our own ids needs no helper: the child writes it itself (user_namespaces(7))."""
    return (
        len(uid_maps) == 1
        and len(gid_maps) == 1
        and uid_maps[0].host == uid
        and uid_maps[0].count == 1
        and gid_maps[0].host == gid
        and gid_maps[0].count == 1
    )


def write_self_maps(uid_map: IdMapping, gid_map: IdMapping, proc: str = "/proc") -> None:
    """In the child, right after unshare(CLONE_NEWUSER): map our own uid and gid only.

    "deny" must go to /proc/self/setgroups before gid_map can be written without CAP_SETGID in
    the parent namespace; otherwise an unprivileged user could drop a supplementary group that
    denies access through negative permissions (CVE-2014-8989).
    """
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", map_text([uid_map])),
        ("gid_map", map_text([gid_map])),
    ):
        path = f"{proc}/self/{name}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except FileNotFoundError:
            if name == "setgroups":  # kernels before 3.19 have no setgroups file
                continue
            raise RuntimeSetupError(f"write `{path}`: No such file or directory", USERNS_HINT)
        except OSError as e:
            raise RuntimeSetupError(f"write `{text.strip()}` to `{path}`: {e.strerror}", USERNS_HINT)


def newidmaps(pid: int, uid_maps: Sequence[IdMapping], gid_maps: Sequence[IdMapping]) -> None:
    """Write the maps of process ``pid`` with newuidmap and newgidmap, run in parallel."""
    from rootless import tools

    procs = []
    for tool, maps in (("newuidmap", uid_maps), ("newgidmap", gid_maps)):
        argv = [tool, str(pid)] + _flat(maps)
        try:
            procs.append((tool, maps, tools.spawn(argv, hint=UIDMAP_HINT)))
        except BaseException:
            for _, _, p in procs:
                p.kill()
                p.wait()
            raise
    first_error: Optional[BaseException] = None
    for tool, maps, p in procs:
        try:
            tools.wait_checked(p, what=f"write {tool[3:6]} map `{' '.join(_flat(maps))}` with {tool}", hint=UIDMAP_HINT)
        except RootlessError as e:
            first_error = first_error or RuntimeSetupError(e.message, e.hint)
        finally:
            if p.stderr is not None:
                p.stderr.close()
    if first_error is not None:
        raise first_error


def maps_for(ids: UserIds, spec: Optional[dict] = None) -> Tuple[List[IdMapping], List[IdMapping]]:
    """The uid and gid maps: the spec's linux.uidMappings/gidMappings if given, else from ``ids``."""
    linux = (spec or {}).get("linux") or {}
    out = []
    for key, default in (("uidMappings", ids.uid_mappings), ("gidMappings", ids.gid_mappings)):
        raw = linux.get(key)
        if raw:
            try:
                out.append([IdMapping(int(m["containerID"]), int(m["hostID"]), int(m["size"])) for m in raw])
            except (KeyError, TypeError, ValueError):
                raise RuntimeSetupError(
                    f"read `linux.{key}` of the spec: each entry needs containerID, hostID and size",
                    "fix config.json",
                )
        else:
            out.append(default())
    return out[0], out[1]


def map_child(pid: int, ctl, uid_maps, gid_maps) -> None:
    """Parent side of MAP_PLEASE / MAP_DONE: wait for the child's request, map it, answer."""
    msg = sync.recv(ctl)
    if msg is None:
        return  # the child failed before asking; its error comes on the result channel
    if isinstance(msg, sync.Error):
        raise RuntimeSetupError(msg.message, msg.hint, msg.exit_code)
    if not isinstance(msg, sync.MapPlease):
        raise RuntimeSetupError(f"map ids of process {pid}: unexpected message {type(msg).__name__}")
    newidmaps(pid, uid_maps, gid_maps)
    sync.send(ctl, sync.MapDone())


def enter_userns(flags: int, ctl, self_map: Optional[Tuple[IdMapping, IdMapping]], proc: str = "/proc",
                 early_flags: int = 0) -> None:
    """Child side: unshare(flags, which include CLONE_NEWUSER), get mapped, become root inside.

    ``early_flags``: more namespaces to unshare while the parent runs newuidmap/newgidmap (we have
    every capability in the new user namespace before our ids are mapped): creating a network
    namespace overlaps the two setuid execs instead of following them.
    """
    try:
        syscalls.unshare(flags)
    except OSError as e:
        hint = USERNS_HINT
        if e.errno == 22 and flags & syscalls.CLONE_NEWUSER and not is_single_threaded(proc):
            hint = "the process has threads; this is a bug in rootless, please report it"
        raise RuntimeSetupError(f"unshare `user` namespace: {e.strerror}", hint)
    early_error: Optional[RuntimeSetupError] = None
    if self_map is not None:
        write_self_maps(self_map[0], self_map[1], proc)
    else:
        sync.send(ctl, sync.MapPlease())
    if early_flags:
        try:
            syscalls.unshare(early_flags)
        except OSError as e:
            kinds = [k for k, f in syscalls.NAMESPACE_FLAGS.items() if early_flags & f]
            early_error = RuntimeSetupError(f"unshare `{', '.join(kinds)}` namespaces: {e.strerror}", USERNS_HINT)
    if self_map is None:
        msg = sync.recv(ctl)
        if not isinstance(msg, sync.MapDone):
            # The parent failed to map us and raised the error itself; nothing to add.
            os._exit(125)
    if early_error is not None:
        raise early_error
    # Our uid was mapped to 0: we are root in the namespace with its full capability set.
    # setresuid makes saved ids 0 too; drop the host's supplementary groups where allowed.
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as e:
        raise RuntimeSetupError(f"become root in the user namespace: {e.strerror}", UIDMAP_HINT)
    try:
        os.setgroups([])
    except OSError:
        pass  # setgroups is denied with a one-uid map


# --- starting a child: fork, or re-exec when threaded -----------------------------------------------

_BOOT = (
    "import sys,os,json,pickle\n"
    "f=os.fdopen(int(sys.argv[1]),'rb',closefd=True)\n"
    "sys.path[:]=json.loads(f.readline())\n"
    "entry,payload=pickle.load(f)\n"
    "f.close()\n"
    "import importlib\n"
    "mod,_,name=entry.partition(':')\n"
    "getattr(importlib.import_module(mod),name)(*payload)\n"
)


def start_child(entry: Callable, payload: tuple, pass_fds: Sequence[int], proc: str = "/proc",
                close_in_child: Sequence[int] = ()) -> int:
    """Run ``entry(*payload)`` in a new process and return its pid; ``entry`` must never return.

    Forks when this process has one thread; otherwise re-executes the interpreter with our
    sys.path and hands it ``entry`` by reference and ``payload`` pickled, over a pipe. The fds
    in ``pass_fds`` keep their numbers in the child. ``close_in_child``: the caller's own ends of
    its channels, closed in a forked child (a re-executed one never has them), so that the
    child sees EOF when the caller goes away.
    """
    if is_single_threaded(proc):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        pid = os.fork()
        if pid == 0:
            for fd in close_in_child:
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                entry(*payload)
            except BaseException:  # noqa: BLE001 - never return into the caller's code
                import traceback

                traceback.print_exc()
            os._exit(125)
        return pid
    return _reexec(entry, payload, pass_fds)


def _reexec(entry: Callable, payload: tuple, pass_fds: Sequence[int]) -> int:
    import json
    import pickle
    import subprocess

    ref = f"{entry.__module__}:{entry.__qualname__}"
    blob = json.dumps(list(sys.path)).encode() + b"\n" + pickle.dumps((ref, payload), protocol=pickle.HIGHEST_PROTOCOL)
    r, w = os.pipe()
    try:
        p = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT, str(r)],
            pass_fds=tuple(pass_fds) + (r,),
            close_fds=True,
            stdin=None,
        )
    except OSError as e:
        os.close(r)
        os.close(w)
        raise RuntimeSetupError(f"start `{sys.executable}`: {e.strerror}", "check that the Python interpreter can run")
    os.close(r)
    # The pipe may be smaller than the payload: write in a thread-free way, the child reads at once.
    try:
        with os.fdopen(w, "wb") as f:
            f.write(blob)
    except BrokenPipeError:
        pass
    # Popen must not reap it behind our back: we wait with os.waitpid ourselves.
    p.returncode = 0  # mark as done for Popen.__del__; the pid is ours to wait for
    return p.pid


def wait_status(pid: int) -> int:
    """waitpid, as a docker-style exit code (128+N when killed by signal N)."""
    return procs.wait(pid)


# --- run_in_userns ---------------------------------------------------------------------------------


def run_in_userns(fn: Callable, *args: Any, ids: UserIds, mount_ns: bool = False, proc: str = "/proc",
                  schema: Optional[Callable[[Any], Any]] = None, **kw: Any) -> Any:
    """Run module-level ``fn(*args, **kw)`` as uid 0 in a new user (and mount) namespace.

    Returns fn's return value, which must be JSON (at most ANSWER_CAP bytes), as ``schema(value)``
    when given: ``schema`` checks and converts it, raising ValueError or TypeError on a value of the
    wrong shape (a malformed answer). See the module docstring.
    """
    from rootless import answer  # here, not at the top: `run` imports this module, not this path
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<locals>" in qual or "<lambda>" in qual:
        raise RootlessError(
            f"run `{qual or fn!r}` in a user namespace: it must be a module-level function of an importable module",
            "this is a bug in rootless; please report it",
        )
    uid_maps, gid_maps = maps_for(ids)
    self_map = (uid_maps[0], gid_maps[0]) if can_self_map(uid_maps, gid_maps, os.getuid(), os.getgid()) else None
    flags = syscalls.CLONE_NEWUSER | (syscalls.CLONE_NEWNS if mount_ns else 0)
    ctl_parent, ctl_child = sync.socketpair()
    res_r, res_w = os.pipe()
    try:
        pid = start_child(
            _userns_child,
            (f"{module}:{qual}", args, kw, flags, self_map, ctl_child.fileno(), res_w, os.getpid(), proc),
            pass_fds=(ctl_child.fileno(), res_w),
            proc=proc,
            close_in_child=(ctl_parent.fileno(), res_r),
        )
    except BaseException:
        ctl_parent.close()
        ctl_child.close()
        os.close(res_r)
        os.close(res_w)
        raise
    ctl_child.close()
    os.close(res_w)
    map_error: Optional[BaseException] = None
    data = b""
    try:
        if self_map is None:
            try:
                map_child(pid, ctl_parent, uid_maps, gid_maps)
            except BaseException as e:  # noqa: BLE001 - kill the child, then raise
                map_error = e
                _kill_quiet(pid)
        ctl_parent.close()
        data = answer.read_bounded(res_r, ANSWER_CAP)
        if len(data) > ANSWER_CAP:
            _kill_quiet(pid)  # it may still be writing; we will not read the rest
    finally:
        status = wait_status(pid)
    if map_error is not None:
        raise map_error
    if not data:
        raise RuntimeSetupError(
            f"run `{qual}` in a user namespace: the child exited with status {status} before answering",
            "run again with --debug; its error output above may say why",
        )
    try:
        return answer.parse(data, ANSWER_CAP, schema)
    except answer.Malformed as e:
        raise RootlessError(
            f"run `{qual}` in a user namespace: the helper process sent a malformed answer ({e})",
            "the content it handled (an image layer, a container's files) may be hostile; "
            "run again with --debug and report it if the content is trusted",
        ) from None


def _kill_quiet(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _resolve(ref: str) -> Callable:
    import importlib

    mod, _, qual = ref.partition(":")
    obj: Any = importlib.import_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _userns_child(ref: str, args: tuple, kw: dict, flags: int, self_map, ctl_fd: int, res_fd: int, ppid: int, proc: str) -> None:
    """The child of run_in_userns: never returns."""
    import socket

    from rootless import answer  # a forked child has it already; import it before entering anything

    try:
        syscalls.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != ppid:
            os._exit(125)
        syscalls.set_name("rootless:userns")
    except OSError:
        pass
    ctl = socket.socket(fileno=ctl_fd)
    try:
        try:
            enter_userns(flags, ctl, self_map, proc)
            ctl.close()
            out = answer.ok(_resolve(ref)(*args, **kw))
        except RootlessError as e:
            out = answer.from_error(e)
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            qual = ref.partition(":")[2]
            out = answer.error(f"run `{qual}` in a user namespace: {type(e).__name__}: {e}",
                               "this is a bug in rootless; run with --debug and report it", 125)
            if os.environ.get("ROOTLESS_DEBUG"):
                import traceback

                traceback.print_exc()
        answer.write_all(res_fd, answer.dump(out, ANSWER_CAP))
    finally:
        os._exit(0)
