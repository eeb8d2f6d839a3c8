"""cgroup detection from given kernel paths (unit), and on this host."""

import json
import os

import pytest

from rootless import cgroups, limits
from rootless.errors import RootlessError
from rootless.limits import Limits

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


# -- Manager and CgroupHandle on this host and on fake trees (the real kernel: tests/cgroupvm) ---------

HOST = cgroups.detect()


@pytest.mark.skipif(HOST.limits_available, reason="this host has usable cgroup v2 delegation")
def test_limit_on_this_host_is_a_clear_error_not_ignored():
    with pytest.raises(RootlessError) as e:
        cgroups.Manager.for_container("c1", limits.parse(memory="32m", cpus="0.5"))
    assert e.value.message.startswith("apply `--memory`, `--cpus`: ")
    assert HOST.problem in e.value.message and e.value.hint and e.value.exit_code == 125


@pytest.mark.skipif(HOST.limits_available, reason="this host has usable cgroup v2 delegation")
def test_no_limits_on_this_host_runs_without_a_cgroup():
    assert cgroups.Manager.for_container("c1", Limits.empty) is None


def test_hybrid_error_names_the_flags_and_the_fix(tmp_path):
    proc = fake(tmp_path, "30 1 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n", "0::/\n")
    info = cgroups.detect(proc, "/sys/fs/cgroup")
    with pytest.raises(RootlessError) as e:
        cgroups.Manager.for_container("c1", limits.parse(pids_limit="20"), info=info)
    assert e.value.message == "apply `--pids-limit`: " + info.problem
    assert "cgroup_no_v1=all" in e.value.hint and e.value.hint.endswith("; or run without `--pids-limit`")
    with pytest.raises(RootlessError) as e2:
        cgroups.Manager.check(limits.parse(pids_limit="20"), info=info)
    assert (e2.value.message, e2.value.hint) == (e.value.message, e.value.hint)
    cgroups.Manager.check(Limits.empty, info=info)  # nothing asked: nothing to complain about
    assert cgroups.Manager.for_container("c1", Limits.empty, info=info) is None


def test_missing_controller_is_an_error_before_anything_is_made(tmp_path):
    info = cgroups.CgroupInfo("2", "cgroupfs", str(tmp_path), ["cpu", "memory", "pids"])
    with pytest.raises(RootlessError) as e:
        cgroups.Manager.for_container("c1", limits.parse(cpuset_cpus="0", blkio_weight="100", ncpus=1), info=info)
    assert "the cpuset and io controllers are not delegated" in e.value.message
    assert "Delegate=" in e.value.hint
    with pytest.raises(RootlessError, match="cpuset controller is not delegated"):
        cgroups.Manager.check(limits.parse(cpuset_cpus="0", ncpus=1), info=info)
    cgroups.Manager.check(limits.parse(memory="32m"), info=info)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cid", ["", "../x", "a/b", ".hidden", "x" * 200])
def test_container_id_is_validated_before_it_becomes_a_path(tmp_path, cid):
    info = cgroups.CgroupInfo("2", "cgroupfs", str(tmp_path), ["memory"])
    with pytest.raises(RootlessError, match="invalid container id"):
        cgroups.Manager.for_container(cid, Limits.empty, info=info)


