"""Pull an image: resolve the reference, pick the platform, fetch verified blobs in parallel, unpack.

Order of writes (so that a kill -9 at any moment leaves a usable store): each blob is streamed into
``tmp/``, verified against its digest, fsynced and renamed; layers are unpacked by the layer store
(atomic per layer); the image record and its tags are written last. A later pull finds the finished
blobs and layers and does only what is missing.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zlib
from typing import Any, Callable, Iterator, List, Optional, Tuple

from rootless.errors import ImageError, RegistryError, RootlessError
from rootless.image import manifest as mf
from rootless.image import reference
from rootless.image.progress import Progress
from rootless.image.store import DigestMismatch, Image, ImageStore, LayerRecord
from rootless.image.unpack import LayerTooBig, layer_too_big

CHUNK = 1 << 20


# --- decompression ---------------------------------------------------------------------------------

def _zstd_module():
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+

        return zstd
    except ImportError:
        return None


def zstd_missing_error(media_type: str) -> ImageError:
    return ImageError(
        f"decompress layer of media type `{media_type}`: zstd is not available",
        "install the `zstd` tool (Debian/Ubuntu: `apt-get install zstd`) or use Python 3.14+",
    )


def uncompressed_chunks(path: str, media_type: str, chunk: int = CHUNK, limit: int = 0,
                        layer_digest: str = "") -> Iterator[bytes]:
    """The uncompressed tar of a stored layer blob, in chunks of at most ``chunk`` bytes (gzip,
    zstd or none); memory stays bounded whatever the ratio. ``limit`` (max-layer-size; 0: none):
    ImageError once more than that many bytes came out."""
    from rootless.image.unpack import layer_too_big

    total = 0
    for b in _raw_uncompressed_chunks(path, media_type, chunk):
        total += len(b)
        if limit and total > limit:
            raise layer_too_big(layer_digest or "sha256:" + os.path.basename(path), limit)
        yield b


def _raw_uncompressed_chunks(path: str, media_type: str, chunk: int) -> Iterator[bytes]:
    comp = mf.compression_of(media_type)
    if comp == "none":
        with open(path, "rb") as f:
            while True:
                b = f.read(chunk)
                if not b:
                    return
                yield b
    elif comp == "gzip":
        from rootless.image.unpack import inflate_gzip

        with open(path, "rb") as f:
            try:
                yield from inflate_gzip(f.read, chunk)
            except OSError as e:
                if e.errno is not None:
                    raise
                raise zlib.error(str(e))
    else:
        z = _zstd_module()
        if z is not None:
            dec = z.ZstdDecompressor()
            with open(path, "rb") as f:
                pending = b""  # input not given to ``dec`` yet
                fed = False
                while True:
                    if dec.eof:  # another frame may follow: zstd frames may be concatenated
                        pending = dec.unused_data or f.read(chunk)
                        if not pending:
                            return
                        dec = z.ZstdDecompressor()
                    elif dec.needs_input and not pending:
                        pending = f.read(chunk)
                        if not pending:
                            if fed:
                                raise zlib.error("zstd data ended before the end of its frame")
                            return
                    fed = True
                    out = dec.decompress(pending, chunk)  # at most ``chunk`` bytes out
                    pending = b""
                    if out:
                        yield out
            return
        from rootless import tools

        if tools.which("zstd") is None:
            raise zstd_missing_error(media_type)
        import subprocess

        proc = tools.spawn(["zstd", "-d", "-c", "-q", "--", path], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        ok = False
        try:
            while True:
                b = proc.stdout.read(chunk)
                if not b:
                    break
                yield b
            ok = True
        finally:
            proc.stdout.close()
            if not ok:  # stopped early (max-layer-size, or the reader gave up): no status to check
                proc.kill()
                proc.wait()
            else:
                tools.wait_checked(proc, what=f"decompress `{path}` with zstd",
                                   hint="the layer is not valid zstd; pull the image again")


class _GzipHasher:
    """diff_id and size of a gzip stream, computed while it downloads (zlib releases the GIL).

    Inflates in pieces of at most CHUNK (a small download may inflate to gigabytes) and stops
    with ``too_big`` set once more than ``limit`` bytes came out (0: no limit)."""

    def __init__(self, limit: int = 0) -> None:
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.h = hashlib.sha256()
        self.size = 0
        self.limit = limit
        self.failed = False
        self.too_big = False
        self.padding = False

    def feed(self, b: bytes) -> None:
        if self.failed or self.too_big:
            return
        try:
            while b:
                if self.d.eof:
                    if self.padding or not b.strip(b"\0"):
                        self.padding = True  # zero padding after the last member, as gzip allows
                        return
                    self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out = self.d.decompress(b, CHUNK)
                self.h.update(out)
                self.size += len(out)
                if self.limit and self.size > self.limit:
                    self.too_big = True
                    return
                if self.d.eof:
                    b = self.d.unused_data
                else:
                    b = self.d.unconsumed_tail
                    if not b and len(out) == CHUNK:
                        b = b""
                        self._drain()
        except zlib.error:
            self.failed = True

    def _drain(self) -> None:
        # a full piece may leave more output inside zlib with no input left: take it out
        while not self.too_big:
            out = self.d.decompress(b"", CHUNK)
            self.h.update(out)
            self.size += len(out)
            if self.limit and self.size > self.limit:
                self.too_big = True
            if len(out) < CHUNK:
                return

    def result(self) -> Optional[Tuple[str, int]]:
        if self.failed or self.too_big or not self.d.eof:
            return None
        return "sha256:" + self.h.hexdigest(), self.size


def diff_id_of(path: str, media_type: str, limit: int = 0, layer_digest: str = "") -> Tuple[str, int]:
    """(sha256 of the uncompressed tar, its size) of a stored blob (ImageError past ``limit``)."""
    h = hashlib.sha256()
    n = 0
    try:
        for b in uncompressed_chunks(path, media_type, limit=limit, layer_digest=layer_digest):
            h.update(b)
            n += len(b)
    except zlib.error as e:
        raise ImageError(f"decompress layer `{os.path.basename(path)}` ({media_type}): {e}",
                         "the layer is not what its media type says; push the image again")
    return "sha256:" + h.hexdigest(), n


# --- pulling -----------------------------------------------------------------------------------------

def _choose_fmt(config: Any) -> str:
    from rootless.storage.select import choose

    return choose(config).fmt


def pull(config: Any, ref: str, *, platform: Optional[str] = None, quiet: bool = False, out: Any = None,
         unpack: bool = True, tty: Optional[bool] = None) -> Image:
    """Pull ``ref`` into the store (and unpack it for the current storage driver); return the Image."""
    out = sys.stderr if out is None else out
    progress = Progress(out, quiet=quiet, tty=tty)
    r = reference.parse(ref)
    if r.tag is None and r.digest is None:
        progress.message(f"Using default tag: {reference.DEFAULT_TAG}")
    r = r.with_default_tag()
    return Puller(config, r, platform, progress).run(unpack=unpack)


class Puller:
    def __init__(self, config: Any, ref: reference.Reference, platform: Optional[str], progress: Progress):
        from rootless.image.registry import RegistryClient

        self.config = config
        self.ref = ref
        self.want = mf.parse_platform(platform) if platform else None
        self.progress = progress
        self.store = ImageStore(config.data_root).ensure()
        self.client = RegistryClient(config, ref.domain, ref.path, what=ref.familiar())
        self.limit = max_layer_bytes(config)

    def run(self, unpack: bool = True) -> Image:
        ref = self.ref
        tag_or_digest = ref.digest or ref.tag or "latest"
        data, ctype, top_digest = self.client.get_manifest(
            tag_or_digest,
            not_found=f"check the name and tag of `{ref.familiar()}`; "
                      f"the repository may also need `rootless login {ref.domain}`")
        parsed = mf.parse(data, ctype, where=f"manifest of `{ref.familiar()}`")
        index_digest = None
        manifest_digest = top_digest
        with self.store.using_blobs():
            if isinstance(parsed, mf.Index):
                index_digest = top_digest
                self.store.put_blob(data, top_digest)
                want = self.want or mf.host_platform()
                desc = mf.choose(parsed, want, ref.familiar())
                data, ctype, manifest_digest = self.client.get_manifest(desc.digest)
                parsed = mf.parse(data, ctype or desc.media_type, where=f"manifest `{desc.digest}`")
                if not isinstance(parsed, mf.Manifest):
                    raise ImageError(f"pull `{ref.familiar()}`: the index entry for {want} is not an image manifest",
                                     "the image in the registry is malformed")
            assert isinstance(parsed, mf.Manifest)
            self.progress.message(f"{tag_or_digest}: Pulling from {ref.path}")
            return self._pull_manifest(parsed, data, manifest_digest, index_digest, unpack=unpack)

    # ---------------------------------------------------------------------------------------------
    def _fetch_small(self, desc: mf.Descriptor, what: str) -> bytes:
        if self.store.has_blob(desc.digest):
            return self.store.read_blob(desc.digest)
        with self.store.blob_lock(desc.digest):
            if not self.store.has_blob(desc.digest):
                self._download(desc, None, None)
        return self.store.read_blob(desc.digest)

    def _pull_manifest(self, m: mf.Manifest, data: bytes, manifest_digest: str, index_digest: Optional[str],
                       unpack: bool) -> Image:
        import json

        ref = self.ref
        store = self.store
        cfg_bytes = self._fetch_small(m.config, "config")
        try:
            cfg = json.loads(cfg_bytes)
        except ValueError:
            raise ImageError(f"pull `{ref.familiar()}`: the image config `{m.config.digest}` is not JSON",
                             "the image in the registry is malformed")
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(m.layers):
            raise ImageError(
                f"pull `{ref.familiar()}`: the manifest has {len(m.layers)} layers but the config lists {len(diff_ids)}",
                "the image in the registry is malformed")
        if self.want is not None:
            got = mf.Platform(str(cfg.get("os", "")), str(cfg.get("architecture", "")), str(cfg.get("variant", "") or ""))
            if cfg.get("architecture") and not mf.matches(self.want, got):
                raise ImageError(
                    f"pull `{ref.familiar()}`: image with reference {ref.familiar()} was found but does not match "
                    f"the specified platform: wanted {self.want}, actual: {got}",
                    "leave out --platform, or choose the platform the image is built for")
        for d in m.layers:
            # refuse unknown layer types, and uncompressed layers over max-layer-size, before downloading
            if mf.compression_of(d.media_type) == "none" and self.limit and d.size > self.limit:
                raise layer_too_big(d.digest, self.limit)
        store.put_blob(data, manifest_digest)
        existing = store.get(m.config.digest)
        records: List[Optional[LayerRecord]] = [None] * len(m.layers)
        known = _known_layers(store)
        n = max(1, int(getattr(self.config, "max_concurrent_downloads", 3) or 3))
        fmt = None
        layer_store = None
        if unpack:
            fmt = _choose_fmt(self.config)
            layer_store = _layer_store(self.config, fmt)
            layer_store.sweep()  # leftovers of killed pulls (a .tmp- layer may be gigabytes)
        from rootless.image.store import chain_ids as _chains

        chains = _chains(diff_ids)
        downloaded_any = False
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(max_workers=n, thread_name_prefix="pull") as pool:
            futures = {}
            for i, d in enumerate(m.layers):
                if d.digest in futures:
                    continue
                ident = d.digest[7:19]
                if layer_store is not None and layer_store.exists(chains[i]) and d.digest in known:
                    self.progress.layer(ident, "Already exists")
                    futures[d.digest] = None
                    continue
                if store.has_blob(d.digest) and d.digest in known:
                    self.progress.layer(ident, "Already exists")
                    futures[d.digest] = None
                    continue
                self.progress.layer(ident, "Pulling fs layer")
                futures[d.digest] = pool.submit(self._layer, d, diff_ids[i], known.get(d.digest),
                                                # unpacked below? then the unpack computes the diff_id
                                                layer_store is not None and not layer_store.exists(chains[i]))
            ids = None
            parent = None
            try:
                for i, d in enumerate(m.layers):
                    fut = futures.get(d.digest)
                    kd: Optional[Tuple[str, int]] = None
                    if fut is not None:
                        kd, did = fut.result()
                        downloaded_any = downloaded_any or did
                    else:
                        kd = known.get(d.digest)
                    if kd is None and (layer_store is None or layer_store.exists(chains[i])):
                        kd = diff_id_of(store.blob_path(d.digest), d.media_type, self.limit, d.digest)
                    if kd is not None:
                        self._check_diff(d, kd[0], diff_ids[i])
                    if layer_store is not None:
                        if ids is None:
                            from rootless import idmap

                            ids = idmap.load()
                        ident = d.digest[7:19]
                        with store.layer_lock(fmt or "", chains[i]):
                            if not layer_store.exists(chains[i]):
                                self.progress.layer(ident, "Extracting")
                                # Not inflated yet (the usual case for a new layer): the unpack
                                # hashes the tar as it writes it, and keeps it only if it is
                                # diff_ids[i] -- one inflate per layer, not two.
                                try:
                                    info = layer_store.create(chains[i], parent, store.blob_path(d.digest),
                                                              d.media_type, d.digest, ids,
                                                              expect_diff_id=diff_ids[i] if kd is None else None)
                                except LayerTooBig:
                                    self._drop_blob(d.digest)
                                    raise
                                if info is not None and kd is None:
                                    self._check_diff(d, info.diff_id, diff_ids[i])
                                    kd = (info.diff_id, info.tar_bytes)
                                for note in getattr(info, "notes", None) or ():
                                    self.progress.message(f"{ident}: note: {note}")
                                downloaded_any = True
                        if kd is None:  # another pull unpacked it meanwhile
                            kd = diff_id_of(store.blob_path(d.digest), d.media_type, self.limit, d.digest)
                            self._check_diff(d, kd[0], diff_ids[i])
                        if fut is not None:
                            self.progress.layer(ident, "Pull complete")
                    assert kd is not None
                    records[i] = LayerRecord(d.digest, d.media_type, d.size, kd[0], kd[1], d.urls)
                    parent = chains[i]
            except BaseException:
                for f in futures.values():
                    if f is not None:
                        f.cancel()
                raise
        refs = [ref.tagged] if ref.tag and not ref.digest else []
        refs.append(f"{ref.name}@{index_digest or manifest_digest}")
        layers = [r for r in records if r is not None]
        img = store.add_image(m.config.digest, layers, manifest_digest=manifest_digest,
                              manifest_media_type=m.media_type, index_digest=index_digest, refs=tuple(refs))
        self.progress.message(f"Digest: {index_digest or manifest_digest}")
        shown = ref.familiar()
        if existing is not None and not downloaded_any:
            self.progress.message(f"Status: Image is up to date for {shown}")
        else:
            self.progress.message(f"Status: Downloaded newer image for {shown}")
        return img

    def _drop_blob(self, digest: str) -> None:
        """Remove a refused layer's blob (a bomb is not worth keeping for GC), unless an image
        already in the store uses it."""
        store = self.store
        with store.blob_lock(digest):
            for iid in store.ids():
                rec = store._read_record(iid) or {}
                if any(layer.get("digest") == digest for layer in rec.get("layers") or []):
                    return
            try:
                os.unlink(store.blob_path(digest))
            except OSError:
                pass

    def _check_diff(self, d: mf.Descriptor, got: str, want: str) -> None:
        if got != want:
            raise ImageError(
                f"pull `{self.ref.familiar()}`: layer `{d.digest}` uncompresses to `{got}`, "
                f"but the image config says `{want}`",
                "the image in the registry is inconsistent; push it again")

    def _layer(self, d: mf.Descriptor, want_diff: str, known: Optional[Tuple[str, int]],
               unpacked_later: bool) -> Tuple[Optional[Tuple[str, int]], bool]:
        """Download one layer blob: ((diff_id, uncompressed size) or None, whether it was downloaded).

        None when ``unpacked_later``: the unpack computes the diff_id then (inflating a layer
        twice, once to hash it and once to unpack it, cost a third of the time of a pull)."""
        ident = d.digest[7:19]
        did = False
        with self.store.blob_lock(d.digest):
            if self.store.has_blob(d.digest):
                self.progress.layer(ident, "Already exists")
                info = known
            else:
                info = self._download(d, ident, want_diff, hash_gzip=not unpacked_later)
                did = True
        if info is None and not unpacked_later:
            info = diff_id_of(self.store.blob_path(d.digest), d.media_type, self.limit, d.digest)
        return info, did

    def _download(self, d: mf.Descriptor, ident: Optional[str], want_diff: Optional[str],
                  hash_gzip: bool = True) -> Optional[Tuple[str, int]]:
        """Fetch one blob into the store (caller holds its blob lock). Returns (diff_id, size) when known."""
        import requests
        import urllib3

        client = self.client
        attempts = client.attempts
        comp = mf.compression_of(d.media_type) if ident is not None else "none"
        sources: List[Callable[[], Any]] = []
        if d.is_foreign and d.urls:
            for u in d.urls:
                if u.startswith("http://") or u.startswith("https://"):
                    sources.append(lambda u=u: client.url_stream(u))
        sources.append(lambda: client.blob_stream(d.digest))
        last_err: Optional[Exception] = None
        for src_i, open_src in enumerate(sources):
            is_last_src = src_i == len(sources) - 1
            for attempt in range(1, attempts + 1):
                w = self.store.blob_writer(d.digest, d.size)
                gz = _GzipHasher(self.limit) if comp == "gzip" and hash_gzip else None
                try:
                    try:
                        r = open_src()
                    except RegistryError as e:
                        if last_err is None or not is_last_src:
                            raise
                        raise ImageError(
                            f"pull `{self.ref.familiar()}`: foreign layer `{d.digest}`: its URLs failed "
                            f"({_short_err(last_err)}) and registry `{client.current.host}` does not have it either",
                            "check the layer's URLs in the manifest, or push the layer to the registry") from e
                    try:
                        got = 0
                        for chunk in client.iter_raw(r):
                            w.write(chunk)
                            if gz is not None:
                                gz.feed(chunk)
                                if gz.too_big:  # a decompression bomb: stop downloading it
                                    raise layer_too_big(d.digest, self.limit)
                            got += len(chunk)
                            if ident is not None:
                                self.progress.layer(ident, "Downloading", got, d.size)
                    finally:
                        r.close()
                    if ident is not None:
                        self.progress.layer(ident, "Verifying Checksum")
                    w.commit()
                    if ident is not None:
                        self.progress.layer(ident, "Download complete")
                    if gz is not None:
                        return gz.result()
                    if comp == "none" and ident is not None:
                        return d.digest, d.size
                    return None
                except DigestMismatch as e:
                    w.abort()
                    host = "" if not is_last_src else client.current.host
                    if not is_last_src:
                        last_err = e
                        break
                    raise ImageError(
                        f"pull `{self.ref.familiar()}`: blob `{d.digest}` from registry `{host}` failed verification: "
                        f"its content has digest `{e.got}`",
                        "the registry or the network corrupted it; the partial file was deleted. "
                        "Pull again; if it fails again, push the image to the registry again")
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                    w.abort()
                    last_err = e
                    if isinstance(e, OSError) and not isinstance(e, (ConnectionError, TimeoutError)) and \
                            not isinstance(e, requests.exceptions.RequestException):
                        raise RootlessError(f"write blob `{d.digest}`: {e.strerror or e}",
                                            "check the free space and permissions of data-root")
                    if not is_last_src:
                        break  # a foreign layer's URL: try the next one once, as docker does
                    if attempt < attempts:
                        if ident is not None:
                            self.progress.layer(ident, f"Retrying in {min(client.retry_base * 2 ** (attempt - 1), 10):g} seconds")
                        client.sleep_backoff(attempt)
                        continue
                    if not is_last_src:
                        break
                    raise RegistryError(
                        f"pull `{self.ref.familiar()}`: download blob `{d.digest}` from registry `{client.current.host}`: "
                        f"{_short_err(e)} (after {attempts} attempts)",
                        "check the network and the registry, then pull again (finished layers are kept)")
                except BaseException:
                    w.abort()
                    raise
        if last_err is not None:
            raise RegistryError(f"pull `{self.ref.familiar()}`: download blob `{d.digest}`: {_short_err(last_err)}")
        return None


def _short_err(e: Exception) -> str:
    from rootless.image.registry import _short

    return _short(str(e)) or type(e).__name__


def _known_layers(store: ImageStore) -> dict:
    """Layer digest -> (diff_id, uncompressed size) from the records already in the store."""
    out = {}
    for iid in store.ids():
        rec = store._read_record(iid)
        for layer in (rec or {}).get("layers") or []:
            if layer.get("diffId") and int(layer.get("uncompressedSize", -1)) >= 0:
                out[layer["digest"]] = (layer["diffId"], int(layer["uncompressedSize"]))
    return {k: v for k, v in out.items() if store.has_blob(k)}


def _layer_store(config: Any, fmt: str):
    from rootless.storage.layers import LayerStore

    return LayerStore(config.data_root, fmt, max_layer_size=max_layer_bytes(config))


def max_layer_bytes(config: Any) -> int:
    """max-layer-size of ``config`` in bytes (0: no limit)."""
    try:
        return int(config.max_layer_bytes)
    except AttributeError:
        return 0


def ensure_layers(config: Any, image: Image, fmt: str) -> List[str]:
    """Directories of ``image``'s layers in format ``fmt`` ("overlay" or "vfs"), bottom first.

    Unpacks from the stored blobs any layer missing in that format, so switching the storage driver
    needs no new pull.
    """
    store = ImageStore(config.data_root).ensure()
    ls = _layer_store(config, fmt)
    out: List[str] = []
    parent: Optional[str] = None
    ids = None
    with store.using_blobs():
        for layer, chain in zip(image.layers, image.chain_ids):
            if not ls.exists(chain):
                with store.layer_lock(fmt, chain):
                    if not ls.exists(chain):
                        blob = store.blob_path(layer.digest)
                        if not os.path.exists(blob):
                            raise ImageError(
                                f"unpack layer `{layer.digest}` of image `{image.short_id}`: the blob is not in the store",
                                "remove the image (`rootless rmi`) and pull it again")
                        if ids is None:
                            from rootless import idmap

                            ids = idmap.load()
                        ls.create(chain, parent, blob, layer.media_type, layer.digest, ids)
            out.append(ls.path(chain))
            parent = chain
    return out
