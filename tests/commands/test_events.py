"""`rootless events` end to end: what a run, a detached container, images and volumes report, in
order, with docker's attributes; --since/--until windows, filters, --format; a follower."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from enginehelp import wait_for

pytestmark = [pytest.mark.nosubuid, pytest.mark.usefixtures("clean_containers")]
NONE = ("--network", "none")


def since_now() -> str:
    ns = time.time_ns()
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def past(rl, since: str, *args: str):
    """Events from ``since`` until now, as JSON messages."""
    r = rl.ok("events", "--since", since, "--until", since_now(), "--format", "{{json .}}", *args)
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_run_reports_create_attach_start_die_destroy_in_order(rl, bb):
    t0 = since_now()
    r = rl("run", "--rm", *NONE, "--name", "ev1", "--label", "tier=web", bb, "sh", "-c", "exit 3")
    assert r.returncode == 3, r
    msgs = past(rl, t0, "--filter", "type=container")
    assert [m["Action"] for m in msgs] == ["create", "attach", "start", "die", "destroy"], msgs
    cid = msgs[0]["Actor"]["ID"]
    assert len(cid) == 64 and all(m["Actor"]["ID"] == cid and m["id"] == cid for m in msgs)
    for m in msgs:
        a = m["Actor"]["Attributes"]
        assert (a["name"], a["image"], a["tier"], m["from"], m["status"]) == ("ev1", bb, "web", bb, m["Action"])
    die = msgs[3]["Actor"]["Attributes"]
    assert die["exitCode"] == "3" and die["execDuration"].isdigit()
    times = [m["timeNano"] for m in msgs]
    assert times == sorted(times)


def test_a_detached_container_reports_exec_rename_kill_and_its_exit(rl, bb):
    t0 = since_now()
    cid = rl.ok("run", "-d", *NONE, "--name", "ev2", bb, "sleep", "60").stdout.strip()
    assert rl("exec", "ev2", "sh", "-c", "exit 4").returncode == 4
    rl.ok("rename", "ev2", "ev2b")
    rl.ok("kill", "ev2b")
    wait_for(lambda: "die" in [m["Action"] for m in past(rl, t0)], what="the die event")
    rl.ok("rm", "ev2b")
    msgs = [m for m in past(rl, t0, "--filter", f"container={cid[:12]}")]
    acts = [m["Action"] for m in msgs]
    assert acts == ["create", "start", "exec_create: sh -c exit 4", "exec_start: sh -c exit 4", "exec_die",
                    "rename", "kill", "die", "destroy"], acts
    by = {m["Action"]: m["Actor"]["Attributes"] for m in msgs}
    xid = by["exec_die"]["execID"]
    assert len(xid) == 64 and by["exec_create: sh -c exit 4"]["execID"] == xid and by["exec_die"]["exitCode"] == "4"
    assert by["rename"]["oldName"] == "/ev2" and by["rename"]["name"] == "ev2b"
    assert by["kill"]["signal"] == "9" and by["die"]["exitCode"] == "137" and by["destroy"]["name"] == "ev2b"


def test_a_failed_start_reports_its_die(rl, bb):
    t0 = since_now()
    r = rl("run", "--rm", *NONE, "--name", "ev4", bb, "/no/such/program")
    assert r.returncode == 127, r
    got = [(m["Action"], m["Actor"]["Attributes"].get("exitCode")) for m in past(rl, t0, "--filter", "container=ev4")]
    assert got == [("create", None), ("attach", None), ("die", "127"), ("destroy", None)], got


def test_stop_and_restart_report_dockers_sequence(rl, bb):
    t0 = since_now()
    rl.ok("run", "-d", *NONE, "--name", "ev3", bb, "sleep", "60")  # pid 1 ignores SIGTERM: -t 0 kills
    rl.ok("restart", "-t", "0", "ev3")
    rl.ok("stop", "-t", "0", "ev3")
    got = []
    for m in past(rl, t0, "--filter", "container=ev3"):
        a = m["Actor"]["Attributes"]
        got.append(" ".join([m["Action"]] + [a[k] for k in ("signal", "exitCode") if k in a]))
    stop = ["kill 15", "kill 9", "die 137", "stop"]
    assert got == ["create", "start"] + stop + ["start", "restart"] + stop, got


def test_since_until_windows(rl, bb):
    t0 = since_now()
    rl.ok("run", "--rm", *NONE, "--name", "first", bb, "true")
    t1 = since_now()
    rl.ok("run", "--rm", *NONE, "--name", "second", bb, "true")
    t2 = since_now()
    names = lambda s, u: {m["Actor"]["Attributes"]["name"] for m in json_lines(  # noqa: E731
        rl.ok("events", "--since", s, "--until", u, "--format", "json", "--filter", "type=container").stdout)}
    assert names(t0, t1) == {"first"} and names(t1, t2) == {"second"} and names(t0, t2) == {"first", "second"}
    assert names(t2, since_now()) == set()
    # a duration and an RFC 3339 time, as docker's --since takes them
    assert names("1h", "0s") >= {"first", "second"}
    rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t1.split(".")[0]) + 1))
    assert "first" not in names(rfc, "0s")


def json_lines(text: str):
    return [json.loads(line) for line in text.splitlines()]


def test_filters_and_formats(rl, bb):
    t0 = since_now()
    rl.ok("run", "--rm", *NONE, "--name", "fa", "--label", "app=a", bb, "true")
    assert rl("run", "--rm", *NONE, "--name", "fb", "--label", "app=b", bb, "sh", "-c", "exit 1").returncode == 1
    rl.ok("tag", bb, "mine:1")
    rl.ok("rmi", "mine:1")
    rl.ok("volume", "create", "evvol")
    rl.ok("volume", "rm", "evvol")
    until = since_now()

    def out(*args):
        return rl.ok("events", "--since", t0, "--until", until, *args).stdout

    fmt = ("--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert out(*fmt, "--filter", "event=die") == "container die fa\ncontainer die fb\n"
    assert out(*fmt, "--filter", "event=die", "--filter", "label=app=b") == "container die fb\n"
    assert out(*fmt, "--filter", "event=start", "--filter", "event=destroy", "--filter", "name=fa") == \
        "container start fa\ncontainer destroy fa\n"
    img = out("--format", "{{.Status}} {{.Action}} {{.Actor.Attributes.name}}", "--filter", "type=image")
    lines = img.splitlines()
    assert lines[0] == "tag tag mine:1" and lines[1].startswith("untag untag sha256:"), img
    assert out("--format", "{{.Type}} {{.Action}} {{.Actor.ID}}", "--filter", "type=volume") == \
        "volume create evvol\nvolume destroy evvol\n"
    assert out("--format", "{{.Actor.ID}} {{.Actor.Attributes.driver}}", "--filter", "volume=evvol") == \
        "evvol local\nevvol local\n"
    # docker's plain line: nine-digit time, type, action, id, sorted attributes
    plain = out("--filter", "event=die", "--filter", "container=fb").splitlines()
    assert len(plain) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z container die [0-9a-f]{64} "
                        rf"\(app=b, execDuration=\d+, exitCode=1, image={re.escape(bb)}, name=fb\)", plain[0]), plain
    # {{json .}}: the message as the Engine API sends it (the JSON names, not the Go ones)
    (m,) = json_lines(out("--format", "{{json .}}", "--filter", "event=create", "--filter", "name=fb"))
    assert list(m) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert rl.ok("system", "events", "--since", t0, "--until", until, "--filter", "event=die").stdout == \
        out("--filter", "event=die") != ""
    for bad in (("--filter", "colour=red"), ("--since", "yesterday"), ("--format", "{{.Nope")):
        r = rl("events", "--until", "0s", *bad)
        assert r.returncode == 125 and r.stderr.startswith("error: "), r


def test_a_follower_sees_other_processes_and_ctrl_c_ends_it_quietly(rl, bb):
    p = subprocess.Popen(rl.argv("events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=rl.env)
    try:
        time.sleep(1.5)  # following from now: what happened before it started is not shown
        rl.ok("run", "--rm", *NONE, "--name", "followed", bb, "true")
        seen = []
        while "destroy followed" not in seen:
            line = p.stdout.readline().decode()
            assert line, f"the stream ended: {seen}"
            seen.append(line.strip())
        assert seen == ["create followed", "attach followed", "start followed", "die followed", "destroy followed"]
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0
        assert p.stderr.read() == b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_until_in_the_future_stops_the_stream(rl):
    t = time.monotonic()
    r = rl.ok("events", "--until", str(int(time.time()) + 2))
    assert 0.5 < time.monotonic() - t < 15 and r.stdout == ""


def test_the_journal_is_private(rl, bb):
    rl.ok("run", "--rm", *NONE, bb, "true")
    path = os.path.join(rl.data_root, "events", "events.jsonl")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    assert os.stat(rl.data_root).st_mode & 0o077 == 0
