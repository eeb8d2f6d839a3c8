"""rootless.image.unpack, called directly (as the test user, no user namespace): entry kinds,
whiteouts in both formats, compression, and hand-made malicious layers that must be refused
without writing anything outside the destination."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from typing import List, Sequence, Tuple

import pytest

from fixtures import oci
from fixtures.oci import D, F, H, L, TarEntry
from rootless.errors import ImageError
from rootless.image import unpack as up

DIGEST = "sha256:" + "ab" * 32


def write_layer(tmp_path, entries: Sequence[TarEntry], comp: str = "none", name: str = "layer") -> Tuple[str, str]:
    tar = oci.build_tar(list(entries))
    data = {"none": lambda b: b, "gzip": oci.gzip_bytes, "zstd": oci.zstd_bytes}[comp](tar)
    mt = {"none": oci.MT_OCI_LAYER, "gzip": oci.MT_OCI_LAYER_GZIP, "zstd": oci.MT_OCI_LAYER_ZSTD}[comp]
    p = tmp_path / f"{name}.{comp}"
    p.write_bytes(data)
    return str(p), mt


def unpack_entries(tmp_path, entries, fmt="overlay", comp="none", dest=None, **kw) -> Tuple[str, up.UnpackResult]:
    path, mt = write_layer(tmp_path, entries, comp)
    if dest is None:
        dest = tmp_path / "dest"
        dest.mkdir(exist_ok=True)
    res = up.unpack(path, mt, str(dest), fmt, DIGEST, chown=False, **kw)
    return str(dest), res


def test_entry_kinds_modes_times_xattrs(tmp_path):
    entries = [
        D("etc"), F("etc/a", "hello\n", mode=0o4755), F("etc/g", "g", mode=0o2711),
        D("tmp", mode=0o1777), D("ro", mode=0o555), F("ro/inside", "x"),
        L("etc/abs", "/etc/a"), L("etc/rel", "a"), H("etc/hl", "etc/a", mode=0o4755),
        TarEntry("fifo", "fifo", mode=0o640),
        F("x", "xattr", xattrs={"user.test": "hello", "user.bin": "caf\u00e9"}),
        F("old", "old", mtime=946684800),
    ]
    tar = oci.build_tar(entries)
    # a PAX mtime with nanoseconds must survive exactly (float parsing would round it)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("ns")
        ti.size = 2
        ti.pax_headers = {"mtime": "1700000000.123456789"}
        tf.addfile(ti, io.BytesIO(b"ns"))
    p = tmp_path / "l.tar"
    p.write_bytes(tar)
    dest = tmp_path / "dest"
    dest.mkdir()
    up.unpack(str(p), oci.MT_OCI_LAYER, str(dest), "overlay", DIGEST, chown=False)
    p2 = tmp_path / "ns.tar"
    p2.write_bytes(buf.getvalue())
    up.unpack(str(p2), oci.MT_OCI_LAYER, str(dest), "overlay", DIGEST, chown=False)

    def st(rel):
        return os.lstat(dest / rel)

    assert stat.S_IMODE(st("etc/a").st_mode) == 0o4755
    assert stat.S_IMODE(st("etc/g").st_mode) == 0o2711
    assert stat.S_IMODE(st("tmp").st_mode) == 0o1777
    assert stat.S_IMODE(st("ro").st_mode) == 0o555 and (dest / "ro/inside").read_text() == "x"
    assert os.readlink(dest / "etc/abs") == "/etc/a" and os.readlink(dest / "etc/rel") == "a"
    assert st("etc/hl").st_ino == st("etc/a").st_ino and st("etc/a").st_nlink == 2
    assert stat.S_ISFIFO(st("fifo").st_mode) and stat.S_IMODE(st("fifo").st_mode) == 0o640
    assert os.getxattr(dest / "x", "user.test") == b"hello"
    assert os.getxattr(dest / "x", "user.bin") == "caf\u00e9".encode()
    assert st("old").st_mtime_ns == 946684800 * 10**9
    assert st("etc/a").st_mtime_ns == oci.FIXED_MTIME * 10**9
    assert st("etc").st_mtime_ns == oci.FIXED_MTIME * 10**9  # set after its children were written
    assert st("etc/abs").st_mtime_ns == oci.FIXED_MTIME * 10**9  # symlink times too
    assert st("ns").st_mtime_ns == 1700000000123456789


def test_devices_and_foreign_xattrs_are_skipped_with_notes(tmp_path):
    dest, res = unpack_entries(tmp_path, [
        D("dev"), TarEntry("dev/null", "char", devmajor=1, devminor=3), TarEntry("dev/sda", "block", devmajor=8),
        F("f", "f", xattrs={"security.capability": "x", "trusted.x": "y", "user.overlay.opaque": "y",
                            "user.ok": "1"}),
    ])
    assert not os.path.lexists(os.path.join(dest, "dev/null"))
    assert not os.path.lexists(os.path.join(dest, "dev/sda"))
    assert os.listxattr(os.path.join(dest, "f")) == ["user.ok"]
    notes = "\n".join(res.notes)
    assert "device nodes skipped" in notes and "/dev/null" in notes
    assert "security.capability" in notes
    assert "user.overlay.opaque" in notes


def test_overlay_whiteouts(tmp_path):
    dest, res = unpack_entries(tmp_path, [
        D("etc"), F("etc/.wh.gone"), D("opq"), F("opq/.wh..wh..opq"), F("opq/new", "n"),
        F("deep/.wh.missing-parent"), F(".wh..wh.plnk/123"),
    ])
    wh = os.lstat(os.path.join(dest, "etc/gone"))
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert os.getxattr(os.path.join(dest, "opq"), up.OPAQUE_XATTR) == b"y"
    assert os.path.exists(os.path.join(dest, "opq/new"))
    assert stat.S_ISCHR(os.lstat(os.path.join(dest, "deep/missing-parent")).st_mode)
    for _root, dirs, files in os.walk(dest):
        assert not [n for n in dirs + files if n.startswith(".wh.")]


def test_overlay_opaque_root(tmp_path):
    dest, _ = unpack_entries(tmp_path, [F(".wh..wh..opq"), F("a", "a")])
    assert os.getxattr(dest, up.OPAQUE_XATTR) == b"y"


def test_vfs_applies_whiteouts_and_opaque(tmp_path):
    dest = tmp_path / "root"
    dest.mkdir()
    unpack_entries(tmp_path, [
        D("etc"), F("etc/gone", "g"), D("etc/gonedir"), F("etc/gonedir/f"), D("opq"), F("opq/a"),
        D("opq/sub"), F("opq/sub/b"), F("opq/keep-sub/x"),
    ], fmt="vfs", dest=dest)
    # in the upper layer, entries of the opaque dir written *before* the marker survive
    unpack_entries(tmp_path, [
        D("etc"), F("etc/.wh.gone"), F("etc/.wh.gonedir"), F("etc/.wh.never-there"),
        D("opq"), D("opq/keep-sub"), F("opq/keep-sub/y", "y"), F("opq/.wh..wh..opq"), F("opq/new", "n"),
    ], fmt="vfs", dest=dest)
    assert sorted(os.listdir(dest / "etc")) == []
    assert sorted(os.listdir(dest / "opq")) == ["keep-sub", "new"]
    # opaque hides lower content even below a directory this layer wrote (docker's walk)
    assert sorted(os.listdir(dest / "opq/keep-sub")) == ["y"]


def test_replacements(tmp_path):
    dest, _ = unpack_entries(tmp_path, [
        F("a", "file"), D("a"), F("a/in", "in"),  # file -> dir
        D("b"), F("b/x"), F("b", "now a file"),  # dir -> file
        D("c"), L("c", "/elsewhere"),  # dir -> symlink (allowed: nothing is written through it)
        L("d", "/x"), D("d"), F("d/f", "f"),  # symlink -> dir
    ])
    assert (tmp_path / "dest/a/in").read_text() == "in"
    assert (tmp_path / "dest/b").read_text() == "now a file"
    assert os.readlink(tmp_path / "dest/c") == "/elsewhere"
    assert (tmp_path / "dest/d/f").read_text() == "f"


@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_compressions(tmp_path, comp):
    dest, res = unpack_entries(tmp_path, [F("f", b"z" * 100000)], comp=comp)
    assert (tmp_path / "dest/f").read_bytes() == b"z" * 100000
    assert res.data_bytes == 100000 and res.tar_bytes >= 100000


def test_zstd_missing_tool_names_media_type_and_fix(tmp_path, monkeypatch):
    from rootless import tools

    real = tools.which
    monkeypatch.setattr(tools, "which", lambda n, *a, **k: None if n == "zstd" else real(n, *a, **k))
    with pytest.raises(ImageError) as ei:
        unpack_entries(tmp_path, [F("f", "x")], comp="zstd")
    assert oci.MT_OCI_LAYER_ZSTD in ei.value.message
    assert "apt-get install zstd" in ei.value.hint


def test_unknown_media_type(tmp_path):
    p, _ = write_layer(tmp_path, [F("f")])
    with pytest.raises(ImageError) as ei:
        up.unpack(p, "application/vnd.example.squashfs", str(tmp_path), "overlay", DIGEST, chown=False)
    assert "application/vnd.example.squashfs" in ei.value.message


@pytest.mark.parametrize("junk", [b"not a tar at all" * 100, b"\x1f\x8b\x08\x00garbage", b""])
def test_corrupt_layers(tmp_path, junk):
    p = tmp_path / "junk"
    p.write_bytes(junk)
    dest = tmp_path / "d"
    dest.mkdir()
    if junk == b"":
        up.unpack(str(p), oci.MT_OCI_LAYER, str(dest), "overlay", DIGEST, chown=False)  # an empty layer
        return
    with pytest.raises(ImageError) as ei:
        up.unpack(str(p), oci.MT_OCI_LAYER_GZIP, str(dest), "overlay", DIGEST, chown=False)
    assert DIGEST in ei.value.message


def test_truncated_layer(tmp_path):
    tar = oci.build_tar([F("big", b"b" * 50000)])
    p = tmp_path / "t"
    p.write_bytes(tar[:20000])
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(ImageError) as ei:
        up.unpack(str(p), oci.MT_OCI_LAYER, str(dest), "overlay", DIGEST, chown=False)
    assert DIGEST in ei.value.message


def test_ids_above_the_map_are_squashed_with_one_note(tmp_path):
    # chown=True is only possible as root; here we check the decision, with chown off and max ids
    u = up.Unpacker(str(tmp_path), "overlay", DIGEST, chown=False, max_uid=0, max_gid=0)
    assert u._ids(1000, 1000) == (0, 0)
    assert u._ids(0, 0) == (0, 0)
    u.close()
    notes = u.notes.render()
    assert len([n for n in notes if "mapped to 0" in n]) == 1


# --- malicious layers ----------------------------------------------------------------------------

def canary_setup(tmp_path):
    """A store dir and, next to it, a canary dir with a file that must stay untouched."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("secret\n")
    dest = tmp_path / "store" / "layer"
    dest.mkdir(parents=True)
    return dest, canary


