"""The copy helper's answer is data parsed against a schema, never unpickled (issue 11, item 1)."""

from __future__ import annotations

import json
import pickle

import pytest

from rootless.engine import copyhelper
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

    from rootless.engine import containerfs

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


@pytest.mark.usefixtures("clean_containers")
def test_the_helper_is_a_fresh_non_dumpable_process(rl, bb, tmp_path):
    """While it copies out of a running container, the helper is a new `python -I -S` (not a fork
    of the CLI with its heap) that even its own user cannot inspect: no /proc/PID/fd, environ or
    mem (PR_SET_DUMPABLE 0, set before it joins the container)."""
    import os
    import subprocess
    import time

    rl.ok("run", "-d", "--network", "none", "--name", "big", bb, "sh", "-c",
          "dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null; touch /done; sleep 600")
    deadline = time.monotonic() + 60
    while rl("exec", "big", "ls", "/done").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    p = subprocess.Popen(rl.argv("cp", "big:/big", str(tmp_path / "big")), env=rl.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = None
    try:
        while found is None and p.poll() is None:
            for n in os.listdir("/proc"):
                try:
                    with open(f"/proc/{n}/comm") as f:
                        if n.isdigit() and f.read().strip() == "rootless:copy":
                            found = int(n)
                            break
                except OSError:
                    continue
        assert found is not None, "no copy helper seen"
        with open(f"/proc/{found}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        denied = []
        for what in ("fd", "environ", "mem"):
            try:
                if what == "fd":
                    os.listdir(f"/proc/{found}/fd")
                else:
                    with open(f"/proc/{found}/{what}", "rb") as f:
                        f.read(1)
            except PermissionError:
                denied.append(what)
            except FileNotFoundError:
                pytest.skip("the helper ended before it was inspected")
    finally:
        assert p.wait(timeout=120) == 0
    assert argv[1:3] == [b"-I", b"-S"]
    assert denied == ["fd", "environ", "mem"]
    assert os.path.getsize(tmp_path / "big") == 200 << 20
