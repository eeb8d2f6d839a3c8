"""A foreground `run` is create + attach + start + wait: the container has a monitor, as with -d.

So a `run` client that is killed (SIGKILL: a CI job's timeout) leaves the container under its
monitor: it runs to its end, its real exit code is recorded, --rm still removes it, and `logs`
shows its output (the monitor writes the json-file log of a foreground container too).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from enginehelp import leftovers, wait_for

pytestmark = pytest.mark.usefixtures("clean_containers")
NONE = ("--network", "none")
# sleeps 2 s after saying so, then exits 3
SCRIPT = "echo started; sleep 2; echo finished; echo err-line >&2; exit 3"


def state(rl, ref):
    return json.loads(rl.ok("inspect", "--type", "container", ref).stdout)[0]["State"]


def _start_and_kill(rl, *args) -> subprocess.Popen:
    """`rootless run ARGS`, SIGKILLed once the container said `started` (its sleep has begun)."""
    p = subprocess.Popen(rl.argv("run", *NONE, *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"started\n"
        p.kill()
        p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    p.stdout.close()
    p.stderr.close()
    assert p.returncode == -signal.SIGKILL
    return p


@pytest.mark.nosubuid
def test_killed_run_client_leaves_the_container_to_its_monitor(rl, bb):
    t0 = time.monotonic()
    _start_and_kill(rl, "--name", "kept", bb, "sh", "-c", SCRIPT)
    s = state(rl, "kept")
    assert s["Running"] and s["Status"] == "running", s  # it goes on without its client
    wait_for(lambda: state(rl, "kept")["Status"] == "exited", what="the container's own exit")
    assert time.monotonic() - t0 > 1.5  # it ran its 2 s: not killed with the client
    s = state(rl, "kept")
    assert s["ExitCode"] == 3 and not s["Error"], s  # its real exit code, not 137
    r = rl.ok("logs", "kept")
    assert r.stdout == "started\nfinished\n" and r.stderr == "err-line\n", r
    assert rl.ok("wait", "kept").stdout == "3\n"


@pytest.mark.nosubuid
def test_killed_run_rm_client_still_removes_the_container(rl, bb):
    _start_and_kill(rl, "--rm", "--name", "gone", bb, "sh", "-c", SCRIPT)
    assert rl.ok("ps", "-aq", "--filter", "name=gone").stdout.strip(), "removed before it exited"
    wait_for(lambda: leftovers(rl.data_root) == [], what="--rm removal after the container's exit")
    assert rl.ok("ps", "-aq").stdout == ""


@pytest.mark.nosubuid
def test_foreground_run_writes_its_log(rl, bb):
    r = rl("run", *NONE, "--name", "fg", bb, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n"), r
    logs = rl.ok("logs", "fg")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    s = state(rl, "fg")
    assert s["Status"] == "exited" and s["ExitCode"] == 4


@pytest.mark.nosubuid
def test_foreground_run_stdio_is_never_the_callers_files(rl, bb, tmp_path):
    """The container's stdout is a pipe of its monitor, not the file the caller redirected to."""
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        p = subprocess.run(rl.argv("run", "--rm", *NONE, "-i", bb, "sh", "-c",
                                   "for n in 0 1 2; do readlink /proc/self/fd/$n; done; cat"),
                           stdout=f, stderr=subprocess.PIPE, env=rl.env,
                           input=b"typed\n", timeout=60)
    assert p.returncode == 0, p
    lines = out.read_bytes().decode().splitlines()
    assert [x.startswith("pipe:") for x in lines[:3]] == [True, True, True], lines
    assert lines[3:] == ["typed"]
