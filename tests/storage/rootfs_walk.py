"""Walk a root filesystem into a comparable manifest, and compare two manifests.

Shared by tests/storage/test_layers.py (rootless's rootfs against the fixtures' model and GNU tar)
and tests/storage/test_rootfs_podman.py (against Podman's). Standard library only: it also runs as
a script inside `podman unshare`, where it prints the manifest of a directory as JSON:

    python3 rootfs_walk.py DIR      ->  {"/path": [type, mode, uid, gid, ...], ...}

Owners are the ids as seen by the walking process: walk inside the user namespace (as root of
it) to get container-side ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from typing import Dict, List, Tuple

# The fields of one manifest entry, in order (describe's tuples; diff_trees names them).
FIELDS = ("type", "mode", "uid", "gid", "size", "target", "sha256", "mtime_ns", "xattrs", "links")


def describe(root: str) -> Dict[str, tuple]:
    """{"/path": (type, mode, uid, gid, size, target, sha256, mtime_ns, xattrs, link_group)}."""
    out: Dict[str, tuple] = {}
    work: Dict[str, list] = {}
    inodes: Dict[Tuple[int, int], List[str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = "/" + os.path.relpath(p, root)
            st = os.lstat(p)
            mode = st.st_mode
            kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "symlink" if stat.S_ISLNK(mode)
                    else "fifo" if stat.S_ISFIFO(mode) else "char" if stat.S_ISCHR(mode) else "other")
            target = os.readlink(p) if kind == "symlink" else None
            digest = None
            if kind == "file":
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            xattrs: Tuple[Tuple[str, bytes], ...] = ()
            if kind != "symlink":
                xattrs = tuple(sorted((k, os.getxattr(p, k, follow_symlinks=False))
                                      for k in os.listxattr(p, follow_symlinks=False) if k.startswith("user.")))
            size = st.st_size if kind == "file" else None
            work[rel] = [kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, size, target, digest, st.st_mtime_ns, xattrs]
            if kind != "dir":
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
    for group in inodes.values():
        links = tuple(sorted(group)) if len(group) > 1 else ()
        for rel in group:
            work[rel].append(links)
    for rel, v in work.items():
        if len(v) == 9:
            v.append(())
        out[rel] = tuple(v)
    return out


def describe_overlay(lowers_top_first: List[str], mnt: str, use_fuse: bool) -> Dict[str, tuple]:
    """Mount the layers read-only (kernel overlayfs with userxattr, or fuse-overlayfs) and describe."""
    from rootless import tools
    from rootless.linux import syscalls

    os.makedirs(mnt, exist_ok=True)
    lower = ":".join(lowers_top_first)
    if use_fuse:
        tools.run(["fuse-overlayfs", "-o", f"lowerdir={lower}", mnt], timeout=30)
    else:
        syscalls.mount("overlay", mnt, "overlay", 0, f"lowerdir={lower},userxattr")
    try:
        return describe(mnt)
    finally:
        syscalls.umount2(mnt, 2)  # MNT_DETACH


def describe_plan(plan, path: str = "/") -> Dict[str, tuple]:
    """In a new user + mount namespace (run_in_userns): apply a storage driver's rootfs plan as the
    runtime does, chroot into it and describe ``path`` (a stopped container's root, as cp sees it)."""
    import signal

    from rootless.runtime import stage1

    helpers = []
    stage1.apply_plan(plan, helpers.append)
    try:
        os.chdir(plan.rootfs)
        os.chroot(".")
        return describe(path)
    finally:
        for pid in helpers:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


# --- JSON (the manifest crosses `podman unshare` as text, and run_in_userns answers JSON only) -------------------------------------------

def to_json(tree: Dict[str, tuple]) -> str:
    """xattr values (bytes) as hex; everything else is JSON already."""
    out = {}
    for path, v in tree.items():
        e = list(v)
        e[8] = [[k, val.hex()] for k, val in e[8]]
        e[9] = list(e[9])
        out[path] = e
    return json.dumps(out, sort_keys=True)


def from_json(text: str) -> Dict[str, tuple]:
    """The inverse of to_json: the same tuples describe() returns."""
    out: Dict[str, tuple] = {}
    for path, e in json.loads(text).items():
        e[8] = tuple((k, bytes.fromhex(val)) for k, val in e[8])
        e[9] = tuple(e[9])
        out[path] = tuple(e)
    return out


def describe_json(root: str) -> str:
    """describe(), sent back by run_in_userns (its answer is JSON): read it with from_json."""
    return to_json(describe(root))


def describe_overlay_json(lowers_top_first: List[str], mnt: str, use_fuse: bool) -> str:
    return to_json(describe_overlay(lowers_top_first, mnt, use_fuse))


def describe_plan_json(plan, path: str = "/") -> str:
    return to_json(describe_plan(plan, path))


# --- comparing ---------------------------------------------------------------------------------------

def diff_trees(a: Dict[str, tuple], b: Dict[str, tuple], a_name: str = "a", b_name: str = "b") -> List[str]:
    """One readable line per differing field (or missing path); [] when equal."""
    out: List[str] = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x is None:
            out.append(f"{path}: only in {b_name} ({y[0]})")  # type: ignore[index]
        elif y is None:
            out.append(f"{path}: only in {a_name} ({x[0]})")
        elif x != y:
            for name, u, v in zip(FIELDS, x, y):
                if u != v:
                    if name == "mode":
                        u, v = oct(u), oct(v)
                    out.append(f"{path}: {name}: {a_name} {u!r} != {b_name} {v!r}")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: rootfs_walk.py DIR")
    sys.stdout.write(to_json(describe(sys.argv[1])) + "\n")
