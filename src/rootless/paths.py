"""Where things live on disk: config file, data-root, exec-root, caches.

Every function takes the environment as a parameter (default: os.environ) so that unit tests can
point them at temporary folders (DESIGN.md, house style 7).
"""

from __future__ import annotations

import os
import stat
from typing import Mapping, Optional

from rootless.errors import RootlessError

CONFIG_ENV = "ROOTLESS_CONFIG"


def home(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    h = env.get("HOME")
    if h:
        return h
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def config_home(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get("XDG_CONFIG_HOME") or os.path.join(home(env), ".config")


def default_config_file(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get(CONFIG_ENV) or os.path.join(config_home(env), "rootless", "daemon.toml")


def default_data_root(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(home(env), ".local", "share")
    return os.path.join(base, "rootless")


def cache_home(env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get("XDG_CACHE_HOME") or os.path.join(home(env), ".cache")


class ExecRoot:
    """The resolved exec-root and, when XDG_RUNTIME_DIR was not usable, why."""

    def __init__(self, path: str, warning: Optional[str] = None):
        self.path = path
        self.warning = warning


def default_exec_root(env: Optional[Mapping[str, str]] = None, tmpdir: str = "/tmp") -> ExecRoot:
    """``$XDG_RUNTIME_DIR/rootless``, else a private ``/tmp/rootless-<uid>`` (0700, checked).

    XDG_RUNTIME_DIR is unset under su, sudo and cron. Podman falls back to /tmp/podman-run-<uid>
    in that case; we do the same but refuse a directory someone else owns or can write, because a
    predictable name in /tmp is otherwise an invitation to a symlink attack.
    """
    env = os.environ if env is None else env
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and _usable_runtime_dir(xdg):
        return ExecRoot(os.path.join(xdg, "rootless"))
    why = "XDG_RUNTIME_DIR is not set" if not xdg else f"XDG_RUNTIME_DIR `{xdg}` is not a directory you own"
    fallback = os.path.join(tmpdir, f"rootless-run-{os.getuid()}")
    return ExecRoot(fallback, f"{why}; using `{fallback}` (state there is lost at reboot)")


def _usable_runtime_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def ensure_private_dir(path: str) -> str:
    """Create ``path`` 0700 if missing; refuse one owned by someone else or open to others."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        raise RootlessError(
            f"create directory `{path}`: {e.strerror}",
            "check the permissions of its parent, or set exec-root/data-root in daemon.toml",
        )
    if stat.S_ISLNK(st.st_mode):
        raise RootlessError(f"use directory `{path}`: it is a symbolic link, not a directory", "remove it or choose another path")
    from rootless import trust

    # ours, and nobody else could have written into it (then a read bit is only tightened below)
    trust.check_dir(path, "directory")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part.

    temp file in the same directory, fsync, rename, fsync of the directory. ``durable=False``
    keeps the rename (still atomic for readers, and after a crash) but skips the fsyncs: for
    state that does not need to outlive a power loss (a --rm container's record).
    """
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None  # the file we write, not its temp name
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            os.fsync(fd)
    except BaseException as e:
        os.close(fd)
        _unlink_quiet(tmp)
        if isinstance(e, OSError) and e.filename is None:
            # ENOSPC, EDQUOT, EFBIG from write(): say which file (the CLI shows it, with a hint)
            raise OSError(e.errno, e.strerror, path) from None
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if durable:
        fsync_dir(d)


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
