"""storage drivers: the plans they give the runtime, reading files through the layers, the vfs
copy, and cleanup of files owned by subordinate uids (real user namespaces, real copies)."""

from __future__ import annotations

import os
import stat

import pytest

from fixtures.users import has_subuid
from rootless import idmap
from rootless.errors import RootlessError
from rootless.runtime import ExecStep, MountStep, run_in_userns
from rootless.storage.base import get_driver, overlay_lookup, safe_read
from rootless.storage.overlay import overlay_read

CID = "c" * 64
subuid_only = pytest.mark.skipif(not has_subuid(), reason="needs a /etc/subuid range")


def _make_layer(path: str, owner: int) -> None:
    """Runs as root of a user namespace: a tiny rootfs with a file of container uid ``owner``."""
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "home", "app"))
    with open(os.path.join(path, "bin", "tool"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(os.path.join(path, "bin", "tool"), 0o755)
    os.link(os.path.join(path, "bin", "tool"), os.path.join(path, "bin", "tool2"))
    os.symlink("tool", os.path.join(path, "bin", "link"))
    os.setxattr(os.path.join(path, "bin", "tool"), "user.test", b"hello")
    with open(os.path.join(path, "home", "app", "f"), "w") as f:
        f.write("app\n")
    os.chown(os.path.join(path, "home", "app", "f"), owner, owner)
    os.chown(os.path.join(path, "home", "app"), owner, owner)


def _write_owned(path: str, owner: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("x")
    os.chown(path, owner, owner)
    os.chown(os.path.dirname(path), owner, owner)
    os.chmod(os.path.dirname(path), 0o700)


@pytest.mark.nosubuid
def test_overlay_plan(tmp_path):
    d = get_driver("overlay2", str(tmp_path))
    layers = [str(tmp_path / "l1"), str(tmp_path / "l2")]
    plan = d.prepare(CID, layers)
    c = tmp_path / "overlay" / "containers" / CID
    assert plan.rootfs == str(c / "merged")
    assert plan.steps == [MountStep("overlay", str(c / "merged"), "overlay", [],
                                    f"lowerdir={layers[1]}:{layers[0]},upperdir={c}/diff,workdir={c}/work,userxattr")]
    for sub in ("diff", "work", "merged"):
        assert (c / sub).is_dir()
    assert d.prepare(CID, layers) == plan  # idempotent: create and start both call it
    assert d.upper_dir(CID) == str(c / "diff")
    with pytest.raises(RootlessError, match="too long"):
        d.prepare(CID, [str(tmp_path / ("x" * 200)) + str(i) for i in range(30)])
    with pytest.raises(RootlessError):
        d.prepare("../../x", layers)


@pytest.mark.nosubuid
def test_fuse_overlayfs_plan(tmp_path):
    d = get_driver("fuse-overlayfs", str(tmp_path))
    plan = d.prepare(CID, [str(tmp_path / "l1")])
    c = tmp_path / "overlay" / "containers" / CID
    (step,) = plan.steps
    assert isinstance(step, ExecStep) and step.wait_mount == str(c / "merged")
    assert step.argv[:3] == ["fuse-overlayfs", "-f", "-o"] and step.argv[-1] == str(c / "merged")
    assert "userxattr" not in step.argv[3] and f"upperdir={c}/diff" in step.argv[3]


@pytest.mark.nosubuid
def test_unknown_driver(tmp_path):
    with pytest.raises(RootlessError, match="unknown driver"):
        get_driver("btrfs", str(tmp_path))


@pytest.mark.nosubuid
def test_overlay_read_follows_overlay_rules(tmp_path):
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    for d in (low / "etc", mid / "etc", top, low / "opq", mid / "opq"):
        d.mkdir(parents=True)
    (low / "etc" / "passwd").write_text("low\n")
    (low / "etc" / "group").write_text("low-group\n")
    (low / "opq" / "hidden").write_text("h\n")
    (mid / "etc" / "group").write_text("mid-group\n")
    layers = [str(top), str(mid), str(low)]  # top first
    assert overlay_read(layers, "/etc/passwd") == b"low\n"
    assert overlay_read(layers, "/etc/group") == b"mid-group\n"
    os.setxattr(str(mid / "opq"), "user.overlay.opaque", b"y")
    assert overlay_read(layers, "/opq/hidden") is None  # an opaque dir hides what is below
    (top / "etc").symlink_to("/etc")
    assert overlay_read(layers, "/etc/passwd") is None  # never follows a link out of the rootfs
    assert overlay_read(layers, "/../etc/passwd") is None


def _whiteout(path: str) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


@pytest.mark.nosubuid
def test_overlay_read_whiteout(tmp_path):
    low, top = tmp_path / "low", tmp_path / "top"
    (low / "etc").mkdir(parents=True)
    (top / "etc").mkdir(parents=True)
    (low / "etc" / "passwd").write_text("low\n")
    try:
        run_in_userns(_whiteout, str(top / "etc" / "passwd"), ids=idmap.load())
    except RootlessError as e:
        pytest.skip(f"cannot make a whiteout here: {e}")
    assert overlay_read([str(top), str(low)], "/etc/passwd") is None


@pytest.mark.nosubuid
def test_overlay_lookup_fuse_overlayfs_forms(tmp_path):
    """The one lookup behind read_file and `diff`: fuse-overlayfs's `.wh.NAME` whiteouts and
    opaque xattr hide lower layers too; a file on the way hides the directories below it."""
    low, top = tmp_path / "low", tmp_path / "top"
    for d in (low / "etc", low / "opq", low / "d", top / "etc", top / "opq"):
        d.mkdir(parents=True)
    (low / "etc" / "passwd").write_text("low\n")
    (low / "etc" / "group").write_text("low\n")
    (low / "opq" / "hidden").write_text("h\n")
    (low / "d" / "x").write_text("x\n")
    (top / "d").write_text("a file over the directory\n")
    layers = [str(top), str(low)]
    assert overlay_lookup(layers, "/etc/group") == str(low)
    (top / "etc" / ".wh.group").write_text("")
    assert overlay_lookup(layers, "/etc/group") is None
    assert overlay_lookup(layers, "/etc/passwd") == str(low)
    assert overlay_lookup(layers, "/d/x") is None
    assert overlay_lookup(layers, "/etc") == str(top)
    assert overlay_lookup(layers, "/opq/hidden") == str(low)
    os.setxattr(str(top / "opq"), "user.fuseoverlayfs.opaque", b"y")
    assert overlay_lookup(layers, "/opq/hidden") is None
    assert overlay_lookup(layers, "/nope") is None


@pytest.mark.nosubuid
def test_safe_read_refuses_links_and_non_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("ok")
    (tmp_path / "l").symlink_to("f")
    assert safe_read(str(tmp_path), "/f") == b"ok"
    assert safe_read(str(tmp_path), "/l") is None
    assert safe_read(str(tmp_path), "/d") is None
    assert safe_read(str(tmp_path), "/nope") is None


@pytest.mark.nosubuid
def test_vfs_copies_owners_modes_hardlinks_and_links(tmp_path):
    ids = idmap.load()
    layer = str(tmp_path / "vfs" / "layers" / ("a" * 64))
    owner = 1000 if ids.has_ranges else 0
    run_in_userns(_make_layer, layer, owner, ids=ids)
    d = get_driver("vfs", str(tmp_path), ids)
    plan = d.prepare(CID, [layer])
    assert plan.steps == [] and plan.rootfs == d.upper_dir(CID)
    root = plan.rootfs
    src_f, dst_f = os.lstat(os.path.join(layer, "home/app/f")), os.lstat(os.path.join(root, "home/app/f"))
    assert (dst_f.st_uid, dst_f.st_gid, stat.S_IMODE(dst_f.st_mode)) == (src_f.st_uid, src_f.st_gid, 0o644)
    if ids.has_ranges:
        assert dst_f.st_uid == idmap.to_host(ids.uid_mappings(), 1000)
    t1, t2 = os.lstat(os.path.join(root, "bin/tool")), os.lstat(os.path.join(root, "bin/tool2"))
    assert t1.st_ino == t2.st_ino and t1.st_nlink == 2 and stat.S_IMODE(t1.st_mode) == 0o755
    assert os.readlink(os.path.join(root, "bin/link")) == "tool"
    assert os.getxattr(os.path.join(root, "bin/tool"), "user.test") == b"hello"
    assert d.read_file(CID, [layer], "/home/app/f") == b"app\n"
    before = os.stat(os.path.join(root, "home/app/f")).st_ino
    d.prepare(CID, [layer])  # a second prepare (start) does not copy again
    assert os.stat(os.path.join(root, "home/app/f")).st_ino == before
    d.cleanup(CID)
    assert not os.path.exists(d.container_dir(CID))
    assert os.path.exists(os.path.join(layer, "home/app/f"))  # the image layer is untouched


@subuid_only
def test_cleanup_removes_files_of_subordinate_uids(tmp_path):
    ids = idmap.load()
    d = get_driver("overlay2", str(tmp_path), ids)
    d.prepare(CID, [str(tmp_path / "l1")])
    f = os.path.join(d.upper_dir(CID), "home", "app", "secret")
    run_in_userns(_write_owned, f, 1000, ids=ids)
    with pytest.raises(PermissionError):
        os.unlink(f)
    d.cleanup(CID)
    assert not os.path.exists(d.container_dir(CID))
    d.cleanup(CID)  # nothing left: not an error
