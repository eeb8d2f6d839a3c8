"""The one-file build: runs alone, from any folder, without our site-packages; reproducible."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.nosubuid


def _pyz():
    p = os.environ.get("ROOTLESS_TEST_PYZ")
    if not p:
        pytest.skip("ROOTLESS_TEST_PYZ is not set (tests/run builds the .pyz and sets it)")
    return p


def test_pyz_runs_alone_in_another_folder(tmp_path):
    dst = tmp_path / "rootless.pyz"
    shutil.copy(_pyz(), dst)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    # -I: isolated mode, no user site; -S: no site-packages at all. Only what is inside the .pyz.
    r = subprocess.run(["/usr/bin/python3", "-I", "-S", str(dst), "--version"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("rootless version ")
    r = subprocess.run([str(dst), "info", "--format", "{{.DockerRootDir}}"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / ".local/share/rootless")
    # the vendored packages come from the archive (or its unpacked cache), not from the system
    code = "import requests, pyroute2, sys; print(requests.__file__)"
    r = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(dst)!r}); {code}"],
        env=env, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(dst))


def test_pyz_unpacks_once_into_a_private_cache(tmp_path):
    dst = tmp_path / "rootless.pyz"
    shutil.copy(_pyz(), dst)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for _ in range(2):
        r = subprocess.run(["/usr/bin/python3", str(dst), "--version"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    caches = glob.glob(str(tmp_path / ".cache/rootless/pyz-*"))
    assert len(caches) == 1 and os.path.exists(os.path.join(caches[0], ".complete"))
    assert not os.stat(caches[0]).st_mode & 0o022


def test_pyz_works_when_the_cache_cannot_be_written(tmp_path):
    dst = tmp_path / "rootless.pyz"
    shutil.copy(_pyz(), dst)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(ro / "cache")}
    r = subprocess.run(["/usr/bin/python3", str(dst), "--version"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("rootless version"), r.stderr


def _vendor_ready():
    return glob.glob(os.path.join(ROOT, "build", "vendor-*", ".complete"))


def test_build_is_reproducible(tmp_path):
    if not _vendor_ready():
        pytest.skip("no vendored packages cached in build/ (tests/run builds once before the tests)")
    outs = []
    for name in ("a.pyz", "b.pyz"):
        out = tmp_path / name
        r = subprocess.run([sys.executable, os.path.join(ROOT, "build.py"), "-o", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert outs[0] == outs[1]
    head = (tmp_path / "a.pyz").read_bytes()[:23]
    assert head == b"#!/usr/bin/env python3\n"
    assert os.stat(tmp_path / "a.pyz").st_mode & 0o111
