"""save and load: docker-archive (docker 25+ layout), classic layout and OCI layout tarballs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.usefixtures("prune_images")


def test_save_then_load(rl, pulled, tmp_path):
    out = str(tmp_path / "bb.tar")
    rl.ok("save", "-o", out, pulled.ref)
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("manifest.json"))
        index = json.load(tf.extractfile("index.json"))
        layer = tf.extractfile(f"blobs/sha256/{pulled.diff_id[7:]}").read()
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert manifest == [{"Config": f"blobs/sha256/{pulled.config_digest[7:]}", "RepoTags": [pulled.ref],
                         "Layers": [f"blobs/sha256/{pulled.diff_id[7:]}"]}]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == pulled.ref
    import hashlib

    assert "sha256:" + hashlib.sha256(layer).hexdigest() == pulled.diff_id
    rl.ok("rmi", pulled.ref)
    r = rl.ok("load", "-i", out)
    assert r.stdout == f"Loaded image: {pulled.ref}\n"
    d = json.loads(rl.ok("image", "inspect", pulled.ref).stdout)[0]
    assert d["Id"] == pulled.config_digest and d["RootFS"]["Layers"] == [pulled.diff_id]
    # load again: idempotent
    assert rl.ok("load", "-q", "-i", out).stdout == ""


def test_save_stdout_load_stdin(rl, pulled, tmp_path):
    rl.ok("tag", pulled.ref, "copy:one")
    r = subprocess.run(rl.argv("save", "copy:one"), env=rl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    data = r.stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert json.load(tf.extractfile("manifest.json"))[0]["RepoTags"] == ["copy:one"]
    rl.ok("rmi", "-f", pulled.config_digest[7:19])
    r = rl.ok("load", input=data)
    assert r.stdout == "Loaded image: copy:one\n"
    # by id: no tags recorded
    out = str(tmp_path / "id.tar")
    rl.ok("save", "-o", out, pulled.config_digest[7:19])
    rl.ok("rmi", "copy:one")
    assert rl.ok("load", "-i", out).stdout == f"Loaded image ID: {pulled.config_digest}\n"


def _tar_dir(src: str, dest: str, gz: bool = False) -> None:
    with tarfile.open(dest, "w:gz" if gz else "w") as tf:
        for name in sorted(os.listdir(src)):
            tf.add(os.path.join(src, name), arcname=name)


def test_load_oci_layout(rl, busybox_image, layered_image, tmp_path):
    t = str(tmp_path / "oci.tar.gz")
    _tar_dir(busybox_image.layout_dir, t, gz=True)
    r = rl.ok("load", "-i", t)
    assert r.stdout == f"Loaded image ID: {busybox_image.config_digest}\n"
    t2 = str(tmp_path / "layered.tar")
    _tar_dir(layered_image.layout_dir, t2)
    r = rl.ok("load", "-i", t2)  # gzip, uncompressed and zstd layers
    assert layered_image.config_digest in r.stdout
    d = json.loads(rl.ok("image", "inspect", layered_image.config_digest[7:19]).stdout)[0]
    assert d["RootFS"]["Layers"] == list(layered_image.diff_ids)


def test_load_classic_layout_and_bad_archive(rl, pulled, tmp_path):
    """The pre-25 docker layout: <id>/layer.tar, <id>.json config, manifest.json."""
    new = str(tmp_path / "modern.tar")
    rl.ok("save", "-o", new, pulled.ref)
    classic = str(tmp_path / "classic.tar")
    with tarfile.open(new) as src, tarfile.open(classic, "w") as dst:
        layer = src.extractfile(f"blobs/sha256/{pulled.diff_id[7:]}").read()
        cfg = src.extractfile(f"blobs/sha256/{pulled.config_digest[7:]}").read()
        for name, data in ((f"{'ab' * 32}/layer.tar", layer), (f"{pulled.config_digest[7:]}.json", cfg),
                           ("manifest.json", json.dumps([{"Config": f"{pulled.config_digest[7:]}.json",
                                                          "RepoTags": ["classic:v1"],
                                                          "Layers": [f"{'ab' * 32}/layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            dst.addfile(ti, io.BytesIO(data))
    assert rl.ok("load", "-i", classic).stdout == "Loaded image: classic:v1\n"
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    r = rl("load", "-i", str(junk))
    assert r.returncode == 125 and "error: load" in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr
    r = rl("load", "-i", str(tmp_path / "missing.tar"))
    assert r.returncode == 125 and "no such file" in r.stderr


def test_save_layered_zstd_roundtrip(rl, layered_image, tmp_path):
    rl.write_config(f'insecure-registries = ["{layered_image.registry.host}"]\n')
    rl.ok("pull", "-q", layered_image.ref)
    out = str(tmp_path / "layered.tar")
    rl.ok("save", "-o", out, layered_image.ref)
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    assert all(f"blobs/sha256/{d[7:]}" in names for d in layered_image.diff_ids)
    rl.ok("rmi", layered_image.ref)
    assert rl.ok("load", "-i", out).stdout == f"Loaded image: {layered_image.ref}\n"
    d = json.loads(rl.ok("image", "inspect", layered_image.ref).stdout)[0]
    assert d["RootFS"]["Layers"] == list(layered_image.diff_ids)
