"""save and load: docker-archive tarballs (docker 25+ layout, read: also the classic one) and OCI layouts.

``save`` writes what docker 25+ writes: an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...`` with uncompressed layers) plus docker's ``manifest.json`` and ``repositories``,
so both ``docker load`` and OCI tools read it. ``load`` reads that, the classic docker layout
(``<id>/layer.tar``, ``<id>.json``) and plain OCI layout tarballs (gzip/zstd layers too); every
blob is verified (config by its name, layers against the config's ``diff_ids``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

from rootless import paths
from rootless.errors import ImageError, RootlessError
from rootless.image import manifest as mf
from rootless.image import reference
from rootless.image.store import Image, ImageStore, LayerRecord

# --- save ------------------------------------------------------------------------------------------

class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (tarfile.addfile reads exactly ``size``)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _resolve_save_args(store: ImageStore, names: List[str]) -> List[Tuple[Image, List[str]]]:
    """Each image once, with the full tags to record for it (docker: the tags named, or all of a repo)."""
    out: Dict[str, Tuple[Image, List[str]]] = {}
    order: List[str] = []
    for name in names:
        img = store.require(name)
        tags: List[str] = []
        try:
            r = reference.parse(name)
        except RootlessError:
            r = None
        if r is not None and not (img.id[7:].startswith(name) or name.startswith("sha256:")):
            if r.tag:
                tags = [r.tagged]
            elif not r.digest:
                tags = [t for t in img.full_tags if t.rsplit(":", 1)[0] == r.name] or [str(r.with_default_tag())]
        if img.id not in out:
            out[img.id] = (img, [])
            order.append(img.id)
        for t in tags:
            if t not in out[img.id][1]:
                out[img.id][1].append(t)
    return [out[i] for i in order]


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = int(mtime)
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def _add_dir(tf: tarfile.TarFile, name: str, mtime: float) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = int(mtime)
    tf.addfile(ti)


def save(config: Any, names: List[str], output: Optional[str], stdout: Optional[IO[bytes]] = None) -> None:
    """Write a docker-archive of ``names`` to ``output`` (atomically) or to ``stdout``."""
    from rootless.image.pull import diff_id_of, uncompressed_chunks

    store = ImageStore(config.data_root)
    items = _resolve_save_args(store, names)
    if output:
        d = os.path.dirname(os.path.abspath(output))
        tmp = os.path.join(d, f".{os.path.basename(output)}.tmp-{os.getpid()}")
        try:
            f: IO[bytes] = open(tmp, "wb")
        except OSError as e:
            raise RootlessError(f"save to `{output}`: {e.strerror}", "check that the directory exists and is writable")
    else:
        assert stdout is not None
        f = stdout
        tmp = ""
    try:
        with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            mtime = 0.0
            _add_dir(tf, "blobs", mtime)
            _add_dir(tf, "blobs/sha256", mtime)
            done = set()
            manifest_json = []
            repositories: Dict[str, Dict[str, str]] = {}
            index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": []}
            for img, tags in items:
                layers_paths = []
                layer_descs = []
                for layer in img.layers:
                    size = layer.uncompressed_size
                    blob = store.blob_path(layer.digest)
                    if size < 0:
                        _, size = diff_id_of(blob, layer.media_type)
                    hexd = layer.diff_id[7:]
                    name = f"blobs/sha256/{hexd}"
                    if hexd not in done:
                        ti = tarfile.TarInfo(name)
                        ti.size = size
                        ti.mode = 0o644
                        tf.addfile(ti, _ChunkReader(uncompressed_chunks(blob, layer.media_type)))
                        done.add(hexd)
                    layers_paths.append(name)
                    layer_descs.append({"mediaType": mf.OCI_LAYER, "digest": layer.diff_id, "size": size})
                cfg_bytes = store.read_blob(img.id)
                if img.id[7:] not in done:
                    _add_bytes(tf, f"blobs/sha256/{img.id[7:]}", cfg_bytes, mtime)
                    done.add(img.id[7:])
                man = {
                    "schemaVersion": 2,
                    "mediaType": mf.OCI_MANIFEST,
                    "config": {"mediaType": mf.OCI_CONFIG, "digest": img.id, "size": len(cfg_bytes)},
                    "layers": layer_descs,
                }
                man_bytes = json.dumps(man, separators=(",", ":")).encode()
                man_digest = "sha256:" + hashlib.sha256(man_bytes).hexdigest()
                if man_digest[7:] not in done:
                    _add_bytes(tf, f"blobs/sha256/{man_digest[7:]}", man_bytes, mtime)
                    done.add(man_digest[7:])
                familiar_tags = [reference.familiar_string(t) for t in tags]
                manifest_json.append({"Config": f"blobs/sha256/{img.id[7:]}", "RepoTags": familiar_tags or None,
                                      "Layers": layers_paths})
                for t in tags:
                    ann = {"io.containerd.image.name": t, "org.opencontainers.image.ref.name": t.rsplit(":", 1)[1]}
                    index["manifests"].append({"mediaType": mf.OCI_MANIFEST, "digest": man_digest,
                                               "size": len(man_bytes), "annotations": ann})
                    fam = reference.familiar_string(t)
                    repo, tag = fam.rsplit(":", 1)
                    if img.layers:
                        repositories.setdefault(repo, {})[tag] = img.layers[-1].diff_id[7:]
                if not tags:
                    index["manifests"].append({"mediaType": mf.OCI_MANIFEST, "digest": man_digest,
                                               "size": len(man_bytes)})
            _add_bytes(tf, "index.json", json.dumps(index, separators=(",", ":")).encode(), mtime)
            _add_bytes(tf, "manifest.json", json.dumps(manifest_json, separators=(",", ":")).encode(), mtime)
            _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', mtime)
            if repositories:
                _add_bytes(tf, "repositories", json.dumps(repositories, separators=(",", ":")).encode(), mtime)
        if tmp:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.rename(tmp, output)  # type: ignore[arg-type]
            paths.fsync_dir(os.path.dirname(os.path.abspath(output)))  # type: ignore[arg-type]
    except BaseException:
        if tmp:
            try:
                f.close()
            finally:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        raise


# --- load ------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Archive:
    def __init__(self, tf: tarfile.TarFile, what: str):
        self.tf = tf
        self.what = what
        self.members = {posixpath.normpath(m.name.lstrip("/")): m for m in tf.getmembers()}

    def member(self, name: str, depth: int = 0) -> tarfile.TarInfo:
        key = posixpath.normpath(name.lstrip("/"))
        m = self.members.get(key)
        if m is None:
            raise ImageError(f"load `{self.what}`: `{name}` is missing from the archive", "the archive is incomplete or damaged")
        if m.issym() and depth < 10:
            # the classic layout links repeated layers: `<id>/layer.tar -> ../<id2>/layer.tar`
            return self.member(posixpath.join(posixpath.dirname(key), m.linkname), depth + 1)
        if m.islnk() and depth < 10:
            return self.member(m.linkname, depth + 1)
        if not m.isfile():
            raise ImageError(f"load `{self.what}`: `{name}` is not a file", "the archive is damaged")
        return m

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        f = self.tf.extractfile(self.member(name))
        assert f is not None
        return f

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise ImageError(f"load `{self.what}`: `{name}` is too large ({m.size} bytes)", "the archive is damaged")
        return self.open(name).read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError:
            raise ImageError(f"load `{self.what}`: `{name}` is not JSON", "the archive is damaged")


def _copy_blob(store: ImageStore, src: IO[bytes], digest: Optional[str], size: int = -1) -> str:
    """Copy into the store, verified against ``digest`` when given; returns the digest."""
    if digest is not None and store.has_blob(digest):
        return digest
    if digest is not None:
        with store.blob_lock(digest):
            if store.has_blob(digest):
                return digest
            return _copy_into(store, src, digest, size)
    return _copy_into(store, src, None, size)


def _copy_into(store: ImageStore, src: IO[bytes], digest: Optional[str], size: int) -> str:
    w = store.blob_writer(digest, size)
    try:
        while True:
            b = src.read(1 << 20)
            if not b:
                break
            w.write(b)
        p = w.commit()
    except BaseException:
        w.abort()
        raise
    return "sha256:" + os.path.basename(p)


def _sniff(arc: _Archive, name: str) -> str:
    head = arc.open(name).read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def _layer_from(store: ImageStore, arc: _Archive, name: str, want_diff: str, media_type: Optional[str],
                digest: Optional[str]) -> LayerRecord:
    from rootless.image.pull import diff_id_of

    m = arc.member(name)
    if media_type is None:
        comp = _sniff(arc, name)
        media_type = {"gzip": mf.DOCKER_LAYER_GZIP, "zstd": mf.OCI_LAYER_ZSTD, "none": mf.DOCKER_LAYER}[comp]
        if comp == "none":
            digest = want_diff  # an uncompressed layer's digest is its diff id: verified while copied
    try:
        got = _copy_blob(store, arc.open(name), digest, m.size)
    except ImageError as e:
        raise ImageError(f"load `{arc.what}`: layer `{name}`: {e.message}", "the archive is damaged")
    comp = mf.compression_of(media_type)
    if comp == "none":
        diff, usize = got, m.size
    else:
        diff, usize = diff_id_of(store.blob_path(got), media_type)
    if diff != want_diff:
        raise ImageError(f"load `{arc.what}`: layer `{name}` has diff id `{diff}`, the image config says `{want_diff}`",
                         "the archive is damaged or was changed")
    return LayerRecord(got, media_type, m.size, diff, usize)


def _finish(config: Any, store: ImageStore, cfg_bytes: bytes, cfg_digest: Optional[str], layers_in,
            refs: List[str], arc: _Archive, unpack: bool, manifest_digest: Optional[str] = None,
            manifest_mt: str = "") -> Image:
    got = store.put_blob(cfg_bytes, cfg_digest)
    try:
        cfg = json.loads(cfg_bytes)
    except ValueError:
        raise ImageError(f"load `{arc.what}`: the image config is not JSON", "the archive is damaged")
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(layers_in):
        raise ImageError(f"load `{arc.what}`: {len(layers_in)} layers but the config lists {len(diff_ids)}",
                         "the archive is damaged")
    layers = [_layer_from(store, arc, name, diff_ids[i], mt, dg) for i, (name, mt, dg) in enumerate(layers_in)]
    img = store.add_image(got, layers, manifest_digest=manifest_digest, manifest_media_type=manifest_mt)
    if unpack:
        from rootless.image.pull import _choose_fmt, ensure_layers

        ensure_layers(config, img, _choose_fmt(config))
    for r in refs:
        store.tag(img.id, r)
    out = store.get(img.id)
    assert out is not None
    return out


def _full_ref(name: str) -> Optional[str]:
    try:
        r = reference.parse(name)
    except RootlessError:
        return None
    if r.digest:
        return None
    return str(r.with_default_tag())


def load(config: Any, path: str, *, unpack: bool = True) -> List[str]:
    """Load a docker-archive or OCI layout tarball; returns docker's ``Loaded image: ...`` lines."""
    store = ImageStore(config.data_root).ensure()
    try:
        tf = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise ImageError(f"load `{path}`: not a tar archive ({e})",
                         "give a file made by `rootless save`, `docker save` or an OCI layout tarball")
    lines: List[str] = []
    with tf, store.using_blobs():
        arc = _Archive(tf, os.path.basename(path) or path)
        if arc.has("manifest.json"):
            entries = arc.json("manifest.json")
            if not isinstance(entries, list):
                raise ImageError(f"load `{arc.what}`: manifest.json is not a list", "the archive is damaged")
            for e in entries:
                cfg_name = str(e.get("Config", ""))
                cfg_bytes = arc.read(cfg_name)
                base = posixpath.basename(cfg_name)
                hexd = base[:-5] if base.endswith(".json") else base
                cfg_digest = "sha256:" + hexd if len(hexd) == 64 else None
                tags = [t for t in (e.get("RepoTags") or []) if isinstance(t, str)]
                refs = [r for r in (_full_ref(t) for t in tags) if r]
                layer_names = [(str(x), None, None) for x in e.get("Layers") or []]
                sources = e.get("LayerSources") or {}
                img = _finish(config, store, cfg_bytes, cfg_digest, layer_names, refs, arc, unpack)
                del sources
                if refs:
                    lines.extend(f"Loaded image: {reference.familiar_string(r)}" for r in refs)
                else:
                    lines.append(f"Loaded image ID: {img.id}")
        elif arc.has("index.json"):
            index = arc.json("index.json")
            for desc in index.get("manifests") or []:
                lines.extend(_load_oci_desc(config, store, arc, desc, unpack))
        else:
            raise ImageError(f"load `{arc.what}`: neither a docker archive (manifest.json) nor an OCI layout (index.json)",
                             "give a file made by `rootless save`, `docker save` or `skopeo copy ... oci-archive:`")
    return lines


