"""Detached containers end to end: run -d, logs, exec, ps, inspect, stop/kill/wait/restart, rm.

Real registry, real namespaces, real monitor processes. Tests marked nosubuid also run as
`rltnosub` (no /etc/subuid range).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from enginehelp import leftovers, read_to_eof, setup_busybox, wait_for
from fixtures.users import has_subuid

subuid_only = pytest.mark.skipif(not has_subuid(), reason="needs a /etc/subuid range")
NONE = ("--network", "none")


pytestmark = pytest.mark.usefixtures("clean_containers")


def state(rl, ref):
    return json.loads(rl.ok("inspect", "--type", "container", ref).stdout)[0]["State"]


def monitor_pid(rl, cid):
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        return json.load(f)["State"]["MonitorPid"]


@pytest.mark.nosubuid
def test_done_when_web(rl, bb):
    """run -d web (httpd), logs -f streams, exec ps, stop within the timeout, ps -a Exited, rm."""
    t0 = time.monotonic()
    r = rl.ok("run", "-d", "--init", "--name", "web", bb, "sh", "-c",
              "echo started; echo to-stderr >&2; exec httpd -f -p 8080")
    assert time.monotonic() - t0 < 10
    cid = r.stdout.strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid), r
    assert r.stderr == ""
    # logs -f streams what it has and what comes, and goes on while the container runs
    p = subprocess.Popen(rl.argv("logs", "-f", "web"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"started\n"
        assert p.stderr.readline() == b"to-stderr\n"
        time.sleep(0.3)
        assert p.poll() is None
        # exec: the container's processes, not the host's
        out = rl.ok("exec", "web", "ps", "-o", "pid,comm").stdout
        lines = [ln.split() for ln in out.splitlines()[1:]]
        comms = [c for _, c in lines]
        assert "httpd" in comms and "ps" in comms and len(lines) <= 4, out
        # stop returns within the timeout; the container's SIGTERM death is recorded: 143
        t0 = time.monotonic()
        assert rl.ok("stop", "-t", "5", "web").stdout == "web\n"
        assert time.monotonic() - t0 < 5
        out, _ = p.communicate(timeout=10)  # logs -f ends when the container stops
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    ps = rl.ok("ps", "-a").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert "Exited (143)" in ps[1] and ps[1].endswith("web"), ps
    s = state(rl, "web")
    assert s["Status"] == "exited" and s["ExitCode"] == 143 and not s["Running"] and s["FinishedAt"] > s["StartedAt"]
    log_path = rl.ok("inspect", "--format", "{{.LogPath}}", "web").stdout.strip()
    assert log_path == os.path.join(rl.data_root, "containers", cid, f"{cid}-json.log")
    with open(log_path) as f:
        recs = [json.loads(x) for x in f]
    assert [(r["log"], r["stream"]) for r in recs] == [("started\n", "stdout"), ("to-stderr\n", "stderr")]
    assert recs[0]["time"].endswith("Z")
    assert rl.ok("rm", "web").stdout == "web\n"
    assert leftovers(rl.data_root) == []
    assert rl.ok("ps", "-a", "-q").stdout == ""


@pytest.mark.nosubuid
def test_stop_of_a_process_that_ignores_sigterm_returns_after_the_timeout(rl, bb):
    rl.ok("run", "-d", *NONE, "--name", "stubborn", bb, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
    t0 = time.monotonic()
    rl.ok("stop", "-t", "1", "stubborn")
    took = time.monotonic() - t0
    assert 0.9 < took < 5, took
    s = state(rl, "stubborn")
    assert s["ExitCode"] == 137 and s["Status"] == "exited"


@pytest.mark.nosubuid
def test_logs_options(rl, bb):
    cid = rl.ok("run", "-d", *NONE, bb, "sh", "-c",
                "echo one; echo two >&2; sleep 1.2; echo three; printf 'no-newline'").stdout.strip()
    rl.ok("wait", cid)
    r = rl.ok("logs", cid)
    assert r.stdout == "one\nthree\nno-newline" and r.stderr == "two\n"
    assert rl.ok("logs", "--tail", "2", cid).stdout == "three\nno-newline"
    assert rl.ok("logs", "-n", "0", cid).stdout == ""
    ts = rl.ok("logs", "-t", cid).stdout.splitlines()
    assert ts[0].endswith("Z one") and len(ts[0].split()[0]) == len("2024-01-01T00:00:00.000000000Z")
    first = ts[0].split()[0]
    assert rl.ok("logs", "--since", "1h", cid).stdout.startswith("one\n")
    assert rl.ok("logs", "--since", "2099-01-01T00:00:00Z", cid).stdout == ""
    assert rl.ok("logs", "--until", first, cid).stdout == "one\n"
    assert rl.ok("logs", "--until", "1h", cid).stdout == ""
    r = rl("logs", "--since", "yesterday", cid)
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_log_rotation_keeps_three_files_read_in_order(rl, bb):
    cid = rl.ok("run", "-d", *NONE, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", bb, "sh", "-c",
                "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done").stdout.strip()
    assert rl.ok("wait", cid).stdout == "0\n"
    d = os.path.join(rl.data_root, "containers", cid)
    logs = sorted(n for n in os.listdir(d) if "-json.log" in n)
    assert logs == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for n in logs:
        assert os.path.getsize(os.path.join(d, n)) <= 1024
    lines = rl.ok("logs", cid).stdout.splitlines()
    nums = [int(x.split("-")[1]) for x in lines]
    assert nums == list(range(nums[0], 300)) and nums[0] > 0  # the oldest rotated away, the rest in order
    hc = json.loads(rl.ok("inspect", cid).stdout)[0]["HostConfig"]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}


@pytest.mark.nosubuid
def test_log_driver_none_and_config_defaults(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image, 'log-driver = "json-file"\n[log-opts]\nmax-size = "2k"\nmax-file = "2"\n')
    cid = rl.ok("run", "-d", *NONE, "--log-driver", "none", bb, "echo", "x").stdout.strip()
    rl.ok("wait", cid)
    r = rl("logs", cid)
    assert r.returncode == 125 and "does not support reading" in r.stderr
    assert not os.path.exists(os.path.join(rl.data_root, "containers", cid, f"{cid}-json.log"))
    cid2 = rl.ok("run", "-d", *NONE, bb, "echo", "y").stdout.strip()
    rl.ok("wait", cid2)
    lc = json.loads(rl.ok("inspect", cid2).stdout)[0]["HostConfig"]["LogConfig"]
    assert lc == {"Type": "json-file", "Config": {"max-size": "2k", "max-file": "2"}}
    assert rl.ok("logs", cid2).stdout == "y\n"
    r = rl("run", "-d", "--log-driver", "syslog", bb, "true")
    assert r.returncode == 125 and "hint:" in r.stderr
    r = rl("run", "-d", "--log-opt", "max-size=lots", bb, "true")
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_fifty_detached_containers_at_once(rl, bb):
    def run(i):
        return rl("run", "-d", *NONE, "--name", f"c{i}", bb, "sh", "-c",
                  f"i=0; while [ $i -lt 20 ]; do echo c{i}-$i; i=$((i+1)); done; sleep 30", timeout=120)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as ex:
        results = list(ex.map(run, range(50)))
    took = time.monotonic() - t0
    assert all(r.returncode == 0 for r in results), [str(r) for r in results if r.returncode][:2]
    ids = {r.stdout.strip() for r in results}
    assert len(ids) == 50
    listed = rl.ok("ps", "-q", "--no-trunc").stdout.split()
    assert set(listed) == ids
    names = rl.ok("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(names) == sorted(f"c{i}" for i in range(50))
    for i in range(50):
        want = "".join(f"c{i}-{j}\n" for j in range(20))
        wait_for(lambda i=i, want=want: rl.ok("logs", f"c{i}").stdout == want, what=f"logs of c{i}")
    r = rl.ok("rm", "-f", *rl.ok("ps", "-aq").stdout.split(), timeout=120)
    assert len(r.stdout.split()) == 50
    assert rl.ok("ps", "-aq").stdout == ""
    assert leftovers(rl.data_root) == []
    print(f"50 parallel run -d: {took:.1f} s")


@pytest.mark.nosubuid
def test_restart_policies(rl, bb):
    cid = rl.ok("run", "-d", *NONE, "--restart", "on-failure:2", bb, "sh", "-c", "echo run; exit 3").stdout.strip()
    wait_for(lambda: json.loads(rl.ok("inspect", cid).stdout)[0]["RestartCount"] == 2
             and not state(rl, cid)["Restarting"] and not state(rl, cid)["Running"], what="2 restarts")
    time.sleep(0.5)
    d = json.loads(rl.ok("inspect", cid).stdout)[0]
    assert d["RestartCount"] == 2 and d["State"]["ExitCode"] == 3
    assert d["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert rl.ok("logs", cid).stdout == "run\nrun\nrun\n"
    # always: restarts after a kill, not after a stop
    rl.ok("run", "-d", *NONE, "--name", "alw", "--restart", "always", bb, "sleep", "30")
    pid1 = state(rl, "alw")["Pid"]
    rl.ok("kill", "alw")
    wait_for(lambda: state(rl, "alw")["Running"] and state(rl, "alw")["Pid"] not in (0, pid1), what="a restart")
    rl.ok("stop", "-t", "0", "alw")
    time.sleep(0.6)
    s = state(rl, "alw")
    assert not s["Running"] and s["Status"] == "exited"
    r = rl("run", "-d", "--rm", "--restart", "always", bb, "true")
    assert r.returncode == 125 and "conflicting" in r.stderr
    r = rl("run", "-d", "--restart", "sometimes", bb, "true")
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_rm_of_detached_auto_remove_and_force(rl, bb):
    cid = rl.ok("run", "-d", *NONE, "--rm", bb, "echo", "bye").stdout.strip()
    wait_for(lambda: not os.path.exists(os.path.join(rl.data_root, "containers", cid)), what="--rm removal")
    rl.ok("run", "-d", *NONE, "--name", "busy", bb, "sleep", "30")
    r = rl("rm", "busy")
    assert r.returncode == 1 and "running" in r.stderr and "hint:" in r.stderr
    assert rl.ok("rm", "-f", "busy").stdout == "busy\n"
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_state_stays_true_when_things_die(rl, bb):
    # the container's process killed from outside: the monitor records 137
    cid = rl.ok("run", "-d", *NONE, "--name", "victim", bb, "sleep", "30").stdout.strip()
    os.kill(state(rl, "victim")["Pid"], signal.SIGKILL)
    wait_for(lambda: state(rl, "victim")["Status"] == "exited", what="exited")
    assert state(rl, "victim")["ExitCode"] == 137
    assert "Exited (137)" in rl.ok("ps", "-a").stdout
    # the monitor killed: the container is still shown running while it is; when it dies, exited
    cid = rl.ok("run", "-d", *NONE, "--name", "orphan", bb, "sleep", "30").stdout.strip()
    mon = monitor_pid(rl, cid)
    os.kill(mon, signal.SIGKILL)
    time.sleep(0.2)
    s = state(rl, "orphan")
    assert s["Running"] and s["Status"] == "running"
    os.kill(s["Pid"], signal.SIGKILL)
    wait_for(lambda: state(rl, "orphan")["Status"] == "exited", what="exited after its monitor died")
    s = state(rl, "orphan")
    # its exit status went to whoever reaped it: unknown, and said so (not a made-up 137)
    assert s["ExitCode"] == 255 and "exit code is unknown" in s["Error"], s
    assert "Exited (255)" in rl.ok("ps", "-a", "--filter", "name=orphan").stdout
    # stop and wait of such a container do not block
    assert rl.ok("stop", "orphan", timeout=20).stdout == "orphan\n"
    # the runtime dir wiped (a reboot): nothing of ours lived there
    run_dir = rl.env["XDG_RUNTIME_DIR"]
    for n in os.listdir(run_dir):
        subprocess.run(["rm", "-rf", os.path.join(run_dir, n)])
    rl.ok("ps", "-a")
    assert rl.ok("rm", "-f", "victim", "orphan").stdout.split() == ["victim", "orphan"]
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_exec(rl, bb, tmp_path):
    rl.ok("run", "-d", *NONE, "-e", "FROMRUN=1", "--name", "box", bb, "sleep", "60")
    r = rl.ok("exec", "-e", "A=b c", "-w", "/tmp", "box", "sh", "-c", 'echo "$A|$FROMRUN|$(pwd)|$(hostname)|$HOME"')
    assert r.stdout.startswith("b c|1|/tmp|") and r.stdout.endswith("|/root\n")
    assert rl("exec", "box", "sh", "-c", "exit 7").returncode == 7
    r = rl("exec", "box", "nosuch")
    assert r.returncode == 127 and "error:" in r.stderr and "Traceback" not in r.stderr
    assert rl("exec", "box", "/etc/passwd").returncode == 126
    r = subprocess.run(rl.argv("exec", "-i", "box", "cat"), input=b"through stdin", capture_output=True,
                       env=rl.env, timeout=30)
    assert r.stdout == b"through stdin"
    assert rl.ok("exec", "box", "cat").stdout == ""  # no -i: /dev/null
    pids = rl.ok("exec", "box", "sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '").stdout.split("\n")
    assert pids[1].startswith("sleep 60")  # pid 1 is the container's: we are in its pid namespace
    assert rl.ok("exec", "-d", "box", "sh", "-c", "sleep 0.2; touch /tmp/detached").stdout == ""
    wait_for(lambda: rl("exec", "box", "test", "-e", "/tmp/detached").returncode == 0, what="exec -d")
    caps = rl.ok("exec", "box", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert caps == "00000000a80425fb"  # docker's default set
    assert rl.ok("exec", "--privileged", "box", "grep", "CapEff", "/proc/self/status").stdout.split()[1] != caps
    r = rl("exec", "nosuchbox", "true")
    assert r.returncode == 1 and "No such container" in r.stderr
    rl.ok("stop", "-t", "0", "box")
    r = rl("exec", "box", "true")
    assert r.returncode == 1 and "not running" in r.stderr and "hint:" in r.stderr


@subuid_only
def test_exec_as_a_user(rl, bb):
    rl.ok("run", "-d", *NONE, "--name", "box", bb, "sleep", "60")
    assert rl.ok("exec", "-u", "app", "box", "sh", "-c", "id -u; echo $HOME").stdout == "1000\n/home/app\n"
    assert rl.ok("exec", "-u", "1000:0", "box", "id", "-g").stdout == "0\n"


@pytest.mark.nosubuid
def test_exec_tty(rl, bb):
    import pty

    rl.ok("run", "-d", *NONE, "--name", "box", bb, "sleep", "60")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(rl.base[0], rl.argv("exec", "-it", "box", "sh", "-c", "tty; exit 3"), rl.env)
    try:
        out = read_to_eof(fd)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"/dev/pts/" in out, out
    assert os.WEXITSTATUS(status) == 3


@pytest.mark.nosubuid
def test_ps_filters_and_formats(rl, bb):
    a = rl.ok("run", "-d", *NONE, "--name", "alpha", "-l", "tier=web", bb, "sleep", "30").stdout.strip()
    b = rl.ok("run", "-d", *NONE, "--name", "beta", bb, "sh", "-c", "exit 3").stdout.strip()
    rl.ok("wait", "beta")
    c = rl.ok("create", *NONE, bb, "true").stdout.strip()
    assert rl.ok("ps", "-q").stdout.split() == [a[:12]]
    assert rl.ok("ps", "-aq").stdout.split() == [c[:12], b[:12], a[:12]]
    assert rl.ok("ps", "-aq", "--no-trunc").stdout.split() == [c, b, a]
    assert rl.ok("ps", "-q", "-n", "2").stdout.split() == [c[:12], b[:12]]
    assert rl.ok("ps", "-q", "-l").stdout.split() == [c[:12]]
    assert rl.ok("ps", "-q", "--filter", "status=exited").stdout.split() == [b[:12]]
    assert rl.ok("ps", "-q", "--filter", "exited=3").stdout.split() == [b[:12]]
    assert rl.ok("ps", "-q", "--filter", "status=created").stdout.split() == [c[:12]]
    assert rl.ok("ps", "-aq", "--filter", "name=alp").stdout.split() == [a[:12]]
    assert rl.ok("ps", "-aq", "--filter", "label=tier=web").stdout.split() == [a[:12]]
    assert rl.ok("ps", "-aq", "--filter", f"id={b[:5]}").stdout.split() == [b[:12]]
    assert len(rl.ok("ps", "-aq", "--filter", f"ancestor={bb}").stdout.split()) == 3
    rows = rl.ok("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Command}}|{{.State}}").stdout.splitlines()
    name_c = json.loads(rl.ok("inspect", c).stdout)[0]["Name"].lstrip("/")
    assert rows[0] == f'{name_c}|Created|"true"|created'
    assert rows[1].startswith('beta|Exited (3) ') and rows[1].endswith('ago|"sh -c \'exit 3\'"|exited')
    assert rows[2].startswith("alpha|Up ") and rows[2].endswith('|"sleep 30"|running')
    assert "_" in name_c  # docker-like adjective_name
    t = rl.ok("ps", "--format", "table {{.Names}}\t{{.Labels}}").stdout.splitlines()
    assert t[0].split() == ["NAMES", "LABELS"] and t[1].split() == ["alpha", "tier=web"]
    j = [json.loads(x) for x in rl.ok("ps", "-a", "--format", "json").stdout.splitlines()]
    assert [x["Names"] for x in j] == [name_c, "beta", "alpha"]
    s = rl.ok("ps", "-s").stdout.splitlines()
    assert s[0].split()[-1] == "SIZE" and "virtual" in s[1]
    r = rl("ps", "--filter", "colour=red")
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_inspect_shapes(rl, bb):
    cid = rl.ok("run", "-d", *NONE, "--name", "web", bb, "sleep", "30").stdout.strip()
    d = json.loads(rl.ok("inspect", "web").stdout)
    assert len(d) == 1
    d = d[0]
    for k in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
              "LogPath", "Name", "RestartCount", "Driver", "Mounts", "Config", "HostConfig", "NetworkSettings",
              "GraphDriver"):
        assert k in d, k
    assert d["Id"] == cid and d["Name"] == "/web" and d["Path"] == "sleep" and d["Args"] == ["30"]
    s = d["State"]
    assert set(s) == {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
                      "StartedAt", "FinishedAt"}
    assert s["Running"] and s["Status"] == "running" and s["Pid"] > 0
    assert rl.ok("inspect", "-f", "{{.State.Status}} {{.Config.Image}}", "web").stdout == f"running {bb}\n"
    img = json.loads(rl.ok("inspect", "--type", "image", bb).stdout)[0]
    assert img["Id"] == d["Image"]
    both = json.loads(rl.ok("inspect", "web", bb).stdout)
    assert [x["Id"] for x in both] == [cid, d["Image"]]
    r = rl("inspect", "nosuch")
    assert r.returncode == 1 and "No such object: nosuch" in r.stderr and json.loads(r.stdout) == []


@pytest.mark.nosubuid
def test_kill_wait_rename_top_port_restart(rl, bb):
    rl.ok("run", "-d", *NONE, "--name", "kk", bb, "sh", "-c", "trap 'exit 9' USR1; while true; do sleep 0.1; done")
    w = subprocess.Popen(rl.argv("wait", "kk"), stdout=subprocess.PIPE, env=rl.env)
    top = rl.ok("top", "kk").stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any("while true" in x for x in top[1:]), top
    assert rl.ok("kill", "-s", "USR1", "kk").stdout == "kk\n"
    out, _ = w.communicate(timeout=20)
    assert out == b"9\n"
    r = rl("kill", "kk")
    assert r.returncode == 1 and "not running" in r.stderr
    r = rl("kill", "-s", "NOPE", "kk")
    assert r.returncode == 125 and "invalid signal" in r.stderr
    rl.ok("rename", "kk", "k2")
    assert state(rl, "k2")["ExitCode"] == 9
    r = rl("rename", "k2", "bad name!")
    assert r.returncode == 125 and "hint:" in r.stderr
    assert rl.ok("port", "k2").stdout == ""
    rl.ok("restart", "-t", "1", "k2")
    s = state(rl, "k2")
    assert s["Running"] and s["Status"] == "running"
    # renaming a running container: its monitor keeps the new name when it records the exit
    rl.ok("rename", "k2", "k3")
    rl.ok("kill", "-s", "USR1", "k3")
    assert rl.ok("wait", "k3").stdout == "9\n"
    assert json.loads(rl.ok("inspect", "k3").stdout)[0]["Name"] == "/k3"
    r = rl("pause", "k3")
    assert r.returncode == 1 and "not running" in r.stderr


@pytest.mark.nosubuid
def test_pause_explains_itself_without_a_cgroup(rl, bb):
    rl.ok("run", "-d", *NONE, "--name", "pp", bb, "sleep", "30")
    rec = json.loads(rl.ok("inspect", "pp").stdout)[0]
    r = rl("pause", "pp")
    if (rec.get("Rootless") or {}).get("Cgroup"):
        assert r.returncode == 0 and state(rl, "pp")["Paused"]
        assert "(Paused)" in rl.ok("ps").stdout
        rl.ok("unpause", "pp")
    else:
        assert r.returncode == 1 and "freezer" in r.stderr and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_container_command_aliases_and_prune(rl, bb):
    a = rl.ok("run", "-d", *NONE, bb, "true").stdout.strip()
    rl.ok("wait", a)
    b = rl.ok("run", "-d", *NONE, bb, "sleep", "30").stdout.strip()
    assert rl.ok("container", "ls", "-q").stdout.split() == [b[:12]]
    assert json.loads(rl.ok("container", "inspect", a).stdout)[0]["Id"] == a
    r = rl.ok("container", "prune", "-f")
    assert r.stdout.startswith("Deleted Containers:\n" + a + "\n")
    assert rl.ok("ps", "-aq").stdout.split() == [b[:12]]
    r = rl("container", "fly")
    assert r.returncode == 125 and "unknown command" in r.stderr


@pytest.mark.nosubuid
def test_start_detached_of_created(rl, bb):
    cid = rl.ok("create", *NONE, "--name", "later", bb, "sh", "-c", "echo up; sleep 30").stdout.strip()
    r = rl.ok("start", "later")
    assert r.stdout == "later\n"
    assert state(rl, "later")["Running"]
    wait_for(lambda: rl.ok("logs", "later").stdout == "up\n", what="log")
    rl.ok("start", "later")  # already running: a no-op, as docker
    rl.ok("stop", "-t", "0", "later")
    r = rl("start", "nosuch")
    assert r.returncode == 1 and "No such container" in r.stderr
    assert cid


@pytest.mark.nosubuid
@pytest.mark.parametrize("driver", ["fuse-overlayfs", "vfs"])
def test_detached_with_other_storage_drivers(rl, busybox_image, driver):
    bb = setup_busybox(rl, busybox_image, f'storage-driver = "{driver}"\n')
    rl.ok("run", "-d", *NONE, "--name", "dd", bb, "sh", "-c", "echo up; sleep 30")
    wait_for(lambda: rl.ok("logs", "dd").stdout == "up\n", what="log")
    assert rl.ok("exec", "dd", "cat", "/etc/passwd").stdout.startswith("root:")
    rl.ok("stop", "-t", "0", "dd")
    assert state(rl, "dd")["ExitCode"] == 137
    rl.ok("rm", "dd")
    assert leftovers(rl.data_root) == []


@pytest.mark.nosubuid
def test_detached_tty_and_interactive(rl, bb):
    cid = rl.ok("run", "-d", "-t", *NONE, bb, "sh", "-c", "tty; echo x").stdout.strip()
    assert rl.ok("wait", cid).stdout == "0\n"
    assert rl.ok("logs", cid).stdout == "/dev/pts/0\r\nx\r\n"  # a terminal's output, as docker logs it
    # -di: stdin stays open (and empty): a shell waits instead of exiting
    rl.ok("run", "-di", *NONE, "--name", "shell", bb, "sh")
    time.sleep(0.5)
    assert state(rl, "shell")["Running"]
    assert rl.ok("exec", "shell", "echo", "alive").stdout == "alive\n"


@pytest.mark.nosubuid
def test_start_all_restart_after_a_reboot(rl, bb):
    a = rl.ok("run", "-d", *NONE, "--name", "always1", "--restart", "always", bb, "sleep", "30").stdout.strip()
    rl.ok("run", "-d", *NONE, "--name", "unless1", "--restart", "unless-stopped", bb, "sleep", "30")
    rl.ok("run", "-d", *NONE, "--name", "plain1", bb, "sleep", "30")
    rl.ok("stop", "-t", "0", "unless1")
    for name in ("always1", "plain1"):  # a reboot: monitors and containers gone at once
        s = state(rl, name)
        os.kill(monitor_pid(rl, json.loads(rl.ok("inspect", name).stdout)[0]["Id"]), signal.SIGKILL)
        os.kill(s["Pid"], signal.SIGKILL)
    wait_for(lambda: not state(rl, "always1")["Running"] and not state(rl, "plain1")["Running"], what="all down")
    assert rl.ok("start", "--all-restart").stdout.split() == [a]
    assert state(rl, "always1")["Running"]
    assert not state(rl, "unless1")["Running"] and not state(rl, "plain1")["Running"]


@pytest.mark.nosubuid
def test_monitor_survives_the_terminal_closing(rl, bb):
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # `rootless run -d` on a real terminal, which then goes away
        os.execve(rl.base[0], rl.argv("run", "-d", *NONE, "--name", "hup", bb, "sh", "-c",
                                      "while true; do echo tick; sleep 0.2; done"), rl.env)
    out = read_to_eof(fd)
    os.waitpid(pid, 0)
    os.close(fd)  # the terminal is gone: a SIGHUP for whatever still had it as controlling terminal
    time.sleep(0.5)
    s = state(rl, "hup")
    assert s["Running"], out
    cid = json.loads(rl.ok("inspect", "hup").stdout)[0]["Id"]
    mon = monitor_pid(rl, cid)
    with open(f"/proc/{mon}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert fields[4] == "0"  # tty_nr: no controlling terminal
    with open(f"/proc/{mon}/status") as f:
        rss = int(next(x for x in f if x.startswith("VmRSS:")).split()[1])
    assert rss < 20 * 1024, rss  # the lean watcher (about 13 MiB here)
    with open(f"/proc/{s['Pid']}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == mon  # the monitor is the container's parent
    assert "tick" in rl.ok("logs", "--tail", "1", "hup").stdout


@pytest.mark.nosubuid
def test_detached_with_crun(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image, 'storage-driver = "vfs"\n')
    rl.ok("run", "-d", *NONE, "--runtime", "crun", "--name", "cr", bb, "sh", "-c",
          "echo via-crun; trap 'exit 5' TERM; while true; do sleep 0.1; done")
    wait_for(lambda: rl.ok("logs", "cr").stdout == "via-crun\n", what="log")
    rl.ok("stop", "-t", "5", "cr")
    assert state(rl, "cr")["ExitCode"] == 5
    rl.ok("rm", "cr")
    assert leftovers(rl.data_root) == []
