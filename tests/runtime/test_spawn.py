"""spawn(): a busybox bundle run through every stage, as the unprivileged test users."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time

import pytest
import rtbundle

from rootless import idmap, runtime
from rootless.errors import RuntimeSetupError
from rootless.runtime import ExecStep, MountStep, RootfsPlan, Stdio

pytestmark = pytest.mark.nosubuid


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    """A busybox rootfs shared by the tests that do not write to it."""
    return rtbundle.make_rootfs(str(tmp_path_factory.mktemp("bb") / "rootfs"))


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def run(spec, bundle_dir=None, *, rootfs=None, plan=None, on_ready=None, stdin=None, timeout=20):
    """(exit code, stdout, stderr) of the container; setup errors raise."""
    if rootfs is not None and plan is None:
        spec["root"]["path"] = rootfs
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        p = runtime.spawn(spec, ids=idmap.load(), rootfs_plan=plan, bundle=bundle_dir,
                          stdio=Stdio(stdin=stdin, stdout=out_w, stderr=err_w), on_ready=on_ready)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("err", _read_all(err_r)))
    t.start()
    out = _read_all(out_r)
    t.join(timeout)
    return p.wait(), out.decode(), box.get("err", b"").decode()


def sh(script, rootfs, **kw):
    return run(rtbundle.make_spec(["sh", "-c", script], **kw), rootfs=rootfs)


def test_root_inside(busybox_rootfs):
    code, out, _ = sh("id -u; id -g", busybox_rootfs)
    assert (code, out) == (0, "0\n0\n")


def test_chown_inside(bundle):
    ids = idmap.load()
    rootfs = os.path.join(bundle, "rootfs")
    code, out, err = sh("touch /tmp/f && chown 1000:1000 /tmp/f; echo rc=$?", rootfs)
    st = os.stat(os.path.join(rootfs, "tmp", "f"))
    if ids.has_ranges:
        assert out == "rc=0\n", err
        assert st.st_uid == idmap.to_host(ids.uid_mappings(), 1000)  # subuid start + 999
        assert st.st_gid == idmap.to_host(ids.gid_mappings(), 1000)
    else:
        # podman with a one-uid map: the id is not mapped, chown fails with EINVAL
        assert out == "rc=1\n"
        assert "Invalid argument" in err
        assert st.st_uid == os.getuid()


def test_pid_namespace_shows_only_own_processes(busybox_rootfs):
    code, out, _ = sh("sleep 5 & sleep 0.2; ps -o pid,comm; kill $!", busybox_rootfs)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert code == 0
    assert sorted(r[1] for r in rows) == ["ps", "sh", "sleep"]
    assert ["1", "sh"] in rows


def test_read_only_root_and_hostname(busybox_rootfs):
    code, out, err = sh("hostname; touch /x", busybox_rootfs, readonly=True, hostname="box1")
    assert out == "box1\n"
    assert code == 1 and "Read-only file system" in err
    code, out, err = sh("touch /tmp/ok && echo ok", busybox_rootfs, readonly=True,
                        extra_mounts=[{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}])
    assert (code, out) == (0, "ok\n"), err


@pytest.mark.parametrize("script,code", [("true", 0), ("exit 3", 3)])
def test_exit_codes(busybox_rootfs, script, code):
    assert sh(script, busybox_rootfs)[0] == code


@pytest.mark.parametrize("argv,code,message", [
    (["nosuch"], 127, 'exec: "nosuch": executable file not found in $PATH'),
    (["/nosuch"], 127, 'exec: "/nosuch": stat /nosuch: no such file or directory'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
    (["/etc"], 126, 'exec: "/etc": is a directory'),
])
def test_exec_failures_like_docker(busybox_rootfs, argv, code, message):
    for init in (False, True):
        with pytest.raises(RuntimeSetupError) as ei:
            run(rtbundle.make_spec(argv, init=init), rootfs=busybox_rootfs)
        assert ei.value.exit_code == code
        assert ei.value.message == message
        assert ei.value.hint


def test_killed_gives_128_plus_signal(busybox_rootfs):
    spec = rtbundle.make_spec(["sleep", "30"])
    spec["root"]["path"] = busybox_rootfs
    p = runtime.spawn(spec, ids=idmap.load())
    p.kill(signal.SIGKILL)
    assert p.wait() == 128 + 9
    p.kill(signal.SIGKILL)  # already gone: not an error


def test_init_mode_reaps_and_forwards(busybox_rootfs):
    code, out, _ = sh("cat /proc/1/comm; (sleep 0.1 &) ; sleep 0.3; ps -o stat,comm | grep -c ^Z; exit 4",
                      busybox_rootfs, init=True)
    lines = out.split()
    assert lines[0] == "rootless:pid1"
    assert lines[1] == "0"  # the orphaned sleep was reaped by our init
    assert code == 4
    spec = rtbundle.make_spec(["sleep", "30"], init=True)
    spec["root"]["path"] = busybox_rootfs
    p = runtime.spawn(spec, ids=idmap.load())
    time.sleep(0.1)
    p.kill(signal.SIGTERM)  # pid 1 forwards it to sleep, which dies of it
    assert p.wait() == 128 + signal.SIGTERM


@pytest.mark.parametrize("mounts,message", [
    ([{"destination": "/mnt", "type": "bind", "source": "/nonexistent", "options": ["rbind"]}],
     "bind `/nonexistent` on `/mnt`: No such file or directory"),
    ([{"destination": "/mnt", "type": "ext4", "source": "/dev/vda"}],
     "mount `ext4` on `/mnt`: Operation not permitted"),
])
def test_mount_errors_name_the_step(busybox_rootfs, mounts, message):
    with pytest.raises(RuntimeSetupError) as ei:
        sh("true", busybox_rootfs, extra_mounts=mounts)
    assert ei.value.message == message


def test_other_setup_errors(busybox_rootfs, tmp_path):
    with pytest.raises(RuntimeSetupError, match=r"use rootfs `.*/missing`: no such directory"):
        sh("true", str(tmp_path / "missing"))
    with pytest.raises(RuntimeSetupError, match=r"chdir to cwd `/nowhere`: No such file or directory"):
        sh("true", busybox_rootfs, cwd="/nowhere")
    with pytest.raises(RuntimeSetupError, match=r"set rlimit `RLIMIT_NOFILE` to 99999999:99999999: "):
        sh("true", busybox_rootfs, rlimits=[{"type": "RLIMIT_NOFILE", "soft": 99999999, "hard": 99999999}])
    with pytest.raises(RuntimeSetupError, match="unknown capability `CAP_NOPE`"):
        sh("true", busybox_rootfs, capabilities={"bounding": ["CAP_NOPE"]})


def test_process_settings(busybox_rootfs):
    code, out, err = sh('echo "$FOO|$(pwd)|$(umask)|$(ulimit -n)"; grep CapBnd /proc/self/status', busybox_rootfs,
                        env=["PATH=/bin", "FOO=bar baz"], cwd="/tmp",
                        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}],
                        capabilities={k: ["CAP_KILL", "CAP_CHOWN"] for k in ("bounding", "effective", "permitted")})
    assert code == 0, err
    first, caps = out.splitlines()
    assert first == "bar baz|/tmp|0022|512"
    assert int(caps.split()[1], 16) == (1 << 0) | (1 << 5)


def test_user_and_groups(busybox_rootfs):
    spec = rtbundle.make_spec(["id"], user={"uid": 1000, "gid": 1000, "additionalGids": [5]})
    if idmap.load().has_ranges:
        code, out, _ = run(spec, rootfs=busybox_rootfs)
        assert (code, out) == (0, "uid=1000(user) gid=1000(user) groups=5(tty)\n")
    else:
        with pytest.raises(RuntimeSetupError) as ei:
            run(spec, rootfs=busybox_rootfs)
        assert "/etc/subuid" in (ei.value.hint or "")


def test_devices_and_proc(busybox_rootfs):
    code, out, err = sh("head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok; "
                        "cat /proc/timer_list | wc -c; echo x > /proc/sys/kernel/hostname || echo sys-ro",
                        busybox_rootfs)
    assert code == 0, err
    assert out.split("\n")[:4] == [" 00 00 00 00", "null-ok", "0", "sys-ro"]


def test_stdin_and_binary_stdout(busybox_rootfs):
    r, w = os.pipe()
    payload = bytes(range(256)) * 64
    os.write(w, payload)
    os.close(w)
    code, out, _ = run(rtbundle.make_spec(["sh", "-c", "cat | md5sum"]), rootfs=busybox_rootfs, stdin=r)
    os.close(r)
    import hashlib

    assert out.split()[0] == hashlib.md5(payload).hexdigest()


def test_on_ready_sees_the_init_before_exec(busybox_rootfs):
    seen = {}

    def ready(pid):
        with open(f"/proc/{pid}/comm") as f:
            seen["comm"] = f.read().strip()
        seen["pid"] = pid

    code, out, _ = run(rtbundle.make_spec(["true"]), rootfs=busybox_rootfs, on_ready=ready)
    assert code == 0 and seen["comm"] == "rootless:init"

    def boom(pid):
        raise RuntimeSetupError("join cgroup: nope")

    with pytest.raises(RuntimeSetupError, match="join cgroup: nope"):
        run(rtbundle.make_spec(["sleep", "30"]), rootfs=busybox_rootfs, on_ready=boom)
    assert not os.path.exists(f"/proc/{seen['pid']}")


def test_tty(busybox_rootfs):
    spec = rtbundle.make_spec(["sh", "-c", "tty; stty size; test -t 0 && echo is-a-tty"], terminal=True,
                              consoleSize={"height": 33, "width": 101})
    spec["root"]["path"] = busybox_rootfs
    p = runtime.spawn(spec, ids=idmap.load())
    assert p.pty_master is not None
    out = b""
    while True:
        try:
            b = os.read(p.pty_master, 4096)
        except OSError:
            break
        if not b:
            break
        out += b
    os.close(p.pty_master)
    assert p.wait() == 0
    assert out.decode().split() == ["/dev/pts/0", "33", "101", "is-a-tty"]


def test_rootfs_plan_overlay(busybox_rootfs, tmp_path):
    """overlay2's plan: kernel overlayfs with userxattr, mounted inside the user namespace."""
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    plan = RootfsPlan(str(merged), [MountStep("overlay", str(merged), "overlay", [],
                                              f"lowerdir={busybox_rootfs},upperdir={upper},workdir={work},userxattr")])
    code, out, err = run(rtbundle.make_spec(["sh", "-c", "echo hi > /tmp/new; ls /bin/busybox"]), plan=plan)
    assert (code, out) == (0, "/bin/busybox\n"), err
    assert (upper / "tmp" / "new").read_text() == "hi\n"
    assert not os.path.exists(os.path.join(busybox_rootfs, "tmp", "new"))
    assert os.listdir(merged) == []  # the mount lived and died in the container's namespace
    os.chmod(work / "work", 0o700)  # overlay leaves it mode 000; let pytest clean up


