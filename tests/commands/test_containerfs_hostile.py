"""Hostile containers against cp, export and commit (issue 11, items 1 and 2): the attacks, performed.

The images are built by the tests (tests/fixtures/hostile_cfs.py) and pushed to the test registry.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time

import pytest

NONE = ("--network", "none")

pytestmark = pytest.mark.usefixtures("clean_containers")


def _tar(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data))


# "systemd": the CLI has looked a user up before it entered (for a stopped container: its subuid
# range, idmap.load), so glibc keeps the host's `passwd: files systemd` after the chroot and loads
# libnss_systemd.so.2 from the container for the uids that the container's passwd lacks. For a
# running container the old CLI had looked nobody up before it forked, so that route needs a
# stopped one; the image's own nsswitch.conf works for both.
@pytest.mark.parametrize("running,variant", [(True, "nsswitch"), (False, "nsswitch"), (False, "systemd")],
                         ids=["running-nsswitch", "stopped-nsswitch", "stopped-systemd"])
def test_cp_and_export_never_run_the_containers_nss_module(rl, hostile_nss_image, tmp_path, running, variant):
    """CVE-2019-14271 class: the image names its own NSS module (or ships libnss_systemd for the
    uids that its passwd lacks); the module writes a pickle into the helper's answer pipe. Nothing
    of it may run, neither in the host CLI (marker on the host) nor in the helper (/nss-ran)."""
    img = hostile_nss_image(variant)
    if running:
        rl.ok("run", "-d", *NONE, "--name", "hn", img.ref, "sleep", "600")
    else:
        rl.ok("run", *NONE, "--name", "hn", img.ref, "true")
    out = tmp_path / "out"
    out.mkdir()
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    payload_dir = tmp_path / "pdir"
    payload_dir.mkdir()
    (payload_dir / "inner").write_text("inner\n")
    results = [
        rl("cp", "hn:/data", str(out)),
        rl("cp", "hn:/data/owned", str(out / "owned-copy")),
        rl("cp", str(payload), "hn:/tmp/"),
        rl("cp", str(payload_dir), "hn:/tmp/newname"),
    ]
    stream = subprocess.run(rl.argv("cp", "hn:/data", "-"), env=rl.env, capture_output=True, timeout=120)
    exported = subprocess.run(rl.argv("export", "hn"), env=rl.env, capture_output=True, timeout=120)
    # the attack's goal: code from the image running as the user, outside every namespace
    assert not img.host_marker.exists(), f"the container's NSS module ran in the host CLI: {img.host_marker.read_text()}"
    for r in results:
        assert r.returncode == 0, str(r)
    assert stream.returncode == 0, stream.stderr.decode()
    assert exported.returncode == 0, exported.stderr.decode()
    names = _tar(exported.stdout).getnames()
    # glibc never even loaded it: no user or group look-up once inside the container
    assert "nss-ran" not in names
    assert "tmp/payload" in names and "tmp/newname/inner" in names and "data/owned" in names
    # numeric owners, as docker writes them: uid/gid kept, no names looked up
    members = {m.name: m for m in _tar(stream.stdout).getmembers()}
    owned = members["data/owned"]
    assert (owned.uid, owned.gid, owned.uname, owned.gname) == (4242, 4343, "", "")
    assert members["data/link"].issym() and members["data/link"].linkname == "plain"
    exp = {m.name: m for m in _tar(exported.stdout).getmembers()}
    assert (exp["data/owned"].uid, exp["data/owned"].gid, exp["data/owned"].uname) == (4242, 4343, "")
    assert (exp["tmp/payload"].uid, exp["tmp/payload"].gid) == (0, 0)  # cp in: owned by root
    assert (out / "data" / "owned").read_text() == "owned by 4242\n"
    assert (out / "owned-copy").read_text() == "owned by 4242\n"
    assert (out / "data" / "plain").read_text() == "plain\n"


def _blobs_with(root: str, needle: bytes):
    """Files under ``root`` (no symlink followed) whose content has ``needle``."""
    hits = []
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                with os.fdopen(fd, "rb") as f:
                    if needle in f.read():
                        hits.append(p)
            except OSError:
                continue
    return hits


def _count(rl) -> int:
    r = rl("exec", "racer", "cat", "/race/count")
    return int((r.stdout.split() or ["0"])[0]) if r.returncode == 0 else 0


ROUNDS = 30


def test_commit_never_reads_a_host_file_through_a_swapped_symlink(rl, racer_image, tmp_path):
    """Issue 11 item 2: the container swaps /race/f between a regular file and a symlink to a host
    file the user can read, as fast as it can, while we commit it again and again (paused, the
    default, and --pause=false). No committed layer may hold the host file's content."""
    needle = b"TOPSECRET-host-only-"
    secret = tmp_path / "secret"
    secret.write_bytes(needle * 64)
    rl.ok("run", "-d", *NONE, "--name", "racer", racer_image, "/racer", "/race", str(secret))
    deadline = time.monotonic() + 20
    while _count(rl) == 0:
        assert time.monotonic() < deadline, "the racer never started"
        time.sleep(0.1)
    ok = {"paused": 0, "unpaused": 0}
    failed = []
    for i in range(ROUNDS):
        for how, extra in (("paused", ()), ("unpaused", ("--pause=false",))):
            r = rl("commit", *extra, "racer", f"snap-{how}:{i}")
            if r.returncode == 0:
                ok[how] += 1
            else:
                failed.append((how, r))
    leaked = _blobs_with(rl.data_root, needle)
    assert leaked == [], f"the host file went into committed layers: {leaked} ({ok}, {len(failed)} refused)"
    for how, r in failed:  # only ever the refusal of a file that changed while it was read
        assert how == "unpaused" and "changed while it was read" in r.stderr, str(r)
    assert ok["paused"] == ROUNDS  # frozen: the container cannot change a file under the reader
    # and thawed again after each commit: the racer still runs
    before = _count(rl)
    deadline = time.monotonic() + 20
    while _count(rl) == before:
        assert time.monotonic() < deadline, "the container stayed frozen after commit"
        time.sleep(0.1)
    r = rl.ok("run", "--rm", *NONE, "snap-paused:3", "sh", "-c", "cat /race/f 2>&1; readlink /race/g /race/f; true")
    assert needle.decode() not in r.stdout
