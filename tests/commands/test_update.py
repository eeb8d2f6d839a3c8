"""rootless update on this hybrid cgroup host: limits cannot be enforced here, so every limit update
fails with the reason and the fix (never ignored); the restart policy is saved. The cgroup v2
behaviour (a running container's memory.max changes) is tested in the VM (tests/cgroupvm)."""

from __future__ import annotations

import json
import os

import pytest
from test_stats import start_background, stop_background

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]


def _v2_at_root() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" /sys/fs/cgroup " in ln and " - cgroup2 " in ln for ln in f)


hybrid_only = pytest.mark.skipif(_v2_at_root(), reason="this host has cgroup v2: limits may be enforceable here")




def saved(rl, ref):
    root = os.path.join(rl.data_root, "containers")
    for cid in os.listdir(root):
        if cid.startswith("."):
            continue
        with open(os.path.join(root, cid, "config.json")) as f:
            rec = json.load(f)
        if rec["Name"].lstrip("/") == ref:
            return rec
    raise AssertionError(f"no record for {ref}")


@hybrid_only
def test_update_of_a_running_container_is_a_clear_error_here(rl, bb):
    p, rec = start_background(rl, "--name", "up1", "--network", "none", bb, "sleep", "60")
    try:
        r = rl("update", "--memory", "32m", "up1")
        assert r.returncode == 1, r  # docker: per-container errors exit 1
        assert r.stderr.startswith("error: update container `up1`: apply `--memory`: this host uses cgroup v1"), r
        assert "hint: boot with `systemd.unified_cgroup_hierarchy=1`" in r.stderr and "Traceback" not in r.stderr
        assert r.stdout == ""
        assert saved(rl, "up1")["HostConfig"]["Memory"] == 0  # nothing saved
        assert rl.ok("update", "--restart", "on-failure:2", "up1").stdout == "up1\n"
    finally:
        stop_background(p, rec)
    # its monitor (a foreground run has one) saved the record at the exit, and restarts it as the
    # updated policy says (on-failure: killed, 137), as docker's daemon does: the update is kept
    rl.ok("stop", "up1", timeout=30)
    after = saved(rl, "up1")
    assert after["State"]["Status"] == "exited"
    assert after["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


@hybrid_only
def test_update_of_a_stopped_container(rl, bb):
    rl.ok("create", "--name", "up2", "--network", "none", bb, "true")
    r = rl("update", "--pids-limit", "20", "up2")
    assert r.returncode == 1 and "apply `--pids-limit`: this host uses cgroup v1" in r.stderr, r
    r = rl.ok("update", "--restart", "on-failure:3", "up2")
    assert r.stdout == "up2\n"
    assert saved(rl, "up2")["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_update_usage_errors(rl, bb):
    rl.ok("create", "--name", "up3", "--rm", "--network", "none", bb, "true")
    r = rl("update", "up3")
    assert r.returncode == 125 and "you must provide one or more flags" in r.stderr and "hint:" in r.stderr
    r = rl("update", "--memory", "1k", "up3")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr
    r = rl("update", "--cpus", "0.5", "--cpu-quota", "50000", "up3")
    assert r.returncode == 125 and "Conflicting options" in r.stderr
    r = rl("update", "--restart", "always", "up3")
    assert r.returncode == 1 and "AutoRemove is enabled" in r.stderr
    r = rl("update", "--restart", "sometimes", "up3")
    assert r.returncode == 125 and "invalid restart policy" in r.stderr
    r = rl("update", "--restart", "no", "nosuch", "up3")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr and r.stdout == "up3\n"
    assert "Traceback" not in r.stderr