def test_rootfs_plan_exec_step(busybox_rootfs, tmp_path):
    """fuse-overlayfs's plan: a host tool started inside the namespaces, waited for, stopped after."""
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    argv = ["fuse-overlayfs", "-f", "-o", f"lowerdir={busybox_rootfs},upperdir={upper},workdir={work}", str(merged)]
    plan = RootfsPlan(str(merged), [ExecStep(argv, wait_mount=str(merged))])
    spec = rtbundle.make_spec(["sh", "-c", "echo fuse > /tmp/f; cat /tmp/f"])
    code, out, err = run(spec, plan=plan)
    assert (code, out) == (0, "fuse\n"), err
    assert (upper / "tmp" / "f").read_text() == "fuse\n"
    bad = RootfsPlan(str(merged), [ExecStep(["fuse-overlayfs", "-f", "-o", "lowerdir=/nonexistent", str(merged)],
                                            wait_mount=str(merged), timeout=5)])
    with pytest.raises(RuntimeSetupError, match="run `fuse-overlayfs"):
        run(rtbundle.make_spec(["true"]), plan=bad)


def _reexec_spawn(rootfs):
    spec = rtbundle.make_spec(["sh", "-c", "exit 5"])
    spec["root"]["path"] = rootfs
    return runtime.spawn(spec, ids=idmap.load()).wait()


