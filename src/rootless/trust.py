"""What we believe of our own state: directories, state files, pids and paths read from them.

DESIGN.md, security rules: "A pid or path read from a state file is checked before it is
signalled or unlinked (pid start time, path inside our own directories); a run-time directory
owned by someone else, or writable by group/other, is refused."

- ``check_dir``: a data-root or exec-root (or a folder in one) must be ours and not writable by
  group or other; otherwise anyone could have planted records there (the audit's forged
  ``/tmp/rootless-run-<uid>/usernet/holder.json``, issue 11 item 3).
- ``read_json``: a state file is opened without following a symlink, must be a regular file of
  ours, not writable by others, and of bounded size; JSON nested too deep is a ValueError.
- ``pid_is``: a pid is acted on only when it is still the process we recorded: same start time,
  same owner (our uid) and, where known, the same name (/proc/PID/comm).
- ``inside``: a path from a state file is unlinked only when it lies in one of our directories.
"""

from __future__ import annotations

import json
import os
import stat

from rootless.errors import RootlessError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence

MAX_STATE_FILE = 4 << 20  # a record is a few KiB; anything larger is not ours


def _refuse(what: str, path: str, why: str, hint: str) -> RootlessError:
    return RootlessError(f"use {what} `{path}`: {why}", hint)


def check_dir(path: str, what: str = "directory", uid: Optional[int] = None, must_exist: bool = False) -> bool:
    """Raise unless ``path`` is a directory of ours that group and other cannot write.

    A symlink is followed only when the link itself is ours (a link planted in /tmp by someone
    else is refused). Returns False when the path does not exist (and ``must_exist`` is False).
    """
    uid = os.getuid() if uid is None else uid
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        if must_exist:
            raise _refuse(what, path, "it does not exist", "create it, or check data-root/exec-root in daemon.toml")
        return False
    except OSError as e:
        raise _refuse(what, path, e.strerror or str(e), "check the permissions of its parent folders")
    hint_other = ("another user may have created it to plant state for you: do not use it; remove it "
                  "(or have an administrator remove it), or set data-root/exec-root in daemon.toml")
    if stat.S_ISLNK(lst.st_mode):
        if lst.st_uid != uid:
            raise _refuse(what, path, f"it is a symbolic link owned by uid {lst.st_uid}, not by you", hint_other)
        try:
            lst = os.stat(path)
        except OSError as e:
            raise _refuse(what, path, e.strerror or str(e), "fix or remove the symbolic link")
    if not stat.S_ISDIR(lst.st_mode):
        raise _refuse(what, path, "it is not a directory", "remove it, or choose another path in daemon.toml")
    if lst.st_uid != uid:
        raise _refuse(what, path, f"it belongs to uid {lst.st_uid}, not to you", hint_other)
    if lst.st_mode & 0o022:
        mode = stat.S_IMODE(lst.st_mode)
        raise _refuse(what, path, f"other users can write to it (mode {mode:04o})",
                      f"if nobody else put files there, make it private: `chmod go-w {path}`; "
                      "else remove it and start again")
    return True


def check_roots(data_root: str, exec_root: str) -> None:
    """The two roots of our state, checked where they exist (they are made 0700 when missing)."""
    check_dir(data_root, "data-root")
    check_dir(exec_root, "exec-root")


def read_json(path: str, what: str = "state file", max_size: int = MAX_STATE_FILE) -> Any:
    """A state file of ours, parsed; FileNotFoundError when missing, RootlessError when refused.

    O_NOFOLLOW and an fstat: it must be a regular file owned by us that others cannot write."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(what, path, "it is not a regular file", "remove it")
        if st.st_uid != os.getuid():
            raise _refuse(what, path, f"it belongs to uid {st.st_uid}, not to you",
                          "another user may have planted it: remove it (or have an administrator remove it)")
        if st.st_mode & 0o022:
            raise _refuse(what, path, f"other users can write to it (mode {stat.S_IMODE(st.st_mode):04o})",
                          "remove it")
        if st.st_size > max_size:
            raise _refuse(what, path, f"it is {st.st_size} bytes, more than a state file holds", "remove it")
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return loads(b"".join(chunks), path)


def loads(data: bytes, where: str = "") -> Any:
    """json.loads, with JSON nested too deep for it a ValueError (CPython's parser raises
    RecursionError, which callers that expect ValueError for bad JSON would not catch)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply" + (f" in `{where}`" if where else "")) from None


def _status_uid(pid: int, proc: str) -> Optional[int]:
    try:
        with open(f"{proc}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def comm(pid: int, proc: str = "/proc") -> Optional[str]:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def pid_is(pid: Any, start_time: Any, names: Sequence[str] = (), proc: str = "/proc") -> bool:
    """Whether ``pid`` is still the process recorded: a positive int, alive, the same start time
    (required), owned by our uid, and named one of ``names`` (when given). Never raises."""
    from rootless.state import proc_start_time

    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
        return False
    if isinstance(start_time, bool) or not isinstance(start_time, int):
        return False
    if proc_start_time(pid, proc) != start_time:
        return False
    if _status_uid(pid, proc) != os.getuid():
        return False
    if names and comm(pid, proc) not in names:
        return False
    return True


def inside(path: Any, roots: Sequence[str]) -> bool:
    """Whether ``path`` (a string from a state file) names something inside one of ``roots``,
    after resolving ``..`` and symbolic links of its parent folders."""
    if not isinstance(path, str) or not path or "\0" in path:
        return False
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for r in roots:
        if not r:
            continue
        root = os.path.realpath(r)
        if parent == root or parent.startswith(root.rstrip("/") + "/"):
            return True
    return False


def unlink_inside(path: Any, roots: Sequence[str]) -> bool:
    """Unlink ``path`` when it lies inside ``roots``; True when it was removed."""
    if not inside(path, roots):
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True

