"""The store of unpacked image layers, shared by every image and container that uses them.

Layout (docker's and containers/storage's names, under ``data_root``):

- ``overlay/layers/<hex>/diff``: one layer's diff, whiteouts in overlay form (the overlay2 and
  fuse-overlayfs drivers mount these as lowerdirs).
- ``vfs/layers/<hex>/``: a complete root filesystem: a copy of the parent layer's tree with this
  layer applied, as docker's vfs driver keeps them.
- ``<fmt>/layers-meta/<hex>.json``: parent, layer digest, size and unpack notes.

``<hex>`` is the layer's chain id (``sha256:<hex>``; the OCI chain id of the layer and all below
it), so two images that share their bottom layers share those directories.

Atomicity: a layer is unpacked into ``layers/.tmp-<hex>-<pid>`` and renamed to ``layers/<hex>``
only once complete, under a per-layer lock; ``exists()`` only accepts the final name. A kill -9
(pdeathsig takes the unpacking child with it) leaves a ``.tmp-`` directory, removed by the next
``create()`` of that layer. Removal renames first (``.del-<hex>-<pid>``), so a half-removed layer
is never seen either.

Files in a layer belong to the user's subordinate ids, so unpacking, copying, measuring and
removing all run as root of a user namespace with the user's mapping (runtime.userns).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from dataclasses import dataclass
from typing import List, Optional, Tuple

from rootless import idmap, paths
from rootless.errors import ImageError, RootlessError
from rootless.idmap import UserIds
from rootless.image import unpack as _unpack

FORMATS = ("overlay", "vfs")
_CHAIN_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_LEFTOVER_RE = re.compile(r"^\.(tmp|del)-([0-9a-f]{64})-([0-9]+)$")


@dataclass(frozen=True)
class LayerInfo:
    """What ``create()`` did: the unpack counts and notes (None when the layer already existed)."""

    chain_id: str
    size: int
    entries: int
    tar_bytes: int
    seconds: float
    notes: Tuple[str, ...]
    diff_id: str = ""  # sha256 of the layer's uncompressed tar, computed while unpacking


def chain_hex(chain_id: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` chain id; ImageError for anything else."""
    m = _CHAIN_RE.match(chain_id or "")
    if not m:
        raise ImageError(
            f"use layer `{chain_id}`: not a valid chain id (want sha256:<64 hex digits>)",
            "the image metadata is corrupt; remove the image and pull it again",
        )
    return m.group(1)