def fake_cgroup(path, files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return cgroups.CgroupHandle(str(path), limits.parse(memory="32m"))


def test_stats_read_the_v2_files(tmp_path):
    h = fake_cgroup(tmp_path / "c", {
        "memory.current": "41943040\n",
        "memory.stat": "anon 30000000\nfile 11943040\ninactive_file 1943040\n",
        "memory.max": "33554432\n",
        "memory.peak": "33554432\n",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        "cpu.stat": "usage_usec 8108338\nuser_usec 8000000\nsystem_usec 108338\nnr_periods 115\n"
                    "nr_throttled 28\nthrottled_usec 1894120\n",
        "cpu.max": "20000 100000\n",
        "cpu.weight": "100\n",
        "pids.current": "3\n",
        "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                   "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
        "cgroup.events": "populated 1\nfrozen 0\n",
    })
    st = h.stats()
    assert st.memory_usage == 40000000 and st.memory_limit == 32 << 20 and st.memory_peak == 32 << 20
    assert st.oom_kills == 1 and h.oom_killed()
    assert (st.cpu_usage_usec, st.cpu_nr_throttled, st.cpu_throttled_usec) == (8108338, 28, 1894120)
    assert st.cpu_limit == pytest.approx(0.2) and st.cpu_weight == 100
    assert st.pids_current == 3 and st.pids_limit is None
    assert (st.io_read_bytes, st.io_write_bytes) == (4097, 8194)
    assert h.populated() and not h.frozen()


def test_stats_of_a_cgroup_without_controllers(tmp_path):
    h = fake_cgroup(tmp_path / "c", {"cgroup.procs": ""})
    st = h.stats()
    assert st.memory_usage == 0 and st.memory_limit is None and st.cpu_limit is None and st.pids_limit is None
    assert not h.oom_killed()


def test_json_round_trip_and_path_check(tmp_path):
    root = tmp_path / "cg"
    h = cgroups.CgroupHandle(str(root / "u" / "rootless" / "abc"), limits.parse(memory="32m", pids_limit="20"))
    data = h.to_json()
    assert json.loads(json.dumps(data)) == data
    again = cgroups.CgroupHandle.from_json(json.dumps(data), cgroup_root=str(root))
    assert again.path == h.path and again.limits == h.limits and again.driver == "cgroupfs"
    assert cgroups.CgroupHandle.from_json(data, cgroup_root=str(root)).limits == h.limits
    for bad in ("/etc", str(root), str(root / ".." / "x")):
        with pytest.raises(RootlessError, match="is not under"):
            cgroups.CgroupHandle.from_json({"path": bad}, cgroup_root=str(root))


def test_remove_is_idempotent_and_add_pid_errors_are_clear(tmp_path):
    h = cgroups.CgroupHandle(str(tmp_path / "gone"))
    h.remove()  # nothing there: fine
    with pytest.raises(RootlessError) as e:
        h.add_pid(os.getpid())
    assert "cgroup.procs" in e.value.message and e.value.hint
    (tmp_path / "empty").mkdir()
    cgroups.CgroupHandle(str(tmp_path / "empty")).remove()
    assert not (tmp_path / "empty").exists()


def test_manager_plumbing_on_a_fake_tree(tmp_path):
    """The file writes in order (the kernel's side is tested in the VM): processes of the delegated
    root move to init.scope first, then controllers are enabled, then the container's cgroup is made."""
    top = tmp_path / "user@1.service"
    top.mkdir()
    (top / "cgroup.procs").write_text("4242\n")
    (top / "cgroup.subtree_control").write_text("")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cgroup").write_text("0::/user@1.service\n")
    info = cgroups.CgroupInfo("2", "cgroupfs", str(top), ["memory", "pids"])
    h = cgroups.Manager.for_container("c1", Limits.empty, info=info, cgroup_root=str(tmp_path),
                                      proc_self=str(tmp_path / "proc"))
    assert h is not None and h.path == str(top / "rootless" / "c1") and os.path.isdir(h.path)
    assert (top / "init.scope" / "cgroup.procs").read_text() == "4242"
    assert (top / "cgroup.subtree_control").read_text() == "+pids"  # one write per controller
    # a limit the (fake) kernel has no file for: a clear error, and nothing is left behind
    with pytest.raises(RootlessError, match="memory.max` does not exist"):
        cgroups.Manager.for_container("c2", limits.parse(memory="32m"), info=info, cgroup_root=str(tmp_path),
                                      proc_self=str(tmp_path / "proc"))
    assert not (top / "rootless" / "c2").exists()
