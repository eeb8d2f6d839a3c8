"""The warm server (rootless/warm.py): commands run in a child of a per-user server that has
rootless imported, with the client's fds, environment, working directory, umask and signals.

The whole suite runs through one warm server (conftest.warm_dir) and tests/run runs the container
tests once more cold (ROOTLESS_TEST_WARM=0); these tests check what only the server does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from enginehelp import kill_and_wait, leftovers, read_to_eof, wait_for, warm_wanted

pytestmark = [
    pytest.mark.usefixtures("clean_data_root"),
    pytest.mark.nosubuid,
    pytest.mark.skipif(not os.environ.get("ROOTLESS_TEST_PYZ"), reason="the warm server serves the built .pyz only"),
    pytest.mark.skipif(not warm_wanted(), reason="ROOTLESS_TEST_WARM=0: this run is the cold one"),
]




def server_pids(d: str):
    """Pids of the live servers with a pid file in ``d`` (an exiting server removes its file as we read)."""
    out = []
    for n in os.listdir(d):
        if n.endswith(".pid"):
            try:
                with open(os.path.join(d, n)) as f:
                    pid = int(f.read())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"rootless.warm" in f.read():
                        out.append(pid)
            except (OSError, ValueError):
                pass
    return out


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError("no PPid")


def children(pid: int):
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def running_init(rl) -> int:
    def find():
        root = os.path.join(rl.data_root, "containers")
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            try:
                with open(os.path.join(root, cid, "config.json")) as f:
                    pid = json.load(f)["State"]["Pid"]
            except (OSError, ValueError, KeyError):
                continue
            if pid:
                return pid
        return 0

    return wait_for(find, what="the container to run")


def test_first_command_starts_the_server_and_the_next_runs_in_it(rl, bb, own_warm):
    assert server_pids(own_warm) == []
    assert rl("run", "--rm", bb, "echo", "cold").stdout == "cold\n"
    (server,) = wait_for(lambda: server_pids(own_warm), what="the warm server")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="its socket")
    p = subprocess.Popen(rl.argv("run", "--rm", "--init", bb, "sh", "-c", "echo ready; sleep 30"), env=rl.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == b"ready\n"
        running_init(rl)
        (command,) = wait_for(lambda: children(server), what="the command")  # attached to the container's monitor
        assert command != p.pid and ppid(command) == server  # run by the server, not by our client
        out = rl.ok("system", "warm").stdout
        assert f"running, pid {server}" in out
    finally:
        p.send_signal(signal.SIGTERM)  # forwarded to the container; its sh (not pid 1: --init) dies of it
        rc = p.wait(timeout=30)
    assert rc == 143, rc
    wait_for(lambda: leftovers(rl.data_root) == [], what="--rm")


def test_off_with_rootless_warm_0(rl, bb, own_warm):
    rl.env["ROOTLESS_WARM"] = "0"
    for _ in range(2):
        assert rl("run", "--rm", bb, "true").returncode == 0
    time.sleep(1)
    assert server_pids(own_warm) == []
    assert "off (ROOTLESS_WARM=0)" in rl.ok("system", "warm").stdout


def test_client_state_reaches_the_command(rl, bb, tmp_path):
    """stdin/stdout/stderr, exit code, environment, working directory and umask are the client's."""
    (tmp_path / "envs").write_text("FROM_FILE=yes\n")
    r = subprocess.run(
        rl.argv("run", "--rm", "-i", "-e", "FROM_CLIENT", "--env-file", "envs", bb, "sh", "-c",
                "read line; echo \"in=$line $FROM_CLIENT $FROM_FILE\"; echo err >&2; exit 5"),
        env=dict(rl.env, FROM_CLIENT="hello"), cwd=str(tmp_path), input=b"piped\n", capture_output=True, timeout=60)
    assert r.returncode == 5, r
    assert r.stdout == b"in=piped hello yes\n" and r.stderr == b"err\n"
    # the umask of the client applies to what the command creates on the host (an export -o)
    rl.ok("create", "--name", "src", bb, "true")
    for mask, name in (("077", "e77.tar"), ("022", "e22.tar")):
        subprocess.run(["sh", "-c", f"umask {mask} && exec \"$@\"", "sh"] + rl.argv("export", "-o", name, "src"),
                       env=rl.env, cwd=str(tmp_path), check=True, timeout=60)
    assert os.stat(tmp_path / "e77.tar").st_mode & 0o077 == 0
    assert os.stat(tmp_path / "e22.tar").st_mode & 0o044 == 0o044
    rl.ok("rm", "src")


