"""wait's three conditions (engine.wait, `rootless wait --condition`), and the per-object loop's
exit status: not-running (today's `rootless wait`), next-exit (docker's run: create, wait, start),
removed.

The first tests drive engine.wait on records written by hand (a thread plays the monitor); the
others run real containers through the CLI.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from rootless import engine, state
from rootless.errors import NotFound, RootlessError, UsageError

NONE = ("--network", "none")
EXITED_AT = "2026-12-01T10:00:00.000000000Z"


class Cfg:
    def __init__(self, data_root: str):
        self.data_root = data_root


def record(cid: str, name: str, **st) -> dict:
    s = state.new_state()
    s.update(st)
    return {"Id": cid, "Name": "/" + name, "Created": "2026-12-01T09:00:00Z", "Image": "sha256:" + "0" * 64,
            "Config": {"Image": "busybox"}, "HostConfig": {}, "State": s}


@pytest.fixture
def fake(tmp_path):
    """(config, store, make(name, **state) -> id): records without processes."""
    cfg = Cfg(str(tmp_path))
    store = state.Store(cfg.data_root)
    import os

    os.makedirs(store.root, exist_ok=True)

    def make(name: str, **st) -> str:
        cid = state.new_id()
        store.create(record(cid, name, **st))
        return cid

    return cfg, store, make


def later(delay: float, fn) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), fn()), daemon=True)
    t.start()
    return t


def exit_with(store, cid: str, code: int, at: str = "2026-12-02T10:00:00.000000000Z"):
    """What the monitor writes at an exit."""
    def write():
        rec = store.load(cid)
        rec["State"].update(Status="exited", Running=False, Pid=0, ExitCode=code, FinishedAt=at)
        store.save(rec)
    return write


@pytest.mark.nosubuid
def test_not_running_returns_at_once_for_a_stopped_container(fake):
    cfg, _, make = fake
    make("done", Status="exited", ExitCode=3, StartedAt=EXITED_AT, FinishedAt=EXITED_AT)
    make("new")  # created, never started
    t0 = time.monotonic()
    assert engine.wait(cfg, "done") == 3
    assert engine.wait(cfg, "done", "not-running") == 3
    assert engine.wait(cfg, "new") == 0
    assert time.monotonic() - t0 < 1


@pytest.mark.nosubuid
def test_next_exit_waits_for_an_exit_after_the_call(fake):
    cfg, store, make = fake
    cid = make("done", Status="exited", ExitCode=3, StartedAt=EXITED_AT, FinishedAt=EXITED_AT)
    # the exit recorded before the call does not count
    with pytest.raises(RootlessError) as e:
        engine.wait(cfg, "done", "next-exit", timeout=0.3)
    assert "next-exit" in e.value.message
    t = later(0.3, exit_with(store, cid, 7))
    t0 = time.monotonic()
    assert engine.wait(cfg, "done", "next-exit", timeout=10) == 7
    assert time.monotonic() - t0 >= 0.25
    t.join()


@pytest.mark.nosubuid
def test_next_exit_of_a_container_not_started_yet(fake):
    """docker's run: create, then wait next-exit, then start: the wait sees the exit of that start."""
    cfg, store, make = fake
    cid = make("fresh")

    def start_then_exit():
        rec = store.load(cid)
        rec["State"].update(Status="running", StartedAt="2026-12-02T10:00:00Z", FinishedAt=state.ZERO_TIME)
        store.save(rec)  # (not Running: no process to check; the start resets FinishedAt)
        time.sleep(0.2)
        exit_with(store, cid, 42)()

    t = later(0.3, start_then_exit)
    assert engine.wait(cfg, cid[:12], "next-exit", timeout=10) == 42
    t.join()


@pytest.mark.nosubuid
def test_removed_returns_once_the_record_is_gone(fake):
    cfg, store, make = fake
    cid = make("doomed", Status="exited", ExitCode=5, StartedAt=EXITED_AT, FinishedAt=EXITED_AT)
    with pytest.raises(RootlessError):
        engine.wait(cfg, "doomed", "removed", timeout=0.3)
    t = later(0.3, lambda: store.remove(cid))
    assert engine.wait(cfg, "doomed", "removed", timeout=10) == 5
    t.join()
    with pytest.raises(NotFound):  # an unknown name is an error, as docker's
        engine.wait(cfg, "doomed", "removed")


@pytest.mark.nosubuid
def test_an_unknown_condition_is_refused(fake):
    cfg, _, make = fake
    make("x")
    with pytest.raises(UsageError) as e:
        engine.wait(cfg, "x", "exited")
    assert "not-running, next-exit or removed" in e.value.hint


# --- through the CLI, real containers ----------------------------------------------------------------


@pytest.mark.nosubuid
@pytest.mark.usefixtures("clean_containers")
def test_cli_wait_conditions(rl, bb):
    rl.ok("create", *NONE, "--name", "w1", bb, "sh", "-c", "sleep 0.3; exit 7")
    # not-running (the default): a created container is not running, at once
    assert rl.ok("wait", "w1").stdout == "0\n"
    # next-exit: blocks until the container, not started yet, has run and exited
    p = subprocess.Popen(rl.argv("wait", "--condition", "next-exit", "w1"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=rl.env)
    try:
        time.sleep(1.0)
        assert p.poll() is None, p.communicate()
        rl.ok("start", "w1")
        out, err = p.communicate(timeout=30)
    finally:
        p.kill() if p.poll() is None else None
    assert (p.returncode, out, err) == (0, b"7\n", b"")
    # removed: blocks until `rm`, then the container's exit code
    p = subprocess.Popen(rl.argv("wait", "--condition", "removed", "w1"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=rl.env)
    try:
        time.sleep(1.0)
        assert p.poll() is None, p.communicate()
        assert rl.ok("rm", "w1").stdout == "w1\n"
        out, err = p.communicate(timeout=30)
    finally:
        p.kill() if p.poll() is None else None
    assert (p.returncode, out, err) == (0, b"7\n", b"")
    r = rl("wait", "--condition", "exited", "w1")
    assert r.returncode != 0 and "exited" in r.stderr and "not-running" in r.stderr


@pytest.mark.nosubuid
@pytest.mark.usefixtures("clean_containers")
def test_loop_goes_on_after_a_failure_and_exits_1(rl, bb):
    """The per-object loop: each success printed, each failure as error:, the rest still done, status 1."""
    rl.ok("run", "-d", *NONE, "--name", "a1", bb, "sh", "-c", "exit 3")
    rl.ok("run", "-d", *NONE, "--name", "b1", bb, "sh", "-c", "exit 4")
    r = rl("wait", "a1", "nosuch", "b1")
    assert (r.returncode, r.stdout) == (1, "3\n4\n")
    assert r.stderr.startswith("error: No such container: nosuch\n"), r.stderr
    rl.ok("create", *NONE, "--name", "c1", bb, "sleep", "30")
    r = rl("stop", "-t", "1", "c1", "nosuch", "a1")
    assert (r.returncode, r.stdout) == (1, "c1\na1\n") and "No such container: nosuch" in r.stderr
    r = rl("rm", "nosuch", "a1", "b1")
    assert (r.returncode, r.stdout) == (1, "a1\nb1\n") and r.stderr.count("error: ") == 1
    r = rl("pause", "c1")  # not running
    assert r.returncode == 1 and r.stdout == "" and "error: pause container `c1`: it is not running" in r.stderr
    assert json.loads(rl.ok("inspect", "c1").stdout)[0]["State"]["Status"] == "created"
