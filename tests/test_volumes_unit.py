"""volumes: -v / --mount parsing, the volume store, spec mounts, seeding helpers (no namespaces)."""

from __future__ import annotations

import os

import pytest

from rootless.engine import volumes
from rootless.errors import NotFound, RootlessError, UsageError

pytestmark = pytest.mark.nosubuid


def test_parse_volume():
    p = volumes.parse_volume
    assert p("/h:/c") == {"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": False, "Nocopy": False}
    assert p("/h:/c/:ro")["ReadOnly"] is True and p("/h:/c/:ro")["Target"] == "/c"
    assert p("data:/d:rw,z")["Type"] == "volume" and p("data:/d")["Source"] == "data"
    assert p("/anon") == {"Type": "volume", "Source": "", "Target": "/anon", "ReadOnly": False, "Nocopy": False}
    for bad in ("h:c", "./rel:/c", "/h:/c:bogus", "a:b:c:d", "x:/c"):
        with pytest.raises(UsageError):
            p(bad)


def test_parse_mount():
    m = volumes.parse_mount("type=bind,source=/h,target=/c,readonly")
    assert m == {"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": True}
    assert volumes.parse_mount("type=volume,src=data,dst=/d")["Source"] == "data"
    t = volumes.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert t["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1770}
    for bad in ("type=nfs,target=/x", "type=bind,source=rel,target=/x", "type=bind,source=/h", "type=tmpfs,source=/a,target=/b",
                "type=volume,target=/x,colour=red"):
        with pytest.raises(UsageError):
            volumes.parse_mount(bad)


def test_store(tmp_path):
    vs = volumes.VolumeStore(str(tmp_path))
    assert vs.create("data", labels={"a": "b"}) == ("data", True)
    assert vs.create("data") == ("data", False)
    anon, new = vs.create(anonymous=True)
    assert new and len(anon) == 64
    assert vs.names() == sorted(["data", anon])
    info = vs.inspect("data")
    assert info["Mountpoint"] == str(tmp_path / "volumes" / "data" / "_data") and info["Labels"] == {"a": "b"}
    assert info["Driver"] == "local" and info["Scope"] == "local"
    vs.remove("data")
    with pytest.raises(NotFound):
        vs.inspect("data")
    with pytest.raises(UsageError):
        vs.dir("../etc")


def test_spec_mounts():
    ms = volumes.spec_mounts([
        {"Type": "bind", "Source": "/h", "Destination": "/c", "RW": False},
        {"Type": "volume", "Source": "/v/_data", "Destination": "/d", "RW": True},
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "RW": True, "TmpfsOptions": {"SizeBytes": 1024}},
    ])
    assert ms[0] == {"destination": "/c", "type": "bind", "source": "/h", "options": ["rbind", "rprivate", "ro"]}
    assert ms[1]["options"] == ["rbind", "rprivate"]
    assert ms[2] == {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["rw", "nosuid", "nodev", "size=1024"]}


def test_bind_source_checks(tmp_path):
    missing = tmp_path / "new" / "dir"
    volumes._check_bind_source(str(missing), True, "-v")
    assert missing.is_dir()
    with pytest.raises(RootlessError, match="does not exist"):
        volumes._check_bind_source(str(tmp_path / "nope"), False, "--mount")


def test_copy_tree_applies_whiteouts_and_keeps_links(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("x")
    os.symlink("/etc/passwd", src / "link")
    dst.mkdir()
    (dst / "gone").write_text("y")
    volumes._copy_tree(str(src), str(dst))
    assert (dst / "sub" / "f").read_text() == "x"
    assert os.readlink(dst / "link") == "/etc/passwd"
    assert volumes._inside(str(src), "link/x") is None and volumes._inside(str(src), "../x") is None
