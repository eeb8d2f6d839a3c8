"""rootless stats: docker's fields from a cgroup tree (unit, kernel paths as parameters) and, on this
hybrid host, of a real running container that has no cgroup (`--` where a cgroup is needed).
The real cgroup v2 figures are tested in the VM (tests/cgroupvm/test_cli_vm.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from enginehelp import ForeignProcess
from rootless import state
from rootless.commands.stats import CLEAR
from rootless.engine import stats as containerstats

_PID = 0

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_data_root")]


# --- units ---------------------------------------------------------------------------------------------


def test_docker_units():
    assert containerstats.bytes_size(0) == "0B"
    assert containerstats.bytes_size(32 << 20) == "32MiB"
    assert containerstats.bytes_size(1536 * 1024) == "1.5MiB"
    assert containerstats.bytes_size(33560322048) == "31.26GiB"
    assert containerstats.human_size(0) == "0B"
    assert containerstats.human_size(1234) == "1.23kB"
    assert containerstats.human_size(45_600_000) == "45.6MB"


def fake_cgroup(root, usage_usec, memory_max="33554432", pids_max="20", cpu_max="20000 100000"):
    cg = root / "user.slice" / "c1"
    cg.mkdir(parents=True, exist_ok=True)
    files = {
        "memory.current": "10485760\n", "memory.stat": "anon 8388608\ninactive_file 2097152\n",
        "memory.max": memory_max + "\n", "memory.events": "oom 0\noom_kill 0\n",
        "cpu.stat": f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 1\nnr_periods 5\nnr_throttled 3\n",
        "cpu.max": cpu_max + "\n", "cpu.weight": "100\n", "pids.current": "3\n", "pids.max": pids_max + "\n",
        "io.stat": "8:0 rbytes=1000 wbytes=2500000 rios=1 wios=2\n", "cgroup.events": "populated 1\nfrozen 0\n",
    }
    for k, v in files.items():
        (cg / k).write_text(v)
    return cg


@pytest.fixture(autouse=True)
def container_pid():
    """The records below name a process that looks like a container's init (its own user namespace)."""
    global _PID
    with ForeignProcess() as p:
        _PID = p.pid
        yield p.pid


def record(cgroup_path=None, mode="none"):
    pid = _PID
    return {"Id": "ab" * 32, "Name": "/web",
            "State": {"Running": True, "Pid": pid, "PidStartTime": state.proc_start_time(pid)},
            "HostConfig": {"NetworkMode": mode},
            "Rootless": {"Cgroup": {"driver": "cgroupfs", "path": str(cgroup_path), "limits": {}} if cgroup_path else None}}


def test_row_from_a_cgroup(tmp_path):
    cg = fake_cgroup(tmp_path, 1_000_000)
    rec = record(cg)
    a = containerstats.sample(rec, cgroup_root=str(tmp_path))
    fake_cgroup(tmp_path, 1_000_000 + 100_000)  # 0.1 s of CPU ...
    b = containerstats.sample(rec, cgroup_root=str(tmp_path))
    b = containerstats.Sample(b.cid, b.name, True, a.at + 0.5, b.cgroup, b.pids, b.net, b.host_memory)  # ... in 0.5 s
    r = containerstats.row(a, b)
    assert r["ID"] == "ab" * 6 and r["Name"] == "web" and r["Container"] == "ab" * 6
    assert r["CPUPerc"] == "20.00%"
    assert r["MemUsage"] == "8MiB / 32MiB" and r["MemPerc"] == "25.00%"  # current - inactive_file
    assert r["BlockIO"] == "1kB / 2.5MB" and r["PIDs"] == "3"
    assert r["MemLimit"] == "32MiB" and r["CPULimit"] == "0.2" and r["PIDsLimit"] == "20"
    assert containerstats.row(None, b, no_trunc=True, ref="web")["Container"] == "web"
    assert containerstats.row(None, b)["CPUPerc"] == "0.00%"  # one sample: no rate yet


def test_unlimited_memory_shows_the_host_memory(tmp_path):
    cg = fake_cgroup(tmp_path, 5, memory_max="max", pids_max="max", cpu_max="max 100000")
    s = containerstats.sample(record(cg), cgroup_root=str(tmp_path))
    r = containerstats.row(None, s)
    total = containerstats.host_memory()
    assert r["MemUsage"] == f"8MiB / {containerstats.bytes_size(total)}"
    assert r["MemLimit"] == r["CPULimit"] == r["PIDsLimit"] == "max"