def snapshot(path) -> List[Tuple[str, int, int, bytes]]:
    out = []
    for root, dirs, files in os.walk(path):
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else b""
            out.append((p, st.st_mode, st.st_mtime_ns, data))
    return sorted(out)


def malicious_cases(canary: str):
    """(id, entries, entry named in the error or None when the layer is confined, not refused)."""
    return [
        ("dotdot", [F("../canary/evil", "x")], "../canary/evil"),
        ("dotdot-inside", [D("a"), F("a/../../canary/evil", "x")], "a/../../canary/evil"),
        ("dotdot-dir", [D("../canary/newdir")], "../canary/newdir"),
        ("symlink-escape", [L("esc", "../../canary")], "esc"),
        ("symlink-then-file", [L("link", canary), F("link/evil", "x")], "link/evil"),
        ("symlink-then-dir", [L("link", canary), D("link/sub")], "link/sub"),
        ("symlink-then-symlink", [L("link", canary), L("link/evil", "/etc/passwd")], "link/evil"),
        ("symlink-then-hardlink", [F("f", "x"), L("link", canary), H("link/evil", "f")], "link/evil"),
        ("dir-replaced-by-symlink", [D("d"), F("d/ok", "ok"), L("d", canary), F("d/evil", "x")], "d/evil"),
        ("hardlink-dotdot", [H("h", "../canary/secret")], "h"),
        ("hardlink-absolute", [H("h", canary + "/secret")], "h"),
        ("hardlink-through-symlink", [L("link", canary), H("h", "link/secret")], "h"),
        ("whiteout-dotdot", [F(".wh..."), F("x")], ".wh..."),
        ("whiteout-through-symlink", [L("link", canary), F("link/.wh.secret")], "link/.wh.secret"),
        ("opaque-through-symlink", [L("link", canary), F("link/.wh..wh..opq")], "link/.wh..wh..opq"),
        ("absolute-file", [F(canary + "/evil", "x")], None),  # confined: lands inside the layer
    ]


