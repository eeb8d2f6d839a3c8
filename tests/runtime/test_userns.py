"""run_in_userns: root inside, ids mapped from /etc/subuid, errors come back, threads re-exec."""

from __future__ import annotations

import os
import threading

import pytest

from rootless import idmap
from rootless.errors import ImageError, RootlessError
from rootless.runtime import userns


def whoami():
    with open("/proc/self/uid_map") as f:
        uid_map = f.read().split()
    with open("/proc/self/status") as f:
        caps = [line.split()[1] for line in f if line.startswith("CapEff")][0]
    return os.getuid(), os.getgid(), uid_map, int(caps, 16), os.getpid()


def chown_to(path, uid, gid):
    os.chown(path, uid, gid)
    return os.stat(path).st_uid


def raise_image_error(text):
    raise ImageError(text, "a hint")


def raise_value_error():
    raise ValueError("boom")


def mounts_tmpfs(path):
    from rootless.linux import syscalls

    syscalls.mount("tmpfs", path, "tmpfs", 0, "size=1m")
    with open(os.path.join(path, "x"), "w") as f:
        f.write("x")
    return sorted(os.listdir(path))


@pytest.mark.nosubuid
def test_root_inside_with_full_caps():
    ids = idmap.load()
    uid, gid, uid_map, caps, pid = userns.run_in_userns(whoami, ids=ids)
    assert (uid, gid) == (0, 0)
    assert pid != os.getpid()
    assert caps & (1 << 0)  # CAP_CHOWN
    assert uid_map[:3] == ["0", str(os.getuid()), "1"]
    if ids.has_ranges:
        assert uid_map[3:5] == ["1", str(ids.subuids[0].start)]
    else:
        assert len(uid_map) == 3


@pytest.mark.nosubuid
def test_chown_maps_to_subuid_or_fails_einval(tmp_path):
    ids = idmap.load()
    f = tmp_path / "f"
    f.write_text("x")
    if ids.has_ranges:
        userns.run_in_userns(chown_to, str(f), 1000, 1000, ids=ids)
        st = os.stat(f)
        assert st.st_uid == idmap.to_host(ids.uid_mappings(), 1000)
        assert st.st_gid == idmap.to_host(ids.gid_mappings(), 1000)
    else:
        with pytest.raises(RootlessError) as ei:
            userns.run_in_userns(chown_to, str(f), 1000, 1000, ids=ids)
        assert "Invalid argument" in ei.value.message


@pytest.mark.nosubuid
def test_errors_come_back():
    ids = idmap.load()
    with pytest.raises(ImageError) as ei:
        userns.run_in_userns(raise_image_error, "bad layer", ids=ids)
    assert ei.value.message == "bad layer" and ei.value.hint == "a hint"
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(raise_value_error, ids=ids)
    assert "ValueError: boom" in ei.value.message


@pytest.mark.nosubuid
def test_mount_ns(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    assert userns.run_in_userns(mounts_tmpfs, str(d), ids=idmap.load(), mount_ns=True) == ["x"]
    assert os.listdir(d) == []  # the mount stayed in the child's namespace


@pytest.mark.nosubuid
def test_threaded_caller_reexecs(tmp_path):
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not userns.is_single_threaded()
        uid, _gid, _map, _caps, _pid = userns.run_in_userns(whoami, ids=idmap.load())
        assert uid == 0
        with pytest.raises(ImageError):
            userns.run_in_userns(raise_image_error, "x", ids=idmap.load())
    finally:
        stop.set()
        t.join()


def test_local_function_refused():
    def local():
        return 1

    with pytest.raises(RootlessError):
        userns.run_in_userns(local, ids=idmap.load())


def test_bad_subuid_range_reports_newuidmap(tmp_path):
    ids = idmap.UserIds("nobody-here", os.getuid(), os.getgid(), [idmap.IdRange(1, 5)], [idmap.IdRange(1, 5)])
    with pytest.raises(RootlessError) as ei:
        userns.run_in_userns(whoami, ids=ids)
    assert "newuidmap" in ei.value.message or "newgidmap" in ei.value.message
