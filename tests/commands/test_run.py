"""`rootless run` end to end: the real registry, real pull, real namespaces, every storage driver.

Tests marked nosubuid also run as `rltnosub` (no /etc/subuid range: a one-uid map).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from enginehelp import kill_and_wait, leftovers, setup_busybox
from fixtures.users import has_subuid

pytestmark = pytest.mark.usefixtures("clean_data_root")

subuid_only = pytest.mark.skipif(not has_subuid(), reason="needs a /etc/subuid range")




@pytest.mark.nosubuid
def test_echo_hello_and_nothing_left(rl, bb):
    r = rl("run", "--rm", bb, "echo", "hello")
    assert r.returncode == 0, r
    assert r.stdout == "hello\n"
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_exit_code_is_the_containers(rl, bb):
    assert rl("run", "--rm", bb, "sh", "-c", "exit 3").returncode == 3
    r = rl("run", "--rm", bb, "sh", "-c", "sh -c 'kill -9 $$'; echo $?")  # a child killed by a signal
    assert r.returncode == 0 and r.stdout == "137\n", r
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_id_is_root_and_processes_are_private(rl, bb):
    r = rl.ok("run", "--rm", bb, "sh", "-c", "id -u; id -g; ps -o pid,comm; true")
    lines = r.stdout.split()
    assert lines[:2] == ["0", "0"]
    pids = [int(x) for x in lines[2:] if x.isdigit()]
    assert pids[0] == 1 and len(pids) == 2, r.stdout  # sh (pid 1) and ps: nothing of the host's


@subuid_only
def test_image_owners_show_inside(rl, bb):
    r = rl.ok("run", "--rm", bb, "stat", "-c", "%u:%g %a", "/home/app/owned", "/home/app", "/root", "/tmp")
    assert r.stdout.split("\n")[:4] == ["1000:1000 644", "1000:1000 755", "0:0 700", "0:0 1777"]


@pytest.mark.nosubuid
def test_read_only_refuses_writes(rl, bb):
    r = rl("run", "--rm", "--read-only", bb, "sh", "-c", "touch /x 2>&1; echo rc=$?; touch /dev/shm/ok && echo shm")
    assert r.returncode == 0, r
    assert "Read-only file system" in r.stdout and "rc=1" in r.stdout and "shm" in r.stdout
    r = rl.ok("run", "--rm", "--read-only", "--tmpfs", "/scratch", bb, "sh", "-c", "touch /scratch/a && echo ok")
    assert r.stdout == "ok\n"


@pytest.mark.nosubuid
def test_env_workdir_entrypoint_hostname(rl, bb, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROMFILE=1\nPASSED\n")
    r = rl.ok("run", "--rm", "-e", "A=b c", "-e", "PASSED", "--env-file", str(envf), "-w", "/tmp", "-h", "box1", bb,
              "sh", "-c", 'echo "$A|$FROMFILE|$PASSED|$(pwd)|$(hostname)|$HOSTNAME|$HOME|$PATH"',
              env={"PASSED": "through"})
    assert r.stdout == "b c|1|through|/tmp|box1|box1|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    r = rl.ok("run", "--rm", "--entrypoint", "echo", bb, "from", "entrypoint")
    assert r.stdout == "from entrypoint\n"


@subuid_only
def test_user_by_number_and_name(rl, bb):
    assert rl.ok("run", "--rm", "-u", "1000", bb, "id").stdout.startswith("uid=1000(app) gid=1000(app)")
    assert rl.ok("run", "--rm", "-u", "app", bb, "sh", "-c", "id -u; id -g; echo $HOME").stdout == "1000\n1000\n/home/app\n"
    assert rl.ok("run", "--rm", "-u", "1000:0", bb, "id", "-g").stdout == "0\n"
    r = rl.ok("run", "--rm", "-u", "app", bb, "sh", "-c", "echo x > /home/app/new && stat -c %u /home/app/new")
    assert r.stdout == "1000\n"
    assert leftovers(rl.data_root) == []  # the upper layer held a file of a subuid: removed too


@pytest.mark.nosubuid
def test_unknown_user_is_an_error(rl, bb):
    r = rl("run", "--rm", "-u", "nosuch", bb, "true")
    assert r.returncode == 125 and "error: find user `nosuch`" in r.stderr and "hint:" in r.stderr
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_exec_errors_are_126_127(rl, bb):
    r = rl("run", "--rm", bb, "/nosuch")
    assert r.returncode == 127 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = rl("run", "--rm", bb, "/etc/passwd")
    assert r.returncode == 126, r
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_engine_errors_are_125(rl, bb, registry):
    r = rl("run", "--rm", "--bogus-flag", bb, "true")
    assert r.returncode == 125 and "error:" in r.stderr and "hint:" in r.stderr
    r = rl("run", "--rm", "--pull", "never", "nosuch-image:1", "true")
    assert r.returncode == 125 and "error: find image `nosuch-image:1`" in r.stderr and "hint:" in r.stderr
    r = rl("run", "--rm", registry.ref("nosuch:latest"), "true")
    assert r.returncode == 125 and "error:" in r.stderr and "hint:" in r.stderr, r
    r = rl("run", "-d", "--rm", "--restart", "always", bb, "true")
    assert r.returncode == 125 and "conflicting" in r.stderr and "hint:" in r.stderr
    r = rl("run", "--rm", "--network", "nosuch", bb, "true")
    assert r.returncode == 125 and "hint:" in r.stderr
    r = rl("run", "--rm", "--cap-add", "FLY", bb, "true")
    assert r.returncode == 125 and "unknown capability" in r.stderr
    assert "Traceback" not in r.stderr
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_stdin_is_passed_binary_safe_and_closed_without_i(rl, bb):
    data = bytes(range(256)) * 400
    r = subprocess.run(rl.argv("run", "--rm", "-i", bb, "cat"), input=data, stdout=subprocess.PIPE,
                       env=rl.env, timeout=60)
    assert r.returncode == 0 and r.stdout == data
    r = subprocess.run(rl.argv("run", "--rm", bb, "cat"), input=b"not read", stdout=subprocess.PIPE,
                       env=rl.env, timeout=60)
    assert r.returncode == 0 and r.stdout == b""


@pytest.mark.nosubuid
@pytest.mark.parametrize("runtime", ["rootless", "crun"])
def test_signals_are_forwarded(rl, busybox_image, runtime):
    bb = setup_busybox(rl, busybox_image, 'storage-driver = "vfs"\n' if runtime == "crun" else "")
    p = subprocess.Popen(rl.argv("run", "--rm", "--runtime", runtime, bb, "sh", "-c",
                                 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.05; done'),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 7, err
    assert out == b"got-term\n"
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_rm_cleans_up_a_container_killed_from_outside(rl, bb):
    p = subprocess.Popen(rl.argv("run", "--rm", bb, "sh", "-c", "echo $$; echo ready; sleep 60"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"1\n"
        assert p.stdout.readline() == b"ready\n"
        recs = os.listdir(os.path.join(rl.data_root, "containers"))
        cid = [x for x in recs if len(x) == 64][0]
        with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
            st = json.load(f)["State"]
        assert st["Running"] is True and st["Status"] == "running" and st["Pid"] > 0
        os.kill(st["Pid"], signal.SIGKILL)
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 137
    assert leftovers(rl.data_root) == []


def _expecter(fd):
    import select

    buf = [b""]

    def expect(token: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while token not in buf[0]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {token!r} in {buf[0]!r}"
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"eof while waiting for {token!r} in {buf[0]!r}"
                buf[0] += chunk

    return expect


def _wait_status(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    raise AssertionError("rootless run did not exit")


def _end_pty(pid: int, fd: int) -> None:
    """Kill and reap the child of pty.fork() (if it still runs) and close its terminal."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    os.close(fd)


