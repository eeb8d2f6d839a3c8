"""rootless.storage.layers: the layer store, as the unprivileged user with real user namespaces
(newuidmap), layers served by the real test registry, malicious layers, kill -9, concurrency, and the
rootfs a layered image gives compared with the fixtures' model, with GNU tar, and through real
overlayfs and fuse-overlayfs mounts."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
from rootfs_walk import describe_json, describe_overlay_json, diff_trees, from_json

from fixtures import oci
from fixtures.oci import D, F, H, L, TarEntry
from rootless import idmap
from rootless.errors import ImageError
from rootless.runtime.userns import run_in_userns
from rootless.storage.layers import LayerStore

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")


def chain_ids(diff_ids: Sequence[str]) -> List[str]:
    out: List[str] = []
    for d in diff_ids:
        out.append(d if not out else oci.sha256_digest(f"{out[-1]} {d}".encode()))
    return out


def layer_file(tmp_path, entries: Sequence[TarEntry], comp: str = "gzip", name: str = "layer") -> Tuple[str, str, str, str]:
    """(path, media type, blob digest, diff id) of a layer file built from entries."""
    tar = oci.build_tar(list(entries))
    data = {"none": lambda b: b, "gzip": oci.gzip_bytes, "zstd": oci.zstd_bytes}[comp](tar)
    mt = {"none": oci.MT_OCI_LAYER, "gzip": oci.MT_OCI_LAYER_GZIP, "zstd": oci.MT_OCI_LAYER_ZSTD}[comp]
    p = os.path.join(str(tmp_path), f"{name}.{comp}")
    with open(p, "wb") as f:
        f.write(data)
    return p, mt, oci.sha256_digest(data), oci.sha256_digest(tar)


def fetch_blob(reg, repo: str, digest: str, dest: str) -> str:
    s = reg.requests_session()
    r = s.get(f"{reg.url}/v2/{repo}/blobs/{digest}", verify=s.verify)
    r.raise_for_status()
    assert oci.sha256_digest(r.content) == digest
    with open(dest, "wb") as f:
        f.write(r.content)
    return dest


# --- functions run as root of the user namespace (module level, for run_in_userns) -------------

def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _cleanup(tmp_path):
    """Files of other owners (subuids) would defeat pytest's own clean-up: remove them in the userns."""
    yield
    try:
        run_in_userns(remove_tree, str(tmp_path), ids=idmap.load())
    except Exception:  # noqa: BLE001 - best effort
        pass


# --- helpers ---------------------------------------------------------------------------------

def host_id(ids: idmap.UserIds, cid: int) -> int:
    return idmap.to_host(ids.uid_mappings(), cid)  # type: ignore[return-value]


def check_expected(tree: Dict[str, tuple], expected: Dict[str, oci.Expect], absent: Sequence[str],
                   squash: bool) -> None:
    problems = []
    for path, e in expected.items():
        got = tree.get(path)
        if got is None:
            problems.append(f"{path}: missing")
            continue
        kind, mode, uid, gid, size, target, digest, mtime, xattrs, links = got
        want_uid, want_gid = (e.uid, e.gid) if not squash else (0, 0)
        checks = [("type", kind, e.type), ("mode", oct(mode), oct(e.mode)), ("uid", uid, want_uid), ("gid", gid, want_gid)]
        if e.target is not None:
            checks.append(("target", target, e.target))
        if e.size is not None:
            checks.append(("size", size, e.size))
        if e.data is not None:
            checks.append(("data", digest, hashlib.sha256(e.data).hexdigest()))
        if e.mtime is not None:
            checks.append(("mtime", mtime, e.mtime * 10**9))
        checks.append(("links", links, e.links))
        checks.append(("xattrs", xattrs, tuple((k, v.encode()) for k, v in e.xattrs)))
        for what, g, w in checks:
            if g != w:
                problems.append(f"{path}: {what} {g!r} != {w!r}")
    extra = sorted(set(tree) - set(expected))
    if extra:
        problems.append(f"unexpected paths: {extra}")
    for a in absent:
        if a in tree:
            problems.append(f"{a}: should be absent")
    assert not [p for p in tree if os.path.basename(p).startswith(".wh.")]
    assert not problems, "\n".join(problems)