def test_output_equals_a_cold_run(rl, bb):
    rl.ok("create", "--name", "one", "-l", "a=b", bb, "true")
    rl.ok("start", "one")
    for args in (["ps", "-a", "--format", "{{.Names}} {{.Image}} {{.Labels}}"], ["images", "--format", "{{.Repository}}"],
                 ["inspect", "--format", "{{.Name}} {{.Config.Labels}}", "one"], ["run", "--rm", bb, "nosuch"],
                 ["logs", "-t", "one"]):
        warm = rl(*args, env={"TZ": "Asia/Tokyo"})  # the client's time zone, not the server's
        cold = rl(*args, env={"ROOTLESS_WARM": "0", "TZ": "Asia/Tokyo"})
        assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr), args
    rl.ok("rm", "one")


def sleeper(rl, bb):
    """`run --rm` of a container that sleeps, and its init's pid once it runs."""
    p = subprocess.Popen(rl.argv("run", "--rm", bb, "sh", "-c", "echo ready; sleep 60"), env=rl.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == b"ready\n"
        return p, running_init(rl)
    except BaseException:
        p.kill()
        p.wait()
        raise


def test_a_killed_client_takes_its_command_along(rl, bb, own_warm):
    rl.ok("ps")
    (server,) = wait_for(lambda: server_pids(own_warm), what="the warm server")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="its socket")
    p, init = sleeper(rl, bb)
    try:
        (command,) = wait_for(lambda: children(server), what="the command")
        assert command != p.pid
        p.kill()  # SIGKILL: nothing to forward; the server sees the connection close, kills the command
        p.wait()
        wait_for(lambda: command not in children(server), what="the command to die with its client")
        os.kill(init, 0)  # the container goes on under its monitor (a foreground run has one too)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_and_wait(init)
    wait_for(lambda: leftovers(rl.data_root) == [], what="its monitor's --rm removal")


def test_a_dead_server_is_an_error_not_a_hang(rl, bb, own_warm):
    rl.ok("ps")
    (server,) = wait_for(lambda: server_pids(own_warm), what="the warm server")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="its socket")
    p, init = sleeper(rl, bb)
    try:
        os.kill(server, signal.SIGKILL)
        assert p.wait(timeout=30) == 125
    finally:
        if p.poll() is None:
            p.kill()
        kill_and_wait(init)
    err = p.stderr.read()
    assert b"error: the warm server went away" in err and b"hint: " in err and b"Traceback" not in err
    # the next command runs by itself (and starts a new server)
    assert rl("run", "--rm", bb, "echo", "again").stdout == "again\n"
    wait_for(lambda: set(server_pids(own_warm)) - {server}, what="a new server")  # for own_warm to stop it
    wait_for(lambda: leftovers(rl.data_root) == [], what="cleanup")