def test_no_cgroup_and_stopped(tmp_path):
    s = containerstats.sample(record(None, mode="host"))
    r = containerstats.row(None, s)
    assert r["CPUPerc"] == r["MemPerc"] == r["BlockIO"] == r["NetIO"] == "--" and r["MemUsage"] == "-- / --"
    assert int(r["PIDs"]) >= 1  # this test process, counted from /proc
    rec = record(None)
    rec["State"]["Running"] = False
    r = containerstats.row(None, containerstats.sample(rec))
    assert (r["CPUPerc"], r["MemUsage"], r["NetIO"], r["PIDs"]) == ("0.00%", "0B / 0B", "0B / 0B", "0")


def test_net_dev_leaves_out_lo(tmp_path):
    d = tmp_path / "7" / "net"
    d.mkdir(parents=True)
    (d / "dev").write_text(
        "Inter-|   Receive                            |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n"
        "    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0\n"
        "  tap0:    1500      10    0    0    0     0          0         0      648       8    0    0    0     0       0          0\n")
    assert containerstats.net_dev(7, str(tmp_path)) == (1500, 648)
    assert containerstats.net_dev(8, str(tmp_path)) is None


# --- the CLI on this host ----------------------------------------------------------------------------




def start_background(rl, *args, timeout=30.0):
    """`rootless run` of a long-running container, in the background; returns (Popen, record)."""
    p = subprocess.Popen(rl.argv("run", *args), env=rl.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = os.path.join(rl.data_root, "containers")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.poll() is None, p.stderr.read().decode()
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            try:
                with open(os.path.join(root, cid, "config.json")) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                continue
            if rec["State"].get("Running") and rec["State"].get("Pid"):
                return p, rec
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the container did not start")


def stop_background(p, rec):
    """Kill the container's init (a `sleep` as pid 1 ignores SIGTERM); `run` then records the exit."""
    try:
        os.kill(rec["State"]["Pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def test_stats_of_a_container_without_cgroup(rl, bb):
    p, rec = start_background(rl, "--name", "st1", "--network", "none", bb, "sleep", "60")
    try:
        r = rl.ok("stats", "--no-stream")
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                    "NET", "I/O", "BLOCK", "I/O", "PIDS"], r.stdout
        assert len(lines) == 2 and lines[1].split()[:2] == [rec["Id"][:12], "st1"]
        j = json.loads(rl.ok("stats", "--no-stream", "--format", "json", "st1").stdout)
        assert j["Container"] == "st1" and j["ID"] == rec["Id"][:12] and j["Name"] == "st1"
        if rec["Rootless"].get("Cgroup") is None:  # this hybrid host: no cgroup, no error
            assert (j["CPUPerc"], j["MemUsage"], j["MemPerc"], j["BlockIO"]) == ("--", "-- / --", "--", "--")
        assert j["PIDs"] == "1" and j["NetIO"] == "0B / 0B"  # --network none: only lo, left out
        r = rl.ok("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.PIDs}}", rec["Id"][:8])
        assert r.stdout == f"{rec['Id']} st1 1\n"
    finally:
        stop_background(p, rec)
    # stopped: not listed without -a; zeros with it or by name
    assert rl.ok("stats", "--no-stream", "--format", "{{.Name}}").stdout == ""
    r = rl.ok("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}")
    assert r.stdout == "st1 0.00% 0B / 0B 0\n"


def test_stats_streams_until_interrupted(rl, bb):
    p, rec = start_background(rl, "--name", "st2", "--network", "none", bb, "sleep", "60")
    try:
        s = subprocess.Popen(rl.argv("stats", "--format", "{{.Name}} {{.PIDs}}", "st2"), env=rl.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.5)
        s.send_signal(signal.SIGINT)
        out, err = s.communicate(timeout=10)
        assert s.returncode == 0, err
        frames = out.decode().split(CLEAR)
        assert frames[0] == "" and len(frames) >= 2, out
        assert all(f == "st2 1\n" for f in frames[1:]), out
    finally:
        stop_background(p, rec)


def test_stats_errors(rl, bb):
    r = rl("stats", "--no-stream", "nosuch")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr and "Traceback" not in r.stderr
    r = rl("stats", "--no-stream", "--format", "{{.Nope")
    assert r.returncode == 125 and r.stderr.startswith("error: parse --format") and "hint:" in r.stderr