# --- the API -------------------------------------------------------------------------------

@pytest.mark.nosubuid
@pytest.mark.parametrize("fmt", ["overlay", "vfs"])
def test_create_list_size_remove_and_owners(tmp_path, fmt):
    ids = idmap.load()
    store = LayerStore(str(tmp_path / "root"), fmt)
    p, mt, digest, diff = layer_file(tmp_path, [
        D("etc"), F("etc/app", "app\n", uid=1000, gid=1000, mode=0o4750),
        D("locked", mode=0o500, uid=1000, gid=1000), F("locked/f", "x" * 1000, mode=0o400, uid=1000),
        F("root-file", "r\n"), H("root-link", "root-file"), L("sym", "/etc/app", uid=1000, gid=1000),
        TarEntry("dev/null", "char", devmajor=1, devminor=3),
    ])
    cid = diff
    assert not store.exists(cid) and store.list() == []
    info = store.create(cid, None, p, mt, digest, ids)
    assert info is not None
    assert any("device nodes skipped" in n for n in info.notes)
    assert store.exists(cid) and store.list() == [cid]
    base = store.path(cid)
    assert base.endswith("/diff") if fmt == "overlay" else base.endswith(cid.split(":")[1])
    if ids.has_ranges:
        want = host_id(ids, 1000)
    else:
        want = os.getuid()
        assert any("mapped to 0" in n for n in info.notes)
    assert os.lstat(os.path.join(base, "etc/app")).st_uid == want
    assert os.lstat(os.path.join(base, "sym")).st_uid == want
    assert stat.S_IMODE(os.lstat(os.path.join(base, "etc/app")).st_mode) == 0o4750
    assert os.lstat(os.path.join(base, "root-file")).st_uid == os.getuid()
    assert store.size(cid) == len("app\n") + 1000 + len("r\n") + len("/etc/app")
    assert store.create(cid, None, p, mt, digest, ids) is None  # idempotent
    store.remove(cid)  # files owned by subuids, in a 0500 dir: removed in the user namespace
    assert not store.exists(cid) and store.list() == []
    assert [n for n in os.listdir(store.base) if not n.startswith(".lock")] == []
    store.remove(cid)  # absent is fine


def test_vfs_layer_is_a_copy_of_its_parent_with_the_layer_applied(tmp_path):
    store = LayerStore(str(tmp_path / "root"), "vfs")
    p1, mt1, d1, diff1 = layer_file(tmp_path, [D("etc"), F("etc/gone", "g"), F("etc/keep", "k", uid=1000),
                                               H("etc/keep-link", "etc/keep"), D("opq"), F("opq/old"),
                                               F("x", "x", xattrs={"user.a": "1"})], name="l1")
    p2, mt2, d2, diff2 = layer_file(tmp_path, [D("etc"), F("etc/.wh.gone"), D("opq"), F("opq/.wh..wh..opq"),
                                               F("opq/new", "n")], comp="zstd", name="l2")
    c1, c2 = chain_ids([diff1, diff2])
    store.create(c1, None, p1, mt1, d1)
    with pytest.raises(ImageError):
        store.create(c2, "sha256:" + "0" * 64, p2, mt2, d2)  # the parent must exist
    store.create(c2, c1, p2, mt2, d2)
    top, bottom = store.path(c2), store.path(c1)
    assert sorted(os.listdir(os.path.join(bottom, "etc"))) == ["gone", "keep", "keep-link"]
    assert sorted(os.listdir(os.path.join(top, "etc"))) == ["keep", "keep-link"]
    assert os.listdir(os.path.join(top, "opq")) == ["new"]
    assert os.lstat(os.path.join(top, "etc/keep")).st_ino == os.lstat(os.path.join(top, "etc/keep-link")).st_ino
    assert os.lstat(os.path.join(top, "etc/keep")).st_ino != os.lstat(os.path.join(bottom, "etc/keep")).st_ino
    assert os.getxattr(os.path.join(top, "x"), "user.a") == b"1"
    assert os.lstat(os.path.join(top, "etc/keep")).st_uid == os.lstat(os.path.join(bottom, "etc/keep")).st_uid