def test_threaded_caller(busybox_rootfs):
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert _reexec_spawn(busybox_rootfs) == 5
        with pytest.raises(RuntimeSetupError, match="executable file not found"):
            run(rtbundle.make_spec(["nosuch"]), rootfs=busybox_rootfs)
    finally:
        stop.set()
        t.join()


def _my_children():
    mine = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid():
                    mine.add(pid)
            except OSError:
                pass
    return mine


def test_no_leftover_processes(busybox_rootfs):
    before = _my_children()  # session fixtures (a registry) may be our children already
    sh("sleep 10 & sleep 10 & exit 0", busybox_rootfs)
    with pytest.raises(RuntimeSetupError):
        sh("true", busybox_rootfs, cwd="/nowhere")
    time.sleep(0.1)
    # no new child at all, not even a zombie
    assert _my_children() - before == set()


def test_spawn_speed(busybox_rootfs, capsys):
    spec = rtbundle.make_spec(["/bin/true"])
    spec["root"]["path"] = busybox_rootfs
    ids = idmap.load()
    times = []
    for _ in range(21):
        t = time.perf_counter()
        assert runtime.spawn(spec, ids=ids).wait() == 0
        times.append(time.perf_counter() - t)
    med = statistics.median(times[1:]) * 1000
    with capsys.disabled():
        print(f"\nspawn+wait of /bin/true: median {med:.1f} ms of 20 ({'subuid map' if ids.has_ranges else 'one-uid map'})")
    assert med < 250