@pytest.mark.nosubuid
def test_tty_ctrl_c_stops_a_container_with_init(rl, bb):
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, rl.argv("run", "--rm", "-it", "--init", bb, "sh", "-c", "echo go; exec sleep 30"),
                  rl.env)
    expect = _expecter(fd)
    try:
        expect(b"go")
        time.sleep(0.3)
        t0 = time.monotonic()
        os.write(fd, b"\x03")
        status = _wait_status(pid)
        assert time.monotonic() - t0 < 10
    finally:
        _end_pty(pid, fd)
    assert os.WEXITSTATUS(status) == 130
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_tty_ctrl_c_and_exit(rl, bb):
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: `rootless run -it` on a real terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        os.execve(sys.executable, rl.argv("run", "--rm", "-it", bb, "sh"), rl.env)

    expect = _expecter(fd)

    try:
        expect(b"/ # ")  # the prompt: the shell reads from its terminal now
        os.write(fd, b"tty; echo $((6*7))\r")
        expect(b"/dev/pts/0")
        expect(b"42")
        os.write(fd, b"stty size\r")
        expect(b"33 111")  # the window size of our terminal
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 122, 0, 0))  # SIGWINCH to rootless
        time.sleep(0.3)
        os.write(fd, b"stty size\r")
        expect(b"44 122")
        os.write(fd, b"sleep 30\r")
        time.sleep(0.5)
        t0 = time.monotonic()
        os.write(fd, b"\x03")  # ctrl-C: reaches the container's foreground job through its pty
        os.write(fd, b"echo back$((1+1))\r")
        expect(b"back2", timeout=10)
        assert time.monotonic() - t0 < 10
        os.write(fd, b"exit 5\r")
        _, status = os.waitpid(pid, 0)
    finally:
        _end_pty(pid, fd)
    assert os.WEXITSTATUS(status) == 5
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_init_reaps_and_forwards(rl, bb):
    r = rl.ok("run", "--rm", "--init", bb, "sh", "-c", "ps -o pid,comm | sed -n 2p")
    assert r.stdout.split()[0] == "1" and "sh" not in r.stdout  # pid 1 is our init, not the command
    assert rl("run", "--rm", "--init", bb, "sh", "-c", "exit 9").returncode == 9


