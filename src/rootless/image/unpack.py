"""Layer extraction that cannot escape its root; OCI whiteouts to overlay ones.

The unpacker reads a layer tar as a stream (decompressing gzip or zstd on the way) and writes it
below ``dest``. It is meant to run as root of a user namespace that maps the user's subordinate ids
(``storage.layers`` arranges that), so ``chown`` gives files the image's owners.

Why it cannot write outside ``dest`` (CVE-2018-15664, CVE-2019-14271, CVE-2021-30465 are the
classic escapes of container unpackers):

- Entry names are cleaned as docker does (leading ``/`` stripped) and any ``..`` component is
  refused before a path is built.
- Paths are never resolved by the kernel from ``dest``: every parent directory is opened one
  component at a time, relative to the previous one, with ``O_NOFOLLOW``; a symlink (or any
  non-directory) where a parent must be is refused. So a symlink planted by an earlier entry, or a
  directory replaced by a symlink, can never redirect a later write.
- The final component is created with ``*at`` calls on the parent's fd: files with
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` after unlinking what was there, links with ``linkat`` without
  ``AT_SYMLINK_FOLLOW`` (a hardlink to a symlink links the symlink itself, never what it points
  to), metadata through the new file's own fd or with ``AT_SYMLINK_NOFOLLOW``.
- Symlink targets are data, resolved later inside the container; like docker we still refuse a
  relative target that climbs above the layer root (``../../etc``).

Formats: ``overlay`` keeps a layer as a diff (OCI whiteouts become overlay whiteouts: a 0:0 char
device per deleted name, ``user.overlay.opaque=y`` on opaque dirs; kernel overlayfs mounted with
``userxattr`` and fuse-overlayfs >= 1.8 both read that), ``vfs`` applies the layer onto a copy of
its parent for real (deletes whited-out names, empties opaque dirs of lower content).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Dict, Iterator, List, Optional, Set, Tuple

from rootless.errors import ImageError

OVERLAY = "overlay"
VFS = "vfs"
FORMATS = (OVERLAY, VFS)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"

# What overlayfs in a user namespace (mount option userxattr, Linux >= 5.11) and fuse-overlayfs
# (>= 1.8: "honor user.overlay. xattrs") read to mark a directory opaque.
OPAQUE_XATTR = "user.overlay.opaque"
# The xattr whiteout form (Linux >= 6.7): an empty regular file carrying this xattr, in a directory
# whose opaque xattr is "x". Only used when mknod of a 0:0 char device is refused.
XWHITEOUT_XATTR = "user.overlay.whiteout"

# Xattrs a layer may not set: they steer overlayfs / fuse-overlayfs (redirects, metacopy, opaque,
# owner overrides) and would let a layer change what other layers show.
_RESERVED_XATTR_PREFIXES = ("user.overlay.", "user.fuseoverlayfs.", "user.containers.")

LAYER_MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar": "none",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_PATHDIR = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class UnpackResult:
    """What an unpack did: entries read, bytes of file data written, and notes for the user."""

    entries: int
    data_bytes: int
    tar_bytes: int
    notes: Tuple[str, ...] = ()
    diff_id: str = ""  # sha256 of the whole uncompressed tar stream


@dataclass
class _Notes:
    seen: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, kind: str, example: str = "") -> None:
        lst = self.seen.setdefault(kind, [])
        if example and len(lst) < 3 and example not in lst:
            lst.append(example)

    def render(self) -> Tuple[str, ...]:
        out = []
        for kind, examples in self.seen.items():
            out.append(kind + (f" (e.g. {', '.join(examples)})" if examples else ""))
        return tuple(out)


def compression_of(media_type: str) -> str:
    """"none", "gzip" or "zstd" for a layer media type; ImageError for anything else."""
    comp = LAYER_MEDIA_TYPES.get(media_type)
    if comp is None:
        raise ImageError(
            f"unpack layer: unsupported layer media type `{media_type}`",
            "this engine unpacks tar, tar+gzip and tar+zstd layers (OCI and docker media types)",
        )
    return comp


class _Forward:
    """A read-only stream that tarfile may treat as seekable: ``seek`` only moves forward (by
    reading). tarfile's own stream mode ("r|") copies its whole buffer on every 512-byte header
    read, which made layers of small files several times slower; "r:" over this does not.
    Also counts the bytes read (the size of the tar, for the unpack rate)."""

    def __init__(self, raw: IO[bytes], limit: int = 0, layer_digest: str = ""):
        self.raw = raw
        self.buf = b""
        self.off = 0
        self.pos = 0
        self.limit = limit  # max-layer-size: bytes of tar we accept (0: no limit)
        self.layer_digest = layer_digest
        import hashlib

        self.hasher = hashlib.sha256()  # the diff_id, as the tar goes by
        self.raw_count = 0

    @property
    def count(self) -> int:
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.pos
        elif whence != 0:
            raise io.UnsupportedOperation("a layer stream cannot seek from its end")
        if offset < self.pos:
            raise io.UnsupportedOperation("a layer stream cannot seek backwards")
        while offset > self.pos:
            if not self.read(min(offset - self.pos, _CHUNK)):
                break
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        avail = len(self.buf) - self.off
        if size <= avail:
            out = self.buf[self.off:self.off + size]
            self.off += size
            self.pos += size
            return out
        parts = [self.buf[self.off:]] if avail else []
        need = size - avail
        self.buf, self.off = b"", 0
        while need > 0:
            chunk = self.raw.read(min(max(need, _CHUNK), 16 * _CHUNK))
            if not chunk:
                break
            # every byte of the stream passes here once: count it, hash it (the diff_id)
            self.raw_count += len(chunk)
            if self.limit and self.raw_count > self.limit:
                raise layer_too_big(self.layer_digest, self.limit)
            self.hasher.update(chunk)
            if len(chunk) > need:
                parts.append(chunk[:need])
                self.buf, self.off = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        out = b"".join(parts) if len(parts) != 1 else parts[0]
        self.pos += len(out)
        return out


# Inflate in bounded steps: a 2 MB gzip member of zeros inflates to 2 GiB, and zlib's
# ``decompress(data)`` without ``max_length`` returns all of it at once (the issue 11 bomb).
_IN_CHUNK = 1 << 16  # small: zlib copies the unused input (unconsumed_tail) at every call
# Tar metadata tarfile reads whole into memory (PAX headers, GNU long names) is capped; real ones
# are a few hundred bytes (xattrs make them a few KiB).
MAX_TAR_META = 1 << 20
MAX_GLOBAL_PAX_KEYS = 1024


class LayerTooBig(ImageError):
    """A layer whose uncompressed tar is larger than ``max-layer-size`` allows."""


def layer_too_big(layer_digest: str, limit: int) -> ImageError:
    """The error for a layer whose uncompressed tar is larger than ``max-layer-size`` allows."""
    return LayerTooBig(
        f"unpack layer `{layer_digest}`: uncompressed size exceeds max-layer-size ({_human(limit)})",
        "the layer may be a decompression bomb; if you trust the image, raise `max-layer-size` in "
        "daemon.toml (e.g. max-layer-size = \"200g\", or 0 for no limit) and pull again")


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def inflate_gzip(read, out_max: int = _CHUNK) -> Iterator[bytes]:
    """The inflated bytes of the gzip stream ``read(n)`` returns, in pieces of at most ``out_max``.

    Memory is bounded (``max_length``; the input zlib has not used yet is kept as its
    ``unconsumed_tail``, never re-sliced) and time linear. Members are concatenated, zero padding
    after the last member is accepted, and each member's CRC is checked (zlib does)."""
    d = zlib.decompressobj(31)
    started = False
    while True:
        data = read(_IN_CHUNK)
        if not data:
            break
        while True:
            if d.eof:
                if not data.strip(b"\0"):
                    break  # zero padding after the last member, as gzip allows
                d = zlib.decompressobj(31)
            out = d.decompress(data, out_max)
            started = True
            if out:
                yield out
            if d.eof:
                data = d.unused_data
                if not data:
                    break
            else:
                data = d.unconsumed_tail
                # an output piece of full size may leave more output inside zlib: ask again
                if not data and len(out) < out_max:
                    break
    if started and not d.eof:
        raise OSError("gzip data ended before the end-of-stream marker")