def test_network_namespaces(busybox_rootfs):
    base = rtbundle.base_spec()["linux"]["namespaces"]
    host = os.readlink("/proc/self/ns/net")
    no_net = [n for n in base if n["type"] != "network"]
    # no `network` entry: the host's network
    assert sh("readlink /proc/self/ns/net", busybox_rootfs, namespaces=no_net)[1].strip() == host
    # an entry without a path: a namespace of its own
    spec = rtbundle.make_spec(["sleep", "30"])
    spec["root"]["path"] = busybox_rootfs
    a = runtime.spawn(spec, ids=idmap.load())
    try:
        own = os.readlink(f"/proc/{a.pid}/ns/net")
        assert own != host
        # a path: join it (with the user namespace that owns it)
        joined = [dict(n) for n in base if n["type"] not in ("network", "user")]
        joined += [{"type": "user", "path": f"/proc/{a.pid}/ns/user"}, {"type": "network", "path": f"/proc/{a.pid}/ns/net"}]
        code, out, err = sh("readlink /proc/self/ns/net", busybox_rootfs, namespaces=joined)
        assert (code, out.strip()) == (0, own), err
    finally:
        a.kill()
        a.wait()
    with pytest.raises(RuntimeSetupError, match="open network namespace `/nonexistent`"):
        sh("true", busybox_rootfs, namespaces=no_net + [{"type": "network", "path": "/nonexistent"}])


def test_bad_mount_step_names_it(busybox_rootfs, tmp_path):
    merged = tmp_path / "m"
    merged.mkdir()
    plan = RootfsPlan(str(merged), [MountStep("overlay", str(merged), "overlay", [],
                                              "lowerdir=/nonexistent,upperdir=/nonexistent2,workdir=/nonexistent3,userxattr")])
    with pytest.raises(RuntimeSetupError, match=r"mount `overlay` on `.*/m`: "):
        run(rtbundle.make_spec(["true"]), plan=plan)


def test_caller_dying_before_start_does_not_leave_a_waiting_init(busybox_rootfs, tmp_path):
    """The init waits for START on the socket; once the caller is gone it must exit, not hang."""
    from rootless.linux import syscalls

    syscalls.set_child_subreaper(True)  # the orphaned init comes to us, so we can reap it
    spec = rtbundle.make_spec(["true"])
    spec["root"]["path"] = busybox_rootfs
    pidfile = tmp_path / "pid"
    child = os.fork()
    if child == 0:
        def ready(pid):
            pidfile.write_text(str(pid))
            os._exit(0)  # the caller dies between READY and START

        try:
            runtime.spawn(spec, ids=idmap.load(), on_ready=ready)
        finally:
            os._exit(1)
    assert os.waitpid(child, 0)[1] == 0
    init_pid = int(pidfile.read_text())
    deadline = time.time() + 5
    while time.time() < deadline:
        got, status = os.waitpid(init_pid, os.WNOHANG)
        if got:
            assert os.WEXITSTATUS(status) == 125
            break
        time.sleep(0.01)
    else:
        os.kill(init_pid, signal.SIGKILL)
        os.waitpid(init_pid, 0)
        raise AssertionError("the init kept waiting after its caller died")


def test_spawn_from_a_threaded_caller_returns_at_exec(busybox_rootfs):
    """Re-executed stage 1 (the caller has threads): spawn returns once the init exec'd, not when
    the container exits, and the pid is the live init (the control socket must not leak into it)."""
    t = threading.Thread(target=time.sleep, args=(3,), daemon=True)
    t.start()
    spec = rtbundle.make_spec(["sleep", "30"])
    spec["root"]["path"] = busybox_rootfs
    t0 = time.monotonic()
    p = runtime.spawn(spec, ids=idmap.load())
    assert time.monotonic() - t0 < 10
    with open(f"/proc/{p.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    p.kill(signal.SIGKILL)
    assert p.wait() == 128 + 9
