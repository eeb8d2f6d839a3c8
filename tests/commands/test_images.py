"""images, image inspect/ls/rm/prune, history, tag, rmi, system df: the docker-shaped outputs."""

from __future__ import annotations

import json
import os
import re

import pytest

pytestmark = pytest.mark.usefixtures("prune_images")


def test_images_table(rl, pulled):
    out = rl.ok("images").stdout.splitlines()
    assert re.match(r"^REPOSITORY\s{3,}TAG\s{3,}IMAGE ID\s{3,}CREATED\s{3,}SIZE$", out[0])
    repo = pulled.ref.rsplit(":", 1)[0]
    cols = re.split(r"\s{3,}", out[1])
    assert cols[0] == repo and cols[1] == "latest" and cols[2] == pulled.config_digest[7:19]
    assert cols[3].endswith(" ago") and re.match(r"^[\d.]+[kMG]?B$", cols[4])
    out = rl.ok("images", "--digests").stdout.splitlines()
    assert "DIGEST" in out[0] and pulled.digest in out[1]
    assert rl.ok("images", "-q").stdout == pulled.config_digest[7:19] + "\n"
    assert rl.ok("images", "-q", "--no-trunc").stdout == pulled.config_digest + "\n"
    assert rl.ok("image", "ls", "-q").stdout == pulled.config_digest[7:19] + "\n"
    assert rl.ok("images", repo).stdout.count("\n") == 2
    assert rl.ok("images", "other/name").stdout.count("\n") == 1


def test_images_format_and_filters(rl, pulled):
    repo = pulled.ref.rsplit(":", 1)[0]
    out = rl.ok("images", "--format", "{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Digest}}").stdout
    assert out == f"{repo}|latest|{pulled.config_digest[7:19]}|{pulled.digest}\n"
    rows = [json.loads(x) for x in rl.ok("images", "--format", "json").stdout.splitlines()]
    assert rows[0]["Repository"] == repo and rows[0]["Tag"] == "latest"
    out = rl.ok("images", "--format", "table {{.Repository}}\t{{.Tag}}").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG"]
    assert rl.ok("images", "-q", "--filter", "dangling=true").stdout == ""
    assert rl.ok("images", "-q", "--filter", "dangling=false").stdout != ""
    assert rl.ok("images", "-q", "--filter", "reference=*/busybox").stdout != ""
    assert rl.ok("images", "-q", "--filter", "reference=*/busybox:latest").stdout != ""
    assert rl.ok("images", "-q", "--filter", "reference=nginx*").stdout == ""
    r = rl("images", "--filter", "color=blue")
    assert r.returncode == 125 and "invalid filter 'color'" in r.stderr and "hint:" in r.stderr


def test_inspect_shape(rl, pulled):
    d = json.loads(rl.ok("image", "inspect", pulled.ref).stdout)
    assert isinstance(d, list) and len(d) == 1
    d = d[0]
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Config", "Architecture",
                "Os", "Size", "GraphDriver", "RootFS", "Metadata"):
        assert key in d, key
    assert d["RepoTags"] == [pulled.ref]
    assert d["Config"]["Cmd"] == ["sh"] and d["Config"]["Env"][0].startswith("PATH=")
    assert d["Architecture"] == "amd64" and d["Os"] == "linux"
    assert d["Size"] > 1000000
    assert d["GraphDriver"]["Name"] in ("overlay2", "fuse-overlayfs", "vfs")
    assert d["RootFS"]["Layers"] == [pulled.diff_id]
    r = rl("image", "inspect", "nosuch:image")
    assert r.returncode == 1 and "No such image: nosuch:image" in r.stderr
    assert "Traceback" not in r.stderr