class _ThreadedInflate(io.RawIOBase):
    """gzip decompression in a second thread (zlib releases the GIL while it inflates), so that
    inflating overlaps with writing files: measured ~1.4x faster than gzip.GzipFile on 2 cores,
    and faster than piping through the host's gzip. Memory is bounded: pieces of at most 1 MiB,
    at most 16 of them queued; a read hands out views of the current piece, never re-slicing a
    growing buffer."""

    def __init__(self, raw: IO[bytes]):
        import queue
        import threading

        self.raw = raw
        self.q: queue.Queue = queue.Queue(maxsize=16)
        self.cur = b""
        self.off = 0
        self.done = False
        self.stop = False
        self.t = threading.Thread(target=self._run, name="inflate", daemon=True)
        self.t.start()

    def _run(self) -> None:
        try:
            for out in inflate_gzip(self.raw.read):
                if self.stop:
                    return
                self.q.put(out)
            self.q.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            self.q.put(e)

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        if self.done:
            return False
        item = self.q.get()
        if item is None:
            self.done = True
            return False
        if isinstance(item, BaseException):
            self.done = True
            if isinstance(item, zlib.error):
                raise OSError(f"bad gzip data: {item}")
            raise item
        self.cur, self.off = item, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        parts = []
        need = size
        while need > 0:
            avail = len(self.cur) - self.off
            if avail == 0:
                if not self._next():
                    break
                continue
            if need >= avail:
                parts.append(self.cur if self.off == 0 else self.cur[self.off:])
                self.cur, self.off = b"", 0
                need -= avail
            else:
                parts.append(self.cur[self.off:self.off + need])
                self.off += need
                need = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stop = True
        while self.t.is_alive():
            try:
                self.q.get(timeout=0.05)
            except Exception:  # noqa: BLE001 - queue.Empty
                pass
        super().close()