class LayerStore:
    """Unpacked layers of one format (``overlay`` or ``vfs``) under ``data_root``."""

    def __init__(self, data_root: str, fmt: str, ids: Optional[UserIds] = None, max_layer_size: int = 0):
        if fmt not in FORMATS:
            raise RootlessError(f"open layer store: unknown layer format `{fmt}`", "use `overlay` or `vfs`")
        self.data_root = data_root
        self.fmt = fmt
        self.base = os.path.join(data_root, fmt, "layers")
        self.meta_dir = os.path.join(data_root, fmt, "layers-meta")
        self._ids = ids
        self.max_layer_size = max_layer_size  # bytes of uncompressed tar per layer; 0: no limit

    @property
    def ids(self) -> UserIds:
        if self._ids is None:
            self._ids = idmap.load()
        return self._ids

    # -- names ----------------------------------------------------------------------------

    def _dir(self, chain_id: str) -> str:
        return os.path.join(self.base, chain_hex(chain_id))

    def path(self, chain_id: str) -> str:
        """The directory a driver uses: ``.../layers/<hex>/diff`` (overlay) or ``.../layers/<hex>`` (vfs)."""
        d = self._dir(chain_id)
        return os.path.join(d, "diff") if self.fmt == "overlay" else d

    def exists(self, chain_id: str) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(self.path(chain_id)).st_mode)
        except OSError:
            return False

    def list(self) -> List[str]:
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return []
        out = []
        for n in sorted(names):
            if _HEX_RE.match(n) and self.exists("sha256:" + n):
                out.append("sha256:" + n)
        return out

    def meta(self, chain_id: str) -> dict:
        try:
            with open(os.path.join(self.meta_dir, chain_hex(chain_id) + ".json"), "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return {}

    def size(self, chain_id: str) -> int:
        """Bytes of file data in the layer's directory (for vfs: the whole rootfs), each inode once."""
        if not self.exists(chain_id):
            raise ImageError(f"measure layer `{chain_id}`: not in the layer store", "pull the image again")
        m = self.meta(chain_id)
        if isinstance(m.get("size"), int):
            return int(m["size"])
        from rootless import answer
        from rootless.runtime.userns import run_in_userns

        return run_in_userns(_measure, self.path(chain_id), ids=self.ids, schema=answer.count)

    # -- create -----------------------------------------------------------------------------

    def create(self, chain_id: str, parent_chain_id: Optional[str], layer_file: str, media_type: str,
               layer_digest: str, ids: Optional[UserIds] = None,
               expect_diff_id: Optional[str] = None) -> Optional[LayerInfo]:
        """Unpack ``layer_file`` as layer ``chain_id`` on top of ``parent_chain_id``.

        Idempotent (returns None when the layer is already there) and atomic. Returns what the
        unpack did, including notes to show the user (skipped device nodes, squashed ids...).
        """
        import time

        hexd = chain_hex(chain_id)
        ids = ids or self.ids
        parent_path: Optional[str] = None
        if parent_chain_id:
            if not self.exists(parent_chain_id):
                raise ImageError(
                    f"unpack layer `{layer_digest}`: its parent layer `{parent_chain_id}` is not in the store",
                    "pull the image again: layers are unpacked bottom first",
                )
            parent_path = self.path(parent_chain_id)
        if self.exists(chain_id):
            return None
        compression = _unpack.compression_of(media_type)  # refuse unknown media types before any work
        del compression
        os.makedirs(self.base, mode=0o700, exist_ok=True)
        os.makedirs(self.meta_dir, mode=0o700, exist_ok=True)
        with _Lock(os.path.join(self.base, f".lock-{hexd}")):
            if self.exists(chain_id):
                return None
            stale = self._stale(hexd)
            tmp = os.path.join(self.base, f".tmp-{hexd}-{os.getpid()}")
            maps_u, maps_g = ids.uid_mappings(), ids.gid_mappings()
            t0 = time.monotonic()
            from rootless import answer
            from rootless.runtime.userns import run_in_userns

            res, size = run_in_userns(
                _build, tmp, self.fmt, parent_path, layer_file, media_type, layer_digest,
                idmap.max_id(maps_u), idmap.max_id(maps_g), stale, self.max_layer_size, expect_diff_id or "",
                ids=ids, schema=_build_result,
            )
            seconds = time.monotonic() - t0
            if expect_diff_id and res.diff_id != expect_diff_id:
                # the child removed its directory; the caller raises with the image's name
                return LayerInfo(chain_id, -1, res.entries, res.tar_bytes, seconds, res.notes, res.diff_id)
            meta = {
                "chain_id": chain_id,
                "parent": parent_chain_id or "",
                "digest": layer_digest,
                "media_type": media_type,
                "size": size,
                "notes": list(res.notes),
            }
            paths.atomic_write(os.path.join(self.meta_dir, hexd + ".json"),
                               json.dumps(meta, sort_keys=True).encode(), 0o600)
            final = self._dir(chain_id)
            try:
                os.rename(tmp, final)
            except OSError as e:
                run_in_userns(_remove_all, [tmp], ids=ids, schema=answer.none)
                if self.exists(chain_id):
                    return None
                raise ImageError(f"store layer `{layer_digest}` at `{final}`: {e.strerror}",
                                 "check the permissions of the data-root")
            paths.fsync_dir(self.base)
        return LayerInfo(chain_id, size, res.entries, res.tar_bytes, seconds, res.notes, res.diff_id)

    def _stale(self, hexd: str) -> List[str]:
        """Leftovers of killed unpacks of this layer (we hold its lock), and of killed removals."""
        out = []
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return out
        for n in names:
            if n.startswith(f".tmp-{hexd}-"):
                out.append(os.path.join(self.base, n))
            elif n.startswith(".del-") and not _pid_alive(n.rsplit("-", 1)[-1]):
                out.append(os.path.join(self.base, n))
        return out

    def sweep(self) -> int:
        """Remove what killed unpacks and removals left in this store; returns how many.

        Only our own names (``.tmp-<hex>-<pid>``, ``.del-<hex>-<pid>``) directly in this store's
        ``layers`` folder. A ``.tmp-`` one goes only while we hold its layer's lock without
        waiting: a live unpack holds that lock (and its child inherits it) for as long as it
        writes, and the kernel drops it when a kill -9 ends them. A ``.del-`` one goes when its
        process is gone, as in ``create()``."""
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return 0
        by_hex: dict = {}
        dels = []
        for n in names:
            m = _LEFTOVER_RE.match(n)
            if not m:
                continue
            if m.group(1) == "tmp":
                by_hex.setdefault(m.group(2), []).append(n)
            elif not _pid_alive(m.group(3)):
                dels.append(n)
        if not by_hex and not dels:
            return 0
        held: List[int] = []
        targets = [os.path.join(self.base, n) for n in dels]
        try:
            for hexd, tmps in sorted(by_hex.items()):
                fd = os.open(os.path.join(self.base, f".lock-{hexd}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)  # an unpack of this layer is running: its .tmp- is alive
                    continue
                held.append(fd)
                targets += [os.path.join(self.base, n) for n in tmps]
            if targets:
                from rootless import answer
                from rootless.runtime.userns import run_in_userns

                run_in_userns(_remove_all, targets, ids=self.ids, schema=answer.none)
        finally:
            for fd in held:
                os.close(fd)
        return len(targets)

    # -- remove -----------------------------------------------------------------------------

    def remove(self, chain_id: str) -> None:
        """Remove a layer (absent is fine). Callers make sure no image or container uses it."""
        hexd = chain_hex(chain_id)
        final = self._dir(chain_id)
        gone = os.path.join(self.base, f".del-{hexd}-{os.getpid()}")
        try:
            os.rename(final, gone)
        except FileNotFoundError:
            gone = ""
        except OSError as e:
            raise RootlessError(f"remove layer `{chain_id}`: {e.strerror}", "check the permissions of the data-root")
        try:
            os.unlink(os.path.join(self.meta_dir, hexd + ".json"))
        except FileNotFoundError:
            pass
        if gone:
            from rootless import answer
            from rootless.runtime.userns import run_in_userns

            run_in_userns(_remove_all, [gone], ids=self.ids, schema=answer.none)
        # The lock file stays: unlinking it could let two creators lock different inodes.


class _Lock:
    """An exclusive flock on a file, held for the ``with`` block (released by the kernel on kill)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def _pid_alive(text: str) -> bool:
    try:
        os.kill(int(text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


# -- functions run as root of the user namespace (module-level: run_in_userns needs them so) ----
# They handle a registry's content: what they return travels back as JSON and is checked here.

MAX_NOTES = 64  # notes of one unpack sent back (real ones: a handful of kinds, 3 examples each)
MAX_NOTE = 1024  # characters of one note (its examples are paths from the layer)
_DIFF_ID_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


def _build_answer(res: _unpack.UnpackResult, size: int) -> dict:
    """The child's side of ``_build_result``: the unpack's counts and its notes, cut to size."""
    notes = [n if len(n) <= MAX_NOTE else n[:MAX_NOTE - 3] + "..." for n in res.notes[:MAX_NOTES]]
    return {"entries": res.entries, "data_bytes": res.data_bytes, "tar_bytes": res.tar_bytes,
            "notes": notes, "diff_id": res.diff_id, "size": size}


def _build_result(v: object) -> Tuple[_unpack.UnpackResult, int]:
    """``_build``'s answer, checked: (what the unpack did, the layer's size or -1)."""
    from rootless import answer

    if not isinstance(v, dict) or set(v) != {"entries", "data_bytes", "tar_bytes", "notes", "diff_id", "size"}:
        raise ValueError("unpack result: wrong keys")
    size = v["size"]
    if type(size) is not int or size < -1:
        raise ValueError("unpack result: size")
    notes = v["notes"]
    if not isinstance(notes, list) or len(notes) > MAX_NOTES:
        raise ValueError("unpack result: notes")
    clean = tuple(answer.text(n, "note")[:MAX_NOTE] for n in notes)
    diff_id = v["diff_id"]
    if not isinstance(diff_id, str) or not _DIFF_ID_RE.match(diff_id):
        raise ValueError("unpack result: diff_id")
    res = _unpack.UnpackResult(answer.count(v["entries"]), answer.count(v["data_bytes"]),
                               answer.count(v["tar_bytes"]), clean, diff_id)
    return res, size



def _remove_all(targets: List[str]) -> None:
    for t in targets:
        _unpack.rmtree(t)


def _measure(path: str) -> int:
    return _unpack.tree_size(path)


def _build(tmp: str, fmt: str, parent_path: Optional[str], layer_file: str, media_type: str,
           layer_digest: str, max_uid: int, max_gid: int, stale: List[str],
           max_size: int = 0, expect_diff_id: str = "") -> dict:
    """Make ``tmp`` (the layer's future directory) and unpack into it; on error remove it.

    Returns ``_build_answer(result, size)``; size -1 when the diff_id was not the expected one."""
    _remove_all(stale + [tmp])
    try:
        if fmt == "overlay":
            os.mkdir(tmp, 0o700)
            dest = os.path.join(tmp, "diff")
            os.mkdir(dest, 0o755)
        else:
            dest = tmp
            if parent_path:
                _copy_tree(parent_path, tmp)
            else:
                os.mkdir(tmp, 0o755)
        res = _unpack.unpack(layer_file, media_type, dest, "overlay" if fmt == "overlay" else "vfs",
                             layer_digest, chown=True, max_uid=max_uid, max_gid=max_gid, max_size=max_size)
        if expect_diff_id and res.diff_id != expect_diff_id:
            # not kept: the caller reports the mismatch (it knows the image's name)
            _unpack.rmtree(tmp)
            return _build_answer(res, -1)
        return _build_answer(res, _unpack.tree_size(dest))
    except BaseException:
        _unpack.rmtree(tmp)
        raise


def _copy_tree(src: str, dst: str) -> None:
    """vfs: ``dst`` becomes a copy of ``src`` with owners, modes, times, links and xattrs (cp -a)."""
    from rootless import tools

    tools.run(["cp", "-a", "--reflink=auto", "--", src, dst], timeout=None,
              what=f"copy layer `{src}` to `{dst}`",
              hint="check free disk space; the vfs driver keeps a full copy of the image per layer")
