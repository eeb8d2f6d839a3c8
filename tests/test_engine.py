"""engine: docker's rules for command/entrypoint, the generated /etc files, runtime choice, rm."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from enginehelp import leftovers, remove_data_root, setup_busybox
from rootless import engine
from rootless.config import Config
from rootless.errors import RootlessError
from rootless.oci.spec import RunOptions

pytestmark = pytest.mark.nosubuid


@pytest.fixture(autouse=True)
def _clean_data_root(rl):
    yield
    remove_data_root(rl.data_root)


def test_effective_command():
    cfg = {"Entrypoint": ["/ep"], "Cmd": ["a"]}
    assert engine.effective_command(cfg, RunOptions()) == (["/ep"], ["a"])
    assert engine.effective_command(cfg, RunOptions(cmd=("b",))) == (["/ep"], ["b"])
    assert engine.effective_command(cfg, RunOptions(entrypoint=("/x",))) == (["/x"], [])
    assert engine.effective_command(cfg, RunOptions(entrypoint=())) == ([], ["a"])
    with pytest.raises(RootlessError, match="no command specified") as e:
        engine.effective_command({}, RunOptions())
    assert e.value.hint


def test_choose_runtime():
    assert engine.choose_runtime(Config()).ours
    c = engine.choose_runtime(Config(), "crun")
    assert c.name == "crun" and c.path.endswith("/crun") and not c.ours
    cfg = Config(runtimes={"mine": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}}, default_runtime="mine")
    c = engine.choose_runtime(cfg)
    assert (c.name, c.path, c.args) == ("mine", "/usr/bin/crun", ("--debug",))
    with pytest.raises(RootlessError, match="unknown runtime") as e:
        engine.choose_runtime(Config(), "nosuch-runtime")
    assert e.value.hint


def test_rm_of_a_running_container_needs_force(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image)
    p = subprocess.Popen(rl.argv("run", "--name", "busy", bb, "sh", "-c", "echo ready; sleep 60"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        assert p.stdout.readline() == b"ready\n"
        r = rl("rm", "busy")
        assert r.returncode == 1 and "is running" in r.stderr and "rm -f" in r.stderr
        assert rl.ok("rm", "-f", "busy").stdout == "busy\n"
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
    assert p.returncode == 137
    assert leftovers(rl.data_root) == []


def test_a_kept_container_records_its_exit(rl, busybox_image):
    bb = setup_busybox(rl, busybox_image)
    r = rl("run", "--name", "kept", bb, "sh", "-c", "echo x > /f; exit 6")
    assert r.returncode == 6
    (cid,) = (c for c in os.listdir(os.path.join(rl.data_root, "containers")) if len(c) == 64)
    with open(os.path.join(rl.data_root, "containers", cid, "config.json")) as f:
        rec = json.load(f)
    assert rec["State"]["Status"] == "exited" and rec["State"]["ExitCode"] == 6
    assert rec["State"]["FinishedAt"] > rec["State"]["StartedAt"] > "2000"
    assert rec["Config"]["Cmd"] == ["sh", "-c", "echo x > /f; exit 6"] and rec["HostConfig"]["AutoRemove"] is False
    upper = rec["GraphDriver"]["Data"]["UpperDir"]
    assert open(os.path.join(upper, "f")).read() == "x\n"  # the container's own layer
    bundle = os.path.join(rl.data_root, "containers", cid, "bundle", "config.json")
    assert json.load(open(bundle))["process"]["args"] == ["sh", "-c", "echo x > /f; exit 6"]
    rl.ok("rm", "kept")
    assert leftovers(rl.data_root) == []
