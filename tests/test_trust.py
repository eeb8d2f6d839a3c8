"""Run-time and data directories we do not own, and state files naming pids and paths that are
not ours (issue 11 item 3; DESIGN.md security rules). The root_only tests play two users:
rltnosub attacks, rltuser is the victim (fixtures/hostile_rundir.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from rootless import trust
from rootless.errors import RootlessError

NET = "vnet"


def _attacker_plant(path: str, text: str, mode: int = 0o666) -> None:
    from fixtures.hostile_rundir import as_attacker

    script = ("import os,sys\np=sys.argv[1]\nos.makedirs(os.path.dirname(p),0o777,exist_ok=True)\n"
              "os.chmod(os.path.dirname(p),0o777)\nopen(p,'w').write(sys.argv[2])\nos.chmod(p,int(sys.argv[3]))\n")
    as_attacker(["python3", "-c", script, path, text, str(mode)])


def _alive(p: subprocess.Popen) -> bool:
    time.sleep(0.3)  # a SIGTERM/SIGKILL sent by the command has landed by now
    return p.poll() is None


@pytest.mark.root_only
def test_forged_holder_in_another_users_fallback_dir_is_refused(victim, fallback_dir):
    """The audit's attack: rltnosub pre-creates /tmp/rootless-run-<victim uid> 0777 with a
    usernet/holder.json naming two processes of the victim (pid + their real start times, which
    /proc shows anyone) and a file in the victim's home as slirp4netns's socket. The victim,
    without XDG_RUNTIME_DIR, removes a network: nothing is killed, nothing deleted, a clear error."""
    r = victim.rl("network", "create", NET)
    assert r.returncode == 0, r.stderr
    if os.path.lexists(fallback_dir):  # not made by `network create`, but be sure the attacker is first
        subprocess.run(["rm", "-rf", fallback_dir], check=True)
    holder, slirp = victim.sleeper(), victim.sleeper()
    forged = {"pid": holder.pid, "start_time": trust_start(holder.pid), "pending": {},
              "slirp": {"pid": slirp.pid, "start_time": trust_start(slirp.pid), "api_socket": victim.precious,
                        "log": ""}}
    _attacker_plant(os.path.join(fallback_dir, "usernet", "holder.json"), json.dumps(forged))
    assert os.stat(fallback_dir).st_uid != victim.uid

    r = victim.rl("network", "rm", NET)

    assert _alive(holder), "the victim's process named as the holder was killed"
    assert _alive(slirp), "the victim's process named as slirp4netns was killed"
    assert os.path.exists(victim.precious), "the victim's file named as the API socket was deleted"
    assert r.returncode != 0, f"the command went on in a directory another user owns:\n{r.stdout}{r.stderr}"
    assert f"error: use exec-root `{fallback_dir}`: it belongs to uid" in r.stderr, r.stderr
    assert "hint: " in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.root_only
def test_own_fallback_dir_open_to_others_is_refused(victim, fallback_dir):
    """The victim's own fallback directory, made 0777 (by a careless umask or chmod): someone may
    have planted a holder.json in it; the victim's command refuses it."""
    r = victim.rl("network", "create", NET)
    assert r.returncode == 0, r.stderr
    os.makedirs(fallback_dir, exist_ok=True)
    os.chown(fallback_dir, victim.uid, victim.gid)
    os.chmod(fallback_dir, 0o777)
    holder = victim.sleeper()
    _attacker_plant(os.path.join(fallback_dir, "usernet", "holder.json"),
                    json.dumps({"pid": holder.pid, "start_time": trust_start(holder.pid), "pending": {}}))
    r = victim.rl("network", "rm", NET)
    assert _alive(holder), "the victim's process named in the planted holder.json was killed"
    assert r.returncode != 0, r.stderr
    assert "other users can write to it (mode 0777)" in r.stderr and "hint: " in r.stderr, r.stderr


@pytest.mark.root_only
def test_data_root_others_can_write_is_refused(victim, attacker_tmp):
    """A data-root in /tmp that the attacker made first (0777), with a forged container record
    that says a process of the victim is the container: `rm -f` of it must not kill it."""
    shared = attacker_tmp("rl-shared-data-")
    data_root = os.path.join(shared, "rootless")
    victim.write_file(os.path.join(victim.home, ".config", "rootless", "daemon.toml"), f'data-root = "{data_root}"\n')
    target = victim.sleeper()
    cid = "ab" * 32
    rec = {"Id": cid, "Name": "/planted", "Created": "2026-01-01T00:00:00Z", "Driver": "vfs", "Image": "",
           "Config": {"Image": "busybox", "Cmd": ["sh"]}, "HostConfig": {},
           "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "Pid": target.pid,
                     "PidStartTime": trust_start(target.pid), "ExitCode": 0, "StartedAt": "2026-01-01T00:00:00Z",
                     "FinishedAt": "0001-01-01T00:00:00Z"}}
    _attacker_plant(os.path.join(data_root, "containers", cid, "config.json"), json.dumps(rec))
    os.chmod(data_root, 0o777)
    os.chmod(os.path.join(data_root, "containers"), 0o777)

    r = victim.rl("rm", "-f", cid)

    assert _alive(target), "the victim's process named in the planted record was killed"
    assert r.returncode != 0, r.stdout + r.stderr
    assert f"error: use data-root `{data_root}`: it belongs to uid" in r.stderr, r.stderr
    assert "hint: " in r.stderr, r.stderr


