"""Volumes end to end: binds, named volumes (seeded, surviving rm), anonymous ones, --mount, volume cmds."""

from __future__ import annotations

import json

import pytest

from fixtures.users import has_subuid

NONE = ("--network", "none")


pytestmark = pytest.mark.usefixtures("clean_containers")


@pytest.mark.nosubuid
def test_bind_mounts(rl, bb, tmp_path):
    host = tmp_path / "share"
    host.mkdir()
    (host / "in").write_text("from host\n")
    r = rl.ok("run", "--rm", *NONE, "-v", f"{host}:/data", bb, "sh", "-c", "cat /data/in; echo out > /data/out")
    assert r.stdout == "from host\n" and (host / "out").read_text() == "out\n"
    r = rl("run", "--rm", *NONE, "-v", f"{host}:/data:ro", bb, "sh", "-c", "touch /data/x 2>&1; echo rc=$?")
    assert "rc=1" in r.stdout and "Read-only" in r.stdout
    missing = tmp_path / "made" / "by-v"
    rl.ok("run", "--rm", *NONE, "-v", f"{missing}:/m", bb, "true")
    assert missing.is_dir()  # -v creates a missing host dir, as docker
    r = rl("run", "--rm", *NONE, "--mount", f"type=bind,source={tmp_path}/nope,target=/m", bb, "true")
    assert r.returncode == 125 and "does not exist" in r.stderr and "hint:" in r.stderr
    r = rl.ok("run", "--rm", *NONE, "--mount", f"type=bind,source={host},target=/m,readonly", bb, "cat", "/m/in")
    assert r.stdout == "from host\n"
    r = rl.ok("run", "--rm", *NONE, "--mount", "type=tmpfs,target=/scratch", bb, "sh", "-c",
              "grep ' /scratch ' /proc/mounts | cut -d' ' -f3")
    assert r.stdout == "tmpfs\n"
    r = rl("run", "--rm", *NONE, "-v", "relative:path", bb, "true")
    assert r.returncode == 125 and "hint:" in r.stderr


@pytest.mark.nosubuid
def test_bind_of_an_unreadable_path_is_a_clear_error(rl, bb, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        r = rl("run", "--rm", *NONE, "-v", f"{locked}:/x", bb, "true")
        assert r.returncode == 125 and "permission denied" in r.stderr and "hint:" in r.stderr
    finally:
        locked.chmod(0o700)


@pytest.mark.nosubuid
def test_named_volume_survives_rm_and_is_seeded(rl, bb):
    rl.ok("run", "--name", "ww", *NONE, "-v", "data:/data", bb, "sh", "-c", "echo kept > /data/f")
    rl.ok("rm", "ww")
    assert rl.ok("run", "--rm", *NONE, "-v", "data:/data", bb, "cat", "/data/f").stdout == "kept\n"
    assert "data" in rl.ok("volume", "ls", "-q").stdout.split()
    # a new named volume on a path of the image gets the image's content, first time only
    r = rl.ok("run", "--rm", *NONE, "-v", "etcvol:/etc", bb, "sh", "-c", "cat /etc/passwd | head -1; echo x > /etc/added")
    assert r.stdout.startswith("root:")
    assert rl.ok("run", "--rm", *NONE, "-v", "etcvol:/etc", bb, "cat", "/etc/added").stdout == "x\n"
    info = json.loads(rl.ok("volume", "inspect", "data").stdout)[0]
    assert info["Name"] == "data" and info["Mountpoint"].endswith("/volumes/data/_data")
    assert json.loads(rl.ok("inspect", "--type", "volume", "data").stdout)[0]["Name"] == "data"
    rl.ok("run", "--name", "user", *NONE, "-v", "data:/data", bb, "true")
    r = rl("volume", "rm", "data")
    assert r.returncode == 1 and "in use" in r.stderr
    d = json.loads(rl.ok("inspect", "user").stdout)[0]
    assert d["Mounts"][0]["Type"] == "volume" and d["Mounts"][0]["Name"] == "data" and d["Mounts"][0]["RW"]
    rl.ok("rm", "user")
    assert rl.ok("volume", "rm", "data").stdout == "data\n"


@pytest.mark.nosubuid
def test_anonymous_volumes_and_rm_v_and_volumes_from(rl, bb):
    cid = rl.ok("run", "-d", "--name", "src", *NONE, "-v", "/anon", bb, "sh", "-c", "echo a > /anon/x; sleep 30").stdout.strip()
    m = json.loads(rl.ok("inspect", cid).stdout)[0]["Mounts"]
    assert len(m) == 1 and m[0]["Type"] == "volume" and len(m[0]["Name"]) == 64
    name = m[0]["Name"]
    r = rl.ok("run", "--rm", *NONE, "--volumes-from", "src", bb, "sh", "-c", "sleep 0.3; cat /anon/x")
    assert r.stdout == "a\n"
    rl.ok("rm", "-f", "-v", "src")
    assert name not in rl.ok("volume", "ls", "-q").stdout.split()
    rl.ok("volume", "create", "--label", "k=v", "named")
    anon = rl.ok("volume", "create").stdout.strip()
    assert rl.ok("volume", "ls", "-q", "--filter", "label=k=v").stdout.split() == ["named"]
    t = rl.ok("volume", "ls").stdout.splitlines()
    assert t[0].split() == ["DRIVER", "VOLUME", "NAME"]
    r = rl.ok("volume", "prune", "-f", "-a")
    assert "named" in r.stdout and anon in r.stdout
    assert rl.ok("volume", "ls", "-q").stdout == ""
    r = rl("volume", "inspect", "nosuch")
    assert r.returncode == 1 and "no such volume" in r.stderr


@pytest.mark.skipif(not has_subuid(), reason="needs a /etc/subuid range")
def test_seeded_volume_keeps_owners(rl, bb):
    r = rl.ok("run", "--rm", *NONE, "-v", "homevol:/home/app", bb, "stat", "-c", "%u:%g", "/home/app/owned", "/home/app")
    assert r.stdout == "1000:1000\n1000:1000\n"


@pytest.mark.nosubuid
def test_run_rm_takes_its_anonymous_volumes_not_named_ones(rl, bb):
    rl.ok("run", "--rm", *NONE, "-v", "/anon", "-v", "keep:/keep", bb, "true")
    assert rl.ok("volume", "ls", "-q").stdout.split() == ["keep"]