def _blob_name(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64:
        raise ImageError(f"load: unsupported digest `{digest}`", "only sha256 blobs are supported")
    return f"blobs/sha256/{hexd}"


def _load_oci_desc(config: Any, store: ImageStore, arc: _Archive, desc: Dict[str, Any], unpack: bool,
                   name: Optional[str] = None) -> List[str]:
    ann = desc.get("annotations") or {}
    name = name or ann.get("io.containerd.image.name") or None
    if name is None:
        rn = ann.get("org.opencontainers.image.ref.name")
        if rn and ("/" in rn or ":" in rn):
            name = rn
    digest = str(desc.get("digest", ""))
    data = arc.read(_blob_name(digest))
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ImageError(f"load `{arc.what}`: manifest `{digest}` does not match its digest", "the archive is damaged")
    parsed = mf.parse(data, str(desc.get("mediaType", "")), where=f"manifest `{digest}`")
    if isinstance(parsed, mf.Index):
        d = mf.choose(parsed, mf.host_platform(), arc.what)
        return _load_oci_desc(config, store, arc, d.to_json(), unpack, name=name)
    store.put_blob(data, digest)
    cfg_bytes = arc.read(_blob_name(parsed.config.digest))
    layers_in = [(_blob_name(x.digest), x.media_type, x.digest) for x in parsed.layers]
    ref = _full_ref(name) if name else None
    img = _finish(config, store, cfg_bytes, parsed.config.digest, layers_in, [ref] if ref else [], arc, unpack,
                  manifest_digest=digest, manifest_mt=parsed.media_type)
    return [f"Loaded image: {reference.familiar_string(ref)}"] if ref else [f"Loaded image ID: {img.id}"]