def test_idle_server_exits_and_stop_lets_running_commands_finish(rl, bb, own_warm):
    rl.env["ROOTLESS_WARM_IDLE"] = "1"
    rl.ok("ps")
    wait_for(lambda: server_pids(own_warm), what="the warm server")
    wait_for(lambda: not server_pids(own_warm), timeout=30, what="the idle server to exit")
    assert not any(n.endswith(".sock") for n in os.listdir(own_warm))
    rl.env["ROOTLESS_WARM_IDLE"] = "600"
    rl.ok("ps")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="a new server")
    p = subprocess.Popen(rl.argv("run", "--rm", bb, "sh", "-c", "echo ready; sleep 2; echo done"), env=rl.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stdout.readline() == b"ready\n"
    assert rl.ok("system", "warm", "stop").stdout == "stopped 1 warm server\n"
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0 and out == b"done\n"
    assert "not running" in rl.ok("system", "warm").stdout


def test_a_more_confined_client_is_not_served_by_a_less_confined_server(rl, bb, own_warm):
    """no_new_privs (or seccomp, capabilities, another cgroup or namespace) is part of the place a
    server serves: such a client gets a server of its own, confined as it is."""
    import shutil

    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    rl.ok("ps")
    (first,) = wait_for(lambda: server_pids(own_warm), what="the warm server")
    for _ in range(2):
        r = subprocess.run(["setpriv", "--no-new-privs"] + rl.argv("ps", "-a"), env=rl.env, capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r
    pids = wait_for(lambda: len(server_pids(own_warm)) == 2 and server_pids(own_warm), what="a second server")
    (second,) = set(pids) - {first}
    with open(f"/proc/{second}/status") as f:
        assert "NoNewPrivs:\t1" in f.read()


def test_the_server_holds_neither_requests_nor_pyroute2(rl):
    """`run` of a local image imports neither (the issue's rule) in the server as in a cold run; a
    smaller server also makes every fork on the way to a container cheaper."""
    import sys

    code = ("import sys; from rootless import warm; warm._prewarm(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'requests', 'urllib3', 'pyroute2'}))")
    r = subprocess.run([sys.executable, "-c", code], env=rl.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_background_job_on_a_terminal_runs_by_itself(rl):
    """Job control: a background job that reads its terminal must be stopped by SIGTTIN, which only
    a process of the terminal's session gets; so such a client runs its command itself."""
    import pty

    r = rl.ok("ps", env={"ROOTLESS_DEBUG": "1"})  # the session's server runs
    assert "debug:" not in r.stderr, r
    argv = rl.argv("ps")
    env = dict(rl.env, ROOTLESS_DEBUG="1")
    pid, fd = pty.fork()
    if pid == 0:  # a session leader with the pty as its terminal, like a login shell
        try:
            job = os.fork()
            if job == 0:
                os.setpgid(0, 0)  # a job of its own that is not the foreground one
                os.execve(argv[0], argv, env)
            os.waitpid(job, 0)
        finally:
            os._exit(0)
    out = read_to_eof(fd)
    os.waitpid(pid, 0)
    os.close(fd)
    assert b"started in the background of a terminal" in out, out
    assert b"CONTAINER ID" in out


def test_a_stopped_server_is_an_error_and_the_command_never_runs_twice(rl, bb, own_warm):
    rl.ok("ps")
    (server,) = wait_for(lambda: server_pids(own_warm), what="the warm server")
    wait_for(lambda: any(n.endswith(".sock") for n in os.listdir(own_warm)), what="its socket")
    os.kill(server, signal.SIGSTOP)
    try:  # the request, with our stdout and stderr in it, waits in the stopped server's queue
        p = subprocess.Popen(rl.argv("create", "--name", "late", bb, "true"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(rl.env, ROOTLESS_WARM_START_TIMEOUT="1"))
        assert p.wait(timeout=30) == 125
    finally:
        os.kill(server, signal.SIGCONT)
    _, err = p.communicate(timeout=30)
    assert b"did not answer within 1 s" in err and b"hint: " in err, err
    time.sleep(1)  # the server has taken the request; its command saw that the client gave up
    assert rl("ps", "-a", "--format", "{{.Names}}", env={"ROOTLESS_WARM": "0"}).stdout == ""


def test_a_socket_path_too_long_for_unix_sockets_means_cold_commands(rl, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True, mode=0o700)
    r = rl("ps", env={"ROOTLESS_WARM_DIR": str(deep), "ROOTLESS_DEBUG": "1"})
    assert r.returncode == 0 and "CONTAINER ID" in r.stdout, r
    assert "socket path would be too long" in r.stderr
    assert server_pids(str(deep)) == []
