"""`rootless runtime`: the OCI runtime command line, checked against crun on the same bundles."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import rtbundle

pytestmark = pytest.mark.nosubuid



PARITY_SCRIPT = (
    "id -u; id -g; hostname; pwd; echo $PATH; ls /; ls /dev; umask; ulimit -n; "
    "grep -E 'Cap(Prm|Eff|Bnd|Amb)' /proc/self/status; ps -o pid,comm; "
    "grep -v cgroup /proc/self/mounts | awk '{print $2, $3}' | sort; "
    "echo x > /proc/sys/kernel/hostname; touch /ro-test; exit 3"
)


def crun(args, bundle, root, timeout=60):
    """crun as this user. On hybrid cgroups (v1 + cgroup2 with controllers) crun refuses to run
    rootless; like the Podman notes say, hide the cgroup2 mount in a private mount namespace."""
    argv = ["crun", "--root", root, "--cgroup-manager=disabled"] + args
    if os.path.ismount("/sys/fs/cgroup/unified"):
        argv = ["unshare", "-U", "-r", "-m", "sh", "-c",
                'mount -t tmpfs -o size=4k,mode=0555 none /sys/fs/cgroup/unified && exec "$@"', "sh"] + argv
    return subprocess.run(argv, cwd=bundle, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(autouse=True)
def no_leftovers(rl):
    """Whatever a test leaves (a created container waits forever), delete it, killing it."""
    yield
    root = os.path.join(rl.env["XDG_RUNTIME_DIR"], "rootless", "runtime")
    for cid in os.listdir(root) if os.path.isdir(root) else []:
        rl("runtime", "delete", "--force", cid)


@pytest.fixture
def bb(bundle):
    def write(args, **kw):
        return rtbundle.write_bundle(bundle, rtbundle.make_spec(args, **kw))

    return write


def test_run_matches_crun(rl, bb, tmp_path):
    bundle = bb(["sh", "-c", PARITY_SCRIPT], readonly=True, hostname="parity")
    ours = rl("runtime", "run", "--bundle", bundle, "p1")
    theirs = crun(["run", "--bundle", bundle, "p1"], bundle, str(tmp_path / "crun"))
    assert theirs.returncode == 3, theirs.stderr.decode()
    assert ours.returncode == 3, ours.stderr
    assert ours.stdout == theirs.stdout.decode()
    assert ours.stderr == theirs.stderr.decode()
    assert "parity\n" in ours.stdout and "Read-only file system" in ours.stderr


@pytest.mark.parametrize("args,code", [(["true"], 0), (["sh", "-c", "exit 7"], 7), (["sh", "-c", "echo out; echo err >&2"], 0)])
def test_exit_codes_and_streams_match_crun(rl, bb, tmp_path, args, code):
    bundle = bb(args)
    ours = rl("runtime", "run", "--bundle", bundle, "c1")
    theirs = crun(["run", "--bundle", bundle, "c1"], bundle, str(tmp_path / "crun"))
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout.decode(), theirs.stderr.decode())
    assert ours.returncode == code


def test_run_not_found_is_127(rl, bb):
    r = rl("runtime", "run", "--bundle", bb(["nosuch"]), "c1")
    assert r.returncode == 127
    assert r.stderr.startswith('error: exec: "nosuch": executable file not found in $PATH\nhint: ')
    assert rl("runtime", "list").stdout.splitlines()[1:] == []  # nothing left behind


def test_lifecycle(rl, bb, tmp_path):
    out = tmp_path / "out"
    bundle = bb(["sh", "-c", "echo started; sleep 30"])
    # The container inherits create's stdio (as with runc): a pipe would stay open until it exits.
    with open(out, "wb") as f:
        r = subprocess.run(rl.argv("runtime", "create", "--bundle", bundle, "--pid-file", str(tmp_path / "pid"), "life"),
                           env=rl.env, stdout=f, stderr=f, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0, out.read_text()
    st = json.loads(rl.ok("runtime", "state", "life").stdout)
    assert st["status"] == "created" and st["id"] == "life" and st["bundle"] == bundle
    assert st["ociVersion"] and st["pid"] == int((tmp_path / "pid").read_text())
    assert out.read_bytes() == b""  # not exec'd yet
    assert "life" in rl.ok("runtime", "list").stdout
    r = rl("runtime", "create", "--bundle", bundle, "life")
    assert r.returncode == 125 and "already in use" in r.stderr
    rl.ok("runtime", "start", "life")
    assert json.loads(rl.ok("runtime", "state", "life").stdout)["status"] == "running"
    deadline = time.time() + 5
    while out.read_bytes() != b"started\n" and time.time() < deadline:
        time.sleep(0.02)
    assert out.read_bytes() == b"started\n"
    r = rl("runtime", "start", "life")
    assert r.returncode == 125 and "it is running, not created" in r.stderr
    r = rl("runtime", "delete", "life")
    assert r.returncode == 125 and "--force" in r.stderr
    rl.ok("runtime", "kill", "life", "KILL")
    deadline = time.time() + 5
    while json.loads(rl.ok("runtime", "state", "life").stdout)["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.02)
    assert json.loads(rl.ok("runtime", "state", "life").stdout)["status"] == "stopped"
    r = rl("runtime", "kill", "life")
    assert r.returncode == 125 and "not running" in r.stderr
    rl.ok("runtime", "delete", "life")
    r = rl("runtime", "state", "life")
    assert r.returncode == 1 and "does not exist" in r.stderr


def detached(rl, *args):
    r = subprocess.run(rl.argv(*args), env=rl.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0


def test_delete_force_and_created(rl, bb):
    bundle = bb(["sleep", "30"])
    detached(rl, "runtime", "run", "--detach", "--bundle", bundle, "d1")
    pid = json.loads(rl.ok("runtime", "state", "d1").stdout)["pid"]
    rl.ok("runtime", "delete", "--force", "d1")
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
    detached(rl, "runtime", "create", "--bundle", bundle, "d2")
    pid = json.loads(rl.ok("runtime", "state", "d2").stdout)["pid"]
    rl.ok("runtime", "delete", "d2")  # a created container is killed by delete, like runc
    assert rl("runtime", "state", "d2").returncode == 1


def test_reused_pid_is_not_a_live_container(rl, bb):
    bundle = bb(["true"])
    rl.ok("runtime", "run", "--keep", "--bundle", bundle, "k1")
    state_file = os.path.join(rl.env["XDG_RUNTIME_DIR"], "rootless", "runtime", "k1", "state.json")
    data = json.load(open(state_file))
    data["pid"] = os.getpid()  # a live process, but not the one that was started
    with open(state_file, "w") as f:
        json.dump(data, f)
    assert json.loads(rl.ok("runtime", "state", "k1").stdout)["status"] == "stopped"
    rl.ok("runtime", "delete", "k1")


@pytest.mark.parametrize("cid", ["../x", "a/b", ".hidden", "", "x" * 200])
def test_invalid_ids(rl, bb, cid):
    r = rl("runtime", "run", "--bundle", bb(["true"]), cid)
    assert r.returncode == 125
    assert "error: invalid container id" in r.stderr and "hint:" in r.stderr


def test_errors_are_clear(rl, bb, tmp_path):
    r = rl("runtime", "run", "--bundle", str(tmp_path / "nope"), "e1")
    assert r.returncode == 125 and "config.json`: no such file" in r.stderr and "hint:" in r.stderr
    bundle = bb(["true"], root_path="missing-rootfs")
    r = rl("runtime", "run", "--bundle", bundle, "e2")
    assert r.returncode == 125
    assert f"error: use rootfs `{bundle}/missing-rootfs`: no such directory" in r.stderr
    bundle = bb(["true"], extra_mounts=[{"destination": "/x", "type": "ext4", "source": "/dev/vda"}])
    r = rl("runtime", "run", "--bundle", bundle, "e3")
    assert r.returncode == 125 and "error: mount `ext4` on `/x`: Operation not permitted" in r.stderr
    assert "Traceback" not in r.stderr
    r = rl("runtime", "create", "--bundle", bb(["true"], terminal=True), "e4")
    assert r.returncode == 125 and "--console-socket" in r.stderr
    r = rl("runtime", "kill", "e5", "NOSIG")
    assert r.returncode == 125 and "invalid signal" in r.stderr


def test_terminal_run(rl, bb):
    r = rl("runtime", "run", "--bundle", bb(["sh", "-c", "tty; echo done"], terminal=True), "t1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace("\r\n", "\n") == "/dev/pts/0\ndone\n"