@pytest.mark.parametrize("bad", ["sha256:../../etc", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 63, ""])
def test_chain_ids_are_validated_before_paths_are_made(tmp_path, bad):
    store = LayerStore(str(tmp_path / "root"), "overlay")
    for call in (lambda: store.path(bad), lambda: store.remove(bad), lambda: store.exists(bad),
                 lambda: store.create(bad, None, "/dev/null", oci.MT_OCI_LAYER, "sha256:" + "1" * 64)):
        with pytest.raises(ImageError) as ei:
            call()
        assert "chain id" in ei.value.message
    assert not os.path.exists(tmp_path / "root")


# --- kill -9 and concurrency -------------------------------------------------------------------

CREATE_SCRIPT = """
import sys
sys.path.insert(0, {src!r})
from rootless.storage.layers import LayerStore
s = LayerStore({root!r}, {fmt!r})
s.create({cid!r}, None, {path!r}, {mt!r}, {digest!r})
print("done", flush=True)
"""


def start_create(root: str, fmt: str, cid: str, path: str, mt: str, digest: str) -> subprocess.Popen:
    code = CREATE_SCRIPT.format(src=SRC, root=root, fmt=fmt, cid=cid, path=path, mt=mt, digest=digest)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("fmt", ["overlay", "vfs"])
