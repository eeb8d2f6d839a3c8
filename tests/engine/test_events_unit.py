"""engine/events.py: the journal (shape, concurrency, rotation, damage, privacy), reading and filters;
timefmt's --since/--until parser. In-process and with writer subprocesses; no containers."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time

import pytest

import rootless
from rootless import report, timefmt
from rootless.engine import events
from rootless.errors import RootlessError, UsageError

pytestmark = pytest.mark.nosubuid
CID = "c0ffee" + "0" * 58
ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(rootless.__file__))))


def put(root, type_, action, actor, attrs=None, ns=None):
    """One event with a chosen time (the journal's own writer, a fixed clock)."""
    events._append(str(root), events.encode(events.message(type_, action, actor, attrs, time_ns=ns)))


def journal_lines(root):
    with open(events.journal_path(str(root)), "rb") as f:
        return f.read().splitlines()


def test_message_has_dockers_shape_and_key_order(tmp_path):
    events.emit(str(tmp_path), "container", "start", CID, {"name": "web", "image": "busybox", "com.x": "1"})
    events.emit(str(tmp_path), "image", "pull", "busybox:latest", {"name": "busybox"})
    events.emit(str(tmp_path), "volume", "create", "data", {"driver": "local"})
    c, i, v = (json.loads(x) for x in journal_lines(tmp_path))
    assert list(c) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert (c["status"], c["id"], c["from"], c["Type"], c["Action"]) == ("start", CID, "busybox", "container", "start")
    assert c["Actor"] == {"ID": CID, "Attributes": {"com.x": "1", "image": "busybox", "name": "web"}}
    assert list(c["Actor"]["Attributes"]) == sorted(c["Actor"]["Attributes"])  # as Go marshals a map
    assert c["scope"] == "local" and c["time"] == c["timeNano"] // 10**9
    assert abs(c["timeNano"] - time.time_ns()) < 60 * 10**9
    assert list(i) == ["status", "id", "Type", "Action", "Actor", "scope", "time", "timeNano"]  # no `from`
    assert "status" not in v and v["Actor"] == {"ID": "data", "Attributes": {"driver": "local"}}


def test_container_event_takes_the_records_name_image_and_labels(tmp_path):
    rec = {"Id": CID, "Name": "/web", "Config": {"Image": "bb:1", "Labels": {"app": "x", "name": "spoof"}}}
    events.container(str(tmp_path), rec, "die", exitCode=3)
    msg = json.loads(journal_lines(tmp_path)[0])
    assert msg["Actor"]["Attributes"] == {"app": "x", "exitCode": "3", "image": "bb:1", "name": "web"}
    events.container(str(tmp_path), "f" * 64, "die")  # no such record: nothing, and no error
    assert len(journal_lines(tmp_path)) == 1


def test_a_long_line_is_shortened_to_the_cap(tmp_path):
    labels = {f"label{i}": "v" * 900 for i in range(40)}
    events.container(str(tmp_path), {"Id": CID, "Name": "/big", "Config": {"Image": "bb", "Labels": labels}}, "create")
    (line,) = journal_lines(tmp_path)
    assert len(line) + 1 <= events.MAX_LINE
    attrs = json.loads(line)["Actor"]["Attributes"]
    assert attrs["name"] == "big" and attrs["image"] == "bb"


def test_since_and_until_window_and_history_only_when_asked(tmp_path):
    base = 1_800_000_000 * 10**9
    for k in range(5):
        put(tmp_path, "container", "start", f"id{k}", {"name": f"n{k}"}, ns=base + k * 10**9)
    ids = lambda **kw: [m["Actor"]["ID"] for m in events.read(str(tmp_path), **kw)]  # noqa: E731
    assert ids(since=base + 10**9, until=base + 3 * 10**9) == ["id1", "id2", "id3"]  # both ends included
    assert ids(since=base + 4 * 10**9 + 1) == []
    assert ids(until=base + 10**9) == ["id0", "id1"]
    assert ids() == []  # no since/until: only what comes (as dockerd)


def test_filters_as_docker(tmp_path):
    root = str(tmp_path)
    put(root, "container", "start", CID, {"name": "web", "image": "reg:5000/busybox:latest", "app": "a", "tier": "1"})
    put(root, "container", "die", "abc" + "1" * 61, {"name": "db", "image": "postgres", "app": "b", "exitCode": "0"})
    put(root, "container", "exec_create: sh -c true", CID, {"name": "web", "image": "busybox", "execID": "1"})
    put(root, "image", "tag", "sha256:" + "2" * 64, {"name": "busybox:mine"})
    put(root, "volume", "create", "data", {"driver": "local"})
    put(root, "network", "connect", "n" * 64, {"name": "front", "container": CID, "type": "bridge"})

    def acts(*items):
        f = events.parse_filters(items)
        return [m["Action"] for m in events.read(root, since=0, until=time.time_ns(), filters=f)]

    assert acts("event=start", "event=die") == ["start", "die"]  # one key: OR
    assert acts("event=start", "container=db") == []  # two keys: AND
    assert acts("container=c0ffee") == ["start", "exec_create: sh -c true"]  # id prefix
    assert acts("container=db") == acts("name=db") == ["die"]  # name, and name= as container=
    assert acts("event=exec_create") == ["exec_create: sh -c true"]  # docker matches these by prefix
    assert acts("type=image") == ["tag"] and acts("type=volume", "type=network") == ["create", "connect"]
    assert acts("image=reg:5000/busybox") == ["start"]  # the tag stripped, as docker's stripTag
    assert acts("image=busybox") == ["exec_create: sh -c true", "tag"]
    assert acts("label=app") == ["start", "die"] and acts("label=app=b") == ["die"]
    assert acts("label=app", "label=tier=1") == ["start"]  # several labels: all must match (docker)
    assert acts("volume=data") == ["create"] and acts("network=front") == ["connect"]
    for bad in ("colour=red", "noequals"):
        with pytest.raises(UsageError):
            events.parse_filters([bad])


def test_a_damaged_line_is_skipped(tmp_path):
    root = str(tmp_path)
    put(root, "container", "start", "good1", ns=10**18)
    with open(events.journal_path(root), "ab") as f:
        f.write(b'{"Type":"container","Action":"st\n')  # a torn write
        f.write(b"\x00\xff garbage\n[1,2,3]\n" + b'{"Type": 5}\n' + b"x" * (events.MAX_LINE + 10) + b"\n")
    put(root, "container", "start", "good2", ns=10**18 + 1)
    assert [m["Actor"]["ID"] for m in events.read(root, since=0)] == ["good1", "good2"]


WRITER = """
import sys
from rootless.engine import events
events.ROTATE_BYTES = int(sys.argv[3])
root, n = sys.argv[1], int(sys.argv[2])
pad = "x" * 3000  # lines of about 3.3 KB: one write spans page boundaries
for i in range(n):
    events.emit(root, "container", "start", "%s-%d" % (sys.argv[4], i), {"name": "w", "pad": pad})
"""


def _writers(root, count, each, rotate):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, root, str(each), str(rotate), f"w{k}"], env=ENV)
             for k in range(count)]
    for p in procs:
        assert p.wait(timeout=120) == 0


