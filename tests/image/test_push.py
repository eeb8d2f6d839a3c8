"""push back to the test registries; skopeo checks what arrived."""

from __future__ import annotations

import json
import os
import shutil

import pytest


@pytest.fixture(autouse=True)
def _remove_layers(rl):
    """Unpacked layers belong to subordinate ids, which pytest cannot delete: prune them."""
    yield
    if os.path.isdir(rl.data_root):
        rl("system", "prune", "-a", "-f")


def _skopeo_inspect(reg, repo_tag):
    return json.loads(reg.inspect_raw(repo_tag))


def test_push_pulled_image_keeps_digest(rl, busybox_image):
    reg = busybox_image.registry
    rl.write_config(f'insecure-registries = ["{reg.host}"]\n')
    rl.ok("pull", "-q", busybox_image.ref)
    target = reg.ref("pushed/busybox:v1")
    rl.ok("tag", busybox_image.ref, target)
    r = rl.ok("push", target)
    assert f"The push refers to repository [{reg.host}/pushed/busybox]" in r.stdout
    assert f"v1: digest: {busybox_image.digest} size:" in r.stdout
    assert reg.manifest_digest("pushed/busybox:v1") == busybox_image.digest
    r = rl.ok("push", target)
    assert "Layer already exists" in r.stdout
    d = json.loads(rl.ok("image", "inspect", target).stdout)[0]
    assert f"{reg.host}/pushed/busybox@{busybox_image.digest}" in d["RepoDigests"]
    r = rl("push", reg.ref("never/tagged:v1"))
    assert r.returncode == 125 and "An image does not exist locally with the tag" in r.stderr


def test_push_loaded_image_and_pull_it_back(rl, busybox_image, tmp_path):
    reg = busybox_image.registry
    rl.write_config(f'insecure-registries = ["{reg.host}"]\n')
    rl.ok("pull", "-q", busybox_image.ref)
    tar = str(tmp_path / "bb.tar")
    rl.ok("save", "-o", tar, busybox_image.ref)
    rl.ok("rmi", busybox_image.ref)
    rl.ok("load", "-i", tar)  # layers are stored uncompressed now: push gzips them
    target = reg.ref("loaded/busybox:latest")
    rl.ok("tag", busybox_image.ref, target)
    rl.ok("push", target)
    m = _skopeo_inspect(reg, "loaded/busybox:latest")
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["digest"] == busybox_image.config_digest
    assert m["layers"][0]["mediaType"].endswith("tar.gzip")
    # skopeo can copy it (all blobs are there and valid)
    from fixtures import oci

    out = str(tmp_path / "copied")
    oci.skopeo("copy", "-q", *reg.skopeo_src_flags(), f"docker://{target}", f"oci:{out}:x", env=reg.skopeo_env())
    # and a fresh store pulls it
    rl.ok("system", "prune", "-a", "-f")
    rl.write_config(f'insecure-registries = ["{reg.host}"]\ndata-root = "{tmp_path / "fresh"}"\n')
    rl.ok("pull", "-q", target)
    d = json.loads(rl.ok("image", "inspect", target).stdout)[0]
    assert d["Id"] == busybox_image.config_digest
    rl.ok("system", "prune", "-a", "-f")


def test_push_with_basic_auth(rl, auth_busybox, busybox_image):
    reg = auth_busybox.registry
    certs = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "certs.d", reg.host)
    os.makedirs(certs)
    shutil.copyfile(reg.ca_path, os.path.join(certs, "ca.crt"))
    rl.write_config(f'insecure-registries = ["{busybox_image.registry.host}"]\n')
    rl.ok("pull", "-q", busybox_image.ref)
    target = reg.ref("mine/busybox:auth")
    rl.ok("tag", busybox_image.ref, target)
    r = rl("push", target)
    assert r.returncode == 125 and "unauthorized" in r.stderr and "rootless login" in r.stderr
    rl.ok("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password.encode())
    rl.ok("push", target)
    assert reg.manifest_digest("mine/busybox:auth") == busybox_image.digest


def test_push_with_token_auth(rl, token_busybox, busybox_image):
    reg = token_busybox.registry
    certs = os.path.join(rl.env["XDG_CONFIG_HOME"], "rootless", "certs.d", reg.host)
    os.makedirs(certs)
    shutil.copyfile(reg.ca_path, os.path.join(certs, "ca.crt"))
    rl.ok("pull", "-q", token_busybox.oci_ref)
    target = reg.ref("mine/busybox:token")
    rl.ok("tag", token_busybox.oci_ref, target)
    r = rl("push", target)
    assert r.returncode == 125 and "unauthorized" in r.stderr
    rl.ok("login", "-u", reg.username, "--password-stdin", reg.host, input=reg.password.encode())
    rl.ok("push", target)
    assert reg.manifest_digest("mine/busybox:token") == token_busybox.oci_digest
