"""cp (both ways, confined to the container's root), diff, export and commit, running and stopped."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

NONE = ("--network", "none")


pytestmark = pytest.mark.usefixtures("clean_containers")


SCRIPT = ("echo hi > /root/new; rm /bin/ls; mkdir -p /etc/x; "
          "ln -s {secret} /esc; ln -s {hostdir} /escdir; echo ready; sleep 60")


@pytest.mark.nosubuid
@pytest.mark.parametrize("running", [True, False])
def test_cp_both_ways_cannot_escape(rl, bb, tmp_path, running):
    secret = tmp_path / "shadow-like"
    secret.write_text("host secret\n")
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    rl.ok("run", "-d", *NONE, "--name", "cc", bb, "sh", "-c", SCRIPT.format(secret=secret, hostdir=hostdir))
    import time

    deadline = time.monotonic() + 20
    while "ready" not in rl.ok("logs", "cc").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    if not running:
        rl.ok("stop", "-t", "0", "cc")
    out = tmp_path / "out"
    out.mkdir()
    rl.ok("cp", "cc:/root/new", str(out / "renamed"))
    assert (out / "renamed").read_text() == "hi\n"
    rl.ok("cp", "cc:/root", str(out))
    assert (out / "root" / "new").read_text() == "hi\n"
    # a symlink to a host path: copied as a link, and -L resolves it inside the container
    rl.ok("cp", "cc:/esc", str(out / "esc"))
    assert os.readlink(out / "esc") == str(secret)
    r = rl("cp", "-L", "cc:/esc", str(out / "esc2"))
    assert r.returncode == 1 and not (out / "esc2").exists()
    r = rl("cp", "cc:/escdir/../../../../../../" + str(secret).lstrip("/"), str(out / "esc3"))
    assert r.returncode == 1 and not (out / "esc3").exists()
    # into the container: through its symlink to a host dir lands inside the container, not on the host
    src = tmp_path / "payload"
    src.write_text("payload\n")
    r = rl("cp", str(src), "cc:/escdir/")
    assert os.listdir(hostdir) == []
    rl.ok("cp", str(src), "cc:/tmp/")
    rl.ok("cp", str(src), "cc:/tmp/other-name")
    rl.ok("cp", "cc:/tmp", str(out / "tmpcopy"))
    assert sorted(os.listdir(out / "tmpcopy")) == ["other-name", "payload"]
    # tar streams
    tar = subprocess.run(rl.argv("cp", "cc:/root", "-"), env=rl.env, capture_output=True, check=True).stdout
    assert "root/new" in tarfile.open(fileobj=io.BytesIO(tar)).getnames()
    r = rl("cp", "cc:/nosuch", str(out))
    assert r.returncode == 1 and "error:" in r.stderr
    r = rl("cp", str(src), str(out))
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_diff_export_commit(rl, bb, tmp_path):
    rl.ok("run", "--name", "cc", *NONE, bb, "sh", "-c", "echo hi > /root/new; rm /bin/ls; mkdir /etc/x")
    assert rl.ok("diff", "cc").stdout.splitlines() == ["C /bin", "D /bin/ls", "C /etc", "A /etc/x", "C /root", "A /root/new"]
    r = subprocess.run(rl.argv("export", "cc"), env=rl.env, capture_output=True)
    names = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
    assert "root/new" in names and "bin/sh" in names and "bin/ls" not in names
    rl.ok("export", "-o", str(tmp_path / "c.tar"), "cc")
    assert tarfile.open(tmp_path / "c.tar").getnames() == names
    img = rl.ok("commit", "-c", "CMD cat /root/new", "-c", "ENV MADE=yes", "-m", "msg", "cc", "mine:1").stdout.strip()
    assert img.startswith("sha256:")
    assert rl.ok("run", "--rm", *NONE, "mine:1").stdout == "hi\n"
    r = rl.ok("run", "--rm", *NONE, "mine:1", "sh", "-c", "echo $MADE; ls /bin/ls 2>&1; true")
    assert r.stdout.startswith("yes\n") and "No such file" in r.stdout  # the whiteout came along
    cfg = json.loads(rl.ok("image", "inspect", "mine:1").stdout)[0]
    assert cfg["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /root/new"] and len(cfg["RootFS"]["Layers"]) >= 2
    r = rl("commit", "-c", "FLY away", "cc")
    assert r.returncode == 125 and "hint:" in r.stderr