class _LayerStream:
    """The decompressed tar stream of a layer file; closes (and checks) what it opened."""

    def __init__(self, layer_file: str, media_type: str, layer_digest: str):
        self.layer_file = layer_file
        self.media_type = media_type
        self.layer_digest = layer_digest
        self._raw: Optional[IO[bytes]] = None
        self._dec: Optional[IO[bytes]] = None
        self._proc = None
        self._tool = ""

    def open(self) -> IO[bytes]:
        compression_of(self.media_type)  # refuses unknown media types
        raw = open(self.layer_file, "rb", buffering=_CHUNK)
        self._raw = raw
        magic = raw.peek(4)[:4]  # peek, not seek: the layer may come from a pipe
        # Like docker and containers/storage, trust the bytes over the media type: some registries
        # and tools label compressed layers wrongly.
        if magic.startswith(_GZIP_MAGIC):
            comp = "gzip"
        elif magic == _ZSTD_MAGIC:
            comp = "zstd"
        else:
            comp = "none"
        if comp == "gzip":
            self._dec = self._open_gzip(raw)
        elif comp == "zstd":
            self._dec = self._open_zstd(raw)
        else:
            self._dec = raw
        return self._dec  # type: ignore[return-value]

    def _open_gzip(self, raw: IO[bytes]) -> IO[bytes]:
        return _ThreadedInflate(raw)  # type: ignore[return-value]

    def _spawn(self, raw: IO[bytes], tool: str) -> IO[bytes]:
        import subprocess

        from rootless import tools

        self._proc = tools.spawn([tool, "-d", "-c", "-q", "--", self.layer_file], stdout=subprocess.PIPE,
                                 hint="the layer file may be corrupt; remove the image and pull it again")
        self._tool = tool
        try:
            # A 1 MiB pipe (the unprivileged maximum by default) instead of 64 KiB: fewer wake-ups.
            fcntl.fcntl(self._proc.stdout.fileno(), 1031, _CHUNK)  # F_SETPIPE_SZ
        except OSError:
            pass
        raw.close()
        self._raw = None
        return self._proc.stdout  # type: ignore[no-any-return]

    def _open_zstd(self, raw: IO[bytes]) -> IO[bytes]:
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14

            return zstd.ZstdFile(raw, mode="rb")  # type: ignore[no-any-return]
        except ImportError:
            pass
        from rootless import tools

        if tools.which("zstd") is None:
            raise ImageError(
                f"unpack layer `{self.layer_digest}`: media type `{self.media_type}` needs zstd, "
                "and neither Python's compression.zstd (3.14+) nor the `zstd` tool is available",
                "install zstd (Debian/Ubuntu: `apt-get install zstd`) or run with Python 3.14 or later",
            )
        return self._spawn(raw, "zstd")

    def close(self, ok: bool) -> None:
        from rootless import tools

        proc, self._proc = self._proc, None
        try:
            if self._dec is not None and self._dec is not self._raw:
                self._dec.close()
        finally:
            if self._raw is not None:
                self._raw.close()
            if proc is not None:
                if not ok:
                    proc.kill()
                    proc.wait()
                else:
                    tools.wait_checked(proc, what=f"decompress layer `{self.layer_digest}` with {self._tool}",
                                       hint="the layer file may be corrupt; remove the image and pull it again")


def clean_name(name: str) -> Optional[Tuple[str, ...]]:
    """The components of a tar entry name, docker-style: leading ``/`` and ``.`` parts dropped.

    None when a component is ``..`` (refused, not cleaned: a well-formed layer never has one).
    """
    parts = []
    for p in name.split("/"):
        if p == "" or p == ".":
            continue
        if p == "..":
            return None
        parts.append(p)
    return tuple(parts)