def trust_start(pid: int) -> int:
    from fixtures.hostile_rundir import start_time

    return start_time(pid)


# --- same user: a state file of ours that names a process or a path that is not what it says ------


def _sleeper():
    return subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)


def test_forged_holder_of_same_user_is_not_acted_on(rl, tmp_path):
    """holder.json in our own (private) exec-root naming our own, unrelated processes (a reused
    pid with its real start time) and a file of ours as the socket: `network rm` leaves them."""
    assert rl("network", "create", NET).returncode == 0
    a, b = _sleeper(), _sleeper()
    keep = tmp_path / "home" / "keep.txt"
    keep.write_text("mine\n")
    d = os.path.join(rl.env["XDG_RUNTIME_DIR"], "rootless", "usernet")
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, "holder.json"), "w") as f:
        json.dump({"pid": a.pid, "start_time": trust_start(a.pid), "pending": {},
                   "slirp": {"pid": b.pid, "start_time": trust_start(b.pid), "api_socket": str(keep), "log": ""}}, f)
    try:
        r = rl("network", "rm", NET)
        assert r.returncode == 0, r
        assert _alive(a) and _alive(b), "an unrelated process named in holder.json was signalled"
        assert keep.exists(), "a file named as the API socket in holder.json was deleted"
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_forged_container_record_of_same_user_is_not_signalled(rl):
    """A container record naming one of our own processes (not a container: it lives in our user
    namespace) with its real start time: `rm -f` removes the record but does not kill it."""
    a = _sleeper()
    cid = "cd" * 32
    d = os.path.join(rl.data_root, "containers", cid)
    os.makedirs(d, mode=0o700)
    rec = {"Id": cid, "Name": "/forged", "Created": "2026-01-01T00:00:00Z", "Driver": "vfs",
           "Config": {"Image": "busybox", "Cmd": ["sh"]}, "HostConfig": {},
           "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "Pid": a.pid,
                     "PidStartTime": trust_start(a.pid), "ExitCode": 0}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(rec, f)
    try:
        r = rl("rm", "-f", cid)
        assert _alive(a), "a process of ours named in a container record was killed"
        assert r.returncode == 0, r
    finally:
        a.kill()
        a.wait()


# --- unit tests of rootless.trust ---------------------------------------------------------------------


def test_check_dir(tmp_path):
    d = tmp_path / "d"
    assert trust.check_dir(str(d)) is False
    d.mkdir(mode=0o700)
    assert trust.check_dir(str(d)) is True
    os.chmod(d, 0o777)
    with pytest.raises(RootlessError) as ei:
        trust.check_dir(str(d), "exec-root")
    assert "other users can write to it (mode 0777)" in ei.value.message and ei.value.hint
    os.chmod(d, 0o700)
    with pytest.raises(RootlessError) as ei:
        trust.check_dir(str(d), "exec-root", uid=os.getuid() + 1)
    assert "belongs to uid" in ei.value.message


def test_read_json_refuses_symlink_and_deep_nesting(tmp_path):
    good = tmp_path / "g.json"
    good.write_text('{"a": [1, {"b": 2}]}')
    assert trust.read_json(str(good)) == {"a": [1, {"b": 2}]}
    link = tmp_path / "l.json"
    os.symlink(good, link)
    with pytest.raises(OSError):
        trust.read_json(str(link))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError):
        trust.read_json(str(deep))
    assert trust.loads(b'["[[[[", "\\"{{{{"]') == ["[[[[", '"{{{{']


def test_pid_is_and_inside(tmp_path):
    me = os.getpid()
    st = trust_start(me)
    assert trust.pid_is(me, st)
    assert not trust.pid_is(me, st + 1)
    assert not trust.pid_is(me, None)
    assert not trust.pid_is(str(me), st)
    assert not trust.pid_is(me, st, ("rootless-netns",))
    assert not trust.pid_is(1, trust_start(1))
    assert trust.inside(str(tmp_path / "x"), [str(tmp_path)])
    assert not trust.inside(str(tmp_path / ".." / "x"), [str(tmp_path)])
    assert not trust.inside("/etc/passwd", [str(tmp_path)])
    assert not trust.inside(None, [str(tmp_path)])



def test_record_log_path_outside_the_container_is_not_written(rl, bb, clean_containers):
    """A record whose LogPath names a file of ours elsewhere: starting it logs to its own folder."""
    cid = rl.ok("create", bb, "echo", "logged-line").stdout.strip()
    path = os.path.join(rl.data_root, "containers", cid, "config.json")
    with open(path) as f:
        rec = json.load(f)
    keep = os.path.join(rl.home, "keep.txt")
    with open(keep, "w") as f:
        f.write("mine\n")
    rec["LogPath"] = keep
    with open(path, "w") as f:
        json.dump(rec, f)
    rl.ok("start", cid)
    rl.ok("wait", cid)
    with open(keep) as f:
        assert f.read() == "mine\n", "the container's log went to a path named in its record"
    assert "logged-line" in rl.ok("logs", cid).stdout