def test_kill_9_mid_unpack_leaves_nothing_and_the_next_create_works(tmp_path, fmt):
    root = str(tmp_path / "root")
    # > 2 MB, so that half of it is more than the unpacker's first 1 MB read
    entries = [D("d")] + [F(f"d/f{i}", b"%07d" % i * 1200, uid=1000) for i in range(300)]
    tar = oci.build_tar(entries)
    fifo = str(tmp_path / "layer.fifo")
    os.mkfifo(fifo)
    cid = oci.sha256_digest(tar)
    store = LayerStore(root, fmt)
    proc = start_create(root, fmt, cid, fifo, oci.MT_OCI_LAYER, cid)
    with open(fifo, "wb") as w:
        w.write(tar[: len(tar) // 2])  # half the layer, then the writer stalls
        w.flush()
        deadline = time.monotonic() + 20
        tmp = None
        while time.monotonic() < deadline:
            tmps = [n for n in os.listdir(store.base)] if os.path.isdir(store.base) else []
            tmps = [n for n in tmps if n.startswith(".tmp-")]
            if tmps:
                tmp = os.path.join(store.base, tmps[0])
                d = os.path.join(tmp, "diff", "d") if fmt == "overlay" else os.path.join(tmp, "d")
                if os.path.isdir(d) and len(os.listdir(d)) > 20:
                    break
            time.sleep(0.02)
        assert tmp is not None, proc.stderr.read() if proc.poll() is not None else "no temp dir"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not store.exists(cid) and store.list() == []
    path, mt = str(tmp_path / "layer.tar"), oci.MT_OCI_LAYER
    with open(path, "wb") as f:
        f.write(tar)
    assert store.create(cid, None, path, mt, cid) is not None
    assert len(os.listdir(os.path.join(store.path(cid), "d"))) == 300
    assert [n for n in os.listdir(store.base) if n.startswith((".tmp-", ".del-"))] == []


def test_two_concurrent_creates_give_one_good_copy(tmp_path):
    root = str(tmp_path / "root")
    entries = [D("d")] + [F(f"d/f{i}", b"x" * 5000) for i in range(300)]
    p, mt, digest, diff = layer_file(tmp_path, entries)
    procs = [start_create(root, "overlay", diff, p, mt, digest) for _ in range(2)]
    for pr in procs:
        out, err = pr.communicate(timeout=60)
        assert pr.returncode == 0, err.decode()
    store = LayerStore(root, "overlay")
    assert store.list() == [diff]
    assert len(os.listdir(os.path.join(store.path(diff), "d"))) == 300
    assert [n for n in os.listdir(store.base) if n.startswith((".tmp-", ".del-"))] == []


# --- malicious layers served by the real registry ----------------------------------------------

def malicious(canary: str):
    return [
        ("dotdot", [F("../../canary/evil", "x")], "../../canary/evil"),
        ("symlink-escape", [L("esc", "../../../../canary")], "esc"),
        ("symlink-then-file", [L("link", canary), F("link/evil", "x")], "link/evil"),
        ("dir-replaced-by-symlink", [D("d"), F("d/ok"), L("d", canary), F("d/evil", "x")], "d/evil"),
        ("hardlink-outside", [H("h", "../../canary/secret")], "h"),
        ("hardlink-through-symlink", [L("link", canary), H("h", "link/secret")], "h"),
        ("whiteout-through-symlink", [L("link", canary), F("link/.wh.secret")], "link/.wh.secret"),
    ]


@pytest.mark.parametrize("case", [c[0] for c in malicious("/c")])
def test_malicious_layer_from_the_registry_is_refused(tmp_path, push_layer_image, case):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("secret\n")
    before = sorted((p, os.lstat(os.path.join(canary, p)).st_mtime_ns) for p in os.listdir(canary))
    _, entries, bad = [c for c in malicious(str(canary)) if c[0] == case][0]
    # layer 1 is harmless, so the malicious one sits on a parent (vfs copies it first)
    pushed = push_layer_image(f"evil-{case}", [[D("etc"), F("etc/ok", "ok")], entries])
    cids = chain_ids(pushed.diff_ids)
    for fmt in ("overlay", "vfs"):
        store = LayerStore(str(tmp_path / "store"), fmt)
        files = [fetch_blob(pushed.registry, pushed.repo, d, str(tmp_path / f"blob{i}"))
                 for i, d in enumerate(pushed.layer_digests)]
        store.create(cids[0], None, files[0], pushed.layer_media_types[0], pushed.layer_digests[0])
        with pytest.raises(ImageError) as ei:
            store.create(cids[1], cids[0], files[1], pushed.layer_media_types[1], pushed.layer_digests[1])
        assert pushed.layer_digests[1] in ei.value.message
        assert f"entry `{bad}`" in ei.value.message
        assert not store.exists(cids[1])
        assert store.list() == [cids[0]]
        assert [n for n in os.listdir(store.base) if n.startswith(".tmp-")] == []
    after = sorted((p, os.lstat(os.path.join(canary, p)).st_mtime_ns) for p in os.listdir(canary))
    assert after == before and (canary / "secret").read_text() == "secret\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["canary", "store"] + [f"blob{i}" for i in range(2)])


def test_malicious_error_reaches_the_cli_shape(tmp_path):
    """The ImageError carries a message and a hint (the CLI prints them as error:/hint:)."""
    store = LayerStore(str(tmp_path / "store"), "overlay")
    p, mt, digest, diff = layer_file(tmp_path, [F("../x", "x")])
    with pytest.raises(ImageError) as ei:
        store.create(diff, None, p, mt, digest)
    e = ei.value
    assert e.message.startswith(f"unpack layer `{digest}`: entry `../x`:") and e.hint and e.exit_code == 125


# --- the layered image: the rootfs must be what docker/podman give -----------------------------

@pytest.fixture(scope="module")
def layered_files(layered_image, tmp_path_factory):
    d = tmp_path_factory.mktemp("layered-blobs")
    img = layered_image
    return [fetch_blob(img.registry, "layered", dg, str(d / f"l{i}")) for i, dg in enumerate(img.layer_digests)]


def create_all(store: LayerStore, img, files) -> List[str]:
    cids = chain_ids(img.diff_ids)
    parent: Optional[str] = None
    for cid, f, mt, dg in zip(cids, files, img.layer_media_types, img.layer_digests):
        store.create(cid, parent, f, mt, dg)
        parent = cid
    return cids


@pytest.mark.nosubuid
def test_layered_image_vfs_matches_the_model(tmp_path, layered_image, layered_files):
    ids = idmap.load()
    store = LayerStore(str(tmp_path / "root"), "vfs")
    cids = create_all(store, layered_image, layered_files)
    tree = from_json(run_in_userns(describe_json, store.path(cids[-1]), ids=ids))
    check_expected(tree, layered_image.expected, layered_image.absent, squash=not ids.has_ranges)
    for c in reversed(cids):
        store.remove(c)
    assert store.list() == []


@pytest.mark.nosubuid
@pytest.mark.parametrize("driver", ["overlay", "fuse-overlayfs"])
def test_layered_image_overlay_mount_matches_the_model(tmp_path, layered_image, layered_files, driver):
    """The overlay-format layers, mounted as the drivers will (kernel overlayfs with userxattr,
    fuse-overlayfs), show exactly the model: whiteouts and opaque dirs are read by both."""
    ids = idmap.load()
    store = LayerStore(str(tmp_path / "root"), "overlay")
    cids = create_all(store, layered_image, layered_files)
    lowers = [store.path(c) for c in reversed(cids)]
    tree = from_json(run_in_userns(describe_overlay_json, lowers, str(tmp_path / "mnt"), driver == "fuse-overlayfs",
                                   ids=ids, mount_ns=True))
    check_expected(tree, layered_image.expected, layered_image.absent, squash=not ids.has_ranges)


def gnu_tar_reference(tmp_path, img, files) -> str:
    """Extract the layers with GNU tar as root of `unshare --map-auto --map-root-user` (the same
    id mapping as ours), applying whiteouts before each layer as docker does; returns the dir."""
    import gzip as _gzip
    import tarfile

    ref = tmp_path / "ref"
    ref.mkdir()
    script = ["set -e"]
    for i, f in enumerate(files):
        raw = open(f, "rb").read()
        if raw[:2] == b"\x1f\x8b":
            raw = _gzip.decompress(raw)
        elif raw[:4] == b"\x28\xb5\x2f\xfd":
            raw = subprocess.run(["zstd", "-dc"], input=raw, stdout=subprocess.PIPE, check=True).stdout
        tarpath = tmp_path / f"ref{i}.tar"
        tarpath.write_bytes(raw)
        import io

        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            members = [(m.name.strip("/"), m.isdir()) for m in tf.getmembers()]
        for n, is_dir in members:
            parent, base = os.path.split(n)
            if not is_dir and not base.startswith(".wh."):
                # docker's rule: a non-directory replaces a directory (GNU tar would refuse)
                script.append(f"if [ -d '{ref}/{n}' ] && [ ! -L '{ref}/{n}' ]; then rm -rf '{ref}/{n}'; fi")
            if base == ".wh..wh..opq":
                script.append(f"find '{ref}/{parent}' -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +")
            elif base.startswith(".wh."):
                script.append(f"rm -rf '{ref}/{os.path.join(parent, base[4:])}'")
        script.append(f"tar -x --xattrs --xattrs-include='user.*' --same-owner --numeric-owner -p "
                      f"--exclude='.wh.*' -f '{tarpath}' -C '{ref}'")
    p = subprocess.run(["unshare", "--map-auto", "--map-root-user", "sh", "-c", "\n".join(script)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr.decode()
    return str(ref)


def test_layered_image_equals_an_independent_gnu_tar_extraction(tmp_path, layered_image, layered_files):
    ids = idmap.load()
    if not ids.has_ranges:
        pytest.skip("unshare --map-auto needs a subordinate id range")
    store = LayerStore(str(tmp_path / "root"), "vfs")
    cids = create_all(store, layered_image, layered_files)
    ref = gnu_tar_reference(tmp_path, layered_image, layered_files)
    ours = from_json(run_in_userns(describe_json, store.path(cids[-1]), ids=ids))
    theirs = from_json(run_in_userns(describe_json, ref, ids=ids))
    diffs = diff_trees(ours, theirs, "ours", "gnu tar")
    assert not diffs, "\n".join(diffs)
    run_in_userns(remove_tree, ref, ids=ids)


def list_merged(lowers_top_first: List[str], mnt: str, rel: str) -> List[str]:
    from rootless.linux import syscalls

    os.makedirs(mnt, exist_ok=True)
    syscalls.mount("overlay", mnt, "overlay", 0, f"lowerdir={':'.join(lowers_top_first)},userxattr")
    try:
        return sorted(os.listdir(os.path.join(mnt, rel)))
    finally:
        syscalls.umount2(mnt, 2)


def test_xattr_whiteout_fallback_is_read_by_kernel_overlayfs(tmp_path):
    """When mknod of a 0:0 whiteout is refused, the xattr form is written; overlayfs (>= 6.7) hides
    the names just the same."""
    import json
    import subprocess
    import sys

    store = LayerStore(str(tmp_path / "root"), "overlay")
    p1, mt1, d1, diff1 = layer_file(tmp_path, [D("etc"), F("etc/a", "a"), F("etc/b", "b"), F("etc/keep")], name="l1")
    p2, mt2, d2, diff2 = layer_file(tmp_path, [D("etc"), F("etc/.wh.a"), F("etc/.wh.b"), F("etc/new")], name="l2")
    c1, c2 = chain_ids([diff1, diff2])
    store.create(c1, None, p1, mt1, d1)
    # In a fresh single-threaded process, so that the user-namespace child is a fork and inherits
    # the refusing os.mknod (a threaded caller, as pytest may be by now, re-executes Python).
    code = (
        "import json, os, sys\n"
        "def no_mknod(*a, **k):\n    raise PermissionError(1, 'Operation not permitted')\n"
        "os.mknod = no_mknod\n"
        "from rootless.storage.layers import LayerStore\n"
        "a = json.loads(sys.argv[1])\n"
        "info = LayerStore(a[0], 'overlay').create(a[1], a[2], a[3], a[4], a[5])\n"
        "print(json.dumps(list(info.notes) if info else None))\n"
    )
    args = json.dumps([str(tmp_path / "root"), c2, c1, p2, mt2, d2])
    r = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert r.returncode == 0, r.stderr
    notes = json.loads(r.stdout)
    assert notes is not None and any("xattr whiteouts" in n for n in notes)
    names = run_in_userns(list_merged, [store.path(c2), store.path(c1)], str(tmp_path / "mnt"), "etc",
                          ids=idmap.load(), mount_ns=True)
    assert names == ["keep", "new"]


@pytest.mark.parametrize("driver", ["vfs", "overlay2"])
def test_cli_pull_of_a_malicious_image_fails_cleanly(rl, push_layer_image, tmp_path, driver):
    """Through `rootless pull`: exit 125, `error:` naming the layer digest and the entry, a `hint:`,
    no traceback, nothing written outside the data-root, no layer left in the store."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("secret\n")
    pushed = push_layer_image("evil-cli", [[D("etc"), F("etc/ok", "ok")], [L("link", str(canary)), F("link/evil", "x")]])
    rl.write_config(f'insecure-registries = ["{pushed.registry.host}"]\nstorage-driver = "{driver}"\n')
    r = rl("pull", pushed.ref)
    assert r.returncode == 125, r
    assert f"error: unpack layer `{pushed.layer_digests[1]}`: entry `link/evil`" in r.stderr, r
    assert "hint: " in r.stderr and "Traceback" not in r.stderr, r
    assert os.listdir(canary) == ["secret"] and (canary / "secret").read_text() == "secret\n"
    fmt = "vfs" if driver == "vfs" else "overlay"
    store = LayerStore(rl.data_root, fmt)
    cids = chain_ids(pushed.diff_ids)
    assert not store.exists(cids[1])
    assert [n for n in os.listdir(store.base) if n.startswith(".tmp-")] == []


def test_symlink_from_a_lower_layer_is_never_followed(tmp_path):
    """Layer 1: `link -> <canary>` (an absolute link is fine: it resolves inside the container).
    Layer 2: `link/evil`. vfs refuses (the parent is a symlink); overlay keeps the layer's own diff,
    where `link/` is a new directory that hides the lower symlink. Neither writes to the canary."""
    canary = tmp_path / "canary"
    canary.mkdir()
    p1, mt1, d1, diff1 = layer_file(tmp_path, [L("link", str(canary))], name="l1")
    p2, mt2, d2, diff2 = layer_file(tmp_path, [F("link/evil", "x")], name="l2")
    c1, c2 = chain_ids([diff1, diff2])
    vfs = LayerStore(str(tmp_path / "root"), "vfs")
    vfs.create(c1, None, p1, mt1, d1)
    with pytest.raises(ImageError) as ei:
        vfs.create(c2, c1, p2, mt2, d2)
    assert f"unpack layer `{d2}`: entry `link/evil`" in ei.value.message and "symlink" in ei.value.message
    ov = LayerStore(str(tmp_path / "root"), "overlay")
    ov.create(c1, None, p1, mt1, d1)
    ov.create(c2, c1, p2, mt2, d2)
    assert os.path.isdir(os.path.join(ov.path(c2), "link")) and not os.path.islink(os.path.join(ov.path(c2), "link"))
    assert os.listdir(canary) == []
