"""Choose the storage driver: the configured one, else the best that really works here.

overlay2: kernel overlayfs mounted inside a user namespace (`userxattr`, Linux >= 5.11). We probe by
mounting a tiny overlay in a throw-away user namespace instead of guessing from the kernel version,
and cache the answer per kernel release and data-root filesystem.
fuse-overlayfs: the host tool plus a usable /dev/fuse.
vfs: a plain copy; works everywhere, costs disk and time.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from rootless import paths, tools
from rootless.errors import RootlessError
from rootless.value import Value

PROBE_VERSION = 1


class Choice(Value):
    __slots__ = ("name", "fmt", "reason")
    name: str  # overlay2 | fuse-overlayfs | vfs
    fmt: str  # layer format: "overlay" or "vfs"
    reason: str

    def __init__(self, name: str, fmt: str, reason: str) -> None:
        self.name = name
        self.fmt = fmt
        self.reason = reason


def fmt_of(name: str) -> str:
    return "vfs" if name == "vfs" else "overlay"


def choose(config, *, probe_cache: bool = True) -> Choice:
    """The driver for this config: the configured one (checked), else the automatic choice."""
    wanted = config.storage_driver
    if wanted:
        ok, why = _usable(wanted, config.data_root, probe_cache)
        if not ok:
            raise RootlessError(
                f"use storage driver `{wanted}`: {why}",
                "remove `storage-driver` from daemon.toml to choose automatically, or fix the cause",
            )
        return Choice(wanted, fmt_of(wanted), "set by storage-driver in the configuration")
    reasons = []
    for name in ("overlay2", "fuse-overlayfs"):
        ok, why = _usable(name, config.data_root, probe_cache)
        if ok:
            tail = f" ({'; '.join(reasons)})" if reasons else ""
            return Choice(name, fmt_of(name), f"{why}{tail}")
        reasons.append(f"{name}: {why}")
    return Choice("vfs", "vfs", "fallback, a plain copy (" + "; ".join(reasons) + ")")


def _usable(name: str, data_root: str, probe_cache: bool):
    if name == "vfs":
        return True, "a plain copy"
    if name == "fuse-overlayfs":
        if tools.which("fuse-overlayfs") is None:
            return False, "fuse-overlayfs not found (apt-get install fuse-overlayfs)"
        if not _dev_usable("/dev/fuse"):
            return False, "/dev/fuse is not usable by this user"
        return True, "fuse-overlayfs found and /dev/fuse usable"
    if name == "overlay2":
        return probe_overlay(data_root, use_cache=probe_cache)
    return False, f"unknown storage driver `{name}`"


def _dev_usable(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _cache_path(data_root: str) -> str:
    return os.path.join(data_root, "storage-probe.json")


def probe_overlay(data_root: str, use_cache: bool = True):
    """Mount a tiny overlay (userxattr) in a new user namespace on data-root's filesystem."""
    key = f"{PROBE_VERSION}:{os.uname().release}:{_fs_id(data_root)}"  # os.uname: `platform` costs an import on `run`
    cache = _cache_path(data_root)
    if use_cache:
        try:
            with open(cache) as f:
                c = json.load(f)
            if c.get("key") == key:
                return bool(c["ok"]), str(c["why"])
        except (OSError, ValueError, KeyError):
            pass
    ok, why = _probe_overlay_now(data_root)
    try:
        os.makedirs(data_root, mode=0o700, exist_ok=True)
        paths.atomic_write(cache, json.dumps({"key": key, "ok": ok, "why": why}).encode())
    except OSError:
        pass
    return ok, why


def _fs_id(path: str) -> str:
    p = path
    while p and not os.path.exists(p):
        p = os.path.dirname(p)
    try:
        return str(os.stat(p or "/").st_dev)
    except OSError:
        return "?"


def _probe_overlay_now(data_root: str):
    if tools.which("unshare") is None:
        return False, "cannot probe: util-linux `unshare` not found"
    base = data_root
    while base and not os.path.isdir(base):
        base = os.path.dirname(base)
    import tempfile

    try:
        tmp = tempfile.mkdtemp(prefix=".overlay-probe-", dir=base or None)
    except OSError as e:
        return False, f"cannot probe in `{base}`: {e.strerror}"
    try:
        for d in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, d))
        with open(os.path.join(tmp, "lower", "f"), "w") as f:
            f.write("x")
        opts = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work,userxattr"
        script = f'mount -t overlay overlay -o "{opts}" "{tmp}/merged" && echo y > "{tmp}/merged/g" && rm "{tmp}/merged/f"'
        try:
            tools.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], timeout=10)
        except RootlessError as e:
            msg = e.message.split(": ", 2)[-1] if ": " in e.message else e.message
            return False, f"kernel overlay in a user namespace failed here ({msg})"
        if not os.path.exists(os.path.join(tmp, "upper", "g")):
            return False, "kernel overlay in a user namespace did not write its upper layer"
        return True, "kernel overlay works in a user namespace (probed)"
    finally:
        _rmtree_userns(tmp)


def _rmtree_userns(path: str) -> None:
    import shutil

    # overlay leaves work/work mode 000 (owned by us under the single-uid map): open it up first.
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            try:
                os.chmod(os.path.join(dirpath, d), 0o700, follow_symlinks=False)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)


def describe(config) -> Optional[str]:
    try:
        c = choose(config)
    except RootlessError as e:
        return f"error: {e.message}"
    return f"{c.name} ({c.reason})"