pytestmark = pytest.mark.nosubuid  # no user namespace here: the same for every user

CASES = [c[0] for c in malicious_cases("/c")]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", ["overlay", "vfs"])
def test_malicious_layer_is_refused(tmp_path, case, fmt):
    dest, canary = canary_setup(tmp_path)
    before = snapshot(canary)
    outside_before = sorted(os.listdir(tmp_path))
    cid, entries, bad = [c for c in malicious_cases(str(canary)) if c[0] == case][0]
    path, mt = write_layer(tmp_path / "store", entries)
    if bad is None:
        up.unpack(path, mt, str(dest), fmt, DIGEST, chown=False)
        assert os.path.isfile(os.path.join(str(dest), str(canary).lstrip("/"), "evil"))
    else:
        with pytest.raises(ImageError) as ei:
            up.unpack(path, mt, str(dest), fmt, DIGEST, chown=False)
        assert DIGEST in ei.value.message
        assert f"entry `{bad}`" in ei.value.message
        assert ei.value.hint
    assert snapshot(canary) == before
    assert sorted(os.listdir(tmp_path)) == outside_before


def test_hardlink_to_symlink_links_the_symlink_not_its_target(tmp_path):
    """A link to an absolute symlink (fine inside a container) must never pick up the host file."""
    dest, canary = canary_setup(tmp_path)
    up_dest, _ = unpack_entries(tmp_path, [L("s", str(canary / "secret")), H("h", "s")], dest=dest)
    h = os.lstat(os.path.join(up_dest, "h"))
    assert stat.S_ISLNK(h.st_mode)
    assert h.st_ino == os.lstat(os.path.join(up_dest, "s")).st_ino
    assert (canary / "secret").stat().st_nlink == 1


