"""The image store under ``data-root/image``: content-addressed blobs, image records, a tag index.

Layout (every file written with temp + fsync + rename; nothing half-written is ever read)::

    image/storage-version          "1": refuse a store written by a newer rootless
    image/lock                     flock: changes to records and the tag index
    image/gc.lock                  flock: shared while a pull or load runs, exclusive for blob GC
    image/blobs/sha256/<hex>       verified blobs: manifests, indexes, configs, layers (as pulled)
    image/tmp/<hex>.<pid>.partial  a download in progress (only while its blob lock is held)
    image/locks/<hex>.lock         flock per blob: two pulls fetch a blob once
    image/images/<hex>.json        one record per image (id = config digest), written after its blobs
    image/repositories.json        docker's format: {"Repositories": {name: {name:tag|name@digest: id}}}

This module is on the ``run`` hot path: standard library only, no requests.
A kill -9 at any moment leaves: stale partials (removed when the blob lock is next taken), blobs no
image refers to (removed by the next GC), or a record without a tag (a dangling image, as docker).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from rootless import paths
from rootless.errors import ImageError, NotFound, RootlessError
from rootless.value import Value

STORAGE_VERSION = 1
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


def check_digest(digest: str) -> str:
    """The hex part of a sha256 digest, refusing anything else before it becomes a path."""
    if not isinstance(digest, str) or not digest.startswith("sha256:") or not _HEX64.match(digest[7:]):
        raise ImageError(f"use digest `{digest}`: not a sha256 digest", "rootless stores sha256 content only")
    return digest[7:]


def chain_ids(diff_ids: List[str]) -> List[str]:
    """OCI ChainID: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    out: List[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            import hashlib  # not at the top: `run` of a local image needs no hashing (start-up time)

            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


class LayerRecord(Value):
    __slots__ = ("digest", "media_type", "size", "diff_id", "uncompressed_size", "urls")
    digest: str  # the blob as stored (compressed as pulled)
    media_type: str
    size: int  # bytes of the blob
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int
    urls: Tuple[str, ...]

    def __init__(
        self,
        digest: str,
        media_type: str,
        size: int,
        diff_id: str,
        uncompressed_size: int = -1,
        urls: Tuple[str, ...] = (),
    ) -> None:
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.diff_id = diff_id
        self.uncompressed_size = uncompressed_size
        self.urls = urls

    def to_json(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"digest": self.digest, "mediaType": self.media_type, "size": self.size,
                             "diffId": self.diff_id, "uncompressedSize": self.uncompressed_size}
        if self.urls:
            d["urls"] = list(self.urls)
        return d

    @staticmethod
    def from_json(d: Dict[str, Any]) -> LayerRecord:
        return LayerRecord(d["digest"], d["mediaType"], int(d["size"]), d["diffId"],
                           int(d.get("uncompressedSize", -1)), tuple(d.get("urls") or ()))


class Image(Value):
    """An image in the store. ``id`` is the config digest; ``config`` the parsed config JSON."""

    __slots__ = (
        "id", "config", "chain_ids", "repo_tags", "repo_digests", "created", "size", "layers",
        "manifest_digest", "manifest_media_type", "index_digest", "added", "full_tags",
        "full_digests",
    )
    id: str
    config: Dict[str, Any]  # not compared nor hashed
    chain_ids: Tuple[str, ...]
    repo_tags: Tuple[str, ...]  # familiar: "busybox:latest"
    repo_digests: Tuple[str, ...]  # familiar: "busybox@sha256:..."
    created: str
    size: int
    layers: Tuple[LayerRecord, ...]
    manifest_digest: Optional[str]  # the platform manifest as pulled
    manifest_media_type: str
    index_digest: Optional[str]  # the manifest list / index it came from, if any
    added: float  # when it entered the store (epoch seconds)
    full_tags: Tuple[str, ...]  # "docker.io/library/busybox:latest"
    full_digests: Tuple[str, ...]

    def __init__(
        self,
        id: str,
        config: Dict[str, Any],
        chain_ids: Tuple[str, ...] = (),
        repo_tags: Tuple[str, ...] = (),
        repo_digests: Tuple[str, ...] = (),
        created: str = "",
        size: int = 0,
        layers: Tuple[LayerRecord, ...] = (),
        manifest_digest: Optional[str] = None,
        manifest_media_type: str = "",
        index_digest: Optional[str] = None,
        added: float = 0.0,
        full_tags: Tuple[str, ...] = (),
        full_digests: Tuple[str, ...] = (),
    ) -> None:
        self.id = id
        self.config = config
        self.chain_ids = chain_ids
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests
        self.created = created
        self.size = size
        self.layers = layers
        self.manifest_digest = manifest_digest
        self.manifest_media_type = manifest_media_type
        self.index_digest = index_digest
        self.added = added
        self.full_tags = full_tags
        self.full_digests = full_digests

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__ if n != "config")

    @property
    def short_id(self) -> str:
        return self.id[7:19]

    @property
    def diff_ids(self) -> List[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids") or [])

    @property
    def dangling(self) -> bool:
        return not self.repo_tags

    def blobs(self) -> List[str]:
        out = [self.id] + [layer.digest for layer in self.layers]
        for d in (self.manifest_digest, self.index_digest):
            if d:
                out.append(d)
        return out


def _familiar(full: str) -> str:
    from rootless.image.reference import familiar_string

    return familiar_string(full)


def containers_using(data_root: str, image_id: str) -> List[str]:
    """Ids of containers whose ``containers/<id>/config.json`` names ``image_id`` as "Image"."""
    out: List[str] = []
    root = os.path.join(data_root, "containers")
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(root, name, "config.json"), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("Image") == image_id:
            out.append(str(doc.get("ID") or doc.get("Id") or name))
    return out


class DigestMismatch(ImageError):
    def __init__(self, digest: str, got: str, size: int):
        super().__init__(f"verify blob `{digest}`: content has digest `{got}` ({size} bytes)",
                         "the registry or the network corrupted it; pull again, or check the registry")
        self.digest = digest
        self.got = got


class BlobWriter:
    """Stream a blob into ``tmp/``; ``commit()`` checks the digest, fsyncs and renames it in place."""

    def __init__(self, store: ImageStore, digest: Optional[str], expected_size: int = -1):
        """``digest`` None: content of unknown digest (a load); ``commit()`` names it by its hash."""
        import threading

        self.store = store
        self.digest = digest
        self.hex = check_digest(digest) if digest is not None else f"unknown-{threading.get_ident()}"
        self.expected_size = expected_size
        self.tmp = os.path.join(store.tmp_dir, f"{self.hex}.{os.getpid()}.partial")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        import hashlib

        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.size += len(chunk)
        view = memoryview(chunk)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        if 0 <= self.expected_size < self.size and self.digest is not None:
            got = "sha256:" + self.hasher.hexdigest()
            self.abort()
            raise DigestMismatch(self.digest, f"{got} (more than {self.expected_size} bytes so far)", self.size)

    def commit(self) -> str:
        got = "sha256:" + self.hasher.hexdigest()
        if self.digest is None:
            self.digest = got
        if got != self.digest or (self.expected_size >= 0 and self.size != self.expected_size):
            self.abort()
            raise DigestMismatch(self.digest, got, self.size)
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1
        dest = self.store.blob_path(self.digest)
        if os.path.exists(dest):  # someone else stored the same content meanwhile
            os.unlink(self.tmp)
            return dest
        os.rename(self.tmp, dest)
        paths.fsync_dir(os.path.dirname(dest))
        return dest

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class ImageStore:
    """Blobs, image records and the tag index under ``data_root/image``."""

    def __init__(self, data_root: str, in_use_check: Optional[Callable[[str], List[str]]] = None):
        self.data_root = data_root
        self.root = os.path.join(data_root, "image")
        self.blob_dir = os.path.join(self.root, "blobs", "sha256")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.lock_dir = os.path.join(self.root, "locks")
        self.images_dir = os.path.join(self.root, "images")
        self.repos_path = os.path.join(self.root, "repositories.json")
        # "which containers use this image id": rmi refuses while the list is not empty
        self.in_use_check: Callable[[str], List[str]] = in_use_check or (lambda iid: containers_using(data_root, iid))
        self._ready = False

    # --- setup -----------------------------------------------------------------------------
    def ensure(self) -> ImageStore:
        """Create the layout (for writers) and check the storage version."""
        if self._ready:
            return self
        try:
            os.makedirs(self.data_root, mode=0o700, exist_ok=True)
            for d in (self.root, self.blob_dir, self.tmp_dir, self.lock_dir, self.images_dir):
                os.makedirs(d, mode=0o700, exist_ok=True)
        except OSError as e:
            raise RootlessError(f"create image store `{self.root}`: {e.strerror}",
                                "check the permissions of data-root, or set data-root in daemon.toml")
        vpath = os.path.join(self.root, "storage-version")
        v = self._read_version(vpath)
        if v is None:
            paths.atomic_write(vpath, f"{STORAGE_VERSION}\n".encode())
        self._ready = True
        return self

    def _read_version(self, vpath: str) -> Optional[int]:
        try:
            with open(vpath, encoding="utf-8") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RootlessError(f"read `{vpath}`: {e.strerror}", "check the permissions of data-root")
        try:
            v = int(text)
        except ValueError:
            raise RootlessError(f"read `{vpath}`: `{text}` is not a storage version",
                                "the image store is damaged; move data-root away and pull again")
        if v > STORAGE_VERSION:
            raise RootlessError(
                f"open image store `{self.root}`: storage version {v} is newer than this rootless understands ({STORAGE_VERSION})",
                "use the newer rootless that wrote it, or set another data-root",
            )
        return v

    # --- locks -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, path: str, how: int) -> Iterator[bool]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, how)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    yield False
                    return
                raise
            yield True
        finally:
            os.close(fd)  # closing the last fd drops the flock

    def lock(self):
        """The store lock: records and the tag index change only under it."""
        self.ensure()
        return self._flock(os.path.join(self.root, "lock"), fcntl.LOCK_EX)

    def using_blobs(self):
        """Held (shared) by a pull or load while it has blobs no record names yet: GC waits for it."""
        self.ensure()
        return self._flock(os.path.join(self.root, "gc.lock"), fcntl.LOCK_SH)

    @contextlib.contextmanager
    def blob_lock(self, digest: str) -> Iterator[None]:
        """One writer per blob: the second pull waits, then finds the blob done."""
        hexd = check_digest(digest)
        self.ensure()
        with self._flock(os.path.join(self.lock_dir, hexd + ".lock"), fcntl.LOCK_EX):
            # we own this blob now: any partial of it was left by a killed process
            for name in _listdir(self.tmp_dir):
                if name.startswith(hexd + ".") and name.endswith(".partial"):
                    try:
                        os.unlink(os.path.join(self.tmp_dir, name))
                    except OSError:
                        pass
            yield

    @contextlib.contextmanager
    def layer_lock(self, fmt: str, chain_id: str) -> Iterator[None]:
        """One unpacker per layer and format (two pulls of one image unpack it once)."""
        hexd = check_digest(chain_id)
        if fmt not in ("overlay", "vfs"):
            raise ImageError(f"unpack layer `{chain_id}`: unknown layer format `{fmt}`", "this is a bug in rootless")
        self.ensure()
        with self._flock(os.path.join(self.lock_dir, f"layer-{fmt}-{hexd}.lock"), fcntl.LOCK_EX):
            yield

    # --- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, check_digest(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def read_blob(self, digest: str) -> bytes:
        try:
            with open(self.blob_path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ImageError(f"read blob `{digest}`: not in the store",
                             "the store lost a blob; remove the image and pull it again")

    def blob_writer(self, digest: Optional[str], expected_size: int = -1) -> BlobWriter:
        self.ensure()
        return BlobWriter(self, digest, expected_size)

    def put_blob(self, data: bytes, digest: Optional[str] = None) -> str:
        """Store small content (configs, manifests); returns its digest. Verified if ``digest``."""
        import hashlib

        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and got != digest:
            raise DigestMismatch(digest, got, len(data))
        if not self.has_blob(got):
            self.ensure()
            paths.atomic_write(self.blob_path(got), data)
        return got

    def blob_size(self, digest: str) -> int:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except OSError:
            return 0

    # --- records ---------------------------------------------------------------------------
    def _record_path(self, image_id: str) -> str:
        return os.path.join(self.images_dir, check_digest(image_id) + ".json")

    def _read_repos(self) -> Dict[str, Dict[str, str]]:
        try:
            with open(self.repos_path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise RootlessError(f"read `{self.repos_path}`: {e}",
                                "the tag index is damaged; move it away (images stay, untagged)")
        repos = doc.get("Repositories") if isinstance(doc, dict) else None
        return repos if isinstance(repos, dict) else {}

    def _write_repos(self, repos: Dict[str, Dict[str, str]]) -> None:
        repos = {k: v for k, v in sorted(repos.items()) if v}
        data = json.dumps({"Repositories": repos}, indent=1, sort_keys=True).encode()
        paths.atomic_write(self.repos_path, data, 0o600)

    def refs(self) -> Dict[str, str]:
        """Every ``name:tag`` and ``name@digest`` -> image id."""
        out: Dict[str, str] = {}
        for refs in self._read_repos().values():
            if isinstance(refs, dict):
                out.update({k: v for k, v in refs.items() if isinstance(v, str)})
        return out

    def _read_record(self, image_id: str) -> Optional[Dict[str, Any]]:
        try:
            with open(self._record_path(image_id), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None

    def _image(self, image_id: str, refs: Optional[Dict[str, str]] = None) -> Optional[Image]:
        rec = self._read_record(image_id)
        if rec is None:
            return None
        try:
            with open(self.blob_path(image_id), "rb") as f:
                cfg = json.loads(f.read())
        except (OSError, ValueError):
            return None
        if refs is None:
            refs = self.refs()
        tags = sorted(r for r, i in refs.items() if i == image_id and "@" not in r)
        digests = sorted(r for r, i in refs.items() if i == image_id and "@" in r)
        layers = tuple(LayerRecord.from_json(x) for x in rec.get("layers") or [])
        return Image(
            id=image_id,
            config=cfg,
            chain_ids=tuple(chain_ids(list(cfg.get("rootfs", {}).get("diff_ids") or []))),
            repo_tags=tuple(_familiar(t) for t in tags),
            repo_digests=tuple(_familiar(d) for d in digests),
            created=str(cfg.get("created") or ""),
            size=int(rec.get("size", 0)),
            layers=layers,
            manifest_digest=rec.get("manifestDigest"),
            manifest_media_type=rec.get("manifestMediaType", ""),
            index_digest=rec.get("indexDigest"),
            added=float(rec.get("added", 0)),
            full_tags=tuple(tags),
            full_digests=tuple(digests),
        )

    def get(self, image_id: str) -> Optional[Image]:
        try:
            check_digest(image_id)
        except ImageError:
            return None
        return self._image(image_id)

    def ids(self) -> List[str]:
        return ["sha256:" + n[:-5] for n in _listdir(self.images_dir) if n.endswith(".json") and _HEX64.match(n[:-5])]

    def list(self) -> List[Image]:
        refs = self.refs()
        out = []
        for iid in self.ids():
            img = self._image(iid, refs)
            if img is not None:
                out.append(img)
        from rootless.image.progress import parse_time

        # docker lists the newest image (by its Created time) first
        out.sort(key=lambda i: (parse_time(i.created) or 0.0, i.added), reverse=True)
        return out

    def add_image(self, config_digest: str, layers: List[LayerRecord], *, manifest_digest: Optional[str] = None,
                  manifest_media_type: str = "", index_digest: Optional[str] = None,
                  refs: Tuple[str, ...] = ()) -> Image:
        """Write the record (after every blob it names is in place), then point ``refs`` at it.

        ``refs`` are full strings: ``docker.io/library/busybox:latest`` or ``...@sha256:...``.
        A tag that named another image moves here (the old image becomes dangling, as docker).
        """
        self.ensure()
        for d in [config_digest] + [layer.digest for layer in layers]:
            if not self.has_blob(d):
                raise ImageError(f"record image `{config_digest}`: blob `{d}` is missing",
                                 "this is a bug in rootless; pull again")
        size = sum(max(layer.uncompressed_size, 0) for layer in layers)
        with self.lock():
            old = self._read_record(config_digest)
            rec = dict(old or {})
            rec.update({
                "id": config_digest,
                "layers": [layer.to_json() for layer in layers],
                "size": size,
                "manifestDigest": manifest_digest,
                "manifestMediaType": manifest_media_type,
                "indexDigest": index_digest,
                "added": (old or {}).get("added") or time.time(),
            })
            if old and not manifest_digest:
                # a load does not know the registry's manifest; keep what a pull recorded
                for k in ("manifestDigest", "manifestMediaType", "indexDigest"):
                    rec[k] = old.get(k)
            paths.atomic_write(self._record_path(config_digest), json.dumps(rec, indent=1).encode(), 0o600)
            if refs:
                repos = self._read_repos()
                for r in refs:
                    repos.setdefault(_repo_of(r), {})[r] = config_digest
                self._write_repos(repos)
        img = self.get(config_digest)
        assert img is not None
        return img

    def update_layers(self, image_id: str, layers: List[LayerRecord]) -> None:
        with self.lock():
            rec = self._read_record(image_id)
            if rec is None:
                return
            rec["layers"] = [layer.to_json() for layer in layers]
            rec["size"] = sum(max(layer.uncompressed_size, 0) for layer in layers)
            paths.atomic_write(self._record_path(image_id), json.dumps(rec, indent=1).encode(), 0o600)

    def update_record(self, image_id: str, **fields: Any) -> None:
        """Set extra fields of a record (e.g. ``pushLayers``); ``extraBlobs`` are kept by GC."""
        with self.lock():
            rec = self._read_record(image_id)
            if rec is None:
                return
            rec.update(fields)
            paths.atomic_write(self._record_path(image_id), json.dumps(rec, indent=1).encode(), 0o600)

    def record(self, image_id: str) -> Dict[str, Any]:
        return self._read_record(image_id) or {}

    def tag(self, image_id: str, full_ref: str) -> None:
        with self.lock():
            repos = self._read_repos()
            repos.setdefault(_repo_of(full_ref), {})[full_ref] = image_id
            self._write_repos(repos)

    def untag(self, full_ref: str) -> Optional[str]:
        """Remove one ``name:tag``/``name@digest``; returns the id it named."""
        with self.lock():
            repos = self._read_repos()
            refs = repos.get(_repo_of(full_ref)) or {}
            iid = refs.pop(full_ref, None)
            if iid is not None:
                self._write_repos(repos)
            return iid

    def delete_record(self, image_id: str) -> None:
        """Remove an image record and every ref to it (blobs go at the next ``gc``)."""
        with self.lock():
            repos = self._read_repos()
            for refs in repos.values():
                for r in [r for r, i in refs.items() if i == image_id]:
                    del refs[r]
            self._write_repos(repos)
            try:
                os.unlink(self._record_path(image_id))
            except FileNotFoundError:
                pass
            paths.fsync_dir(self.images_dir)

    # --- lookup ----------------------------------------------------------------------------
    def lookup(self, name_or_id: str) -> Optional[Image]:
        """By reference (normalised, tag or digest), then by full or short image id, like docker."""
        s = name_or_id.strip()
        if not s:
            return None
        if s.startswith("sha256:"):
            hexpart = s[7:]
            if _HEX64.match(hexpart):
                return self.get(s)
            return self._by_prefix(hexpart) if re.match(r"^[a-f0-9]+$", hexpart) else None
        if _HEX64.match(s):
            return self.get("sha256:" + s)
        refs = None
        try:
            from rootless.image import reference

            ref = reference.parse(s)
        except RootlessError:
            ref = None
        if ref is not None:
            refs = self.refs()
            key = str(ref.with_default_tag()) if not ref.digest else ref.digested
            iid = refs.get(key)
            if iid is not None:
                return self._image(iid, refs)
        if re.match(r"^[a-f0-9]{1,63}$", s):
            return self._by_prefix(s)
        return None

    def _by_prefix(self, prefix: str) -> Optional[Image]:
        found = [i for i in self.ids() if i[7:].startswith(prefix)]
        if len(found) == 1:
            return self.get(found[0])
        if len(found) > 1:
            raise ImageError(f"find image `{prefix}`: the short id is ambiguous ({len(found)} images)",
                             "give more characters of the id")
        return None

    def require(self, name_or_id: str) -> Image:
        img = self.lookup(name_or_id)
        if img is None:
            raise NotFound(f"No such image: {name_or_id}", "list local images with `rootless images`; pull it with `rootless pull`")
        return img

    # --- garbage collection ----------------------------------------------------------------
    def gc(self) -> int:
        """Remove blobs no image refers to; returns the bytes freed.

        Skipped (returns -1) while a pull or load holds ``using_blobs``: its blobs have no record yet.
        """
        self.ensure()
        with self._flock(os.path.join(self.root, "gc.lock"), fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
            if not got:
                return -1
            with self.lock():
                keep = set()
                for iid in self.ids():
                    rec = self._read_record(iid)
                    if rec is None:
                        continue
                    keep.add(iid[7:])
                    for layer in rec.get("layers") or []:
                        keep.add(str(layer.get("digest", ""))[7:])
                    for k in ("manifestDigest", "indexDigest"):
                        if rec.get(k):
                            keep.add(str(rec[k])[7:])
                    for extra in rec.get("extraBlobs") or []:
                        keep.add(str(extra)[7:])
                freed = 0
                for name in _listdir(self.blob_dir):
                    if name not in keep and _HEX64.match(name):
                        p = os.path.join(self.blob_dir, name)
                        try:
                            freed += os.stat(p).st_size
                            os.unlink(p)
                        except OSError:
                            pass
                # partial downloads: no pull or load runs (they hold gc.lock shared), so all are stale
                for name in _listdir(self.tmp_dir):
                    p = os.path.join(self.tmp_dir, name)
                    try:
                        if name.endswith(".partial") or time.time() - os.stat(p).st_mtime > 86400:
                            os.unlink(p)
                    except OSError:
                        pass
                # lock files: safe to drop now, no pull or unpack holds one (they hold gc.lock shared)
                for name in _listdir(self.lock_dir):
                    try:
                        os.unlink(os.path.join(self.lock_dir, name))
                    except OSError:
                        pass
                return freed

    def remove_image(self, image: Image) -> List[str]:
        """Delete ``image``'s record and refs, its unpacked layers no other image uses, and its
        unshared blobs. Returns the removed layer chain ids (what docker prints as ``Deleted:``)."""
        orphans = self.orphan_chains(image)
        self.delete_record(image.id)
        removed: List[str] = []
        if orphans:
            from rootless.storage.layers import LayerStore

            for fmt in ("overlay", "vfs"):
                ls = LayerStore(self.data_root, fmt)
                for c in reversed(orphans):
                    if ls.exists(c):
                        ls.remove(c)
                        if c not in removed:
                            removed.append(c)
        self.gc()
        return removed

    def orphan_chains(self, image: Image) -> List[str]:
        """Chain ids of ``image`` that no other image uses (their unpacked layers can go)."""
        used = set()
        for iid in self.ids():
            if iid == image.id:
                continue
            other = self.get(iid)
            if other is not None:
                used.update(other.chain_ids)
        return [c for c in image.chain_ids if c not in used]


def _repo_of(full_ref: str) -> str:
    if "@" in full_ref:
        return full_ref.split("@", 1)[0]
    slash = full_ref.rfind("/")
    colon = full_ref.rfind(":")
    return full_ref[:colon] if colon > slash else full_ref


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
