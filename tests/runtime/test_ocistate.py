"""runtime/ocistate.py: the OCI runtime's state store and its checks, without spawning (a live pid
is this test's own process; test_runtime_cli.py drives the real containers through the CLI)."""

from __future__ import annotations

import json
import os
import signal

import pytest

from rootless.errors import NotFound, RootlessError, UsageError
from rootless.runtime import ocistate

pytestmark = pytest.mark.nosubuid


def test_validate_id():
    assert ocistate.validate_id("a.b+c_d-1") == "a.b+c_d-1"
    for bad in ("", "-x", "../x", "a/b", "x" * 129):
        with pytest.raises(UsageError):
            ocistate.validate_id(bad)


def test_load_bundle(tmp_path):
    with pytest.raises(RootlessError, match="no such file"):
        ocistate.load_bundle(str(tmp_path))
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(RootlessError, match="must be a JSON object"):
        ocistate.load_bundle(str(tmp_path))
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2", "root": {"path": "rfs"}}')
    assert ocistate.load_bundle(str(tmp_path))["root"] == {"path": "rfs"}


def test_store_record_status_and_delete(tmp_path):
    store = ocistate.Store(str(tmp_path / "root"))
    assert store.ids() == [] and ocistate.containers(store) == []
    with pytest.raises(NotFound):
        store.load("c1")
    store.reserve("c1")
    with pytest.raises(RootlessError, match="already in use"):
        store.reserve("c1")
    spec = {"ociVersion": "1.0.2", "annotations": {"a": "b"}}
    ocistate.record(store, "c1", spec, str(tmp_path / "bundle"), os.getpid(), str(tmp_path / "pid"))
    assert (tmp_path / "pid").read_text() == str(os.getpid())
    c = store.load("c1")
    st = c.state_json()
    assert st["status"] == "running" and st["pid"] == os.getpid() and st["annotations"] == {"a": "b"}
    assert st["bundle"] == str(tmp_path / "bundle") and st["rootfs"] == str(tmp_path / "bundle" / "rootfs")
    assert [x.id for x in ocistate.containers(store)] == ["c1"]
    with pytest.raises(RootlessError, match="it is running"):
        ocistate.delete(store, "c1")
    with pytest.raises(RootlessError, match="is running, not created"):
        ocistate.start(store, "c1")
    ocistate.kill(store, "c1", 0)  # signal 0: the process is there

    # a reused pid (another start time) is a stopped container: not signalled, deleted without --force
    data = json.loads((tmp_path / "root" / "c1" / "state.json").read_text())
    data["start_time"] = (data["start_time"] or 0) + 1
    store.save("c1", data)
    assert store.load("c1").status() == "stopped"
    with pytest.raises(RootlessError, match="not running"):
        ocistate.kill(store, "c1", signal.SIGKILL)
    ocistate.delete(store, "c1")
    assert store.ids() == []

    # a damaged state file is an error that names it; the list skips it
    store.reserve("c2")
    (tmp_path / "root" / "c2" / "state.json").write_text("{")
    with pytest.raises(RootlessError, match="read state of container `c2`") as e:
        store.load("c2")
    assert "the state is damaged" in e.value.hint
    assert ocistate.containers(store) == []