@pytest.mark.nosubuid
def test_create_start_attach_rm(rl, bb):
    cid = rl.ok("create", "--name", "web1", bb, "sh", "-c", "echo started; exit 2").stdout.strip()
    assert len(cid) == 64
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        rec = json.load(f)
    assert rec["Name"] == "/web1" and rec["State"]["Status"] == "created"
    assert rec["LogPath"].endswith(f"{cid}/{cid}-json.log") and rec["Image"].startswith("sha256:")
    r = rl("start", "-a", "web1")
    assert r.returncode == 2 and r.stdout == "started\n"
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        st = json.load(f)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 2 and st["Running"] is False
    r = rl("start", "-a", cid[:10])  # a stopped container starts again, by id prefix
    assert r.returncode == 2 and r.stdout == "started\n"
    r = rl("create", "--name", "web1", bb, "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    assert rl.ok("rm", "web1").stdout == "web1\n"
    r = rl("rm", "web1")
    assert r.returncode == 1 and "No such container" in r.stderr
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_run_of_a_local_image_imports_neither_requests_nor_pyroute2(rl, bb):
    r = rl("run", "--rm", bb, "true", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0, r
    imported = [line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "rootless.engine" in imported
    heavy = [m for m in imported if m.split(".")[0] in ("requests", "pyroute2", "urllib3")]
    assert heavy == []


def _rootfs_listing(rl, bb, *flags):
    """name|type|mode|owner|links|size of every entry; a directory's link count is not compared
    (fuse-overlayfs reports 1 for directories, as btrfs does)."""
    script = ("cd / && find bin etc home root tmp -xdev | sort | while read f; do "
              "if [ -d \"$f\" ]; then stat -c '%n|%F|%a|%u:%g|-|-' \"$f\"; "
              "else stat -c '%n|%F|%a|%u:%g|%h|%s' \"$f\"; fi; done")
    r = rl.ok("run", "--rm", *flags, bb, "sh", "-c", script)
    return r.stdout


@pytest.mark.nosubuid
@pytest.mark.parametrize("driver", ["overlay2", "fuse-overlayfs", "vfs"])
def test_each_storage_driver_runs_and_shows_the_image(rl, busybox_image, driver):
    bb = setup_busybox(rl, busybox_image, f'storage-driver = "{driver}"\n')
    listing = _rootfs_listing(rl, bb)
    exp = busybox_image.expected
    lines = {ln.split("|")[0]: ln.split("|") for ln in listing.splitlines()}
    for path in ("home/app/owned", "bin/sh", "etc/passwd", "tmp"):
        assert path in lines, listing[:500]
    assert lines["tmp"][2] == "1777"
    nlinks = int(lines["bin/busybox"][4])
    assert nlinks == len(busybox_image.applets) + 1  # hardlinks survive
    if has_subuid():
        assert lines["home/app/owned"][3] == "1000:1000"
    assert lines["home/app/owned"][5] == str(exp["/home/app/owned"].size)
    r = rl.ok("run", "--rm", bb, "sh", "-c", "echo hi > /root/x && cat /root/x && rm /bin/ls && ls /bin/ls 2>&1; true")
    assert r.stdout.startswith("hi\n") and "No such file" in r.stdout
    assert "ls" in rl.ok("run", "--rm", bb, "ls", "/bin").stdout  # the image's layer was not written
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_every_driver_shows_the_same_rootfs(rl, busybox_image):
    seen = {}
    for driver in ("overlay2", "fuse-overlayfs", "vfs"):
        bb = setup_busybox(rl, busybox_image, f'storage-driver = "{driver}"\n')
        seen[driver] = _rootfs_listing(rl, bb)
    assert seen["overlay2"] == seen["vfs"]
    assert seen["fuse-overlayfs"] == seen["vfs"]


@pytest.mark.nosubuid
def test_automatic_driver_on_this_kernel_is_overlay2(rl, bb):
    cid = rl.ok("create", bb, "true").stdout.strip()
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        assert json.load(f)["Driver"] == "overlay2"
    rl.ok("rm", cid)


@pytest.mark.nosubuid
def test_crun_runs_the_same_bundle_with_the_same_output(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image, 'storage-driver = "vfs"\n')
    script = ("id; hostname; cat /etc/hostname; stat -c '%u:%g %a' /home/app/owned /tmp; ls /dev | sort | tr '\\n' ' '; "
              "echo; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'; ulimit -n; df /dev/shm | tail -1 | "
              "awk '{print $2}'; echo $HOME $HOSTNAME; pwd; exit 4")
    flags = ["--rm", "-h", "same", "-w", "/tmp", "--ulimit", "nofile=512:512", "--shm-size", "8m",
             "--security-opt", "no-new-privileges", "--cap-drop", "NET_RAW"]
    ours = rl("run", *flags, bb, "sh", "-c", script)
    theirs = rl("run", "--runtime", "crun", *flags, bb, "sh", "-c", script)
    assert ours.returncode == 4, ours
    assert theirs.returncode == 4, theirs
    assert ours.stdout == theirs.stdout
    assert "NoNewPrivs:\t1" in ours.stdout and "512" in ours.stdout
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_rm_container_of_a_killed_run_is_removed_later(rl, bb):
    p = subprocess.Popen(rl.argv("run", "--rm", bb, "sh", "-c", "echo ready; sleep 60"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"ready\n"
        (cid,) = (x for x in os.listdir(os.path.join(rl.data_root, "containers")) if len(x) == 64)
        with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
            pid = json.load(f)["State"]["Pid"]
        p.kill()  # `rootless run` itself dies: nobody is left to remove the container now
        p.wait()
        kill_and_wait(pid)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rl.ok("run", "--rm", bb, "true").returncode == 0  # the next run removes the leftover
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_external_runtime_with_fuse_overlayfs_and_not_overlay2(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image, 'storage-driver = "fuse-overlayfs"\ndefault-runtime = "crun"\n')
    r = rl("run", "--rm", bb, "sh", "-c", "cat /home/app/owned; echo x > /root/f && cat /root/f")
    assert r.returncode == 0, r
    assert r.stdout == "owned by app\nx\n"
    assert leftovers(rl.data_root) == []
    setup_busybox(rl, busybox_image, 'storage-driver = "overlay2"\ndefault-runtime = "crun"\n')
    r = rl("run", "--rm", bb, "true")
    assert r.returncode == 125 and "overlay2" in r.stderr and 'storage-driver = "vfs"' in r.stderr
    r = rl("run", "--rm", "--runtime", "crun", "--init", bb, "true")
    assert r.returncode == 125 and "--init" in r.stderr and "hint:" in r.stderr
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_pull_policies(rl, busybox_image):
    rl.write_config(f'insecure-registries = ["{busybox_image.registry.host}"]\n')
    r = rl("run", "--rm", "--pull", "never", busybox_image.ref, "true")
    assert r.returncode == 125 and "--pull never" in r.stderr
    r = rl("run", "--rm", busybox_image.ref, "echo", "pulled")  # missing: pulled first, like docker
    assert r.returncode == 0, r
    assert r.stdout == "pulled\n" and f"Unable to find image '{busybox_image.ref}' locally" in r.stderr
    r = rl("run", "--rm", "-q", "--pull", "always", busybox_image.ref, "echo", "again")
    assert r.returncode == 0 and r.stdout == "again\n" and r.stderr == ""
    r = rl("run", "--rm", busybox_image.ref, "true")
    assert r.returncode == 0 and r.stderr == ""  # local now: no pull, nothing said


LISTING = ('find / -xdev | while read f; do t=""; if [ -L "$f" ]; then t=$(readlink "$f"); fi; '
           'stat -c "%n|%F|%a|%u|%g|%s|%i|$t" "$f"; done')
_TYPES = {"regular file": "file", "regular empty file": "file", "directory": "dir", "symbolic link": "symlink",
          "fifo": "fifo"}


@pytest.mark.nosubuid
@pytest.mark.parametrize("driver", ["overlay2", "fuse-overlayfs", "vfs"])
def test_rootfs_equals_the_image_for_every_driver(rl, layered_image, driver):
    """Whiteouts, opaque dirs, hardlinks, symlinks, special modes, owners, a fifo: as docker shows them."""
    host = layered_image.ref.split("/")[0]
    rl.write_config(f'insecure-registries = ["{host}"]\nstorage-driver = "{driver}"\n')
    r = rl("run", "--rm", layered_image.ref, "sh", "-c", LISTING)
    assert r.returncode == 0, r
    seen = {}
    for line in r.stdout.splitlines():
        name, ftype, mode, uid, gid, size, ino, target = line.split("|", 7)
        seen[name] = (_TYPES.get(ftype, ftype), int(mode, 8), int(uid), int(gid), int(size), ino, target)
    for path in layered_image.absent:
        assert path not in seen, f"{path} should be gone ({driver})"
    assert not [p for p in seen if "/.wh." in p]
    for path, e in layered_image.expected.items():
        assert path in seen, f"{path} missing ({driver})"
        ftype, mode, uid, gid, size, ino, target = seen[path]
        assert ftype == e.type, (path, ftype, e)
        if e.type != "symlink":
            assert mode == e.mode, (path, oct(mode), e)
        if has_subuid():
            assert (uid, gid) == (e.uid, e.gid), (path, uid, gid, e)
        if e.type == "symlink":
            assert target == e.target, (path, target, e)
        if e.type == "file" and e.size is not None:
            assert size == e.size, (path, size, e)
        for other in e.links:
            assert seen[other][5] == ino, f"{path} and {other} should be one inode ({driver})"