def symlink_escapes(parent: Tuple[str, ...], target: str) -> bool:
    """Whether a relative symlink target climbs above the layer root from ``parent``.

    Absolute targets are resolved inside the container's root at run time, so they stay inside.
    """
    if target.startswith("/"):
        return False
    depth = len(parent)
    for p in target.split("/"):
        if p == "" or p == ".":
            continue
        if p == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def _mtime_ns(ti: tarfile.TarInfo) -> int:
    """The entry's mtime in ns; PAX times are decimal strings, parsed without float rounding."""
    s = ti.pax_headers.get("mtime")
    if s:
        neg = s.startswith("-")
        if neg:
            s = s[1:]
        whole, _, frac = s.partition(".")
        try:
            ns = int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
        except ValueError:
            ns = int(ti.mtime * 1_000_000_000)
        return -ns if neg else ns
    return int(ti.mtime) * 1_000_000_000


class _Unsafe(Exception):
    pass


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo, refusing metadata blocks (PAX headers, GNU long names) larger than
    MAX_TAR_META before tarfile reads them whole into memory: a header claiming 8 GiB would
    otherwise be read as one bytes object. Global PAX headers accumulate in one dict for the
    whole archive, so their keys are counted too."""

    def _proc_member(self, tarfile_):  # type: ignore[no-untyped-def]
        if self.type in _META_TYPES and self.size > MAX_TAR_META:
            raise _TooMuchMeta(f"a tar metadata block of {self.size} bytes (more than {MAX_TAR_META} allowed)")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _TooMuchMeta("GNU sparse entries (old format) are not supported in layers")
        out = super()._proc_member(tarfile_)  # type: ignore[misc]
        if len(tarfile_.pax_headers) > MAX_GLOBAL_PAX_KEYS:
            raise _TooMuchMeta(f"more than {MAX_GLOBAL_PAX_KEYS} global PAX header keys")
        return out

    def _proc_gnusparse_10(self, next, pax_headers, tarfile_):  # type: ignore[no-untyped-def]  # noqa: A002
        # The sparse map of format 1.0 sits in the data, a count of numbers read without bound.
        # Docker and BuildKit never write sparse entries; GNU tar does only with --sparse.
        raise _TooMuchMeta("GNU sparse entries (PAX format 1.0) are not supported in layers")


class _TooMuchMeta(Exception):
    pass


_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
               tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class Unpacker:
    """Writes one layer into ``dest`` (a directory that exists). Not thread-safe."""

    def __init__(self, dest: str, fmt: str, layer_digest: str, *, chown: Optional[bool] = None,
                 max_uid: Optional[int] = None, max_gid: Optional[int] = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown layer format {fmt!r}")
        self.dest = dest
        self.fmt = fmt
        self.digest = layer_digest
        # chown only where it can work: as root (of a user namespace, normally).
        self.chown = (os.geteuid() == 0) if chown is None else chown
        self.max_uid = max_uid
        self.max_gid = max_gid
        self.notes = _Notes()
        self.root_fd = os.open(dest, _O_DIR)
        self._dirs: Dict[Tuple[str, ...], int] = {}
        self._deferred: Dict[Tuple[str, ...], Tuple[int, int, int, int]] = {}
        # What this layer wrote: only vfs reads it (an opaque dir keeps these, drops the rest),
        # so overlay does not keep it; memory then grows with directories, not with entries.
        self._unpacked: Set[Tuple[str, ...]] = set()
        self._xwhiteout_dirs: Set[Tuple[str, ...]] = set()
        self._skipped: Set[Tuple[str, ...]] = set()  # device nodes not created
        self.entries = 0
        self.data_bytes = 0
        self._whiteout_fallback: Optional[str] = None
        if not self.chown:
            self.notes.add("not root in a user namespace: files belong to you, image owners are not kept")

    def _mark(self, parts: Tuple[str, ...]) -> None:
        if self.fmt == VFS:
            self._unpacked.add(parts)

    # -- fd bookkeeping ---------------------------------------------------------------------

    def close(self) -> None:
        self._drop_dir_cache()
        try:
            os.close(self.root_fd)
        except OSError:
            pass

    def _drop_dir_cache(self) -> None:
        for fd in self._dirs.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._dirs.clear()

    def _dir_fd(self, parts: Tuple[str, ...], create: bool = True) -> int:
        """An O_PATH fd of directory ``parts`` under the root, opened without following symlinks.

        Missing directories are created (0755, like docker's MkdirAll) when ``create``."""
        if not parts:
            return self.root_fd
        fd = self._dirs.get(parts)
        if fd is not None:
            return fd
        pfd = self._dir_fd(parts[:-1], create)
        name = parts[-1]
        try:
            fd = os.open(name, _O_PATHDIR, dir_fd=pfd)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(name, 0o755, dir_fd=pfd)
            self._mark(parts)
            fd = os.open(name, _O_PATHDIR, dir_fd=pfd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise _Unsafe(f"parent `{'/'.join(parts)}` is {what}; refusing to write through it")
            raise
        self._dirs[parts] = fd
        return fd

    # -- removal ----------------------------------------------------------------------------

    def _remove(self, pfd: int, parent: Tuple[str, ...], name: str) -> bool:
        """Remove ``name`` in ``pfd`` (directory ``parent``) whatever it is. False if absent."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            gone = parent + (name,)
            n = len(gone)
            for key in [k for k in self._dirs if k[:n] == gone]:
                os.close(self._dirs.pop(key))
            rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)
        return True

    # -- ids --------------------------------------------------------------------------------

    def _ids(self, uid: int, gid: int) -> Tuple[int, int]:
        if self.max_uid is not None and uid > self.max_uid:
            self.notes.add("ids outside your subordinate id range were mapped to 0 (root) "
                           "(add a range in /etc/subuid and /etc/subgid to keep them)", f"uid {uid}")
            uid = 0
        if self.max_gid is not None and gid > self.max_gid:
            self.notes.add("ids outside your subordinate id range were mapped to 0 (root) "
                           "(add a range in /etc/subuid and /etc/subgid to keep them)", f"gid {gid}")
            gid = 0
        return uid, gid

    # -- the loop ---------------------------------------------------------------------------

    def unpack_stream(self, stream: IO[bytes]) -> None:
        try:
            tf = tarfile.open(fileobj=stream, mode="r:", errorlevel=2,  # type: ignore[call-overload]
                              tarinfo=_BoundedTarInfo)
        except _TooMuchMeta as e:
            raise ImageError(f"unpack layer `{self.digest}`: {e}",
                             "the layer is malformed or hostile; do not use the image")
        except tarfile.TarError as e:
            if str(e) == "empty file":  # a zero-byte layer holds nothing; docker accepts it too
                self._finish()
                return
            raise ImageError(f"unpack layer `{self.digest}`: not a tar archive: {e}",
                             "the layer is corrupt; remove the image and pull it again")
        name = ""
        try:
            while True:
                ti = tf.next()
                if ti is None:
                    break
                name = ti.name
                self.entries += 1
                self._entry(tf, ti)
                # tarfile keeps every member for random access we do not use: keep memory flat
                # (a layer may have millions of entries).
                tf.members.clear()
        except _TooMuchMeta as e:
            raise ImageError(f"unpack layer `{self.digest}`: after entry `{name}`: {e}",
                             "the layer is malformed or hostile; do not use the image")
        except _Unsafe as e:
            raise ImageError(f"unpack layer `{self.digest}`: entry `{name}`: {e}",
                             "the layer tries to write outside its directory; the image is malicious or "
                             "broken: do not use it, and tell its publisher")
        except (tarfile.TarError, EOFError) as e:
            raise ImageError(f"unpack layer `{self.digest}`: bad tar data near entry `{name}`: {e}",
                             "the layer is corrupt or truncated; remove the image and pull it again")
        except OSError as e:
            if e.errno is None:  # a decompression error surfaced by the stream, not a file system one
                raise ImageError(f"unpack layer `{self.digest}`: {e}" + (f" (after entry `{name}`)" if name else ""),
                                 "the layer is corrupt or truncated; remove the image and pull it again")
            raise ImageError(f"unpack layer `{self.digest}`: entry `{name}`: {e.strerror or e}",
                             "check free disk space and the permissions of the storage directory")
        self._finish()

    def _entry(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        if len(self._dirs) > 256:
            # Only here, between entries: within one, callers hold fds from the cache.
            self._drop_dir_cache()
        parts = clean_name(ti.name)
        if parts is None:
            raise _Unsafe("`..` in the path")
        if not parts:
            if ti.isdir():
                self._deferred[()] = (ti.mode & 0o7777, ti.uid, ti.gid, _mtime_ns(ti))
                return
            raise _Unsafe("a non-directory entry for the layer root")
        base = parts[-1]
        parent = parts[:-1]
        if parts[0].startswith(WHITEOUT_META_PREFIX) and parts != (WHITEOUT_OPAQUE,):
            # aufs metadata (.wh..wh.plnk/, .wh..wh.aufs): docker skips these too.
            self.notes.add("aufs metadata entries skipped", ti.name)
            return
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, ti)
            return
        if ti.ischr() or ti.isblk():
            # Rootless podman does the same: mknod of real devices is not allowed in a user
            # namespace, and the runtime bind-mounts /dev nodes anyway.
            self.notes.add("device nodes skipped (a rootless container cannot create them)", "/" + "/".join(parts))
            self._skipped.add(parts)
            return
        pfd = self._dir_fd(parent)
        self._mark(parts)
        if ti.isdir():
            self._make_dir(pfd, parts, ti)
        elif ti.isreg():
            self._make_file(tf, pfd, parts, ti)
        elif ti.issym():
            self._make_symlink(pfd, parts, ti)
        elif ti.islnk():
            self._make_hardlink(pfd, parts, ti)
        elif ti.isfifo():
            self._make_fifo(pfd, parts, ti)
        else:
            self.notes.add("entries of unknown tar types skipped", "/" + "/".join(parts))

    # -- entry kinds --------------------------------------------------------------------------

    def _make_dir(self, pfd: int, parts: Tuple[str, ...], ti: tarfile.TarInfo) -> None:
        name = parts[-1]
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):  # a directory stays (merged); anything else is replaced
                self._remove(pfd, parts[:-1], name)
                os.mkdir(name, 0o700, dir_fd=pfd)
        xattrs = self._xattrs(ti, parts)
        if xattrs:
            fd = os.open(name, _O_DIR, dir_fd=pfd)
            try:
                for k, v in xattrs:
                    self._setxattr(fd, k, v, parts)
            finally:
                os.close(fd)
        # Owner, mode and mtime at the end: writing children changes a directory's mtime, and a
        # read-only mode would stop the writes when not root.
        self._deferred[parts] = (ti.mode & 0o7777, ti.uid, ti.gid, _mtime_ns(ti))

    def _make_file(self, tf: tarfile.TarFile, pfd: int, parts: Tuple[str, ...], ti: tarfile.TarInfo) -> None:
        name = parts[-1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # Create first, remove only if something is there: one syscall less per file in the
            # common case. O_EXCL|O_NOFOLLOW never opens (or follows) what exists.
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, parts[:-1], name)
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            if ti.size:
                src = tf.extractfile(ti)
                assert src is not None
                left = ti.size
                while left > 0:
                    buf = src.read(min(left, _CHUNK))
                    if not buf:
                        raise EOFError(f"unexpected end of data in `{ti.name}`")
                    left -= len(buf)
                    view = memoryview(buf)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                self.data_bytes += ti.size
            self._fmeta(fd, ti, parts)
        finally:
            os.close(fd)

    def _fmeta(self, fd: int, ti: tarfile.TarInfo, parts: Tuple[str, ...]) -> None:
        if self.chown:
            uid, gid = self._ids(ti.uid, ti.gid)
            os.fchown(fd, uid, gid)
        # chmod after chown: chown clears setuid/setgid.
        os.fchmod(fd, ti.mode & 0o7777)
        for k, v in self._xattrs(ti, parts):
            self._setxattr(fd, k, v, parts)
        m = _mtime_ns(ti)
        os.utime(fd, ns=(m, m))

    def _make_symlink(self, pfd: int, parts: Tuple[str, ...], ti: tarfile.TarInfo) -> None:
        if symlink_escapes(parts[:-1], ti.linkname):
            raise _Unsafe(f"symlink to `{ti.linkname}` points outside the layer")
        name = parts[-1]
        try:
            os.symlink(ti.linkname, name, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, parts[:-1], name)
            os.symlink(ti.linkname, name, dir_fd=pfd)
        if self.chown:
            uid, gid = self._ids(ti.uid, ti.gid)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        if self._xattrs(ti, parts):
            self.notes.add("xattrs on symlinks skipped (the kernel refuses user.* xattrs on symlinks)",
                           "/" + "/".join(parts))
        m = _mtime_ns(ti)
        os.utime(name, ns=(m, m), dir_fd=pfd, follow_symlinks=False)

    def _make_hardlink(self, pfd: int, parts: Tuple[str, ...], ti: tarfile.TarInfo) -> None:
        tparts = clean_name(ti.linkname)
        if tparts is None:
            raise _Unsafe(f"hardlink to `{ti.linkname}`: `..` in the target")
        if not tparts:
            raise _Unsafe(f"hardlink to `{ti.linkname}`: the target is the layer root")
        if tparts == parts:
            return
        if tparts in self._skipped:
            self.notes.add("device nodes skipped (a rootless container cannot create them)", "/" + "/".join(parts))
            self._skipped.add(parts)
            return
        try:
            tpfd = self._dir_fd(tparts[:-1], create=False)
            tst = os.stat(tparts[-1], dir_fd=tpfd, follow_symlinks=False)
        except FileNotFoundError:
            raise _Unsafe(f"hardlink to `{ti.linkname}`: the target is not in the layer")
        if stat.S_ISDIR(tst.st_mode):
            raise _Unsafe(f"hardlink to `{ti.linkname}`: the target is a directory")
        name = parts[-1]
        self._remove(pfd, parts[:-1], name)
        # linkat without AT_SYMLINK_FOLLOW: a link to a symlink is a link to the symlink itself.
        os.link(tparts[-1], name, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        # Docker and Podman apply a link entry's own owner, mode, mtime and xattrs to the shared
        # inode (moby pkg/archive createTarFile: Lchown, then handleLChmod and Chtimes for a
        # TypeLink whose target is not a symlink); GNU tar ignores them. We do as docker does, so
        # that the rootfs is the same as theirs. Real tar writers repeat the target's anyway.
        if stat.S_ISLNK(tst.st_mode):
            if self.chown:
                uid, gid = self._ids(ti.uid, ti.gid)
                os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if stat.S_ISFIFO(tst.st_mode) else 0)
        fd = os.open(name, flags, dir_fd=pfd)
        try:
            self._fmeta(fd, ti, parts)
        finally:
            os.close(fd)

    def _make_fifo(self, pfd: int, parts: Tuple[str, ...], ti: tarfile.TarInfo) -> None:
        name = parts[-1]
        self._remove(pfd, parts[:-1], name)
        os.mkfifo(name, 0o600, dir_fd=pfd)
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._fmeta(fd, ti, parts)
        finally:
            os.close(fd)

    # -- whiteouts ----------------------------------------------------------------------------

    def _whiteout(self, parent: Tuple[str, ...], base: str, ti: tarfile.TarInfo) -> None:
        if base == WHITEOUT_OPAQUE:
            if self.fmt == OVERLAY:
                self._dir_fd(parent)
                self._mark(parent)
                fd = self._open_dir(parent)
                try:
                    os.setxattr(fd, OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
            else:
                try:
                    self._dir_fd(parent, create=False)
                except FileNotFoundError:
                    return
                self._empty_lower(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): docker skips these too.
            self.notes.add("aufs metadata entries skipped", ti.name)
            return
        target = base[len(WHITEOUT_PREFIX):]
        if not target or target in (".", ".."):
            raise _Unsafe("a whiteout with no valid name")
        if self.fmt == VFS:
            try:
                pfd = self._dir_fd(parent, create=False)
            except FileNotFoundError:
                return
            self._remove(pfd, parent, target)
            return
        pfd = self._dir_fd(parent)
        self._mark(parent + (target,))
        self._remove(pfd, parent, target)
        if self._whiteout_fallback is None:
            try:
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            except PermissionError as e:
                self._whiteout_fallback = e.strerror or "permission denied"
                self.notes.add(f"mknod of overlay whiteouts refused ({self._whiteout_fallback}): wrote xattr "
                               f"whiteouts instead (`{XWHITEOUT_XATTR}`; read by overlayfs on Linux >= 6.7, "
                               "not by fuse-overlayfs)")
            else:
                if self.chown:
                    uid, gid = self._ids(ti.uid, ti.gid)
                    os.chown(target, uid, gid, dir_fd=pfd, follow_symlinks=False)
                return
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        try:
            os.setxattr(fd, XWHITEOUT_XATTR, b"")
        finally:
            os.close(fd)
        self._xwhiteout_dirs.add(parent)

    def _empty_lower(self, parts: Tuple[str, ...]) -> None:
        """vfs: remove everything below ``parts`` that this layer did not write (docker's walk)."""
        fd = self._open_dir(parts)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        dfd = self._dir_fd(parts, create=False)
        for n in names:
            child = parts + (n,)
            if child in self._unpacked:
                st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    self._empty_lower(child)
            else:
                self._remove(dfd, parts, n)

    # -- xattrs -------------------------------------------------------------------------------

    def _xattrs(self, ti: tarfile.TarInfo, parts: Tuple[str, ...]) -> List[Tuple[str, bytes]]:
        out = []
        for k, v in ti.pax_headers.items():
            if not k.startswith("SCHILY.xattr."):
                continue
            name = k[len("SCHILY.xattr."):]
            if not name.startswith("user."):
                self.notes.add("xattrs outside the user.* namespace skipped", f"{name} on /{'/'.join(parts)}")
                continue
            if name.startswith(_RESERVED_XATTR_PREFIXES):
                self.notes.add("overlay control xattrs in the layer skipped", f"{name} on /{'/'.join(parts)}")
                continue
            out.append((name, v.encode("utf-8", "surrogateescape")))
        return out

    def _setxattr(self, fd: int, k: str, v: bytes, parts: Tuple[str, ...]) -> None:
        try:
            os.setxattr(fd, k, v)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM, errno.E2BIG, errno.ERANGE, errno.ENOSPC):
                self.notes.add(f"xattrs the filesystem refused were skipped ({e.strerror})",
                               f"{k} on /{'/'.join(parts)}")
                return
            raise

    # -- the end ------------------------------------------------------------------------------

    def _finish(self) -> None:
        self._drop_dir_cache()
        for parts in self._xwhiteout_dirs:
            try:
                fd = self._open_dir(parts)
            except OSError:
                continue
            try:
                try:
                    cur = os.getxattr(fd, OPAQUE_XATTR)
                except OSError:
                    cur = b""
                if cur != b"y":
                    os.setxattr(fd, OPAQUE_XATTR, b"x")
            finally:
                os.close(fd)
        # Deepest first, so setting a child's times cannot disturb its parent's afterwards.
        for parts in sorted(self._deferred, key=len, reverse=True):
            mode, uid, gid, mtime = self._deferred[parts]
            try:
                fd = self._open_dir(parts)
            except _Unsafe:
                continue
            except OSError:
                continue  # replaced by a non-directory or removed by a later entry
            try:
                if self.chown:
                    uid, gid = self._ids(uid, gid)
                    os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        self._drop_dir_cache()

    def _open_dir(self, parts: Tuple[str, ...]) -> int:
        if not parts:
            return os.dup(self.root_fd)
        pfd = self._dir_fd(parts[:-1], create=False)
        return os.open(parts[-1], _O_DIR, dir_fd=pfd)

    def result(self, tar_bytes: int, diff_id: str = "") -> UnpackResult:
        return UnpackResult(self.entries, self.data_bytes, tar_bytes, self.notes.render(), diff_id)


def rmtree_at(pfd: int, name: str) -> None:
    """Remove directory ``name`` below ``pfd`` and all it holds, never following symlinks.

    Written for fds (Python 3.9's shutil.rmtree has no dir_fd); makes read-only directories
    writable as needed, which works for the owner, and for root of a user namespace."""
    try:
        fd = os.open(name, _O_DIR, dir_fd=pfd)
    except PermissionError:
        os.chmod(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _O_DIR, dir_fd=pfd)
    try:
        for entry in os.scandir(fd):
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                rmtree_at(fd, entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except PermissionError:
                    os.fchmod(fd, 0o700)
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=pfd)
    except PermissionError:
        os.chmod(".", 0o700, dir_fd=pfd)
        os.rmdir(name, dir_fd=pfd)


def rmtree(path: str) -> None:
    """Remove ``path`` (a directory, or anything) without following symlinks; absent is fine."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        pfd = os.open(parent, _O_DIR)
    except FileNotFoundError:
        return
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            rmtree_at(pfd, name)
        else:
            os.unlink(name, dir_fd=pfd)
    finally:
        os.close(pfd)


def unpack(layer_file: str, media_type: str, dest: str, fmt: str, layer_digest: str, *,
           chown: Optional[bool] = None, max_uid: Optional[int] = None,
           max_gid: Optional[int] = None, max_size: int = 0) -> UnpackResult:
    """Unpack one layer file into ``dest`` (an existing directory) in format ``fmt``.

    ``max_size`` (max-layer-size; 0: none) bounds the uncompressed tar: past it, ImageError.

    Call it as root of a user namespace that maps the image's ids (``max_uid``/``max_gid``: the
    highest ids that namespace maps; higher ones are squashed to 0 with a note). As a plain user
    (``chown`` false) owners are not kept. Raises ImageError naming the layer and the entry for a
    corrupt or unsafe layer; ``dest`` is then in an undefined state (the caller unpacks into a
    temporary directory and throws it away).
    """
    ls = _LayerStream(layer_file, media_type, layer_digest)
    u = Unpacker(dest, fmt, layer_digest, chown=chown, max_uid=max_uid, max_gid=max_gid)
    ok = False
    try:
        stream = _Forward(ls.open(), max_size, layer_digest)
        u.unpack_stream(stream)  # type: ignore[arg-type]
        # Read to the end, so a zstd child is not killed by SIGPIPE and its status says all is well.
        while stream.read(_CHUNK):
            pass
        ok = True
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        what = getattr(e, "strerror", None) or str(e)
        if getattr(e, "filename", None):
            what = f"`{e.filename}`: {what}"  # type: ignore[union-attr]
        raise ImageError(f"unpack layer `{layer_digest}`: {what}",
                         "the layer file is corrupt or unreadable; remove the image and pull it again")
    finally:
        u.close()
        ls.close(ok)
    return u.result(stream.count, "sha256:" + stream.hasher.hexdigest())


def tree_size(path: str) -> int:
    """Bytes used by the files below ``path`` (st_size, each inode once; directories not counted),
    as docker's ``directory.Size`` reports a layer."""
    total = 0
    seen: Set[Tuple[int, int]] = set()

    def walk(p: str) -> None:
        nonlocal total
        try:
            it = os.scandir(p)
        except OSError:
            return
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    walk(e.path)
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size

    walk(path)
    return total
