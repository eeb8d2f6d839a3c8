"""cgroup detection from given kernel paths (unit), and on this host."""

import os

import pytest

from rootless import cgroups

pytestmark = pytest.mark.nosubuid


def fake(tmp_path, mountinfo, cgroup_line, owner=None):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(cgroup_line)
    return str(proc)


def test_hybrid_host_says_why_and_how(tmp_path):
    proc = fake(
        tmp_path,
        "30 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 1 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        "0::/\n",
    )
    info = cgroups.detect(proc, "/sys/fs/cgroup")
    assert info.version == "1 (hybrid)" and not info.limits_available
    assert "cgroup v1" in info.problem and "unified_cgroup_hierarchy" in info.hint


def test_delegated_subtree(tmp_path):
    root = tmp_path / "cg"
    mine = root / "user.slice" / "user@1.service" / "app.slice"
    mine.mkdir(parents=True)
    for d in (root / "user.slice" / "user@1.service", mine):
        (d / "cgroup.procs").write_text("")
        (d / "cgroup.subtree_control").write_text("")
        (d / "cgroup.controllers").write_text("cpu memory pids\n")
    proc = fake(tmp_path, f"41 1 0:38 / {root} rw - cgroup2 cgroup2 rw\n", "0::/user.slice/user@1.service/app.slice\n")
    if os.getuid() == 0:
        pytest.skip("ownership checks need a non-root uid")
    # user.slice belongs to us too in this fake tree: the walk stops at the cgroup root
    info = cgroups.detect(proc, str(root))
    assert info.version == "2" and info.limits_available
    assert info.controllers == ["cpu", "memory", "pids"]


def test_not_delegated(tmp_path):
    root = tmp_path / "cg"
    (root / "x").mkdir(parents=True)
    proc = fake(tmp_path, f"41 1 0:38 / {root} rw - cgroup2 cgroup2 rw\n", "0::/x\n")
    info = cgroups.detect(proc, str(root), uid=os.getuid() + 12345)
    assert not info.limits_available and "not delegated" in info.problem and "Delegate=" in info.hint