def test_hardlink_header_metadata_applies_to_the_inode_as_docker_does(tmp_path):
    """moby's createTarFile chmods and chtimes the shared inode to a link entry's own header (Podman
    gives the same rootfs); GNU tar would keep the target's."""
    dest, _ = unpack_entries(tmp_path, [F("f", "x", mode=0o755, mtime=1600000000),
                                        H("g", "f", mode=0o640, mtime=1700000000)])
    st_f = os.lstat(os.path.join(dest, "f"))
    assert st_f.st_ino == os.lstat(os.path.join(dest, "g")).st_ino
    assert stat.S_IMODE(st_f.st_mode) == 0o640 and int(st_f.st_mtime) == 1700000000


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_gzip_is_reported(tmp_path, damage):
    gz = oci.gzip_bytes(oci.build_tar([F("f", os.urandom(300000))]))
    gz = gz[: len(gz) // 2] if damage == "truncated" else gz[:-12] + bytes([gz[-12] ^ 0xFF]) + gz[-11:]
    p = tmp_path / "l.gz"
    p.write_bytes(gz)
    dest = tmp_path / "d"
    dest.mkdir()
    with pytest.raises(ImageError) as ei:
        up.unpack(str(p), oci.MT_OCI_LAYER_GZIP, str(dest), "overlay", DIGEST, chown=False)
    assert DIGEST in ei.value.message and "pull it again" in ei.value.hint


def test_xattr_whiteout_fallback_when_mknod_is_refused(tmp_path, monkeypatch):
    def no_mknod(*a, **k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(up.os, "mknod", no_mknod)
    dest, res = unpack_entries(tmp_path, [D("etc"), F("etc/.wh.a"), F("etc/.wh.b"), F("etc/keep", "k")])
    for n in ("a", "b"):
        p = os.path.join(dest, "etc", n)
        assert stat.S_ISREG(os.lstat(p).st_mode) and os.lstat(p).st_size == 0
        assert os.getxattr(p, up.XWHITEOUT_XATTR) == b""
    assert os.getxattr(os.path.join(dest, "etc"), up.OPAQUE_XATTR) == b"x"
    assert [n for n in res.notes if "xattr whiteouts" in n and "Operation not permitted" in n]


def test_hardlink_to_a_skipped_device_is_skipped_too(tmp_path):
    dest, res = unpack_entries(tmp_path, [TarEntry("null", "char", devmajor=1, devminor=3), H("null2", "null"),
                                          F("f", "f")])
    assert sorted(os.listdir(dest)) == ["f"]
    assert any("/null2" in n for n in res.notes)
