"""The ctypes wrappers: real system calls, in a user namespace where they need privileges."""

from __future__ import annotations

import errno
import os

import pytest

from rootless import idmap
from rootless.linux import syscalls as sc
from rootless.runtime import userns

pytestmark = pytest.mark.nosubuid


def test_errno_becomes_oserror(tmp_path):
    with pytest.raises(OSError) as ei:
        sc.mount("tmpfs", str(tmp_path), "tmpfs", 0, None)  # not root on the host
    assert ei.value.errno == errno.EPERM and ei.value.strerror == "Operation not permitted"
    with pytest.raises(OSError) as ei:
        sc.setns(9999, 0)
    assert ei.value.errno == errno.EBADF


def test_capget_and_prctl():
    eff, perm, inh = sc.capget()
    assert eff == 0 and perm == 0  # an unprivileged user on the host
    assert sc.last_cap() >= 36
    assert sc.capbset_read(0) in (True, False)


def _in_ns(path):
    out = {}
    sc.set_name("rootless:test")
    with open("/proc/self/comm") as f:
        out["comm"] = f.read().strip()
    eff, _, _ = sc.capget()
    out["caps"] = eff
    sc.unshare(sc.CLONE_NEWUTS)
    sc.sethostname("inside")
    out["hostname"] = os.uname().nodename
    sc.mount("tmpfs", path, "tmpfs", sc.MS_NOSUID, "size=1m")
    with open(os.path.join(path, "f"), "w") as f:
        f.write("x")
    sc.mount_setattr(path, sc.MOUNT_ATTR_RDONLY)
    try:
        open(os.path.join(path, "g"), "w")
        out["ro"] = False
    except OSError as e:
        out["ro"] = e.errno == errno.EROFS
    sc.umount2(path, sc.MNT_DETACH)
    out["after_umount"] = os.listdir(path)
    # pivot_root into a tmpfs and back out of sight of the host
    sc.mount("tmpfs", path, "tmpfs", 0, None)
    new = os.path.join(path, "new")
    os.mkdir(new)
    sc.mount("tmpfs", new, "tmpfs", 0, None)
    os.mkdir(os.path.join(new, "marker"))
    os.chdir(new)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    out["root"] = sorted(os.listdir("/"))
    sc.capbset_drop(21)  # CAP_SYS_ADMIN out of the bounding set
    out["bset_sys_admin"] = sc.capbset_read(21)
    sc.set_no_new_privs()
    return out


def test_namespaced_calls(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    out = userns.run_in_userns(_in_ns, str(d), ids=idmap.load(), mount_ns=True)
    assert out["comm"] == "rootless:test"
    assert out["caps"] & (1 << 21)  # CAP_SYS_ADMIN in the namespace
    assert out["hostname"] == "inside" and os.uname().nodename != "inside"
    assert out["ro"] is True
    assert out["after_umount"] == []
    assert out["root"] == ["marker"]
    assert out["bset_sys_admin"] is False
    assert os.listdir(d) == []
