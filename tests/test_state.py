"""state: container records, names, prefixes, liveness by pid + start time."""

import os

import pytest

from enginehelp import ForeignProcess
from rootless import state
from rootless.errors import NotFound, RootlessError

pytestmark = pytest.mark.nosubuid


def rec(cid, name):
    return {"Id": cid, "Name": "/" + name, "State": state.new_state(), "Config": {}, "HostConfig": {}}


def test_create_resolve_remove(tmp_path):
    s = state.Store(str(tmp_path))
    a, b = "ab" + "0" * 62, "ac" + "1" * 62
    s.create(rec(a, "one"))
    s.create(rec(b, "two"))
    assert oct(os.stat(s.dir(a)).st_mode & 0o777) == "0o700"
    assert s.resolve("one")["Id"] == a
    assert s.resolve(a)["Id"] == a
    assert s.resolve("ac")["Id"] == b
    with pytest.raises(RootlessError, match="matches 2"):
        s.resolve("a")
    with pytest.raises(NotFound):
        s.resolve("nosuch")
    with pytest.raises(RootlessError, match="already in use"):
        s.create(rec("f" * 64, "one"))
    assert [r["Id"] for r in s.list()] == [a, b]
    s.remove(a)
    assert s.ids() == [b]


def test_ids_are_checked_before_paths(tmp_path):
    s = state.Store(str(tmp_path))
    for bad in ("../x", "ABC", "a" * 63, "a" * 64 + "/"):
        with pytest.raises(RootlessError):
            s.dir(bad)
    with pytest.raises(RootlessError):
        state.check_name("a/b")
    assert state.check_name("/web-1") == "web-1"


def test_dead_or_reused_pid_is_not_running(tmp_path):
    s = state.Store(str(tmp_path))
    cid = "e" * 64
    r = rec(cid, "x")
    s.create(r)
    # a container's init lives in a user namespace of its own (a process in ours is not believed)
    with ForeignProcess() as p:
        r["State"].update(Status="running", Running=True, Pid=p.pid, PidStartTime=state.proc_start_time(p.pid))
        s.save(r)
        assert s.load(cid)["State"]["Running"] is True
        r["State"]["PidStartTime"] += 1  # the same pid, another process
        s.save(r, durable=False)
        got = s.load(cid)["State"]
        assert got["Running"] is False and got["Status"] == "exited"