def test_tag_history_rmi(rl, pulled):
    rl.ok("tag", pulled.ref, "mytest/app:v1")
    rl.ok("tag", pulled.config_digest[7:19], "other")
    out = rl.ok("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(out) == sorted([pulled.ref, "mytest/app:v1", "other:latest"])
    h = rl.ok("history", "mytest/app:v1").stdout.splitlines()
    assert re.split(r"\s{3,}", h[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert h[1].startswith(pulled.config_digest[7:19]) and "busybox-static from the test host" in h[1]
    assert rl.ok("history", "-q", "other").stdout == pulled.config_digest[7:19] + "\n"
    # by id with tags in several repositories: refused without -f
    r = rl("rmi", pulled.config_digest[7:19])
    assert r.returncode == 125 and "referenced in multiple repositories" in r.stderr and "hint:" in r.stderr
    r = rl.ok("rmi", "mytest/app:v1")
    assert r.stdout == "Untagged: mytest/app:v1\n"
    r = rl("tag", "nosuch", "x")
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr
    r = rl("tag", "other", "x@sha256:" + "a" * 64)
    assert r.returncode == 125 and "digest" in r.stderr
    rl.ok("rmi", "other")
    r = rl.ok("rmi", pulled.ref)
    assert f"Untagged: {pulled.ref}" in r.stdout and f"Deleted: {pulled.config_digest}" in r.stdout
    assert rl.ok("images", "-q").stdout == ""
    image_dir = os.path.join(rl.data_root, "image", "blobs", "sha256")
    assert os.listdir(image_dir) == []
    overlay = os.path.join(rl.data_root, "overlay", "layers")
    assert not os.path.isdir(overlay) or [n for n in os.listdir(overlay) if not n.startswith(".")] == []
    r = rl("rmi", "nosuch")
    assert r.returncode == 1 and "No such image: nosuch" in r.stderr


def test_rmi_refuses_image_in_use(rl, pulled):
    cid = rl.ok("create", "--network", "none", pulled.ref, "true").stdout.strip()
    r = rl("rmi", pulled.ref)
    assert r.returncode == 125 and cid[:12] in r.stderr and "must force" in r.stderr and "hint:" in r.stderr
    r = rl("rmi", pulled.config_digest[7:19])
    assert r.returncode == 125 and "being used by container" in r.stderr
    r = rl.ok("rmi", "-f", pulled.ref)
    assert "Untagged:" in r.stdout and "Deleted:" not in r.stdout
    # the image stays (dangling) for the container
    assert rl.ok("images", "-q", "--filter", "dangling=true").stdout == pulled.config_digest[7:19] + "\n"
    out = rl.ok("system", "df").stdout.splitlines()
    assert re.split(r"\s{3,}", out[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert re.split(r"\s{3,}", out[1])[:3] == ["Images", "1", "1"]
    assert [re.split(r"\s{3,}", x)[0] for x in out[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    # prune keeps an image a container uses
    r = rl.ok("image", "prune", "-f")
    assert "Total reclaimed space: 0B" in r.stdout
    rl.ok("rm", cid)
    r = rl.ok("image", "prune", "-f")
    assert f"deleted: {pulled.config_digest}" in r.stdout
    assert rl.ok("images", "-q").stdout == ""


def test_prune_all_and_system(rl, pulled):
    r = rl.ok("image", "prune", "-f")
    assert "Total reclaimed space: 0B" in r.stdout and rl.ok("images", "-q").stdout != ""
    r = rl.ok("image", "prune", "-a", input=b"n\n")
    assert "Are you sure" in r.stdout and rl.ok("images", "-q").stdout != ""
    r = rl.ok("system", "prune", "-a", "-f")
    assert f"untagged: {pulled.ref}" in r.stdout and "Total reclaimed space:" in r.stdout
    assert rl.ok("images", "-q").stdout == ""
    out = rl.ok("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout
    assert out.splitlines()[0] == "Images 0"


def test_store_lookup_api(rl, pulled):
    """The run path's API: lookup by name, tag, digest, full and short id; no requests import."""
    import subprocess
    import sys

    code = f"""
import sys
from rootless.image.store import ImageStore
s = ImageStore({rl.data_root!r})
ref = {pulled.ref!r}
name = ref.rsplit(":", 1)[0]
iid = {pulled.config_digest!r}
for key in (ref, name, name + "@" + {pulled.digest!r}, iid, iid[7:], iid[7:19], iid[:15]):
    img = s.lookup(key)
    assert img is not None and img.id == iid, key
    assert img.repo_tags == (ref,) and img.chain_ids[0] == {pulled.diff_id!r}
    assert img.config["config"]["Cmd"] == ["sh"] and img.size > 0
assert s.lookup("nosuch") is None and s.lookup("busybox") is None
assert "requests" not in sys.modules
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], env=rl.env, capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr


def test_switch_driver_unpacks_without_download(rl, pulled):
    host = pulled.registry.host
    rl.write_config(f'insecure-registries = ["{host}"]\nstorage-driver = "vfs"\n')
    r = rl.ok("pull", pulled.ref)
    assert "Downloading" not in r.stdout and "Verifying Checksum" not in r.stdout
    assert os.path.isdir(os.path.join(rl.data_root, "vfs", "layers", pulled.diff_id[7:]))
    d = json.loads(rl.ok("image", "inspect", pulled.ref).stdout)[0]
    assert d["GraphDriver"] == {"Data": None, "Name": "vfs"}


def test_system_info_alias_and_image_help(rl):
    assert rl.ok("system", "info").returncode == 0
    r = rl("image")
    assert r.returncode == 125 and "subcommand" in r.stderr and "hint:" in r.stderr
    r = rl("system")
    assert r.returncode == 125 and "hint:" in r.stderr
