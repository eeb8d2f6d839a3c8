"""cgroups.Manager and CgroupHandle against a real cgroup v2 kernel, as the delegated user.

Runs inside the VM (tests/cgroupvm/run-vm.sh -> guest.sh): the test user owns
/sys/fs/cgroup/user.slice/user-UID.slice/user@UID.service with cpu io memory pids delegated (not
cpuset), and pytest starts inside that cgroup itself, as an "internal process".

Each test starts its workload held on a pipe, moves it with add_pid() (as the engine's on_ready
does), then releases it: the same order as a container's init before execve.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from rootless import cgroups, limits
from rootless.cgroups import CgroupHandle, Manager
from rootless.errors import RootlessError

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def events(path: str, name: str) -> dict:
    return {k: int(v) for k, v in (ln.split() for ln in read(path, name).splitlines())}


class Held:
    """A process that waits on stdin before it execs ``argv``: add_pid() it, then release()."""

    def __init__(self, argv, **kw):
        self.p = subprocess.Popen([BUSYBOX, "sh", "-c", 'read x; exec "$@"', "sh"] + list(argv),
                                  stdin=subprocess.PIPE, **kw)
        self.pid = self.p.pid

    def release(self):
        self.p.stdin.write(b"go\n")
        self.p.stdin.close()

    def wait(self, timeout=60):
        return self.p.wait(timeout)


@pytest.fixture
def made():
    """Handles made by a test; each is removed after it (and must leave nothing behind)."""
    handles = []
    yield handles
    for h in handles:
        h.remove()
        assert not os.path.exists(h.path)


def create(made, cid, **flags) -> CgroupHandle:
    h = Manager.for_container(cid, limits.parse(**flags))
    assert h is not None
    made.append(h)
    return h


def test_detect_sees_the_delegated_subtree():
    info = cgroups.detect()
    assert info.version == "2" and info.limits_available, info
    assert info.path.endswith(f"user@{os.getuid()}.service")
    assert {"cpu", "memory", "pids", "io"} <= set(info.controllers)
    assert "cpuset" not in info.controllers  # guest.sh does not delegate it


def test_internal_process_moved_to_a_leaf_and_controllers_enabled(made):
    top = cgroups.detect().path
    h = create(made, "leaf-check", memory="64m")
    with open("/proc/self/cgroup") as f:
        mine = f.read().strip()
    assert mine.endswith(f"/user@{os.getuid()}.service/{cgroups.LEAF_NAME}"), mine
    assert read(top, "cgroup.procs") == ""
    for d in (top, os.path.join(top, cgroups.PARENT_NAME)):
        assert {"cpu", "memory", "pids", "io"} <= set(read(d, "cgroup.subtree_control").split())
    assert h.path == os.path.join(top, cgroups.PARENT_NAME, "leaf-check")
    assert os.stat(h.path).st_uid == os.getuid()


def test_memory_limit_oom_kills_a_100mb_allocation(made):
    h = create(made, "oom", memory="32m")
    st = h.stats()
    assert st.memory_limit == 32 << 20 and st.oom_kills == 0 and not h.oom_killed()
    assert read(h.path, "memory.swap.max") == str(32 << 20)  # docker: as much swap as memory
    p = Held([PYTHON, "-c", "b = b'x' * (100 << 20); print('allocated', len(b))"], stdout=subprocess.PIPE)
    h.add_pid(p.pid)
    assert p.pid in h.pids()
    p.release()
    rc = p.wait(120)
    out = p.p.stdout.read()
    assert rc == -9, (rc, out)  # SIGKILL: the engine reports exit code 137
    assert b"allocated" not in out
    assert h.oom_killed() and h.stats().oom_kills >= 1
    peak = h.stats().memory_peak
    assert peak is None or peak <= 32 << 20


def test_pids_limit_stops_a_fork_bomb(made):
    h = create(made, "forkbomb", pids_limit="20")
    assert h.stats().pids_limit == 20
    # busybox sh fails at once on EAGAIN (bash retries for ~15 s)
    # (the sleepers must not hold the stderr pipe open, or reading it waits for them)
    bomb = "n=0; while [ $n -lt 100 ]; do sleep 60 >/dev/null 2>&1 & n=$((n+1)); done; echo forked $n"
    p = Held([BUSYBOX, "sh", "-c", bomb], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    h.add_pid(p.pid)
    p.release()
    p.wait(60)
    err = p.p.stderr.read().decode()
    assert "can't fork" in err or "Resource temporarily unavailable" in err, err
    st = h.stats()
    assert 0 < st.pids_current <= 20, st
    assert events(h.path, "pids.events")["max"] >= 1
    h.remove()  # kills the sleepers (cgroup.kill) and removes the cgroup
    assert not os.path.exists(h.path)


def test_cpus_quota_throttles_a_busy_loop(made):
    h = create(made, "cpu", cpus="0.2")
    assert read(h.path, "cpu.max") == "20000 100000"
    assert h.stats().cpu_limit == pytest.approx(0.2)
    # fork-free 2 s busy loop (reads /proc/uptime with the shell builtin)
    loop = ("read up x < /proc/uptime; end=$(( ${up%.*} + 2 )); now=0; "
            "while [ $now -lt $end ]; do read up x < /proc/uptime; now=${up%.*}; done")
    p = Held([BUSYBOX, "sh", "-c", loop])
    h.add_pid(p.pid)
    t0 = time.monotonic()
    p.release()
    assert p.wait(60) == 0
    st = h.stats()
    assert st.cpu_nr_throttled > 0 and st.cpu_throttled_usec > 0, st
    # 20 % of one CPU: at most about 0.2 s of CPU per wall second
    assert st.cpu_usage_usec / 1e6 <= 0.2 * (time.monotonic() - t0) + 0.3, st


def test_update_changes_a_running_limit_and_remove_kills(made):
    h = create(made, "upd", memory="32m", pids_limit="50", cpu_shares="1024")
    assert read(h.path, "cpu.weight") == "39"  # crun's shares -> weight conversion
    p = Held([BUSYBOX, "sleep", "60"])
    h.add_pid(p.pid)
    p.release()
    new = h.update(limits.parse(memory="64m"))
    assert new.memory == 64 << 20 and new.pids_limit == 50  # others stay
    assert read(h.path, "memory.max") == str(64 << 20)
    assert read(h.path, "memory.swap.max") == str(64 << 20)
    st = h.stats()
    assert st.memory_limit == 64 << 20 and st.pids_limit == 50 and st.pids_current == 1
    h.update(limits.parse(cpus="1.5", pids_limit="-1"))
    assert read(h.path, "cpu.max") == "150000 100000" and read(h.path, "pids.max") == "max"
    with pytest.raises(RootlessError, match="cpuset"):
        h.update(limits.parse(cpuset_cpus="0"))
    os.makedirs(os.path.join(h.path, "inner", "deeper"))  # a container may make child cgroups
    h.remove()
    assert p.wait(10) == -9
    assert not os.path.exists(h.path)
    h.remove()  # idempotent


def test_freeze_and_thaw(made):
    h = create(made, "pause")
    p = Held([BUSYBOX, "sleep", "60"])
    h.add_pid(p.pid)
    p.release()
    h.freeze()
    assert h.frozen()
    h.thaw()
    assert not h.frozen()
    h.remove()
    assert p.wait(10) == -9


def test_no_limits_still_gets_a_cgroup_for_stats_and_pause(made):
    h = Manager.for_container("nolimits", limits.Limits.empty)
    assert h is not None
    made.append(h)
    assert read(h.path, "memory.max") == "max" and read(h.path, "pids.max") == "max"
    st = h.stats()
    assert st.memory_limit is None and st.pids_limit is None and st.cpu_limit is None


def test_other_limits_written(made):
    h = create(made, "misc", memory="64m", memory_swap="96m", memory_reservation="16m", cpu_weight="500",
               cpu_period="50000", cpu_quota="25000", blkio_weight="300")
    assert read(h.path, "memory.swap.max") == str(32 << 20)
    assert read(h.path, "memory.low") == str(16 << 20)
    assert read(h.path, "cpu.weight") == "500"
    assert read(h.path, "cpu.max") == "25000 50000"
    if os.path.exists(os.path.join(h.path, "io.bfq.weight")):
        assert read(h.path, "io.bfq.weight").split()[-1] == "300"
    else:
        assert read(h.path, "io.weight") == f"default {1 + (300 - 10) * 9999 // 990}"


def test_undelegated_controller_is_a_clear_error():
    with pytest.raises(RootlessError) as e:
        Manager.for_container("cpuset", limits.parse(cpuset_cpus="0"))
    assert "`--cpuset-cpus`" in e.value.message and "cpuset controller is not delegated" in e.value.message
    assert "Delegate=" in e.value.hint
    assert not os.path.exists(os.path.join(cgroups.detect().path, cgroups.PARENT_NAME, "cpuset"))


def test_handle_persists_across_processes(made):
    h = create(made, "persist", memory="48m")
    data = json.dumps(h.to_json())
    # a later CLI call (stats, update, rm) is another process: do it in one
    code = ("import json, sys; from rootless.cgroups import CgroupHandle; from rootless import limits;"
            "h = CgroupHandle.from_json(sys.argv[1]); h.update(limits.parse(pids_limit='30'));"
            "print(json.dumps(h.to_json()))")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
    out = subprocess.run([sys.executable, "-c", code, data], env=dict(os.environ, PYTHONPATH=src),
                         stdout=subprocess.PIPE, check=True).stdout
    again = CgroupHandle.from_json(out.decode())
    assert again.path == h.path
    assert again.limits.memory == 48 << 20 and again.limits.pids_limit == 30
    assert again.stats().pids_limit == 30


def test_systemd_delegated_scope_is_used_as_the_base():
    """Run from a unit systemd delegated (xattr user.delegate=1, as `systemd-run --user --scope -p
    Delegate=yes` makes it): containers go below that scope, not at the top of the subtree."""
    top = cgroups.detect().path
    slice_ = os.path.join(top, "app.slice")
    scope = os.path.join(slice_, "deleg.scope")
    os.makedirs(scope)
    try:
        with open(os.path.join(slice_, "cgroup.subtree_control"), "w") as f:
            f.write("+cpu +memory +pids")
        os.setxattr(scope, "user.delegate", b"1")
        code = ("import json, os, sys; from rootless.cgroups import Manager; from rootless import limits;"
                "open(sys.argv[1] + '/cgroup.procs', 'w').write(str(os.getpid()));"
                "h = Manager.for_container('inscope', limits.parse(memory='64m'));"
                "print(json.dumps([h.path, open('/proc/self/cgroup').read().strip()]))")
        src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
        out = subprocess.run([sys.executable, "-c", code, scope], env=dict(os.environ, PYTHONPATH=src),
                             stdout=subprocess.PIPE, check=True).stdout
        path, mine = json.loads(out)
        assert path == os.path.join(scope, cgroups.PARENT_NAME, "inscope")
        assert mine.endswith("/app.slice/deleg.scope/" + cgroups.LEAF_NAME)  # moved to a leaf first
        assert read(path, "memory.max") == str(64 << 20)
        CgroupHandle(path).remove()
    finally:
        for d in (os.path.join(scope, cgroups.PARENT_NAME), os.path.join(scope, cgroups.LEAF_NAME), scope, slice_):
            if os.path.isdir(d):
                os.rmdir(d)


SYSTEMD = "/usr/lib/systemd/systemd"


@pytest.mark.skipif(not (os.path.exists(SYSTEMD) and shutil.which("dbus-daemon") and shutil.which("systemd-run")),
                    reason="needs systemd and dbus-daemon in the guest (apt-get install systemd dbus)")
def test_limits_survive_a_user_systemd_beside_them(made):
    """On a real host a `systemd --user` manages the same delegated subtree (user@UID.service).
    Its reloads and its own transient units must not reset or remove our cgroups."""
    rt = os.environ["XDG_RUNTIME_DIR"]
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=f"unix:path={rt}/bus")
    h = create(made, "besidesd", memory="40m", pids_limit="30")
    dbus = subprocess.Popen(["dbus-daemon", "--session", "--address=" + env["DBUS_SESSION_BUS_ADDRESS"], "--nofork",
                             "--nopidfile", "--syslog-only"], env=env, stdin=subprocess.DEVNULL)
    sd = subprocess.Popen([SYSTEMD, "--user", "--log-target=console", "--log-level=warning"], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(rt, "systemd", "private")):
            assert sd.poll() is None, sd.stderr.read()
            assert time.monotonic() < deadline, "systemd --user did not start"
            time.sleep(0.1)
        run = subprocess.run(["systemd-run", "--user", "--scope", "-p", "MemoryMax=64M", "-p", "TasksMax=10",
                              "--", "cat", "/proc/self/cgroup"], env=env, stdout=subprocess.PIPE, check=True)
        assert b"/app.slice/" in run.stdout
        subprocess.run(["systemctl", "--user", "daemon-reload"], env=env, check=True, timeout=60)
        p = Held([BUSYBOX, "sleep", "60"])
        h.add_pid(p.pid)
        p.release()
        second = create(made, "besidesd2", memory="24m")  # and new ones still work beside it
        assert read(second.path, "memory.max") == str(24 << 20)
    finally:
        sd.terminate()
        sd.wait(30)
        dbus.terminate()
        dbus.wait(10)
    assert read(h.path, "memory.max") == str(40 << 20) and read(h.path, "pids.max") == "30"
    assert h.pids() == [p.pid]
    top = cgroups.detect().path
    assert {"memory", "pids"} <= set(read(top, "cgroup.subtree_control").split())


def test_nothing_left_behind():
    """Runs last (file order): every handle was removed, only the empty parent remains."""
    parent = os.path.join(cgroups.detect().path, cgroups.PARENT_NAME)
    left = [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
    assert left == []
