"""The copy helper's answer is data parsed against a schema, never unpickled (issue 11, item 1)."""

from __future__ import annotations

import json
import pickle

import pytest

from rootless import copyhelper
from rootless.errors import RootlessError


def test_the_answer_is_parsed_never_unpickled(tmp_path):
    marker = tmp_path / "ran"
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # what a hostile NSS module wrote to the old pipe
    bad = [
        evil,
        pickle.dumps(("ok", {"dir": True, "name": "x", "contents": False})),
        b"[" * 200000,  # deeper than json can parse
        json.dumps({"ok": True, "value": {"dir": True, "name": "../x", "contents": False}}).encode(),
        json.dumps({"ok": True, "value": {"dir": True, "name": "a/b", "contents": False}}).encode(),
        json.dumps({"ok": True, "value": {"dir": 1, "name": "a", "contents": False}}).encode(),
        json.dumps({"ok": True, "value": {"dir": True, "name": "a", "contents": False, "x": 1}}).encode(),
        json.dumps({"ok": True, "value": {"dir": True, "name": "a", "contents": False}}).encode()
        + b" " * copyhelper.RESULT_CAP,
        json.dumps({"ok": False, "message": "m", "hint": None, "exit_code": 999}).encode(),
        json.dumps({"ok": "yes"}).encode(),
        b"",
    ]
    for data in bad:
        with pytest.raises(RootlessError):
            copyhelper.parse_result("tar_out", data)
    assert not marker.exists()
    good = json.dumps({"ok": True, "value": {"dir": False, "name": "f", "contents": False}}).encode()
    assert copyhelper.parse_result("tar_out", good) == {"dir": False, "name": "f", "contents": False}
    with pytest.raises(RootlessError):
        copyhelper.parse_result("tar_in", json.dumps({"ok": True, "value": {"x": 1}}).encode())
    # the helper's own error comes through, without terminal control characters
    err = json.dumps({"ok": False, "message": "copy `x`: no\x1b[2J", "hint": "h\x07", "exit_code": 1}).encode()
    with pytest.raises(RootlessError) as e:
        copyhelper.parse_result("tar_out", err)
    assert e.value.message == "copy `x`: no?[2J" and e.value.hint == "h?" and e.value.exit_code == 1


def test_a_forged_archive_cannot_chmod_a_host_directory(tmp_path):
    """Defence in depth: even a helper that lied (a symlink to a host directory, then a directory
    entry of the same name with mode 0777) cannot make the host side chmod through the link."""
    import io
    import os
    import tarfile

    from rootless import containerfs

    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    dest = tmp_path / "dest"
    dest.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("d")
        ti.type, ti.linkname = tarfile.SYMTYPE, str(victim)
        tar.addfile(ti)
        ti = tarfile.TarInfo("d")
        ti.type, ti.mode = tarfile.DIRTYPE, 0o777
        tar.addfile(ti)
    buf.seek(0)
    with pytest.raises(RootlessError):
        containerfs.extract_on_host(buf, {"dir": True, "name": "d", "contents": False}, str(dest))
    assert os.stat(victim).st_mode & 0o777 == 0o700
