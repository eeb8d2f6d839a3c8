"""Hostile layers against pull and unpack (issue 11 item 12): decompression bombs, giant tar
metadata, and what a killed pull leaves behind. The images are built by the tests and pushed to the
loopback test registry; the engine pulls them through its real CLI.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest

from fixtures.hostile_pull import peak_rss_kib, push_bomb

GIB = 1 << 30
RSS_LIMIT_KIB = 200 * 1024  # the issue's bound for the engine's processes
BOMB_TIMEOUT = 120  # the old code had not finished after 11 minutes


@pytest.fixture(autouse=True)
def _remove_layers(rl):
    """Unpacked layers belong to subordinate ids, which pytest cannot delete: prune them (the bomb's
    layer is 2 GiB: do not leave it behind)."""
    yield
    if os.path.isdir(rl.data_root):
        rl("system", "prune", "-a", "-f", env={"ROOTLESS_WARM": "0"})


def insecure(rl, reg, extra: str = "") -> None:
    rl.write_config(f'insecure-registries = ["{reg.host}"]\n' + extra)


def layer_dirs(rl):
    """Every entry of the layer stores (final layers, .tmp- and .del- leftovers), both formats."""
    out = []
    for fmt in ("overlay", "vfs"):
        d = os.path.join(rl.data_root, fmt, "layers")
        if os.path.isdir(d):
            out += [f"{fmt}/{n}" for n in os.listdir(d) if not n.startswith(".lock-")]
    return sorted(out)


def test_gzip_bomb_pulls_in_bounded_memory_and_time(rl, registry, zero_bomb):
    """2 MB of gzip that inflates to a 2 GiB file of zeros: the pull (download, diff_id check,
    unpack in its user-namespace child) stays under 200 MB RSS and finishes in bounded time."""
    bomb = zero_bomb(2 * GIB)
    assert bomb.size < 4 << 20
    pushed = push_bomb(registry, "bomb", bomb)
    insecure(rl, registry)
    env = dict(rl.env, ROOTLESS_WARM="0")  # the pull runs in the process we measure, not in the warm server
    t0 = time.monotonic()
    try:
        rc, out, err, rss = peak_rss_kib(rl.argv("pull", "-q", pushed.ref), env, timeout=BOMB_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pulling the 2 GiB gzip bomb took more than {BOMB_TIMEOUT} s")
    seconds = time.monotonic() - t0
    assert rc == 0, err
    print(f"bomb pull: {seconds:.1f} s, peak RSS {rss / 1024:.0f} MiB")
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss / 1024:.0f} MiB"
    # The layer is there, whole: its recorded size is the 2 GiB file.
    metas = []
    for fmt in ("overlay", "vfs"):
        d = os.path.join(rl.data_root, fmt, "layers-meta")
        if os.path.isdir(d):
            for n in os.listdir(d):
                with open(os.path.join(d, n)) as f:
                    metas.append(json.load(f))
    assert [m["size"] for m in metas if m["digest"] == pushed.layer_digest] == [bomb.file_size]


def test_gzip_bomb_refused_by_max_layer_size(rl, registry, zero_bomb):
    """With max-layer-size = "256m" the same bomb is refused with error/hint, and nothing of it is
    kept: no image, no blob, no partial download, no layer directory."""
    bomb = zero_bomb(2 * GIB)
    pushed = push_bomb(registry, "bomb", bomb)
    insecure(rl, registry, 'max-layer-size = "256m"\n')
    r = rl("pull", pushed.ref, timeout=BOMB_TIMEOUT)
    assert r.returncode == 125, str(r)
    assert "Traceback" not in r.stderr, str(r)
    assert r.stderr.startswith("error: "), str(r)
    assert f"unpack layer `{pushed.layer_digest}`: uncompressed size exceeds max-layer-size (256 MiB)" in r.stderr, str(r)
    assert "\nhint: " in r.stderr and "max-layer-size" in r.stderr.split("\nhint: ", 1)[1], str(r)
    assert rl.ok("images", "-q").stdout == ""
    blobs = os.listdir(os.path.join(rl.data_root, "image", "blobs", "sha256"))
    assert pushed.layer_digest[7:] not in blobs
    assert os.listdir(os.path.join(rl.data_root, "image", "tmp")) == []
    assert layer_dirs(rl) == []


def test_max_layer_size_also_bounds_the_unpack(rl, registry, push_layer_image):
    """A layer stored before the limit was lowered (or a zstd one, which is not inflated while it
    downloads) is refused by the unpack child itself; its .tmp- directory does not stay."""
    from fixtures.oci import F

    pushed = push_layer_image("midsize", [[F("data.bin", b"\0" * (3 << 20))]], compression="zstd", raw=True)
    insecure(rl, registry, 'max-layer-size = "1m"\n')
    r = rl("pull", pushed.ref)
    assert r.returncode == 125 and "Traceback" not in r.stderr, str(r)
    assert f"unpack layer `{pushed.layer_digests[0]}`: uncompressed size exceeds max-layer-size (1 MiB)" in r.stderr, str(r)
    assert "\nhint: " in r.stderr
    assert rl.ok("images", "-q").stdout == ""
    assert layer_dirs(rl) == []
    insecure(rl, registry)  # the default (64g) takes it
    rl.ok("pull", pushed.ref)


def test_max_layer_size_config_is_validated(rl):
    rl.write_config('max-layer-size = "10GB"\n')
    rl.ok("images")
    rl.write_config('max-layer-size = "lots"\n')
    r = rl("images")
    assert r.returncode != 0 and r.stderr.startswith("error: ") and "max-layer-size" in r.stderr, str(r)


@pytest.fixture
def bomb_manifest_registry():
    """A hostile registry on loopback: its manifest is 1 GiB of JSON whitespace, sent as ~1 MB
    with Content-Encoding: gzip (requests would inflate it whole into memory)."""
    import threading
    import zlib
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1 << 20)
    body = b"".join([co.compress(chunk) for _ in range(1024)] + [co.flush()])

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/v2/":
                data, headers = b"{}", {"Content-Type": "application/json"}
            elif self.path.startswith("/v2/bomb/manifests/"):
                data, headers = body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                       "Content-Encoding": "gzip"}
            else:
                data, headers = b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}', {}
                self.send_response(404)
            if self.path == "/v2/" or self.path.startswith("/v2/bomb/manifests/"):
                self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                pass

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_manifest_bomb_is_refused_with_bounded_memory(rl, bomb_manifest_registry):
    host = bomb_manifest_registry
    rl.write_config(f'insecure-registries = ["{host}"]\n')
    env = dict(rl.env, ROOTLESS_WARM="0")
    rc, out, err, rss = peak_rss_kib(rl.argv("pull", f"{host}/bomb:latest"), env, timeout=BOMB_TIMEOUT)
    assert rc == 125 and "Traceback" not in err, err
    assert err.startswith("error: ") and "\nhint: " in err, err
    assert "larger than 4096 KiB" in err, err
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss / 1024:.0f} MiB"


def _pax_bomb_layer(path: str, header_size: int) -> None:
    """A gzip layer whose first entry is a PAX extended header of ``header_size`` bytes (a
    record "... comment=AAAA...") that tarfile would read whole into memory."""
    rec_body = b" comment="
    n = header_size
    digits = len(str(n))
    body_len = n - digits - len(rec_body) - 1
    head = tarfile.TarInfo("././@PaxHeader")
    head.type = tarfile.XHDTYPE
    head.size = n
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(head.tobuf(tarfile.USTAR_FORMAT))
        f.write(str(n).encode() + rec_body)
        chunk = b"A" * (1 << 20)
        left = body_len
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
        f.write(b"\n" + b"\0" * ((-n) % 512))
        ti = tarfile.TarInfo("x")
        f.write(ti.tobuf(tarfile.USTAR_FORMAT) + b"\0" * 1024)


def test_giant_pax_header_is_refused_with_bounded_memory(rl, registry, push_layer_image, tmp_path):
    """A 512 MiB PAX header (a few hundred KB of gzip): refused before tarfile reads it, so the
    unpack child stays small."""
    path = str(tmp_path / "pax.tar.gz")
    _pax_bomb_layer(path, 512 << 20)
    from fixtures import oci

    with open(path, "rb") as f:
        blob = f.read()
    # push the gzip blob as it is, with the diff_id of its tar
    import hashlib

    h = hashlib.sha256()
    size = 0
    with gzip.open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            size += len(b)
    s = registry.requests_session()
    cfg = oci.canonical_json({"architecture": "amd64", "os": "linux",
                              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}})
    cfg_digest = oci.push_blob_raw(registry.url, "paxbomb", cfg, session=s, verify=s.verify)
    layer_digest = oci.push_blob_raw(registry.url, "paxbomb", blob, session=s, verify=s.verify)
    manifest = oci.canonical_json({
        "schemaVersion": 2, "mediaType": oci.MT_OCI_MANIFEST,
        "config": {"mediaType": oci.MT_OCI_CONFIG, "digest": cfg_digest, "size": len(cfg)},
        "layers": [{"mediaType": oci.MT_OCI_LAYER_GZIP, "digest": layer_digest, "size": len(blob)}]})
    oci.put_manifest_raw(registry.url, "paxbomb", "latest", manifest, oci.MT_OCI_MANIFEST, session=s, verify=s.verify)
    insecure(rl, registry)
    env = dict(rl.env, ROOTLESS_WARM="0")
    rc, out, err, rss = peak_rss_kib(rl.argv("pull", registry.ref("paxbomb:latest")), env, timeout=BOMB_TIMEOUT)
    assert rc == 125 and "Traceback" not in err, err
    assert err.startswith("error: ") and "\nhint: " in err, err
    assert f"unpack layer `{layer_digest}`" in err and "tar metadata block of" in err, err
    assert rss < RSS_LIMIT_KIB, f"peak RSS {rss / 1024:.0f} MiB"
    assert layer_dirs(rl) == []


def test_killed_unpack_leaves_no_partial_layer(rl, registry, zero_bomb, busybox_image):
    """kill -9 of a pull while it unpacks leaves a .tmp- layer directory; the next pull (of
    another image) removes it, as it is ours and no live unpack holds its lock."""
    bomb = zero_bomb(2 * GIB)
    pushed = push_bomb(registry, "bomb", bomb, tag="kill")
    insecure(rl, registry)
    env = dict(rl.env, ROOTLESS_WARM="0")
    p = subprocess.Popen(rl.argv("pull", "-q", pushed.ref), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    seen = []
    deadline = time.monotonic() + BOMB_TIMEOUT
    while time.monotonic() < deadline and p.poll() is None:
        seen = [n for n in layer_dirs(rl) if "/.tmp-" in n]
        if seen:
            time.sleep(0.5)  # well inside the unpack of 2 GiB
            os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    p.wait()
    assert seen, "the pull finished (or failed) before it started unpacking"
    time.sleep(0.5)  # the unpack child dies with its parent (pdeathsig)
    assert [n for n in layer_dirs(rl) if "/.tmp-" in n] == seen
    rl.ok("pull", "-q", busybox_image.ref)
    assert [n for n in layer_dirs(rl) if "/.tmp-" in n] == []
    assert rl.ok("images", "-q", "--no-trunc").stdout.strip() == busybox_image.config_digest


def test_layer_that_is_not_its_diff_id_is_not_kept(rl, registry, zero_bomb):
    """The diff_id is now checked while the layer unpacks (one inflate, not two): a layer whose tar
    is not what the config says is refused, and its unpacked directory is not kept."""
    import dataclasses

    bomb = dataclasses.replace(zero_bomb(1 << 20), diff_id="sha256:" + "0" * 64)
    pushed = push_bomb(registry, "liar", bomb)
    insecure(rl, registry)
    r = rl("pull", pushed.ref)
    assert r.returncode == 125 and "Traceback" not in r.stderr, str(r)
    assert f"layer `{pushed.layer_digest}` uncompresses to `sha256:" in r.stderr, str(r)
    assert "but the image config says `sha256:" + "0" * 64 in r.stderr and "\nhint: " in r.stderr, str(r)
    assert rl.ok("images", "-q").stdout == ""
    assert layer_dirs(rl) == []


def test_inflate_gzip_is_bounded_and_exact():
    """The shared inflater: members concatenated, zero padding accepted, truncation refused, and no
    piece larger than asked, whatever the ratio (64 MiB of zeros from 64 KB)."""
    import io
    import zlib

    from rootless.image.unpack import inflate_gzip

    data = os.urandom(300_000) + b"x" * 700_000
    blob = gzip.compress(data[:400_000]) + gzip.compress(data[400_000:]) + b"\0" * 700
    assert b"".join(inflate_gzip(io.BytesIO(blob).read, 4096)) == data
    with pytest.raises(OSError, match="ended before"):
        b"".join(inflate_gzip(io.BytesIO(blob[:-800]).read))
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join([co.compress(bytes(1 << 20)) for _ in range(64)] + [co.flush()])
    assert len(bomb) < 100_000
    sizes = [len(b) for b in inflate_gzip(io.BytesIO(bomb).read, 1 << 20)]
    assert sum(sizes) == 64 << 20 and max(sizes) <= 1 << 20
