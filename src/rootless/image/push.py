"""Push an image from the store to a registry, like `docker push`.

Blobs go up as stored (compressed as they were pulled); layers that are stored uncompressed (from
``load``) are gzip-compressed once, and the compressed blob is kept for later pushes. The manifest
the image was pulled with is pushed again byte for byte when it still describes the stored blobs
(so the digest stays the same); otherwise a Docker schema2 manifest is written (OCI when a layer is
zstd). Foreign (non-distributable) layers are not uploaded, as docker does.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from rootless.errors import ImageError, UsageError
from rootless.image import manifest as mf
from rootless.image import reference
from rootless.image.progress import Progress
from rootless.image.store import Image, ImageStore


def _compressed_layers(store: ImageStore, img: Image, progress: Progress) -> List[Tuple[str, str, int, Tuple[str, ...]]]:
    """(digest, media type, size, urls) of each layer as it will be pushed."""
    rec = store.record(img.id)
    cached = {x["diffId"]: x for x in rec.get("pushLayers") or [] if store.has_blob(x.get("digest", ""))}
    out = []
    new_cache = list(cached.values())
    extra = list(rec.get("extraBlobs") or [])
    for layer in img.layers:
        if mf.compression_of(layer.media_type) != "none" or layer.media_type in mf.FOREIGN_TYPES:
            out.append((layer.digest, layer.media_type, layer.size, layer.urls))
            continue
        c = cached.get(layer.diff_id)
        if c is None:
            progress.layer(layer.diff_id[7:19], "Preparing")
            w = store.blob_writer(None)
            try:
                with open(store.blob_path(layer.digest), "rb") as src:
                    gz = gzip.GzipFile(fileobj=_Sink(w), mode="wb", compresslevel=6, mtime=0)
                    while True:
                        b = src.read(1 << 20)
                        if not b:
                            break
                        gz.write(b)
                    gz.close()
                digest_path = w.commit()
            except BaseException:
                w.abort()
                raise
            digest = "sha256:" + os.path.basename(digest_path)
            c = {"diffId": layer.diff_id, "digest": digest, "size": os.path.getsize(digest_path),
                 "mediaType": mf.DOCKER_LAYER_GZIP}
            new_cache.append(c)
            extra.append(digest)
        out.append((c["digest"], c["mediaType"], int(c["size"]), ()))
    if len(new_cache) != len(cached):
        store.update_record(img.id, pushLayers=new_cache, extraBlobs=sorted(set(extra)))
    return out


class _Sink:
    def __init__(self, w):
        self.w = w

    def write(self, b) -> int:
        self.w.write(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass


def _manifest_for(store: ImageStore, img: Image, layers) -> Tuple[bytes, str]:
    if img.manifest_digest and store.has_blob(img.manifest_digest):
        data = store.read_blob(img.manifest_digest)
        try:
            m = mf.parse(data, img.manifest_media_type)
        except ImageError:
            m = None
        if isinstance(m, mf.Manifest) and m.config.digest == img.id and \
                [d.digest for d in m.layers] == [x[0] for x in layers]:
            return data, m.media_type
    use_oci = any(mf.compression_of(x[1]) == "zstd" or x[1].startswith("application/vnd.oci") for x in layers)
    if use_oci:
        conv = {mf.DOCKER_LAYER_GZIP: mf.OCI_LAYER_GZIP, mf.DOCKER_LAYER: mf.OCI_LAYER,
                mf.DOCKER_FOREIGN_GZIP: mf.OCI_ND_LAYER_GZIP}
        mt, cfg_mt = mf.OCI_MANIFEST, mf.OCI_CONFIG
    else:
        conv = {}
        mt, cfg_mt = mf.DOCKER_MANIFEST, mf.DOCKER_CONFIG
    doc: Dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": cfg_mt, "size": store.blob_size(img.id), "digest": img.id},
        "layers": [],
    }
    for digest, media_type, size, urls in layers:
        d: Dict[str, Any] = {"mediaType": conv.get(media_type, media_type), "size": size, "digest": digest}
        if urls:
            d["urls"] = list(urls)
        doc["layers"].append(d)
    return json.dumps(doc, indent=3).encode(), mt


def push(config: Any, name: str, *, quiet: bool = False, out: Any = None, tty: Optional[bool] = None) -> str:
    """Push ``name`` (NAME[:TAG]) from the store; returns the manifest digest."""
    out = sys.stdout if out is None else out
    progress = Progress(out, quiet=quiet, tty=tty)
    ref = reference.parse(name)
    if ref.digest:
        raise UsageError(f"push `{name}`: cannot push a digest reference", "push NAME[:TAG]")
    if ref.tag is None:
        progress.message(f"Using default tag: {reference.DEFAULT_TAG}")
    ref = ref.with_default_tag()
    store = ImageStore(config.data_root)
    iid = store.refs().get(ref.tagged)
    img = store.get(iid) if iid else None
    if img is None:
        raise ImageError(f"An image does not exist locally with the tag: {ref.familiar_name}",
                         f"tag an image first: `rootless tag IMAGE {ref.familiar()}`")
    from rootless.image.registry import RegistryClient

    progress.message(f"The push refers to repository [{ref.name}]")
    client = RegistryClient(config, ref.domain, ref.path, push=True, what=ref.familiar())
    with store.using_blobs():
        layers = _compressed_layers(store, img, progress)
        todo = [(d, mt, size) for d, mt, size, urls in layers if not (mt in mf.FOREIGN_TYPES and urls)]
        for d, mt, _size, urls in layers:
            if mt in mf.FOREIGN_TYPES and urls:
                progress.layer(d[7:19], "Skipped foreign layer")

        def one(item) -> None:
            digest, _mt, size = item
            ident = digest[7:19]
            if client.blob_exists(digest):
                progress.layer(ident, "Layer already exists")
                return
            progress.layer(ident, "Pushing")
            client.upload_blob(digest, store.blob_path(digest), size)
            progress.layer(ident, "Pushed")

        # a first request settles auth before the parallel uploads
        if todo:
            one(todo[-1])
        n = max(1, int(getattr(config, "max_concurrent_uploads", 5) or 5))
        with concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="push") as pool:
            for f in [pool.submit(one, it) for it in reversed(todo[:-1])]:
                f.result()
        if not client.blob_exists(img.id):
            client.upload_blob(img.id, store.blob_path(img.id), store.blob_size(img.id))
        data, mt = _manifest_for(store, img, layers)
        digest = client.put_manifest(ref.tag or "latest", data, mt)
        store.put_blob(data, digest)
        if not img.manifest_digest:
            store.update_record(img.id, manifestDigest=digest, manifestMediaType=mt)
        else:
            rec = store.record(img.id)
            store.update_record(img.id, extraBlobs=sorted(set(list(rec.get("extraBlobs") or []) + [digest])))
        store.tag(img.id, f"{ref.name}@{digest}")
    progress.message(f"{ref.tag}: digest: {digest} size: {len(data)}")
    return digest