def test_twenty_concurrent_writers_never_break_a_line(tmp_path):
    root = str(tmp_path)
    _writers(root, 20, 100, 1 << 40)
    lines = journal_lines(tmp_path)
    assert len(lines) == 2000
    seen = set()
    for line in lines:
        msg = json.loads(line)  # every line whole
        assert msg["Actor"]["Attributes"]["pad"] == "x" * 3000
        seen.add(msg["Actor"]["ID"])
    assert len(seen) == 2000


def test_concurrent_writers_rotating_keep_whole_lines_in_both_files(tmp_path):
    root = str(tmp_path)
    _writers(root, 10, 100, 64 << 10)
    path = events.journal_path(root)
    kept = 0
    for p in (path, path + ".1"):
        with open(p, "rb") as f:
            for line in f.read().splitlines():
                json.loads(line)
                kept += 1
    assert 0 < kept <= 1000 and os.path.getsize(path + ".1") >= 64 << 10
    assert len(list(events.read(root, since=0))) == kept


def test_rotation_keeps_a_follower_and_history_whole(tmp_path, monkeypatch):
    root = str(tmp_path)
    monkeypatch.setattr(events, "ROTATE_BYTES", 2000)  # about 8 events a file
    t0 = time.time_ns()
    it = events.read(root, since=t0, follow=True, poll=0.01)
    got = []
    for i in range(60):  # one at a time: a rotation between two reads
        events.emit(root, "container", "start", f"one{i}", {"name": "r"})
        got.append(next(it)["Actor"]["ID"])
    for batch in range(4):  # 12 at a time: rotated once or twice while the reader looked away
        for i in range(12):
            events.emit(root, "container", "start", f"b{batch}-{i}", {"name": "r"})
        got.extend(next(it)["Actor"]["ID"] for _ in range(12))
    it.close()
    assert got == [f"one{i}" for i in range(60)] + [f"b{b}-{i}" for b in range(4) for i in range(12)]
    past = [m["Actor"]["ID"] for m in events.read(root, since=t0)]  # the last two files, in order
    assert 8 <= len(past) <= 20 and past == got[-len(past):]


def test_a_follower_sees_an_event_of_another_process(tmp_path):
    root = str(tmp_path)
    q: queue.Queue = queue.Queue()
    stop = threading.Event()

    def follow():
        for msg in events.read(root, until=time.time_ns() + 30 * 10**9, follow=True, poll=0.02):
            q.put(msg)
            if stop.is_set():
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.3)  # the reader is at the end of a journal that does not exist yet
    subprocess.run([sys.executable, "-c", "import sys; from rootless.engine import events; "
                    "events.emit(sys.argv[1], 'container', 'die', 'other', {'exitCode': '7'})", root], check=True, env=ENV)
    msg = q.get(timeout=10)
    stop.set()
    assert (msg["Action"], msg["Actor"]["ID"], msg["Actor"]["Attributes"]) == ("die", "other", {"exitCode": "7"})


def test_the_journal_is_private_and_a_planted_one_is_refused(tmp_path):
    root = str(tmp_path / "data")
    events.emit(root, "volume", "create", "v", {"driver": "local"})
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(events.journal_dir(root)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(events.journal_path(root)).st_mode) == 0o600
    os.chmod(events.journal_path(root), 0o666)  # as if someone else could have written to it
    with pytest.raises(RootlessError, match="only you can write"):
        list(events.read(root, since=0))


def test_emit_never_fails_the_action(tmp_path):
    root = str(tmp_path)
    os.makedirs(events.journal_dir(root))
    os.mkdir(events.journal_path(root))  # the journal is a directory: unwritable
    warnings = report.Collector()
    events.emit(root, "container", "start", CID, {"name": "x"}, reporter=warnings)
    events.emit(root, "container", "start", CID, {"name": "x"})  # no reporter: silent
    assert len(warnings.warnings) == 1 and "record event `container start`" in warnings.warnings[0][0]


def test_emit_is_cheap(tmp_path):
    root = str(tmp_path)
    events.emit(root, "container", "start", CID, {"name": "x"})
    t = time.perf_counter()
    for _ in range(500):
        events.emit(root, "container", "start", CID, {"name": "x", "image": "busybox"})
    per = (time.perf_counter() - t) / 500
    print(f"emit: {per * 1e6:.0f} us")
    assert per < 0.002  # about 35 us on an idle machine; no fsync


def test_since_until_forms():
    now = 1_800_000_000 * 10**9
    p = timefmt.parse_timestamp_ns
    assert p("1700000000") == 1_700_000_000 * 10**9
    assert p("1700000000.5") == 1_700_000_000_500_000_000
    assert p("10m", now) == now - 600 * 10**9 and p("1h30m", now) == now - 5400 * 10**9
    assert p("1.5s", now) == now - 1_500_000_000 and p("0s", now) == now
    assert p("2023-11-14T22:13:20Z") == 1_700_000_000 * 10**9 == p("2023-11-14T23:13:20+01:00")
    assert p("2023-11-14") == p("2023-11-14T00:00:00Z")
    for bad in ("yesterday", "1hx", "", "2023-13-01", "10 m"):
        with pytest.raises(ValueError):
            p(bad)
